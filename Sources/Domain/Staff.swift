import Foundation

/// A staff number (工号): 2 to 16 ASCII letters, digits or hyphens, kept upper-case so that
/// "n001" and "N001" are one account.
public struct StaffNumber: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ text: String) throws(ValidationError) {
        let folded = InputText.trimmed(InputText.foldingFullWidth(text)).uppercased()
        guard (2...16).contains(folded.count), folded.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || InputText.isASCIIDigit($0) || $0 == "-") }) else {
            throw ValidationError(field: "staffNumber", code: "staff_number.format",
                                  zh: "工号应为 2 到 16 位字母、数字或连字符。", en: "a staff number is 2 to 16 letters, digits or hyphens.")
        }
        rawValue = folded
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What a staff member does in the hospital; each role grants actions (`RBAC.md`).
public enum StaffRole: String, CaseIterable, Hashable, Sendable, Codable, Comparable {
    case doctor
    case nurse
    case registrationClerk = "registration_clerk"
    case pharmacist
    case cashier
    case labTechnician = "lab_technician"
    case departmentHead = "department_head"
    case hospitalAdmin = "hospital_admin"
    case auditor

    public var zh: String {
        switch self {
        case .doctor: "医生"
        case .nurse: "护士"
        case .registrationClerk: "挂号员"
        case .pharmacist: "药师"
        case .cashier: "收费员"
        case .labTechnician: "检验技师"
        case .departmentHead: "科室主任"
        case .hospitalAdmin: "医院管理员"
        case .auditor: "审计员"
        }
    }

    public var en: String {
        switch self {
        case .doctor: "Doctor"
        case .nurse: "Nurse"
        case .registrationClerk: "Registration clerk"
        case .pharmacist: "Pharmacist"
        case .cashier: "Cashier"
        case .labTechnician: "Lab technician"
        case .departmentHead: "Department head"
        case .hospitalAdmin: "Hospital administrator"
        case .auditor: "Auditor"
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The rule for a new staff password: at least 10 characters, at most 128, no control
/// characters, and not the staff number itself (in any case).
public enum StaffPasswordRule {
    public static let minimumLength = 10
    public static let maximumLength = 128

    public static func check(_ password: String, staffNumber: StaffNumber) throws(ValidationError) {
        guard password.count >= minimumLength else {
            throw ValidationError(field: "password", code: "password.too_short",
                                  zh: "密码至少 \(minimumLength) 个字符。", en: "a password has at least \(minimumLength) characters.")
        }
        guard password.count <= maximumLength else {
            throw ValidationError(field: "password", code: "password.too_long",
                                  zh: "密码最多 \(maximumLength) 个字符。", en: "a password has at most \(maximumLength) characters.")
        }
        guard !password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValidationError(field: "password", code: "password.control_character",
                                  zh: "密码不能含控制字符。", en: "a password cannot contain control characters.")
        }
        guard password.uppercased() != staffNumber.rawValue else {
            throw ValidationError(field: "password", code: "password.is_staff_number",
                                  zh: "密码不能与工号相同。", en: "a password cannot be the staff number.")
        }
    }
}

/// A staff member's display name: 1 to 40 characters, no control characters.
public enum StaffName {
    public static func check(_ text: String) throws(ValidationError) -> String {
        let name = InputText.trimmed(text)
        guard (1...40).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValidationError(field: "name", code: "staff_name.format",
                                  zh: "姓名应为 1 到 40 个字符，不含控制字符。", en: "a name is 1 to 40 characters, without control characters.")
        }
        return name
    }
}
