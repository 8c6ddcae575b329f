/// FHIR Patient, registered under their real name (实名) with a resident ID.
public struct Patient: Hashable, Sendable {
    /// 1...50 characters, trimmed.
    public let name: String
    public let sex: Sex
    public let birthDate: CivilDate
    public let residentID: ResidentID
    public let mobile: MobileNumber

    /// The resident ID is authoritative for real-name registration: a birth date or sex that
    /// disagrees with it is refused (naming `birthDate` or `sex`) rather than silently corrected,
    /// because a disagreement usually means the wrong person's card or a typing error.
    public init(name: String, sex: Sex, birthDate: CivilDate, residentID: ResidentID, mobile: MobileNumber) throws(ValidationError) {
        let name = try InputText.personName(name, field: "name")
        guard birthDate == residentID.birthDate else {
            throw ValidationError(
                field: "birthDate", code: "birth_date.mismatch",
                zh: "出生日期（\(birthDate)）与身份证号中的出生日期不一致，请核对出生日期或身份证号。",
                en: "The birth date (\(birthDate)) does not match the birth date in the resident ID; please check the birth date or the resident ID.")
        }
        guard sex == residentID.sex else {
            throw ValidationError(
                field: "sex", code: "sex.mismatch",
                zh: "性别（\(sex.zh)）与身份证号记载的性别不一致，实名挂号以身份证为准，请核对性别或身份证号。",
                en: "The sex (\(sex.en)) does not match the sex recorded in the resident ID; real-name registration follows the ID card, so please check the sex or the resident ID.")
        }
        self.name = name
        self.sex = sex
        self.birthDate = birthDate
        self.residentID = residentID
        self.mobile = mobile
    }
}

extension Patient {
    /// A name as `init` keeps it (trimmed, composed, the ID card's middle dot): two spellings of
    /// one name compare equal once both went through this.
    public static func normalizedName(_ name: String) throws(ValidationError) -> String {
        try InputText.personName(name, field: "name")
    }
}

extension Patient: Codable {
    private enum CodingKeys: String, CodingKey { case name, sex, birthDate, residentID, mobile }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            name: container.decode(String.self, forKey: .name),
            sex: container.decode(Sex.self, forKey: .sex),
            birthDate: container.decode(CivilDate.self, forKey: .birthDate),
            residentID: container.decode(ResidentID.self, forKey: .residentID),
            mobile: container.decode(MobileNumber.self, forKey: .mobile))
    }
}

extension Patient {
    /// A name as a waiting-room screen may show it: the first and last characters, the rest
    /// starred (张*明, 欧阳**, 李*).
    public static func masked(_ name: String) -> String {
        let chars = Array(name)
        switch chars.count {
        case 0, 1: return name
        case 2: return "\(chars[0])*"
        default: return "\(chars[0])\(String(repeating: "*", count: chars.count - 2))\(chars[chars.count - 1])"
        }
    }
}
