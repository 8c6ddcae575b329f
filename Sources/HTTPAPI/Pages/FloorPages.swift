import Consensus
import Domain
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import Services

// The clinic floor's pages: the nurse's check-in and queues (报到与候诊), the doctor's calling
// page (叫号), and two public pages for the waiting room: the kiosk (自助报到, by resident ID) and
// the display (候诊叫号屏), which follows the queues live by server-sent events. Each change goes to
// the session block's holder as a floor command (`FloorDesk`).

extension StaffPages {
    static let floorRoutes: [StaffRoute] = [
        StaffRoute(method: .get, path: "/staff/floor", action: "floor.checkin"),
        StaffRoute(method: .post, path: "/staff/floor/check-in", action: "floor.checkin"),
        StaffRoute(method: .post, path: "/staff/floor/walk-in", action: "floor.walk_in"),
        StaffRoute(method: .get, path: "/staff/queue", action: "floor.call"),
        StaffRoute(method: .post, path: "/staff/queue/next", action: "floor.call"),
        StaffRoute(method: .post, path: "/staff/queue/recall", action: "floor.call"),
        StaffRoute(method: .get, path: "/staff/kiosk", action: "public"),
        StaffRoute(method: .post, path: "/staff/kiosk", action: "public"),
        StaffRoute(method: .get, path: "/staff/display", action: "public"),
        StaffRoute(method: .get, path: "/staff/display/events", action: "public"),
        StaffRoute(method: .get, path: "/staff/static/display.js", action: "public"),
    ]

    /// How long one event stream lasts before the browser opens the next (it does so by itself).
    static let displayStreamSeconds = 120
    /// How often a stream looks for a change of the queues it shows.
    static let displayPollMillis = 100

    func floorDesk() throws(StaffError) -> FloorDesk {
        guard let floor else { throw StaffError(503, "floor.unavailable", zh: "本节点未提供门诊现场功能。", en: "this node does not offer the clinic floor.") }
        return floor
    }

    // MARK: Signed in: the nurse's and the doctor's pages

    func floorRoute(_ route: StaffRoute, _ request: Request, form: [String: [String]], page: PageAnswer,
                    _ account: StaffAccount) async throws(StaffError) -> Response {
        let floor = try floorDesk()
        let query = request.uri.queryParameters
        func field(_ name: String) -> String? {
            if route.method == .post { return form[name]?.first }
            return query[Substring(name)].map { String($0) }
        }
        switch (route.method, route.path) {
        case (.get, "/staff/floor"):
            let department = try pageDepartment(field("dept"), action: "floor.checkin", account)
            let done = query["done"].map { String($0) }
            return try floorPage(page, floor, department: department, account, note: done, message: nil, status: 200)
        case (.post, "/staff/floor/check-in"):
            let department = try pageDepartment(field("dept"), action: "floor.checkin", account)
            do throws(StaffError) {
                let who = (form["who"]?.first ?? "").trimmingCharacters(in: .whitespaces)
                let lines: [(FloorSession?, FloorLine)]
                if who.count == 18, who.dropLast().allSatisfy(\.isNumber) {
                    lines = try await floor.checkIn(residentID: who, department: department).map { ($0.0, $0.1) }
                } else if !who.isEmpty {
                    try checkDepartment(of: who, department, floor)
                    lines = [(nil, try await floor.checkIn(appointment: who))]
                } else {
                    throw StaffError(400, "floor.who", zh: "请输入预约号或身份证号。", en: "enter a booking number or a resident ID.")
                }
                for (_, line) in lines {
                    try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "floor.check_in", patient: line.patient,
                                               resource: "appointment/\(line.holdID)", outcome: line.stage.rawValue))
                }
                let numbers = lines.map { "\($0.1.number)" }.joined(separator: ",")
                return page.redirect("/staff/floor?dept=\(Self.queryEscaped(department))&done=\(Self.queryEscaped(numbers))")
            } catch {
                return try floorPage(page, floor, department: department, account, note: nil, message: error, status: error.status)
            }
        case (.post, "/staff/floor/walk-in"):
            let department = try pageDepartment(field("dept"), action: "floor.walk_in", account)
            do throws(StaffError) {
                let schedule = form["session"]?.first ?? ""
                guard try floor.sessionToday(schedule).info.department == department else {
                    throw StaffError(400, "floor.other_department", zh: "该出诊时段不属于科室 \(department)。", en: "this session is not in department \(department).")
                }
                let line = try await floor.walkIn(session: schedule, residentID: form["resident_id"]?.first ?? "", name: form["name"]?.first ?? "",
                                                  mobile: form["mobile"]?.first ?? "", payment: form["payment"]?.first ?? "",
                                                  requestID: form["request_id"]?.first ?? "")
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "floor.walk_in", patient: line.patient,
                                           resource: "appointment/\(line.holdID)", outcome: "booked", detail: schedule))
                return page.redirect("/staff/floor?dept=\(Self.queryEscaped(department))&done=\(line.number)")
            } catch {
                return try floorPage(page, floor, department: department, account, note: nil, message: error, status: error.status)
            }
        case (.get, "/staff/queue"):
            return try queuePage(page, floor, account, department: field("dept"), message: nil, status: 200)
        case (.post, "/staff/queue/next"), (.post, "/staff/queue/recall"):
            let schedule = form["session"]?.first ?? ""
            do throws(StaffError) {
                let session = try floor.sessionToday(schedule)
                try mayCall(session.info, account)
                let expecting = (form["expecting"]?.first).flatMap { $0.isEmpty ? nil : $0 }
                let seen = Int(form["seen"]?.first ?? "") ?? 0
                let after: FloorSession
                if route.path == "/staff/queue/next" {
                    after = try await floor.next(session: schedule, expecting: expecting, missed: form["missed"]?.first == "1", seen: seen)
                } else {
                    guard let expecting else { throw StaffError(409, "floor.queue_changed", zh: "当前没有正在就诊的患者。", en: "nobody is being seen now.") }
                    after = try await floor.recall(session: schedule, expecting: expecting, seen: seen)
                }
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "floor.call", patient: after.called?.patient ?? "",
                                           resource: "session/\(schedule)", outcome: after.called.map { "called \($0.number)" } ?? "none"))
                return page.redirect("/staff/queue?dept=\(Self.queryEscaped(session.info.department))#s-\(Self.queryEscaped(schedule))")
            } catch {
                return try queuePage(page, floor, account, department: nil, message: error, status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// The department a page works on: the one asked for, else the account's first (an account
    /// reaching every department: the first department there is). Another department than the
    /// action reaches is refused and audited.
    func pageDepartment(_ asked: String?, action: String, _ account: StaffAccount) throws(StaffError) -> String {
        let everyDepartment = desk.rules.scope(of: action, for: account.roles) == .all
        var department = asked.flatMap { $0.isEmpty ? nil : $0 } ?? account.departments.first ?? ""
        if department.isEmpty, everyDepartment {
            department = ((try? desk.store.liveRows("department")) ?? [:]).keys.sorted().first ?? ""
        }
        guard !department.isEmpty else {
            throw StaffError(400, "page.no_department", zh: "请选择科室。", en: "choose a department.")
        }
        guard everyDepartment || account.departments.contains(department) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: "department/\(department)",
                                       outcome: "denied", detail: action))
            throw .denied
        }
        return department
    }

    /// Whether `action` reaches a doctor's session (or visit) for `account`: `all` everywhere, `dept`
    /// in the account's departments and its own sessions, `own` only its own sessions.
    func reaches(_ action: String, department: String, practitioner: String, _ account: StaffAccount) -> Bool {
        switch desk.rules.scope(of: action, for: account.roles) {
        case .all?: true
        case .dept?: account.departments.contains(department) || practitioner == account.practitioner
        case .own?: !account.practitioner.isEmpty && practitioner == account.practitioner
        case nil: false
        }
    }

    /// A booking number of another department than the page's is refused: the nurse is at the wrong desk.
    private func checkDepartment(of appointment: String, _ department: String, _ floor: FloorDesk) throws(StaffError) {
        guard let ref = AppointmentRef(encoded: appointment) else { return }
        let session = try floor.sessionToday(ref.block)
        guard session.info.department == department else {
            throw StaffError(409, "floor.other_department", zh: "该预约属于\(session.info.departmentName)，请到该科室报到。",
                             en: "this booking is for \(session.info.departmentName); please check in there.")
        }
    }

    /// A doctor calls only in their own sessions (`own`); a department head in their departments'.
    private func mayCall(_ info: SessionInfo, _ account: StaffAccount) throws(StaffError) {
        guard reaches("floor.call", department: info.department, practitioner: info.practitioner, account) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: "session/\(info.schedule)",
                                       outcome: "denied", detail: "floor.call"))
            throw StaffError(403, "floor.not_your_session", zh: "这不是您的出诊，不能为其叫号。", en: "this is not your session; you cannot call in it.")
        }
    }

    func floorPage(_ page: PageAnswer, _ floor: FloorDesk, department: String, _ account: StaffAccount, note: String?,
                   message: StaffError?, status: Int) throws(StaffError) -> Response {
        var values = page.values(title: page.text("floorTitle"), message: message)
        values["dept"] = department
        values["departmentName"] = ((try? desk.store.liveRow("department", key: department)) ?? nil)?["name"]?.textValue ?? department
        if let note, !note.isEmpty { values["done"] = ["numbers": note] }
        let mayRegister = desk.rules.scope(of: "floor.walk_in", for: account.roles) != nil
        values["sessions"] = try floor.sessionsToday(department: department).map { s -> [String: Any] in
            var v = sessionValues(s, page)
            v["lines"] = s.lines.map { l -> [String: Any] in
                var line = lineValues(l, page)
                line["mayCheckIn"] = !s.closed && (l.stage == .booked || l.stage == .missed)
                return line
            }
            if mayRegister, !s.closed, s.info.walkInReserve > 0 {
                v["walkIn"] = ["requestID": StaffTokens.newSessionID(), "free": s.info.walkInReserve - s.lines.count { $0.walkIn }]
            }
            return v
        }
        return page.html(renderer.render("floor", values), status: status)
    }

    func queuePage(_ page: PageAnswer, _ floor: FloorDesk, _ account: StaffAccount, department asked: String?,
                   message: StaffError?, status: Int) throws(StaffError) -> Response {
        var values = page.values(title: page.text("queueTitle"), message: message)
        let sessions: [FloorSession]
        switch desk.rules.scope(of: "floor.call", for: account.roles) {
        case .own?:
            sessions = account.practitioner.isEmpty ? [] : try floor.sessionsToday(department: nil, practitioner: account.practitioner)
        case .dept?, .all?:
            let department = try pageDepartment(asked, action: "floor.call", account)
            values["dept"] = department
            sessions = try floor.sessionsToday(department: department)
        case nil:
            throw .denied
        }
        let mayAttend = desk.rules.scope(of: "attendance.sign", for: account.roles) != nil
        let mayWrite = records != nil && desk.rules.scope(of: "record.write", for: account.roles) != nil
        values["sessions"] = sessions.map { s -> [String: Any] in
            var v = sessionValues(s, page)
            v["expecting"] = s.queue?.current ?? ""
            v["seen"] = s.queue?.lastSeq ?? 0
            v["mayCall"] = !s.closed
            v["waitingLines"] = s.waiting.map { lineValues($0, page) }
            if var called = v["called"] as? [String: Any] {
                called["mayWrite"] = mayWrite
                v["called"] = called
            }
            if mayAttend, s.info.practitioner == account.practitioner { v["attendance"] = attendanceValues(s.info.schedule, page) }
            return v
        }
        return page.html(renderer.render("queue", values), status: status)
    }

    func sessionValues(_ s: FloorSession, _ page: PageAnswer) -> [String: Any] {
        let zh = page.lang == .zh
        var v: [String: Any] = [
            "schedule": s.info.schedule, "doctor": s.info.practitionerName, "title": s.info.title.map { zh ? $0.zh : $0.en } ?? "",
            "room": s.info.room, "time": "\(s.info.start)-\(s.info.end)", "halfDay": zh ? s.info.halfDay.zh : s.info.halfDay.en,
            "waitingCount": s.waiting.count, "closed": s.closed,
        ]
        if let called = s.called { v["called"] = lineValues(called, page) }
        return v
    }

    func lineValues(_ l: FloorLine, _ page: PageAnswer) -> [String: Any] {
        ["appointment": l.appointment, "number": l.number, "name": l.name, "masked": l.maskedName, "stage": l.stage.rawValue,
         "stageLabel": page.text("stage_" + l.stage.rawValue), "walkIn": l.walkIn, "calls": l.calls]
    }

    // MARK: Public: the kiosk and the display

    func floorPublicRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]],
                          page: PageAnswer) async throws(StaffError) -> Response {
        var page = page
        let query = request.uri.queryParameters
        switch (route.method, route.path) {
        case (.get, "/staff/static/display.js"):
            return page.asset(renderer.displayScript, contentType: "text/javascript; charset=utf-8")
        case (.get, "/staff/kiosk"):
            return try kioskPage(&page, department: query["dept"].map(String.init), done: nil, message: nil, status: 200)
        case (.post, "/staff/kiosk"):
            let department = form["dept"]?.first
            guard let pre = request.cookies[Self.preSessionCookie]?.value, let token = form["csrf"]?.first,
                  desk.tokens.equal(token, desk.tokens.csrf(preSession: pre)) else {
                try desk.record(AuditEvent(staff: "-", action: "csrf.refused", resource: route.path, outcome: "denied"))
                return try kioskPage(&page, department: department, done: nil, message: .csrf, status: 403)
            }
            if let wait = kioskLimiter.take(context.clientAddress, nowNanos: desk.clock.monotonicNanos()) {
                page.extraHeaders.append((.retryAfter, "\(wait)"))
                return try kioskPage(&page, department: department, done: nil,
                                     message: StaffError(429, "rate.limited", zh: "操作过于频繁，请 \(wait) 秒后再试。", en: "too many tries; try again in \(wait) s."), status: 429)
            }
            do throws(StaffError) {
                let done = try await floorDesk().checkIn(residentID: form["resident_id"]?.first ?? "", department: department.flatMap { $0.isEmpty ? nil : $0 })
                for (_, line) in done {
                    try desk.record(AuditEvent(staff: "kiosk", action: "floor.check_in", patient: line.patient, resource: "appointment/\(line.holdID)",
                                               outcome: line.stage.rawValue))
                }
                return try kioskPage(&page, department: department, done: done, message: nil, status: 200)
            } catch {
                return try kioskPage(&page, department: department, done: nil, message: error, status: error.status)
            }
        case (.get, "/staff/display"):
            let floor = try floorDesk()
            var values = page.values(title: page.text("displayTitle"))
            guard let department = query["dept"].map(String.init), !department.isEmpty else {
                values["departments"] = departmentChoices(path: "/staff/display")
                return page.html(renderer.render("display", values))
            }
            var shown = departmentValues(department)
            shown["rows"] = try floor.sessionsToday(department: department).map { displayValues($0) }
            values["department"] = shown
            return page.html(renderer.render("display", values))
        case (.get, "/staff/display/events"):
            let floor = try floorDesk()
            guard let department = query["dept"].map(String.init), !department.isEmpty else {
                throw StaffError(400, "page.no_department", zh: "请选择科室。", en: "choose a department.")
            }
            return displayStream(floor, department: department, page: page)
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    func kioskPage(_ page: inout PageAnswer, department: String?, done: [(FloorSession, FloorLine)]?, message: StaffError?, status: Int) throws(StaffError) -> Response {
        let pre = StaffTokens.newSessionID() + StaffTokens.newSessionID()
        page.cookies.append(Cookie(name: Self.preSessionCookie, value: pre, path: "/staff", secure: true, httpOnly: true, sameSite: .strict))
        var values = page.values(title: page.text("kioskTitle"), message: message)
        values["csrf"] = desk.tokens.csrf(preSession: pre)
        if let department, !department.isEmpty { values["department"] = departmentValues(department) }
        if let done {
            values["done"] = done.map { s, l -> [String: Any] in
                ["number": l.number, "masked": l.maskedName, "doctor": s.info.practitionerName, "room": s.info.room,
                 "ahead": max(0, (s.waiting.firstIndex { $0.holdID == l.holdID } ?? 0)), "stageLabel": page.text("stage_" + l.stage.rawValue)]
            }
        }
        return page.html(renderer.render("kiosk", values), status: status)
    }

    func departmentValues(_ code: String) -> [String: Any] {
        ["code": code, "name": ((try? desk.store.liveRow("department", key: code)) ?? nil)?["name"]?.textValue ?? code]
    }

    func departmentChoices(path: String) -> [[String: Any]] {
        ((try? desk.store.liveRows("department")) ?? [:]).sorted { $0.key < $1.key }.map { key, row in
            ["code": key, "name": row["name"]?.textValue ?? key, "href": "\(path)?dept=\(Self.queryEscaped(key))"]
        }
    }

    /// One doctor's line on the display: masked names only.
    func displayValues(_ s: FloorSession) -> [String: Any] {
        var v: [String: Any] = ["schedule": s.info.schedule, "doctor": s.info.practitionerName, "room": s.info.room, "closed": s.closed,
                                "time": "\(s.info.start)-\(s.info.end)",
                                "next": s.waiting.prefix(3).map { ["number": $0.number, "masked": $0.maskedName] }]
        if let c = s.called { v["called"] = ["number": c.number, "masked": c.maskedName, "calls": c.calls] }
        return v
    }

    /// Server-sent events: the department's display rows as JSON each time they change.
    func displayStream(_ floor: FloorDesk, department: String, page: PageAnswer) -> Response {
        eventStream(page, initial: (last: "", seen: [String: UInt64]())) { state in
            // The queues are derived and the names read only when a session's records changed.
            let schedules = ((try? floor.infosToday(department: department)) ?? []).map(\.schedule)
            let versions = floor.booking.consensus.lookup { lookup in
                Dictionary(schedules.map { ($0, lookup.block($0)?.version ?? 0) }, uniquingKeysWith: { a, _ in a })
            }
            guard versions != state.seen || state.last.isEmpty else { return nil }
            state.seen = versions
            let sessions = (try? floor.sessionsToday(department: department)) ?? []
            let json = Self.displayJSON(sessions.map { displayValues($0) })
            guard json != state.last else { return nil }
            state.last = json
            return json
        }
    }

    /// Server-sent events: every `displayPollMillis` `poll` may give an event's data (nil: nothing
    /// new); a comment line every 15 s keeps the connection, for `displayStreamSeconds` or until
    /// the node stops.
    func eventStream<State: Sendable>(_ page: PageAnswer, initial: State, poll: @escaping @Sendable (inout State) -> String?) -> Response {
        var headers = page.headers(contentType: "text/event-stream; charset=utf-8")
        headers[.cacheControl] = "no-store"
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            var state = initial
            var quiet = 0
            let rounds = Self.displayStreamSeconds * 1000 / Self.displayPollMillis
            for _ in 0..<rounds {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                if let data = poll(&state) {
                    quiet = 0
                    try await writer.write(ByteBuffer(string: "data: \(data)\n\n"))
                }
                quiet += 1
                if quiet * Self.displayPollMillis >= 15_000 {
                    quiet = 0
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                }
                try? await Task.sleep(for: .milliseconds(Self.displayPollMillis))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static func displayJSON(_ rows: [[String: Any]]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: ["rows": rows], options: [.sortedKeys]) else { return "{\"rows\":[]}" }
        return String(decoding: data, as: UTF8.self)
    }
}
