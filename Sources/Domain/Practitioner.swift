/// Professional title of a physician (医师职称); it sets the default registration fee.
public enum PractitionerTitle: String, CaseIterable, Hashable, Sendable, Codable {
    case chiefPhysician
    case associateChiefPhysician
    case attendingPhysician
    case residentPhysician

    public var zh: String {
        switch self {
        case .chiefPhysician: "主任医师"
        case .associateChiefPhysician: "副主任医师"
        case .attendingPhysician: "主治医师"
        case .residentPhysician: "住院医师"
        }
    }

    public var en: String {
        switch self {
        case .chiefPhysician: "Chief Physician"
        case .associateChiefPhysician: "Associate Chief Physician"
        case .attendingPhysician: "Attending Physician"
        case .residentPhysician: "Resident Physician"
        }
    }
}

/// Registration fee (挂号费) per title, in fen (分) so that money is never a floating-point value.
/// A hospital or a single schedule can replace any entry.
public struct FeeTable: Hashable, Sendable, Codable {
    /// Highest fee accepted, 10,000 yuan: far above any registration fee, and low enough that
    /// summing fees can never overflow.
    public static let maximumFeeFen = 1_000_000

    /// 50 / 30 / 20 / 10 yuan for chief / associate chief / attending / resident physicians.
    public static let standard = FeeTable(validated: [
        .chiefPhysician: 5000,
        .associateChiefPhysician: 3000,
        .attendingPhysician: 2000,
        .residentPhysician: 1000,
    ])

    private let fenByTitle: [PractitionerTitle: Int]

    /// A complete table: every title needs a fee.
    public init(fenByTitle: [PractitionerTitle: Int]) throws(ValidationError) {
        for title in PractitionerTitle.allCases {
            guard let fen = fenByTitle[title] else {
                throw ValidationError(
                    field: "feeFen", code: "fee_table.missing_title",
                    zh: "挂号费表缺少“\(title.zh)”的费用，请为每个职称填写费用。",
                    en: "The fee table has no fee for \(title.en); please give a fee for every title.")
            }
            try Self.validateFee(fen, field: "feeFen")
        }
        self.fenByTitle = fenByTitle
    }

    private init(validated: [PractitionerTitle: Int]) {
        fenByTitle = validated
    }

    public func feeFen(for title: PractitionerTitle) -> Int {
        fenByTitle[title] ?? 0
    }

    /// A copy of this table with one title's fee replaced.
    public func setting(_ fen: Int, for title: PractitionerTitle) throws(ValidationError) -> FeeTable {
        try Self.validateFee(fen, field: "feeFen")
        var table = fenByTitle
        table[title] = fen
        return FeeTable(validated: table)
    }

    static func validateFee(_ fen: Int, field: String) throws(ValidationError) {
        guard (0...maximumFeeFen).contains(fen) else {
            throw ValidationError(
                field: field, code: "fee.out_of_range",
                zh: "挂号费应在 0 至 10000 元之间（以分为单位填写 0 至 \(maximumFeeFen)），当前为 \(fen) 分，请核对金额。",
                en: "The registration fee must be between 0 and 10,000 yuan (0 to \(maximumFeeFen) fen); \(fen) fen was given, please check the amount.")
        }
    }
}

/// FHIR Practitioner: a physician who holds clinic sessions in one department.
public struct Practitioner: Hashable, Sendable {
    public let id: PractitionerID
    public let name: String
    public let title: PractitionerTitle
    public let departmentID: DepartmentID

    public init(id: PractitionerID, name: String, title: PractitionerTitle, departmentID: DepartmentID) throws(ValidationError) {
        self.id = id
        self.name = try InputText.personName(name, field: "name")
        self.title = title
        self.departmentID = departmentID
    }
}

extension Practitioner: Codable {
    private enum CodingKeys: String, CodingKey { case id, name, title, departmentID }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: container.decode(PractitionerID.self, forKey: .id),
            name: container.decode(String.self, forKey: .name),
            title: container.decode(PractitionerTitle.self, forKey: .title),
            departmentID: container.decode(DepartmentID.self, forKey: .departmentID))
    }
}
