import ArgumentParser
import Drills
import Foundation

/// `clinicmesh drill`: fault drills against real node processes on loopback (`chaos/run` calls it).
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "故障演练（真实节点进程）/ Fault drills against real node processes",
        subcommands: [Run.self, Leases.self])

    struct Options: ParsableArguments {
        @Option(help: "并发客户端数 / Concurrent clients.")
        var clients = 24

        @Option(help: "节点暂停秒数（须超过 2 秒的存活超时）/ Seconds a paused node stays stopped (past the 2 s liveness timeout).")
        var pauseSeconds: Double = 5

        @Flag(help: "保留临时目录（日志、数据）/ Keep the temporary folder (logs, data).")
        var keep = false

        @Flag(help: "输出 JSON / Print one JSON object.")
        var json = false
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "运行一个演练场景，或 all / Run one drill scenario, or all",
            discussion: "场景 / scenarios: \(DrillCommand.names.joined(separator: ", ")), all")

        @Argument(help: "场景名 / Scenario name") var scenario: String
        @OptionGroup var options: Options

        func validate() throws {
            guard scenario == "all" || DrillCommand.names.contains(scenario) else {
                throw ValidationError("未知场景 \(scenario)；可选 / unknown scenario \(scenario); one of: \(DrillCommand.names.joined(separator: ", ")), all")
            }
        }

        func run() async throws {
            let names = scenario == "all" ? DrillCommand.names : [scenario]
            var failed = false
            for name in names {
                let passed = ChaosDrill.Kind(rawValue: name) != nil ? try await DrillCommand.chaos(name, options) : try await DrillCommand.run(name, options).passed
                failed = failed || !passed
            }
            if failed { throw ExitCode.failure }
        }
    }

    struct Leases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "租约演练（= drill run leases）：杀死持有者、暂停节点、正常停止 / The lease drill (= drill run leases)")
        @OptionGroup var options: Options

        func run() async throws {
            if !(try await DrillCommand.run("leases", options)).passed { throw ExitCode.failure }
        }
    }

    /// Every scenario: the lease drills, then the operations drills.
    static var names: [String] { LeaseDrill.scenarios.keys.sorted() + ChaosDrill.names }

    static var binary: String {
        ProcessInfo.processInfo.environment["CLINICMESH_BIN"] ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    /// Runs one operations drill (partition, eviction, clock skew, full disk); returns whether it passed.
    static func chaos(_ name: String, _ options: Options) async throws -> Bool {
        var drill = ChaosDrill(kind: ChaosDrill.Kind(rawValue: name)!, binary: binary)
        drill.clients = min(options.clients, 16)
        if drill.kind == .diskFull, !LocalCluster.canMountTmpfs() {
            throw ValidationError("disk-full 需要挂载 tmpfs 的权限（以 root 运行）/ disk-full needs to mount a tmpfs (run as root)")
        }
        let report = try await drill.run(keepFolder: options.keep)
        if options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("演练 / drill \(name): \(report.passed ? "通过 / passed" : "失败 / FAILED")   恢复 / recovery_s \(report.recoveryS.map { "\($0)" } ?? "-")")
            print("  故障注入 / injection: \(report.injection)")
            print("  \(report.summaryZh)")
            print("  \(report.summaryEn)")
            print("  预约请求 / booking requests \(report.requests), 拒绝 / refused \(report.refusedByReason), 结果未知 / unknown \(report.unknownOutcomes); 登记被拒 / registrations refused \(report.recordsRefusedByReason), 未知 / unknown \(report.recordsUnknown)")
            for c in report.checks where c.detail != nil { print("  \(c.passed ? "✓" : "✗") \(c.en): \(c.detail!)") }
            for p in report.problems { print("  ! \(p)") }
        }
        return report.passed
    }

    static func run(_ name: String, _ options: Options) async throws -> LeaseDrill.Report {
        var drill = LeaseDrill(binary: binary)
        drill.name = name
        drill.steps = LeaseDrill.scenarios[name] ?? []
        drill.clients = options.clients
        drill.pauseSeconds = options.pauseSeconds
        let report = try await drill.run(keepFolder: options.keep)
        if options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("演练 / drill \(name): \(report.passed ? "通过 / passed" : "失败 / FAILED")   恢复 / recovery_s \(report.recoveryS.map { "\($0)" } ?? "-")")
            print("  故障注入 / injection: \(report.injection)")
            print("  请求 / requests \(report.requests), 预约成功 / booked \(report.booked), 拒绝 / refused \(report.refusedByReason), 结果未知 / unknown \(report.unknownOutcomes)")
            for f in report.faults {
                print("  \(f.kind) \(f.node): 受影响号源块 / affected blocks \(f.affectedBlocks.count), 恢复 / recovery \(f.recoveryS.map { "\($0) s" } ?? "未恢复 / none")")
            }
            print("  限额突发 / quota burst: \(report.quotaBurstBooked) 成功（应为 1）/ booked (must be 1), 取消后可再约 / rebook after cancel: \(report.quotaFreedByCancel)")
            print("  重复预约 / double bookings \(report.doubleBookings), 丢失的已确认预约 / lost acks \(report.lostAcks), 收敛 / converged \(report.converged)")
            for p in report.problems { print("  ! \(p)") }
        }
        return report
    }
}
