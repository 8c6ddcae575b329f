import ArgumentParser
import DemoAndBench
import Domain
import Drills
import Foundation

/// `clinicmesh bench records`: N made-up signed notes over 5 years of visits on one node of a
/// three-node cluster, then on that node a patient's timeline, searches of 2 to 4 Chinese
/// characters in one patient's notes and across the department, note saves, and the time until
/// a saved note is readable on another node.
struct RecordsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records",
        abstract: "门诊病历：时间线、检索、保存，以及保存后在其他节点可读的时间 / The outpatient record: timeline, search, save, and the time until another node reads a save")

    @Option(help: "病历数 / Notes written first.") var notes = 1_000_000
    @Option(help: "患者数（默认为病历数的 1/10）/ Patients (default: a tenth of the notes).") var patients: Int?
    @Option(help: "每项测量的次数 / Operations timed per measure.") var samples = 200
    @Option(help: "等待各副本收齐的最长秒数 / Longest wait for every replica to hold the load (s).") var replicationSeconds: Double = 1800
    @Flag(help: "输出 JSON / Print one JSON object.") var json = false

    struct Output: Encodable {
        let bench = "records"
        let environment: BenchEnvironment
        let notes: Int
        let patients: Int
        let seedS: Double
        let indexS: Double
        /// Nil: the replicas did not agree within `--replication-seconds`.
        let replicatedS: Double?
        let timelineP99Ms: Double?
        let searchPatientP99Ms: Double?
        let searchDepartmentP99Ms: Double?
        let saveP99Ms: Double?
        let visibleElsewhereP99Ms: Double?
        let timeline: FloorLoad.Figures?
        let searchPatient: FloorLoad.Figures?
        let searchDepartment: FloorLoad.Figures?
        let save: FloorLoad.Figures?
        let visibleElsewhere: FloorLoad.Figures?
        let found: Int
        let method = "seed: bench-records-seed admin calls on node 1 (signed notes of made-up visits over 5 years, 500 a transaction) until written; index: until node 1's search index holds every note; timeline, search_patient, search_department and save: timed inside node 1 by bench-records-measure (the record desk, no HTTP) right after indexing, while the other nodes may still be receiving the load; visible_elsewhere: from a bench-records-save call on node 1 to the first bench-records-has on node 2 that has the version, polled every 2 ms over one admin session, once every replica holds the whole load (replicated_s: how long after indexing that took)"
        let goal = "N = 1,000,000: timeline_p99_ms <= 20, search_patient_p99_ms <= 50, search_department_p99_ms <= 50, save_p99_ms <= 30, visible_elsewhere_p99_ms <= 1000"
    }

    func validate() throws {
        guard (100...5_000_000).contains(notes), (1...10_000).contains(samples), replicationSeconds > 0, patients.map({ $0 >= 1 && $0 <= notes }) ?? true else {
            throw ValidationError("--notes 100…5000000，--samples 1…10000，--patients 1…notes / --notes 100...5000000, --samples 1...10000, --patients 1...notes")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        let patientCount = patients ?? max(1, notes / 10)
        let cluster = try BookingRush.makeCluster(nodes: 3, binary: ClinicMesh.nodeExecutable, folderPrefix: "clinicmesh-records-")
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        try cluster.startAll()
        try await cluster.waitUntilLed(seconds: 120)
        let writer = cluster.ids[0], reader = cluster.ids[1]
        let department = writer
        let doctors = (1...8).map { "\(department)-bench-dr\($0)" }
        let today = try ShanghaiTime.civil(of: Date()).date.description
        let seed: UInt64 = 20_261_207

        say("写入 \(notes) 份病历 / writing \(notes) notes on \(writer)")
        let seedStart = Date()
        let chunk = 5_000
        for first in stride(from: 0, to: notes, by: chunk) {
            let request = BenchRecordsSeed(first: first, count: min(chunk, notes - first), patients: patientCount, department: department, doctors: doctors,
                                           years: 5, today: today, seed: seed)
            _ = try await cluster.call(writer, "bench-records-seed", request)
            if (first / chunk) % 20 == 19 { say("已写入 / written \(first + chunk)") }
        }
        let seedS = Date().timeIntervalSince(seedStart)
        say("等待检索索引 / waiting for the search index")
        let indexStart = Date()
        try await waitFor("\(writer) 的检索索引收录全部病历 / \(writer)'s search index holding every note", seconds: max(120, Double(notes) / 500)) {
            let answer = try JSONDecoder().decode([String: Int].self, from: Data(try await cluster.call(writer, "bench-records-indexed")))
            return (answer["indexed"] ?? 0) >= notes
        }
        let indexS = Date().timeIntervalSince(indexStart)

        var rng = SystemRandomNumberGenerator()
        let sampledPatients = (0..<samples).map { _ in "bench-p\(Int.random(in: 0..<patientCount, using: &rng))" }
        let words = ["咳嗽", "咽痛", "发热", "头痛伴", "受凉后出现", "双肺呼吸", "腹痛", "乏力"]
        let searches = (0..<samples).map { words[$0 % words.count] }
        let saves = (0..<samples).map { _ in "bench-v\(Int.random(in: 0..<notes, using: &rng))" }
        say("测量 / measuring on \(writer)")
        let times = try JSONDecoder().decode(BenchRecordsTimes.self, from: Data(try await cluster.call(writer, "bench-records-measure",
            BenchRecordsMeasure(department: department, patients: sampledPatients, words: searches, saves: saves))))

        // Steady state: a save measured behind a backlog of the whole load would time the backlog.
        say("等待各副本一致 / waiting for the replicas to agree")
        let replicateStart = Date()
        var replicatedS: Double?
        do {
            try await cluster.waitUntilReplicasAgree("各节点收齐全部病历 / every node holding every note", seconds: replicationSeconds)
            replicatedS = Date().timeIntervalSince(replicateStart)
        } catch {
            say("\(error)；不测他节点可读时间 / visible_elsewhere not measured")
        }
        var visible: [Double] = []
        if replicatedS != nil {
        say("保存后在 \(reader) 可读的时间 / time until \(reader) reads a save")
        try await cluster.withAdminSession(reader) { session in
            for i in 0..<samples {
                let visit = "bench-v\(Int.random(in: 0..<notes, using: &rng))"
                let start = DispatchTime.now().uptimeNanoseconds
                let saved = try JSONDecoder().decode([String: String].self, from: Data(try await cluster.call(writer, "bench-records-save", ["visit": visit, "text": "（\(i)）"])))
                let version = saved["version"] ?? ""
                let body = String(decoding: try JSONEncoder().encode(["version": version]), as: UTF8.self)
                while true {
                    let has = try JSONDecoder().decode([String: Bool].self, from: Data(try await session.request("bench-records-has " + body)))
                    if has["has"] == true { break }
                    guard DispatchTime.now().uptimeNanoseconds - start < 60_000_000_000 else { throw DrillError("\(reader) 60 秒内未读到 / did not read it within 60 s: \(version)") }
                    try await Task.sleep(for: .milliseconds(2))
                }
                visible.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
        }
        }

        let timeline = FloorLoad.figures(times.timelineMs), searchPatient = FloorLoad.figures(times.searchPatientMs)
        let searchDepartment = FloorLoad.figures(times.searchDepartmentMs), save = FloorLoad.figures(times.saveMs), elsewhere = FloorLoad.figures(visible)
        let output = Output(environment: environment, notes: notes, patients: patientCount, seedS: (seedS * 10).rounded() / 10, indexS: (indexS * 10).rounded() / 10,
                            replicatedS: replicatedS.map { ($0 * 10).rounded() / 10 }, timelineP99Ms: timeline?.p99Ms, searchPatientP99Ms: searchPatient?.p99Ms,
                            searchDepartmentP99Ms: searchDepartment?.p99Ms, saveP99Ms: save?.p99Ms, visibleElsewhereP99Ms: elsewhere?.p99Ms,
                            timeline: timeline, searchPatient: searchPatient, searchDepartment: searchDepartment, save: save, visibleElsewhere: elsewhere,
                            found: times.found)
        if json {
            try printJSON(output)
        } else {
            func line(_ f: FloorLoad.Figures?) -> String { f.map { "\($0.count) 次 / times, p50 \($0.p50Ms) ms, p99 \($0.p99Ms) ms, max \($0.maxMs) ms" } ?? "-" }
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                病历 / notes: \(notes)，患者 / patients \(patientCount)；写入 / written in \(output.seedS) s，索引 / indexed \(output.indexS) s later，各副本一致 / replicas agreed \(output.replicatedS.map { "\($0) s" } ?? "-") after that
                时间线 / timeline: \(line(output.timeline))
                单患者检索 / one patient's search: \(line(output.searchPatient))
                科室检索 / department search: \(line(output.searchDepartment))（找到 / found \(times.found)）
                保存 / save: \(line(output.save))
                他节点可读 / visible elsewhere: \(line(output.visibleElsewhere))
                目标 / goal: \(output.goal)
                """)
        }
    }
}
