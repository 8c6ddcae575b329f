import ArgumentParser
import Drills
import Foundation

/// `clinicmesh drill`: fault drills against real node processes on loopback.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "故障演练（真实节点进程）/ Fault drills against real node processes",
        subcommands: [Leases.self])

    struct Leases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "leases",
            abstract: "租约演练：杀死持有者、暂停节点，检查无重复预约、无丢失 / Lease drill: SIGKILL a holder, SIGSTOP a node; no double booking, no lost acknowledgement")

        @Option(help: "并发客户端数 / Concurrent clients.")
        var clients = 24

        @Option(help: "节点暂停秒数（须超过 2 秒的存活超时）/ Seconds the paused node stays stopped (past the 2 s liveness timeout).")
        var pauseSeconds: Double = 5

        @Flag(help: "保留临时目录（日志、数据）/ Keep the temporary folder (logs, data).")
        var keep = false

        @Flag(help: "输出 JSON / Print one JSON object.")
        var json = false

        func run() async throws {
            let binary = ProcessInfo.processInfo.environment["CLINICMESH_BIN"] ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
            var drill = LeaseDrill(binary: binary)
            drill.clients = clients
            drill.pauseSeconds = pauseSeconds
            let report = try await drill.run(keepFolder: keep)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print("租约演练 / lease drill: \(report.passed ? "通过 / passed" : "失败 / FAILED")")
                print("请求 / requests \(report.requests), 预约成功 / booked \(report.booked), 拒绝 / refused \(report.refusedByReason), 结果未知 / unknown \(report.unknownOutcomes)")
                for f in report.faults {
                    print("  \(f.kind) \(f.node): 受影响号源块 / affected blocks \(f.affectedBlocks.count), 恢复 / recovery \(f.recoveryS.map { "\($0) s" } ?? "未恢复 / none")")
                }
                print("限额突发 / quota burst: \(report.quotaBurstBooked) 成功（应为 1）/ booked (must be 1), 取消后可再约 / rebook after cancel: \(report.quotaFreedByCancel)")
                print("重复预约 / double bookings \(report.doubleBookings), 丢失的已确认预约 / lost acks \(report.lostAcks), 收敛 / converged \(report.converged)")
                for p in report.problems { print("  ! \(p)") }
            }
            if !report.passed { throw ExitCode.failure }
        }
    }
}
