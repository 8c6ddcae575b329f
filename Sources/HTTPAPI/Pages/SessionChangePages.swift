import Domain
import Foundation
import Hummingbird
import ReplicatedCore
import Services

// A doctor's own sessions with their change requests (停诊, 替诊, 加号, 改期), and the department
// head's approvals page. Approving changes the rota at once; the bookings follow on the session
// block's holder, whose progress the request's outcome shows.

extension StaffPages {
    static let sessionChangeRoutes: [StaffRoute] = [
        StaffRoute(method: .post, path: "/staff/schedule/changes", action: "schedule.own"),
        StaffRoute(method: .get, path: "/staff/approvals", action: "schedule.approve"),
        StaffRoute(method: .post, path: "/staff/approvals/{id}/approve", action: "schedule.approve"),
        StaffRoute(method: .post, path: "/staff/approvals/{id}/refuse", action: "schedule.approve"),
    ]

    func sessionChangeRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]], page: PageAnswer,
                            _ account: StaffAccount) throws(StaffError) -> Response {
        guard let changes else {
            throw StaffError(503, "change.unavailable", zh: "本节点未提供出诊变更功能。", en: "this node does not offer session changes.")
        }
        func field(_ name: String) -> String { (form[name]?.first ?? "").trimmingCharacters(in: .whitespaces) }
        switch (route.method, route.path) {
        case (.post, "/staff/schedule/changes"):
            do throws(StaffError) {
                let change = try Self.sessionChange(form: field, today: try desk.clock.today())
                let record = try changes.request(change, doctor: account.practitioner, staff: account.number)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "schedule.change_request",
                                           resource: "session/\(change.session)", outcome: "pending", detail: "\(change.kind.rawValue) \(record.id)"))
                return page.redirect("/staff/schedule?requested=\(record.id)")
            } catch {
                return try schedulePage(page, account, message: error, status: error.status)
            }
        case (.get, "/staff/approvals"):
            let department = try pageDepartment(request.uri.queryParameters["dept"].map(String.init), action: "schedule.approve", account)
            return try approvalsPage(page, changes, department: department, message: nil, status: 200)
        case (.post, "/staff/approvals/{id}/approve"), (.post, "/staff/approvals/{id}/refuse"):
            let id = context.parameters.get("id") ?? ""
            let record = try changes.change(id)
            let department = try pageDepartment(record.department, action: "schedule.approve", account)
            do throws(StaffError) {
                let approve = route.path.hasSuffix("approve")
                let decided = approve ? try changes.approve(id, by: account.number, note: field("note"))
                    : try changes.refuse(id, by: account.number, note: field("note"))
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: approve ? "schedule.change_approve" : "schedule.change_refuse",
                                           resource: "session/\(record.change.session)", outcome: decided.status.rawValue, detail: id))
                return page.redirect("/staff/approvals?dept=\(Self.queryEscaped(department))#c-\(id)")
            } catch {
                return try approvalsPage(page, changes, department: department, message: error, status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// The request the schedule page's form describes.
    static func sessionChange(form field: (String) -> String, today: CivilDate) throws(StaffError) -> SessionChange {
        do throws(ValidationError) {
            let session = try ScheduleKey(rawValue: field("session"), field: "session")
            guard let kind = SessionChangeKind(rawValue: field("kind")) else {
                throw ValidationError(field: "kind", code: "change.kind", zh: "请选择变更类型：停诊、替诊、加号或改期。",
                                      en: "choose what to change: cancel, substitute, extra slots or move.")
            }
            var move: SessionMove?
            if kind == .move, !field("move_date").isEmpty {
                guard let half = HalfDay(rawValue: field("move_half_day")) else {
                    throw ValidationError(field: "moveHalfDay", code: "change.move_half_day", zh: "请选择新的时段。", en: "choose the new half-day.")
                }
                let start = field("move_start").isEmpty ? nil : try LocalTime(parsing: field("move_start"), field: "moveStart")
                move = SessionMove(date: try CivilDate(parsing: field("move_date"), field: "moveDate"), halfDay: half, start: start)
            }
            var extra = 0
            if kind == .addSlots {
                guard let n = Int(field("extra_slots")) else {
                    throw ValidationError(field: "extraSlots", code: "change.extra_slots", zh: "请填写加号数量（1 至 100）。", en: "enter how many extra slots (1 to 100).")
                }
                extra = n
            }
            let substitute = kind == .substitute && !field("substitute").isEmpty ? try PractitionerID(field("substitute"), field: "substitute") : nil
            return try SessionChange(kind: kind, session: session, reason: field("reason"), substitute: substitute, extraSlots: extra,
                                     extraForWalkIns: field("extra_walk_in") == "1", moveTo: move,
                                     bookings: MovedBookings(rawValue: field("bookings")), today: today)
        } catch {
            throw .invalid(error)
        }
    }

    func schedulePage(_ page: PageAnswer, _ account: StaffAccount, message: StaffError? = nil, status: Int = 200) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        let today = try desk.clock.today()
        let rows: [(key: String, row: [String: ColumnValue])]
        do {
            rows = account.practitioner.isEmpty ? []
                : try desk.store.liveRows("schedule", equal: ["practitioner": .text(account.practitioner)],
                                          range: (column: "date", from: .text(today.description), to: nil), newestBy: nil, limit: 1_000)
        } catch { throw .storeUnavailable }
        var values = page.values(title: page.text("scheduleTitle"), message: message)
        let sessions = rows.compactMap { r -> (ScheduleKey, [String: ColumnValue])? in (try? ScheduleKey(rawValue: r.key)).map { ($0, r.row) } }
            .sorted { ($0.0.date, $0.0.halfDay.order) < ($1.0.date, $1.0.halfDay.order) }
        func sessionText(_ k: ScheduleKey) -> String { "\(k.date) \(zh ? k.halfDay.zh : k.halfDay.en)" }
        values["sessions"] = sessions.map { k, row -> [String: Any] in
            let place = RotaDesk.place(k, row)
            let state = row["status"]?.textValue ?? SessionState.active.rawValue
            return ["id": k.rawValue, "date": k.date.description, "halfDay": zh ? k.halfDay.zh : k.halfDay.en, "time": "\(place.start)-\(place.end)",
                    "room": place.room ?? "", "capacity": row["capacity"]?.integerValue ?? 0, "state": state, "status": page.text("state_" + state),
                    "standIn": k.practitionerID != place.doctor ? ["for": k.practitionerID.rawValue] : false]
        }
        // Sessions that take place and are not over: the others cannot change.
        let now = desk.clock.wallMillis()
        let active = sessions.filter { k, row in
            RotaDesk.isActive(row) && ShanghaiTime.instant(date: k.date, time: RotaDesk.place(k, row).end).timeIntervalSince1970 * 1000 > Double(now)
        }
        values["changeable"] = active.map { k, _ in ["id": k.rawValue, "label": sessionText(k)] }
        values["hasChangeable"] = !active.isEmpty
        values["kinds"] = SessionChangeKind.allCases.map { ["value": $0.rawValue, "label": zh ? $0.zh : $0.en] }
        values["halfDays"] = HalfDay.allCases.map { ["value": $0.rawValue, "label": zh ? $0.zh : $0.en] }
        let department = ((try? desk.store.liveRow("practitioner", key: account.practitioner)) ?? nil)?["department"]?.textValue
        let colleagues = department.map { d in ((try? desk.store.liveRows("practitioner", equal: ["department": .text(d)], range: nil, newestBy: nil, limit: 10_000)) ?? []) } ?? []
        values["colleagues"] = colleagues.filter { $0.key != account.practitioner }.sorted { $0.key < $1.key }
            .map { ["id": $0.key, "name": $0.row["name"]?.textValue ?? $0.key] }
        values["requests"] = ((try? changes?.changes(doctor: account.practitioner)) ?? []).map { changeValues($0, page) }
        return page.html(renderer.render("schedule", values), status: status)
    }

    func approvalsPage(_ page: PageAnswer, _ changes: SessionChangeDesk, department: String, message: StaffError?, status: Int) throws(StaffError) -> Response {
        var values = page.values(title: page.text("approvalsTitle"), message: message)
        values["department"] = departmentValues(department)
        // Every pending request, however many; the 50 newest decisions.
        values["pending"] = try changes.changes(department: department, status: .pending, limit: .max).map { changeValues($0, page) }
        values["decided"] = try changes.changes(department: department, limit: 200).filter { $0.status != .pending }.prefix(50).map { changeValues($0, page) }
        return page.html(renderer.render("approvals", values), status: status)
    }

    /// One request as the schedule and approvals pages list it.
    func changeValues(_ r: SessionChangeRecord, _ page: PageAnswer) -> [String: Any] {
        let zh = page.lang == .zh, c = r.change
        var what = zh ? c.kind.zh : c.kind.en
        switch c.kind {
        case .stop: break
        case .substitute:
            let id = c.substitute?.rawValue ?? ""
            let name = ((try? desk.store.liveRow("practitioner", key: id)) ?? nil)?["name"]?.textValue ?? id
            what += zh ? "：由 \(name) 接诊" : ": by \(name)"
        case .addSlots: what += zh ? "：加 \(c.extraSlots) 个\(c.extraForWalkIns ? "现场号" : "号")" : ": \(c.extraSlots) more\(c.extraForWalkIns ? " walk-in" : "") slots"
        case .move:
            if let to = c.moveTo {
                what += zh ? "：改到 \(to.date) \(to.halfDay.zh)\(to.start.map { " \($0)" } ?? "")" : ": to \(to.date) \(to.halfDay.en)\(to.start.map { " \($0)" } ?? "")"
            }
            if let b = c.bookings { what += page.text("bookings_" + b.rawValue) }
        }
        var v: [String: Any] = [
            "id": r.id, "session": c.session.rawValue, "sessionText": "\(c.session.practitionerID) \(c.session.date) \(zh ? c.session.halfDay.zh : c.session.halfDay.en)",
            "kind": c.kind.rawValue, "what": what, "reason": c.reason, "status": r.status.rawValue, "statusText": zh ? r.status.zh : r.status.en,
            "requestedBy": r.requestedBy, "requestedAt": Self.shanghai(r.requestedMs),
        ]
        if let by = r.decidedBy { v["decision"] = ["by": by, "at": r.decidedMs.map(Self.shanghai) ?? "", "note": r.note ?? ""] }
        if let outcome = r.outcome { v["outcome"] = ["text": Self.outcomeText(outcome, zh: zh)] }
        return v
    }

    /// "cancelled:2,moved:3,kept:0,left:0" in words.
    static func outcomeText(_ outcome: String, zh: Bool) -> String {
        let counts = Dictionary(outcome.split(separator: ",").compactMap { part -> (String, Int)? in
            let kv = part.split(separator: ":")
            guard kv.count == 2, let n = Int(kv[1]) else { return nil }
            return (String(kv[0]), n)
        }, uniquingKeysWith: { a, _ in a })
        let (cancelled, moved, kept, left) = (counts["cancelled"] ?? 0, counts["moved"] ?? 0, counts["kept"] ?? 0, counts["left"] ?? 0)
        return zh ? "已取消 \(cancelled) 个预约，改约 \(moved) 个，保留并通知 \(kept) 个，待处理 \(left) 个"
            : "\(cancelled) booking(s) cancelled, \(moved) moved, \(kept) kept and told, \(left) still to do"
    }
}
