/// An error from the cluster PKI: what failed, on which input, and what to do about it.
///
/// Every message a person reads is in Simplified Chinese first, then English (DESIGN.md).
/// Errors are an extensible struct with a private code, in the style of swift-nio's
/// `FileSystemError`: callers compare codes through the static members, never by parsing text.
public struct PKIError: Error, CustomStringConvertible, Sendable, Hashable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidName, invalidHost, invalidValidity
            case fileExists, fileMissing, fileUnreadable, fileUnwritable
            case malformedPEM, notACertificateAuthority, keyDoesNotMatchCertificate, unsupportedKey
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A node id, admin name or department is empty, too long or has characters outside the allowed set.
        public static let invalidName = Code(.invalidName)
        /// A `--host` value is neither an IP address nor a DNS name.
        public static let invalidHost = Code(.invalidHost)
        /// A validity period is zero, negative or absurdly long.
        public static let invalidValidity = Code(.invalidValidity)
        /// A file would be overwritten and overwriting was not asked for.
        public static let fileExists = Code(.fileExists)
        /// A file that must exist does not.
        public static let fileMissing = Code(.fileMissing)
        /// A file exists but could not be read.
        public static let fileUnreadable = Code(.fileUnreadable)
        /// A file or folder could not be created or written.
        public static let fileUnwritable = Code(.fileUnwritable)
        /// A file is not the PEM certificate or key it should be.
        public static let malformedPEM = Code(.malformedPEM)
        /// The certificate given as the CA is not a CA certificate.
        public static let notACertificateAuthority = Code(.notACertificateAuthority)
        /// The CA private key does not belong to the CA certificate.
        public static let keyDoesNotMatchCertificate = Code(.keyDoesNotMatchCertificate)
        /// A key of a kind the cluster does not use (for example Ed25519 as a CA key).
        public static let unsupportedKey = Code(.unsupportedKey)

        public var description: String { "\(self.value)" }
    }

    /// What went wrong, machine-readable.
    public let code: Code
    /// The human-readable message: Chinese first, then English; says what to do.
    public let message: String
    /// The file, name or value the error is about, if any.
    public let subject: String?
    /// The underlying error, if any.
    public let cause: String?
    public let file: String
    public let line: Int

    public init(
        _ code: Code, _ message: String, subject: String? = nil, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.subject = subject
        self.cause = cause.map { String(describing: $0) }
        self.file = file
        self.line = line
    }

    public var description: String {
        var text = self.message
        if let cause { text += "\n  原因 / cause: \(cause)" }
        return text
    }

    public static func == (lhs: PKIError, rhs: PKIError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.subject == rhs.subject
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.code)
        hasher.combine(self.message)
    }
}
