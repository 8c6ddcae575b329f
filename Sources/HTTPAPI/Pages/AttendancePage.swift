import Domain
import Foundation
import Hummingbird
import Services

// Attendance (出诊签到): a doctor signs in to and out of their own sessions from the calling page;
// the department head (own departments) and hospital administrators (every one) see planned
// against worked by doctor and week, with the late, absent and early-leaving sessions.

extension StaffPages {
    static let attendanceRoutes: [StaffRoute] = [
        StaffRoute(method: .post, path: "/staff/attendance/sign-in", action: "attendance.sign"),
        StaffRoute(method: .post, path: "/staff/attendance/sign-out", action: "attendance.sign"),
        StaffRoute(method: .get, path: "/staff/attendance", action: "attendance.read"),
    ]

    func attendanceDesk() throws(StaffError) -> AttendanceDesk {
        guard let attendance else { throw StaffError(503, "attendance.unavailable", zh: "本节点未提供出勤功能。", en: "this node does not offer attendance.") }
        return attendance
    }

    func attendanceRoute(_ route: StaffRoute, _ request: Request, form: [String: [String]], page: PageAnswer,
                         _ account: StaffAccount) throws(StaffError) -> Response {
        let desk = try attendanceDesk()
        switch (route.method, route.path) {
        case (.post, "/staff/attendance/sign-in"), (.post, "/staff/attendance/sign-out"):
            let schedule = form["session"]?.first ?? ""
            do throws(StaffError) {
                let signIn = route.path.hasSuffix("sign-in")
                let line = signIn ? try desk.signIn(schedule, practitioner: account.practitioner) : try desk.signOut(schedule, practitioner: account.practitioner)
                let flags = line.flags.map(\.rawValue).sorted().joined(separator: ",")
                try self.desk.record(AuditEvent(staff: account.number, role: self.desk.roleText(account), action: signIn ? "attendance.sign_in" : "attendance.sign_out",
                                                resource: "session/\(schedule)", outcome: flags.isEmpty ? "ok" : flags))
                return page.redirect("/staff/queue#s-\(Self.queryEscaped(schedule))")
            } catch {
                guard let floor else { throw error }
                return try queuePage(page, floor, account, department: nil, message: error, status: error.status)
            }
        case (.get, "/staff/attendance"):
            let query = request.uri.queryParameters
            let department = try pageDepartment(query["dept"].map(String.init), action: "attendance.read", account)
            let today = try self.desk.clock.today()
            var from = (try? today.adding(days: -7)) ?? today
            if let text = query["from"].map(String.init), !text.isEmpty {
                do { from = try CivilDate(parsing: text, field: "from") } catch { throw .invalid(error) }
            }
            let weeks = query["weeks"].flatMap { Int(String($0)) } ?? 2
            guard (1...26).contains(weeks) else {
                throw StaffError(400, "attendance.weeks", zh: "周数须为 1 至 26 的整数。", en: "the number of weeks must be a whole number from 1 to 26.")
            }
            return try attendancePage(page, desk, department: department, from: from, weeks: weeks)
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    func attendancePage(_ page: PageAnswer, _ attendance: AttendanceDesk, department: String, from: CivilDate, weeks: Int) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("attendanceTitle"))
        values["department"] = departmentValues(department)
        values["from"] = from.description
        values["weeks"] = weeks
        let names = ((try? desk.store.liveRows("practitioner")) ?? [:]).mapValues { $0["name"]?.textValue ?? "" }
        func flags(_ f: Set<Attendance.Flag>) -> String { f.sorted().map { zh ? $0.zh : $0.en }.joined(separator: zh ? "、" : ", ") }
        values["rows"] = try attendance.weeks(department: department, from: from, weeks: weeks).map { w -> [String: Any] in
            ["doctor": w.doctor.rawValue, "name": names[w.doctor.rawValue] ?? w.doctor.rawValue, "week": w.monday.description,
             "planned": w.planned, "worked": w.worked, "late": w.late, "absent": w.absent, "leftEarly": w.leftEarly,
             "flagged": w.flagged.map { l -> [String: Any] in
                 ["session": l.session.rawValue, "date": l.session.date.description, "halfDay": zh ? l.session.halfDay.zh : l.session.halfDay.en,
                  "flags": flags(l.flags), "signedIn": l.attendance.signedInMs.map(Self.shanghai) ?? "-", "signedOut": l.attendance.signedOutMs.map(Self.shanghai) ?? "-"]
             }]
        }
        return page.html(renderer.render("attendance", values))
    }

    /// The attendance line of a doctor's own session, for the calling page.
    func attendanceValues(_ schedule: String, _ page: PageAnswer) -> [String: Any]? {
        guard let attendance, let line = try? attendance.line(schedule) else { return nil }
        let zh = page.lang == .zh
        var v: [String: Any] = ["signedIn": line.attendance.signedInMs.map(Self.shanghai) ?? "", "isSignedIn": line.attendance.signedInMs != nil,
                                "over": desk.clock.wallMillis() > line.attendance.endMs]
        if let out = line.attendance.signedOutMs { v["signedOut"] = ["at": Self.shanghai(out)] }
        if !line.flags.isEmpty { v["flags"] = ["text": line.flags.sorted().map { zh ? $0.zh : $0.en }.joined(separator: zh ? "、" : ", ")] }
        return v
    }
}
