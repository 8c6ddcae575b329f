import ClinicErrors

/// An error from the cluster PKI: what failed, on which input (the `subject`: a file, a name, a
/// host), and what to do about it, Chinese first, then English (DESIGN.md). Callers compare
/// `code` with the cases below, never by parsing text.
public typealias PKIError = ClinicError<PKIErrorCode>

public enum PKIErrorCode: String, ClinicErrorCode {
    /// A node id, admin name or department is empty, too long or has characters outside the allowed set.
    case invalidName = "pki.invalid_name"
    /// A `--host` value is neither an IP address nor a DNS name.
    case invalidHost = "pki.invalid_host"
    /// A validity period is zero, negative or absurdly long.
    case invalidValidity = "pki.invalid_validity"
    /// A file would be overwritten and overwriting was not asked for.
    case fileExists = "pki.file_exists"
    /// A file that must exist does not.
    case fileMissing = "pki.file_missing"
    /// A file exists but could not be read.
    case fileUnreadable = "pki.file_unreadable"
    /// A file or folder could not be created or written.
    case fileUnwritable = "pki.file_unwritable"
    /// A file is not the PEM certificate or key it should be.
    case malformedPEM = "pki.malformed_pem"
    /// The certificate given as the CA is not a CA certificate.
    case notACertificateAuthority = "pki.not_a_ca"
    /// The CA private key does not belong to the CA certificate.
    case keyDoesNotMatchCertificate = "pki.key_does_not_match_certificate"
    /// A key of a kind the cluster does not use (for example Ed25519 as a CA key).
    case unsupportedKey = "pki.unsupported_key"
}
