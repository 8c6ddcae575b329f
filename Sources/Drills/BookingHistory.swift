import AdminAPI
import ClinicNode
import Consensus
import Crypto
import DemoAndBench
import Domain
import Foundation
import Services
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A cluster with a long booking history behind it (`clinicmesh bench history`): `bookings`
/// acknowledged bookings in sessions on past days, closed once their retention passed; then what
/// the history costs each node (resident memory, consensus logs, restart) and the release rush.
///
/// The bookings are the admin API's `book` (the consensus request a patient's hold makes, with its
/// quota reservation in the patient's bucket, acknowledged once a quorum has it), sent to the
/// session's home node over long-lived admin sessions. Time does not pass in a bench: the cluster
/// takes the bookings with `history_retention_days` at its maximum (nothing closes), then every
/// node restarts with 0, as if the days had gone by, and the leader closes them all.
public struct BookingHistory: Sendable {
    public struct Options: Sendable {
        public var bookings: Int
        public var binary: String
        /// Bookings in flight per node.
        public var concurrency = 64
        /// `tuning.closings_per_round` of the nodes.
        public var closingsPerRound = 512
        /// Bookings reserve the patient's quota, as a patient's hold does.
        public var quota = true
        /// The release rush afterwards.
        public var rushClients = 2000
        public var rushThinkMs = 1000.0
        public var rushSeconds = 10.0
        public init(bookings: Int, binary: String) { self.bookings = bookings; self.binary = binary }
    }

    /// What one cluster measured. Per-node figures by node id; the single figure is the worst node's.
    public struct Figures: Codable, Sendable {
        public var bookings: Int
        public var sessions: Int
        public var rssMb: Double
        public var rssMbByNode: [String: Double]
        /// From starting the process to the node's first acknowledged booking: a `book` sent to
        /// it (forwarded to the holder if it holds no lease yet), answered `booked`.
        public var restartS: Double
        public var restartSByNode: [String: Double]
        /// Every file of the node's consensus folder: `raft.log` (its snapshots are in it) and `bookings.log`.
        public var logMb: Double
        public var logMbByNode: [String: Double]
        public var logFilesMbByNode: [String: [String: Double]]
        /// The release rush's p99 over every request to every node (the rush spreads its patients
        /// over the nodes).
        public var rushP99Ms: Double
        public var rush: BookingRush.Report
        /// Making the bookings: wall seconds and acknowledged bookings per second.
        public var loadS: Double
        public var loadBookingsPerS: Double
        /// From the restart with retention 0 until every node had closed every past session.
        public var closeS: Double
        /// Blocks left open on each node once every past session closed: quota buckets, the
        /// restart probes (`<node>/restart-probe`) and nothing else.
        public var openBlocks: Int
        /// Quota reservations made (one per booking with `quota`); the buckets keep those of
        /// the last months (`QuotaTrim`: about 97 days behind today with retention 0).
        public var quotaReservations: Int
    }

    let options: Options
    let say: @Sendable (String) -> Void
    public init(_ options: Options, say: @escaping @Sendable (String) -> Void) { self.options = options; self.say = say }

    /// Slots per past session (the largest the demo seeds).
    static let capacity = 64
    /// Each node's block for the restart measurement: never a session, so never closed.
    static func probeBlock(_ id: String) -> String { "\(id)/restart-probe" }
    static let probeSlots = 4096

    public func run() async throws -> Figures {
        var tuning = BookingRush.tuning
        tuning.historyRetentionDays = 3650
        tuning.closingsPerRound = options.closingsPerRound
        let cluster = try BookingRush.makeCluster(nodes: 3, binary: options.binary, tuning: tuning, folderPrefix: "clinicmesh-history-")
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        let ids = cluster.ids
        try cluster.startAll()
        try await cluster.waitUntilLed()
        try await cluster.defineBlocks(ids[0], ids.map { BlockDefinition(block: Self.probeBlock($0), home: $0, slots: Self.probeSlots) })

        let sessions = try await seedPastSessions(cluster)
        let buckets = ConsensusCoreOptions().quotaBuckets
        try await waitForBlocks(cluster, "every past session defined on every node", seconds: 300) { $0 >= buckets + ids.count + sessions.count }
        let load = Stopwatch()
        try await book(cluster, sessions)
        let loadS = load.seconds

        say("历史：各节点以保留 0 天重启，等待所有过去的时段关闭 / history: every node restarts with 0 days of retention; waiting for every past session to close")
        let closing = Stopwatch()
        cluster.stopAll()
        for id in ids { try cluster.changeConfig(id) { $0.tuning.historyRetentionDays = 0 } }
        try cluster.startAll()
        try await cluster.waitUntilLed(seconds: 600)
        try await waitForBlocks(cluster, "every past session closed on every node", seconds: 600 + Double(sessions.count) / 5) { $0 == buckets + ids.count }
        let closeS = closing.seconds

        // A node gives freed heap back every 40 maintenance rounds (`HeapTrim`; 10 s with these
        // nodes' 250 ms heartbeat): memory as it stays, not its peak.
        try await Task.sleep(for: .seconds(12))
        var rss: [String: Double] = [:], logs: [String: [String: Double]] = [:]
        for id in ids {
            rss[id] = rounded(cluster.residentMiB(id) ?? 0)
            logs[id] = cluster.consensusLogBytes(id).mapValues { rounded(Double($0) / 1_048_576, 2) }
        }
        var restarts: [String: Double] = [:]
        for id in ids {
            say("重启 \(id)（SIGTERM 后再启动），计时到它确认一笔预约 / restarting \(id) (SIGTERM, then start) until it acknowledges a booking")
            restarts[id] = rounded(try await restart(cluster, id), 2)
            try await cluster.waitUntilLed()
        }

        say("放号高峰：\(options.rushSeconds) 秒 / the release rush: \(options.rushSeconds) s")
        var rushOptions = BookingRush.Options(binary: options.binary)
        rushOptions.nodes = ids.count
        rushOptions.clients = options.rushClients
        rushOptions.thinkMs = options.rushThinkMs
        rushOptions.seconds = options.rushSeconds
        let rush = try await BookingRush(rushOptions, say: say).run(on: cluster)

        let logMb = logs.mapValues { rounded($0.values.reduce(0, +), 2) }
        return Figures(
            bookings: options.bookings, sessions: sessions.count,
            rssMb: rss.values.max() ?? 0, rssMbByNode: rss, restartS: restarts.values.max() ?? 0, restartSByNode: restarts,
            logMb: logMb.values.max() ?? 0, logMbByNode: logMb, logFilesMbByNode: logs,
            rushP99Ms: rush.p99Ms, rush: rush, loadS: rounded(loadS), loadBookingsPerS: loadS > 0 ? rounded(Double(options.bookings) / loadS) : 0,
            closeS: rounded(closeS), openBlocks: buckets + ids.count, quotaReservations: options.quota ? options.bookings : 0)
    }

    // MARK: The history

    struct PastSession: Sendable { var block: String; var home: String; var date: CivilDate; var department: String }

    /// Demo sessions of every department on its own node, on the days before today (Asia/Shanghai),
    /// going back as far as `bookings` needs at `capacity` slots each.
    func seedPastSessions(_ cluster: LocalCluster) async throws -> [PastSession] {
        guard options.bookings > 0 else { return [] }
        let today = try ShanghaiTime.civil(of: Date()).date
        var sessions: [PastSession] = [], slots = 0, end = try today.adding(days: -1)
        say("历史：在过去的日子里播种出诊时段，每时段 \(Self.capacity) 个号 / history: seeding sessions on past days, \(Self.capacity) slots each")
        while slots < options.bookings {
            // Roughly 1,150 slots a day over the three departments: no more days than needed.
            let days = min(31, max(1, (options.bookings - slots) / 1000 + 1))
            let start = try end.adding(days: -(days - 1))
            for id in cluster.ids {
                let summary = try await BookingRush.seed(cluster, id, DemoSeedRequest(startDate: start.description, days: days, capacity: Self.capacity))
                for b in summary.blocks {
                    sessions.append(PastSession(block: b.block, home: b.home, date: try ScheduleKey(rawValue: b.block).date, department: summary.department))
                }
                slots += summary.slots
            }
            end = try start.adding(days: -1)
        }
        return sessions.sorted { ($0.date, $0.block) < ($1.date, $1.block) }
    }

    /// Books every slot of `sessions` in order until `bookings`, each for a patient of its own (the
    /// quota rules never refuse one), through its session's home node; `concurrency` sessions of
    /// the admin API per node, one booking at a time each. A retryable answer is retried with
    /// the same request id; any other refusal fails the bench.
    func book(_ cluster: LocalCluster, _ sessions: [PastSession]) async throws {
        guard options.bookings > 0 else { return }
        say("历史：\(options.bookings) 笔预约，每个节点 \(options.concurrency) 路并发 / history: \(options.bookings) bookings, \(options.concurrency) in flight per node")
        var byNode: [String: [Int]] = [:]
        for n in 0..<options.bookings { byNode[sessions[n / Self.capacity].home, default: []].append(n) }
        let queue = WorkQueue(byNode)
        let progress = Stopwatch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in byNode.keys {
                for _ in 0..<options.concurrency {
                    group.addTask {
                        try await cluster.withAdminSession(node) { admin in
                            while let n = queue.take(node) {
                                try await bookOne(n, sessions[n / Self.capacity], admin)
                                let count = queue.done.add(1, ordering: .relaxed).newValue
                                if count % 100_000 == 0 {
                                    say("历史：已确认 \(count) 笔 / history: \(count) acknowledged (\(Int(Double(count) / progress.seconds))/s)")
                                }
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Each node's bookings, handed out one at a time to that node's admin sessions.
    final class WorkQueue: Sendable {
        private let left: Mutex<[String: ArraySlice<Int>]>
        let done = Atomic<Int>(0)
        init(_ work: [String: [Int]]) { left = Mutex(work.mapValues { $0[...] }) }
        func take(_ node: String) -> Int? { left.withLock { $0[node]?.popFirst() } }
    }

    static let retryable: Set<String> = ["lease.no_holder", "lease.timeout", "quota.unavailable"]

    private func bookOne(_ n: Int, _ session: PastSession, _ admin: AdminSession) async throws {
        let patient = Self.patientKey(n)
        let command = BookCommand(
            requestID: AppointmentRef.holdID(patient: patient, requestID: "history"), block: session.block, slot: n % Self.capacity, patient: patient,
            quota: options.quota ? .init(visitDate: session.date.description, department: session.department) : nil, timeoutMs: 10_000)
        let text = "book " + String(decoding: try AdminJSON.encode(command), as: UTF8.self)
        for attempt in 0..<600 {
            let answer = try AdminJSON.decode(BookAnswer.self, try await admin.request(text))
            if answer.outcome == "booked" { return }
            guard Self.retryable.contains(answer.code ?? "") else {
                throw DrillError("预约 \(n)（\(session.block) 号 \(n % Self.capacity)）被拒绝：\(answer.messageZh ?? "") / booking \(n) (\(session.block) slot \(n % Self.capacity)) refused: \(answer.code ?? answer.outcome) \(answer.messageEn ?? "")")
            }
            if attempt > 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        throw DrillError("预约 \(n) 始终没有结果 / booking \(n) never got an outcome")
    }

    /// The patient's key as a node makes it (64 hex digits of an HMAC): here a hash of the index.
    static func patientKey(_ n: Int) -> String {
        lowercaseHex(SHA256.hash(data: Array("history-patient-\(n)".utf8)))
    }

    // MARK: Conditions

    /// Polls every node's count of defined blocks until `condition` holds on all of them.
    func waitForBlocks(_ cluster: LocalCluster, _ what: String, seconds: Double, _ condition: @escaping @Sendable (Int) -> Bool) async throws {
        var last: [String: Int] = [:]
        do {
            try await waitFor(what, seconds: seconds) {
                for id in cluster.ids { last[id] = try await cluster.status(id).consensus?.blocks ?? -1 }
                return last.values.allSatisfy(condition)
            }
        } catch {
            throw DrillError("\(error)；各节点的区块数 / blocks per node: \(last.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        }
    }

    // MARK: Restart

    /// SIGTERM, then start again: seconds from the new process's start to its first
    /// acknowledged booking in its probe block.
    func restart(_ cluster: LocalCluster, _ id: String) async throws -> Double {
        cluster.signal(id, SIGTERM)
        cluster.waitForExit(id)
        let started = Stopwatch()
        try cluster.start(id)
        // A new slot and request each attempt: an attempt that timed out may still book its own.
        var attempt = 0
        try await waitFor("\(id) acknowledges a booking after its restart", seconds: 300) {
            attempt += 1
            let answer = try await cluster.book(id, BookCommand(requestID: "restart-\(id)-\(attempt)", block: Self.probeBlock(id),
                                                                slot: attempt % Self.probeSlots, patient: Self.patientKey(-attempt), timeoutMs: 1000))
            return answer.outcome == "booked"
        }
        return started.seconds
    }
}
