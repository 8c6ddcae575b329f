import ArgumentParser
import Drills
import Foundation

/// `clinicmesh bench booking`: the 15:00 release rush against real node processes (mutual TLS
/// between nodes, HTTPS to clients), then the same workload back to back against one node alone
/// for the ceiling.
struct BookingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "booking",
        abstract: "放号高峰：真实节点进程上的挂号负载 / The release rush: a booking workload against real node processes")

    @Option(help: "节点进程数（1 到 3：内科、外科、儿科）/ Node processes (1 to 3: 内科, 外科, 儿科).")
    var nodes = 3

    @Option(help: "患者数（每位有自己的身份证号与 127.0.x.y 源地址）/ Patients (each with its own resident ID and 127.0.x.y source address).")
    var clients = 2000

    @Option(help: "平均思考时间（毫秒，泊松）；0 为背靠背 / Mean think time (ms, Poisson); 0: back to back.")
    var thinkMs: Double = 1000

    @Option(help: "负载秒数 / Seconds of load.")
    var seconds: Double = 15

    @Option(help: "单节点上限测量秒数（0 为不测）/ Seconds of the one-node ceiling run (0: none).")
    var ceilingSeconds: Double = 10

    @Option(help: "上限测量的背靠背客户端数 / Back-to-back clients of the ceiling run.")
    var ceilingClients = 256

    @Flag(help: "每位患者的第一个请求都落在第一个思考时间内（均匀）：比泊松更集中的开场，首秒约 1.4 倍负载 / Every patient's first request within the first think time (uniform): a harsher start than Poisson, about 1.4 times the load in the first second.")
    var burstStart = false

    @Flag(help: "输出 JSON / Print one JSON object.")
    var json = false

    struct Output: Encodable {
        let bench = "booking"
        let environment: BenchEnvironment
        let run: BookingRush.Report
        let ceilingRequestsPerS: Double?
        let ceiling: BookingRush.Report?
        let perAddressLimit = "per-address limit raised to 200/s (burst 400) for the bench; quotas, bans and per-mobile limits as configured by default"
        let goal = "0 double bookings and 0 lost acks; 2000 patients at 1000 ms think: p99_ms <= 50; back to back with 256 clients: >= 4000 requests/s"
    }

    func validate() throws {
        guard (1...3).contains(nodes), (1...60_000).contains(clients), thinkMs >= 0, seconds > 0, ceilingSeconds >= 0, ceilingClients >= 1 else {
            throw ValidationError("--nodes 1…3，--clients 1…60000，--think-ms ≥ 0，--seconds > 0 / --nodes 1...3, --clients 1...60000, --think-ms >= 0, --seconds > 0")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let binary = ClinicMesh.nodeExecutable
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        var options = BookingRush.Options(binary: binary)
        options.nodes = nodes
        options.clients = clients
        options.thinkMs = thinkMs
        options.burstStart = burstStart
        options.seconds = seconds
        let main = try await BookingRush(options, say: say).run()
        var ceiling: BookingRush.Report?
        if ceilingSeconds > 0 {
            say("上限：同样的负载，背靠背，单节点 / ceiling: the same workload back to back against one node alone")
            var c = options
            c.nodes = 1
            c.thinkMs = 0
            c.clients = ceilingClients
            c.seconds = ceilingSeconds
            ceiling = try await BookingRush(c, say: say).run()
        }
        let output = Output(environment: environment, run: main, ceilingRequestsPerS: ceiling?.servedPerS, ceiling: ceiling)
        if json {
            try printJSON(output)
        } else {
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                \(nodes) 个节点 / nodes, \(clients) 位患者 / patients, 思考 / think \(thinkMs) ms, \(main.seconds) s
                请求/秒 / requests_per_s: \(main.requestsPerS)（受理 / served \(main.servedPerS)，其余为 server.busy / the rest shed as server.busy）   预约/秒 / bookings_per_s: \(main.bookingsPerS)
                延迟 / latency p50 \(main.p50Ms) ms, p99 \(main.p99Ms) ms, p99.9 \(main.p999Ms) ms (从预定发送时刻算起 / from the due time)
                开场 / start: \(main.start)；每秒请求 / requests by second: \(main.requestsBySecond.map(String.init).joined(separator: " "))
                每秒 p99 / p99 by second (ms): \(main.p99BySecondMs.map { "\(Int($0))" }.joined(separator: " "))
                运行中 Raft 新任期 / raft terms begun: \(main.raftTermsDuringRun.map(String.init) ?? "-")，租约迁移 / lease moves: \(main.leaseMovesDuringRun.map(String.init) ?? "-")
                共识落盘（提交数，超 50 ms 的，最慢不超过）/ consensus disk (commits, over 50 ms, slowest at most): \(Self.disks(main.diskWritesDuringRun))
                发生器迟到 / generator late p99 \(main.generatorLateP99Ms) ms, max \(main.generatorLateMaxMs) ms
                每请求 CPU / CPU per request: 节点 / nodes \(main.nodeCPUMsPerRequest.map { "\($0)" } ?? "-") ms, 发生器 / generator \(main.generatorCPUMsPerRequest.map { "\($0)" } ?? "-") ms; 共用 / cores used \(main.cpuCores.map { "\($0)" } ?? "-")
                拒绝 / refused: \(main.refusedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                重复预约 / double_bookings: \(main.doubleBookings)   丢失的确认 / lost_acks: \(main.lostAcks)   错误 / errors: \(main.errors)
                单节点上限（受理）/ ceiling_requests_per_s (served): \(ceiling.map { "\($0.servedPerS)" } ?? "-")
                """)
        }
        if main.doubleBookings > 0 || main.lostAcks > 0 || (ceiling.map { $0.doubleBookings + $0.lostAcks } ?? 0) > 0 { throw ExitCode.failure }
    }

    /// `neike 1204/3/≤250 ms, ...`: each node's commits, those over 50 ms, and the slowest's bound.
    static func disks(_ d: [String: DiskWrites]?) -> String {
        guard let d else { return "-" }
        return d.sorted { $0.key < $1.key }.map { id, w in
            "\(id) \(w.commits)/\(w.over50Ms)/" + (w.slowestAtMostMs.map { "≤\($0 == $0.rounded() ? "\(Int($0))" : "\($0)") ms" } ?? "-")
        }.joined(separator: ", ")
    }
}
