import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A certificate with its freshly made private key, as the CA hands it out.
public struct IssuedCertificate: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey
    public let identity: ClusterIdentity
    /// The serial in the cluster's form (see `SerialFormat`), to record in membership.
    public var serial: String { SerialFormat.hex(self.certificate.serialNumber) }

    public func certificatePEM() throws -> String { try self.certificate.serializeAsPEM().pemString }
    public func privateKeyPEM() throws -> String { try self.privateKey.serializeAsPEM().pemString }
}

/// What a node certificate says about its node.
public struct NodeCertificateRequest: Sendable {
    public var nodeID: String
    public var department: String
    /// DNS names and IP addresses the node is reached at; each becomes a DNS or IP SAN.
    public var hosts: [String]
    public var validity: TimeInterval

    public init(nodeID: String, department: String, hosts: [String], validity: TimeInterval = 365 * 86_400) {
        self.nodeID = nodeID
        self.department = department
        self.hosts = hosts
        self.validity = validity
    }
}

/// The cluster certificate authority: its certificate and, on the admin's machine only, its key.
///
/// A node never holds a `ClusterCA`; it holds the CA *certificate* (`ClusterTrust`) to verify peers.
public struct ClusterCA: Sendable {
    public let certificate: Certificate
    let privateKey: Certificate.PrivateKey

    public static let organization = "ClinicMesh"
    /// Certificates are back-dated this much so that a node whose clock is a little behind the
    /// admin's still accepts a certificate issued a moment ago.
    public static let backdating: TimeInterval = 300

    /// Makes a new self-signed P-256 CA.
    public static func create(
        commonName: String = "ClinicMesh Cluster CA",
        validity: TimeInterval = 10 * 365 * 86_400,
        now: Date = Date()
    ) throws -> ClusterCA {
        try Self.checkValidity(validity)
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            OrganizationName(Self.organization)
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: privateKey.publicKey)[...])
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: SerialFormat.random(),
            publicKey: privateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-Self.backdating),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: privateKey
        )
        return ClusterCA(certificate: certificate, privateKey: privateKey)
    }

    /// Loads a CA from its certificate and key: either one `clinicmesh certs init-ca` made or a
    /// hospital's own CA made with openssl (P-256, P-384 or RSA key; PKCS#8, SEC1 or PKCS#1 PEM).
    public init(certificatePEM: String, privateKeyPEM: String, source: String = "CA") throws {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw PKIError(
                .malformedPEM,
                zh: "\(source) 的 CA 证书不是有效的 PEM 证书。请检查文件是否完整，是否为“-----BEGIN CERTIFICATE-----”开头。",
                en: "The CA certificate at \(source) is not a valid PEM certificate: check that the file is complete and starts with -----BEGIN CERTIFICATE-----.",
                subject: source, cause: error)
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw PKIError(
                .malformedPEM,
                zh: "\(source) 的 CA 私钥无法读取（须为未加密的 PEM：PKCS#8、SEC1 或 PKCS#1）。若私钥有口令，请先用 openssl 解密到一个只有管理员可读的文件。",
                en: "The CA private key at \(source) cannot be read (it must be an unencrypted PEM key: PKCS#8, SEC1 or PKCS#1). If it has a passphrase, decrypt it with openssl into a file only admins can read.",
                subject: source, cause: error)
        }
        guard case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority else {
            throw PKIError(
                .notACertificateAuthority,
                zh: "\(source) 的证书不是 CA 证书（缺少 basicConstraints CA:TRUE）。请使用集群 CA 的证书。",
                en: "The certificate at \(source) is not a CA certificate (no basicConstraints CA:TRUE): use the cluster CA's certificate.",
                subject: source)
        }
        guard key.publicKey == certificate.publicKey else {
            throw PKIError(
                .keyDoesNotMatchCertificate,
                zh: "\(source) 的 CA 私钥与 CA 证书不匹配。请确认两个文件来自同一个 CA。",
                en: "The CA private key at \(source) does not belong to the CA certificate: make sure both files come from the same CA.",
                subject: source)
        }
        self.init(certificate: certificate, privateKey: key)
    }

    init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    public func certificatePEM() throws -> String { try self.certificate.serializeAsPEM().pemString }
    public func privateKeyPEM() throws -> String { try self.privateKey.serializeAsPEM().pemString }

    /// Issues a node certificate with a new P-256 key: CN = node id, OU = department,
    /// URI SAN `clinicmesh://node/<id>` plus a DNS or IP SAN per host; digitalSignature;
    /// serverAuth + clientAuth; random 128-bit serial.
    public func issueNode(_ request: NodeCertificateRequest, now: Date = Date()) throws -> IssuedCertificate {
        try ClusterIdentity.validateName(request.nodeID, what: "node id", whatChinese: "节点 ID")
        try Self.validateDepartment(request.department)
        try Self.checkValidity(request.validity)
        var sans: [GeneralName] = [.uniformResourceIdentifier(ClusterIdentity.node(id: request.nodeID).uri)]
        for host in request.hosts {
            sans.append(try Self.generalName(forHost: host))
        }
        let subject = try DistinguishedName {
            OrganizationName(Self.organization)
            OrganizationalUnitName(request.department)
            CommonName(request.nodeID)
        }
        return try self.issue(
            identity: .node(id: request.nodeID), subject: subject, sans: sans,
            usages: [.serverAuth, .clientAuth], validity: request.validity, now: now)
    }

    /// Issues an admin certificate: CN = name, URI SAN `clinicmesh://admin/<name>`, clientAuth only.
    public func issueAdmin(name: String, validity: TimeInterval = 90 * 86_400, now: Date = Date()) throws -> IssuedCertificate {
        try ClusterIdentity.validateName(name, what: "admin name", whatChinese: "管理员名称")
        try Self.checkValidity(validity)
        let subject = try DistinguishedName {
            OrganizationName(Self.organization)
            OrganizationalUnitName("admin")
            CommonName(name)
        }
        return try self.issue(
            identity: .admin(name: name), subject: subject,
            sans: [.uniformResourceIdentifier(ClusterIdentity.admin(name: name).uri)],
            usages: [.clientAuth], validity: validity, now: now)
    }

    /// The general-purpose issuing step, exposed so tests can make deliberately odd certificates
    /// (expired, not yet valid, wrong usages). `notValidBefore` defaults to `now` minus the back-dating.
    public func issue(
        identity: ClusterIdentity,
        subject: DistinguishedName,
        sans: [GeneralName],
        usages: [ExtendedKeyUsage.Usage],
        validity: TimeInterval,
        now: Date,
        notValidBefore: Date? = nil
    ) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        var issuerKeyID = Self.keyIdentifier(of: self.certificate.publicKey)[...]
        if let caKeyIdentifier = try? self.certificate.extensions.subjectKeyIdentifier {
            issuerKeyID = caKeyIdentifier.keyIdentifier
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage(usages)
            SubjectAlternativeNames(sans)
            SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: privateKey.publicKey)[...])
            AuthorityKeyIdentifier(keyIdentifier: issuerKeyID)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: SerialFormat.random(),
            publicKey: privateKey.publicKey,
            notValidBefore: notValidBefore ?? now.addingTimeInterval(-Self.backdating),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: self.certificate.subject,
            subject: subject,
            extensions: extensions,
            issuerPrivateKey: self.privateKey
        )
        return IssuedCertificate(certificate: certificate, privateKey: privateKey, identity: identity)
    }

    // MARK: - Checks and helpers

    static func checkValidity(_ validity: TimeInterval) throws {
        guard validity.isFinite, validity >= 60, validity <= 30 * 365 * 86_400 else {
            throw PKIError(
                .invalidValidity,
                zh: "有效期 \(validity) 秒无效：须在 1 分钟到 30 年之间。",
                en: "Invalid validity of \(validity) seconds: it must be between one minute and 30 years.")
        }
    }

    static func validateDepartment(_ department: String) throws {
        let trimmed = department.trimmingCharacters(in: .whitespacesAndNewlines)
        let hasControl = department.unicodeScalars.contains { $0.properties.generalCategory == .control }
        guard !trimmed.isEmpty, trimmed == department, department.count <= 64, !hasControl else {
            throw PKIError(
                .invalidName,
                zh: "科室名称“\(department)”无效：不能为空、不能有首尾空白或控制字符，最多 64 个字符（例如“内科”）。",
                en: "Invalid department \"\(department)\": it must be non-empty, without leading/trailing blanks or control characters, at most 64 characters (e.g. 内科).",
                subject: department)
        }
    }

    /// A host becomes an IP SAN if it parses as IPv4 or IPv6, else a DNS SAN if it is a valid DNS name.
    public static func generalName(forHost host: String) throws -> GeneralName {
        if let bytes = Self.ipAddressBytes(host) {
            return .ipAddress(ASN1OctetString(contentBytes: bytes[...]))
        }
        let lowered = host.lowercased()
        guard Self.isValidDNSName(lowered) else {
            throw PKIError(
                .invalidHost,
                zh: "主机“\(host)”既不是 IP 地址也不是有效的域名。请给出节点被访问时用的地址，例如 10.1.2.3 或 neike.hospital.local。",
                en: "Host \"\(host)\" is neither an IP address nor a valid DNS name: give the address the node is reached at, e.g. 10.1.2.3 or neike.hospital.local.",
                subject: host)
        }
        return .dnsName(lowered)
    }

    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    static func isValidDNSName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...253).contains(bytes.count) else { return false }
        for label in bytes.split(separator: 0x2e, omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count) else { return false }
            guard label.first != 0x2d, label.last != 0x2d else { return false }
            for b in label {
                let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7a) || b == 0x2d
                if !ok { return false }
            }
        }
        return true
    }

    /// RFC 5280 §4.2.1.2-style key identifier: SHA-1 of the subjectPublicKey bits' DER is the classic
    /// method; any stable 160-bit digest of the public key serves, so this takes SHA-256 of the
    /// SubjectPublicKeyInfo and keeps 20 bytes.
    static func keyIdentifier(of publicKey: Certificate.PublicKey) -> [UInt8] {
        var serializer = DER.Serializer()
        try? serializer.serialize(publicKey)
        return Array(SHA256.hash(data: serializer.serializedBytes).prefix(20))
    }
}
