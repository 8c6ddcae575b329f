import Domain
import Foundation
import Hummingbird
import Services

// The rota page (排班): a department's weekly template lines, the coming weeks as a grid of what
// they make beside what is published, the conflicts, and publishing. Department heads reach their
// own departments, hospital administrators every one (`rota.manage` in RBAC.md).

extension StaffPages {
    static let rotaRoutes: [StaffRoute] = [
        StaffRoute(method: .get, path: "/staff/rota", action: "rota.manage"),
        StaffRoute(method: .post, path: "/staff/rota/templates", action: "rota.manage"),
        StaffRoute(method: .post, path: "/staff/rota/templates/delete", action: "rota.manage"),
        StaffRoute(method: .post, path: "/staff/rota/publish", action: "rota.manage"),
        StaffRoute(method: .post, path: "/staff/rota/sessions", action: "rota.manage"),
    ]

    /// Weeks shown (and published) unless the page asks for another number.
    static let rotaDefaultWeeks = 2

    func rotaRoute(_ route: StaffRoute, _ request: Request, form: [String: [String]], page: PageAnswer,
                   _ account: StaffAccount) throws(StaffError) -> Response {
        guard let rota else {
            throw StaffError(503, "rota.unavailable", zh: "本节点未提供排班功能。", en: "this node does not offer the rota.")
        }
        let query = request.uri.queryParameters
        func field(_ name: String) -> String? {
            if route.method == .post { return form[name]?.first }
            return query[Substring(name)].map { String($0) }
        }
        let department = try rotaDepartment(field("dept"), account)
        let (from, weeks) = try rotaSpan(rota, from: field("from"), weeks: field("weeks"))
        let back = "/staff/rota?dept=\(Self.queryEscaped(department))&from=\(from)&weeks=\(weeks)"
        switch (route.method, route.path) {
        case (.get, _):
            let published = query["published"].flatMap { Int(String($0)) }
            return try rotaPage(page, rota, department: department, from: from, weeks: weeks, published: published,
                                added: query["added"].map { String($0) }, message: nil, status: 200)
        case (.post, "/staff/rota/templates"):
            do throws(StaffError) {
                let line = try Self.templateLine(form)
                try rota.saveTemplate(line, department: department)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rota.template", resource: "rota/\(department)",
                                           outcome: "saved", detail: RotaDesk.templateKey(line.practitionerID, line.weekday, line.halfDay)))
                return page.redirect(back)
            } catch {
                return try rotaPage(page, rota, department: department, from: from, weeks: weeks, published: nil, added: nil, message: error, status: error.status)
            }
        case (.post, "/staff/rota/templates/delete"):
            do throws(StaffError) {
                let (doctor, weekday, halfDay) = try Self.lineKey(form)
                guard try rota.doctors(department: department)[doctor] != nil else {
                    throw StaffError(400, "rota.other_department", zh: "医生 \(doctor) 不在科室 \(department)。", en: "doctor \(doctor) is not in department \(department).")
                }
                try rota.deleteTemplate(doctor, weekday, halfDay)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rota.template", resource: "rota/\(department)",
                                           outcome: "deleted", detail: RotaDesk.templateKey(doctor, weekday, halfDay)))
                return page.redirect(back)
            } catch {
                return try rotaPage(page, rota, department: department, from: from, weeks: weeks, published: nil, added: nil, message: error, status: error.status)
            }
        case (.post, "/staff/rota/publish"):
            do throws(StaffError) {
                let plan = try rota.publish(department: department, from: from, weeks: weeks)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rota.publish", resource: "rota/\(department)",
                                           outcome: "published", detail: "\(from) +\(weeks)w: \(plan.sessions.count)"))
                return page.redirect(back + "&published=\(plan.sessions.count)")
            } catch {
                return try rotaPage(page, rota, department: department, from: from, weeks: weeks, published: nil, added: nil, message: error, status: error.status)
            }
        case (.post, "/staff/rota/sessions"):
            do throws(StaffError) {
                let date: CivilDate
                do { date = try CivilDate(parsing: form["date"]?.first ?? "", field: "date") } catch { throw .invalid(error) }
                var fields = form
                fields["weekday"] = ["\(date.weekday.rawValue)"]
                let session = try rota.addSession(department: department, try Self.templateLine(fields), on: date)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rota.add_session", resource: "rota/\(department)",
                                           outcome: "added", detail: session.key.rawValue))
                return page.redirect(back + "&added=\(Self.queryEscaped(session.key.rawValue))")
            } catch {
                return try rotaPage(page, rota, department: department, from: from, weeks: weeks, published: nil, added: nil, message: error, status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// The department asked for, else the account's first (for the `all` scope, else the first
    /// department of the hospital); another than the account's own only with the `all` scope.
    func rotaDepartment(_ asked: String?, _ account: StaffAccount) throws(StaffError) -> String {
        let everyDepartment = desk.rules.scope(of: "rota.manage", for: account.roles) == .all
        var department = asked.flatMap { $0.isEmpty ? nil : $0 } ?? account.departments.first ?? ""
        if department.isEmpty, everyDepartment {
            department = ((try? desk.store.liveRows("department")) ?? [:]).keys.sorted().first ?? ""
        }
        guard !department.isEmpty else {
            throw StaffError(400, "rota.no_department", zh: "请选择科室。", en: "choose a department.")
        }
        guard everyDepartment || account.departments.contains(department) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: "rota/\(department)",
                                       outcome: "denied", detail: "rota.manage"))
            throw .denied
        }
        return department
    }

    /// The first date and the number of weeks: by default the coming Monday and two weeks.
    func rotaSpan(_ rota: RotaDesk, from: String?, weeks: String?) throws(StaffError) -> (CivilDate, Int) {
        let start: CivilDate
        if let from, !from.isEmpty {
            do { start = try CivilDate(parsing: from, field: "from") } catch { throw .invalid(error) }
        } else {
            let today = try rota.today()
            start = (try? today.adding(days: (8 - today.weekday.rawValue) % 7)) ?? today
        }
        guard let text = weeks, !text.isEmpty else { return (start, Self.rotaDefaultWeeks) }
        guard let n = Int(text), Rota.weeksRange.contains(n) else {
            throw StaffError(400, "rota.weeks", zh: "周数须为 1 至 26 的整数。", en: "the number of weeks must be a whole number from 1 to 26.")
        }
        return (start, n)
    }

    static func templateLine(_ form: [String: [String]]) throws(StaffError) -> ClinicTemplate {
        let (doctor, weekday, halfDay) = try lineKey(form)
        func number(_ name: String, _ zh: String, _ en: String, default value: Int? = nil) throws(StaffError) -> Int {
            let text = (form[name]?.first ?? "").trimmingCharacters(in: .whitespaces)
            if text.isEmpty, let value { return value }
            guard let n = Int(text) else {
                throw StaffError(400, "rota.form.\(name)", zh: "\(zh)须填写整数。", en: "\(en) must be a whole number.")
            }
            return n
        }
        let startText = (form["start"]?.first ?? "").trimmingCharacters(in: .whitespaces)
        do {
            return try ClinicTemplate(practitionerID: doctor, weekday: weekday, halfDay: halfDay, room: form["room"]?.first ?? "",
                                      start: startText.isEmpty ? nil : try LocalTime(parsing: startText, field: "start"),
                                      capacity: try number("capacity", "号源数", "The number of slots"),
                                      minutesPerSlot: try number("minutes_per_slot", "每号分钟数", "The minutes per slot"),
                                      walkInReserve: try number("walk_in_reserve", "现场号预留数", "The walk-in reserve", default: 0))
        } catch let e as ValidationError {
            throw .invalid(e)
        } catch let e as StaffError {
            throw e
        } catch {
            throw StaffError(400, "rota.form", zh: "表单无法读取。", en: "the form cannot be read.")
        }
    }

    static func lineKey(_ form: [String: [String]]) throws(StaffError) -> (PractitionerID, Weekday, HalfDay) {
        let doctor: PractitionerID
        do { doctor = try PractitionerID(form["practitioner"]?.first ?? "", field: "practitioner") } catch { throw .invalid(error) }
        guard let weekday = form["weekday"]?.first.flatMap(Int.init).flatMap(Weekday.init(rawValue:)) else {
            throw StaffError(400, "rota.form.weekday", zh: "请选择星期几。", en: "choose a weekday.")
        }
        guard let halfDay = form["half_day"]?.first.flatMap(HalfDay.init(rawValue:)) else {
            throw StaffError(400, "rota.form.half_day", zh: "请选择上午、下午或晚间。", en: "choose morning, afternoon or evening.")
        }
        return (doctor, weekday, halfDay)
    }

    func rotaPage(_ page: PageAnswer, _ rota: RotaDesk, department: String, from: CivilDate, weeks: Int, published: Int?, added: String?,
                  message: StaffError?, status: Int) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("rotaTitle"), message: message)
        let doctors = try rota.doctors(department: department)
        func doctorName(_ id: PractitionerID) -> String { doctors[id]?.name ?? id.rawValue }
        values["dept"] = department
        values["from"] = from.description
        values["weeks"] = weeks
        let names = (try? desk.store.liveRows("department")) ?? [:]
        values["departmentName"] = names[department]?["name"]?.textValue ?? department
        if let published { values["published"] = ["text": zh ? "已发布 \(published) 次出诊。" : "\(published) session(s) published."] }
        if let added { values["published"] = ["text": zh ? "已加诊：\(added)。" : "Session added: \(added)."] }
        values["doctors"] = doctors.values.sorted { $0.id.rawValue < $1.id.rawValue }.map { d -> [String: Any] in
            ["id": d.id.rawValue, "name": d.name, "title": zh ? d.title.zh : d.title.en]
        }
        values["weekdays"] = Weekday.allCases.map { ["value": $0.rawValue, "label": zh ? $0.zh : $0.en] }
        values["halfDays"] = HalfDay.allCases.map { ["value": $0.rawValue, "label": zh ? $0.zh : $0.en] }
        values["templates"] = try rota.templates(department: department).map { t -> [String: Any] in
            ["doctor": t.practitionerID.rawValue, "doctorName": doctorName(t.practitionerID), "weekday": t.weekday.rawValue,
             "weekdayLabel": zh ? t.weekday.zh : t.weekday.en, "halfDay": t.halfDay.rawValue, "halfDayLabel": zh ? t.halfDay.zh : t.halfDay.en,
             "room": t.room, "time": "\(t.start)-\(t.end)", "capacity": t.capacity, "minutes": t.minutesPerSlot, "reserve": t.walkInReserve]
        }

        // The grid: every date of the span, each half-day's sessions, new or published.
        let plan: RotaDesk.Plan?
        var planError: StaffError?
        do throws(StaffError) { plan = try rota.plan(department: department, from: from, weeks: weeks) } catch {
            plan = nil
            planError = error
        }
        let last = (try? from.adding(days: 7 * weeks - 1)) ?? from
        // The plan read them already; without a plan (a span it refuses) they are read here.
        let published: [ScheduleKey: SessionPlace], ended: [ScheduleKey: (place: SessionPlace, state: SessionState)]
        if let plan {
            (published, ended) = (plan.existing, plan.ended)
        } else {
            let read = try rota.published(department: department, from: from, through: last)
            (published, ended) = (read.active, read.ended)
        }
        let conflicted = Set((plan?.conflicts ?? []).flatMap { [$0.first.key, $0.second.key] })
        /// `state`: new, published, stopped or moved.
        struct Cell { var key: ScheduleKey; var doctor: PractitionerID; var room: String; var time: String; var slots: String; var state: String }
        var cells: [CivilDate: [HalfDay: [Cell]]] = [:]
        for s in plan?.sessions ?? [] {
            cells[s.schedule.date, default: [:]][s.schedule.halfDay, default: []].append(
                Cell(key: s.key, doctor: s.key.practitionerID, room: s.room, time: "\(s.schedule.start)-\(s.schedule.end)",
                     slots: "\(s.schedule.capacity)/\(s.walkInReserve)", state: "new"))
        }
        let shown = published.map { ($0.key, $0.value, "published") } + ended.map { ($0.key, $0.value.place, $0.value.state.rawValue) }
        for (key, place, state) in shown {
            cells[key.date, default: [:]][key.halfDay, default: []].append(
                Cell(key: key, doctor: place.doctor, room: place.room ?? "", time: "\(place.start)-\(place.end)", slots: "", state: state))
        }
        var days: [[String: Any]] = []
        var date = from
        while date <= last {
            let row = HalfDay.allCases.map { half -> [String: Any] in
                let list = (cells[date]?[half] ?? []).sorted { $0.key.rawValue < $1.key.rawValue }
                return ["sessions": list.map { c -> [String: Any] in
                    let label = c.state == "new" ? "rotaNew" : c.state == "published" ? "rotaPublished" : "state_" + c.state
                    // A substitute (替诊) is named with the doctor the session was published for.
                    let name = c.doctor == c.key.practitionerID ? doctorName(c.doctor)
                        : "\(doctorName(c.doctor))（\(page.text("standingInFor")) \(doctorName(c.key.practitionerID))）"
                    return ["key": c.key.rawValue, "doctorName": name, "room": c.room, "hasRoom": !c.room.isEmpty, "time": c.time, "slots": c.slots,
                            "hasSlots": !c.slots.isEmpty, "state": c.state, "stateLabel": page.text(label), "conflict": conflicted.contains(c.key)]
                }]
            }
            days.append(["date": date.description, "weekday": zh ? date.weekday.zh : date.weekday.en, "cells": row])
            guard let next = try? date.adding(days: 1) else { break }
            date = next
        }
        values["days"] = days
        values["conflicts"] = (plan?.conflicts ?? []).map { ["code": $0.code, "text": zh ? $0.zh : $0.en] }
        values["hasConflicts"] = !(plan?.conflicts ?? []).isEmpty
        if let planError { values["planError"] = ["code": planError.code, "text": zh ? planError.zh : planError.en] }
        let fresh = plan?.sessions.count ?? 0
        values["newCount"] = fresh
        values["canPublish"] = fresh > 0 && (plan?.conflicts.isEmpty ?? false)
        if let prev = try? from.adding(days: -7 * weeks) { values["previous"] = ["date": prev.description] }
        if let next = try? from.adding(days: 7 * weeks) { values["next"] = ["date": next.description] }
        return page.html(renderer.render("rota", values), status: status)
    }

    static func queryEscaped(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? s
    }
}
