import ArgumentParser
import Drills
import Foundation

/// `clinicmesh bench history`: what a long booking history costs a three-node cluster once its
/// sessions have closed (memory, restart, consensus logs, the release rush), beside an empty
/// cluster measured the same way in the same run.
struct HistoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "历史预约的代价：N 笔已关闭的预约之后的内存、重启、日志与放号高峰 / What a booking history costs: memory, restart, logs and the release rush after N closed bookings")

    @Option(help: "历史预约数（一家大医院一年约 300 万）/ Bookings in the history (a large hospital's year is about 3 million).")
    var bookings = 1_000_000

    @Option(help: "每个节点同时在途的预约数 / Bookings in flight per node while the history is made.")
    var concurrency = 64

    @Option(help: "节点的 tuning.closings_per_round（领导者每轮请求关闭的时段数）/ The nodes' tuning.closings_per_round (sessions the leader asks to close per round).")
    var closingsPerRound = 512

    @Flag(help: "历史预约不占用患者限额（看看从不关闭的限额桶占多少）/ History bookings without quota reservations (to see what the never-closed quota buckets cost).")
    var noQuota = false

    @Option(help: "之后放号高峰的患者数 / Patients of the release rush afterwards.")
    var rushClients = 2000

    @Option(help: "放号高峰的平均思考时间（毫秒）/ Mean think time of the rush (ms).")
    var rushThinkMs: Double = 1000

    @Option(help: "放号高峰秒数 / Seconds of the rush.")
    var rushSeconds: Double = 10

    @Flag(help: "输出 JSON / Print one JSON object.")
    var json = false

    /// The history's figures at the top level, the empty cluster's under `empty`.
    struct Output: Encodable {
        let environment: BenchEnvironment
        let history: BookingHistory.Figures
        let empty: BookingHistory.Figures
        let goals: Goals

        enum CodingKeys: String, CodingKey { case bench, environment, empty, goals }

        func encode(to encoder: any Encoder) throws {
            try history.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode("history", forKey: .bench)
            try c.encode(environment, forKey: .environment)
            try c.encode(empty, forKey: .empty)
            try c.encode(goals, forKey: .goals)
        }
    }

    struct Goals: Encodable {
        let goal = "N = 1,000,000: rss_mb <= 300, restart_s <= 5, log_mb <= 50, rush_p99_ms <= 1.2 x empty.rush_p99_ms (rss, restart and log: the worst node)"
        let met: [String: Bool]

        init(_ h: BookingHistory.Figures, empty: BookingHistory.Figures) {
            met = ["rss_mb": h.rssMb <= 300, "restart_s": h.restartS <= 5, "log_mb": h.logMb <= 50, "rush_p99_ms": h.rushP99Ms <= 1.2 * empty.rushP99Ms]
        }
    }

    func validate() throws {
        // Sessions reach back about a day per 1,150 bookings; the load keeps 3,650 days of history open.
        guard (1...4_000_000).contains(bookings), (1...512).contains(concurrency), (1...4096).contains(closingsPerRound),
              (1...60_000).contains(rushClients), rushThinkMs >= 0, rushSeconds > 0 else {
            throw ValidationError("--bookings 1…4000000，--concurrency 1…512，--closings-per-round 1…4096，--rush-clients 1…60000，--rush-think-ms ≥ 0，--rush-seconds > 0 / --bookings 1...4000000, --concurrency 1...512, --closings-per-round 1...4096, --rush-clients 1...60000, --rush-think-ms >= 0, --rush-seconds > 0")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        var options = BookingHistory.Options(bookings: bookings, binary: ClinicMesh.nodeExecutable)
        options.concurrency = concurrency
        options.closingsPerRound = closingsPerRound
        options.quota = !noQuota
        options.rushClients = rushClients
        options.rushThinkMs = rushThinkMs
        options.rushSeconds = rushSeconds
        say("空集群：同样的步骤，没有历史 / the empty cluster: the same steps without a history")
        var emptyOptions = options
        emptyOptions.bookings = 0
        let empty = try await BookingHistory(emptyOptions, say: say).run()
        say("有历史的集群 / the cluster with a history")
        let history = try await BookingHistory(options, say: say).run()
        let output = Output(environment: environment, history: history, empty: empty, goals: Goals(history, empty: empty))
        if json {
            try printJSON(output)
        } else {
            func line(_ zh: String, _ en: String, _ f: (BookingHistory.Figures) -> String) -> String {
                "\(zh) / \(en): \(f(history))   （空集群 / empty: \(f(empty))）"
            }
            func nodes(_ d: [String: Double]) -> String { d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                历史 / history: \(history.bookings) 笔预约 / bookings\(noQuota ? "（不占限额 / without quota）" : "")，\(history.sessions) 个过去的时段 / past sessions；预约 / booking \(history.loadS) s (\(history.loadBookingsPerS)/s)，关闭 / closing \(history.closeS) s
                \(line("常驻内存", "rss_mb", { "\($0.rssMb) MB (\(nodes($0.rssMbByNode)))" }))
                \(line("重启到确认预约", "restart_s", { "\($0.restartS) s (\(nodes($0.restartSByNode)))" }))
                \(line("共识日志", "log_mb", { "\($0.logMb) MB (\(nodes($0.logMbByNode)))" }))
                \(line("放号高峰 p99", "rush_p99_ms", { "\($0.rushP99Ms) ms" }))
                关闭后仍开放的区块 / blocks open after closing: \(history.openBlocks)（限额桶与重启探针 / quota buckets and restart probes）；留在限额桶中的预留 / quota reservations left in the buckets: \(history.quotaReservations)
                目标 / goals: \(output.goals.goal)
                达到 / met: \(output.goals.met.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value ? "是 / yes" : "否 / no")" }.joined(separator: ", "))
                """)
        }
        if [history.rush, empty.rush].contains(where: { $0.doubleBookings > 0 || $0.lostAcks > 0 }) { throw ExitCode.failure }
    }
}
