import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore

/// A lab or exam order (检验/检查申请, FHIR ServiceRequest) placed from a visit.
package struct LabOrder: Sendable, Hashable {
    package enum Status: String, Sendable {
        case ordered, reported, cancelled

        package var zh: String { self == .ordered ? "待出报告" : self == .reported ? "已出报告" : "已撤销" }
        package var en: String { self == .ordered ? "awaiting result" : self == .reported ? "reported" : "cancelled" }
    }

    package var id: String
    package var encounter: String
    package var patient: String
    package var department: String
    package var practitioner: String
    package var date: String
    package var item: String
    package var kind: OrderKind
    package var name: String
    package var clinical: String
    package var orderedBy: String
    package var orderedName: String
    package var orderedMs: Int64
    package var status: Status
    package var cancelReason: String

    init(id: String, row: [String: ColumnValue]) {
        self.id = id
        func text(_ c: String) -> String { row[c]?.textValue ?? "" }
        encounter = text("encounter"); patient = text("patient"); department = text("department"); practitioner = text("practitioner")
        date = text("date"); item = text("item"); kind = OrderKind(rawValue: text("kind")) ?? .lab; name = text("name"); clinical = text("clinical")
        orderedBy = text("ordered_by"); orderedName = text("ordered_name"); orderedMs = row["ordered_ms"]?.integerValue ?? 0
        status = Status(rawValue: text("status")) ?? .ordered; cancelReason = text("cancel_reason")
    }
}

/// A result report (FHIR DiagnosticReport) for one order: its observations, entered on the lab
/// page or imported from an HL7 v2 ORU^R01 file, released to the patient when written.
package struct LabReport: Sendable {
    package enum Status: String, Sendable {
        case final, corrected
    }

    package var key: String
    package var order: String
    package var patient: String
    package var encounter: String
    package var item: String
    package var status: Status
    package var observations: [Observation]
    package var conclusion: String
    /// `page`, or `hl7:<file>` for an imported one.
    package var source: String
    package var enteredBy: String
    package var enteredName: String
    package var atMs: Int64

    package var abnormal: Bool { observations.contains { $0.flag != .normal } }

    init?(key: String, row: [String: ColumnValue]) {
        guard let body = row["observations"]?.textValue, let observations = try? JSONDecoder().decode([Observation].self, from: Data(body.utf8)) else { return nil }
        self.key = key
        func text(_ c: String) -> String { row[c]?.textValue ?? "" }
        order = text("order_id"); patient = text("patient"); encounter = text("encounter"); item = text("item")
        status = Status(rawValue: text("status")) ?? .final; self.observations = observations; conclusion = text("conclusion")
        source = text("source"); enteredBy = text("entered_by"); enteredName = text("entered_name"); atMs = row["at_ms"]?.integerValue ?? 0
    }
}

/// What a result report is made of before it is written: from the lab page or an HL7 message.
package struct ReportDraft: Sendable {
    package var order: String
    /// The patient the sender names (HL7 PID-3); nil: the order's, as on the lab page.
    package var patient: String?
    /// The item the sender names (HL7 OBR-4); nil: the order's.
    package var item: String?
    package var observations: [Observation]
    package var conclusion: String
    /// A key the sender fixes (an HL7 message's control id), so the same file imported twice, or
    /// on two nodes, is one report; nil: a new one.
    package var key: String?
    package var source: String

    package init(order: String, patient: String? = nil, item: String? = nil, observations: [Observation], conclusion: String = "", key: String? = nil,
                 source: String) {
        self.order = order; self.patient = patient; self.item = item; self.observations = observations; self.conclusion = conclusion
        self.key = key; self.source = source
    }
}

/// Orders placed from a visit, and the results that answer them.
package struct OrderDesk: Sendable {
    package let store: any RecordStore
    package let clock: NodeClock
    package let catalogue: OrderCatalogue

    package init(store: any RecordStore, clock: NodeClock, catalogue: OrderCatalogue) {
        self.store = store; self.clock = clock; self.catalogue = catalogue
    }

    // MARK: Orders

    /// Orders an item of the catalogue for a visit; the same item still awaiting its result in the
    /// same visit is not ordered twice.
    /// `id` and `atMs` are fixed only by the demo's history and the tests.
    package func place(_ visit: VisitRecord, item code: String, clinical: String, by author: RecordAuthor, id: String? = nil,
                       atMs: Int64? = nil) throws(StaffError) -> LabOrder {
        guard !visit.enteredInError else {
            throw StaffError(409, "record.entered_in_error", zh: "该病历已作废（录入错误），不能再开单。", en: "this note was marked entered in error; nothing can be ordered from it.")
        }
        guard let item = catalogue.item(code) else {
            throw StaffError(400, "order.unknown_item", zh: "检验检查项目 \(String(code.prefix(20))) 不在本院项目表中，请从列表中选择。",
                             en: "order item \(String(code.prefix(20))) is not in the hospital's catalogue; pick one from the list.")
        }
        let note: String
        do { note = try Observation.line(clinical, field: "clinical", limit: 500, lines: true) } catch { throw .invalid(error) }
        if try orders(encounter: visit.encounter.id).contains(where: { $0.item == item.code && $0.status == .ordered }) {
            throw StaffError(409, "order.already", zh: "本次就诊已开过“\(item.zh)”，尚未出报告。", en: "“\(item.en)” is already ordered for this visit and awaits its result.")
        }
        let key = id ?? "ord-" + UUID().uuidString.lowercased()
        let e = visit.encounter
        do {
            try store.write { w in
                _ = try w.insert("lab_order", key: key, values: [
                    "encounter": .text(e.id), "patient": .text(e.patient), "department": .text(e.department), "practitioner": .text(e.practitioner),
                    "date": .text(e.date), "item": .text(item.code), "kind": .text(item.kind.rawValue), "name": .text(item.zh), "clinical": .text(note),
                    "ordered_by": .text(author.staff), "ordered_name": .text(author.name), "ordered_ms": .integer(atMs ?? clock.wallMillis()),
                    "status": .text(LabOrder.Status.ordered.rawValue), "cancel_reason": .text(""),
                ])
            }
        } catch { throw .storeUnavailable }
        guard let placed = try order(key) else { throw .storeUnavailable }
        return placed
    }

    /// Withdraws an order that has no result yet, with the reason.
    package func cancel(_ id: String, reason: String) throws(StaffError) -> LabOrder {
        guard let o = try order(id) else { throw Self.noOrder }
        guard o.status == .ordered else {
            throw StaffError(409, "order.not_pending", zh: "该申请已出报告或已撤销，不能撤销。", en: "this order already has its result or was cancelled.")
        }
        let why = try RecordDesk.reason(reason)
        do { try store.write { w in _ = try w.update("lab_order", key: id, values: ["status": .text(LabOrder.Status.cancelled.rawValue), "cancel_reason": .text(why)]) } }
        catch { throw .storeUnavailable }
        return try order(id) ?? o
    }

    package func order(_ id: String) throws(StaffError) -> LabOrder? {
        do { return try store.liveRow("lab_order", key: id).map { LabOrder(id: id, row: $0) } } catch { throw .storeUnavailable }
    }

    package func orders(encounter: String) throws(StaffError) -> [LabOrder] { try orders(["encounter": .text(encounter)], limit: 200) }
    package func orders(patient: String, limit: Int = 500) throws(StaffError) -> [LabOrder] { try orders(["patient": .text(patient)], limit: limit) }
    /// Orders still awaiting their result, every department's, newest first (the lab's worklist).
    package func pending(limit: Int = 500) throws(StaffError) -> [LabOrder] { try orders(["status": .text(LabOrder.Status.ordered.rawValue)], limit: limit) }

    private func orders(_ equal: [String: ColumnValue], limit: Int) throws(StaffError) -> [LabOrder] {
        do { return try store.liveRows("lab_order", equal: equal, range: nil, newestBy: "ordered_ms", limit: limit).map { LabOrder(id: $0.key, row: $0.row) } }
        catch { throw .storeUnavailable }
    }

    package static let noOrder = StaffError(404, "order.not_found", zh: "没有这个检验检查申请。", en: "there is no such order.")

    // MARK: Results

    /// A patient's reports, newest first.
    package func reports(patient: String, limit: Int = 500) throws(StaffError) -> [LabReport] {
        do {
            return try store.liveRows("lab_report", equal: ["patient": .text(patient)], range: nil, newestBy: "at_ms", limit: limit)
                .compactMap { LabReport(key: $0.key, row: $0.row) }
        } catch { throw .storeUnavailable }
    }

    /// A patient's results as they stand: each order's newest report, newest first.
    package func currentReports(patient: String) throws(StaffError) -> [LabReport] {
        var seen = Set<String>()
        return try reports(patient: patient).filter { seen.insert($0.order).inserted }
    }

    /// An order's reports, newest first (the first is the result as it stands; the others it corrected).
    package func reports(order: String) throws(StaffError) -> [LabReport] {
        do {
            return try store.liveRows("lab_report", equal: ["order_id": .text(order)], range: nil, newestBy: "at_ms", limit: 50)
                .compactMap { LabReport(key: $0.key, row: $0.row) }
        } catch { throw .storeUnavailable }
    }

    /// Writes reports, all or none, in one transaction: each must answer a pending (or already
    /// reported: a correction) order of the patient and item it names, with valid observations.
    /// A report whose key is already there is skipped. Returns the reports written.
    @discardableResult
    package func report(_ drafts: [ReportDraft], by author: RecordAuthor, atMs: Int64? = nil) throws(StaffError) -> [LabReport] {
        var rows: [(key: String, order: LabOrder, values: [String: ColumnValue])] = []
        for (n, d) in drafts.enumerated() {
            let which = drafts.count > 1 ? "（第 \(n + 1) 份）" : ""
            let whichEn = drafts.count > 1 ? " (report \(n + 1))" : ""
            guard let o = try order(d.order) else {
                throw StaffError(404, "order.not_found", zh: "没有申请单 \(String(d.order.prefix(60)))\(which)。", en: "there is no order \(String(d.order.prefix(60)))\(whichEn).")
            }
            guard o.status != .cancelled else {
                throw StaffError(409, "order.cancelled", zh: "申请单 \(o.id) 已撤销，不能出报告\(which)。", en: "order \(o.id) was cancelled; it takes no result\(whichEn).")
            }
            if let p = d.patient, p != o.patient {
                throw StaffError(409, "result.wrong_patient", zh: "报告中的患者标识与申请单 \(o.id) 的患者不符\(which)。",
                                 en: "the report's patient identifier is not the patient of order \(o.id)\(whichEn).")
            }
            if let i = d.item, i.uppercased() != o.item {
                throw StaffError(409, "result.wrong_item", zh: "报告的项目 \(String(i.prefix(20))) 与申请单 \(o.id) 的项目 \(o.item) 不符\(which)。",
                                 en: "the report's item \(String(i.prefix(20))) is not order \(o.id)'s item \(o.item)\(whichEn).")
            }
            guard !d.observations.isEmpty, d.observations.count <= 200 else {
                throw StaffError(400, "result.empty", zh: "报告中没有结果项（或超过 200 项）\(which)。", en: "the report has no results (or more than 200)\(whichEn).")
            }
            let observations: [Observation]
            let conclusion: String
            do {
                observations = try d.observations.map { o throws(ValidationError) in try o.validated() }
                conclusion = try Observation.line(d.conclusion, field: "conclusion", limit: 2_000, lines: true)
            } catch { throw .invalid(error) }
            let key = d.key.map { "\(o.id)/\($0)" } ?? "\(o.id)/\(UUID().uuidString.lowercased())"
            let earlier = try reports(order: o.id)
            if earlier.contains(where: { $0.key == key }) || rows.contains(where: { $0.key == key }) { continue }
            let body = String(decoding: (try? JSONEncoder().encode(observations)) ?? Data("[]".utf8), as: UTF8.self)
            rows.append((key, o, [
                "order_id": .text(o.id), "patient": .text(o.patient), "encounter": .text(o.encounter), "item": .text(o.item),
                "status": .text((earlier.isEmpty && !rows.contains { $0.order.id == o.id } ? LabReport.Status.final : .corrected).rawValue),
                "observations": .text(body), "conclusion": .text(conclusion), "source": .text(d.source),
                "entered_by": .text(author.staff), "entered_name": .text(author.name), "at_ms": .integer(atMs ?? clock.wallMillis()),
            ]))
        }
        do {
            try store.write { w in
                for r in rows {
                    _ = try w.insert("lab_report", key: r.key, values: r.values)
                    _ = try w.update("lab_order", key: r.order.id, values: ["status": .text(LabOrder.Status.reported.rawValue)])
                }
            }
        } catch { throw .storeUnavailable }
        do { return try store.liveRows("lab_report", keys: Set(rows.map(\.key))).compactMap { LabReport(key: $0.key, row: $0.value) }.sorted { $0.key < $1.key } }
        catch { throw .storeUnavailable }
    }
}
