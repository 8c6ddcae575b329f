import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PKI
import SwiftASN1
import X509

/// A node's (or an admin's) TLS identity and the cluster trust anchor.
public struct MeshCredentials: Sendable {
    /// The own certificate first, then any intermediates.
    public let certificateChain: [NIOSSLCertificate]
    public let privateKey: NIOSSLPrivateKey
    /// The cluster CA certificate(s), for NIOSSL's trust roots and CA-name list.
    public let caCertificates: [NIOSSLCertificate]
    /// The same CA for swift-certificates' `Verifier`, which does the real checking.
    public let trust: ClusterTrust

    public init(certificateChainPEM: String, privateKeyPEM: String, caCertificatePEM: String) throws {
        self.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8))
        self.privateKey = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        self.caCertificates = try NIOSSLCertificate.fromPEMBytes(Array(caCertificatePEM.utf8))
        self.trust = try ClusterTrust(rootsPEM: caCertificatePEM)
        guard !self.certificateChain.isEmpty else {
            throw PKIError(.malformedPEM, zh: "证书文件中没有证书", en: "the certificate file holds no certificate")
        }
    }

    /// Loads `node.crt`, `node.key` and `ca.crt` (or `admin.*`) from a folder made by `clinicmesh certs`.
    public static func load(directory: String, kind: ClusterIdentity.Kind = .node) throws -> MeshCredentials {
        let (certificateName, keyName) = PKIFiles.fileNames(for: kind)
        return try MeshCredentials(
            certificateChainPEM: PKIFiles.read(PKIFiles.path(directory, certificateName), zh: "证书", en: "certificate"),
            privateKeyPEM: PKIFiles.read(PKIFiles.path(directory, keyName), zh: "私钥", en: "private key"),
            caCertificatePEM: PKIFiles.read(PKIFiles.path(directory, PKIFiles.caCertificate), zh: "CA 证书", en: "CA certificate"))
    }
}

/// Builds NIOSSL contexts and handlers for the mesh: TLS 1.3 only, the cluster CA as the only
/// trust root, and a custom verification callback that replaces BoringSSL's checks with
/// swift-certificates' `Verifier` (RFC 5280 + the cluster policy) and then asks membership.
public struct MeshTLS: Sendable {
    public let credentials: MeshCredentials
    public let membership: any MembershipView
    /// The kind of peer this endpoint accepts: `.node` on the mesh, `.admin` on the admin API.
    public let accepting: ClusterIdentity.Kind
    public let now: @Sendable () -> Date
    let serverContext: NIOSSLContext
    let clientContext: NIOSSLContext

    public init(
        credentials: MeshCredentials,
        membership: any MembershipView,
        accepting: ClusterIdentity.Kind = .node,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.credentials = credentials
        self.membership = membership
        self.accepting = accepting
        self.now = now

        let chain = credentials.certificateChain.map { NIOSSLCertificateSource.certificate($0) }
        var server = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain,
            privateKey: .privateKey(credentials.privateKey),
            trustRoots: .certificates(credentials.caCertificates))
        server.minimumTLSVersion = .tlsv13
        server.maximumTLSVersion = .tlsv13
        server.certificateVerification = .noHostnameVerification  // a client certificate is required
        server.sendCANameList = true
        self.serverContext = try NIOSSLContext(configuration: server)

        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv13
        client.maximumTLSVersion = .tlsv13
        client.trustRoots = .certificates(credentials.caCertificates)
        client.certificateChain = chain
        client.privateKey = .privateKey(credentials.privateKey)
        // Names are checked by the cluster policy (node id in the URI SAN), not by hostname.
        client.certificateVerification = .noHostnameVerification
        self.clientContext = try NIOSSLContext(configuration: client)
    }

    /// A server-side TLS handler for one accepted connection.
    func makeServerHandler(record: PeerRecord, logger: Logger) -> NIOSSLServerHandler {
        NIOSSLServerHandler(
            context: self.serverContext,
            customVerificationCallbackWithMetadata: self.verificationCallback(
                peerRole: .client, expectedNodeID: nil, record: record, logger: logger))
    }

    /// A client-side TLS handler; `expectedNodeID`, if given, must be the node the server's certificate names.
    func makeClientHandler(expectedNodeID: String?, record: PeerRecord, logger: Logger) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(
            context: self.clientContext,
            serverHostname: nil,
            customVerificationCallbackWithMetadata: self.verificationCallback(
                peerRole: .server, expectedNodeID: expectedNodeID, record: record, logger: logger))
    }

    /// Runs the whole check for one handshake. Public so that the admin API and tests can use the
    /// same logic: chain to the cluster CA at `now()`, cluster policy, expected id, membership.
    public func verifyPeer(chain: [Certificate], peerRole: TLSRole, expectedNodeID: String?) async throws(PeerRefusal) -> VerifiedPeer {
        let peer = try await self.credentials.trust.verify(chain: chain, expecting: self.accepting, role: peerRole, at: self.now())
        if let expectedNodeID, peer.identity != .node(id: expectedNodeID) {
            throw PeerRefusal("对端是 \(peer.identity)，而不是预期的节点 \(expectedNodeID) / the peer is \(peer.identity), not the expected node \(expectedNodeID)")
        }
        if case .node(let id) = peer.identity, !self.membership.admits(nodeID: id, serial: peer.serial) {
            throw PeerRefusal(
                "节点 \(id) 的证书序列号 \(peer.serial) 不在集群成员中（未知节点或序列号不符）/ node \(id) with certificate serial \(peer.serial) is not in the membership (unknown node or wrong serial)")
        }
        return peer
    }

    private func verificationCallback(
        peerRole: TLSRole, expectedNodeID: String?, record: PeerRecord, logger: Logger
    ) -> NIOSSLCustomVerificationCallbackWithMetadata {
        { [self] certificates, promise in
            promise.completeWithTask {
                let chain: [Certificate]
                do {
                    chain = try certificates.map { try Certificate(derEncoded: $0.toDERBytes()) }
                } catch {
                    let refusal = PeerRefusal("对端证书无法解析 / the peer certificate does not parse: \(error)")
                    record.refuse(refusal)
                    logger.warning("拒绝对端 / peer refused", metadata: ["mesh.refusal": "\(refusal)"])
                    return .failed
                }
                do throws(PeerRefusal) {
                    let peer = try await self.verifyPeer(chain: chain, peerRole: peerRole, expectedNodeID: expectedNodeID)
                    record.accept(peer)
                    // NIOSSL wants the validated path to a trusted root, as the Verifier built it.
                    do {
                        let validated = try peer.validatedChain.map { certificate in
                            var serializer = DER.Serializer()
                            try serializer.serialize(certificate)
                            return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
                        }
                        return .certificateVerified(VerificationMetadata(NIOSSL.ValidatedCertificateChain(validated)))
                    } catch {
                        return .certificateVerified(VerificationMetadata(nil))
                    }
                } catch {
                    record.refuse(error)
                    logger.warning(
                        "拒绝对端 / peer refused",
                        metadata: [
                            "mesh.refusal": "\(error)",
                            "mesh.peer.subject": "\(chain.first.map { "\($0.subject)" } ?? "none")",
                        ])
                    return .failed
                }
            }
        }
    }
}

/// What the verification callback learned about one connection's peer, for the Hello check.
final class PeerRecord: Sendable {
    enum State: Sendable {
        case pending
        case accepted(VerifiedPeer)
        case refused(PeerRefusal)
    }

    private let state = NIOLockedValueBox<State>(.pending)

    func accept(_ peer: VerifiedPeer) { self.state.withLockedValue { $0 = .accepted(peer) } }
    func refuse(_ refusal: PeerRefusal) { self.state.withLockedValue { $0 = .refused(refusal) } }
    var current: State { self.state.withLockedValue { $0 } }
}
