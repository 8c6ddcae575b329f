import ClinicNode
import AdminAPI
import Domain
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The lease drill on real processes (issue: leases in real nodes, item 6): three department
/// nodes, concurrent clients booking hot slots through every node, then in this order: SIGKILL
/// the holder of the hottest block, takeover, restart it; SIGSTOP another node past its lease
/// while the rest take its blocks over, then SIGCONT; then a clean stop (SIGTERM) of the third,
/// which hands its blocks over at once, and its restart. Every booking read back from every node:
/// zero double bookings, zero lost acknowledged bookings; time from each fault to the first
/// successful booking of an affected block.
public struct LeaseDrill: Sendable {
    public var clients = 24
    public var slotsPerBlock = 400
    public var blocksPerNode = 2
    /// Load before the first fault and after the last one.
    public var settleSeconds: Double = 3
    /// How long the paused node stays stopped (past the 2 s liveness timeout).
    public var pauseSeconds: Double = 5
    public var binary: String
    /// The faults, in order (the issue's order by default).
    public var steps: [Step] = [.killHotHolder, .pause, .cleanStop]
    public var name = "leases"

    public enum Step: String, Sendable, CaseIterable {
        case killHotHolder = "kill-holder", killLeader = "kill-leader", pause, cleanStop = "clean-stop"
    }

    /// The drills `clinicmesh drill run` and `chaos/run` know, by name.
    public static let scenarios: [String: [Step]] = [
        "leases": [.killHotHolder, .pause, .cleanStop],
        "kill-leader": [.killLeader],
        "kill-holder": [.killHotHolder],
        "pause-holder": [.pause],
        "clean-stop": [.cleanStop],
    ]

    public init(binary: String) { self.binary = binary }

    public struct Fault: Codable, Sendable {
        public var kind: String
        public var node: String
        public var affectedBlocks: [String]
        /// From the fault to the first booking acknowledged in an affected block.
        public var recoveryS: Double?
        enum CodingKeys: String, CodingKey { case kind, node, affectedBlocks = "affected_blocks", recoveryS = "recovery_s" }
    }

    public struct Report: Codable, Sendable {
        public var scenario: String
        public var passed: Bool
        /// The longest of the faults' recovery times.
        public var recoveryS: Double?
        /// How faults are injected (signals to real processes).
        public var injection = "signals to real node processes (SIGKILL, SIGSTOP/SIGCONT, SIGTERM)"
        public var nodes: [String]
        public var clients: Int
        public var requests: Int
        public var booked: Int
        public var refusedByReason: [String: Int]
        public var unknownOutcomes: Int
        public var retries: Int
        public var faults: [Fault]
        public var doubleBookings: Int
        public var lostAcks: Int
        public var converged: Bool
        /// One patient, a quota of 1, six bookings at once through every node: how many got through.
        public var quotaBurstBooked: Int
        /// After cancelling that booking, the quota lets the patient book again.
        public var quotaFreedByCancel: Bool
        public var problems: [String]
        public var folder: String?
        enum CodingKeys: String, CodingKey {
            case scenario, passed, recoveryS = "recovery_s", injection, nodes, clients, requests, booked, refusedByReason = "refused_by_reason"
            case unknownOutcomes = "unknown_outcomes", retries, faults, doubleBookings = "double_bookings", lostAcks = "lost_acks"
            case converged, quotaBurstBooked = "quota_burst_booked", quotaFreedByCancel = "quota_freed_by_cancel", problems, folder
        }
    }

    /// What the clients saw, shared by their tasks.
    final class Ledger: @unchecked Sendable {
        let lock = NSLock()
        var acked: [String: BookingRecord] = [:]
        var ackTimes: [(block: String, epoch: UInt64, at: Date)] = []
        /// Which node each acknowledgement came through, when, when that attempt was sent, and
        /// whether it was the request's first (a retry may be answered with an earlier outcome).
        var ackVia: [(node: String, at: Date, sentAt: Date, firstAttempt: Bool)] = []
        var requests = 0
        var refused: [String: Int] = [:]
        var unknown = 0
        var retries = 0
        var problems: [String] = []
        var down: Set<String> = []
        var running = true

        func with<T>(_ body: (Ledger) -> T) -> T { lock.withLock { body(self) } }
    }

    public func run(keepFolder: Bool = false) async throws -> Report {
        let departments = [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")]
        let cluster = try LocalCluster(departments: departments.map { (id: $0.0, department: $0.1) }, binary: binary)
        let ids = cluster.ids
        defer {
            cluster.stopAll()
            if !keepFolder { cluster.remove() }
        }
        do {
            return try await scenario(cluster, ids: ids, keepFolder: keepFolder)
        } catch {
            let tails = ids.map { "--- \($0) ---\n\(cluster.logTail($0))" }.joined(separator: "\n")
            throw DrillError("\(error)\n\(tails)")
        }
    }

    func scenario(_ cluster: LocalCluster, ids: [String], keepFolder: Bool) async throws -> Report {
        let blocks = try await cluster.startWithBlocks(perNode: blocksPerNode, slots: slotsPerBlock)

        let (quotaBurstBooked, quotaFreed, quotaAnswers) = try await quotaBurst(cluster, ids: ids, blocks: blocks)

        // The hottest block is waike's first: most clients aim there.
        let hot = blocks.first { $0.home == ids[1] }!.block
        let ledger = Ledger()
        let defined = blocks
        let clients = self.clients
        let load = Task { await withTaskGroup(of: Void.self) { group in
            for c in 0..<clients { group.addTask { await client(c, cluster: cluster, ids: ids, blocks: defined, hot: hot, ledger: ledger) } }
        } }
        try await Task.sleep(for: .seconds(settleSeconds))

        var faults: [Fault] = []
        var last: String?
        for step in steps {
            let f: Fault
            switch step {
            case .killHotHolder, .killLeader:
                let victim: String
                if step == .killLeader {
                    victim = try await leader(cluster, ids: ids)
                } else {
                    victim = try await cluster.bookings(ids[0]).blocks.first { $0.block == hot }?.holder ?? ids[1]
                }
                let observer = ids.first { $0 != victim }!
                f = try await fault(step == .killLeader ? "sigkill-leader" : "sigkill", on: victim, observer: observer, cluster: cluster, ledger: ledger,
                    inject: { cluster.killHard(victim) },
                    whileDown: { affected in
                        try await waitFor("blocks of \(victim) taken over") {
                            try await cluster.bookings(observer).blocks.filter { affected.contains($0.block) }.allSatisfy { $0.valid && $0.holder != victim }
                        }
                    },
                    heal: { try cluster.start(victim) })
                last = victim
            case .pause:
                // Past its lease: the rest take its blocks over; its stale writes must be fenced off.
                let paused = ids.first { $0 != last && $0 != ids[0] } ?? ids[2]
                let pausedAt = Date()
                let observer = ids.first { $0 != paused }!
                f = try await fault("sigstop", on: paused, observer: observer, cluster: cluster, ledger: ledger,
                    inject: { cluster.signal(paused, SIGSTOP) },
                    whileDown: { _ in
                        let remaining = pauseSeconds - Date().timeIntervalSince(pausedAt)
                        if remaining > 0 { try await Task.sleep(for: .seconds(remaining)) }
                    },
                    heal: { cluster.signal(paused, SIGCONT) })
                last = paused
            case .cleanStop:
                // A clean stop (SIGTERM) hands the node's blocks over at once, without a timeout.
                let leaving = ids.first { $0 != last } ?? ids[0]
                let observer = ids.first { $0 != leaving }!
                f = try await fault("sigterm", on: leaving, observer: observer, cluster: cluster, ledger: ledger,
                    inject: { cluster.signal(leaving, SIGTERM) },
                    whileDown: { _ in cluster.waitForExit(leaving) },
                    heal: { try cluster.start(leaving) })
                last = leaving
            }
            faults.append(f)
        }
        try await Task.sleep(for: .seconds(settleSeconds))
        ledger.with { $0.running = false }
        await load.value

        // Read everything back from every node, once they have caught up.
        let acked = ledger.with { $0.acked }
        let check = await Self.readBack(cluster, ids: ids, acked: acked)
        let burstProblems = quotaBurstBooked == 1 && quotaFreed ? [] : ["quota burst: \(quotaBurstBooked) of 6 booked, freed by cancel \(quotaFreed); answers \(quotaAnswers)"]
        let problems = burstProblems + ledger.with { $0.problems } + check.problems
        let (doubles, lost, converged) = (check.doubles, check.lost, check.converged)
        let report = ledger.with { l in
            Report(scenario: name, passed: doubles == 0 && lost == 0 && converged && faults.allSatisfy { $0.recoveryS != nil } && quotaBurstBooked == 1 && quotaFreed,
                   recoveryS: faults.compactMap(\.recoveryS).max(), nodes: ids, clients: clients, requests: l.requests, booked: l.acked.count, refusedByReason: l.refused,
                   unknownOutcomes: l.unknown, retries: l.retries, faults: faults, doubleBookings: doubles, lostAcks: lost,
                   converged: converged, quotaBurstBooked: quotaBurstBooked, quotaFreedByCancel: quotaFreed,
                   problems: Array(problems.prefix(20)), folder: keepFolder ? cluster.folder : nil)
        }
        return report
    }

    /// Reads every booking back from every node in `ids`, once they have caught up: double
    /// bookings on each node and across them (invariant 1), acknowledged bookings not active
    /// everywhere (invariant 2), and whether they all got there (invariant 3).
    static func readBack(_ cluster: LocalCluster, ids: [String], acked: [String: BookingRecord], seconds: Double = 60) async
        -> (doubles: Int, lost: Int, converged: Bool, problems: [String]) {
        var views: [String: BookingsView] = [:]
        var converged = true
        do {
            try await waitFor("every node shows every acknowledged booking active", seconds: seconds) {
                for id in ids { views[id] = try await cluster.bookings(id) }
                return ids.allSatisfy { id in
                    let active = Set(views[id]!.bookings.filter { $0.status == "active" }.map { "\($0.requestID)@\($0.epoch)" })
                    return acked.values.allSatisfy { active.contains("\($0.requestID)@\($0.epoch)") }
                }
            }
        } catch {
            converged = false
        }
        for id in ids where views[id] == nil { views[id] = try? await cluster.bookings(id) }
        var problems: [String] = []
        var doubles = 0
        var merged: [String: Set<String>] = [:]
        for id in ids {
            guard let v = views[id] else { problems.append("\(id): no bookings view"); continue }
            var perSlot: [String: Set<String>] = [:]
            for b in v.bookings where b.status == "active" {
                perSlot["\(b.block)#\(b.slot)", default: []].insert(b.requestID)
                merged["\(b.block)#\(b.slot)", default: []].insert(b.requestID)
            }
            for (slot, holders) in perSlot where holders.count > 1 {
                doubles += 1
                problems.append("\(id): slot \(slot) has active bookings \(holders.sorted())")
            }
        }
        for (slot, holders) in merged where holders.count > 1 {
            doubles += 1
            problems.append("across nodes: slot \(slot) has active bookings \(holders.sorted())")
        }
        var lost = 0
        for b in acked.values {
            for id in ids {
                let found = views[id]?.bookings.first { $0.requestID == b.requestID && $0.epoch == b.epoch }
                if found?.status != "active" {
                    lost += 1
                    problems.append("acknowledged \(b.requestID) (\(b.block) slot \(b.slot), epoch \(b.epoch)) is \(found?.status ?? "missing") on \(id)")
                    break
                }
            }
        }
        return (doubles, lost, converged, problems)
    }

    /// The node the Raft leader is, as the nodes report it.
    func leader(_ cluster: LocalCluster, ids: [String]) async throws -> String {
        var found: String?
        try await waitFor("a Raft leader") {
            for id in ids { if let l = try? await cluster.status(id).consensus?.leader { found = l; return true } }
            return false
        }
        return found!
    }

    /// One fault on `node`: the clients stop using it, `inject` it, measure the time to the first
    /// booking by a new holder in the blocks it held, `whileDown` (gets those blocks' names), `heal`,
    /// and wait until it holds its own blocks again.
    func fault(_ kind: String, on node: String, observer: String, cluster: LocalCluster, ledger: Ledger,
               inject: () -> Void, whileDown: ([String]) async throws -> Void, heal: () throws -> Void) async throws -> Fault {
        let before = try await cluster.bookings(observer)
        let epochs = Dictionary(uniqueKeysWithValues: before.blocks.filter { $0.holder == node }.map { ($0.block, $0.epoch) })
        _ = ledger.with { $0.down.insert(node) }
        let at = Date()
        inject()
        var f = Fault(kind: kind, node: node, affectedBlocks: epochs.keys.sorted())
        f.recoveryS = try await recovery(ledger, epochs: epochs, since: at)
        try await whileDown(f.affectedBlocks)
        try heal()
        try await waitFor("\(node) back, holding its own blocks again", seconds: 90) {
            try await cluster.bookings(node).blocks.filter { $0.home == node }.allSatisfy { $0.valid && $0.holder == node }
        }
        ledger.with { _ = $0.down.remove(node) }
        try await Task.sleep(for: .seconds(1))
        return f
    }

    /// One patient books six slots of one department's sessions for one visit date at once,
    /// through every node: the quota (one per department per visit date) lets exactly one through.
    /// Cancelling it gives the quota back. Also answers what each of the six got (for a failure).
    /// Like any client, each retries an answer that says to (no holder right now, the quota not
    /// reachable, no outcome in time) with the same request id: the one whose reservation won
    /// keeps its quota place through such an answer, and only its retry books.
    func quotaBurst(_ cluster: LocalCluster, ids: [String], blocks: [BlockDefinition]) async throws -> (Int, Bool, [String]) {
        // A visit date from the clock (a few days ahead, as a patient books), never a fixed one.
        let visit = (try? BookingRush.firstVisitDate().adding(days: 3)) ?? BookingRush.firstVisitDate()
        let quota = BookCommand.Quota(visitDate: visit.description, department: "外科")
        let sessions = blocks.filter { $0.home == ids[1] }
        let answers = await withTaskGroup(of: BookAnswer?.self) { group in
            for i in 0..<6 {
                let block = sessions[i % sessions.count]
                let command = BookCommand(requestID: "burst-\(i)", block: block.block, slot: block.slots - 1 - i, patient: "patient-burst", quota: quota)
                group.addTask {
                    let deadline = Date().addingTimeInterval(30)
                    var answer = try? await cluster.book(ids[i % ids.count], command)
                    while Self.saysRetry(answer), Date() < deadline {
                        try? await Task.sleep(for: .milliseconds(200))
                        answer = try? await cluster.book(ids[(i + 1) % ids.count], command)
                    }
                    return answer
                }
            }
            var all: [BookAnswer?] = []
            for await a in group { all.append(a) }
            return all
        }
        let booked = answers.compactMap { $0 }.filter { $0.outcome == "booked" }
        let seen = answers.map { a in a.map { $0.outcome == "booked" ? "booked" : $0.code ?? $0.outcome } ?? "no answer" }.sorted()
        guard booked.count == 1, let first = booked.first?.booking else { return (booked.count, false, seen) }
        let cancel = BookCommand(requestID: "burst-cancel", block: first.block, slot: first.slot, patient: "patient-burst",
                                 releases: first.requestID, quota: quota)
        guard try await cluster.book(ids[1], cancel).outcome == "booked" else { return (1, false, seen) }
        // The reservation is given back just after the cancellation is acknowledged.
        var again = false
        for attempt in 0..<20 where !again {
            let block = sessions[attempt % sessions.count]
            let retry = BookCommand(requestID: "burst-again-\(attempt)", block: block.block, slot: block.slots - 10 - attempt, patient: "patient-burst", quota: quota)
            let answer = try await cluster.book(ids[2], retry)
            again = answer.outcome == "booked"
            if !again { try await Task.sleep(for: .milliseconds(200)) }
        }
        return (1, again, seen)
    }

    /// An answer that tells the client to send the same request again (or none at all).
    static func saysRetry(_ answer: BookAnswer?) -> Bool {
        guard let answer else { return true }
        return answer.outcome == "unknown" || ["lease.no_holder", "quota.unavailable"].contains(answer.code ?? "")
    }

    /// Waits for the first booking acknowledged in an affected block under a later epoch than the
    /// one it had at the fault (so made by the new holder, not an answer already on its way).
    func recovery(_ ledger: Ledger, epochs: [String: UInt64], since: Date) async throws -> Double? {
        guard !epochs.isEmpty else { return 0 }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let first = ledger.with({ l in l.ackTimes.filter { $0.at > since && $0.epoch > (epochs[$0.block] ?? .max) }.map(\.at).min() }) {
                return (first.timeIntervalSince(since) * 1000).rounded() / 1000
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

/// One client: books again and again, mostly in the hot block, through any node it believes up;
/// an unknown outcome or a failed connection is retried with the same request id elsewhere.
/// Runs until the ledger stops the load, or its task is cancelled.
func client(_ c: Int, cluster: LocalCluster, ids: [String], blocks: [BlockDefinition], hot: String, ledger: LeaseDrill.Ledger) async {
    var rng = SystemRandomNumberGenerator()
    var k = 0
    while ledger.with({ $0.running }), !Task.isCancelled {
        k += 1
        let block = Int.random(in: 0..<10, using: &rng) < 7 ? hot : blocks.randomElement(using: &rng)!.block
        let slots = blocks.first { $0.block == block }!.slots
        let command = BookCommand(requestID: "c\(c)-\(k)", block: block, slot: Int.random(in: 0..<slots, using: &rng), patient: "patient-\(c)", timeoutMs: 3000)
        var attempts = 0
        while attempts < 6, ledger.with({ $0.running }), !Task.isCancelled {
            attempts += 1
            let up = ids.filter { id in ledger.with { !$0.down.contains(id) } }
            guard let via = up.randomElement(using: &rng) else { break }
            ledger.with { $0.requests += 1; if attempts > 1 { $0.retries += 1 } }
            let answer: BookAnswer
            let sentAt = Date()
            do { answer = try await cluster.book(via, command) } catch {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            if answer.outcome == "booked", let b = answer.booking {
                ledger.with { l in
                    if let first = l.acked[b.requestID], first.epoch != b.epoch || first.slot != b.slot {
                        l.problems.append("request \(b.requestID) acknowledged twice differently: epoch \(first.epoch) and \(b.epoch)")
                    }
                    l.acked[b.requestID] = b
                    l.ackTimes.append((b.block, b.epoch, Date()))
                    l.ackVia.append((via, Date(), sentAt, attempts == 1))
                }
                break
            }
            if answer.outcome == "refused" {
                ledger.with { $0.refused[answer.code ?? "?", default: 0] += 1 }
                if answer.code == "lease.no_holder" {
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
                break
            }
            ledger.with { $0.unknown += 1 }
        }
    }
}
