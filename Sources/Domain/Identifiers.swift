/// Identifiers that people choose (department and practitioner ids) are lowercase ASCII slugs
/// such as "cardiology" or "dr-wang-li": readable in logs and URLs, and free of "/", which
/// keeps the identity keys built from them unambiguous.
enum Slug {
    static let maxLength = 64

    static func validate(_ text: String, field: String, zhLabel: String, enLabel: String) throws(ValidationError) -> String {
        let code = InputText.codePrefix(for: field)
        guard !text.isEmpty else {
            throw ValidationError(
                field: field, code: "\(code).empty",
                zh: "\(zhLabel)不能为空，请填写由小写字母、数字和连字符组成的标识，例如 cardiology。",
                en: "The \(enLabel) is empty; please enter an identifier of lowercase letters, digits and hyphens, for example cardiology.")
        }
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= maxLength else {
            throw ValidationError(
                field: field, code: "\(code).length",
                zh: "\(zhLabel)过长（\(scalars.count) 个字符），最多 \(maxLength) 个字符，请缩短。",
                en: "The \(enLabel) is too long (\(scalars.count) characters); at most \(maxLength) are allowed, please shorten it.")
        }
        let allowed = scalars.allSatisfy { ("a"..."z").contains($0) || InputText.isASCIIDigit($0) || $0 == "-" }
        guard allowed, scalars.first != "-", scalars.last != "-", !text.contains("--") else {
            throw ValidationError(
                field: field, code: "\(code).format",
                zh: "\(zhLabel)只能由小写英文字母、数字和单个连字符组成，且不能以连字符开头或结尾，例如 dr-wang-li。",
                en: "The \(enLabel) may contain only lowercase ASCII letters, digits and single hyphens, and may not start or end with a hyphen, for example dr-wang-li.")
        }
        return text
    }
}

/// Identifies a department (科室), e.g. "cardiology".
public struct DepartmentID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ text: String, field: String = "departmentID") throws(ValidationError) {
        rawValue = try Slug.validate(text, field: field, zhLabel: "科室标识", enLabel: "department id")
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Identifies a practitioner (医生), e.g. "dr-wang-li" or a staff number "p01234".
public struct PractitionerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ text: String, field: String = "practitionerID") throws(ValidationError) {
        rawValue = try Slug.validate(text, field: field, zhLabel: "医生标识", enLabel: "practitioner id")
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension DepartmentID: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try DepartmentID(text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension PractitionerID: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try PractitionerID(text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
