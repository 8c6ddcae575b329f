import Foundation

/// 中国大陆手机号: 11 digits matching 1[3-9]\d{9}.
///
/// `description` is the masked form, so interpolating a number into a log line does not leak it.
public struct MobileNumber: Hashable, Sendable, CustomStringConvertible {
    /// The normalised 11 digits, no prefix or separators.
    public let digits: String

    /// "138****5678": for logs and screens that only need to recognise the number.
    public var masked: String {
        String(digits.prefix(3)) + "****" + String(digits.suffix(4))
    }

    public var description: String { masked }

    /// Accepts the number as people write it: a +86 or 0086 prefix, spaces and hyphens, and
    /// full-width digits are tolerated; the stored form is the bare 11 digits.
    public init(_ text: String, field: String = "mobile") throws(ValidationError) {
        var compact = String.UnicodeScalarView()
        for scalar in InputText.foldingFullWidth(text).unicodeScalars
        where !CharacterSet.whitespacesAndNewlines.contains(scalar) && scalar != "-" {
            compact.append(scalar)
        }
        var number = String(compact)
        guard !number.isEmpty else {
            throw ValidationError(
                field: field, code: "mobile.empty",
                zh: "手机号不能为空，请填写 11 位手机号。",
                en: "The mobile number is empty; please enter the 11-digit mobile number.")
        }
        if number.hasPrefix("+86") {
            number.removeFirst(3)
        } else if number.hasPrefix("0086") {
            number.removeFirst(4)
        } else if number.hasPrefix("+") || (number.hasPrefix("00") && number.count > 11) {
            throw ValidationError(
                field: field, code: "mobile.country_code",
                zh: "仅支持中国大陆手机号（+86），请填写大陆手机号。",
                en: "Only mainland China mobile numbers (+86) are accepted; please enter a mainland number.")
        }
        guard number.unicodeScalars.allSatisfy(InputText.isASCIIDigit) else {
            throw ValidationError(
                field: field, code: "mobile.characters",
                zh: "手机号只能包含数字（可带 +86 前缀、空格或连字符），请删除其他字符后重试。",
                en: "A mobile number may contain only digits (optionally a +86 prefix, spaces or hyphens); please remove any other characters.")
        }
        guard number.unicodeScalars.count == 11 else {
            throw ValidationError(
                field: field, code: "mobile.length",
                zh: "手机号应为 11 位数字，当前为 \(number.unicodeScalars.count) 位，请核对后重新填写。",
                en: "A mobile number has 11 digits, this one has \(number.unicodeScalars.count); please check it and enter it again.")
        }
        let scalars = Array(number.unicodeScalars)
        guard scalars[0] == "1", ("3"..."9").contains(scalars[1]) else {
            throw ValidationError(
                field: field, code: "mobile.prefix",
                zh: "手机号应以 13 至 19 开头（座机号码不能用于接收通知），请填写手机号。",
                en: "A mobile number starts with 13 to 19 (landline numbers cannot receive notifications); please enter a mobile number.")
        }
        self.digits = number
    }
}

extension MobileNumber: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try MobileNumber(text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(digits)
    }
}
