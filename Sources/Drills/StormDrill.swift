import ClinicNode
import DemoAndBench
import AdminAPI
import Services
import Consensus
import Domain
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The storm drill, the way an outside tester runs it against the demo cluster: three
/// department nodes seeded like `demo seed`, patients signed in by SMS code, load through the
/// patient API only with every request to a random node (four waves in which every patient
/// rushes the same 10 slots, plus spread holds, confirmations, cancellations and lists), one node
/// SIGKILLed and restarted 5 s later, then another SIGSTOPped for 6 s. An unknown outcome is
/// retried with the same request id (up to 4 attempts); some answered requests are sent again, as
/// by a client that lost the answer. Then every patient's list is read through every node and
/// every node's bookings view, and the drill checks: no double booking, no lost acknowledgement,
/// every retry answered with its first outcome, every node agreeing within 30 s, and every block
/// of a returning node acknowledging again within 5 s of its return.
public struct StormDrill: Sendable {
    public var binary: String
    public var patients = 60
    /// Seconds of load; the faults fall at fixed points in it (`Plan`).
    public var seconds: Double = 70
    /// Mean pause between one patient's requests (exponential).
    public var thinkMs: Double = 700
    /// Attempts per request while its outcome is unknown (the first included).
    public var attempts = 4
    /// Share of a patient's steps that send an answered request again.
    public var resendShare = 0.15
    public var downSeconds: Double = 5
    public var pauseSeconds: Double = 6
    public var convergeSeconds: Double = 30
    public var recoveryBoundSeconds: Double = 5
    /// Answered requests sent again once the cluster is quiet (a bounded sample).
    public var reaskLimit = 120
    /// Without an answer by then, a request counts as unanswered (a paused node never answers).
    public var requestTimeoutSeconds: Double = 8
    public var seed = UInt64.random(in: 1...UInt64(UInt32.max))
    /// The node to SIGKILL and the one to SIGSTOP (default: drawn from the seed, two different ones).
    public var killNode: String?
    public var pauseNode: String?

    /// The CI length: the two faults and their 5 s recovery windows need this much load.
    public static let shortSeconds: Double = 25

    public init(binary: String) { self.binary = binary }

    static let departments = [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")]

    /// When things happen, in seconds after the load begins. At 70 s: SIGKILL at 14, restart at 19,
    /// SIGSTOP at 35, SIGCONT at 41; waves at 3.5, 13.7 and 34.7 (rushing the node about to fail,
    /// so its rounds are in flight when it does) and 42.5 (its blocks just handed back).
    struct Plan: Sendable {
        var kill, restart, stop, cont: Double
        var waves: [Double]
        init(seconds: Double, down: Double, pause: Double, bound: Double) {
            kill = seconds >= 40 ? seconds * 0.2 : 3
            restart = kill + down
            // The second fault waits out the first return's recovery window, so it cannot slow it.
            stop = max(restart + bound + 1, seconds * 0.5)
            cont = stop + pause
            waves = [max(1, seconds * 0.05), kill - 0.3, stop - 0.3, cont + 1.5]
        }
        var minimumSeconds: Double { cont + 3.5 }
    }

    public struct Event: Codable, Sendable {
        public var tS: Double
        public var event: String
        enum CodingKeys: String, CodingKey { case tS = "t_s", event }
    }

    public struct Check: Codable, Sendable {
        public var name: String
        public var zh: String
        public var en: String
        public var passed: Bool
        public var count: Int
        public var examples: [String]
    }

    public struct Wave: Codable, Sendable {
        public var session: String
        public var home: String
        public var atS: Double
        public var holdsSent: Int
        public var held: Int
        public var answers: [String: Int]
        enum CodingKeys: String, CodingKey { case session, home, atS = "at_s", holdsSent = "holds_sent", held, answers }
    }

    /// One block of a returning node: when it was back at its home node, and when a probe
    /// booking through each node was acknowledged (seconds after the return).
    public struct BlockRecovery: Codable, Sendable {
        public var block: String
        public var home: String
        public var homeAtS: Double?
        /// The slowest node's acknowledgement; nil if some node never got one.
        public var recoveryS: Double?
        public var viaS: [String: Double]
        /// Nodes left out because a later fault took them down before they were asked.
        public var interrupted: [String]
        public var lastAnswers: [String]
        enum CodingKeys: String, CodingKey {
            case block, home, homeAtS = "home_at_s", recoveryS = "recovery_s", viaS = "via_s", interrupted, lastAnswers = "last_answers"
        }
    }

    public struct Fault: Codable, Sendable {
        public var kind: String
        public var node: String
        /// The Raft leader just before the fault.
        public var leaderBefore: String?
        public var atS: Double
        public var returnedAtS: Double?
        public var blocks: Int
        /// The slowest block's recovery; nil if a block never acknowledged again.
        public var blockRecoveryS: Double?
        /// Every block slower than the bound, or else the five slowest.
        public var slowest: [BlockRecovery]
        public var unrecovered: [BlockRecovery]
        enum CodingKeys: String, CodingKey {
            case kind, node, leaderBefore = "leader_before", atS = "at_s", returnedAtS = "returned_at_s", blocks, blockRecoveryS = "block_recovery_s", slowest, unrecovered
        }
    }

    public struct Report: Codable, Sendable {
        public var scenario = "storm"
        public var passed: Bool
        public var seed: UInt64
        public var nodes: [String]
        public var patients: Int
        public var loadSeconds: Double
        public var injection: String
        public var killNode: String
        public var pauseNode: String
        public var timeline: [Event]
        /// Requests by kind (hold, confirm, cancel, list), re-sends and quiet re-asks.
        public var requests: [String: Int]
        /// Every answer by HTTP status and code ("no answer" for none).
        public var answers: [String: Int]
        /// Requests still without a final answer after every attempt.
        public var unknownOutcomes: Int
        public var retries: Int
        public var waves: [Wave]
        public var doubleBookings: Int
        public var lostAcks: Int
        public var retryMismatches: Int
        /// The mismatches by kind (`StormChecks.retryMismatches`).
        public var retryMismatchKinds: [String: Int]
        /// Answered requests sent again to the quiet cluster that got no final answer.
        public var retriesUnansweredQuiet: Int
        public var phantoms: Int
        public var converged: Bool
        public var convergedAfterS: Double?
        /// The slowest block of both returns; nil if a block never acknowledged again.
        public var blockRecoveryS: Double?
        public var faults: [Fault]
        /// Blocks that booked nothing through some node in the quiet cluster at the end.
        public var stuckAtEnd: [String]
        public var checks: [Check]
        public var summaryZh: String
        public var summaryEn: String
        public var problems: [String]
        public var folder: String?
        enum CodingKeys: String, CodingKey {
            case scenario, passed, seed, nodes, patients, loadSeconds = "load_seconds", injection, killNode = "kill_node", pauseNode = "pause_node"
            case timeline, requests, answers, unknownOutcomes = "unknown_outcomes", retries, waves, doubleBookings = "double_bookings"
            case lostAcks = "lost_acks", retryMismatches = "retry_mismatches", retryMismatchKinds = "retry_mismatch_kinds", retriesUnansweredQuiet = "retries_unanswered_quiet", phantoms
            case converged, convergedAfterS = "converged_after_s", blockRecoveryS = "block_recovery_s", faults, stuckAtEnd = "stuck_at_end"
            case checks, summaryZh = "summary_zh", summaryEn = "summary_en", problems, folder
        }
    }

    static let injection = "signals to real node processes on 127.0.0.1: SIGKILL then restart, SIGSTOP then SIGCONT; load through the patient HTTPS API only, every request to a random node"

    public func run(keepFolder: Bool = false) async throws -> Report {
        let plan = Plan(seconds: seconds, down: downSeconds, pause: pauseSeconds, bound: recoveryBoundSeconds)
        guard seconds >= plan.minimumSeconds else {
            throw DrillError("负载时间至少 \(plan.minimumSeconds) 秒（两次故障及其恢复窗口）/ the load needs at least \(plan.minimumSeconds) s (two faults and their recovery windows)")
        }
        guard patients > 10 else {
            throw DrillError("抢号波次需要多于 10 位患者（每波 10 个号）/ the rush waves need more than 10 patients (10 slots a wave)")
        }
        let ids = Self.departments.map(\.0)
        for n in [killNode, pauseNode].compactMap({ $0 }) where !ids.contains(n) {
            throw DrillError("没有节点 \(n)；可选 / no node \(n); one of: \(ids.joined(separator: ", "))")
        }
        let cluster = try LocalCluster(departments: Self.departments.map { (id: $0.0, department: $0.1) }, binary: binary,
                                       folderPrefix: "clinicmesh-storm-") { _, config in
            var p = PatientConfig()
            p.port = (try? LocalCluster.freePort()) ?? 0
            config.patients = p
        }
        defer {
            cluster.stopAll()
            if keepFolder { cluster.release() } else { cluster.remove() }
        }
        do {
            return try await StormRun(drill: self, cluster: cluster, plan: plan).run(keepFolder: keepFolder)
        } catch {
            let tails = ids.map { "--- \($0) ---\n\(cluster.logTail($0))" }.joined(separator: "\n")
            throw DrillError("\(error)\n\(tails)")
        }
    }
}

/// A session the load books in.
struct StormSession: Sendable {
    var schedule: String
    var department: String
    var date: String
    var capacity: Int
    var chief: Bool
}

/// One signed-in patient: its own loopback address, a keep-alive connection per node (made
/// again after a node dies), and what its app knows of its appointments. Only the patient's own
/// task changes it during the load.
final class StormPatient: @unchecked Sendable {
    let index: Int
    let key: String
    let token: String
    let address: String
    private let lock = NSLock()
    private var clients: [String: PatientClient] = [:]
    var rng: SplitMix64
    var pending: [String] = []
    var booked: [String] = []
    /// Requests of this patient that have had a final answer (keys into the run's requests).
    var answered: [String] = []
    var nextRequest = 0

    init(index: Int, key: String, token: String, address: String, seed: UInt64) {
        self.index = index; self.key = key; self.token = token; self.address = address
        rng = SplitMix64(seed: seed)
    }

    func random() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    func client(_ via: String, port: Int, ca: String) async throws -> PatientClient {
        if let c = lock.withLock({ clients[via] }), c.channel.isActive { return c }
        let c = try await PatientClient.connect(host: "127.0.0.1", port: port, caPEM: ca, localAddress: address)
        let kept = lock.withLock { () -> PatientClient in
            if let other = clients[via], other.channel.isActive { return other }
            clients[via] = c
            return c
        }
        if kept !== c { c.channel.close(promise: nil) }
        return kept
    }

    func drop(_ via: String) {
        if let c = lock.withLock({ clients.removeValue(forKey: via) }) { c.channel.close(promise: nil) }
    }

    func closeAll() {
        for c in lock.withLock({ Array(clients.values) }) { c.channel.close(promise: nil) }
    }
}

/// One run of the storm drill: everything shared by the patients, the faults and the checks.
final class StormRun: @unchecked Sendable {
    let drill: StormDrill
    let cluster: LocalCluster
    let ids: [String]
    let plan: StormDrill.Plan
    private let lock = NSLock()
    private var ports: [String: Int] = [:]
    private var ca = ""
    private(set) var started = Date()
    private var requests: [String: StormRequest] = [:]
    private var lists = 0
    private var events: [StormDrill.Event] = []
    private var problems: [String] = []
    private var loadDoubles: [String] = []
    /// Nodes killed or stopped right now.
    private var down: Set<String> = []
    private var probes: [BookingRecord] = []
    var rng: SplitMix64

    init(drill: StormDrill, cluster: LocalCluster, plan: StormDrill.Plan) {
        self.drill = drill; self.cluster = cluster; self.ids = cluster.ids; self.plan = plan
        rng = SplitMix64(seed: drill.seed)
    }

    func elapsed(_ at: Date = Date()) -> Double { (at.timeIntervalSince(started) * 1000).rounded() / 1000 }
    func note(_ event: String) { lock.withLock { events.append(.init(tS: elapsed(), event: event)) } }
    func problem(_ text: String) { lock.withLock { problems.append(text) } }
    func isDown(_ id: String) -> Bool { lock.withLock { down.contains(id) } }

    func run(keepFolder: Bool) async throws -> StormDrill.Report {
        // Two different nodes: the one killed and the one stopped.
        let kill = drill.killNode ?? ids[Int(rng.below(3))]
        let pause = drill.pauseNode ?? ids.filter { $0 != kill }[Int(rng.below(2))]

        let (patients, sessions) = try await prepare()
        let start = BookingRush.firstVisitDate()
        // Days 2 to 6: a cancellation there is never a late one (no strikes, so no bans).
        let usable = sessions.filter { s in (2...6).contains(dayIndex(s.date, from: start)) }
        var waves: [StormSession] = []
        for (k, home) in [kill, kill, pause, pause].enumerated() {
            let date = try start.adding(days: 2 + k).description
            let candidates = usable.filter { $0.department == home && $0.date == date && $0.capacity >= 10 }
            guard let s = candidates.first(where: \.chief) ?? candidates.first else {
                throw DrillError("\(home) 在 \(date) 没有至少 10 个号的出诊 / \(home) has no session of at least 10 slots on \(date)")
            }
            waves.append(s)
        }
        self.sessions = usable
        let spread = usable.filter { s in !waves.contains { $0.schedule == s.schedule } }
        guard !spread.isEmpty else { throw DrillError("没有可分散预约的出诊 / no sessions to spread holds over") }

        started = Date()
        note("load begins: \(patients.count) patients, \(drill.seconds) s; SIGKILL \(kill) at \(plan.kill) s, restart at \(plan.restart) s; SIGSTOP \(pause) at \(plan.stop) s, SIGCONT at \(plan.cont) s")
        let end = started.addingTimeInterval(drill.seconds)
        let faultTask = Task { await self.faults(kill: kill, pause: pause, sessions: usable) }
        let sampler = Task { await self.sampleDoubles(until: end) }
        await withTaskGroup(of: Void.self) { group in
            let rushed = waves
            for p in patients { group.addTask { await self.patientLoop(p, waves: rushed, spread: spread, end: end) } }
        }
        note("load ends")
        let faults = await faultTask.value
        await sampler.value

        // Every patient's list through every node and every node's bookings view, until they agree.
        let (views, lists, convergedAfter, differences) = await converge(patients)
        let converged = convergedAfter.map { $0 <= drill.convergeSeconds } ?? false
        let all = lock.withLock { Array(requests.values) }.sorted { ($0.patient, $0.requestID, $0.kind.rawValue) < ($1.patient, $1.requestID, $1.kind.rawValue) }
        let truth = StormTruth(Array(views.values))
        for r in all where r.kind == .hold {
            if let a = r.acknowledged?.appointment, let ref = StormAppointment(a), ref.holdID != r.holdID {
                problem("hold id derived here (\(r.holdID)) differs from the node's (\(ref.holdID)): the retry check cannot read the records")
                break
            }
        }
        // Answered requests sent again to the quiet cluster, through every node in turn.
        let unanswered = await reask(all, truth: truth, patients: patients)
        let final = lock.withLock { Array(requests.values) }.sorted { ($0.patient, $0.requestID, $0.kind.rawValue) < ($1.patient, $1.requestID, $1.kind.rawValue) }
        let stuck = await sweep(views: views)
        for p in patients { p.closeAll() }

        // The checks.
        var perNode: [String] = []
        for id in ids {
            guard let v = views[id] else { continue }
            for (slot, holders) in StormChecks.doubleBookings(v).sorted(by: { $0.key < $1.key }) { perNode.append("\(id): \(slot) held by \(holders.sorted())") }
        }
        let across = StormChecks.doubleBookingsAcross(Array(views.values)).sorted { $0.key < $1.key }.map { "across nodes: \($0.key) held by \($0.value.sorted())" }
        let doubles = lock.withLock { loadDoubles } + perNode + across
        let lost = StormChecks.lostAcks(final, views: views, lists: lists, probes: lock.withLock { probes })
        let mismatchKinds = StormChecks.retryMismatches(final, truth)
        // The outcome flips first: they are the worst.
        let mismatches = mismatchKinds.sorted { ($0.kind == "reason_changed" ? 1 : 0) < ($1.kind == "reason_changed" ? 1 : 0) }.map(\.text)
        let phantoms = StormChecks.phantoms(final, lists: lists)
        let recovery: Double? = faults.contains { $0.blockRecoveryS == nil } ? nil : faults.compactMap(\.blockRecoveryS).max()
        let recovered = recovery.map { $0 <= drill.recoveryBoundSeconds } ?? false
        let workload = workloadProblems(final, waves: waves, faults: faults)

        func check(_ name: String, _ zh: String, _ en: String, _ violations: [String], passed: Bool? = nil) -> StormDrill.Check {
            StormDrill.Check(name: name, zh: zh, en: en, passed: passed ?? violations.isEmpty, count: violations.count, examples: Array(violations.prefix(10)))
        }
        let slowBlocks = faults.flatMap { f in (f.unrecovered + f.slowest).filter { ($0.recoveryS ?? .infinity) > drill.recoveryBoundSeconds }
            .map { "\(f.kind) \(f.node): \($0.block) \($0.recoveryS.map { "\($0) s" } ?? "never") (via \($0.viaS.map { "\($0.key) \($0.value) s" }.sorted().joined(separator: ", ")); last answers \($0.lastAnswers.joined(separator: ", ")))" } }
            + stuck.map { "at the end: \($0)" }
        let checks = [
            check("no_double_booking", "没有重复预约（每个节点上，以及跨节点）", "no double booking (on each node, and across nodes)", doubles),
            check("no_lost_ack", "已确认的锁号、支付确认、退号在每个节点上都可见", "every acknowledged hold, confirmation and cancellation shows on every node", lost),
            check("retry_same_outcome", "同一请求号的重试（经任一节点）都得到第一次的最终结果", "every retry with the same request id (through any node) gets its first final outcome", mismatches),
            check("quiet_retries_answered", "负载结束、集群平静后，已有结果的请求重发都得到最终答复（不是 503）", "once the cluster is quiet, answered requests sent again get a final answer (not 503)", unanswered),
            check("no_phantom", "患者列表中的每个状态都有对应的请求", "every status in a patient's list comes from a request the patient sent", phantoms),
            check("converged", "负载结束后 \(Int(drill.convergeSeconds)) 秒内各节点一致（患者列表与预约视图）",
                  "the nodes agree (patients' lists and bookings views) within \(Int(drill.convergeSeconds)) s after the load", differences, passed: converged),
            check("block_recovery", "节点返回后 \(Int(drill.recoveryBoundSeconds)) 秒内其每个号源块经每个节点都重新确认预约；结束时没有卡住的块",
                  "every block of a returning node acknowledges a booking through every node within \(Int(drill.recoveryBoundSeconds)) s of its return; no block stuck at the end",
                  slowBlocks, passed: recovered && stuck.isEmpty),
            check("workload", "负载确实发生（锁号、确认、退号、抢号波次、故障）", "the load really happened (holds, confirmations, cancellations, rush waves, faults)", workload),
        ]
        let passed = checks.allSatisfy(\.passed)
        return lock.withLock {
            var answers: [String: Int] = [:]
            var counts: [String: Int] = ["list": self.lists]
            var retries = 0, unknown = 0
            for r in final {
                counts[r.kind.rawValue, default: 0] += 1
                if r.attempts.contains(where: { $0.resend && !$0.quiet }) { counts["resent", default: 0] += 1 }
                if r.attempts.contains(where: \.quiet) { counts["reasked_quiet", default: 0] += 1 }
                var seenFinal = false
                for (i, a) in r.attempts.enumerated() {
                    answers[a.status.map { "\($0) \(a.code ?? "")".trimmingCharacters(in: .whitespaces) } ?? "no answer", default: 0] += 1
                    if i > 0, !a.resend { retries += 1 }
                    seenFinal = seenFinal || (a.outcome != nil && !a.quiet)
                }
                if !seenFinal { unknown += 1 }
            }
            let waveReports = waves.enumerated().map { k, s in
                let sent = final.filter { $0.wave == k + 1 }
                var byAnswer: [String: Int] = [:]
                for r in sent { byAnswer[r.outcomes.first { !$0.0.quiet }?.1.split(separator: " ").prefix(2).joined(separator: " ").replacingOccurrences(of: #"^201 h.*"#, with: "201", options: .regularExpression) ?? "unknown", default: 0] += 1 }
                return StormDrill.Wave(session: s.schedule, home: s.department, atS: plan.waves[k], holdsSent: sent.count,
                                       held: sent.filter { $0.acknowledged != nil }.count, answers: byAnswer)
            }
            let (zh, en) = summary(passed: passed, checks: checks, kill: kill, pause: pause, recovery: recovery, convergedAfter: convergedAfter,
                                   holds: counts["hold"] ?? 0, unknown: unknown)
            return StormDrill.Report(
                passed: passed, seed: drill.seed, nodes: ids, patients: patients.count, loadSeconds: drill.seconds, injection: StormDrill.injection,
                killNode: kill, pauseNode: pause, timeline: events, requests: counts, answers: answers, unknownOutcomes: unknown, retries: retries,
                waves: waveReports, doubleBookings: doubles.count, lostAcks: lost.count, retryMismatches: mismatches.count,
                retryMismatchKinds: Dictionary(mismatchKinds.map { ($0.kind, 1) }, uniquingKeysWith: +),
                retriesUnansweredQuiet: unanswered.count, phantoms: phantoms.count, converged: converged, convergedAfterS: convergedAfter,
                blockRecoveryS: recovery, faults: faults, stuckAtEnd: stuck, checks: checks, summaryZh: zh, summaryEn: en,
                problems: Array(problems.prefix(20)), folder: keepFolder ? cluster.folder : nil)
        }
    }

    func dayIndex(_ date: String, from start: CivilDate) -> Int {
        (try? CivilDate(parsing: date)).map { $0.days(since: start) } ?? -1
    }

    // MARK: Setup

    /// Starts the nodes, seeds the demo data (each node its own department, as `demo seed`), waits
    /// for every session and quota bucket to be leased at home, signs the patients in by SMS code
    /// and lists the sessions through the patient API.
    func prepare() async throws -> ([StormPatient], [StormSession]) {
        try cluster.startAll()
        try await waitFor("a leader and every node registered and live") {
            let s = try await self.cluster.status(self.ids[0])
            guard let c = s.consensus, c.leader != nil else { return false }
            return self.ids.allSatisfy { id in c.members.contains { $0.id == id && $0.live } }
        }
        let start = BookingRush.firstVisitDate()
        var blocks: [BlockDefinition] = []
        for id in ids {
            let body = String(decoding: try JSONEncoder().encode(DemoSeedRequest(startDate: start.description, days: 7)), as: UTF8.self)
            try await waitFor("seed-demo on \(id)", seconds: 60) {
                let answer = try await self.cluster.call(id, "seed-demo " + body)
                guard let s = try? JSONDecoder().decode(DemoData.Summary.self, from: Data(answer)) else {
                    throw DrillError("seed-demo on \(id): \(String(decoding: answer, as: UTF8.self))")
                }
                blocks += s.blocks
                return true
            }
        }
        blockSlots = Dictionary(blocks.map { ($0.block, $0.slots) }, uniquingKeysWith: max)
        let names = Set(blocks.map(\.block)), buckets = ConsensusCoreOptions().quotaBuckets
        var unmet: [String] = []
        do {
            try await waitFor("every session and quota bucket leased to its home node", seconds: 120) {
                let v = try await self.cluster.bookings(self.ids[0])
                unmet = v.blocks.filter { !($0.valid && $0.holder == $0.home) }.map { "\($0.block) held by \($0.holder ?? "-")" }
                let defined = v.blocks.filter { names.contains($0.block) }.count
                let bucketCount = v.blocks.filter { $0.block.hasPrefix(quotaBucketPrefix) }.count
                if defined != names.count || bucketCount != buckets { unmet.append("\(defined) of \(names.count) sessions, \(bucketCount) of \(buckets) buckets") }
                return unmet.isEmpty
            }
        } catch {
            throw DrillError("\(error); \(unmet.prefix(5).joined(separator: "; "))")
        }
        for id in ids {
            let data = try Data(contentsOf: URL(fileURLWithPath: cluster.folder + "/\(id).json"))
            ports[id] = try JSONDecoder().decode(NodeConfig.self, from: data).patients?.port
        }
        ca = try String(contentsOfFile: cluster.folder + "/certs/admin/ca.crt", encoding: .utf8)
        let patients = try await signIn()
        // Sign-ins are replicated records: wait until every node has them before the load.
        try await cluster.waitUntilReplicasAgree("every sign-in on every replica")
        var sessions: [String: StormSession] = [:]
        for (dept, _) in StormDrill.departments {
            for day in 0..<7 {
                let date = try start.adding(days: day)
                let a = await send(patients[0], via: ids[day % ids.count], .GET, "/api/v1/slots?department=\(dept)&date=\(date)&all=1&limit=500", json: nil)
                guard let answer = a.answer, answer.status == 200 else { throw DrillError("slot search \(dept) \(date): \(a.attempt.text)") }
                for s in (answer.json?["slots"] as? [[String: Any]]) ?? [] {
                    guard let schedule = s["schedule"] as? String, let date = s["date"] as? String else { continue }
                    sessions[schedule, default: StormSession(schedule: schedule, department: dept, date: date, capacity: 0,
                                                            chief: s["title"] as? String == "chiefPhysician")].capacity += 1
                }
            }
        }
        return (patients, sessions.values.sorted { $0.schedule < $1.schedule })
    }

    /// Each patient asks a node for a code (from its own address), reads it from that node's SMS
    /// file and signs in there.
    func signIn() async throws -> [StormPatient] {
        var codesAsked: [Int: String] = [:]
        try await withThrowingTaskGroup(of: (Int, String).self) { tasks in
            for n in 0..<drill.patients {
                let node = ids[n % ids.count], person = BookingRush.person(n)
                tasks.addTask {
                    let c = try await PatientClient.connect(host: "127.0.0.1", port: self.ports[node]!, caPEM: self.ca, localAddress: BookingRush.address(n))
                    defer { Task { await c.close() } }
                    let a = try await BookingRush.sendRetryingBusy(c, .POST, "/api/v1/codes", json: ["name": person.name, "resident_id": person.residentID, "mobile": person.mobile])
                    guard a.status == 201 else { throw DrillError("code for patient \(n): \(a.status) \(a.text)") }
                    return (n, node)
                }
            }
            for try await (n, node) in tasks { codesAsked[n] = node }
        }
        var codes: [String: String] = [:]
        try await waitFor("every sign-in code in the SMS files", seconds: 120) {
            for id in self.ids {
                let text = (try? String(contentsOfFile: self.cluster.folder + "/data/\(id)/sms-sent.jsonl", encoding: .utf8)) ?? ""
                for line in text.split(separator: "\n") {
                    guard let m = try? JSONDecoder().decode(SMSMessage.self, from: Data(line.utf8)), m.kind == "code",
                          let code = m.text.split(whereSeparator: { !$0.isASCII || !$0.isNumber }).first(where: { $0.count == 6 }) else { continue }
                    codes[m.mobile] = String(code)
                }
            }
            return codes.count >= self.drill.patients
        }
        return try await withThrowingTaskGroup(of: StormPatient.self) { tasks in
            for n in 0..<drill.patients {
                let person = BookingRush.person(n), node = codesAsked[n]!, code = codes[person.mobile]!
                let seed = drill.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(n)
                tasks.addTask {
                    let c = try await PatientClient.connect(host: "127.0.0.1", port: self.ports[node]!, caPEM: self.ca, localAddress: BookingRush.address(n))
                    defer { Task { await c.close() } }
                    let a = try await BookingRush.sendRetryingBusy(c, .POST, "/api/v1/sessions", json: ["resident_id": person.residentID, "mobile": person.mobile, "code": code])
                    guard a.status == 201, let token = a.json?["token"] as? String, let key = a.json?["patient"] as? String else {
                        throw DrillError("sign-in of patient \(n): \(a.status) \(a.text)")
                    }
                    return StormPatient(index: n, key: key, token: token, address: BookingRush.address(n), seed: seed)
                }
            }
            return try await tasks.reduce(into: [StormPatient]()) { $0.append($1) }.sorted { $0.index < $1.index }
        }
    }

    // MARK: Requests

    /// One HTTPS request as patient `p` through `via`; no answer within the request timeout closes
    /// the connection (a stopped node never answers).
    func send(_ p: StormPatient, via: String, _ method: HTTPMethod, _ path: String, json: [String: String]?) async -> (answer: PatientClient.Answer?, attempt: StormAttempt) {
        let sentAt = elapsed()
        do {
            let client = try await p.client(via, port: ports[via]!, ca: ca)
            let future = client.request(method, path, json: json, token: p.token)
            let timer = client.eventLoop.scheduleTask(in: .milliseconds(Int64(drill.requestTimeoutSeconds * 1000))) { client.channel.close(promise: nil) }
            defer { timer.cancel() }
            let a = try await future.get()
            return (a, StormAttempt(t: sentAt, via: via, status: a.status, code: a.status >= 400 ? a.string("code") : nil,
                                    appointment: a.status == 201 ? a.string("id") : nil))
        } catch {
            p.drop(via)
            return (nil, StormAttempt(t: sentAt, via: via, status: nil, error: "\(error)".prefix(80).description))
        }
    }

    /// Sends request `key` until it has a final answer, at most `attempts` times, each through a
    /// random node (`first` for the first one if given); returns the final outcome, if any.
    @discardableResult
    func perform(_ p: StormPatient, _ key: String, resend: Bool = false, quiet: Bool = false, first: String? = nil) async -> String? {
        guard let r = lock.withLock({ requests[key] }) else { return nil }
        for attempt in 0..<drill.attempts {
            let via = attempt == 0 ? (first ?? ids[Int(p.rng.below(UInt64(ids.count)))]) : ids[Int(p.rng.below(UInt64(ids.count)))]
            var (_, a) = await send(p, via: via, .POST, r.path, json: r.body)
            a.resend = resend || quiet
            a.quiet = quiet
            let recorded = a
            lock.withLock { requests[key]?.attempts.append(recorded) }
            if let outcome = a.outcome { return outcome }
            // An app waits the second a busy node asks for; otherwise a short pause.
            try? await Task.sleep(for: .milliseconds(a.code == "server.busy" ? 1000 : quiet ? 500 : 300))
        }
        return nil
    }

    /// Registers a request (once per key) and returns its key.
    func request(_ p: StormPatient, _ kind: StormRequest.Kind, id: String, holdID: String, path: String, body: [String: String]?, wave: Int? = nil) -> String {
        let key = "\(kind.rawValue)|\(p.index)|\(id)"
        lock.withLock {
            if requests[key] == nil {
                requests[key] = StormRequest(kind: kind, patient: p.index, requestID: id, holdID: holdID, path: path, body: body, wave: wave)
            }
        }
        return key
    }

    func hold(_ p: StormPatient, requestID: String, body: [String: String], wave: Int?) async {
        var body = body
        body["request_id"] = requestID
        let key = request(p, .hold, id: requestID, holdID: StormAppointment.holdID(patient: p.key, requestID: requestID),
                          path: "/api/v1/appointments", body: body, wave: wave)
        guard let outcome = await perform(p, key) else { return }
        p.answered.append(key)
        if outcome.hasPrefix("201"), let a = lock.withLock({ requests[key]?.acknowledged?.appointment }) { p.pending.append(a) }
    }

    func step(_ p: StormPatient, _ kind: StormRequest.Kind, appointment: String) async {
        let holdID = String(appointment.prefix { $0 != "." })
        let path = "/api/v1/appointments/\(appointment)/\(kind == .confirm ? "confirm" : "cancel")"
        let key = request(p, kind, id: appointment, holdID: holdID, path: path, body: kind == .confirm ? ["payment": p.index % 2 == 0 ? "insurance" : "card"] : nil)
        let outcome = await perform(p, key)
        guard let outcome else { return }
        p.answered.append(key)
        p.pending.removeAll { $0 == appointment }
        if kind == .confirm, outcome.hasPrefix("2") { p.booked.append(appointment) }
        if kind == .cancel { p.booked.removeAll { $0 == appointment } }
    }

    /// The patient's list through a random node: appointments it did not know of (a hold whose
    /// answer was lost) join what it pays for or cancels.
    func list(_ p: StormPatient) async {
        lock.withLock { lists += 1 }
        let via = ids[Int(p.rng.below(UInt64(ids.count)))]
        guard let a = await send(p, via: via, .GET, "/api/v1/appointments", json: nil).answer, a.status == 200 else { return }
        for item in (a.json?["appointments"] as? [[String: Any]]) ?? [] {
            guard let id = item["id"] as? String, let status = item["status"] as? String else { continue }
            if status == "pending", !p.pending.contains(id), !p.booked.contains(id) { p.pending.append(id) }
            if status == "booked", !p.booked.contains(id) { p.pending.removeAll { $0 == id }; p.booked.append(id) }
        }
    }

    // MARK: The load

    /// One patient until the load ends: every wave when it comes (a hold on one of its 10 slots),
    /// and between them spread steps at exponential intervals.
    func patientLoop(_ p: StormPatient, waves: [StormSession], spread: [StormSession], end: Date) async {
        var wave = 0
        while Date() < end {
            if wave < waves.count, elapsed() >= plan.waves[wave] {
                let slot = 1 + Int(p.rng.below(10))
                await hold(p, requestID: "w\(wave + 1)-p\(p.index)", body: ["slot_id": "\(waves[wave].schedule)/\(slot)"], wave: wave + 1)
                wave += 1
                continue
            }
            let think = -log(1 - p.random()) * drill.thinkMs / 1000
            let nextWave = wave < waves.count ? plan.waves[wave] : .infinity
            let wake = min(elapsed() + think, nextWave, drill.seconds)
            let nap = wake - elapsed()
            if nap > 0 { try? await Task.sleep(for: .milliseconds(Int64(nap * 1000))) }
            if Date() >= end { break }
            if wave < waves.count, elapsed() >= plan.waves[wave] { continue }
            await spreadStep(p, spread: spread)
        }
    }

    /// Pay for a hold (or drop it), cancel a booking, look at the list, send an answered request
    /// again, or hold a slot of a random session.
    func spreadStep(_ p: StormPatient, spread: [StormSession]) async {
        let r = p.random()
        if !p.answered.isEmpty, r < drill.resendShare {
            let key = p.answered[Int(p.rng.below(UInt64(p.answered.count)))]
            await perform(p, key, resend: true)
        } else if let a = p.pending.first {
            await step(p, p.random() < 0.85 ? .confirm : .cancel, appointment: a)
        } else if r < 0.35 {
            await list(p)
        } else if !p.booked.isEmpty, r < 0.55 {
            await step(p, .cancel, appointment: p.booked[Int(p.rng.below(UInt64(p.booked.count)))])
        } else {
            p.nextRequest += 1
            let s = spread[Int(p.rng.below(UInt64(spread.count)))]
            await hold(p, requestID: "s\(p.nextRequest)-p\(p.index)", body: ["schedule_id": s.schedule], wave: nil)
        }
    }

    /// Every 5 s during the load, each node that is up: no slot with two active bookings.
    func sampleDoubles(until end: Date) async {
        while Date() < end {
            try? await Task.sleep(for: .seconds(5))
            for id in ids where !isDown(id) {
                guard let v = try? await within(5, { try await self.cluster.bookings(id) }) else { continue }
                let t = elapsed()
                for (slot, holders) in StormChecks.doubleBookings(v) {
                    lock.withLock { loadDoubles.append("\(id) at \(t) s: \(slot) held by \(holders.sorted())") }
                }
            }
        }
    }

    // MARK: Faults and block probes

    /// SIGKILL `kill` and restart it; SIGSTOP `pause` and SIGCONT it; after each return, probe the
    /// blocks the node held.
    func faults(kill: String, pause: String, sessions: [StormSession]) async -> [StormDrill.Fault] {
        var out: [StormDrill.Fault] = []
        await sleep(until: plan.kill)
        let (killBlocks, leaderAtKill) = await heldBlocks(by: kill)
        lock.withLock { _ = down.insert(kill) }
        cluster.killHard(kill)
        let killedAt = elapsed()
        note("SIGKILL \(kill) (it held \(killBlocks.count) blocks; the leader was \(leaderAtKill ?? "unknown"))")
        await sleep(until: plan.restart)
        var returned: Double?
        do {
            try cluster.start(kill)
            returned = elapsed()
            note("restart \(kill)")
        } catch {
            problem("restart of \(kill) failed: \(error)")
        }
        lock.withLock { _ = down.remove(kill) }
        let firstProbe = Task { await self.probe(kind: "sigkill", node: kill, leader: leaderAtKill, at: killedAt, returnedAt: returned, blocks: killBlocks, sessions: sessions) }

        await sleep(until: plan.stop)
        let (pauseBlocks, leaderAtStop) = await heldBlocks(by: pause)
        lock.withLock { _ = down.insert(pause) }
        cluster.signal(pause, SIGSTOP)
        let stoppedAt = elapsed()
        note("SIGSTOP \(pause) (it held \(pauseBlocks.count) blocks; the leader was \(leaderAtStop ?? "unknown"))")
        await sleep(until: plan.cont)
        cluster.signal(pause, SIGCONT)
        let continued = elapsed()
        note("SIGCONT \(pause)")
        lock.withLock { _ = down.remove(pause) }
        let secondProbe = Task { await self.probe(kind: "sigstop", node: pause, leader: leaderAtStop, at: stoppedAt, returnedAt: continued, blocks: pauseBlocks, sessions: sessions) }
        out.append(await firstProbe.value)
        out.append(await secondProbe.value)
        return out
    }

    func sleep(until t: Double) async {
        let left = t - elapsed()
        if left > 0 { try? await Task.sleep(for: .milliseconds(Int64(left * 1000))) }
    }

    /// The blocks `node` holds, and the Raft leader, as another node sees them just before the fault.
    func heldBlocks(by node: String) async -> (blocks: [BlockView], leader: String?) {
        for id in ids where id != node && !isDown(id) {
            if let v = try? await within(5, { try await self.cluster.bookings(id) }) {
                let leader = try? await within(5, { try await self.cluster.status(id).consensus?.leader })
                return (v.blocks.filter { $0.holder == node && $0.valid }, leader ?? nil)
            }
        }
        problem("no node answered which blocks \(node) held before its fault")
        return ([], nil)
    }

    /// After `node`'s return: waits until each block it held is back at its home node, then books
    /// in it through every node until acknowledged (a session: any free slot, from the last one
    /// down, clear of the waves' ten; a quota bucket: a booking under a quota of a made-up patient
    /// of that bucket). A block's recovery is its slowest node's acknowledgement after the return.
    func probe(kind: String, node: String, leader: String?, at: Double, returnedAt: Double?, blocks: [BlockView], sessions: [StormSession]) async -> StormDrill.Fault {
        guard let returnedAt else {
            return StormDrill.Fault(kind: kind, node: node, leaderBefore: leader, atS: at, returnedAtS: nil, blocks: blocks.count, blockRecoveryS: nil, slowest: [], unrecovered: [])
        }
        let deadline = returnedAt + 30
        let homes = Locked<[String: (epoch: UInt64, at: Double)]>([:])
        let names = Set(blocks.map(\.block))
        // Where each block is: another node's view every half second (the returning node's own
        // view may still be its state from before the fault).
        let others = ids.filter { $0 != node }
        let watcher = Task {
            var k = 0
            while self.elapsed() < deadline, homes.with({ $0.count }) < names.count {
                k += 1
                let via = others[k % others.count]
                if !self.isDown(via), let v = try? await within(5, { try await self.cluster.bookings(via) }) {
                    let t = self.elapsed()
                    for b in v.blocks where names.contains(b.block) && b.valid && b.holder == b.home {
                        homes.with { h in if h[b.block] == nil { h[b.block] = (b.epoch, t) } }
                    }
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        // A probe session for the quota buckets: one of another node's, free of the returning one.
        let bucketSession = sessions.filter { $0.department != node }.max { ($0.capacity, $0.date) < ($1.capacity, $1.date) }
        let gate = Gate(16)
        let results = await withTaskGroup(of: (String, String, Double?, Bool, [String]).self) { group in
            for (i, b) in blocks.enumerated() {
                for via in ids {
                    group.addTask {
                        var answers: [String] = []
                        var k = 0
                        while self.elapsed() < deadline {
                            if via != node, self.isDown(via) { return (b.block, via, nil, true, answers) }
                            guard let home = homes.with({ $0[b.block] }) else {
                                try? await Task.sleep(for: .milliseconds(100))
                                continue
                            }
                            k += 1
                            let command = self.probeCommand(kind: kind, index: i, attempt: k, via: via, block: b, bucketSession: bucketSession)
                            await gate.enter()
                            let answer = try? await within(4, { try await self.cluster.book(via, command) })
                            await gate.leave()
                            let t = self.elapsed() - returnedAt
                            answers = Array((answers + ["\(answer.map { $0.outcome == "booked" ? "booked@\($0.booking?.epoch ?? 0)" : $0.code ?? $0.outcome } ?? "no answer") at \(String(format: "%.1f", t)) s"]).suffix(3))
                            if let answer, let done = self.acknowledges(answer, block: b, homeEpoch: home.epoch) {
                                if let booked = done { self.lock.withLock { self.probes.append(booked) } }
                                return (b.block, via, (t * 1000).rounded() / 1000, false, answers)
                            }
                            try? await Task.sleep(for: .milliseconds(200))
                        }
                        return (b.block, via, nil, false, answers)
                    }
                }
            }
            var all: [(String, String, Double?, Bool, [String])] = []
            for await r in group { all.append(r) }
            return all
        }
        watcher.cancel()
        let homesNow = homes.with { $0 }
        var recoveries: [StormDrill.BlockRecovery] = []
        for b in blocks {
            let mine = results.filter { $0.0 == b.block }
            let asked = mine.filter { !$0.3 }
            let times = asked.compactMap { r in r.2.map { (r.1, $0) } }
            recoveries.append(StormDrill.BlockRecovery(
                block: b.block, home: b.home, homeAtS: homesNow[b.block].map { (($0.at - returnedAt) * 1000).rounded() / 1000 },
                recoveryS: times.count == asked.count && !asked.isEmpty ? times.map(\.1).max() : nil,
                viaS: Dictionary(times, uniquingKeysWith: min), interrupted: mine.filter(\.3).map(\.1).sorted(),
                lastAnswers: (homesNow[b.block] == nil ? ["not back at its home node \(b.home) within 30 s of the return"] : [])
                    + asked.filter { $0.2 == nil }.flatMap { r in r.4.map { "\(r.1): \($0)" } }))
        }
        let unrecovered = recoveries.filter { $0.recoveryS == nil }
        let slowest = recoveries.filter { $0.recoveryS != nil }.sorted { $0.recoveryS! > $1.recoveryS! }
        let worst = unrecovered.isEmpty ? slowest.first?.recoveryS ?? 0 : nil
        note("\(kind) \(node): \(blocks.count) blocks probed, \(unrecovered.count) never acknowledged again, slowest \(worst.map { "\($0) s" } ?? "-")")
        // Every block over the bound, or else the five slowest.
        let late = slowest.filter { $0.recoveryS! > drill.recoveryBoundSeconds }
        return StormDrill.Fault(kind: kind, node: node, leaderBefore: leader, atS: at, returnedAtS: returnedAt, blocks: blocks.count, blockRecoveryS: worst,
                                slowest: late.count > 5 ? late : Array(slowest.prefix(5)), unrecovered: unrecovered)
    }

    func probeCommand(kind: String, index: Int, attempt: Int, via: String, block: BlockView, bucketSession: StormSession?) -> BookCommand {
        let id = "probe-\(kind)-\(index)-\(via)-\(attempt)"
        if block.block.hasPrefix(quotaBucketPrefix), let s = bucketSession {
            // A made-up patient whose quota lives in this bucket (bounded search; 16 buckets).
            var patient = id
            for n in 0..<10_000 {
                patient = "storm-probe-\(id)-\(n)"
                if ConsensusCore.quotaBucket(patient: patient, buckets: ConsensusCoreOptions().quotaBuckets) == block.block { break }
            }
            let slots = Array((0..<s.capacity).reversed())
            return BookCommand(requestID: id, block: s.schedule, slot: slots[0], patient: patient, alternatives: Array(slots.dropFirst()),
                               quota: .init(visitDate: s.date, department: "storm-probe"), timeoutMs: 2000)
        }
        let slots = Array((0..<min(blockSlots[block.block] ?? 1, 65)).reversed())
        return BookCommand(requestID: id, block: block.block, slot: slots.first ?? 0, patient: "storm-probe", alternatives: Array(slots.dropFirst()), timeoutMs: 2000)
    }

    /// The sessions' slot counts (the lease table does not carry them), and the sessions the
    /// load books in; both set before the load.
    private(set) var blockSlots: [String: Int] = [:]
    private(set) var sessions: [StormSession] = []

    /// Whether a probe's answer shows the block working: booked under the home epoch or later, or
    /// a final refusal by the holder (full; for a bucket, the quota). The booking, if one was made.
    func acknowledges(_ a: BookAnswer, block: BlockView, homeEpoch: UInt64) -> BookingRecord?? {
        if a.outcome == "booked", let b = a.booking {
            return block.block.hasPrefix(quotaBucketPrefix) || b.epoch >= homeEpoch ? .some(b) : nil
        }
        let final: Set<String> = block.block.hasPrefix(quotaBucketPrefix) ? ["lease.slot_taken", "quota.exceeded"] : ["lease.slot_taken"]
        return a.outcome == "refused" && final.contains(a.code ?? "") ? .some(nil) : nil
    }

    // MARK: After the load

    /// Reads every node's bookings view and every patient's list through every node, once a
    /// second, until they all agree or 90 s passed; the time they first agreed (s after the load).
    func converge(_ patients: [StormPatient]) async -> ([String: BookingsView], [Int: [String: [String: String]]], Double?, [String]) {
        let loadEnd = Date()
        var views: [String: BookingsView] = [:]
        var lists: [Int: [String: [String: String]]] = [:]
        var differences: [String] = ["not read"]
        // What differed at the last reading begun within the bound: the check's examples if the
        // nodes agree only later.
        var atBound: [String] = []
        while Date().timeIntervalSince(loadEnd) < 90 {
            let began = Date().timeIntervalSince(loadEnd)
            views = [:]
            for id in ids { views[id] = try? await within(15, { try await self.cluster.bookings(id) }) }
            lists = await readLists(patients)
            differences = ids.filter { views[$0] == nil }.map { "\($0): no bookings view" }
                + StormChecks.viewDifferences(views.compactMapValues { $0 }) + StormChecks.listDifferences(lists, nodes: ids)
            if differences.isEmpty {
                let t = (Date().timeIntervalSince(loadEnd) * 10).rounded() / 10
                note("the nodes agree, \(t) s after the load")
                let late = t <= drill.convergeSeconds ? [] : ["agreed only \(t) s after the load; at \(Int(drill.convergeSeconds)) s they differed: \(atBound.count)"] + atBound
                return (views, lists, t, late)
            }
            if began <= drill.convergeSeconds { atBound = differences }
            try? await Task.sleep(for: .seconds(1))
        }
        note("the nodes still disagree 90 s after the load (\(differences.count) differences)")
        return (views, lists, nil, differences)
    }

    func readLists(_ patients: [StormPatient]) async -> [Int: [String: [String: String]]] {
        await withTaskGroup(of: (Int, [String: [String: String]]).self) { group in
            for p in patients {
                group.addTask {
                    var byNode: [String: [String: String]] = [:]
                    for via in self.ids {
                        for _ in 0..<3 where byNode[via] == nil {
                            guard let a = await self.send(p, via: via, .GET, "/api/v1/appointments", json: nil).answer, a.status == 200 else {
                                try? await Task.sleep(for: .milliseconds(300))
                                continue
                            }
                            var list: [String: String] = [:]
                            for item in (a.json?["appointments"] as? [[String: Any]]) ?? [] {
                                if let id = item["id"] as? String, let status = item["status"] as? String { list[id] = status }
                            }
                            byNode[via] = list
                        }
                    }
                    return (p.index, byNode)
                }
            }
            var out: [Int: [String: [String: String]]] = [:]
            for await (index, byNode) in group { out[index] = byNode }
            return out
        }
    }

    /// Answered requests sent again once the cluster is quiet, each through the nodes in turn (a
    /// bounded sample: the holds of cancelled appointments first, then requests that needed a
    /// retry, then refused holds, then the rest). Those that got no final answer, with what they got.
    func reask(_ all: [StormRequest], truth: StormTruth, patients: [StormPatient]) async -> [String] {
        let answered = all.filter { StormChecks.canonical($0, truth) != nil }
        let cancelledHolds = answered.filter { $0.kind == .hold && truth.cancelled.contains($0.holdID) }
        let retried = answered.filter { $0.attempts.count > 1 }
        let refused = answered.filter { $0.kind == .hold && $0.acknowledged == nil }
        var picked: [String] = []
        var seen: Set<String> = []
        let quarter = max(1, drill.reaskLimit / 4)
        // Each group drawn from at random (by the seed), so no patient dominates.
        for (group, share) in [(cancelledHolds, quarter), (retried, quarter), (refused, quarter), (answered, drill.reaskLimit)] {
            var taken = 0
            for r in group.shuffled(using: &rng) where picked.count < drill.reaskLimit && taken < share {
                let key = "\(r.kind.rawValue)|\(r.patient)|\(r.requestID)"
                if seen.insert(key).inserted { picked.append(key); taken += 1 }
            }
        }
        note("quiet re-ask of \(picked.count) answered requests")
        // One task per patient (its requests one after another: a patient's state is its own task's).
        let owners = lock.withLock { picked.map { requests[$0]?.patient ?? -1 } }
        let byPatient = Dictionary(grouping: picked.enumerated(), by: { owners[$0.offset] })
        let byIndex = Dictionary(uniqueKeysWithValues: patients.map { ($0.index, $0) })
        let gate = Gate(12)
        let unanswered = await withTaskGroup(of: [String].self) { group in
            for (index, keys) in byPatient {
                guard let p = byIndex[index] else { continue }
                group.addTask {
                    await gate.enter()
                    var out: [String] = []
                    for (i, key) in keys {
                        guard let r = self.lock.withLock({ self.requests[key] }) else { continue }
                        if await self.perform(p, key, quiet: true, first: self.ids[i % self.ids.count]) != nil { continue }
                        let got = self.lock.withLock { self.requests[key]?.attempts.filter(\.quiet).map(\.text) ?? [] }
                        let cancelled = truth.cancelled.contains(r.holdID) ? " (appointment cancelled)" : ""
                        out.append("\(r.name)\(cancelled): first outcome \(StormChecks.canonical(r, truth)?.outcome ?? "-"); quiet re-ask got \(got.joined(separator: "; "))")
                    }
                    await gate.leave()
                    return out
                }
            }
            var out: [String] = []
            for await u in group { out += u }
            return out.sorted()
        }
        return unanswered
    }

    /// In the quiet cluster at the end, every session and quota bucket books through every node
    /// (up to three tries each): the blocks that do not.
    func sweep(views: [String: BookingsView]) async -> [String] {
        guard let blocks = views.values.first?.blocks else { return ["no bookings view to sweep"] }
        let sessions = blocks.filter { !$0.block.hasPrefix(quotaBucketPrefix) }
        // Probe bookings for the buckets go into the session with the most room.
        let bucketSession = self.sessions.max { ($0.capacity, $0.date) < ($1.capacity, $1.date) }
        let gate = Gate(16)
        let stuck = await withTaskGroup(of: String?.self) { group in
            for (i, b) in blocks.enumerated() {
                for via in ids {
                    group.addTask {
                        var last = ""
                        for k in 1...3 {
                            let command = self.probeCommand(kind: "end", index: i, attempt: k, via: via, block: b, bucketSession: bucketSession)
                            await gate.enter()
                            let answer = try? await within(4, { try await self.cluster.book(via, command) })
                            await gate.leave()
                            // Its bookings come after the views the checks read: not checked there.
                            if let answer, self.acknowledges(answer, block: b, homeEpoch: 0) != nil { return nil }
                            last = answer.map { $0.code ?? $0.outcome } ?? "no answer"
                            try? await Task.sleep(for: .milliseconds(500))
                        }
                        return "\(b.block) (holder \(b.holder ?? "-"), epoch \(b.epoch)) through \(via): \(last)"
                    }
                }
            }
            var out: [String] = []
            for await s in group { if let s { out.append(s) } }
            return out.sorted()
        }
        note("end sweep: \(sessions.count) sessions and \(blocks.count - sessions.count) buckets through every node, \(stuck.count) stuck")
        return stuck
    }

    /// A check that passes on no load would be no check: the load must have held, confirmed,
    /// cancelled, rushed every wave and probed blocks after both faults.
    func workloadProblems(_ all: [StormRequest], waves: [StormSession], faults: [StormDrill.Fault]) -> [String] {
        var out: [String] = []
        for kind in [StormRequest.Kind.hold, .confirm, .cancel] where !all.contains(where: { $0.kind == kind && $0.acknowledged != nil }) {
            out.append("no \(kind.rawValue) was acknowledged")
        }
        for k in 1...waves.count where all.filter({ $0.wave == k }).count <= 10 {
            out.append("wave \(k) sent \(all.filter { $0.wave == k }.count) holds for 10 slots")
        }
        for f in faults where f.blocks == 0 || f.returnedAtS == nil { out.append("\(f.kind) \(f.node): \(f.blocks) blocks probed, returned \(f.returnedAtS.map { "at \($0) s" } ?? "never")") }
        return out
    }

    func summary(passed: Bool, checks: [StormDrill.Check], kill: String, pause: String, recovery: Double?, convergedAfter: Double?,
                 holds: Int, unknown: Int) -> (String, String) {
        let failedZh = checks.filter { !$0.passed }.map { "\($0.zh)（\($0.count)）" }.joined(separator: "；")
        let failedEn = checks.filter { !$0.passed }.map { "\($0.en) (\($0.count))" }.joined(separator: "; ")
        let zh = "风暴演练：\(passed ? "通过" : "失败")。\(drill.patients) 位患者、\(Int(drill.seconds)) 秒负载，SIGKILL \(kill) 后重启，SIGSTOP \(pause) \(Int(drill.pauseSeconds)) 秒；"
            + "锁号请求 \(holds) 个，始终无结果 \(unknown) 个；号源块恢复 \(recovery.map { "\($0) 秒" } ?? "未全部恢复")；"
            + "各节点\(convergedAfter.map { "在负载结束 \($0) 秒后一致" } ?? "未一致")。" + (passed ? "全部检查通过。" : "未通过：\(failedZh)。")
        let en = "Storm drill: \(passed ? "passed" : "FAILED"). \(drill.patients) patients, \(Int(drill.seconds)) s of load, SIGKILL \(kill) and restart, SIGSTOP \(pause) for \(Int(drill.pauseSeconds)) s; "
            + "\(holds) holds sent, \(unknown) requests never got an outcome; block recovery \(recovery.map { "\($0) s" } ?? "incomplete"); "
            + "the nodes \(convergedAfter.map { "agreed \($0) s after the load" } ?? "did not agree")." + (passed ? " Every check passed." : " Failed: \(failedEn).")
        return (zh, en)
    }
}

/// At most `n` callers at once inside (the probes' admin connections are TLS handshakes).
actor Gate {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []
    init(_ n: Int) { free = n }
    func enter() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiting.append($0) }
    }
    func leave() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}

/// `work`'s value, or an error after `seconds`; the work itself goes on (a stopped node answers
/// once continued), so this only bounds the wait.
func within<T: Sendable>(_ seconds: Double, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
    let pending = Locked<CheckedContinuation<T, any Error>?>(nil)
    return try await withCheckedThrowingContinuation { c in
        pending.with { $0 = c }
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            pending.with { p in defer { p = nil }; return p }?.resume(throwing: DrillError("无回答 / no answer in \(seconds) s"))
        }
        Task {
            do {
                let value = try await work()
                pending.with { p in defer { p = nil }; return p }?.resume(returning: value)
            } catch {
                pending.with { p in defer { p = nil }; return p }?.resume(throwing: error)
            }
            timer.cancel()
        }
    }
}

/// A value behind a lock, for tasks that share it.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
}
