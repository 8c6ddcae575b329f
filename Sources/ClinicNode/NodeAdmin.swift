import Foundation
import Services
import Logging
import Mesh
import NIOCore
import PKI
import ReplicatedStore
import X509

extension MeshNode {
    // MARK: - Clock guard

    /// Compares this node's clock with its peers' (fresh heartbeat estimates only) and refuses or
    /// allows local writes accordingly. Never lifts a refusal the store made for another reason.
    func evaluateClockGuard() {
        let now = clock.monotonicNanos()
        let maxAge = UInt64(max(5_000, 5 * config.tuning.heartbeatMillis)) * 1_000_000
        let offsets = runtime.withLock { r in
            r.peers.compactMapValues { $0.estimator.estimate(nowMonotonicNanos: now, maxAgeNanos: maxAge)?.offsetMillis }
        }
        let verdict = ClockGuard(boundMillis: config.tuning.maxClockOffsetMillis, peerCount: runtime.withLock { $0.peers.count }).evaluate(offsets: offsets)
        switch verdict {
        case .refuse(let off):
            guard runtime.withLock({ $0.guardReason }) == nil else { return }
            let list = off.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value) ms" }.joined(separator: ", ")
            let bound = config.tuning.maxClockOffsetMillis
            let reason = StoreError(
                .writesRefused,
                zh: "本节点时钟与多数对端相差超过 \(bound) 毫秒（\(list)）；请校准本机时钟（NTP），时钟一致后自动恢复写入。",
                en: "this node's clock is off from a majority of its peers by more than \(bound) ms (\(list)); fix the clock (NTP); writes resume by themselves once the clocks agree.")
            runtime.withLock { $0.guardReason = reason }
            replica.refuseWrites(reason)
            logger.error("时钟偏差过大，暂停写入 / clock off from a majority of peers, refusing writes", metadata: ["node.clock.offsets": "\(list)"])
        case .allow:
            guard let reason = runtime.withLock({ $0.guardReason }) else { return }
            runtime.withLock { $0.guardReason = nil }
            if replica.writesRefusedBecause == reason { replica.allowWrites() }
            logger.notice("时钟已与多数对端一致，恢复写入 / clocks agree with a majority of peers again, writes resumed")
        case .undecided:
            break
        }
    }

    // MARK: - Status

    public func status() throws -> NodeStatus {
        let vector = try replica.versionVector()
        let now = clock.monotonicNanos()
        let maxAge = UInt64(max(5_000, 5 * config.tuning.heartbeatMillis)) * 1_000_000
        let peers = runtime.withLock { r in
            r.peers.sorted { $0.key < $1.key }.map { id, p -> PeerStatus in
                let estimate = p.estimator.estimate(nowMonotonicNanos: now, maxAgeNanos: maxAge)
                let lag = p.acked.map { acked in
                    vector.entries.reduce(UInt64(0)) { sum, entry in sum + (entry.value > acked[entry.key] ? entry.value - acked[entry.key] : 0) }
                }
                return PeerStatus(
                    id: id, address: "\(p.address.host):\(p.address.port)", reachable: p.outboundUp, inboundSessions: p.inboundSessions,
                    lagChanges: lag, clockOffsetMs: estimate?.offsetMillis, rttMs: estimate.map { ($0.rttMillis * 100).rounded() / 100 },
                    lastContactMsAgo: p.lastContactNanos.map { Int64((now &- $0) / 1_000_000) },
                    lastAntiEntropyMsAgo: p.lastVectorNanos.map { Int64((now &- $0) / 1_000_000) },
                    changesSent: p.changesSent, batchesReceived: p.batchesReceived, lastError: p.outboundUp ? nil : p.lastError)
            }
        }
        let refused = replica.writesRefusedBecause
        let consensus = consensusStatus()
        let status = NodeStatus(
            nodeID: config.nodeID, department: config.department, clusterID: config.clusterID,
            meshAddress: "\(config.mesh.host):\(meshPort)", incarnation: replica.origin.incarnation,
            writesRefused: refused != nil, writesRefusedReason: refused.map { "\($0.zh) / \($0.en)" },
            versionVector: Dictionary(uniqueKeysWithValues: vector.entries.map { ("\($0.key)", $0.value) }),
            parkedChanges: (try? replica.parkedCount()) ?? 0, peers: peers,
            uptimeS: Double((now &- startedNanos) / 1_000_000) / 1000, snapshotFrom: snapshotFrom, consensus: consensus,
            schemaVersion: NodeSchema.schema.version)
        return withAlerts(status)
    }

    public func health() -> NodeHealth {
        let (reachable, total) = runtime.withLock { r in (r.peers.values.filter(\.outboundUp).count, r.peers.count) }
        let refused = replica.writesRefusedBecause != nil
        return NodeHealth(nodeID: config.nodeID, ok: !refused, writesRefused: refused, reachablePeers: reachable, peers: total)
    }

    // MARK: - Admin API

    /// One admin session (TLS with an admin certificate, verified by `MeshTLS(accepting: .admin)`):
    /// each `Forward` request carries a command in UTF-8 (`status`, `health`); the answer is a
    /// `Forward` with the same request id and a JSON body.
    func serveAdmin(_ session: MeshSession) async throws {
        let channelID = register(session.channel, as: .admin)
        defer { unregister(channelID) }
        logger.info("管理员已连接 / admin connected", metadata: ["admin.name": "\(session.peer.certificate.identity.name)"])
        for try await message in session.inbound {
            guard case .forward(let request) = message else { continue }
            // "<command>" or "<command> <json argument>".
            let text = String(decoding: request.bytes, as: UTF8.self)
            let command = String(text.prefix { $0 != " " }.prefix(64))
            let argument = Data(text.drop { $0 != " " }.dropFirst().utf8)
            let body: [UInt8]
            do {
                switch command {
                case "status": body = try AdminJSON.encode(try status())
                case "health": body = try AdminJSON.encode(health())
                case "book": body = try AdminJSON.encode(await book(try JSONDecoder().decode(BookCommand.self, from: argument)))
                case "define-blocks":
                    let blocks = try JSONDecoder().decode([BlockDefinition].self, from: argument)
                    defineBlocks(blocks)
                    body = try AdminJSON.encode(["proposed": blocks.count])
                case "bookings": body = try AdminJSON.encode(bookingsView())
                case "evict":
                    let request = try JSONDecoder().decode([String: String].self, from: argument)
                    guard let target = request["node"], !target.isEmpty, target != config.nodeID else {
                        body = try AdminJSON.encode(["error": "evict 需要 {\"node\": \"<另一个节点 ID>\"} / evict needs {\"node\": \"<another node's id>\"}"])
                        break
                    }
                    evict(target)
                    body = try AdminJSON.encode(["proposed": target])
                case "appointment-status":
                    body = try AdminJSON.encode(try await booking.stepAppointment(try JSONDecoder().decode(AppointmentStepCommand.self, from: argument)))
                case "register-patient":
                    body = try AdminJSON.encode(registerPatient(try JSONDecoder().decode(RegisterPatientCommand.self, from: argument)))
                case "records":
                    let request = try JSONDecoder().decode([String: String].self, from: argument)
                    body = try AdminJSON.encode(try recordsView(table: request["table"] ?? "patient"))
                #if CLINICMESH_BUG_SWITCHES
                case "clock-offset":
                    body = try AdminJSON.encode(try setClockOffset(try JSONDecoder().decode([String: Int64].self, from: argument)))
                #endif
                case "seed-demo":
                    let request = try JSONDecoder().decode(DemoSeedRequest.self, from: argument)
                    body = try AdminJSON.encode(try seedDemo(request))
                default:
                    if let answer = try membershipCommand(command, argument) { body = answer; break }
                    body = try AdminJSON.encode(["error": "未知命令 \(command) / unknown command \(command)"])
                }
            } catch let error as DecodingError {
                body = try AdminJSON.encode(["error": "命令 \(command) 的参数无效：\(error) / the argument of \(command) is not valid: \(error)"])
            } catch {
                // A refused command is an answer, not the end of the admin's session.
                body = try AdminJSON.encode(["error": "\(error)"])
            }
            metrics.adminCommand(command, failed: body.starts(with: Array("{\"error\"".utf8)))
            try await session.send(.forward(Forward(requestID: request.requestID, bytes: body)))
        }
    }
}

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
    ///
    /// Symmetric with the node's side, which accepts only admin certificates of the cluster CA: the
    /// TLS handshake refuses a server whose certificate is not a node certificate of the cluster CA
    /// for `expectedNodeID`, or (when `serials` is not empty) whose serial is not one of them.
    public static func request(
        host: String, port: Int, command: String, clusterID: String, credentials: MeshCredentials,
        expectedNodeID: String, serials: [String] = [],
        logger: Logger = AdminClient.quietLogger
    ) async throws -> [UInt8] {
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
        let answer: [UInt8]
        do {
            answer = try await client.withSession(host: host, port: port, expectedNodeID: expectedNodeID) { session in
                try await session.send(.forward(Forward(requestID: 1, bytes: Array(command.utf8))))
                for try await message in session.inbound {
                    switch message {
                    case .forward(let answer) where answer.requestID == 1: return answer.bytes
                    case .error(let error):
                        throw NodeError(.admin, zh: "节点拒绝了请求：\(error.message)", en: "the node refused the request: \(error.message)")
                    default: continue
                    }
                }
                throw NodeError(.admin, zh: "节点未应答就关闭了连接。", en: "the node closed the connection without answering.")
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
        return answer
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
