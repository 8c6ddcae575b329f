/// FHIR R4 AdministrativeGender; raw values are the FHIR codes.
public enum Sex: String, CaseIterable, Hashable, Sendable, Codable {
    case male
    case female
    case other
    case unknown

    public var zh: String {
        switch self {
        case .male: "男"
        case .female: "女"
        case .other: "其他"
        case .unknown: "未知"
        }
    }

    public var en: String {
        switch self {
        case .male: "male"
        case .female: "female"
        case .other: "other"
        case .unknown: "unknown"
        }
    }
}
