import ClinicNode
import Consensus
import Domain
import Foundation
import Services

/// The demo's prescribing and pharmacy: the department head's narcotic prescribing right, opening
/// stock of every drug at the pharmacies this node serves (received through the pharmacy block's
/// holder like any receipt: made-up batches and quantities, a few low, a few expiring soon), and
/// prescriptions at some of the past demo visits (made-up, reviewed by the department's pharmacist).
enum DemoPharmacy {
    static func seed(_ node: MeshNode, department: String) async throws -> (stock: Int, prescriptions: Int) {
        let staff = DemoStaff.members(of: department)
        if let head = staff.first(where: { $0.roles.contains(.departmentHead) }), let account = try node.staff.account(head.number), account.rights.isEmpty {
            try node.staff.setRights(head.number, [.narcotic], by: "demo")
        }
        var received = 0
        if let pharmacy = node.pharmacy, let served = node.config.pharmacy?.serves {
            for code in served.compactMap(Pharmacy.init(rawValue:)) { received += try await stock(pharmacy, code) }
        }
        return (received, try prescriptions(node, department: department))
    }

    /// Opening stock for each drug of `code` that has none yet; waits for the block to be set up.
    static func stock(_ desk: PharmacyDesk, _ code: Pharmacy) async throws -> Int {
        for _ in 0..<120 where desk.ledger(code) == nil { try await Task.sleep(for: .milliseconds(500)) }
        guard let ledger = desk.ledger(code) else {
            throw NodeError(.admin, zh: "药房 \(code.rawValue) 的库存块 60 秒内未建立。", en: "the stock block of pharmacy \(code.rawValue) was not set up within 60 s.")
        }
        let stocked = Set(ledger.batches.values.map(\.drug))
        let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(desk.prescriptions.clock.wallMillis()) / 1000)).date
        var n = 0
        for (i, drug) in desk.prescriptions.catalogue.drugs.enumerated() where drug.pharmacy == code && !stocked.contains(drug.code) {
            let quantity = i % 23 == 5 ? 4 : 30 + (i * 37) % 170
            let expiry = try today.adding(days: i % 11 == 3 ? 20 : 400 + i % 200)
            let day = today.description.replacingOccurrences(of: "-", with: "")
            _ = try await desk.receive(code, drug: drug.code, batch: "D\(day)-\(drug.code)", expiry: expiry.description, quantity: String(quantity),
                                       requestID: "demo-\(day)-\(drug.code.lowercased())")
            n += 1
        }
        return n
    }

    /// Made-up prescriptions at every fourth past demo visit of this department: one common drug
    /// at its usual dose for 3 days, approved by the department's pharmacist.
    static func prescriptions(_ node: MeshNode, department: String) throws -> Int {
        guard let desk = node.prescriptions, let records = node.records else { return 0 }
        let staff = DemoStaff.members(of: department)
        guard let pharmacist = staff.first(where: { $0.roles.contains(.pharmacist) }) else { return 0 }
        let common = ["M01AE01", "A02BC01", "R06AE07", "J01CA04"].compactMap { atc in desk.catalogue.drugs.first { $0.atc == atc && $0.route == "oral" } }
        guard !common.isEmpty else { return 0 }
        let visits = try node.replica.liveRows("encounter").keys.filter { $0.hasPrefix("demo-\(department)-") }.sorted()
        var written = 0
        for (i, id) in visits.enumerated() where i % 4 == 0 {
            let rxID = "rx-demo-\(id.dropFirst(5))"
            guard try desk.prescription(rxID) == nil else { continue }
            let visit = try records.visit(id)
            guard let current = visit.current, let doctor = staff.first(where: { $0.number == current.author }) else { continue }
            let title = ((try? node.replica.liveRow("practitioner", key: doctor.practitioner)) ?? nil)?["title"]?.textValue.flatMap(PractitionerTitle.init(rawValue:))
            let drug = common[i % common.count]
            let input = RxInput(lines: [RxLineInput(drug: drug.code, dose: Drug.number(drug.usualDose), frequency: drug.usualFrequency.rawValue, days: "3")], weight: "60")
            let draft: RxDraft
            do { draft = try desk.check(visit, input, by: Prescriber(staff: doctor.number, name: doctor.name, title: title, rights: [])) } catch { continue }
            guard !draft.blocked else { continue }
            var reasoned = input
            for a in draft.alerts { reasoned.overrides[a.code] = "演示：已核对 / demo: checked" }
            let at = current.atMs + 10 * 60_000
            _ = try desk.sign(visit, reasoned, by: Prescriber(staff: doctor.number, name: doctor.name, title: title, rights: []), id: rxID, atMs: at)
            _ = try desk.review(rxID, verdict: .approved, reason: "", pharmacist: pharmacist.number, name: pharmacist.name, atMs: at + 5 * 60_000)
            written += 1
        }
        return written
    }
}
