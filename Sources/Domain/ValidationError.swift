import ClinicErrors

/// A value that was refused: which field, a stable machine code, and, in Chinese and English,
/// what was wrong and what to do about it.
///
/// Messages never repeat a rejected resident ID, mobile number or name, because errors end up in
/// logs and logs must not carry personal data in clear.
///
/// The code is a plain string (`resident_id.check_digit`, `<resource>.status.transition`): the
/// rules make their codes, so there is no closed list of them. The field is the error's subject.
public typealias ValidationError = ClinicError<String>

extension ClinicError where Code == String {
    /// - Parameters:
    ///   - field: the input field, spelled like the Swift property it fills (`residentID`, `birthDate`, ...).
    ///   - code: stable machine-readable code such as `resident_id.check_digit`; clients switch on this.
    public init(field: String, code: String, zh: String, en: String, file: String = #fileID, line: Int = #line) {
        self.init(code, zh: zh, en: en, subject: field, file: file, line: line)
    }

    /// The input field the value was refused for.
    public var field: String { self.subject ?? "" }
}
