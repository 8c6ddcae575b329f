import ArgumentParser
import Drills
import Foundation

/// `clinicmesh bench floor`: publish a large rota, then a clinic morning on real node processes
/// (`FloorLoad`): publish time, call-next latency, and call-to-display on another node.
struct FloorBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floor",
        abstract: "门诊现场：排班发布时间、叫号延迟、叫号到另一节点候诊屏的时间 / The clinic floor: rota publish time, call-next latency, call to another node's display")

    @Option(help: "节点进程数（1 到 3）/ Node processes (1 to 3).") var nodes = 3
    @Option(help: "科室数 / Departments.") var departments = 40
    @Option(help: "医生总数 / Doctors in all.") var doctors = 300
    @Option(help: "发布周数 / Weeks of rota.") var weeks = 8
    @Option(help: "上午的秒数 / Seconds of the clinic morning.") var seconds: Double = 60
    @Option(help: "今天上午每次出诊的预约数 / Bookings per morning session.") var bookingsPerSession = 4
    @Option(help: "每次出诊的现场挂号数 / Walk-ins per session.") var walkInsPerSession = 1
    @Option(help: "医生平均叫号间隔（秒，泊松；30 秒即每次就诊 10 分钟的门诊提速 20 倍）/ Mean seconds between a doctor's calls (Poisson; 30 s is a clinic of 10-minute visits 20 times faster).") var callEverySeconds: Double = 30
    @Flag(help: "输出 JSON / Print one JSON object.") var json = false

    struct Output: Encodable {
        let bench = "floor"
        let environment: BenchEnvironment
        let run: FloorLoad.Report
        let publishS: Double
        let callNextP99Ms: Double?
        let callToDisplayP99Ms: Double?
        let method = "publish_s: with every department's weekly templates on every replica, from the bench-rota-publish admin calls (each node publishes its departments' rota through the rota page's desk: schedule rows and lease blocks) until every node has every session's block; call_next: a doctor's `floor next` admin call at the session's holder, until the call is quorum-durable; call_to_display: from that call's request to the server-sent event of the department's display page on another node showing the called number"
        let goal = "publish_s <= 10, call_next_p99_ms <= 50, call_to_display_p99_ms <= 1000"
    }

    func validate() throws {
        guard (1...3).contains(nodes), (1...500).contains(departments), doctors >= departments, doctors <= 100 * departments, (1...26).contains(weeks),
              seconds > 0, (0...20).contains(bookingsPerSession), (0...4).contains(walkInsPerSession), callEverySeconds > 0 else {
            throw ValidationError("--nodes 1…3，--departments 1…500，--doctors ≥ 科室数且每科 ≤ 100，--weeks 1…26，--bookings-per-session 0…20，--walk-ins-per-session 0…4 / --nodes 1...3, --departments 1...500, --doctors >= departments and <= 100 each, --weeks 1...26, --bookings-per-session 0...20, --walk-ins-per-session 0...4")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        var options = FloorLoad.Options(binary: ClinicMesh.nodeExecutable)
        options.nodes = nodes
        options.departments = departments
        options.doctors = doctors
        options.weeks = weeks
        options.seconds = seconds
        options.bookingsPerSession = bookingsPerSession
        options.walkInsPerSession = walkInsPerSession
        options.callEverySeconds = callEverySeconds
        let report = try await FloorLoad(options, say: say).run()
        let output = Output(environment: environment, run: report, publishS: report.publishS, callNextP99Ms: report.callNext?.p99Ms,
                            callToDisplayP99Ms: report.callToDisplay?.p99Ms)
        if json {
            try printJSON(output)
        } else {
            func line(_ f: FloorLoad.Figures?) -> String { f.map { "\($0.count) 次 / times, p50 \($0.p50Ms) ms, p99 \($0.p99Ms) ms, max \($0.maxMs) ms" } ?? "-" }
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                排班 / rota: \(report.departments) 科室 / departments, \(report.doctors) 医生 / doctors, \(report.weeks) 周 / weeks: \(report.sessions) 次出诊 / sessions, \(report.slots) 号 / slots
                发布 / publish: \(report.publishS) s（节点内最长 / longest on a node \(report.publishNodeS) s）
                上午 / morning: \(report.morningSessions) 次出诊 / sessions, \(report.bookings) 个预约 / bookings, \(report.seconds) s
                报到 / check-in: \(line(report.checkIns))
                现场挂号 / walk-in: \(line(report.walkIns))
                叫号 / call next: \(line(report.callNext))
                叫号到另一节点候诊屏 / call to another node's display: \(line(report.callToDisplay))；未显示 / not shown \(report.callsNotDisplayed)
                意外应答 / unexpected: \(report.unexpected.isEmpty ? "0" : report.unexpected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                """)
        }
        if !report.unexpected.isEmpty { throw ExitCode.failure }
    }
}
