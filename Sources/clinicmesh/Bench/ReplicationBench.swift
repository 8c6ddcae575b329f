import ArgumentParser
import ClinicNode
import DemoAndBench
import Drills
import Foundation

/// `clinicmesh bench replication`: real node processes on loopback with mutual TLS, a steady write
/// load on every node, and the lag from a row's local commit to its arrival on every other node.
struct ReplicationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication",
        abstract: "测量节点间复制的吞吐与延迟 / Measure replication throughput and lag between node processes")

    @Option(help: "节点进程数 / Node processes.")
    var nodes = 3

    @Option(help: "写入负载持续秒数 / Seconds of write load.")
    var seconds: Double = 10

    @Option(help: "全集群每秒变更数（一行 = 4 个变更）/ Changes per second across the cluster (a row is 4 changes).")
    var changesPerS: Double = 1000

    @Option(help: "存储持久性 full 或 normal / Store durability, full or normal.")
    var durability = "full"

    @Flag(help: "输出 JSON / Print one JSON object.")
    var json = false

    struct Report: Encodable {
        let bench = "replication"
        let environment: BenchEnvironment
        let nodes: Int
        let seconds: Double
        let durability: String
        let targetChangesPerS: Double
        let rows: Int
        let changesPerS: Double
        let lagP50Ms: Double
        let lagP99Ms: Double
        let lagMaxMs: Double
        let missingArrivals: Int
        let missingSample: [String]
        let cpuS: Double
        let goal = "lag_p99_ms <= 100 at changes_per_s >= 1000 with 3 nodes"
    }

    func validate() throws {
        guard (2...9).contains(nodes), seconds > 0, changesPerS > 0, ["full", "normal"].contains(durability) else {
            throw ValidationError("--nodes 2…9，--seconds 与 --changes-per-s 须为正，--durability 为 full 或 normal / --nodes 2...9, positive --seconds and --changes-per-s, --durability full or normal")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let ids = (1...nodes).map { "bench-\($0)" }
        let rowsPerNode = changesPerS / 4 / Double(nodes)
        var tuning = NodeConfig.Tuning()
        tuning.durability = durability
        tuning.reconnectInitialMillis = 50
        tuning.reconnectMaxMillis = 500
        tuning.snapshotWhenNew = false
        let binary = ClinicMesh.nodeExecutable
        let cluster = try LocalCluster(
            departments: ids.map { (id: $0, department: "内科") }, binary: binary, tuning: tuning, logLevel: "warning",
            folderPrefix: "clinicmesh-repl-"
        ) { folder, config in
            config.bench = .init(rowsPerS: rowsPerNode, seconds: seconds, report: folder + "/\(config.nodeID).report.json")
        }
        let folder = cluster.folder
        defer { cluster.removeUnlessKept() }
        try cluster.startAll()
        // Load (after every link is up) plus time to drain, then an ordered stop (SIGTERM); a
        // node that has not written its report within the grace period is reported below.
        try await Task.sleep(for: .seconds(seconds + 5))
        cluster.stopAll(graceSeconds: 60)

        var reports: [BenchNodeReport] = []
        for id in ids {
            guard let data = FileManager.default.contents(atPath: folder + "/\(id).report.json") else {
                FileHandle.standardError.write(Data("节点 \(id) 没有写出报告 / node \(id) wrote no report\n\(cluster.logTail(id, bytes: 2000))\n".utf8))
                throw ExitCode.failure
            }
            reports.append(try JSONDecoder().decode(BenchNodeReport.self, from: data))
        }
        // A row's lag: from its commit on its origin to its arrival on the last other node.
        var lags: [Double] = []
        var missing = 0
        var missingSample: [String] = []
        var rows = 0
        for origin in reports {
            for (key, committed) in origin.commits {
                rows += 1
                var worst: Int64 = 0
                var complete = true
                for other in reports where other.node != origin.node {
                    guard let seen = other.seen[key] else { complete = false; continue }
                    worst = max(worst, seen - committed)
                }
                if complete { lags.append(Double(worst) / 1000) } else {
                    missing += 1
                    if missingSample.count < 5 { missingSample.append(key) }
                }
            }
        }
        lags.sort()
        func percentile(_ p: Double) -> Double {
            guard !lags.isEmpty else { return .nan }
            return lags[min(lags.count - 1, Int((p * Double(lags.count)).rounded(.up)) - 1 < 0 ? 0 : Int((p * Double(lags.count)).rounded(.up)) - 1)]
        }
        let report = Report(
            environment: environment, nodes: nodes, seconds: seconds, durability: durability, targetChangesPerS: changesPerS,
            rows: rows, changesPerS: rounded(Double(rows * 4) / seconds), lagP50Ms: rounded(percentile(0.5), 2),
            lagP99Ms: rounded(percentile(0.99), 2), lagMaxMs: rounded(lags.last ?? .nan, 2), missingArrivals: missing, missingSample: missingSample,
            cpuS: rounded(reports.map(\.cpuS).reduce(0, +), 2))
        if json {
            try printJSON(report)
        } else {
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                \(nodes) 个节点 / nodes, \(seconds) s, 持久性 / durability \(durability)
                变更/秒 / changes_per_s: \(report.changesPerS)   行 / rows: \(rows)   未到达 / missing: \(missing)
                延迟 / lag p50 \(report.lagP50Ms) ms, p99 \(report.lagP99Ms) ms, max \(report.lagMaxMs) ms   CPU \(report.cpuS) s
                """)
        }
    }
}
