import Foundation

/// Small helpers for text typed by people: Chinese input methods often produce full-width forms.
enum InputText {
    /// Maps full-width ASCII forms (U+FF01...U+FF5E, e.g. "１３８", "Ｘ", "＋") to their ASCII
    /// counterparts and the ideographic space (U+3000) to a plain space. Everything else is kept.
    static func foldingFullWidth(_ text: String) -> String {
        var folded = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0xFF01...0xFF5E:
                // Cannot fail: the result lies in 0x21...0x7E.
                folded.append(Unicode.Scalar(scalar.value - 0xFEE0) ?? scalar)
            case 0x3000:
                folded.append(" ")
            default:
                folded.append(scalar)
            }
        }
        return String(folded)
    }

    static func trimmed(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func isASCIIDigit(_ scalar: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(scalar)
    }

    /// The value of an ASCII digit, or nil for anything else.
    static func digitValue(_ scalar: Unicode.Scalar) -> Int? {
        isASCIIDigit(scalar) ? Int(scalar.value - 48) : nil
    }

    /// Parses a run of ASCII digits (at most 9, so it cannot overflow); nil if anything else.
    static func smallNumber(_ scalars: some Collection<Unicode.Scalar>) -> Int? {
        guard !scalars.isEmpty, scalars.count <= 9 else { return nil }
        var value = 0
        for scalar in scalars {
            guard let digit = digitValue(scalar) else { return nil }
            value = value * 10 + digit
        }
        return value
    }

    /// Zero-padded decimal, for fixed-width formats such as "2025-03-07" and "08:05".
    static func padded(_ value: Int, width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// A person's name as entered: trimmed, 1...maxLength characters, no control characters.
    static func personName(_ text: String, field: String, maxLength: Int = 50) throws(ValidationError) -> String {
        try nonEmptyText(text, field: field, maxLength: maxLength, zhLabel: "姓名", enLabel: "name")
    }

    /// Free text such as a name: trimmed, 1...maxLength characters (what a person sees as one
    /// character counts once), no control characters such as newlines or tabs inside.
    static func nonEmptyText(
        _ text: String, field: String, maxLength: Int, zhLabel: String, enLabel: String
    ) throws(ValidationError) -> String {
        let value = trimmed(text)
        let code = codePrefix(for: field)
        guard !value.isEmpty else {
            throw ValidationError(
                field: field, code: "\(code).empty",
                zh: "\(zhLabel)不能为空，请填写\(zhLabel)。",
                en: "The \(enLabel) is empty; please enter the \(enLabel).")
        }
        guard value.count <= maxLength else {
            throw ValidationError(
                field: field, code: "\(code).length",
                zh: "\(zhLabel)过长（\(value.count) 个字符），最多 \(maxLength) 个字符，请缩短后重试。",
                en: "The \(enLabel) is too long (\(value.count) characters); at most \(maxLength) are allowed, please shorten it.")
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValidationError(
                field: field, code: "\(code).characters",
                zh: "\(zhLabel)中含有换行、制表符等控制字符，请删除后重试。",
                en: "The \(enLabel) contains control characters such as line breaks or tabs; please remove them.")
        }
        return value
    }

    /// "birthDate" -> "birth_date", "residentID" -> "resident_id": codes are snake_case.
    static func codePrefix(for field: String) -> String {
        var result = ""
        var previousWasUpper = false
        for character in field {
            if character.isUppercase {
                if !result.isEmpty && !previousWasUpper { result.append("_") }
                result.append(contentsOf: character.lowercased())
                previousWasUpper = true
            } else {
                result.append(character)
                previousWasUpper = false
            }
        }
        return result
    }
}
