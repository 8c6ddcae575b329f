@testable import ClinicNode
import Crypto
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Testing

/// Orders and results over a real replica: placing and cancelling orders, reports from the lab
/// page, and the HL7 corpus of `Cluster/lab-samples` imported from a real folder.
@Suite("Orders and results")
struct LabResultTests {
    let replica: Replica
    let records: RecordDesk
    let orders: OrderDesk
    static let patient = "0c1d3b5e9a7f4e2d8b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
    static let visit = "h000000000000000000000042"
    static let doctor = RecordAuthor(staff: "N001", name: "王建国", practitioner: "dr-wang-jianguo")
    static let technician = RecordAuthor(staff: "LAB01", name: "周琳", practitioner: "")
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Cluster/lab-samples")

    init() throws {
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: SymmetricKey(size: .bits256))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lab-\(UUID().uuidString).sqlite").path
        replica = try Replica.open(path: path, node: "neike", schema: NodeSchema.schema, options: options)
        let store = ReplicaStore(replica: replica, signals: WriteSignals())
        let clock = NodeClock()
        records = RecordDesk(store: store, clock: clock, floor: nil, node: "neike", catalogue: try DiagnosisCatalogue.shipped.get())
        orders = OrderDesk(store: store, clock: clock, catalogue: try OrderCatalogue.shipped.get())
        try replica.write { w in
            _ = try w.insert("encounter", key: Self.visit, values: [
                "patient": .text(Self.patient), "session": .text("dr-wang-jianguo/2027-03-01/morning"), "department": .text("neike"),
                "practitioner": .text("dr-wang-jianguo"), "date": .text("2027-03-01"), "opened_by": .text("N001"), "opened_ms": .integer(1),
            ])
        }
    }

    func refusal(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as StaffError { return e.code } catch { return "\(error)" }
    }

    @Test("an order is placed once per pending item, cancelled only with a reason and before its result; bad input places nothing")
    func placingAndCancelling() throws {
        let visit = try records.visit(Self.visit)
        #expect(refusal { _ = try orders.place(visit, item: "L999", clinical: "", by: Self.doctor) } == "order.unknown_item")
        #expect(refusal { _ = try orders.place(visit, item: "L001", clinical: "发热\u{202E}", by: Self.doctor) } == "result.characters")
        let cbc = try orders.place(visit, item: "l001", clinical: "发热 3 天 <b>", by: Self.doctor)
        #expect(cbc.item == "L001" && cbc.status == .ordered && cbc.kind == .lab && cbc.name == "血常规（五分类）" && cbc.clinical == "发热 3 天 <b>")
        #expect(refusal { _ = try orders.place(visit, item: "L001", clinical: "", by: Self.doctor) } == "order.already")
        #expect(try orders.orders(encounter: Self.visit).count == 1, "nothing refused was placed")
        #expect(refusal { _ = try orders.cancel(cbc.id, reason: "") } == "record.reason")
        let cancelled = try orders.cancel(cbc.id, reason: "患者拒绝抽血")
        #expect(cancelled.status == .cancelled && cancelled.cancelReason == "患者拒绝抽血")
        #expect(refusal { _ = try orders.report([ReportDraft(order: cbc.id, observations: [Observation(code: "WBC", name: "白细胞计数", value: "6")], source: "page")],
                                                by: Self.technician) } == "order.cancelled")
        let again = try orders.place(visit, item: "L001", clinical: "", by: Self.doctor)
        #expect(again.id != cbc.id, "a cancelled item may be ordered again")
    }

    @Test("a report from the lab page: flags judged from the lab's ranges, the order reported; a second report is a correction; bad values write nothing")
    func reportsFromThePage() throws {
        let order = try orders.place(try records.visit(Self.visit), item: "L001", clinical: "", by: Self.doctor)
        let bad = [Observation(code: "WBC", name: "白细胞计数", value: "11.2\u{0007}", unit: "10^9/L", range: "3.5-9.5")]
        #expect(refusal { _ = try orders.report([ReportDraft(order: order.id, observations: bad, source: "page")], by: Self.technician) } == "result.characters")
        #expect(refusal { _ = try orders.report([ReportDraft(order: order.id, observations: [], source: "page")], by: Self.technician) } == "result.empty")
        #expect(try orders.reports(order: order.id).isEmpty && orders.order(order.id)?.status == .ordered)

        let first = try orders.report([ReportDraft(order: order.id, observations: [
            Observation(code: "WBC", name: "白细胞计数", value: "11.2", unit: "×10^9/L", range: "3.5-9.5"),
            Observation(code: "HGB", name: "血红蛋白", value: "98", unit: "g/L", range: "115-150"),
            Observation(code: "PLT", name: "血小板计数", value: "200", unit: "×10^9/L", range: "125-350"),
        ], conclusion: "<script>x</script>", source: "page")], by: Self.technician)
        #expect(first.count == 1 && first[0].status == .final && first[0].conclusion == "<script>x</script>")
        #expect(first[0].observations.map(\.flag) == [.high, .low, .normal])
        #expect(try orders.order(order.id)?.status == .reported)
        _ = try orders.report([ReportDraft(order: order.id, observations: [Observation(code: "WBC", name: "白细胞计数", value: "9.1", range: "3.5-9.5")],
                                           source: "page")], by: Self.technician)
        let reports = try orders.reports(order: order.id)
        #expect(reports.count == 2 && reports.map(\.status).contains(.corrected) && reports.map(\.status).contains(.final), "the first report is kept")
        #expect(try orders.reports(patient: Self.patient).count == 2)
    }

    @Test("the HL7 corpus: good files imported whole and moved to done/, bad ones quarantined with the reason and nothing written; a file again is one report")
    func importingTheCorpus() throws {
        let visit = try records.visit(Self.visit)
        for (n, item) in [(1, "L001"), (2, "L002"), (3, "L003"), (4, "L005"), (5, "E001"), (6, "L004")] {
            _ = try orders.place(visit, item: item, clinical: "", by: Self.doctor, id: String(format: "ord-sample-%04d", n))
        }
        let inbox = FileManager.default.temporaryDirectory.appendingPathComponent("lab-inbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
        for folder in ["good", "bad"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: Self.samples.appendingPathComponent(folder).path) {
                try FileManager.default.copyItem(at: Self.samples.appendingPathComponent(folder).appendingPathComponent(name), to: inbox.appendingPathComponent(name))
            }
        }
        let lab = LabInbox(folder: inbox.path, orders: orders, settleSeconds: 0)
        let outcomes = Dictionary(uniqueKeysWithValues: lab.sweep().map { ($0.file, $0) })
        #expect(outcomes.count == 12)
        #expect(outcomes["cbc-ord-sample-0001.hl7"]?.imported == 1 && outcomes["batch-ord-sample-0003-0004.hl7"]?.imported == 2)
        #expect(outcomes["lft-ord-sample-0002.hl7"]?.imported == 1 && outcomes["xray-ord-sample-0005.hl7"]?.imported == 1)
        let expected = ["unknown-patient.hl7": "result.wrong_patient", "unknown-order.hl7": "order.not_found", "value-not-a-number.hl7": "hl7.malformed",
                        "no-msh.hl7": "hl7.no_msh", "not-a-result.hl7": "hl7.message_type", "preliminary.hl7": "hl7.malformed",
                        "half-good-batch.hl7": "hl7.malformed", "wrong-item.hl7": "result.wrong_item"]
        for (file, code) in expected {
            #expect(outcomes[file]?.problem?.code == code, "\(file)")
            let reason = try String(contentsOf: inbox.appendingPathComponent("quarantine/\(file).reason.txt"), encoding: .utf8)
            #expect(reason.hasPrefix(code + "\n"), "\(file): the reason file says why")
        }
        #expect(lab.quarantined(zh: true).count == 8)
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox.appendingPathComponent("done").path).count == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox.path).filter { $0.hasSuffix(".hl7") }.isEmpty, "every file left the inbox")

        #expect(try orders.order("ord-sample-0006")?.status == .ordered, "the half-good batch wrote nothing")
        #expect(try orders.reports(order: "ord-sample-0006").isEmpty)
        let cbc = try #require(try orders.reports(order: "ord-sample-0001").first)
        #expect(cbc.observations.map(\.flag) == [.high, .high, .normal, .normal] && cbc.conclusion.contains("中性粒细胞") && cbc.source == "hl7:cbc-ord-sample-0001.hl7")
        let lft = try #require(try orders.reports(order: "ord-sample-0002").first)
        #expect(lft.observations.first { $0.code == "ALT" }?.flag == .high, "no flag sent: judged from the lab's range")
        let xray = try #require(try orders.reports(order: "ord-sample-0005").first)
        #expect(xray.observations.first?.value.contains("\n右下肺野") == true && xray.observations.last?.flag == .abnormal)

        // The same file again (a resend, or the same file on a second node): the same report.
        try FileManager.default.copyItem(at: Self.samples.appendingPathComponent("good/cbc-ord-sample-0001.hl7"), to: inbox.appendingPathComponent("resend.hl7"))
        #expect(lab.sweep().map(\.imported) == [0])
        #expect(try orders.reports(order: "ord-sample-0001").count == 1)
    }

    @Test("reference ranges as labs write them, and the catalogue's published ranges by sex and age")
    func ranges() throws {
        #expect(ReferenceRange("3.5-9.5")?.judge("9.6") == .high && ReferenceRange("3.5～9.5")?.judge("3.4") == .low)
        #expect(ReferenceRange("<10")?.judge("36.5") == .high && ReferenceRange("≥60")?.judge("59") == .low && ReferenceRange("-2-2")?.judge("-1") == .normal)
        #expect(ReferenceRange("阴性") == nil && ReferenceRange("9-3") == nil && ReferenceRange("3.5-9.5")?.judge("阴性") == nil)
        let catalogue = try OrderCatalogue.shipped.get()
        let hgb = try #require(catalogue.item("L001")?.analytes.first { $0.code == "HGB" })
        #expect(hgb.range(sex: "male", age: 40) == "130-175" && hgb.range(sex: "female", age: 40) == "115-150")
        #expect(hgb.range(sex: "male", age: 8) == "", "no adult range for a child: the lab enters its own")
        #expect(catalogue.item("L004")?.analytes.first?.range(sex: "male", age: 40) == "", "no published range shipped: none filled in")
        #expect(catalogue.items.count >= 9 && catalogue.items.allSatisfy { !$0.analytes.isEmpty })
    }
}
