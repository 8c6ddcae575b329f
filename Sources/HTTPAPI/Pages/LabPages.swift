import Domain
import Foundation
import Hummingbird
import Services

// Orders and results: the lab's worklist (orders awaiting results, the quarantined HL7 files), the
// result entry form of one order, one order's report, and withdrawing an order. Ordering itself
// is a button of the visit page's note form.

extension StaffPages {
    static let labRoutes: [StaffRoute] = [
        StaffRoute(method: .get, path: "/staff/lab", action: "lab.result"),
        StaffRoute(method: .get, path: "/staff/lab/orders/{id}", action: "lab.result"),
        StaffRoute(method: .post, path: "/staff/lab/orders/{id}", action: "lab.result"),
        StaffRoute(method: .get, path: "/staff/orders/{id}", action: "patient.read"),
        StaffRoute(method: .post, path: "/staff/orders/{id}/cancel", action: "record.write"),
    ]

    func orderDesk() throws(StaffError) -> OrderDesk {
        guard let orders else { throw StaffError(503, "order.unavailable", zh: "本节点未提供检验检查功能。", en: "this node does not offer lab and exam orders.") }
        return orders
    }

    func labRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]], page: PageAnswer,
                  _ account: StaffAccount) throws(StaffError) -> Response {
        let orders = try orderDesk()
        let id = context.parameters.get("id") ?? ""
        switch (route.method, route.path) {
        case (.get, "/staff/lab"):
            return try labPage(page, orders, message: nil)
        case (.get, "/staff/lab/orders/{id}"):
            guard let order = try orders.order(id) else { throw OrderDesk.noOrder }
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "lab.read", patient: order.patient,
                                       resource: "order/\(id)", outcome: "ok"))
            return try resultEntryPage(page, orders, order, typed: nil, message: nil, status: 200)
        case (.post, "/staff/lab/orders/{id}"):
            guard let order = try orders.order(id), let item = orders.catalogue.item(order.item) else { throw OrderDesk.noOrder }
            let typed = Self.typedResults(form, item: item)
            do throws(StaffError) {
                let observations = typed.filter { !$0.value.isEmpty }
                let written = try orders.report([ReportDraft(order: id, observations: observations, conclusion: form["conclusion"]?.first ?? "", source: "page")],
                                                by: RecordAuthor(staff: account.number, name: account.name, practitioner: ""))
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "lab.report", patient: order.patient,
                                           resource: "report/\(written.first?.key ?? id)", outcome: written.first?.status.rawValue ?? "none"))
                return try labPage(page, orders, message: StaffError(200, "lab.reported", zh: "已发布“\(order.name)”的报告。", en: "the report of “\(item.en)” is released."))
            } catch {
                return try resultEntryPage(page, orders, order, typed: typed, message: error, status: error.status)
            }
        case (.get, "/staff/orders/{id}"):
            guard let order = try orders.order(id) else { throw OrderDesk.noOrder }
            // A report is the patient's record: the care relation or break-glass, audited.
            do { _ = try desk.openPatient(order.patient, for: account, appointments: appointments) } catch where error == .breakGlassRequired {
                return lockedPatientPage(page, key: order.patient, account: account, message: error)
            }
            var values = page.values(title: page.text("reportTitle"))
            values["order"] = orderValues(order, page)
            values["reports"] = try orders.reports(order: id).enumerated().map { i, r in reportValues(r, page, current: i == 0) }
            return page.html(renderer.render("report", values))
        case (.post, "/staff/orders/{id}/cancel"):
            guard let order = try orders.order(id) else { throw OrderDesk.noOrder }
            try mayWrite(department: order.department, practitioner: order.practitioner, resource: "order/\(id)", account)
            let records = try recordDesk()
            let visit = try records.visit(order.encounter)
            do throws(StaffError) {
                _ = try orders.cancel(id, reason: form["reason"]?.first ?? "")
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "order.cancel", patient: order.patient,
                                           resource: "order/\(id)", outcome: "ok"))
                return page.redirect("/staff/visits/\(order.encounter)")
            } catch {
                return try visitPage(page, records, visit, draft: nil, message: error, status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// The lab's worklist: every department's orders awaiting results, and the quarantined files.
    func labPage(_ page: PageAnswer, _ orders: OrderDesk, message: StaffError?) throws(StaffError) -> Response {
        var values = page.values(title: page.text("labTitle"), message: message)
        let pending = try orders.pending()
        let names = ((try? desk.store.liveRows("patient", keys: Set(pending.map(\.patient)))) ?? [:])
        let departments = ((try? desk.store.liveRows("department", keys: Set(pending.map(\.department)))) ?? [:])
        values["pending"] = pending.map { o -> [String: Any] in
            var v = orderValues(o, page)
            v["patient"] = names[o.patient]?["name"]?.textValue ?? ""
            v["department"] = departments[o.department]?["name"]?.textValue ?? o.department
            return v
        }
        if let labInbox {
            values["inbox"] = ["folder": labInbox.folder, "files": labInbox.quarantined(zh: page.lang == .zh).map { q -> [String: Any] in
                ["file": q.file, "reason": q.reason, "at": Self.shanghai(q.atMs)]
            }]
        }
        return page.html(renderer.render("lab", values))
    }

    /// One order's result form: a row per analyte of its item, the range filled in from the
    /// catalogue for the patient's sex and age where a published one exists.
    func resultEntryPage(_ page: PageAnswer, _ orders: OrderDesk, _ order: LabOrder, typed: [Observation]?, message: StaffError?,
                         status: Int) throws(StaffError) -> Response {
        guard let item = orders.catalogue.item(order.item) else { throw OrderDesk.noOrder }
        let zh = page.lang == .zh
        var values = page.values(title: page.text("labEntryTitle"), message: message)
        let patient = ((try? desk.store.liveRow("patient", key: order.patient)) ?? nil) ?? [:]
        let sex = patient["sex"]?.textValue ?? ""
        let age = CivilDate.age(birthDate: patient["birth_date"]?.textValue, on: order.date)
        values["order"] = orderValues(order, page)
        values["patient"] = ["name": patient["name"]?.textValue ?? "", "sex": page.text(sex),
                             "age": age.map { zh ? "\($0) 岁" : "\($0) y" } ?? ""]
        values["analytes"] = item.analytes.enumerated().map { i, a -> [String: Any] in
            let mine = typed?.first { $0.code == a.code }
            return ["i": i, "code": a.code, "name": zh ? a.zh : a.en, "value": mine?.value ?? "", "unit": mine?.unit ?? a.unit,
                    "range": mine?.range ?? a.range(sex: sex, age: age), "source": a.source, "text": item.kind == .exam]
        }
        values["reported"] = order.status == .reported
        return page.html(renderer.render("lab-entry", values), status: status)
    }

    /// What the entry form sends, one observation per analyte row (empty values included).
    static func typedResults(_ form: [String: [String]], item: OrderCatalogue.Item) -> [Observation] {
        item.analytes.enumerated().map { i, a in
            let flag = AbnormalFlag(rawValue: form["flag_\(i)"]?.first ?? "")
            return Observation(code: a.code, name: a.zh, value: form["value_\(i)"]?.first ?? "", unit: form["unit_\(i)"]?.first ?? a.unit,
                               range: form["range_\(i)"]?.first ?? "", flag: flag)
        }
    }

    func orderValues(_ o: LabOrder, _ page: PageAnswer) -> [String: Any] {
        let zh = page.lang == .zh
        let item = orders?.catalogue.item(o.item)
        var v: [String: Any] = ["id": o.id, "encounter": o.encounter, "item": o.item, "name": zh ? o.name : item?.en ?? o.name,
                                "kind": zh ? o.kind.zh : o.kind.en, "status": zh ? o.status.zh : o.status.en, "statusCode": o.status.rawValue,
                                "date": o.date, "department": o.department, "orderedBy": o.orderedName, "at": Self.shanghai(o.orderedMs),
                                "pending": o.status == .ordered, "reported": o.status == .reported]
        if !o.clinical.isEmpty { v["clinical"] = o.clinical }
        if !o.cancelReason.isEmpty { v["cancelReason"] = o.cancelReason }
        return v
    }

    func reportValues(_ r: LabReport, _ page: PageAnswer, current: Bool) -> [String: Any] {
        let zh = page.lang == .zh
        var v: [String: Any] = [
            "key": r.key, "current": current, "corrected": r.status == .corrected, "by": r.enteredName, "at": Self.shanghai(r.atMs),
            "source": r.source.hasPrefix("hl7:") ? "HL7 · \(r.source.dropFirst(4))" : page.text("reportFromPage"), "abnormal": r.abnormal,
            "observations": r.observations.map { o -> [String: Any] in
                ["code": o.code, "name": o.name, "value": o.value, "unit": o.unit, "range": o.range, "flag": o.flag.rawValue,
                 "flagText": zh ? o.flag.zh : o.flag.en, "abnormal": o.flag != .normal]
            },
        ]
        if !r.conclusion.isEmpty { v["conclusion"] = r.conclusion }
        return v
    }

    /// A visit's orders with their current reports, as the visit page shows them.
    func visitOrderValues(_ encounter: String, _ page: PageAnswer) -> [[String: Any]] {
        guard let orders else { return [] }
        return ((try? orders.orders(encounter: encounter)) ?? []).reversed().map { o -> [String: Any] in
            var v = orderValues(o, page)
            if let report = ((try? orders.reports(order: o.id)) ?? []).first { v["report"] = reportValues(report, page, current: true) }
            return v
        }
    }
}
