import Foundation
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// A peer certificate that passed verification, and what it says about the peer.
///
/// The verifier does not know the cluster's membership: the caller checks `identity` and `serial`
/// against its membership view (`admits(nodeID:serial:)` in the mesh).
public struct VerifiedPeer: Sendable, Hashable, CustomStringConvertible {
    public let identity: ClusterIdentity
    /// The certificate serial in the cluster's form (`SerialFormat`).
    public let serial: String
    /// The subject OU: the department of a node, `admin` for an admin certificate, or nil.
    public let department: String?
    public let notValidAfter: Date
    public let certificate: Certificate
    /// The chain the verifier built: this certificate first, the cluster CA last.
    public internal(set) var validatedChain: [Certificate]

    public var description: String { "\(self.identity) serial \(self.serial)" }
}

/// How the peer used its certificate in the TLS handshake: a TLS client must carry clientAuth,
/// a TLS server serverAuth.
public enum TLSRole: String, Sendable, Hashable {
    case client, server
}

/// Why a peer certificate was refused, in words for the log.
public struct PeerRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public let reasons: [String]
    public init(_ reasons: [String]) { self.reasons = reasons }
    public init(_ reason: String) { self.reasons = [reason] }
    public var description: String { self.reasons.joined(separator: "; ") }
}

/// The cluster's trust anchor and the policy every handshake runs, on both sides.
///
/// Chain validation uses swift-certificates' `Verifier` with the cluster CA certificate(s) as the
/// only roots and `RFC5280Policy` at an injected time (validity period, basic constraints, name
/// constraints), plus `ClusterPeerPolicy` on the leaf: not a CA, digitalSignature, the extended key
/// usage for its TLS role, exactly one `clinicmesh://` URI SAN naming the expected kind of peer,
/// and for nodes a subject CN equal to the node id.
public struct ClusterTrust: Sendable {
    public let roots: [Certificate]

    public init(roots: [Certificate]) throws {
        guard !roots.isEmpty else {
            throw PKIError(
                .fileMissing,
                zh: "没有 CA 证书：节点至少需要集群 CA 的证书（ca.crt）才能验证对端。",
                en: "No CA certificate: a node needs at least the cluster CA's certificate (ca.crt) to verify its peers.")
        }
        for root in roots {
            guard case .isCertificateAuthority = (try? root.extensions.basicConstraints) ?? .notCertificateAuthority else {
                throw PKIError(
                    .notACertificateAuthority,
                    zh: "信任根“\(root.subject)”不是 CA 证书。请使用集群 CA 的 ca.crt。",
                    en: "Trust root \"\(root.subject)\" is not a CA certificate: use the cluster CA's ca.crt.")
            }
        }
        self.roots = roots
    }

    /// Reads every certificate in a PEM bundle (normally just the cluster CA).
    public init(rootsPEM: String, source: String = "ca.crt") throws {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: rootsPEM)
            self = try ClusterTrust(roots: documents.map { try Certificate(pemDocument: $0) })
        } catch let error as PKIError {
            throw error
        } catch {
            throw PKIError(
                .malformedPEM,
                zh: "\(source) 不是有效的 PEM 证书文件。", en: "\(source) is not a valid PEM certificate file.",
                subject: source, cause: error)
        }
    }

    public static func load(caCertificateFile path: String) throws -> ClusterTrust {
        try ClusterTrust(rootsPEM: PKIFiles.read(path, zh: "CA 证书", en: "CA certificate"), source: path)
    }

    /// Verifies a peer's certificate chain (leaf first, as TLS presents it).
    /// - Parameters:
    ///   - expecting: the kind of peer this endpoint serves (`.node` on the mesh, `.admin` on the admin API).
    ///   - role: how the peer acts in the TLS handshake.
    ///   - time: the time to check validity periods against (injected; the transport passes its clock).
    /// - Throws: `PeerRefusal` with every reason found.
    public func verify(
        chain: [Certificate], expecting: ClusterIdentity.Kind, role: TLSRole, at time: Date
    ) async throws(PeerRefusal) -> VerifiedPeer {
        guard let leaf = chain.first else {
            throw PeerRefusal(["对端未出示证书 / the peer presented no certificate"])
        }
        var verifier = Verifier(rootCertificates: CertificateStore(self.roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            ClusterPeerPolicy(expecting: expecting, role: role)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        switch result {
        case .validCertificate(let validated):
            do throws(PeerRefusal) {
                var peer = try Self.describe(leaf: leaf, expecting: expecting, role: role)
                peer.validatedChain = Array(validated)
                return peer
            } catch {
                throw error  // unreachable in practice: the policy ran the same checks
            }
        case .couldNotValidate(let failures):
            if failures.isEmpty {
                throw PeerRefusal([
                    "证书链无法连到集群 CA（可能来自别的 CA）/ no chain to the cluster CA (certificate from another CA?)"
                        + " subject=\(leaf.subject) issuer=\(leaf.issuer)"
                ])
            }
            var reasons: [String] = []
            for failure in failures where !reasons.contains(failure.policyFailureReason.description) {
                reasons.append(failure.policyFailureReason.description)
            }
            throw PeerRefusal(reasons)
        }
    }

    /// Checks the project policy on a leaf certificate and extracts who it speaks for.
    /// Used by `ClusterPeerPolicy` and after validation; throws a reason in words.
    public static func describe(
        leaf: Certificate, expecting: ClusterIdentity.Kind, role: TLSRole
    ) throws(PeerRefusal) -> VerifiedPeer {
        let extensions = leaf.extensions
        let basicConstraints: BasicConstraints?
        let keyUsage: KeyUsage?
        let extendedKeyUsage: ExtendedKeyUsage?
        let subjectAlternativeNames: SubjectAlternativeNames?
        do {
            basicConstraints = try extensions.basicConstraints
            keyUsage = try extensions.keyUsage
            extendedKeyUsage = try extensions.extendedKeyUsage
            subjectAlternativeNames = try extensions.subjectAlternativeNames
        } catch {
            throw PeerRefusal("证书扩展无法解析 / a certificate extension cannot be parsed: \(error)")
        }
        if case .isCertificateAuthority = basicConstraints {
            throw PeerRefusal("对端证书是 CA 证书，不能作为节点或管理员证书 / the peer certificate is a CA certificate, not a node or admin certificate")
        }
        guard let keyUsage, keyUsage.digitalSignature else {
            throw PeerRefusal("证书缺少 keyUsage digitalSignature / the certificate lacks key usage digitalSignature")
        }
        let neededUsage: ExtendedKeyUsage.Usage = role == .client ? .clientAuth : .serverAuth
        guard let extendedKeyUsage, extendedKeyUsage.contains(neededUsage) else {
            throw PeerRefusal("证书缺少 extendedKeyUsage \(neededUsage)（作为 TLS \(role.rawValue) 需要）/ the certificate lacks extended key usage \(neededUsage), needed as a TLS \(role.rawValue)")
        }
        var identities: [ClusterIdentity] = []
        var malformed: [String] = []
        for name in subjectAlternativeNames ?? SubjectAlternativeNames() {
            guard case .uniformResourceIdentifier(let uri) = name else { continue }
            guard uri.lowercased().hasPrefix(ClusterIdentity.uriScheme + ":") else { continue }
            if let identity = ClusterIdentity(uri: uri) { identities.append(identity) } else { malformed.append(uri) }
        }
        guard malformed.isEmpty else {
            throw PeerRefusal("证书含无效的 clinicmesh URI / the certificate has malformed clinicmesh URIs: \(malformed)")
        }
        guard identities.count == 1, let identity = identities.first else {
            throw PeerRefusal(identities.isEmpty
                ? "证书没有 clinicmesh:// URI SAN，不是集群证书 / the certificate has no clinicmesh:// URI SAN, so it is not a cluster certificate"
                : "证书含多个身份 / the certificate names more than one identity: \(identities)")
        }
        guard identity.kind == expecting else {
            throw PeerRefusal("此处只接受\(expecting == .node ? "节点" : "管理员")证书，对端出示的是 \(identity) / only \(expecting.rawValue) certificates are accepted here, the peer presented \(identity)")
        }
        let commonName = leaf.subject.firstValue(of: .RDNAttributeType.commonName)
        if case .node(let id) = identity, commonName != id {
            throw PeerRefusal("节点证书的 CN（\(commonName ?? "无")）与 URI 中的节点 ID（\(id)）不一致 / the node certificate's CN (\(commonName ?? "none")) differs from the node id in its URI (\(id))")
        }
        return VerifiedPeer(
            identity: identity,
            serial: SerialFormat.hex(leaf.serialNumber),
            department: leaf.subject.firstValue(of: .RDNAttributeType.organizationalUnitName),
            notValidAfter: leaf.notValidAfter,
            certificate: leaf,
            validatedChain: [leaf])
    }
}

/// The project's own verifier policy on the leaf; see `ClusterTrust.describe`.
public struct ClusterPeerPolicy: VerifierPolicy, Sendable {
    public let expecting: ClusterIdentity.Kind
    public let role: TLSRole

    public init(expecting: ClusterIdentity.Kind, role: TLSRole) {
        self.expecting = expecting
        self.role = role
    }

    public let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
        .X509ExtensionID.keyUsage,
        .X509ExtensionID.extendedKeyUsage,
        .X509ExtensionID.subjectAlternativeName,
    ]

    public func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        do {
            _ = try ClusterTrust.describe(leaf: chain.leaf, expecting: self.expecting, role: self.role)
            return .meetsPolicy
        } catch {
            return .failsToMeetPolicy(reason: error.description)
        }
    }
}
