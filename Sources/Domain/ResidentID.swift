/// 居民身份证号: the 18-character citizen identity number of GB 11643-1999.
///
/// Layout: 6-digit region code, 8-digit birth date (YYYYMMDD), 3-digit sequence whose last digit
/// is odd for men and even for women, and a check character (0-9 or X) computed with
/// ISO 7064 MOD 11-2 over the first 17 digits.
///
/// `description` is the masked form, so interpolating an ID into a log line does not leak it.
public struct ResidentID: Hashable, Sendable, CustomStringConvertible {
    /// The normalised number: 17 digits and an upper-case check character.
    public let value: String
    public let birthDate: CivilDate
    /// Male or female, from the parity of the 17th digit.
    public let sex: Sex

    /// The first six digits: province, city and county (行政区划代码) where the number was issued.
    public var regionCode: String { String(value.prefix(6)) }

    /// First four and last four characters, the rest hidden: "1301**********123X".
    public var masked: String {
        String(value.prefix(4)) + String(repeating: "*", count: 10) + String(value.suffix(4))
    }

    public var description: String { masked }

    /// Validates a resident ID as typed: surrounding spaces are ignored, full-width digits and a
    /// lower-case x are accepted, and the stored form is upper case.
    /// - Parameter today: the current date in Shanghai; a birth date after it is refused.
    public init(_ text: String, today: CivilDate, field: String = "residentID") throws(ValidationError) {
        try self.init(validating: text, today: today, field: field)
    }

    /// Makes a valid ID from its parts, computing the check character: for demo data and tests.
    /// - Parameter sequence: 0...999, the 顺序码; odd means male, even female.
    public static func make(regionCode: String, birthDate: CivilDate, sequence: Int) throws(ValidationError) -> ResidentID {
        let regionScalars = Array(regionCode.unicodeScalars)
        guard regionScalars.count == 6, regionScalars.allSatisfy(InputText.isASCIIDigit) else {
            throw ValidationError(
                field: "regionCode", code: "resident_id.region",
                zh: "行政区划代码应为 6 位数字，例如石家庄市长安区为 130102。",
                en: "The region code must be 6 digits, for example 130102 for Chang'an District, Shijiazhuang.")
        }
        guard (0...999).contains(sequence) else {
            throw ValidationError(
                field: "sequence", code: "resident_id.sequence",
                zh: "顺序码应在 0 至 999 之间（末位奇数为男、偶数为女），请重新选择。",
                en: "The sequence must be between 0 and 999 (an odd last digit means male, even female); please choose another.")
        }
        let birth = "\(InputText.padded(birthDate.year, width: 4))\(InputText.padded(birthDate.month, width: 2))\(InputText.padded(birthDate.day, width: 2))"
        let first17 = regionCode + birth + InputText.padded(sequence, width: 3)
        let check = checkCharacter(forFirst17: first17) ?? "?"
        return try ResidentID(validating: first17 + String(check), today: nil, field: "residentID")
    }

    /// ISO 7064 MOD 11-2 weights for the first 17 digits (2^(18-i) mod 11).
    public static let checkWeights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    /// Check character for each remainder of the weighted sum modulo 11.
    public static let checkCharacters: [Character] = Array("10X98765432")

    /// The check character for 17 ASCII digits, or nil if the input is anything else.
    public static func checkCharacter(forFirst17 digits: String) -> Character? {
        let values = digits.unicodeScalars.compactMap(InputText.digitValue)
        guard values.count == 17, digits.unicodeScalars.count == 17 else { return nil }
        let sum = zip(values, checkWeights).reduce(0) { $0 + $1.0 * $1.1 }
        return checkCharacters[sum % 11]
    }

    /// - Parameter today: nil skips the "not in the future" rule; used when decoding a stored ID,
    ///   which was checked against the day it was entered, and by `make`.
    init(validating text: String, today: CivilDate?, field: String) throws(ValidationError) {
        let normalised = InputText.trimmed(InputText.foldingFullWidth(text)).uppercased()
        guard !normalised.isEmpty else {
            throw ValidationError(
                field: field, code: "resident_id.empty",
                zh: "身份证号不能为空，请填写 18 位居民身份证号。",
                en: "The resident ID number is empty; please enter the 18-character resident ID.")
        }
        guard normalised.count == 18 else {
            throw ValidationError(
                field: field, code: "resident_id.length",
                zh: "身份证号应为 18 位，当前为 \(normalised.count) 位；15 位旧号码已停用，请填写 18 位居民身份证号。",
                en: "A resident ID has 18 characters, this one has \(normalised.count); old 15-digit numbers are no longer valid, please enter the 18-character ID.")
        }
        let scalars = Array(normalised.unicodeScalars)
        let digits = scalars.prefix(17).compactMap(InputText.digitValue)
        guard scalars.count == 18, digits.count == 17,
              InputText.isASCIIDigit(scalars[17]) || scalars[17] == "X"
        else {
            throw ValidationError(
                field: field, code: "resident_id.characters",
                zh: "身份证号前 17 位只能是数字，最后一位是数字或字母 X，请删除其他字符后重试。",
                en: "The first 17 characters of a resident ID must be digits and the last a digit or the letter X; please remove any other characters.")
        }
        let first17 = String(String.UnicodeScalarView(scalars.prefix(17)))
        guard Self.checkCharacter(forFirst17: first17) == Character(scalars[17]) else {
            throw ValidationError(
                field: field, code: "resident_id.check_digit",
                zh: "身份证号校验位不符，号码中可能有输错的数字，请对照身份证逐位核对。",
                en: "The check character of the resident ID does not match its digits, so a digit was probably mistyped; please compare it with the card digit by digit.")
        }
        guard (1...8).contains(digits[0]) else {
            throw ValidationError(
                field: field, code: "resident_id.region",
                zh: "身份证号前 6 位行政区划代码无效（首位应为 1 至 8），请核对后重新填写。",
                en: "The region code (first 6 digits) of the resident ID is not valid (the first digit must be 1 to 8); please check it and enter it again.")
        }
        let birthDate = try Self.birthDate(from: digits[6..<14], today: today, field: field)
        self.value = normalised
        self.birthDate = birthDate
        self.sex = digits[16] % 2 == 1 ? .male : .female
    }

    private static func birthDate(from digits: ArraySlice<Int>, today: CivilDate?, field: String) throws(ValidationError) -> CivilDate {
        func number(_ range: Range<Int>) -> Int {
            digits.dropFirst(range.lowerBound).prefix(range.count).reduce(0) { $0 * 10 + $1 }
        }
        let year = number(0..<4), month = number(4..<6), day = number(6..<8)
        let date: CivilDate
        do throws(ValidationError) {
            date = try CivilDate(year: year, month: month, day: day, field: field)
        } catch {
            throw ValidationError(
                field: field, code: "resident_id.birth_date.invalid",
                zh: "身份证号第 7 至 14 位的出生日期不是有效日期，请核对后重新填写。",
                en: "The birth date in the resident ID (characters 7 to 14) is not a real date; please check it and enter it again.")
        }
        guard year >= 1900 else {
            throw ValidationError(
                field: field, code: "resident_id.birth_date.before_1900",
                zh: "身份证号中的出生日期早于 1900 年，不可能有效，请核对后重新填写。",
                en: "The birth date in the resident ID is before 1900, which cannot be right; please check it and enter it again.")
        }
        if let today, date > today {
            throw ValidationError(
                field: field, code: "resident_id.birth_date.future",
                zh: "身份证号中的出生日期晚于今天（\(today)），请核对后重新填写。",
                en: "The birth date in the resident ID is after today (\(today)); please check it and enter it again.")
        }
        return date
    }
}

extension ResidentID {
    /// An ID read back from the store: re-checked except for the "not after today" rule, which
    /// was applied when it was entered.
    public init(stored text: String) throws(ValidationError) {
        try self.init(validating: text, today: nil, field: "residentID")
    }
}

extension ResidentID: Codable {
    /// A stored ID is re-checked except for the "not after today" rule, which was applied when
    /// it was entered and needs a date the decoder does not have.
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try ResidentID(stored: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}
