import Foundation
import Services
import AdminAPI
import Logging
import Mesh
import NIOCore
import PKI
import ReplicatedCore
import ReplicatedStore
import X509

extension MeshNode {
    // MARK: - Clock guard

    /// Compares this node's clock with its peers' (fresh heartbeat estimates only) and refuses or
    /// allows local writes accordingly. Never lifts a refusal the store made for another reason.
    func evaluateClockGuard() {
        let now = clock.monotonicNanos()
        let maxAge = UInt64(max(5_000, 5 * config.tuning.heartbeatMillis)) * 1_000_000
        let estimates = runtime.withLock { r in
            r.peers.compactMapValues { $0.estimator.estimate(nowMonotonicNanos: now, maxAgeNanos: maxAge).map { ($0.offsetMillis, $0.rttMillis) } }
        }
        let verdict = ClockGuard(boundMillis: config.tuning.maxClockOffsetMillis, peerCount: runtime.withLock { $0.peers.count }).evaluate(estimates)
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

    /// Read-only views, polled by monitoring and drills: not audit events.
    static let unauditedAdminCommands: Set<String> = ["status", "health", "bookings", "records", "membership", "staff-list", "audit-verify"]

    func serveAdmin(_ session: MeshSession) async throws {
        let channelID = register(session.channel, as: .admin)
        defer { unregister(channelID) }
        let commands = adminCommands.withLock { $0 }
        try await AdminServer.serve(session, commands: commands, logger: logger) { command, failed in
            // The label stays bounded: names this node serves, and "unknown" for anything else.
            self.metrics.adminCommand(commands.has(command) ? command : "unknown", failed: failed)
            // Every admin command that changes something or reads patient data is an audit event;
            // the read-only views that monitoring and drills poll are not (a digest read would
            // otherwise change the digest it reports). One that cannot be written (a full disk) is
            // left out rather than fail the command after the fact.
            if commands.has(command), !Self.unauditedAdminCommands.contains(command) {
                try? self.staff.audit.record(AuditEvent(staff: Self.adminActor, role: "admin", action: "admin.\(command)", outcome: failed ? "failed" : "ok"))
            }
        }
    }

    /// Adds commands to this node's admin API (the tool's demo data); call before the node runs.
    package func addAdminCommands(_ body: (inout AdminCommandTable) -> Void) {
        adminCommands.withLock { body(&$0) }
    }

    /// The commands every node answers.
    static func nodeCommands(_ node: MeshNode) -> AdminCommandTable {
        var t = AdminCommandTable()
        t.add("status") { try node.status() }
        t.add("health") { node.health() }
        t.add("book", BookCommand.self) { await node.book($0) }
        t.add("define-blocks", [BlockDefinition].self) { blocks in
            node.defineBlocks(blocks)
            return ["proposed": blocks.count]
        }
        t.add("bookings", optional: BookingsQuery.self) { node.bookingsView(quotaBucketRecords: $0?.quotaBuckets ?? true) }
        t.add("evict", [String: String].self) { request -> [String: String] in
            guard let target = request["node"], !target.isEmpty, target != node.config.nodeID else {
                return ["error": "evict 需要 {\"node\": \"<另一个节点 ID>\"} / evict needs {\"node\": \"<another node's id>\"}"]
            }
            node.evict(target)
            return ["proposed": target]
        }
        t.add("appointment-status", AppointmentStepCommand.self) { try await node.booking.stepAppointment($0) }
        t.add("register-patient", RegisterPatientCommand.self) { node.registerPatient($0) }
        t.add("floor-queue", [String: String].self) { request -> FloorQueueView in
            do throws(StaffError) { return try node.floor.queueView(request["session"] ?? "") } catch { throw NodeError(.admin, zh: error.zh, en: error.en) }
        }
        t.add("floor", FloorAdminCommand.self) { c -> FloorQueueView in
            do throws(StaffError) { return try await node.floor.run(c) } catch { throw NodeError(.admin, zh: "\(error.code): \(error.zh)", en: "\(error.code): \(error.en)") }
        }
        t.add("records", [String: String].self) { try node.recordsView(table: $0["table"] ?? "patient") }
        t.add("appointments", AppointmentsQuery.self) { q -> [AppointmentRow] in
            if let patient = q.patient { return try node.readModel.appointments(patient: patient) }
            if let block = q.block { return try node.readModel.appointments(block: block) }
            if let date = q.date { return try node.readModel.appointments(date: date, department: q.department) }
            throw NodeError(.admin, zh: "appointments 需要 patient、block 或 date（可加 department）之一。",
                            en: "appointments needs one of patient, block or date (with an optional department).")
        }
        #if CLINICMESH_BUG_SWITCHES
        t.add("clock-offset", [String: Int64].self) { try node.setClockOffset($0) }
        #endif
        t.add("staff-add", StaffAccountCommand.self) { await node.addStaff($0) }
        t.add("staff-list") { try node.listStaff() }
        t.add("staff-disable", StaffAccountCommand.self) { node.disableStaff($0) }
        t.add("staff-reset-password", StaffAccountCommand.self) { await node.resetStaffPassword($0) }
        t.add("audit-verify") { try node.verifyAudit() }
        t.add("membership") { node.membershipView() }
        t.add("add-node", MemberAddRequest.self) { node.addNode($0) }
        t.add("rotate-cert", CertRotation.self) { node.rotateCert($0) }
        t.add("promote", [String: String].self) { request in
            guard let id = request["node"], !id.isEmpty else {
                return MembershipAnswer("refused", zh: "promote 需要 {\"node\": \"<节点 ID>\"}", en: "promote needs {\"node\": \"<node id>\"}")
            }
            return node.promote(id)
        }
        return t
    }
}
