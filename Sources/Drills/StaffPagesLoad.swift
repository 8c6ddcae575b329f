import AdminAPI
import Domain
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `bench pages` against real node processes: staff sign in through the sign-in form over HTTPS,
/// each from its own loopback address, then browse their home pages (auditors the auditor's page
/// too) with think time between pages, as a person at a desk does.
public struct StaffPagesLoad: Sendable {
    public struct Options: Sendable {
        public var binary: String
        public var nodes = 3
        public var staff = 100
        /// How many of the staff are auditors (they also open the auditor's page).
        public var auditors = 10
        public var seconds: Double = 30
        /// Mean think time between pages (Poisson).
        public var thinkMs: Double = 1000
        /// Sign-ins are spread uniformly over this many seconds before browsing starts.
        public var signInSpreadSeconds: Double = 10
        public init(binary: String) { self.binary = binary }
    }

    public struct Figures: Codable, Sendable {
        public var count: Int
        public var p50Ms: Double
        public var p99Ms: Double
        public var maxMs: Double
    }

    public struct Report: Codable, Sendable {
        public var nodes: Int
        public var staff: Int
        public var auditors: Int
        public var seconds: Double
        public var thinkMs: Double
        /// Per page: `home` (/staff/), `audit` (/staff/audit, the newest 500 events).
        public var pages: [String: Figures]
        /// The POST of the sign-in form (scrypt N=2^15, r=8 included).
        public var signIn: Figures
        /// Answers other than the page (status: count), and connections that failed.
        public var unexpected: [String: Int]
        /// The nodes' CPU (cores, all nodes) with everyone signed in and idle.
        public var nodeIdleCPUCores: Double?
        /// Node CPU (all nodes) per page during the browsing, less the idle CPU for as long; and
        /// the audit events a page wrote.
        public var nodeCPUMsPerPage: Double?
        public var auditEventsPerPage: Double
        /// Node CPU (all nodes, less idle) per auditor's page, with nothing else browsing.
        public var nodeCPUMsPerAuditPage: Double?
        /// `audit verify` on the first node after the run: the events it checked, and its time.
        public var nodeVerifyEvents: Int
        public var nodeVerifySeconds: Double
        public var nodeVerifyIntact: Bool
    }

    let options: Options
    let say: @Sendable (String) -> Void

    public init(_ options: Options, say: @escaping @Sendable (String) -> Void) { self.options = options; self.say = say }

    static let password = "Bench-Pages-2026"
    static let idleSeconds = 5
    static let roles = ["doctor", "nurse", "registration_clerk", "pharmacist", "cashier"]

    public func run() async throws -> Report {
        let cluster = try BookingRush.makeCluster(nodes: options.nodes, binary: options.binary, folderPrefix: "clinicmesh-pages-")
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        try cluster.startAll()
        try await cluster.waitUntilLed(seconds: 120)
        let ids = cluster.ids
        let ports = try ids.reduce(into: [String: Int]()) { out, id in out[id] = try cluster.config(id).patients?.port }
        let departments = BookingRush.departments.prefix(ids.count).map(\.0)

        say("准备：科室与 \(options.staff) 个员工账户（其中审计员 \(options.auditors) 个）/ departments and \(options.staff) staff accounts (\(options.auditors) auditors)")
        _ = try await BookingRush.seed(cluster, ids[0], DemoSeedRequest(startDate: BookingRush.firstVisitDate().description, days: 1, departments: departments, capacity: 4))
        for n in 0..<options.staff {
            let auditor = n < options.auditors
            let department = departments[n % departments.count]
            let command = StaffAccountCommand(staffNumber: Self.number(n), name: "压测\(n)", roles: [auditor ? "auditor" : Self.roles[n % Self.roles.count]],
                                              departments: auditor ? [] : [department], password: Self.password, mustChangePassword: false)
            let answer = try await cluster.call(ids[n % ids.count], "staff-add " + String(decoding: try JSONEncoder().encode(command), as: UTF8.self))
            guard (try? JSONDecoder().decode(StaffAnswer.self, from: Data(answer)))?.outcome == "ok" else {
                throw DrillError("staff-add \(Self.number(n)): \(String(decoding: answer, as: UTF8.self))")
            }
        }
        say("准备：等待账户复制到每个节点 / waiting for the accounts to reach every replica")
        try await cluster.waitUntilReplicasAgree("every account on every replica")

        let ca = try String(contentsOfFile: cluster.folder + "/certs/admin/ca.crt", encoding: .utf8)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.shutdownGracefully { _ in } }
        let stats = Stats()

        say("登录：\(options.staff) 人在 \(options.signInSpreadSeconds) 秒内陆续登录 / sign-in: \(options.staff) staff over \(options.signInSpreadSeconds) s")
        let people = try await withThrowingTaskGroup(of: Person?.self) { tasks in
            for n in 0..<options.staff {
                let node = ids[n % ids.count]
                tasks.addTask {
                    try await Task.sleep(for: .milliseconds(Int(Double.random(in: 0..<max(0.001, options.signInSpreadSeconds)) * 1000)))
                    let client = try await PatientClient.connect(host: "127.0.0.1", port: ports[node] ?? 0, caPEM: ca,
                                                                 localAddress: BookingRush.address(n), group: group)
                    guard let cookie = try await Self.signIn(client, number: Self.number(n), stats: stats) else {
                        await client.close()
                        return nil
                    }
                    return Person(client: client, cookie: cookie, auditor: n < options.auditors)
                }
            }
            var out: [Person] = []
            for try await p in tasks { if let p { out.append(p) } }
            return out
        }
        guard people.count == options.staff else {
            throw DrillError("只有 \(people.count)/\(options.staff) 人登录成功（见 unexpected）/ only \(people.count) of \(options.staff) signed in: \(stats.unexpectedCounts())")
        }

        // The nodes' CPU with everyone signed in and idle (heartbeats, gossip): taken off the
        // browsing's CPU, so that a page's CPU is the page's.
        say("空闲：\(Self.idleSeconds) 秒，测节点的底噪 CPU / idle: \(Self.idleSeconds) s, the nodes' background CPU")
        let pids = ids.reduce(into: [String: Int32]()) { $0[$1] = cluster.pid($1) }
        try await Task.sleep(for: .seconds(1))
        let idle = ProcessCPU.Meter(pids)
        let idleWatch = Stopwatch()
        try await Task.sleep(for: .seconds(Self.idleSeconds))
        let idleRate = idle.used().map { $0.values.reduce(0, +) / idleWatch.seconds }

        say("浏览：\(options.seconds) 秒，平均思考 \(options.thinkMs) ms / browsing: \(options.seconds) s, mean think time \(options.thinkMs) ms")
        let browseCPU = await Self.busyCPU(pids, idleRate: idleRate) { await self.browse(people, for: options.seconds, stats: stats) }

        // The auditor's page is the one page of the mix that records an audit event: its CPU,
        // alone (auditors only, nothing else browsing), to weigh the audit event against.
        let auditorsOnly = people.filter(\.auditor)
        var auditPageCPU: Double?
        if !auditorsOnly.isEmpty {
            let seconds = max(5, options.seconds / 3)
            say("审计页单独：\(seconds) 秒，仅审计员浏览审计页 / the auditor's page alone: \(seconds) s, auditors only")
            let alone = Stats()
            let used = await Self.busyCPU(pids, idleRate: idleRate) { await self.browse(auditorsOnly, for: seconds, stats: alone, only: "audit") }
            let count = alone.pagesServed()
            if let used, count > 0 { auditPageCPU = rounded(used * 1000 / Double(count), 3) }
            for (what, n) in alone.unexpectedCounts() { for _ in 0..<n { stats.unexpected(what) } }
        }
        for p in people { await p.client.close() }

        say("检查：第一个节点上的 audit verify / checking: audit verify on the first node")
        let verify = try JSONDecoder().decode(AuditVerifyAnswer.self, from: Data(try await cluster.call(ids[0], "audit-verify")))

        let pages = stats.pagesServed()
        let audited = stats.figures("audit")?.count ?? 0
        return Report(
            nodes: ids.count, staff: options.staff, auditors: options.auditors, seconds: options.seconds, thinkMs: options.thinkMs,
            pages: ["home", "audit"].reduce(into: [:]) { out, page in out[page] = stats.figures(page) },
            signIn: stats.figures("sign_in") ?? Figures(count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0),
            unexpected: stats.unexpectedCounts(),
            nodeIdleCPUCores: idleRate.map { rounded($0, 3) },
            nodeCPUMsPerPage: browseCPU.map { pages > 0 ? rounded($0 * 1000 / Double(pages), 3) : 0 },
            auditEventsPerPage: pages > 0 ? rounded(Double(audited) / Double(pages), 3) : 0,
            nodeCPUMsPerAuditPage: auditPageCPU,
            nodeVerifyEvents: verify.events, nodeVerifySeconds: verify.seconds, nodeVerifyIntact: verify.intact)
    }

    static func number(_ n: Int) -> String { "B" + String(format: "%04d", n) }

    /// The nodes' CPU seconds (all of them) while `body` runs, less their idle rate for as long;
    /// nil if a node's CPU or the idle rate could not be read.
    static func busyCPU(_ pids: [String: Int32], idleRate: Double?, during body: () async -> Void) async -> Double? {
        let meter = ProcessCPU.Meter(pids)
        let watch = Stopwatch()
        await body()
        guard let used = meter.used().map({ $0.values.reduce(0, +) }), let idleRate else { return nil }
        return max(0, used - idleRate * watch.seconds)
    }

    /// Everyone in `people` browsing at once for `seconds` (see `browse`).
    func browse(_ people: [Person], for seconds: Double, stats: Stats, only: String? = nil) async {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        await withTaskGroup(of: Void.self) { tasks in
            for p in people { tasks.addTask { await self.browse(p, until: deadline, stats: stats, only: only) } }
        }
    }

    final class Person: Sendable {
        let client: PatientClient
        let cookie: Mutex<String>
        let auditor: Bool

        init(client: PatientClient, cookie: String, auditor: Bool) {
            self.client = client; self.cookie = Mutex(cookie); self.auditor = auditor
        }
    }

    /// The sign-in form as a browser uses it: GET for the pre-session cookie and CSRF token, then
    /// the POST (timed). Returns the session cookie, or nil (counted in `unexpected`).
    static func signIn(_ client: PatientClient, number: String, stats: Stats) async throws -> String? {
        let form = try await client.page(.GET, "/staff/sign-in", cookies: [:]).get()
        guard form.status == 200, let pre = form.cookie("cm_pre"), let csrf = Self.csrf(in: form.text) else {
            stats.unexpected("sign_in_form \(form.status)")
            return nil
        }
        let watch = Stopwatch()
        let answer = try await client.page(.POST, "/staff/sign-in", cookies: ["cm_pre": pre],
                                           form: [("csrf", csrf), ("staff_number", number), ("password", password), ("code", "")]).get()
        guard answer.status == 303, let cookie = answer.cookie("cm_staff"), !cookie.isEmpty else {
            stats.unexpected("sign_in \(answer.status)")
            return nil
        }
        stats.record("sign_in", ms: watch.seconds * 1000)
        return cookie
    }

    static func csrf(in html: String) -> String? {
        guard let range = html.range(of: "name=\"csrf\" value=\"") else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    /// One person's pages until `deadline`: home, and for an auditor every other page the
    /// auditor's page; a renewed session cookie is kept, as a browser keeps it.
    func browse(_ p: Person, until deadline: ContinuousClock.Instant, stats: Stats, only: String? = nil) async {
        var turn = 0
        while true {
            let think = -log(Double.random(in: Double.ulpOfOne..<1)) * options.thinkMs
            try? await Task.sleep(for: .milliseconds(Int(think)))
            guard ContinuousClock.now < deadline else { return }
            let page = only ?? (p.auditor && turn % 2 == 1 ? "audit" : "home")
            turn += 1
            let watch = Stopwatch()
            do {
                let answer = try await p.client.page(.GET, page == "audit" ? "/staff/audit" : "/staff/", cookies: ["cm_staff": p.cookie.withLock { $0 }]).get()
                let ms = watch.seconds * 1000
                guard answer.status == 200 else {
                    stats.unexpected("\(page) \(answer.status)")
                    continue
                }
                stats.record(page, ms: ms)
                if let renewed = answer.cookie("cm_staff"), !renewed.isEmpty { p.cookie.withLock { $0 = renewed } }
            } catch {
                stats.unexpected("\(page) connection")
                return
            }
        }
    }

    final class Stats: Sendable {
        private let state = Mutex<(ms: [String: [Double]], unexpected: [String: Int])>(([:], [:]))

        func record(_ page: String, ms: Double) { state.withLock { $0.ms[page, default: []].append(ms) } }
        func unexpected(_ what: String) { state.withLock { $0.unexpected[what, default: 0] += 1 } }
        func unexpectedCounts() -> [String: Int] { state.withLock { $0.unexpected } }
        func pagesServed() -> Int { state.withLock { $0.ms.filter { $0.key != "sign_in" }.values.reduce(0) { $0 + $1.count } } }

        func figures(_ page: String) -> Figures? {
            let sorted = state.withLock { $0.ms[page] ?? [] }.sorted()
            guard !sorted.isEmpty else { return nil }
            func pct(_ p: Double) -> Double { rounded(sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)], 3) }
            return Figures(count: sorted.count, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: rounded(sorted.last!, 3))
        }
    }
}
