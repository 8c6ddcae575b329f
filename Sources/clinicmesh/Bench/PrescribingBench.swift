import ArgumentParser
import DemoAndBench
import Domain
import Drills
import Foundation
import Services

/// `clinicmesh bench prescribing`: the rule pack's check of a 5-drug prescription in this process
/// (random drugs of the shipped catalogue, for a patient with coded allergies, reduced renal
/// function and five drugs already being taken), then dispensing at two windows of one pharmacy
/// on three real node processes (`PharmacyDrill` without the kill).
struct PrescribingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prescribing",
        abstract: "处方：5 种药品的规则包检查时间；同一药房两个窗口的发药延迟 / Prescribing: the rule pack's check of 5 drugs; dispensing latency at two windows of one pharmacy")

    @Option(help: "规则检查次数 / Checks timed.") var checks = 20_000
    @Option(help: "发药的处方数（两个窗口都尝试每一张）/ Prescriptions dispensed (both windows try each).") var prescriptions = 300
    @Option(help: "随机种子 / Random seed.") var seed: UInt64 = 2026
    @Flag(help: "输出 JSON / Print one JSON object.") var json = false

    struct Output: Encodable {
        let bench = "prescribing"
        let environment: BenchEnvironment
        let rulePack: String
        let interactions: Int
        let doseLimits: Int
        let cautions: Int
        let catalogueDrugs: Int
        let checkP99Ms: Double?
        let check: FloorLoad.Figures?
        let alertsPerCheck: Double
        let dispenseP99Ms: Double?
        let dispensing: PharmacyDrill.Report
        let method = "check: RulePack.check of 5 random oral drugs of the shipped catalogue at their usual doses (seeded), for a 70-year-old with coded penicillin and NSAID allergies, eGFR 40 and 5 current drugs, in this process on one core, timed around the call; dispense: two windows (admin calls through the two nodes that do not hold the pharmacy's block) each try every prescription in opposite orders; timed on the window's node from the stock command's arrival to its quorum-durable acknowledgement (refusals excluded)"
        let goal = "check_p99_ms <= 5, dispense_p99_ms <= 50"
    }

    func validate() throws {
        guard (100...1_000_000).contains(checks), (10...5_000).contains(prescriptions) else {
            throw ValidationError("--checks 100…1000000，--prescriptions 10…5000 / --checks 100...1000000, --prescriptions 10...5000")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        let catalogue = try DrugCatalogue.shipped.get(), pack = try RulePack.shipped.get()
        let oral = catalogue.drugs.filter { $0.route == "oral" && $0.atc != "-" }
        var rng = SyntheticNotes.Random(state: seed)
        let current = (0..<5).map { _ in oral[Int(rng.next() % UInt64(oral.count))] }
        let patient = RxPatient(age: 70, female: true, weightKg: 60, eGFR: 40, allergyCodes: ["J01C", "M01A"], currentDrugs: current)
        say("规则检查 \(checks) 次 / timing \(checks) checks (rule pack \(pack.version))")
        var ms: [Double] = []
        ms.reserveCapacity(checks)
        var alerts = 0
        for _ in 0..<checks {
            let doses = (0..<5).map { _ -> RxDose in
                let d = oral[Int(rng.next() % UInt64(oral.count))]
                return RxDose(drug: d, dose: d.usualDose, frequency: d.usualFrequency)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            let found = (try? pack.check(doses, patient: patient))?.count ?? 0
            ms.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)
            alerts += found
        }
        let check = FloorLoad.figures(ms)
        say("两个窗口发药 / two windows dispensing \(prescriptions) prescriptions on 3 node processes")
        var drill = PharmacyDrill(binary: ClinicMesh.nodeExecutable, killHolder: false)
        drill.prescriptions = prescriptions
        drill.packagesPerDrug = prescriptions * 3
        let report = try await drill.run()
        let output = Output(environment: environment, rulePack: pack.version, interactions: pack.interactions.count, doseLimits: pack.doseLimitCount,
                            cautions: pack.cautions.count, catalogueDrugs: catalogue.drugs.count, checkP99Ms: check?.p99Ms, check: check,
                            alertsPerCheck: Double(alerts) / Double(checks), dispenseP99Ms: report.dispense?.p99Ms, dispensing: report)
        if json {
            try printJSON(output)
        } else {
            func line(_ f: FloorLoad.Figures?) -> String { f.map { "\($0.count) 次 / times, p50 \($0.p50Ms) ms, p99 \($0.p99Ms) ms, max \($0.maxMs) ms" } ?? "-" }
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                规则包 / rule pack: \(pack.version): \(pack.interactions.count) 相互作用 / interactions, \(pack.doseLimitCount) 剂量上限 / dose limits, \(pack.cautions.count) 特殊人群 / cautions
                规则检查（5 种药）/ check of 5 drugs: \(line(check))；平均提示 / alerts per check \(String(format: "%.2f", Double(alerts) / Double(checks)))
                发药 / dispense: \(line(report.dispense))；发出 / dispensed \(report.dispensed)，拒绝 / refused \(report.refusedByReason)
                """)
        }
        if !report.passed { throw ExitCode.failure }
    }
}
