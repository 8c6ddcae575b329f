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
import Synchronization

/// The 15:00 release rush against real node processes (`clinicmesh bench booking`): distinct
/// patients, each with its own resident ID and its own loopback source address, sign in by SMS
/// code, then search → hold → confirm (sometimes cancel) on an open-loop schedule; about one in
/// ten is a scalper who keeps holding and never pays. Afterwards every node's bookings are read
/// back: no slot may have two holders, and every acknowledged confirmation must be there.
public struct BookingRush: Sendable {
    public struct Options: Sendable {
        public var nodes = 3
        public var clients = 2000
        /// Mean think time between one client's requests (Poisson); 0: back to back.
        public var thinkMs = 1000.0
        /// Every patient's first request falls uniformly within the first think time, not at its
        /// Poisson time: about 1.4 times the load in the first second (a harsher start than the
        /// Poisson schedule, to see how the nodes take a burst).
        public var burstStart = false
        public var seconds = 15.0
        public var binary: String
        /// Slots per session (the demo's sessions, seven days, of 内科, 外科 and 儿科).
        public var capacity = 60
        public var scalperShare = 0.1
        public var seed: UInt64 = 1
        public init(binary: String) { self.binary = binary }
    }

    public struct Report: Codable, Sendable {
        public var nodes: Int
        public var clients: Int
        public var thinkMs: Double
        /// "poisson", "burst" (`Options.burstStart`), or "back_to_back" (think time 0).
        public var start: String
        public var seconds: Double
        public var requests: Int
        public var requestsPerS: Double
        /// Requests a node took in and answered: all of them but those shed as `server.busy`.
        public var servedPerS: Double
        public var bookings: Int
        public var bookingsPerS: Double
        public var p50Ms: Double
        public var p99Ms: Double
        public var p999Ms: Double
        public var maxMs: Double
        public var byKind: [String: Int]
        /// p50 and p99 (ms) of each kind of request.
        public var latencyByKind: [String: [Double]]
        public var refusedByReason: [String: Int]
        public var errors: Int
        public var doubleBookings: Int
        public var lostAcks: Int
        /// p99 (ms) of the answers that came in each second of the run: the first seconds, when
        /// every patient still holds and pays, are the heaviest.
        public var p99BySecondMs: [Double]
        /// Answers that came in each second of the run: the load's shape.
        public var requestsBySecond: [Int]
        public var generatorLateP99Ms: Double
        public var generatorLateMaxMs: Double
        /// Raft terms begun and lease epochs moved during the run (as the first node saw them):
        /// a latency spike with neither was not a failover.
        public var raftTermsDuringRun: Int?
        public var leaseMovesDuringRun: Int?
        /// Each node's consensus disk during the run: a tail with slow commits was the disk.
        public var diskWritesDuringRun: [String: DiskWrites]?
        public var slotsOffered: Int
        /// CPU the node processes used during the run, per request (ms), and the generator's own:
        /// steadier than tail latency on a shared machine, so the figure to compare builds by.
        public var nodeCPUMsPerRequest: Double?
        public var generatorCPUMsPerRequest: Double?
        /// Cores the nodes and the generator used together, on average over the run.
        public var cpuCores: Double?

        enum CodingKeys: String, CodingKey {
            case nodes, clients, thinkMs = "think_ms", start, seconds, requests, requestsPerS = "requests_per_s", servedPerS = "served_requests_per_s", bookings, bookingsPerS = "bookings_per_s"
            case p50Ms = "p50_ms", p99Ms = "p99_ms", p999Ms = "p999_ms", maxMs = "max_ms", byKind = "by_kind", latencyByKind = "latency_by_kind_p50_p99_ms"
            case refusedByReason = "refused_by_reason", errors, doubleBookings = "double_bookings", lostAcks = "lost_acks"
            case p99BySecondMs = "p99_by_second_ms", requestsBySecond = "requests_by_second", generatorLateP99Ms = "generator_late_p99_ms", generatorLateMaxMs = "generator_late_max_ms", slotsOffered = "slots_offered"
            case raftTermsDuringRun = "raft_terms_during_run", leaseMovesDuringRun = "lease_moves_during_run", diskWritesDuringRun = "disk_writes_during_run"
            case nodeCPUMsPerRequest = "node_cpu_ms_per_request", generatorCPUMsPerRequest = "generator_cpu_ms_per_request", cpuCores = "cpu_cores"
        }
    }

    let options: Options
    let say: @Sendable (String) -> Void
    public init(_ options: Options, say: @escaping @Sendable (String) -> Void) { self.options = options; self.say = say }

    static let departments = [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")]
    /// The bench's own process in the CPU accounting (node ids are department ids).
    static let generatorName = "generator"
    /// Days of sessions seeded from the first visit date (the release window is a week).
    static let seededDays = 7

    /// The rush on a cluster of its own, removed afterwards (unless `CLINICMESH_BENCH_KEEP` is set).
    public func run() async throws -> Report {
        let cluster = try Self.makeCluster(nodes: options.nodes, binary: options.binary)
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        try cluster.startAll()
        return try await run(on: cluster)
    }

    /// The rush's nodes' tuning: the drills', with full durability (acknowledged means fsynced).
    public static var tuning: NodeConfig.Tuning {
        var tuning = LocalCluster.drillTuning
        tuning.durability = "full"
        return tuning
    }

    /// A cluster (not started) of the first `nodes` departments, as the rush needs it: the patient
    /// API and the metrics endpoint on every node.
    public static func makeCluster(nodes: Int, binary: String, tuning: NodeConfig.Tuning = BookingRush.tuning,
                                   folderPrefix: String = "clinicmesh-rush-") throws -> LocalCluster {
        try LocalCluster(departments: Array(departments.prefix(nodes)).map { (id: $0.0, department: $0.1) },
                         binary: binary, tuning: tuning, logLevel: "warning", folderPrefix: folderPrefix) { _, config in
            var p = PatientConfig()
            p.port = (try? LocalCluster.freePort()) ?? 0
            // Clients here are distinct addresses at about 1 request/s each; back to back they
            // go faster, so the per-address limit is raised for the bench (reported).
            p.perAddressBurst = 400
            p.perAddressPerSecond = 200
            config.patients = p
            config.metrics = .init(host: "127.0.0.1", port: (try? LocalCluster.freePort()) ?? 0)
        }
    }

    /// The rush against `cluster`, started and made by `makeCluster` (its nodes, not
    /// `options.nodes`, decide the departments); the cluster keeps running afterwards. Sessions
    /// of the coming week are seeded into it; whatever else it holds stays.
    public func run(on cluster: LocalCluster) async throws -> Report {
        let ids = cluster.ids
        let configs = try ids.reduce(into: [String: NodeConfig]()) { out, id in out[id] = try cluster.config(id) }
        let ports = configs.compactMapValues { $0.patients?.port }
        let metricsPorts = configs.compactMapValues { $0.metrics?.port }
        // Sessions of all three departments, on their own nodes (all on one node when alone).
        let start = Self.firstVisitDate()
        say("准备：播种 \(Self.seededDays) 天出诊，每时段 \(options.capacity) 个号 / seeding \(Self.seededDays) days of sessions, \(options.capacity) slots each")
        var slots = 0, sessions = 0
        for (i, id) in ids.enumerated() {
            let mine = ids.count == 1 ? Self.departments.map(\.0) : [Self.departments[i].0]
            let request = DemoSeedRequest(startDate: start.description, days: Self.seededDays, departments: mine, capacity: options.capacity)
            let seeded = try await Self.seed(cluster, id, request)
            slots += seeded.slots
            sessions += seeded.blocks.count
        }
        try await waitFor("every session and quota bucket leased", seconds: 120) {
            let view = try await cluster.bookings(ids[0], quotaBucketRecords: false)
            return view.blocks.count { !isQuotaBucket($0.block) } >= sessions && view.blocks.allSatisfy(\.valid)
        }
        let ca = try String(contentsOfFile: cluster.folder + "/certs/admin/ca.crt", encoding: .utf8)
        // The generator's connections share two event loop threads, so that the generator keeps
        // enough of a saturated machine for its timers to fire on time.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.shutdownGracefully { _ in } }

        say("准备：\(options.clients) 位患者各自从自己的地址登录（短信验证码）/ \(options.clients) patients sign in from their own addresses (SMS codes)")
        let patients = try await signIn(cluster: cluster, ids: ids, ports: ports, ca: ca, group: group)
        // Patients sign in before 15:00: their records reach every replica before the rush, not
        // during its first seconds.
        say("准备：等待登录数据复制到每个节点 / waiting for the sign-ins to reach every replica")
        try await cluster.waitUntilReplicasAgree("every sign-in on every replica")

        say("运行：\(options.seconds) 秒，平均思考 \(options.thinkMs) ms / running \(options.seconds) s, mean think time \(options.thinkMs) ms")
        let (schedules, listed) = try await sessionList(patients[0], from: start)
        // Demand spreads over the whole seeded week, so bookings do not run out during the run.
        guard listed == slots else {
            throw DrillError("生成器只找到 \(slots) 个号中的 \(listed) 个，号源会在运行中途耗尽 / the generator found \(listed) of the \(slots) slots seeded; the rush would run out of slots early")
        }
        var pids = ids.reduce(into: [String: Int32]()) { $0[$1] = cluster.pid($1) }
        pids[Self.generatorName] = getpid()
        let before = await Marks.read(cluster, ids[0], metricsPorts: metricsPorts)
        let cpu = ProcessCPU.Meter(pids)
        let started = NIODeadline.now()
        let stats = Stats(started: started)
        try await Generator(rush: self, group: group, schedules: schedules, stats: stats)
            .run(patients, until: started + .milliseconds(Int64(options.seconds * 1000))).get()
        let elapsed = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        let cpuUsed = cpu.used()
        for p in patients { await p.client.close() }
        let after = await Marks.read(cluster, ids[0], metricsPorts: metricsPorts)

        say("检查：从每个节点读回预约 / checking: reading every node's bookings back")
        try await Task.sleep(for: .seconds(2))
        let (double, lost) = try await verify(cluster: cluster, ids: ids, patients: patients)
        var report = stats.report(options: options, elapsed: elapsed, doubleBookings: double, lostAcks: lost, slots: slots)
        report.nodes = ids.count
        after.fill(&report, since: before)
        if let cpuUsed, report.requests > 0 {
            let nodes = cpuUsed.filter { $0.key != Self.generatorName }.values.reduce(0, +)
            let generator = cpuUsed[Self.generatorName] ?? 0
            func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
            report.nodeCPUMsPerRequest = rounded(nodes * 1000 / Double(report.requests))
            report.generatorCPUMsPerRequest = rounded(generator * 1000 / Double(report.requests))
            report.cpuCores = ((nodes + generator) / elapsed * 100).rounded() / 100
        }
        return report
    }

    /// Writes demo sessions (and their blocks) through node `id`, asking again while it starts up.
    static func seed(_ cluster: LocalCluster, _ id: String, _ request: DemoSeedRequest) async throws -> DemoData.Summary {
        let body = String(decoding: try JSONEncoder().encode(request), as: UTF8.self)
        var summary: DemoData.Summary?
        try await waitFor("seed \(id)", seconds: 60) {
            let answer = try await cluster.call(id, "seed-demo " + body)
            guard let s = try? JSONDecoder().decode(DemoData.Summary.self, from: Data(answer)) else {
                throw DrillError("seed-demo on \(id): \(String(decoding: answer, as: UTF8.self))")
            }
            summary = s
            return true
        }
        return summary!
    }

    /// What the cluster had counted at one moment; two of them, before and after the run, say
    /// whether a failover or a stalling disk came during it.
    struct Marks {
        /// One node's Raft term and its view of every block's lease epoch (nil: it did not answer).
        var consensus: (term: UInt64, epochs: [String: UInt64])?
        /// Each node's consensus disk-write histogram (a node that did not answer is left out).
        var disks: [String: DiskWrites.Buckets]

        static func read(_ cluster: LocalCluster, _ id: String, metricsPorts: [String: Int]) async -> Marks {
            var consensus: (term: UInt64, epochs: [String: UInt64])?
            if let status = try? await cluster.status(id), let blocks = try? await cluster.bookings(id, quotaBucketRecords: false).blocks {
                consensus = (status.consensus?.term ?? 0, Dictionary(blocks.map { ($0.block, $0.epoch) }, uniquingKeysWith: max))
            }
            var disks: [String: DiskWrites.Buckets] = [:]
            for (node, port) in metricsPorts {
                if let scrape = try? await PlainHTTP.get(port: port, path: "/metrics") { disks[node] = DiskWrites.buckets(inExposition: scrape.body) }
            }
            return Marks(consensus: consensus, disks: disks)
        }

        /// The report's counts of what happened between `before` and these marks.
        func fill(_ report: inout Report, since before: Marks) {
            if let now = consensus, let then = before.consensus {
                report.raftTermsDuringRun = Int(now.term) - Int(then.term)
                report.leaseMovesDuringRun = now.epochs.reduce(0) { $0 + Int($1.value) - Int(then.epochs[$1.key] ?? 0) }
            }
            let moved = disks.reduce(into: [String: DiskWrites]()) { out, node in
                if let then = before.disks[node.key] { out[node.key] = DiskWrites.between(then, node.value) }
            }
            if !moved.isEmpty { report.diskWritesDuringRun = moved }
        }
    }

    /// The first visit date: tomorrow, or today before 15:00 (so all seven days are open now).
    static func firstVisitDate() -> CivilDate {
        let now = (try? ShanghaiTime.civil(of: Date())) ?? (date: try! CivilDate(year: 2026, month: 1, day: 1), time: try! LocalTime(hour: 0, minute: 0))
        return (now.time.hour >= 15 ? (try? now.date.adding(days: 1)) : now.date) ?? now.date
    }

    // MARK: Patients

    final class Patient: Sendable {
        let index: Int
        let scalper: Bool
        let client: PatientClient
        let token: String
        let state: Mutex<State>
        struct State {
            var rng: SplitMix64
            var held: [String] = []
            var confirmed: Set<String> = []
            var cancelled: Set<String> = []
            /// Cancellations sent, answered or not (one without an answer may still have taken effect).
            var cancelTried: Set<String> = []
            var nextRequest = 0
        }
        init(index: Int, scalper: Bool, client: PatientClient, token: String, seed: UInt64) {
            self.index = index; self.scalper = scalper; self.client = client; self.token = token
            state = Mutex(State(rng: SplitMix64(seed: seed)))
        }
        /// Each patient's own reproducible choices. SplitMix64 mixes its output, so patients whose
        /// seeds differ by one draw unrelated values; a generator that does not mix (a bare
        /// xorshift) would make neighbouring patients' first requests come due together.
        func random() -> Double {
            state.withLock { s in Double(s.rng.next() >> 11) / Double(1 << 53) }
        }
    }

    static func person(_ n: Int) -> (name: String, residentID: String, mobile: String) {
        let birth = (try? CivilDate(year: 1950 + n % 60, month: 1 + (n / 60) % 12, day: 1 + (n / 720) % 28)) ?? (try! CivilDate(year: 1980, month: 1, day: 1))
        let id = (try? ResidentID.make(regionCode: "130102", birthDate: birth, sequence: (n / 20_160) % 1000))?.value ?? ""
        let names = ["王芳", "李伟", "张敏", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴娟"]
        return (names[n % names.count], id, "139" + String(format: "%08d", n))
    }

    /// 127.0.x.y for client n (never 127.0.0.1, the nodes' own address).
    static func address(_ n: Int) -> String { "127.0.\((n + 2) / 250).\((n + 2) % 250 + 2)" }

    func signIn(cluster: LocalCluster, ids: [String], ports: [String: Int], ca: String, group: any EventLoopGroup) async throws -> [Patient] {
        var clients: [Int: PatientClient] = [:]
        for batch in stride(from: 0, to: options.clients, by: 100) {
            let range = batch..<min(options.clients, batch + 100)
            try await withThrowingTaskGroup(of: (Int, PatientClient).self) { tasks in
                for n in range {
                    let node = ids[n % ids.count], person = Self.person(n)
                    tasks.addTask {
                        let c = try await PatientClient.connect(host: "127.0.0.1", port: ports[node]!, caPEM: ca, localAddress: Self.address(n), group: group)
                        let a = try await Self.sendRetryingBusy(c, .POST, "/api/v1/codes", json: ["name": person.name, "resident_id": person.residentID, "mobile": person.mobile])
                        guard a.status == 201 else { throw DrillError("code for patient \(n): \(a.status) \(a.text)") }
                        return (n, c)
                    }
                }
                for try await (n, c) in tasks { clients[n] = c }
            }
        }
        // The codes, from each node's SMS file (its file sender).
        var codes: [String: String] = [:]
        try await waitFor("every sign-in code in the SMS files", seconds: 120) {
            for id in ids {
                let text = (try? String(contentsOfFile: cluster.folder + "/data/\(id)/sms-sent.jsonl", encoding: .utf8)) ?? ""
                for line in text.split(separator: "\n") {
                    guard let m = try? JSONDecoder().decode(SMSMessage.self, from: Data(line.utf8)), m.kind == "code",
                          let code = m.text.split(whereSeparator: { !$0.isASCII || !$0.isNumber }).first(where: { $0.count == 6 }) else { continue }
                    codes[m.mobile] = String(code)
                }
            }
            return codes.count >= options.clients
        }
        var patients: [Patient] = []
        for batch in stride(from: 0, to: options.clients, by: 100) {
            let range = batch..<min(options.clients, batch + 100)
            let signed = try await withThrowingTaskGroup(of: Patient.self) { tasks in
                for n in range {
                    let person = Self.person(n), client = clients[n]!, code = codes[person.mobile]!
                    let scalper = Double(n % 100) < options.scalperShare * 100
                    let seed = options.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(n)
                    tasks.addTask {
                        let a = try await Self.sendRetryingBusy(client, .POST, "/api/v1/sessions", json: ["resident_id": person.residentID, "mobile": person.mobile, "code": code])
                        guard a.status == 201, let token = a.json?["token"] as? String else { throw DrillError("sign-in of patient \(n): \(a.status) \(a.text)") }
                        return Patient(index: n, scalper: scalper, client: client, token: token, seed: seed)
                    }
                }
                return try await tasks.reduce(into: [Patient]()) { $0.append($1) }
            }
            patients += signed
        }
        return patients.sorted { $0.index < $1.index }
    }

    /// Sends as a patient's app would: a `server.busy` answer (shed before anything ran) is
    /// retried after the second it asks for. Sign-ins go a hundred at a time, more than a node's
    /// in-flight limit (64): a slow node may shed some.
    static func sendRetryingBusy(_ c: PatientClient, _ method: HTTPMethod, _ path: String, json: [String: String]) async throws -> PatientClient.Answer {
        var tries = 0
        while true {
            let a = try await c.send(method, path, json: json)
            tries += 1
            guard a.status == 503, a.string("code") == "server.busy", tries <= 30 else { return a }
            try await Task.sleep(for: .seconds(1))
        }
    }

    struct Session: Sendable { var schedule: String; var department: String; var date: String; var popular: Bool }

    /// Every open session of the seeded week (one search per department and date: an answer
    /// lists at most 500 slots, a few sessions' worth): the popular ones are the chief physicians'.
    func sessionList(_ p: Patient, from start: CivilDate) async throws -> (sessions: [Session], slots: Int) {
        var out: [String: Session] = [:]
        var slots = 0
        for (dept, _) in Self.departments {
            for day in 0..<Self.seededDays {
                let date = try start.adding(days: day)
                let a = try await p.client.send(.GET, "/api/v1/slots?department=\(dept)&date=\(date)&all=1&limit=500")
                for s in (a.json?["slots"] as? [[String: Any]]) ?? [] {
                    guard let schedule = s["schedule"] as? String, let date = s["date"] as? String else { continue }
                    out[schedule] = Session(schedule: schedule, department: dept, date: date, popular: s["title"] as? String == "chiefPhysician")
                    slots += 1
                }
            }
        }
        return (out.values.sorted { $0.schedule < $1.schedule }, slots)
    }

    // MARK: The open-loop schedule

    /// Runs each patient's schedule on the event loop of that patient's connection: timers,
    /// requests and answers all on that thread, so the generator (which shares the machine's two
    /// cores with the nodes) wakes no other thread per request.
    final class Generator: Sendable {
        let rush: BookingRush
        let schedules: [Session]
        let stats: Stats
        let done: EventLoopPromise<Void>
        /// Patients whose schedule still runs, plus requests not yet answered; done at zero.
        let open = Mutex(0)

        init(rush: BookingRush, group: any EventLoopGroup, schedules: [Session], stats: Stats) {
            self.rush = rush; self.schedules = schedules; self.stats = stats
            done = group.next().makePromise()
        }

        func run(_ patients: [Patient], until deadline: NIODeadline) -> EventLoopFuture<Void> {
            open.withLock { $0 = patients.count }
            if patients.isEmpty { done.succeed() }
            for p in patients {
                p.client.eventLoop.execute { [self] in
                    if rush.options.thinkMs > 0 {
                        // Each patient's requests are a Poisson process from the start, the first
                        // one included: all patients together send `clients / think` requests in
                        // every second, the first second too.
                        let first = rush.options.burstStart ? .microseconds(Int64(p.random() * rush.options.thinkMs * 1000)) : think(p, mean: rush.options.thinkMs)
                        schedule(p, due: NIODeadline.now() + first, until: deadline)
                    } else {
                        backToBack(p, until: deadline)
                    }
                }
            }
            return done.futureResult
        }

        /// The patient's next request is due at its own Poisson time, whether or not the last one
        /// was answered; latency counts from the due time.
        private func schedule(_ p: Patient, due: NIODeadline, until deadline: NIODeadline) {
            guard due < deadline else { finished(); return }
            p.client.eventLoop.scheduleTask(deadline: due) { [self] in
                open.withLock { $0 += 1 }
                let late = NIODeadline.now() - due
                rush.step(p, schedules: schedules, due: due, lateMs: Double(late.nanoseconds) / 1e6, stats: stats).whenComplete { _ in self.finished() }
                schedule(p, due: due + think(p, mean: rush.options.thinkMs), until: deadline)
            }
        }

        /// Back to back: one request at a time, the next as soon as the last is answered.
        private func backToBack(_ p: Patient, until deadline: NIODeadline) {
            let now = NIODeadline.now()
            guard now < deadline else { finished(); return }
            // Through the loop's queue: a connection that fails every request at once must not recurse.
            rush.step(p, schedules: schedules, due: now, lateMs: 0, stats: stats).whenComplete { _ in
                p.client.eventLoop.execute { self.backToBack(p, until: deadline) }
            }
        }

        /// An exponential think time: the wait between a Poisson process's events.
        private func think(_ p: Patient, mean: Double) -> TimeAmount {
            .microseconds(Int64(-log(1 - p.random()) * mean * 1000))
        }

        private func finished() {
            if open.withLock({ n -> Bool in n -= 1; return n == 0 }) { done.succeed() }
        }
    }

    /// The patient's next move, by what it has: pay for a hold; once booked, look at the booking
    /// (and rarely cancel it, once); else look for a slot and hold one. Scalpers hold and never pay.
    /// Sent from, and answered on, the patient's connection's event loop.
    func step(_ p: Patient, schedules: [Session], due: NIODeadline, lateMs: Double, stats: Stats) -> EventLoopFuture<Void> {
        let (held, confirmed, cancelledBefore, requestNo) = p.state.withLock { s -> (String?, [String], Bool, Int) in
            s.nextRequest += 1
            return (s.held.popLast(), Array(s.confirmed.subtracting(s.cancelled)).sorted(), !s.cancelled.isEmpty, s.nextRequest)
        }
        let kind: String
        let sent: EventLoopFuture<PatientClient.Answer>
        if let held, !p.scalper {
            kind = "confirm"
            sent = p.client.request(.POST, "/api/v1/appointments/\(held)/confirm", json: ["payment": p.random() < 0.6 ? "insurance" : "card"], token: p.token)
                .map { a in
                    if a.status == 200 { p.state.withLock { _ = $0.confirmed.insert(held) } }
                    return a
                }
        } else if let mine = confirmed.first, !cancelledBefore, p.random() < 0.03 {
            kind = "cancel"
            p.state.withLock { _ = $0.cancelTried.insert(mine) }
            sent = p.client.request(.POST, "/api/v1/appointments/\(mine)/cancel", token: p.token).map { a in
                if a.status == 200 { p.state.withLock { _ = $0.cancelled.insert(mine) } }
                return a
            }
        } else if !confirmed.isEmpty, !p.scalper, p.random() < 0.5 {
            kind = "list"
            sent = p.client.request(.GET, "/api/v1/appointments", token: p.token)
        } else if !confirmed.isEmpty || p.random() < 0.5 {
            kind = "search"
            let s = pick(schedules, p)
            sent = p.client.request(.GET, "/api/v1/slots?department=\(s.department)&date=\(s.date)&limit=20")
        } else {
            // Most demand goes to the few popular (chief) physicians.
            kind = "hold"
            let s = pick(schedules, p)
            sent = p.client.request(.POST, "/api/v1/appointments", json: ["request_id": "r\(requestNo)", "schedule_id": s.schedule], token: p.token).map { a in
                if a.status == 201, let id = a.string("id") { p.state.withLock { $0.held.append(id) } }
                return a
            }
        }
        return sent.map { answer in
            stats.record(kind: kind, ms: Double((NIODeadline.now() - due).nanoseconds) / 1e6, lateMs: lateMs, answer: answer)
        }.recover { _ in
            stats.record(kind: "error", ms: Double((NIODeadline.now() - due).nanoseconds) / 1e6, lateMs: lateMs, answer: nil)
        }
    }

    func pick(_ schedules: [Session], _ p: Patient) -> Session {
        let popular = schedules.filter(\.popular)
        let pool = !popular.isEmpty && p.random() < 0.6 ? popular : schedules
        return pool[min(pool.count - 1, Int(p.random() * Double(pool.count)))]
    }

    // MARK: Checking

    /// Double bookings on any node (two records holding one slot), and acknowledged confirmations
    /// missing on any node (once every node has them, or a generous deadline passed). A booking
    /// whose cancellation was sent is not expected: that cancellation may have taken effect
    /// without its answer reaching the patient.
    func verify(cluster: LocalCluster, ids: [String], patients: [Patient]) async throws -> (Int, Int) {
        var double = 0, lost = 0
        var expected: Set<String> = []
        for p in patients {
            p.state.withLock { s in for id in s.confirmed.subtracting(s.cancelTried) { expected.insert("c:" + String(id.prefix(25))) } }
        }
        var views: [String: BookingsView] = [:]
        // The records reach every node by gossip; after an overload that takes a while.
        _ = try? await waitFor("every acknowledged confirmation on every node", seconds: 60) {
            // The quota buckets' records never close: after a long history they would be most of the answer.
            for id in ids { views[id] = try await cluster.bookings(id, quotaBucketRecords: false) }
            return views.values.allSatisfy { v in expected.isSubset(of: Set(v.bookings.filter { $0.status == "active" }.map(\.requestID))) }
        }
        for id in ids {
            guard let view = views[id] else { continue }
            var holders: [String: Int] = [:]
            for b in view.bookings where b.status == "active" && !b.block.hasPrefix("quota/") && b.slot >= 0 {
                holders["\(b.block)#\(b.slot)", default: 0] += 1
            }
            double += holders.values.filter { $0 > 1 }.count
            let active = Set(view.bookings.filter { $0.status == "active" }.map(\.requestID))
            lost += expected.subtracting(active).count
        }
        return (double, lost)
    }

    final class Stats: Sendable {
        struct State {
            var latencies: [Double] = []
            var kindLatencies: [String: [Double]] = [:]
            var late: [Double] = []
            /// Latencies by the second of the run in which the answer came.
            var bySecond: [[Double]] = []
            var byKind: [String: Int] = [:]
            var refused: [String: Int] = [:]
            var errors = 0
            var bookings = 0
        }
        let state = Mutex(State())
        let started: NIODeadline

        init(started: NIODeadline) { self.started = started }

        func record(kind: String, ms: Double, lateMs: Double, answer: PatientClient.Answer?) {
            let second = max(0, Int((NIODeadline.now() - started).nanoseconds / 1_000_000_000))
            let code = answer.flatMap { $0.status >= 400 ? ($0.string("code") ?? "http.\($0.status)") : nil }
            state.withLock { s in
                s.latencies.append(ms)
                s.kindLatencies[kind, default: []].append(ms)
                s.late.append(lateMs)
                while s.bySecond.count <= second { s.bySecond.append([]) }
                s.bySecond[second].append(ms)
                s.byKind[kind, default: 0] += 1
                if answer == nil { s.errors += 1 }
                if let code { s.refused[code, default: 0] += 1 }
                if kind == "confirm", answer?.status == 200 { s.bookings += 1 }
            }
        }

        func report(options: Options, elapsed: Double, doubleBookings: Int, lostAcks: Int, slots: Int) -> Report {
            state.withLock { s in
                let sorted = s.latencies.sorted(), late = s.late.sorted()
                func pct(_ a: [Double], _ p: Double) -> Double {
                    guard !a.isEmpty else { return 0 }
                    return (a[min(a.count - 1, max(0, Int((p * Double(a.count)).rounded(.up)) - 1))] * 100).rounded() / 100
                }
                return Report(
                    nodes: options.nodes, clients: options.clients, thinkMs: options.thinkMs, start: options.thinkMs == 0 ? "back_to_back" : options.burstStart ? "burst" : "poisson", seconds: (elapsed * 10).rounded() / 10,
                    requests: sorted.count, requestsPerS: (Double(sorted.count) / elapsed).rounded(),
                    servedPerS: (Double(sorted.count - (s.refused["server.busy"] ?? 0)) / elapsed).rounded(), bookings: s.bookings,
                    bookingsPerS: (Double(s.bookings) / elapsed * 10).rounded() / 10, p50Ms: pct(sorted, 0.5), p99Ms: pct(sorted, 0.99),
                    p999Ms: pct(sorted, 0.999), maxMs: pct(sorted, 1), byKind: s.byKind,
                    latencyByKind: s.kindLatencies.mapValues { let k = $0.sorted(); return [pct(k, 0.5), pct(k, 0.99)] }, refusedByReason: s.refused, errors: s.errors,
                    doubleBookings: doubleBookings, lostAcks: lostAcks, p99BySecondMs: s.bySecond.map { pct($0.sorted(), 0.99) }, requestsBySecond: s.bySecond.map(\.count), generatorLateP99Ms: pct(late, 0.99), generatorLateMaxMs: pct(late, 1),
                    slotsOffered: slots)
            }
        }
    }
}
