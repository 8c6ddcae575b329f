/// A value that was refused: which field, a stable machine code, and, in Chinese and English,
/// what was wrong and what to do about it.
///
/// Messages never repeat a rejected resident ID, mobile number or name, because errors end up in
/// logs and logs must not carry personal data in clear.
public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input field, spelled like the Swift property it fills (`residentID`, `birthDate`, ...).
    public var field: String
    /// Stable machine-readable code such as `resident_id.check_digit`; clients switch on this.
    public var code: String
    /// Simplified Chinese message, shown first.
    public var zh: String
    /// English message.
    public var en: String

    public init(field: String, code: String, zh: String, en: String) {
        self.field = field
        self.code = code
        self.zh = zh
        self.en = en
    }

    /// Chinese first, then English, then the field and code for whoever reads the log.
    public var description: String {
        "\(zh) / \(en) [\(field): \(code)]"
    }
}
