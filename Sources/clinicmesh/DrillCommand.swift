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

        @Option(help: "连续运行次数（--json 时每次一行 JSON，最后一行为汇总）/ Run this many times (with --json: one JSON line per run, then a summary line).")
        var runs = 1
    }

    /// The storm drill's own options (`storm` only).
    struct StormOptions: ParsableArguments {
        @Option(help: "storm：患者人数 / storm: patients signed in.")
        var patients = 60

        @Option(help: "storm：负载秒数（默认 70；--short 为 \(Int(StormDrill.shortSeconds))）/ storm: seconds of load (default 70; --short \(Int(StormDrill.shortSeconds))).")
        var seconds: Double?

        @Flag(help: "storm：CI 用的短版本 / storm: the short version for CI.")
        var short = false

        @Option(help: "storm：随机种子（默认随机，报告中给出）/ storm: random seed (default random; the report gives it).")
        var seed: UInt64?

        @Option(help: "storm：被 SIGKILL 的节点（默认随种子）/ storm: the node to SIGKILL (default: from the seed).")
        var killNode: String?

        @Option(help: "storm：被 SIGSTOP 的节点（默认随种子，与前者不同）/ storm: the node to SIGSTOP (default: from the seed, another one).")
        var pauseNode: String?
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "运行一个演练场景，或 all / Run one drill scenario, or all",
            discussion: "场景 / scenarios: \(DrillCommand.names.joined(separator: ", ")), all")

        @Argument(help: "场景名 / Scenario name") var scenario: String
        @OptionGroup var options: Options
        @OptionGroup var storm: StormOptions

        func validate() throws {
            guard scenario == "all" || DrillCommand.names.contains(scenario) else {
                throw ValidationError("未知场景 \(scenario)；可选 / unknown scenario \(scenario); one of: \(DrillCommand.names.joined(separator: ", ")), all")
            }
            guard options.runs >= 1 else { throw ValidationError("--runs 至少为 1 / --runs must be at least 1") }
        }

        func run() async throws {
            let names = scenario == "all" ? DrillCommand.names : [scenario]
            var outcomes: [(run: Int, scenario: String, passed: Bool)] = []
            for run in 1...options.runs {
                for name in names {
                    let passed: Bool
                    if name == "storm" {
                        passed = try await DrillCommand.storm(options, storm)
                    } else if name == "pharmacy" {
                        passed = try await DrillCommand.pharmacy(options)
                    } else if ChaosDrill.Kind(rawValue: name) != nil {
                        passed = try await DrillCommand.chaos(name, options)
                    } else {
                        passed = try await DrillCommand.run(name, options).passed
                    }
                    outcomes.append((run, name, passed))
                }
            }
            if options.runs > 1 { DrillCommand.printRuns(outcomes, json: options.json) }
            if outcomes.contains(where: { !$0.passed }) { throw ExitCode.failure }
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

    /// Every scenario: the lease drills, the operations drills, then the storm.
    static var names: [String] { LeaseDrill.scenarios.keys.sorted() + ChaosDrill.names + ["pharmacy", "storm"] }

    /// After `--runs N`: how many passed, and which failed (one JSON line with --json).
    static func printRuns(_ outcomes: [(run: Int, scenario: String, passed: Bool)], json: Bool) {
        let failed = outcomes.filter { !$0.passed }.map { "run \($0.run) \($0.scenario)" }
        let passed = outcomes.count - failed.count
        if json {
            struct Runs: Encodable {
                var runs: Int
                var passedRuns: Int
                var failed: [String]
                var passed: Bool
                var summaryZh: String
                var summaryEn: String
                enum CodingKeys: String, CodingKey { case runs, passedRuns = "passed_runs", failed, passed, summaryZh = "summary_zh", summaryEn = "summary_en" }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let value = Runs(runs: outcomes.count, passedRuns: passed, failed: failed, passed: failed.isEmpty,
                             summaryZh: "共 \(outcomes.count) 次，通过 \(passed) 次", summaryEn: "\(passed) of \(outcomes.count) runs passed")
            print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
        } else {
            print("共 \(outcomes.count) 次，通过 \(passed) 次 / \(passed) of \(outcomes.count) runs passed\(failed.isEmpty ? "" : "；失败 / failed: " + failed.joined(separator: ", "))")
        }
    }

    /// Runs the storm drill once; returns whether it passed.
    /// One report as one line of JSON, keys sorted (scripts read `--runs` output a line at a time).
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func storm(_ options: Options, _ storm: StormOptions) async throws -> Bool {
        var drill = StormDrill(binary: binary)
        drill.patients = storm.patients
        drill.seconds = storm.seconds ?? (storm.short ? StormDrill.shortSeconds : 70)
        if let seed = storm.seed { drill.seed = seed }
        drill.killNode = storm.killNode
        drill.pauseNode = storm.pauseNode
        let report = try await drill.run(keepFolder: options.keep)
        if options.json {
            try printJSON(report)
        } else {
            print("演练 / drill storm: \(report.passed ? "通过 / passed" : "失败 / FAILED")   种子 / seed \(report.seed)")
            print("  \(report.summaryZh)")
            print("  \(report.summaryEn)")
            print("  请求 / requests \(report.requests.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); 始终无结果 / never answered \(report.unknownOutcomes)")
            for f in report.faults {
                print("  \(f.kind) \(f.node): 号源块 / blocks \(f.blocks), 恢复 / recovery \(f.blockRecoveryS.map { "\($0) s" } ?? "未全部恢复 / incomplete")"
                      + (f.unrecovered.isEmpty ? "" : ", 未恢复 / never: \(f.unrecovered.map(\.block).joined(separator: ", "))"))
            }
            for c in report.checks {
                print("  \(c.passed ? "✓" : "✗") \(c.zh) / \(c.en)\(c.passed ? "" : " — \(c.count)")")
                for e in c.examples where !c.passed { print("      \(e)") }
            }
            for p in report.problems { print("  ! \(p)") }
            if let folder = report.folder { print("  保留目录 / kept: \(folder)") }
        }
        return report.passed
    }

    static var binary: String { ClinicMesh.nodeExecutable }

    /// Runs one operations drill (partition, eviction, clock skew, full disk); returns whether it passed.
    static func chaos(_ name: String, _ options: Options) async throws -> Bool {
        var drill = ChaosDrill(kind: ChaosDrill.Kind(rawValue: name)!, binary: binary)
        drill.clients = min(options.clients, 16)
        if drill.kind == .diskFull, !LocalCluster.canMountTmpfs() {
            throw ValidationError("disk-full 需要挂载 tmpfs 的权限（以 root 运行）/ disk-full needs to mount a tmpfs (run as root)")
        }
        let report = try await drill.run(keepFolder: options.keep)
        if options.json {
            try printJSON(report)
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

    /// The pharmacy drill: the stock block's holder killed while two windows dispense the last packages.
    static func pharmacy(_ options: Options) async throws -> Bool {
        let report = try await PharmacyDrill(binary: binary, killHolder: true).run()
        if options.json {
            try printJSON(report)
        } else {
            print("演练 / drill pharmacy: \(report.passed ? "通过 / passed" : "失败 / FAILED")   恢复 / recovery_s \(report.recoveryS.map { "\($0)" } ?? "-")")
            print("  故障注入 / injection: \(report.injection)")
            print("  \(report.summaryZh)")
            print("  \(report.summaryEn)")
            print("  请求 / requests \(report.requests), 拒绝 / refused \(report.refusedByReason), 结果未知 / unknown \(report.unknownOutcomes), 各节点一致 / converged \(report.converged)")
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
            try printJSON(report)
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
