import Foundation
import Logging
import Mesh
import NIOCore
import PKI
import Services
import X509

/// Accepts any certificate serial of a node the cluster CA vouches for: used by the admin tool
/// when its config lists no serials for the node it asks (the node id is still checked).
public struct AnyClusterNode: MembershipView {
    public init() {}
    public func admits(nodeID: String, serial: String) -> Bool { true }
}

/// The admin side of the admin API.
public enum AdminClient {
    /// A client's connection ends are not news; failures reach the caller as errors.
    public static var quietLogger: Logger {
        var logger = Logger(label: "clinicmesh.admin")
        logger.logLevel = .error
        return logger
    }

    /// Sends one command to node `expectedNodeID` at `host:port` and returns its JSON answer.
    public static func request(
        host: String, port: Int, command: String, clusterID: String, credentials: MeshCredentials,
        expectedNodeID: String, serials: [String] = [],
        logger: Logger = AdminClient.quietLogger
    ) async throws -> [UInt8] {
        try await withSession(host: host, port: port, clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID,
                              serials: serials, logger: logger) { try await $0.request(command) }
    }

    /// One admin session with node `expectedNodeID` at `host:port`, kept open for many commands
    /// (the node answers a session's commands one at a time, in order): for a caller that sends
    /// thousands, a TLS handshake each would cost more than the commands.
    ///
    /// Symmetric with the node's side, which accepts only admin certificates of the cluster CA: the
    /// TLS handshake refuses a server whose certificate is not a node certificate of the cluster CA
    /// for `expectedNodeID`, or (when `serials` is not empty) whose serial is not one of them.
    public static func withSession<Result: Sendable>(
        host: String, port: Int, clusterID: String, credentials: MeshCredentials,
        expectedNodeID: String, serials: [String] = [],
        logger: Logger = AdminClient.quietLogger,
        _ body: (AdminSession) async throws -> Result
    ) async throws -> Result {
        guard let leaf = credentials.certificateChain.first,
              let certificate = try? Certificate(derEncoded: leaf.toDERBytes()) else {
            throw NodeError(.admin, zh: "管理员证书无法解析。", en: "the admin certificate does not parse.")
        }
        let own: VerifiedPeer
        do {
            own = try await credentials.trust.verify(chain: [certificate], expecting: .admin, role: .client, at: Date())
        } catch {
            throw NodeError(.admin, zh: "这不是本集群有效的管理员证书：\(error)", en: "this is not a valid admin certificate of the cluster: \(error)")
        }
        let membership: any MembershipView = serials.isEmpty ? AnyClusterNode() : StaticMembership([expectedNodeID: serials])
        let tls = try MeshTLS(credentials: credentials, membership: membership, accepting: .node)
        let configuration = MeshConfiguration(nodeID: own.identity.name, clusterID: clusterID, handshakeTimeout: .seconds(10))
        let client = MeshClient(configuration: configuration, tls: tls, logger: logger)
        do {
            return try await client.withSession(host: host, port: port, expectedNodeID: expectedNodeID) { session in
                try await body(AdminSession(session))
            }
        } catch let error as NodeError {
            throw error
        } catch {
            // The exact refusal is in the log; say here what was expected.
            let serialsText = serials.isEmpty ? "" : "（序列号 \(serials.joined(separator: ", "))）"
            let serialsTextEn = serials.isEmpty ? "" : " (serial \(serials.joined(separator: ", ")))"
            throw NodeError(
                .admin,
                zh: "无法与 \(host):\(port) 建立管理会话；那里应是本集群的节点 \(expectedNodeID)\(serialsText)：\(error)",
                en: "no admin session with \(host):\(port); it should be node \(expectedNodeID) of this cluster\(serialsTextEn): \(error)")
        }
    }

    public static func status(
        host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String, serials: [String] = []
    ) async throws -> NodeStatus {
        try AdminJSON.decode(NodeStatus.self, try await request(
            host: host, port: port, command: "status", clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID, serials: serials))
    }

    public static func health(
        host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String, serials: [String] = []
    ) async throws -> NodeHealth {
        try AdminJSON.decode(NodeHealth.self, try await request(
            host: host, port: port, command: "health", clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID, serials: serials))
    }
}

extension AdminClient {
    public static func book(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String,
                            _ command: BookCommand) async throws -> BookAnswer {
        let body = String(decoding: try AdminJSON.encode(command), as: UTF8.self)
        return try AdminJSON.decode(BookAnswer.self, try await request(
            host: host, port: port, command: "book " + body, clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID))
    }

    public static func defineBlocks(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String,
                                    _ blocks: [BlockDefinition]) async throws {
        let body = String(decoding: try AdminJSON.encode(blocks), as: UTF8.self)
        _ = try await request(host: host, port: port, command: "define-blocks " + body, clusterID: clusterID, credentials: credentials,
                              expectedNodeID: expectedNodeID)
    }

    public static func bookings(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String,
                                quotaBucketRecords: Bool = true) async throws -> BookingsView {
        let command = quotaBucketRecords ? "bookings" : "bookings " + String(decoding: try AdminJSON.encode(BookingsQuery(quotaBuckets: false)), as: UTF8.self)
        return try AdminJSON.decode(BookingsView.self, try await request(
            host: host, port: port, command: command, clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID))
    }
}

/// An open admin session (`AdminClient.withSession`): one command at a time.
public final class AdminSession {
    private let session: MeshSession
    private var answers: NIOAsyncChannelInboundStream<MeshMessage>.AsyncIterator
    private var lastRequestID: UInt64 = 0

    init(_ session: MeshSession) {
        self.session = session
        answers = session.inbound.makeAsyncIterator()
    }

    /// Sends one command ("<name>" or "<name> <json>") and returns the node's JSON answer.
    public func request(_ command: String) async throws -> [UInt8] {
        lastRequestID += 1
        let id = lastRequestID
        try await session.send(.forward(Forward(requestID: id, bytes: Array(command.utf8))))
        while let message = try await answers.next() {
            switch message {
            case .forward(let answer) where answer.requestID == id: return answer.bytes
            case .error(let error):
                throw NodeError(.admin, zh: "节点拒绝了请求：\(error.message)", en: "the node refused the request: \(error.message)")
            default: continue
            }
        }
        throw NodeError(.admin, zh: "节点未应答就关闭了连接。", en: "the node closed the connection without answering.")
    }
}

/// The admin tool's config: where its certificate is and which nodes to ask.
public struct AdminConfig: Codable, Sendable, Hashable {
    public struct Node: Codable, Sendable, Hashable {
        /// The node id its certificate must name (checked in the TLS handshake).
        public var id: String
        public var host: String
        public var port: Int
        /// Accepted certificate serials; empty or absent accepts any serial for `id`.
        public var serials: [String]?

        public init(id: String, host: String, port: Int, serials: [String]? = nil) {
            self.id = id
            self.host = host
            self.port = port
            self.serials = serials
        }
    }

    public var clusterID: String
    public var adminCertDir: String
    public var nodes: [Node]

    package enum CodingKeys: String, CodingKey {
        case clusterID = "cluster_id", adminCertDir = "admin_cert_dir", nodes
    }

    public init(clusterID: String, adminCertDir: String, nodes: [Node]) {
        self.clusterID = clusterID
        self.adminCertDir = adminCertDir
        self.nodes = nodes
    }

    public static func load(path: String) throws -> AdminConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.config, zh: "无法读取管理配置 \(path)。", en: "cannot read the admin config \(path).")
        }
        do {
            var config = try JSONDecoder().decode(AdminConfig.self, from: data)
            let base = (path as NSString).deletingLastPathComponent
            if !config.adminCertDir.hasPrefix("/"), !base.isEmpty { config.adminCertDir = (base as NSString).appendingPathComponent(config.adminCertDir) }
            return config
        } catch {
            throw NodeError(.config, zh: "管理配置 \(path) 无效：\(error)；字段说明见 Cluster/CONFIG.md。",
                            en: "the admin config \(path) is not valid: \(error); see Cluster/CONFIG.md.")
        }
    }
}
