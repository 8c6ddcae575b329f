import Consensus
import Domain
import Foundation

/// One drug's stock at a pharmacy, as this node knows it.
package struct StockHint: Sendable, Hashable {
    package var available: Int
    /// The holder's wall time of the newest movement this node has (0: none known).
    package var asOfMs: Int64
    package var low: Bool
}

/// The pharmacy's stock: receipts, dispensing and returns, each a stock command to the holder of
/// the pharmacy's block (`StockLedger`), which refuses any that would take stock below zero, use
/// an expired batch or dispense a prescription twice. This desk checks the prescription's side
/// (reviewed, not more than prescribed) and reads the ledger any node derives.
package struct PharmacyDesk: Sendable {
    package let consensus: any BookingConsensus
    package let prescriptions: PrescriptionDesk
    package let outbox: SMSOutbox?
    /// Below this many packages (non-expired) a drug is low on stock.
    package static let lowStockPackages = 10

    package init(consensus: any BookingConsensus, prescriptions: PrescriptionDesk, outbox: SMSOutbox?) {
        self.consensus = consensus; self.prescriptions = prescriptions; self.outbox = outbox
    }

    package static func block(_ pharmacy: Pharmacy) -> BlockID { pharmacyBlockPrefix + pharmacy.rawValue }

    var today: Int { ShanghaiTime.unixDay(wallMs: prescriptions.clock.wallMillis()) }

    /// The pharmacy's ledger as this node has it; nil while its block is not defined or unknown here.
    package func ledger(_ pharmacy: Pharmacy) -> StockLedger? {
        consensus.lookup { $0.stock(of: Self.block(pharmacy)) }
    }

    /// Each drug's available packages, for the doctor's stock hint.
    package func hints(_ pharmacy: Pharmacy) -> [String: StockHint] {
        guard let ledger = ledger(pharmacy) else { return [:] }
        let day = today
        var out: [String: StockHint] = [:]
        for code in Set(ledger.batches.values.map(\.drug)) {
            let n = ledger.available(code, today: day)
            out[code] = StockHint(available: n, asOfMs: ledger.lastAtMs, low: n < Self.lowStockPackages)
        }
        return out
    }

    // MARK: Movements

    /// Receives packages of a batch (入库). `expiry`: the last day of use, `YYYY-MM-DD`.
    /// `requestID`: the form's own id, so that submitting it again (after a timeout) receives once.
    package func receive(_ pharmacy: Pharmacy, drug code: String, batch: String, expiry: String, quantity: String, requestID: String) async throws(StaffError) -> StockRecord {
        guard let drug = prescriptions.catalogue.drug(code), drug.pharmacy == pharmacy else {
            throw StaffError(400, "stock.unknown_drug", zh: "药品“\(String(code.prefix(16)))”不在本药房的目录中。", en: "“\(String(code.prefix(16)))” is not in this pharmacy's catalogue.")
        }
        let expiryDate: CivilDate
        do { expiryDate = try CivilDate(parsing: expiry, field: "expiry") } catch { throw .invalid(error) }
        let batchText = InputText.trimmed(batch)
        guard let n = Int(InputText.trimmed(quantity)), (1...100_000).contains(n) else {
            throw StaffError(400, "stock.quantity", zh: "数量须为 1 到 100000 的整数（按包装）。", en: "the quantity is a whole number of packages, 1 to 100000.")
        }
        let item = StockItem(drug: drug.code, batch: batchText, quantity: n)
        guard item.isValid else {
            throw StaffError(400, "stock.batch_format", zh: "批号须为 1 到 24 位字母、数字或连字符。", en: "a batch number is 1 to 24 letters, digits or hyphens.")
        }
        return try await send(.receive(item, expiryDay: expiryDate.unixDay), pharmacy, id: "stock-in:" + (try Self.formID(requestID)))
    }

    /// What the pharmacist gives for one line: how many packages, from which batch (nil: the
    /// batches that expire first, FEFO).
    package struct Pick: Sendable {
        package var drug: String
        package var batch: String?
        package var quantity: Int
        package init(drug: String, batch: String?, quantity: Int) { self.drug = drug; self.batch = batch; self.quantity = quantity }
    }

    /// Dispenses a reviewed prescription, each line in full. `picks`: one per line (nil: every
    /// line in full from the batches that expire first).
    package func dispense(_ id: String, picks: [Pick]? = nil) async throws(StaffError) -> (Prescription, StockRecord) {
        guard let rx = try prescriptions.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
        guard rx.status == .approved else {
            throw StaffError(409, "rx.not_approved", zh: "处方须先审方通过才能发药（现为：\(rx.status.zh)）。", en: "a prescription is reviewed and approved before it is dispensed (now: \(rx.status.en)).")
        }
        guard let ledger = ledger(rx.pharmacy) else { throw unavailable }
        if ledger.dispensed[id] != nil { throw Self.refusal(.alreadyDispensed) }
        // 《处方管理办法》第十八条: a prescription is valid on the day it is written.
        guard let written = try? CivilDate(parsing: rx.date), written.unixDay >= today else {
            throw StaffError(409, "rx.expired", zh: "处方开具当日有效（《处方管理办法》第十八条），这张处方开于 \(rx.date)，已过期，请医生重新开具。",
                             en: "a prescription is valid on the day it is written (Prescription Regulations, art. 18); this one is of \(rx.date) and has expired. Ask the doctor for a new one.")
        }
        let picks = picks ?? rx.body.lines.map { Pick(drug: $0.drug, batch: nil, quantity: $0.packages) }
        guard Set(picks.map(\.drug)).isSubset(of: Set(rx.body.lines.map(\.drug))) else {
            throw StaffError(400, "rx.dispense_other_drug", zh: "发药的药品须是处方上的药品。", en: "only the prescription's drugs are dispensed.")
        }
        var items: [StockItem] = []
        for line in rx.body.lines {
            let n = picks.filter { $0.drug == line.drug }.reduce(0) { $0 + $1.quantity }
            if n > line.packages {
                throw StaffError(400, "rx.dispense_too_much", zh: "\(line.label) 发药 \(n)\(line.packageUnit)，多于处方的 \(line.packages)\(line.packageUnit)。",
                                 en: "\(n) \(line.packageUnit) of \(line.label) is more than the \(line.packages) prescribed.")
            }
            if n < line.packages {
                throw StaffError(400, "rx.dispense_short", zh: "\(line.label) 须发 \(line.packages)\(line.packageUnit)，现为 \(n)。", en: "\(line.label) needs \(line.packages) \(line.packageUnit); \(n) given.")
            }
            for pick in picks where pick.drug == line.drug {
                if let batch = pick.batch {
                    items.append(StockItem(drug: line.drug, batch: batch, quantity: pick.quantity))
                } else {
                    items += try allocate(line.drug, pick.quantity, label: line.label, unit: line.packageUnit, ledger, taken: items)
                }
            }
        }
        guard items.allSatisfy(\.isValid) else { throw StaffError(400, "stock.batch_format", zh: "批号格式不对。", en: "the batch number is not valid.") }
        let record = try await send(.dispense(rx: id, items: items), rx.pharmacy, id: "dispense:\(id):\(UUID().uuidString.lowercased())")
        await tellPatient(rx)
        return (rx, record)
    }

    /// `quantity` packages of `drug` from the batches not expired that expire first, after what
    /// `taken` already takes.
    func allocate(_ drug: String, _ quantity: Int, label: String, unit: String, _ ledger: StockLedger, taken: [StockItem]) throws(StaffError) -> [StockItem] {
        let day = today
        var need = quantity
        var items: [StockItem] = []
        let usable = ledger.batches.values.filter { $0.drug == drug && $0.expiryDay >= day }.sorted { ($0.expiryDay, $0.batch) < ($1.expiryDay, $1.batch) }
        for b in usable where need > 0 {
            let used = taken.filter { $0.drug == drug && $0.batch == b.batch }.reduce(0) { $0 + $1.quantity }
            let take = min(need, b.quantity - used)
            guard take > 0 else { continue }
            items.append(StockItem(drug: drug, batch: b.batch, quantity: take))
            need -= take
        }
        if need > 0 {
            throw StaffError(409, "stock.short", zh: "\(label) 库存不足：还差 \(need)\(unit)（过期批号不能发药）。",
                             en: "not enough \(label) in stock: \(need) \(unit) short (expired batches cannot be dispensed).")
        }
        return items
    }

    /// Batches of `drug` in `ledger` that may be dispensed today, those that expire first first.
    package func usableBatches(_ drug: String, in ledger: StockLedger) -> [StockLedger.Batch] {
        let day = today
        return ledger.batches.values.filter { $0.drug == drug && $0.expiryDay >= day && $0.quantity > 0 }
            .sorted { ($0.expiryDay, $0.batch) < ($1.expiryDay, $1.batch) }
    }

    /// Takes packages of a dispensed prescription back into stock (退药).
    package func takeBack(_ id: String, drug: String, batch: String, quantity: String, requestID: String) async throws(StaffError) -> StockRecord {
        guard let rx = try prescriptions.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
        guard let n = Int(InputText.trimmed(quantity)), (1...999).contains(n) else {
            throw StaffError(400, "stock.quantity", zh: "退药数量须为 1 到 999 的整数（按包装）。", en: "the quantity returned is a whole number of packages, 1 to 999.")
        }
        let item = StockItem(drug: drug, batch: InputText.trimmed(batch), quantity: n)
        guard item.isValid else { throw StaffError(400, "stock.batch_format", zh: "批号格式不对。", en: "the batch number is not valid.") }
        return try await send(.returned(rx: id, items: [item]), rx.pharmacy, id: "stock-back:" + (try Self.formID(requestID)))
    }

    /// A form's request id: letters, digits and hyphens, 8 to 64 of them.
    static func formID(_ text: String) throws(StaffError) -> String {
        guard (8...64).contains(text.utf8.count), text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 45 }) else {
            throw StaffError(400, "request.id", zh: "表单已失效，请刷新页面后重试。", en: "the form is stale; reload the page and try again.")
        }
        return text
    }

    private func tellPatient(_ rx: Prescription) async {
        guard let outbox, let row = try? prescriptions.store.liveRow("patient", key: rx.patient), let mobile = row["mobile"]?.textValue, !mobile.isEmpty else { return }
        let text = "【ClinicMesh】您的药品已备好，请到\(rx.pharmacy.zh)取药。Your medicine is ready at the \(rx.pharmacy.en)."
        _ = try? outbox.enqueue(SMSMessage(id: "rx-ready:\(rx.id)", kind: "medicine_ready", mobile: mobile, text: text), nowMs: prescriptions.clock.wallMillis())
    }

    // MARK: The holder

    /// Sends a stock command to the pharmacy block's holder. A retry with the same id is the same
    /// request, so a slow round or a holder changing hands is waited out: never done twice.
    private func send(_ event: StockEvent, _ pharmacy: Pharmacy, id: String) async throws(StaffError) -> StockRecord {
        let q = BookingRequest(id: id, block: Self.block(pharmacy), slot: 0, patient: "pharmacy", tag: StockCommand(event).requestTag)
        for attempt in 0..<3 {
            switch await consensus.book(q, quota: nil, timeout: .seconds(5)) {
            case .booked(let record)?:
                guard case .stock(let r) = record.kind else { throw Self.refusal(.requestMismatch) }
                return r
            case .refused(_, let reason)? where [.noHolder, .notHolder].contains(reason) && attempt < 2:
                try? await Task.sleep(for: .milliseconds(500))
            case .refused(_, let reason)?: throw Self.refusal(reason)
            case nil: continue
            }
        }
        throw unavailable
    }

    /// One stock command, one round, no retry: the outcome the holder gave (nil: none in `timeout`).
    /// For the drills and the bench, which retry themselves with the same id like a window.
    package func command(_ event: StockEvent, _ pharmacy: Pharmacy, id: String, timeout: Duration) async -> BookingOutcome? {
        await consensus.book(BookingRequest(id: id, block: Self.block(pharmacy), slot: 0, patient: "pharmacy", tag: StockCommand(event).requestTag),
                             quota: nil, timeout: timeout)
    }

    private var unavailable: StaffError {
        StaffError(503, "stock.unavailable", zh: "药房库存暂时无法确认（药房节点切换中或不可达），请稍后重试；不会重复发药。",
                   en: "the pharmacy's stock cannot be confirmed right now (its node is changing or out of reach); try again shortly. Nothing is done twice.")
    }

    static func refusal(_ reason: RefuseReason) -> StaffError {
        let (code, zh, en) = reason.words
        return StaffError([.noHolder, .notHolder].contains(reason) ? 503 : 409, code, zh: zh, en: en)
    }
}
