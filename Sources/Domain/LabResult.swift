import Foundation

/// What an order asks for: a laboratory test (检验) or an examination (检查: imaging, ECG).
public enum OrderKind: String, Codable, Sendable, CaseIterable {
    case lab, exam

    public var zh: String { self == .lab ? "检验" : "检查" }
    public var en: String { self == .lab ? "Laboratory" : "Examination" }
}

/// The abnormal flag of a result (HL7 v2 table 0078, the codes used here): the lab's own when it
/// sends one, else judged from the reference range the lab supplied.
public enum AbnormalFlag: String, Codable, Sendable, CaseIterable {
    case normal = "N", low = "L", high = "H", abnormal = "A"

    public var zh: String {
        switch self {
        case .normal: ""
        case .low: "↓ 偏低"
        case .high: "↑ 偏高"
        case .abnormal: "异常"
        }
    }

    public var en: String {
        switch self {
        case .normal: ""
        case .low: "↓ low"
        case .high: "↑ high"
        case .abnormal: "abnormal"
        }
    }
}

/// A reference range as labs write it: `3.5-9.5`, `<5`, `≤5`, `>60`. Anything else (a word such
/// as 阴性) is kept as text and not judged against.
public struct ReferenceRange: Sendable, Hashable {
    public var low: Double?
    public var high: Double?

    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "～", with: "-").replacingOccurrences(of: "~", with: "-")
            .replacingOccurrences(of: "–", with: "-")
        if let first = t.first, "<≤>≥".contains(first) {
            guard let v = Double(t.dropFirst().trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "=", with: "")) else { return nil }
            if first == "<" || first == "≤" { high = v } else { low = v }
            return
        }
        // The separator is the first "-" after the first character (the low end may be negative).
        guard let dash = t.dropFirst().firstIndex(of: "-"), let lo = Double(t[..<dash].trimmingCharacters(in: .whitespaces)),
              let hi = Double(t[t.index(after: dash)...].trimmingCharacters(in: .whitespaces)), lo <= hi else { return nil }
        low = lo; high = hi
    }

    /// Low, high or normal for a number; nil when the value is not a number.
    public func judge(_ value: String) -> AbnormalFlag? {
        guard let v = Double(value.trimmingCharacters(in: .whitespaces)) else { return nil }
        if let low, v < low { return .low }
        if let high, v > high { return .high }
        return .normal
    }
}

/// One result (FHIR Observation, HL7 OBX): an analyte's value with the unit and reference range
/// the lab supplied, and its abnormal flag.
public struct Observation: Codable, Equatable, Sendable {
    public var code: String
    public var name: String
    public var value: String
    public var unit: String
    public var range: String
    public var flag: AbnormalFlag

    public init(code: String, name: String, value: String, unit: String = "", range: String = "", flag: AbnormalFlag? = nil) {
        self.code = code; self.name = name; self.value = value; self.unit = unit; self.range = range
        self.flag = flag ?? ReferenceRange(range)?.judge(value) ?? .normal
    }

    /// Checks every text: short, one line, no control or invisible formatting characters.
    public func validated() throws(ValidationError) -> Observation {
        var o = self
        for (path, field, limit) in [(\Observation.code, "code", 40), (\.name, "name", 80), (\.unit, "unit", 30), (\.range, "range", 60)] as [(WritableKeyPath<Observation, String>, String, Int)] {
            o[keyPath: path] = try Self.line(self[keyPath: path], field: field, limit: limit)
        }
        o.value = try Self.line(value, field: "value", limit: 2_000, lines: true)
        guard !o.code.isEmpty, !o.value.isEmpty else {
            throw ValidationError(field: "value", code: "result.empty", zh: "每项结果都要有项目编码和结果值（\(o.name)）。",
                                  en: "every result needs its analyte code and a value (\(o.name)).")
        }
        return o
    }

    public static func line(_ text: String, field: String, limit: Int, lines: Bool = false) throws(ValidationError) -> String {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
        guard t.count <= limit else {
            throw ValidationError(field: field, code: "result.too_long", zh: "结果中的 \(field) 过长（最多 \(limit) 字）。", en: "the result's \(field) is too long (at most \(limit) characters).")
        }
        for scalar in t.unicodeScalars {
            let category = scalar.properties.generalCategory
            let allowed = lines && (scalar == "\n" || scalar == "\t")
            if !allowed && (category == .control || category == .format || scalar.properties.isDefaultIgnorableCodePoint) {
                throw ValidationError(field: field, code: "result.characters", zh: "结果中的 \(field) 含有控制字符或不可见字符（\(InputText.codePoint(scalar))）。",
                                      en: "the result's \(field) contains a control or invisible character (\(InputText.codePoint(scalar))).")
            }
        }
        return t
    }
}
