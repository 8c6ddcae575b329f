import Foundation

/// Small helpers for text typed by people: Chinese input methods often produce full-width forms.
public enum InputText {
    /// Maps full-width ASCII forms (U+FF01...U+FF5E, e.g. "１３８", "Ｘ", "＋") to their ASCII
    /// counterparts and the ideographic space (U+3000) to a plain space. Everything else is kept.
    public static func foldingFullWidth(_ text: String) -> String {
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

    public static func trimmed(_ text: String) -> String {
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

    /// A person's name as entered: trimmed, 1...maxLength characters, nothing invisible. The
    /// separator of ethnic-minority names on the ID card is the middle dot U+00B7 ("买买提·艾力");
    /// the look-alikes input methods type instead (•, ‧, ∙, ⋅, ・, ･) become that dot, so one
    /// person's name is one string.
    static func personName(_ text: String, field: String, maxLength: Int = 50) throws(ValidationError) -> String {
        var dotted = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x2022, 0x2027, 0x2219, 0x22C5, 0x30FB, 0xFF65: dotted.append("\u{00B7}")
            default: dotted.append(scalar)
            }
        }
        return try nonEmptyText(String(dotted), field: field, maxLength: maxLength, zhLabel: "姓名", enLabel: "name")
    }

    /// Free text such as a name: trimmed, in NFC, 1...maxLength Unicode scalars, no control or
    /// invisible formatting characters. Counted in scalars, not in what a person sees as one
    /// character: one "character" can carry thousands of combining marks.
    static func nonEmptyText(
        _ text: String, field: String, maxLength: Int, zhLabel: String, enLabel: String
    ) throws(ValidationError) -> String {
        let code = codePrefix(for: field)
        func tooLong(_ count: Int) -> ValidationError {
            ValidationError(
                field: field, code: "\(code).length",
                zh: "\(zhLabel)过长（\(count) 个字符），最多 \(maxLength) 个字符（附加的组合符号各算一个），请缩短后重试。",
                en: "The \(enLabel) is too long (\(count) characters); at most \(maxLength) are allowed, each combining mark counting as one; please shorten it.")
        }
        // A byte bound before any work proportional to the text (normalising, counting).
        guard text.utf8.count <= maxLength * 16 else { throw tooLong(text.unicodeScalars.count) }
        let value = trimmed(text).precomposedStringWithCanonicalMapping
        guard !value.isEmpty else {
            throw ValidationError(
                field: field, code: "\(code).empty",
                zh: "\(zhLabel)不能为空，请填写\(zhLabel)。",
                en: "The \(enLabel) is empty; please enter the \(enLabel).")
        }
        let scalars = value.unicodeScalars.count
        guard scalars <= maxLength else { throw tooLong(scalars) }
        for scalar in value.unicodeScalars {
            let category = scalar.properties.generalCategory
            if category == .control || category == .lineSeparator || category == .paragraphSeparator {
                throw ValidationError(
                    field: field, code: "\(code).characters",
                    zh: "\(zhLabel)中含有换行、制表符等控制字符（\(codePoint(scalar))），请删除后重试。",
                    en: "The \(enLabel) contains a control character such as a line break or tab (\(codePoint(scalar))); please remove it.")
            }
            // Text-direction controls (U+202E turns the rest of a line around), zero-width
            // characters, the byte order mark and the fillers that show as nothing.
            if category == .format || scalar.properties.isDefaultIgnorableCodePoint {
                throw ValidationError(
                    field: field, code: "\(code).invisible",
                    zh: "\(zhLabel)中含有不可见的格式字符（\(codePoint(scalar))，如文字方向控制符或零宽字符），它会改变文字的显示或藏起内容；请删除后重新输入\(zhLabel)。",
                    en: "The \(enLabel) contains an invisible formatting character (\(codePoint(scalar)), such as a text-direction control or a zero-width character) that changes how text is shown or hides content; please delete it and type the \(enLabel) again.")
            }
        }
        return value
    }

    /// "U+202E": names a character in a message without showing it.
    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
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
