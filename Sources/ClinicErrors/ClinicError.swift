/// The one shape of an error in ClinicMesh: what failed as a stable machine code, what a person
/// reads in Simplified Chinese and in English (what failed, on which input, what to do), the input
/// it is about, the error underneath if any, and where in the source it was raised.
///
/// In the style of swift-nio's `FileSystemError`, one struct carries every error; each area names
/// its codes in its own enum, so that `NodeError`, `StoreError`, `PKIError` and `ValidationError`
/// stay distinct types to catch while sharing one shape:
///
/// ```swift
/// public enum StoreErrorCode: String, ClinicErrorCode { case rowMissing = "store.row_missing" }
/// public typealias StoreError = ClinicError<StoreErrorCode>
/// throw StoreError(.rowMissing, zh: "没有键为 \(key) 的行。", en: "there is no row with key \(key).")
/// ```
///
/// Two errors are equal when their code, messages and subject are; the cause and the source
/// location are for whoever reads the log, not part of what the error says.
public struct ClinicError<Code: ClinicErrorCode>: Error, CustomStringConvertible, Hashable {
    /// What failed, machine-readable: clients, tests and dashboards switch on `code.machineCode`.
    public let code: Code
    /// The message in Simplified Chinese, shown first.
    public let zh: String
    /// The same message in English.
    public let en: String
    /// The input the error is about (a field name, a file path), if any. Never personal data:
    /// errors end up in logs.
    public let subject: String?
    /// The error underneath, if this one wraps another.
    public let cause: (any Error)?
    /// Where the error was raised (`#fileID`, `#line`).
    public let file: String
    public let line: Int

    public init(
        _ code: Code, zh: String, en: String, subject: String? = nil, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.zh = zh
        self.en = en
        self.subject = subject
        self.cause = cause
        self.file = file
        self.line = line
    }

    /// Chinese on the first line, English on the second: for a person at a terminal.
    public var message: String { "\(self.zh)\n\(self.en)" }

    /// `message`, then the cause on its own line if there is one.
    public var messageWithCause: String {
        guard let cause else { return self.message }
        return "\(self.message)\n  原因 / cause: \(cause)"
    }

    /// One line for the log: Chinese, English, then the subject and code, then the cause if
    /// there is one.
    public var description: String {
        var text = "\(self.zh) / \(self.en) [\(self.subject.map { "\($0): " } ?? "")\(self.code.machineCode)]"
        if let cause { text += " (原因 / cause: \(cause))" }
        return text
    }

    /// `file:line` where the error was raised.
    public var location: String { "\(self.file):\(self.line)" }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.zh == rhs.zh && lhs.en == rhs.en && lhs.subject == rhs.subject
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.code)
        hasher.combine(self.zh)
        hasher.combine(self.en)
        hasher.combine(self.subject)
    }
}

/// A family of error codes: one enum (or open set of strings) per area, each value with a stable
/// dotted string such as `store.writes_refused` that never changes once clients depend on it.
public protocol ClinicErrorCode: Hashable, Sendable {
    var machineCode: String { get }
}

extension ClinicErrorCode where Self: RawRepresentable, RawValue == String {
    public var machineCode: String { self.rawValue }
}

/// Validation codes are an open family made by the rules themselves (`resident_id.check_digit`,
/// `appointment.status.transition`), so they stay plain strings.
extension String: ClinicErrorCode {
    public var machineCode: String { self }
}
