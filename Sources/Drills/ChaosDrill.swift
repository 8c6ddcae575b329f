import ClinicNode
import AdminAPI
import Services
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The operations drills on real processes: a network partition (the minority
/// cut off, or the leader cut off from the majority), an eviction under load, one node's clock
/// skewed past the bound, one node's disk filled. Each runs the lease drill's booking clients and
/// a record-writing workload (patient registrations) through every node while the fault is on,
/// then checks invariants 1, 2, 3, 7 and 8 where they apply, plus the fault's own checks.
public struct ChaosDrill: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case partitionMinority = "partition-minority", partitionMajority = "partition-majority"
        case evictUnderLoad = "evict-under-load", clockSkew = "clock-skew", diskFull = "disk-full"
    }

    public var kind: Kind
    public var binary: String
    public var clients = 16
    public var recordClients = 3
    public var slotsPerBlock = 400
    public var blocksPerNode = 2
    /// Load before the fault and after it.
    public var settleSeconds: Double = 3
    /// How long the fault stays on once it has taken effect.
    public var faultSeconds: Double = 6
    /// The skew put on one node's wall clock (the bound is 500 ms).
    public var skewMillis: Int64 = 3000
    /// The full-disk node's tmpfs.
    public var diskBytes = 48 << 20

    public init(kind: Kind, binary: String) { self.kind = kind; self.binary = binary }

    public static var names: [String] { Kind.allCases.map(\.rawValue) }

    /// One check of the fault's own, in both languages.
    public struct Check: Codable, Sendable {
        public var zh: String
        public var en: String
        public var passed: Bool
        public var detail: String?
    }

    public struct Report: Codable, Sendable {
        public var scenario: String
        public var passed: Bool
        /// The longest of the faults' recovery times (see each fault for what it measures).
        public var recoveryS: Double?
        public var injection: String
        public var nodes: [String]
        /// Booking clients, a scenario's own (the partitions' majority client) included.
        public var clients: Int
        public var requests: Int
        public var booked: Int
        public var refusedByReason: [String: Int]
        public var unknownOutcomes: Int
        public var faults: [LeaseDrill.Fault]
        public var doubleBookings: Int
        public var lostAcks: Int
        public var converged: Bool
        /// Patient registrations acknowledged, refused (by code), failed in transit, and
        /// acknowledged but missing from a node at the end.
        public var recordsAcked: Int
        public var recordsRefusedByReason: [String: Int]
        public var recordsUnknown: Int
        public var recordsLost: Int
        public var checks: [Check]
        public var summaryZh: String
        public var summaryEn: String
        public var problems: [String]
        public var folder: String?
        enum CodingKeys: String, CodingKey {
            case scenario, passed, recoveryS = "recovery_s", injection, nodes, clients, requests, booked, refusedByReason = "refused_by_reason"
            case unknownOutcomes = "unknown_outcomes", faults, doubleBookings = "double_bookings", lostAcks = "lost_acks", converged
            case recordsAcked = "records_acked", recordsRefusedByReason = "records_refused_by_reason", recordsUnknown = "records_unknown"
            case recordsLost = "records_lost", checks, summaryZh = "summary_zh", summaryEn = "summary_en", problems, folder
        }
    }

    /// What the record writers saw.
    final class Records: @unchecked Sendable {
        let lock = NSLock()
        var acked: [String: (via: String, at: Date)] = [:]
        var refused: [String: Int] = [:]
        var unknown = 0
        var next = 0
        /// Nodes the writers use.
        var targets: [String]
        var running = true
        init(targets: [String]) { self.targets = targets }
        func with<T>(_ body: (Records) -> T) -> T { lock.withLock { body(self) } }
    }

    /// What a scenario's fault step hands back to the common part.
    struct Outcome {
        var faults: [LeaseDrill.Fault] = []
        var checks: [Check] = []
        /// Nodes whose replicas must hold everything at the end (all but an evicted one).
        var included: [String]
        /// Keys of records the evicted node wrote after its eviction.
        var lateEvicted: Set<String>? = nil
        /// Booking clients the scenario ran besides the shared ones (the partitions' majority client).
        var extraClients = 0
    }

    public func run(keepFolder: Bool = false) async throws -> Report {
        let departments = [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")]
        let partition = kind == .partitionMinority || kind == .partitionMajority
        let cluster = try LocalCluster(departments: departments.map { (id: $0.0, department: $0.1) }, binary: binary, proxied: partition)
        defer {
            cluster.stopAll()
            if keepFolder { cluster.release() } else { cluster.remove() }
        }
        do {
            return try await scenario(cluster, keepFolder: keepFolder)
        } catch {
            let tails = cluster.ids.map { "--- \($0) ---\n\(cluster.logTail($0))" }.joined(separator: "\n")
            throw DrillError("\(error)\n\(tails)")
        }
    }

    var injection: String {
        switch kind {
        case .partitionMinority, .partitionMajority:
            return "fault-injecting TCP proxy in the drill process: every node's peers[] point at the proxy, which black-holes both directions between the cut-off node and the rest (open connections closed, new ones accepted and never forwarded)"
        case .evictUnderLoad:
            return "admin API evict (committed through Raft) while booking and record clients run"
        case .clockSkew:
            return "offset on the node's wall clock source (NodeClock: HLC, heartbeats, clock guard, consensus), set through the test-only admin command clock-offset (built only with -DCLINICMESH_BUG_SWITCHES)"
        case .diskFull:
            return "the node's data folder on its own \(diskBytes >> 20) MiB tmpfs (mount, as root), filled with a file until ENOSPC, then the file deleted"
        }
    }

    func scenario(_ cluster: LocalCluster, keepFolder: Bool) async throws -> Report {
        let ids = cluster.ids
        var lease = LeaseDrill(binary: binary)
        lease.slotsPerBlock = slotsPerBlock
        if kind == .diskFull { try cluster.mountTmpfs(ids[2], bytes: diskBytes) }
        let blocks = try await cluster.startWithBlocks(perNode: blocksPerNode, slots: slotsPerBlock)

        // Bad input is refused in both languages, and writes nothing.
        var bad = patientCommand(n: 0, writer: 0)
        bad.residentID = String(bad.residentID.dropLast()) + (bad.residentID.last == "1" ? "2" : "1")
        let badAnswer = try await cluster.registerPatient(ids[0], bad)
        let badInput = Check(zh: "校验码错误的身份证号被拒绝，并用中英文说明", en: "a resident ID with a wrong check character is refused, in Chinese and English",
                             passed: badAnswer.outcome == "refused" && badAnswer.code == "request.invalid" && badAnswer.key == nil
                                 && !(badAnswer.messageZh ?? "").isEmpty && !(badAnswer.messageEn ?? "").isEmpty,
                             detail: "\(badAnswer.messageZh ?? "-") / \(badAnswer.messageEn ?? "-")")

        let hot = blocks.first { $0.home == ids[1] }!.block
        let ledger = LeaseDrill.Ledger()
        let records = Records(targets: ids)
        let defined = blocks
        let (clients, recordClients) = (self.clients, self.recordClients)
        let load = Task { await withTaskGroup(of: Void.self) { group in
            for c in 0..<clients { group.addTask { await client(c, cluster: cluster, ids: ids, blocks: defined, hot: hot, ledger: ledger) } }
            for c in 0..<recordClients { group.addTask { await recordWriter(c, cluster: cluster, records: records) } }
        } }
        try await Task.sleep(for: .seconds(settleSeconds))

        let outcome: Outcome
        do {
            switch kind {
            case .partitionMinority, .partitionMajority:
                outcome = try await partition(cluster, lease: lease, ledger: ledger, records: records, blocks: defined, hot: hot)
            case .evictUnderLoad: outcome = try await evict(cluster, lease: lease, ledger: ledger, records: records)
            case .clockSkew: outcome = try await skew(cluster, lease: lease, ledger: ledger, records: records)
            case .diskFull: outcome = try await diskFull(cluster, lease: lease, ledger: ledger, records: records)
            }
        } catch {
            ledger.with { $0.running = false }
            records.with { $0.running = false }
            await load.value
            throw error
        }
        try await Task.sleep(for: .seconds(settleSeconds))
        ledger.with { $0.running = false }
        records.with { $0.running = false }
        await load.value

        // Invariants 1, 2 and 3 on the nodes that must hold everything.
        let included = outcome.included
        let check = await LeaseDrill.readBack(cluster, ids: included, acked: ledger.with { $0.acked })
        var problems = ledger.with { $0.problems } + check.problems
        let ackedRecords = Set(records.with { $0.acked.keys })
        var views: [String: RecordsView] = [:]
        var recordsConverged = true
        do {
            try await waitFor("every node holds every acknowledged record, and the replicas are identical", seconds: 60) {
                for id in included { views[id] = try await cluster.records(id) }
                let digests = Set(included.map { views[$0]!.digest })
                return digests.count == 1 && included.allSatisfy { ackedRecords.isSubset(of: views[$0]!.keys) }
            }
        } catch {
            recordsConverged = false
            problems.append("replicas did not converge: digests \(included.map { "\($0) \(views[$0]?.digest.prefix(12) ?? "-")" })")
        }
        var recordsLost = 0
        for key in ackedRecords.sorted() {
            if let missing = included.first(where: { !(views[$0]?.keys.contains(key) ?? false) }) {
                recordsLost += 1
                if recordsLost <= 5 { problems.append("acknowledged record \(key.prefix(16))… missing on \(missing)") }
            }
        }
        var checks = [badInput] + outcome.checks
        // Invariant 7, once more at the very end: nothing the evicted node wrote got in.
        if let late = outcome.lateEvicted {
            let seen = late.intersection(Set(included.flatMap { views[$0]?.keys ?? [] }))
            checks.append(Check(zh: "结束时：被驱逐节点驱逐后写入的记录仍未出现在其他节点", en: "at the end: records the evicted node wrote after its eviction are still on no other node",
                                passed: seen.isEmpty, detail: "\(late.count) written, \(seen.count) seen elsewhere"))
        }
        let faults = outcome.faults
        let converged = check.converged && recordsConverged
        let passed = check.doubles == 0 && check.lost == 0 && converged && recordsLost == 0
            && faults.allSatisfy { $0.recoveryS != nil } && checks.allSatisfy(\.passed) && ledger.with { $0.problems.isEmpty }
        let (zh, en) = summary(passed: passed, faults: faults, checks: checks, booked: ledger.with { $0.acked.count }, doubles: check.doubles,
                               lost: check.lost, records: ackedRecords.count, recordsLost: recordsLost, converged: converged)
        return ledger.with { l in records.with { r in
            Report(scenario: kind.rawValue, passed: passed, recoveryS: faults.compactMap(\.recoveryS).max(), injection: injection, nodes: ids,
                   clients: clients + outcome.extraClients, requests: l.requests, booked: l.acked.count, refusedByReason: l.refused, unknownOutcomes: l.unknown,
                   faults: faults, doubleBookings: check.doubles, lostAcks: check.lost, converged: converged,
                   recordsAcked: r.acked.count, recordsRefusedByReason: r.refused, recordsUnknown: r.unknown, recordsLost: recordsLost,
                   checks: checks, summaryZh: zh, summaryEn: en, problems: Array(problems.prefix(20)), folder: keepFolder ? cluster.folder : nil)
        } }
    }

    // MARK: Scenarios

    /// Cuts one node off from the other two (the minority: a follower holding blocks; the
    /// majority case: the leader, so the majority loses its leader), keeps it cut off while the
    /// load runs, heals.
    func partition(_ cluster: LocalCluster, lease: LeaseDrill, ledger: LeaseDrill.Ledger, records: Records,
                   blocks: [BlockDefinition], hot: String) async throws -> Outcome {
        let ids = cluster.ids
        let leader = try await lease.leader(cluster, ids: ids)
        let victim = kind == .partitionMajority ? leader : ([ids[1], ids[2], ids[0]].first { $0 != leader })!
        let others = ids.filter { $0 != victim }
        let observer = others[0]
        let epochs = try await heldEpochs(cluster, node: victim, observer: observer)
        let cutAt = Date()
        cluster.proxy!.isolate(victim, from: ids)
        var f = LeaseDrill.Fault(kind: kind == .partitionMajority ? "partition-leader-cut-off" : "partition-minority", node: victim,
                                 affectedBlocks: epochs.keys.sorted())
        f.recoveryS = try await lease.recovery(ledger, epochs: epochs, since: cutAt)
        var checks: [Check] = []
        try await waitFor("the majority took \(victim)'s blocks over", seconds: 30) {
            try await cluster.bookings(observer).blocks.filter { epochs.keys.contains($0.block) }.allSatisfy { $0.valid && $0.holder != victim }
        }
        if kind == .partitionMajority {
            var newLeader: String?
            try await waitFor("a new leader on the majority side", seconds: 30) {
                newLeader = try await cluster.status(observer).consensus?.leader
                return newLeader != nil && newLeader != victim
            }
            var stepped = true
            do {
                try await waitFor("the old leader \(victim) stepped down", seconds: 20) { try await cluster.status(victim).consensus?.role != "leader" }
            } catch { stepped = false }
            checks.append(Check(zh: "多数派选出新 Leader（\(newLeader ?? "-")），被隔离的旧 Leader 退位", en: "the majority elected a new leader (\(newLeader ?? "-")); the cut-off old leader stepped down",
                                passed: stepped))
        }
        let effective = Date()
        // One more client books through the majority alone while the fault is on. The shared
        // clients pick a node at random, so each soon waits out its request's timeout on the lone
        // node; in a short fault they may ask the majority nothing at all.
        let majorityClient = Task { [clients] in await client(clients, cluster: cluster, ids: others, blocks: blocks, hot: hot, ledger: ledger) }
        try await Task.sleep(for: .seconds(faultSeconds))
        let healAt = Date()
        majorityClient.cancel()
        await majorityClient.value
        // A new request (first attempt) that reaches the lone node after the cut cannot be
        // acknowledged: no quorum. What it acknowledges meanwhile was asked before the cut (a
        // quorum may have accepted it then), or is a retry answered with the outcome decided
        // earlier; those must be active everywhere at the end like any other (invariant 2).
        // The majority books on.
        let (newViaVictim, olderViaVictim, viaOthers) = ledger.with { l in
            let during = l.ackVia.filter { $0.node == victim && $0.at > cutAt && $0.at < healAt }
            let fresh = during.filter { $0.firstAttempt && $0.sentAt > cutAt.addingTimeInterval(0.2) }
            return (fresh.count, during.count - fresh.count, l.ackVia.filter { $0.node != victim && $0.at > effective && $0.at < healAt }.count)
        }
        checks.append(Check(zh: "隔离期间被隔离节点未确认任何新预约（无法达到多数派）", en: "the cut-off node acknowledged no new booking while cut off (it has no quorum)",
                            passed: newViaVictim == 0,
                            detail: "\(newViaVictim) new bookings acknowledged through \(victim); \(olderViaVictim) asked before the cut or retried"))
        checks.append(Check(zh: "隔离期间多数派继续接受预约", en: "the majority kept booking while the node was cut off",
                            passed: viaOthers > 0, detail: "\(viaOthers) acknowledged through \(others.joined(separator: ", "))"))
        let localRecords = records.with { r in r.acked.values.filter { $0.via == victim && $0.at > cutAt.addingTimeInterval(1) && $0.at < healAt }.count }
        checks.append(Check(zh: "被隔离节点仍可在本地写入记录（愈合后同步）", en: "the cut-off node still took local record writes (they sync after healing)",
                            passed: localRecords > 0, detail: "\(localRecords) registrations acknowledged by \(victim) while cut off"))
        cluster.proxy!.healAll()
        try await waitFor("\(victim) back, holding its own blocks again", seconds: 90) {
            try await cluster.bookings(victim).blocks.filter { $0.home == victim }.allSatisfy { $0.valid && $0.holder == victim }
        }
        return Outcome(faults: [f], checks: checks, included: ids, extraClients: 1)
    }

    /// Evicts a follower while bookings run (the clients stop using it first, as an operator
    /// would drain it); then checks invariant 7 and that its leases moved.
    func evict(_ cluster: LocalCluster, lease: LeaseDrill, ledger: LeaseDrill.Ledger, records: Records) async throws -> Outcome {
        let ids = cluster.ids
        let leader = try await lease.leader(cluster, ids: ids)
        let victim = ([ids[1], ids[2], ids[0]].first { $0 != leader })!
        let others = ids.filter { $0 != victim }
        // Drain: what it acknowledged so far must reach the others before it goes.
        ledger.with { _ = $0.down.insert(victim) }
        records.with { $0.targets.removeAll { $0 == victim } }
        try await Task.sleep(for: .milliseconds(500))
        let fromVictim = Set(records.with { r in r.acked.filter { $0.value.via == victim }.keys })
        try await waitFor("the others hold every record \(victim) acknowledged", seconds: 30) {
            for id in others where !fromVictim.isSubset(of: try await cluster.records(id).keys) { return false }
            return true
        }
        let epochs = try await heldEpochs(cluster, node: victim, observer: leader)
        let evictAt = Date()
        let answer = try await cluster.evict(leader, node: victim)
        guard answer.contains("proposed") else { throw DrillError("evict 未被接受 / evict was not accepted: \(answer)") }
        var f = LeaseDrill.Fault(kind: "evict", node: victim, affectedBlocks: epochs.keys.sorted())
        f.recoveryS = try await lease.recovery(ledger, epochs: epochs, since: evictAt)
        try await waitFor("the eviction of \(victim) committed on every other node", seconds: 30) {
            for id in others where try await cluster.status(id).consensus?.members.first(where: { $0.id == victim })?.evicted != true { return false }
            return true
        }
        var checks: [Check] = []
        var moved = true
        do {
            try await waitFor("\(victim)'s blocks moved", seconds: 30) {
                try await cluster.bookings(leader).blocks.filter { epochs.keys.contains($0.block) }.allSatisfy { $0.valid && $0.holder != nil && $0.holder != victim }
            }
        } catch { moved = false }
        checks.append(Check(zh: "被驱逐节点的号源块租约已转移", en: "the evicted node's block leases moved", passed: moved))
        // Invariant 7: no session from it stays open anywhere, and its own links are refused.
        var closed = true
        do {
            try await waitFor("no node keeps a session from \(victim)", seconds: 20) {
                for id in others where try await cluster.status(id).peers.first(where: { $0.id == victim })?.inboundSessions ?? 0 > 0 { return false }
                return true
            }
        } catch { closed = false }
        checks.append(Check(zh: "驱逐提交后，其他节点不再保留来自被驱逐节点的连接", en: "after the eviction committed, no node keeps a connection from the evicted node", passed: closed))
        var refused = true
        do {
            try await waitFor("\(victim)'s links to the others refused", seconds: 20) {
                let s = try await cluster.status(victim)
                return s.peers.allSatisfy { !$0.reachable }
            }
        } catch { refused = false }
        let reasons = (try? await cluster.status(victim).peers.compactMap(\.lastError).first) ?? nil
        checks.append(Check(zh: "被驱逐节点的网状网络握手被拒绝", en: "the evicted node's mesh handshakes are refused", passed: refused, detail: reasons.map { String($0.prefix(200)) }))
        // Records it writes from now on must never reach another node.
        var late: Set<String> = []
        for i in 0..<5 {
            let n = records.with { r in defer { r.next += 1 }; return r.next }
            if let a = try? await cluster.registerPatient(victim, patientCommand(n: n, writer: 900 + i)), let key = a.key, a.outcome == "registered" { late.insert(key) }
        }
        try await Task.sleep(for: .seconds(4))
        var seen = 0
        for id in others { seen += try await cluster.records(id).keys.filter(late.contains).count }
        checks.append(Check(zh: "被驱逐节点驱逐后写入的记录没有出现在其他节点", en: "records the evicted node wrote after its eviction appear on no other node",
                            passed: !late.isEmpty && seen == 0, detail: "\(late.count) written on \(victim), \(seen) seen elsewhere"))
        try await Task.sleep(for: .seconds(max(0, faultSeconds - 4)))
        return Outcome(faults: [f], checks: checks, included: others, lateEvicted: late)
    }

    /// Skews a follower's wall clock past the bound: it must stop taking writes and say why;
    /// the others go on; after the clock is fixed it takes writes again.
    func skew(_ cluster: LocalCluster, lease: LeaseDrill, ledger: LeaseDrill.Ledger, records: Records) async throws -> Outcome {
        let ids = cluster.ids
        let leader = try await lease.leader(cluster, ids: ids)
        let victim = ([ids[2], ids[1], ids[0]].first { $0 != leader })!
        let others = ids.filter { $0 != victim }
        let skewAt = Date()
        _ = try await cluster.setClockOffset(victim, ms: skewMillis)
        var checks: [Check] = []
        var reason: String?
        try await waitFor("\(victim) refuses writes because of its clock", seconds: 30) {
            reason = try await cluster.status(victim).writesRefusedReason
            return reason?.contains("时钟") == true
        }
        let detectedAt = Date()
        let probe = try await cluster.registerPatient(victim, patientCommand(n: records.with { r in defer { r.next += 1 }; return r.next }, writer: 990))
        checks.append(Check(zh: "时钟偏差节点拒绝写入并用中英文说明原因", en: "the skewed node refuses writes and says why, in Chinese and English",
                            passed: probe.outcome == "refused" && (probe.messageZh ?? "").contains("时钟") && (probe.messageEn ?? "").contains("clock"),
                            detail: "detected after \(round(detectedAt.timeIntervalSince(skewAt) * 10) / 10) s: \(probe.messageEn ?? probe.outcome)"))
        try await Task.sleep(for: .seconds(faultSeconds))
        let fixAt = Date()
        let (othersRecords, bookings) = (records.with { r in r.acked.values.filter { others.contains($0.via) && $0.at > detectedAt && $0.at < fixAt }.count },
                                         ledger.with { l in l.ackVia.filter { $0.at > detectedAt && $0.at < fixAt }.count })
        var othersWriting = othersRecords > 0 && bookings > 0
        for id in others where try await cluster.status(id).writesRefused { othersWriting = false }
        checks.append(Check(zh: "其他节点继续写入记录和接受预约", en: "the other nodes kept taking record writes and bookings",
                            passed: othersWriting, detail: "\(othersRecords) registrations, \(bookings) bookings while \(victim) was skewed"))
        _ = try await cluster.setClockOffset(victim, ms: 0)
        var f = LeaseDrill.Fault(kind: "clock-skew +\(skewMillis) ms", node: victim, affectedBlocks: [])
        f.recoveryS = try await firstAcceptedWrite(cluster, on: victim, since: fixAt, records: records)
        return Outcome(faults: [f], checks: checks, included: ids)
    }

    /// Fills the data disk of the node on the tmpfs: it must refuse writes and say why, never
    /// crash or lose anything acknowledged, and resume once space is freed.
    func diskFull(_ cluster: LocalCluster, lease: LeaseDrill, ledger: LeaseDrill.Ledger, records: Records) async throws -> Outcome {
        let ids = cluster.ids
        let victim = ids[2]
        let observer = ids[0]
        let epochs = try await heldEpochs(cluster, node: victim, observer: observer)
        let filler = cluster.dataDir(victim) + "/filler"
        let fillAt = Date()
        let filled = try Self.fill(filler)
        var checks: [Check] = []
        var answer: RegisterPatientAnswer?
        try await waitFor("\(victim) refuses writes because its disk is full", seconds: 30) {
            let n = records.with { r in defer { r.next += 1 }; return r.next }
            answer = try await cluster.registerPatient(victim, patientCommand(n: n, writer: 980))
            return answer?.outcome == "refused"
        }
        let status = try await cluster.status(victim)
        checks.append(Check(zh: "磁盘满的节点拒绝写入并用中英文说明原因", en: "the node with the full disk refuses writes and says why, in Chinese and English",
                            passed: (answer?.messageZh ?? "").contains("磁盘") && (answer?.messageEn ?? "").contains("disk") && status.writesRefused,
                            detail: "filled \(filled >> 10) KiB: \(answer?.messageEn ?? "-")"))
        // Its consensus logs cannot be written either: it pauses (as if stopped), and the others
        // take its blocks over; recovery is from the pause to their first booking there.
        var failure: String?
        try await waitFor("\(victim) pauses its consensus (its logs cannot be written)", seconds: 30) {
            failure = try await cluster.status(victim).consensus?.failure
            return failure != nil
        }
        var f = LeaseDrill.Fault(kind: "disk-full", node: victim, affectedBlocks: epochs.keys.sorted())
        f.recoveryS = try await lease.recovery(ledger, epochs: epochs, since: Date())
        try await Task.sleep(for: .seconds(faultSeconds))
        checks.append(Check(zh: "磁盘满期间节点进程未崩溃，共识暂停并说明原因", en: "the node's process did not crash while its disk was full; its consensus paused and says why",
                            passed: cluster.isRunning(victim), detail: "disk filled \(round(Date().timeIntervalSince(fillAt))) s ago; consensus paused: \(failure?.prefix(160) ?? "")"))
        try FileManager.default.removeItem(atPath: filler)
        let freedAt = Date()
        var resume = LeaseDrill.Fault(kind: "disk-freed", node: victim, affectedBlocks: [])
        resume.recoveryS = try await firstAcceptedWrite(cluster, on: victim, since: freedAt, records: records)
        var back = true
        do {
            try await waitFor("\(victim) takes part in consensus and holds its own blocks again", seconds: 90) {
                let s = try await cluster.status(victim)
                let b = try await cluster.bookings(victim)
                return s.consensus?.failure == nil && b.blocks.filter { $0.home == victim }.allSatisfy { $0.valid && $0.holder == victim }
            }
        } catch { back = false }
        checks.append(Check(zh: "释放空间后节点恢复写入与共识，重新持有自己的号源块", en: "after space was freed the node writes again, takes part in consensus and holds its own blocks",
                            passed: back && cluster.isRunning(victim)))
        // The logs it wrote across the full disk (torn records cut, writes retried) must open again.
        cluster.signal(victim, SIGTERM)
        cluster.waitForExit(victim)
        try cluster.start(victim)
        var restarted = true
        do {
            try await waitFor("\(victim) restarted from its logs, holding its own blocks", seconds: 90) {
                try await cluster.bookings(victim).blocks.filter { $0.home == victim }.allSatisfy { $0.valid && $0.holder == victim }
            }
        } catch { restarted = false }
        checks.append(Check(zh: "节点重启后能读回磁盘满期间写过的共识日志", en: "the node restarts from the consensus logs it wrote across the full disk",
                            passed: restarted))
        return Outcome(faults: [f, resume], checks: checks, included: ids)
    }

    // MARK: Helpers

    func heldEpochs(_ cluster: LocalCluster, node: String, observer: String) async throws -> [String: UInt64] {
        let before = try await cluster.bookings(observer)
        return Dictionary(uniqueKeysWithValues: before.blocks.filter { $0.holder == node }.map { ($0.block, $0.epoch) })
    }

    /// From `since` to the first registration `node` acknowledges (asked every 100 ms).
    func firstAcceptedWrite(_ cluster: LocalCluster, on node: String, since: Date, records: Records) async throws -> Double? {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let n = records.with { r in defer { r.next += 1 }; return r.next }
            if let a = try? await cluster.registerPatient(node, patientCommand(n: n, writer: 970)), a.outcome == "registered", let key = a.key {
                let at = Date()
                records.with { $0.acked[key] = (node, at) }
                return (at.timeIntervalSince(since) * 1000).rounded() / 1000
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// Writes zeros to `path` until the disk is full; returns the bytes written.
    static func fill(_ path: String) throws -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw DrillError("无法创建填充文件 \(path) / cannot create the filler \(path)") }
        defer { close(fd) }
        var total = 0
        for chunk in [1 << 20, 4096, 512] {
            let zeros = [UInt8](repeating: 0, count: chunk)
            while true {
                let n = zeros.withUnsafeBytes { write(fd, $0.baseAddress, chunk) }
                if n <= 0 { break }
                total += n
            }
        }
        _ = fsync(fd)
        return total
    }

    func summary(passed: Bool, faults: [LeaseDrill.Fault], checks: [Check], booked: Int, doubles: Int, lost: Int, records: Int,
                 recordsLost: Int, converged: Bool) -> (String, String) {
        let recovery = faults.map { "\($0.kind) \($0.node): \($0.recoveryS.map { "\($0) s" } ?? "—")" }.joined(separator: "; ")
        let zhChecks = checks.map { "\($0.passed ? "✓" : "✗") \($0.zh)" }.joined(separator: "；")
        let enChecks = checks.map { "\($0.passed ? "✓" : "✗") \($0.en)" }.joined(separator: "; ")
        let zh = "演练 \(kind.rawValue)：\(passed ? "通过" : "失败")。恢复时间：\(recovery)。已确认预约 \(booked) 笔，重复预约 \(doubles)，丢失 \(lost)；"
            + "已确认患者登记 \(records) 条，丢失 \(recordsLost)；各节点\(converged ? "已" : "未")收敛。\(zhChecks)。"
        let en = "Drill \(kind.rawValue): \(passed ? "passed" : "FAILED"). Recovery: \(recovery). \(booked) bookings acknowledged, \(doubles) double, \(lost) lost; "
            + "\(records) patient registrations acknowledged, \(recordsLost) lost; the nodes \(converged ? "converged" : "did NOT converge"). \(enChecks)."
        return (zh, en)
    }
}

/// A valid registration, unique per `n`: a GB 11643 resident ID (region 130102, birth date from
/// `n`, sequence from `writer`, computed check character), a mobile number and a name.
func patientCommand(n: Int, writer: Int) -> RegisterPatientCommand {
    let birth = Date(timeIntervalSince1970: -946_771_200 + Double(n % 25_000) * 86_400) // from 1940-01-01
    let f = DateFormatter()
    f.timeZone = TimeZone(identifier: "UTC")
    f.locale = Locale(identifier: "en_US_POSIX")
    f.dateFormat = "yyyyMMdd"
    let first17 = "130102" + f.string(from: birth) + String(format: "%03d", (100 + writer + (n / 25_000) * 7) % 1000)
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    let sum = zip(first17, weights).reduce(0) { $0 + Int(String($1.0))! * $1.1 }
    let check = Array("10X98765432")[sum % 11]
    let names = ["赵一鸣", "钱晓红", "孙志远", "李梦瑶", "周国庆", "吴佳怡", "郑海涛", "王雪梅", "冯子轩", "陈思琪"]
    return RegisterPatientCommand(residentID: first17 + String(check), name: names[n % names.count], mobile: String(format: "139%08d", n % 100_000_000))
}

/// One record writer: registers a new patient through any node it is given, every 50 ms.
func recordWriter(_ w: Int, cluster: LocalCluster, records: ChaosDrill.Records) async {
    var rng = SystemRandomNumberGenerator()
    while records.with({ $0.running }) {
        let (n, via) = records.with { r in defer { r.next += 1 }; return (r.next, r.targets.randomElement(using: &rng)) }
        guard let via else { return }
        do {
            let answer = try await cluster.registerPatient(via, patientCommand(n: n, writer: w))
            records.with { r in
                if answer.outcome != "refused", let key = answer.key { r.acked[key] = (via, Date()) } else { r.refused[answer.code ?? "?", default: 0] += 1 }
            }
        } catch {
            records.with { $0.unknown += 1 }
        }
        try? await Task.sleep(for: .milliseconds(50))
    }
}
