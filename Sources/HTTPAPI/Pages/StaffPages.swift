import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore
import ReplicatedCore
import Services

// The staff pages, server-rendered under /staff on every node's HTTPS port. Every route declares
// the action it takes (`StaffPages.routes`, checked against `RBAC.md` by a test both ways); a route
// whose action the signed-in roles lack answers 403 and leaves an audit event. Forms carry a CSRF
// token; every answer carries a strict Content-Security-Policy and no inline script or style.

/// One staff route: its method, path and the `RBAC.md` action it takes ("public": no session).
package struct StaffRoute: Sendable, Hashable {
    package var method: HTTPRequest.Method
    package var path: String
    package var action: String
}

package struct StaffPages: Sendable {
    package let desk: StaffDesk
    /// The patients' appointments (the node's read model): the care relation `dept` scope checks.
    let appointments: (any PatientAppointments)?
    /// The departments' rotas (nil: this node offers no rota page).
    let rota: RotaDesk?
    /// The clinic floor (nil: this node offers no floor pages).
    let floor: FloorDesk?
    /// Doctors' attendance (nil: no attendance pages).
    let attendance: AttendanceDesk?
    /// Doctors' session changes and the heads' approvals (nil: the schedule page only lists).
    let changes: SessionChangeDesk?
    /// The outpatient record (nil: no visit pages).
    let records: RecordDesk?
    /// Lab and exam orders and their results (nil: no ordering, no lab pages).
    let orders: OrderDesk?
    /// This node's folder of HL7 result files (nil: none configured).
    let labInbox: LabInbox?
    /// Prescriptions and the pharmacy's review (nil: no prescribing pages).
    let prescriptions: PrescriptionDesk?
    /// The pharmacies' stock and dispensing (nil: review only, no stock).
    let pharmacy: PharmacyDesk?
    let renderer: PageRenderer
    /// Sign-in attempts per client address on this node (`staff.sign_in_burst`, `_per_second`).
    /// The lockout guards each account; this guards the node (each attempt costs a 32 MiB scrypt).
    let signInLimiter: RateLimiter
    /// Kiosk check-ins per client address: each tells whether a resident ID has a booking today.
    let kioskLimiter = RateLimiter(burst: 20, perSecond: 0.5)
    let logger: Logger

    package init(desk: StaffDesk, appointments: (any PatientAppointments)? = nil, rota: RotaDesk? = nil, floor: FloorDesk? = nil,
                 attendance: AttendanceDesk? = nil, changes: SessionChangeDesk? = nil, records: RecordDesk? = nil, orders: OrderDesk? = nil,
                labInbox: LabInbox? = nil, prescriptions: PrescriptionDesk? = nil, pharmacy: PharmacyDesk? = nil, signInBurst: Int = 30, signInPerSecond: Double = 1,
                 logger: Logger) throws {
        self.desk = desk
        self.appointments = appointments
        self.rota = rota
        self.floor = floor
        self.attendance = attendance
        self.changes = changes
        self.records = records
        self.orders = orders
        self.labInbox = labInbox
        self.prescriptions = prescriptions
        self.pharmacy = pharmacy
        signInLimiter = RateLimiter(burst: signInBurst, perSecond: signInPerSecond)
        self.logger = logger
        renderer = try PageRenderer.shipped()
    }

    /// Every staff route. The router registers exactly these.
    package static let routes: [StaffRoute] = [
        StaffRoute(method: .get, path: "/staff/sign-in", action: "public"),
        StaffRoute(method: .post, path: "/staff/sign-in", action: "public"),
        StaffRoute(method: .get, path: "/staff/static/style.css", action: "public"),
        StaffRoute(method: .post, path: "/staff/sign-out", action: "home"),
        StaffRoute(method: .get, path: "/staff/", action: "home"),
        StaffRoute(method: .get, path: "/staff/password", action: "password.change"),
        StaffRoute(method: .post, path: "/staff/password", action: "password.change"),
        StaffRoute(method: .get, path: "/staff/two-step", action: "password.change"),
        StaffRoute(method: .post, path: "/staff/two-step", action: "password.change"),
        StaffRoute(method: .post, path: "/staff/two-step/disable", action: "password.change"),
        StaffRoute(method: .get, path: "/staff/schedule", action: "schedule.own"),
        StaffRoute(method: .get, path: "/staff/accounts", action: "staff.manage"),
        StaffRoute(method: .post, path: "/staff/accounts", action: "staff.manage"),
        StaffRoute(method: .post, path: "/staff/accounts/{number}/disable", action: "staff.manage"),
        StaffRoute(method: .post, path: "/staff/accounts/{number}/reset-password", action: "staff.manage"),
        StaffRoute(method: .post, path: "/staff/accounts/{number}/rights", action: "staff.manage"),
        StaffRoute(method: .get, path: "/staff/audit", action: "audit.read"),
        StaffRoute(method: .get, path: "/staff/audit.csv", action: "audit.read"),
        StaffRoute(method: .get, path: "/staff/patients", action: "patient.read"),
        StaffRoute(method: .get, path: "/staff/patients/{key}", action: "patient.read"),
        StaffRoute(method: .post, path: "/staff/patients/{key}/break-glass", action: "patient.break_glass"),
    ] + rotaRoutes + floorRoutes + attendanceRoutes + sessionChangeRoutes + recordRoutes + labRoutes + prescriptionRoutes

    /// Actions taken from a page rather than from a home page's link.
    package static let pageOnlyActions: Set<String> = ["patient.break_glass", "floor.walk_in", "attendance.sign", "record.write", "rx.write", "rx.read", "pharmacy.dispense"]

    /// Where a home page's link for an action goes.
    static let actionPaths: [String: String] = [
        "home": "/staff/", "password.change": "/staff/password", "schedule.own": "/staff/schedule",
        "staff.manage": "/staff/accounts", "audit.read": "/staff/audit", "patient.read": "/staff/patients", "rota.manage": "/staff/rota",
        "floor.checkin": "/staff/floor", "floor.call": "/staff/queue", "attendance.read": "/staff/attendance",
        "schedule.approve": "/staff/approvals", "record.search": "/staff/records/search", "template.manage": "/staff/templates",
        "lab.result": "/staff/lab", "pharmacy.review": "/staff/pharmacy", "pharmacy.stock": "/staff/pharmacy/stock",
    ]

    /// Events on one page of the auditor's view (older ones on the next page).
    static let auditPageSize = 100
    /// The most events one CSV export holds (a longer span is exported in parts, by date).
    static let exportLimit = 200_000
    static let sessionCookie = "cm_staff"
    static let preSessionCookie = "cm_pre"
    static let languageCookie = "cm_lang"
    static let securityHeaders: [(HTTPField.Name, String)] = [
        (.contentSecurityPolicy, "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        (.xContentTypeOptions, "nosniff"),
        (HTTPField.Name("Referrer-Policy")!, "no-referrer"),
        (.cacheControl, "no-store"),
        (HTTPField.Name("X-Frame-Options")!, "DENY"),
    ]

    package func add(to router: Router<PatientRequestContext>) {
        for route in Self.routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                await self.serve(route, request, context)
            }
        }
    }

    // MARK: Dispatch

    /// One request: the language, the session and its action's check, the CSRF check of a post,
    /// then the page; every refusal is a page in both languages with `#message[data-code]`.
    func serve(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext) async -> Response {
        let asked = request.uri.queryParameters["lang"].flatMap { PageLanguage(rawValue: String($0)) }
        var page = PageAnswer(lang: asked ?? request.cookies[Self.languageCookie].flatMap { PageLanguage(rawValue: $0.value) } ?? .zh, node: desk.node)
        if let asked {
            page.cookies.append(Cookie(name: Self.languageCookie, value: asked.rawValue, maxAge: 365 * 86_400, path: "/staff", secure: true, httpOnly: true, sameSite: .strict))
        }
        do throws(StaffError) {
            var form: [String: [String]] = [:]
            // A note may be 200 KB of text, which a form sends percent-encoded (up to 9 bytes a character).
            if route.method == .post { form = try await Self.form(request, limitKiB: route.path == "/staff/visits/{id}" ? 2048 : 64) }
            if route.action == "public" { return try await publicRoute(route, request, context, form: form, page: page) }
            let signedIn: (session: StaffSession, account: StaffAccount, renewed: String?)
            do { signedIn = try desk.session(cookie: request.cookies[Self.sessionCookie]?.value) } catch {
                if error == .storeUnavailable { throw error }
                // No cookie at all: just the sign-in page; otherwise say why.
                let reason = request.cookies[Self.sessionCookie] == nil ? "" : "?reason=\(error.code.split(separator: ".").last ?? "")"
                return page.redirect("/staff/sign-in\(reason)", clearing: Self.sessionCookie)
            }
            if let renewed = signedIn.renewed { page.cookies.append(Self.sessionCookie(renewed)) }
            page.signedIn = (signedIn.session, signedIn.account, desk.tokens.csrf(session: signedIn.session))
            if route.method == .post {
                guard let token = form["csrf"]?.first, desk.tokens.equal(token, desk.tokens.csrf(session: signedIn.session)) else {
                    try desk.record(AuditEvent(staff: signedIn.account.number, role: desk.roleText(signedIn.account), action: "csrf.refused",
                                               resource: route.path, outcome: "denied"))
                    return page.refusal(.csrf, renderer)
                }
            }
            try desk.authorize(signedIn.account, action: route.action, resource: request.uri.path)
            // A reset password is changed before anything else.
            if signedIn.account.mustChangePassword, route.action != "password.change", route.path != "/staff/sign-out" {
                return page.redirect("/staff/password")
            }
            return try await signedInRoute(route, request, context, form: form, page: page, signedIn.session, signedIn.account)
        } catch {
            return page.refusal(error, renderer)
        }
    }

    static func sessionCookie(_ value: String) -> Cookie {
        Cookie(name: sessionCookie, value: value, path: "/staff", secure: true, httpOnly: true, sameSite: .strict)
    }

    // MARK: Public routes

    func publicRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]],
                     page: PageAnswer) async throws(StaffError) -> Response {
        var page = page
        switch (route.method, route.path) {
        case (.get, "/staff/static/style.css"):
            return page.asset(renderer.stylesheet, contentType: "text/css; charset=utf-8")
        case (.get, "/staff/sign-in"):
            let reason = request.uri.queryParameters["reason"].map(String.init) ?? ""
            let message: StaffError? = ["expired": .expired, "invalid": .invalid, "revoked": .revoked, "signed_out": .signedOut][reason]
            return signInPage(&page, message: message, status: message == nil || message == .signedOut ? 200 : 401, staffNumber: "")
        case (.post, "/staff/sign-in"):
            if let wait = signInLimiter.take(context.clientAddress, nowNanos: desk.clock.monotonicNanos()) {
                page.extraHeaders.append((.retryAfter, "\(wait)"))
                return signInPage(&page, message: .rateLimited(retryAfterS: wait), status: 429, staffNumber: "")
            }
            guard let pre = request.cookies[Self.preSessionCookie]?.value, let token = form["csrf"]?.first,
                  desk.tokens.equal(token, desk.tokens.csrf(preSession: pre)) else {
                try desk.record(AuditEvent(staff: "-", action: "csrf.refused", resource: route.path, outcome: "denied"))
                return signInPage(&page, message: .csrf, status: 403, staffNumber: "")
            }
            let number = form["staff_number"]?.first ?? ""
            do {
                let (cookie, account) = try await desk.signIn(number: number, password: form["password"]?.first ?? "", code: form["code"]?.first ?? "")
                page.cookies.append(Self.sessionCookie(cookie))
                return page.redirect(account.mustChangePassword ? "/staff/password" : "/staff/")
            } catch {
                return signInPage(&page, message: error, status: error.status, staffNumber: String(number.prefix(16)))
            }
        case (.get, "/staff/static/record.js"):
            return page.asset(renderer.recordScript, contentType: "text/javascript; charset=utf-8")
        case (.get, "/staff/static/pharmacy.js"):
            return page.asset(renderer.pharmacyScript, contentType: "text/javascript; charset=utf-8")
        case (_, _) where Self.floorRoutes.contains(route):
            return try await floorPublicRoute(route, request, context, form: form, page: page)
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// The sign-in form, with a fresh pre-session cookie its CSRF token is bound to.
    func signInPage(_ page: inout PageAnswer, message: StaffError?, status: Int, staffNumber: String) -> Response {
        let pre = StaffTokens.newSessionID() + StaffTokens.newSessionID()
        page.cookies.append(Cookie(name: Self.preSessionCookie, value: pre, path: "/staff", secure: true, httpOnly: true, sameSite: .strict))
        var values = page.values(title: page.text("signInTitle"), message: message)
        values["csrf"] = desk.tokens.csrf(preSession: pre)
        values["staffNumber"] = staffNumber.unicodeScalars.allSatisfy({ $0.isASCII && !$0.properties.isWhitespace }) ? staffNumber : ""
        return page.html(renderer.render("sign-in", values), status: status)
    }

    // MARK: Signed-in routes

    func signedInRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]], page: PageAnswer,
                       _ session: StaffSession, _ account: StaffAccount) async throws(StaffError) -> Response {
        var page = page
        switch (route.method, route.path) {
        case (.post, "/staff/sign-out"):
            try desk.signOut(session)
            return page.redirect("/staff/sign-in?reason=signed_out", clearing: Self.sessionCookie)
        case (.get, "/staff/"):
            var values = page.values(title: page.text("homeTitle"))
            values["account"] = ["number": account.number, "name": account.name]
            values["roles"] = account.sortedRoles.map { page.lang == .zh ? $0.zh : $0.en }
            values["hasDepartments"] = !account.departments.isEmpty
            // Department names as the department rows give them (the code if a row has not come yet).
            values["departments"] = account.departments.map { code in
                (try? desk.store.liveRow("department", key: code))??["name"]?.textValue.map { "\($0) (\(code))" } ?? code
            }.joined(separator: ", ")
            values["actions"] = desk.rules.allowed(for: account.roles).filter { $0.name != "home" && Self.actionPaths[$0.name] != nil }.map { a -> [String: Any] in
                ["name": a.name, "label": page.lang == .zh ? a.zh : a.en, "path": Self.actionPaths[a.name] ?? "/staff/"]
            }
            return page.html(renderer.render("home", values))
        case (.get, "/staff/password"):
            var values = page.values(title: page.text("passwordTitle"))
            values["mustChange"] = account.mustChangePassword
            return page.html(renderer.render("password", values))
        case (.post, "/staff/password"):
            do {
                let cookie = try await desk.changePassword(session, current: form["current"]?.first ?? "", new: form["new"]?.first ?? "")
                page.cookies.append(Self.sessionCookie(cookie))
                return page.redirect("/staff/")
            } catch {
                var values = page.values(title: page.text("passwordTitle"), message: error)
                values["mustChange"] = account.mustChangePassword
                return page.html(renderer.render("password", values), status: error.status)
            }
        case (.get, "/staff/two-step"):
            return try twoStepPage(page, account, message: nil, status: 200)
        case (.post, "/staff/two-step"):
            do {
                try await desk.enableTwoStep(session, password: form["password"]?.first ?? "", secret: form["secret"]?.first ?? "", code: form["code"]?.first ?? "")
                return page.redirect("/staff/two-step")
            } catch {
                return try twoStepPage(page, account, message: error, status: error.status, secret: form["secret"]?.first)
            }
        case (.post, "/staff/two-step/disable"):
            do {
                try await desk.disableTwoStep(session, password: form["password"]?.first ?? "")
                return page.redirect("/staff/two-step")
            } catch {
                return try twoStepPage(page, account, message: error, status: error.status)
            }
        case (.get, "/staff/schedule"):
            let requested = request.uri.queryParameters["requested"] != nil
            return try schedulePage(page, account, message: requested ? StaffError(200, "change.requested", zh: "变更申请已提交，等待科主任审批。",
                                                                                      en: "your request was filed; it waits for the department head.") : nil)
        case (_, _) where Self.sessionChangeRoutes.contains(route):
            return try sessionChangeRoute(route, request, context, form: form, page: page, account)
        case (_, _) where route.path.hasPrefix("/staff/rota"):
            return try rotaRoute(route, request, form: form, page: page, account)
        case (_, _) where Self.floorRoutes.contains(route):
            return try await floorRoute(route, request, form: form, page: page, account)
        case (_, _) where Self.recordRoutes.contains(route):
            return try recordRoute(route, request, context, form: form, page: page, account)
        case (_, _) where Self.labRoutes.contains(route):
            return try labRoute(route, request, context, form: form, page: page, account)
        case (_, _) where Self.prescriptionRoutes.contains(route):
            return try await prescriptionRoute(route, request, context, form: form, page: page, account)
        case (_, _) where Self.attendanceRoutes.contains(route):
            return try attendanceRoute(route, request, form: form, page: page, account)
        case (.get, "/staff/accounts"):
            return try accountsPage(page, message: nil, status: 200)
        case (.post, "/staff/accounts"):
            do {
                let departments = (form["departments"]?.first ?? "").split(whereSeparator: { $0 == "," || $0 == "，" }).map(String.init)
                _ = try await desk.addAccount(number: form["staff_number"]?.first ?? "", name: form["name"]?.first ?? "", roles: form["roles"] ?? [],
                                              departments: departments, password: form["password"]?.first ?? "", mustChangePassword: true, by: account.number)
                return page.redirect("/staff/accounts")
            } catch {
                return try accountsPage(page, message: error, status: error.status)
            }
        case (.post, _) where route.path == "/staff/accounts/{number}/disable":
            let number = context.parameters.get("number") ?? ""
            try desk.disable(number, by: account.number)
            return page.redirect("/staff/accounts")
        case (.post, _) where route.path == "/staff/accounts/{number}/rights":
            do throws(StaffError) {
                let rights = Set((form["rights"] ?? []).compactMap(PrescribingRight.init(rawValue:)))
                try desk.setRights(context.parameters.get("number") ?? "", rights, by: account.number)
                return page.redirect("/staff/accounts")
            } catch {
                return try accountsPage(page, message: error, status: error.status)
            }
        case (.post, _) where route.path == "/staff/accounts/{number}/reset-password":
            do {
                try await desk.resetPassword(context.parameters.get("number") ?? "", to: form["password"]?.first ?? "", by: account.number)
                return page.redirect("/staff/accounts")
            } catch {
                return try accountsPage(page, message: error, status: error.status)
            }
        case (.get, "/staff/patients"):
            let residentID = (request.uri.queryParameters["resident_id"].map { String($0) } ?? "").trimmingCharacters(in: .whitespaces)
            guard !residentID.isEmpty else { return page.html(renderer.render("patients", page.values(title: page.text("patientsTitle")))) }
            do {
                let key = try desk.patientKey(residentID: residentID)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "patient.search", patient: key, outcome: "found"))
                return page.redirect("/staff/patients/\(key)")
            } catch {
                if error != .storeUnavailable {
                    try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "patient.search", outcome: error.code))
                }
                var values = page.values(title: page.text("patientsTitle"), message: error)
                values["residentID"] = String(residentID.prefix(18))
                return page.html(renderer.render("patients", values), status: error.status)
            }
        case (.get, "/staff/patients/{key}"):
            let key = try Self.patientKey(context)
            do {
                var values = patientValues(page, try desk.openPatient(key, for: account, appointments: appointments))
                let words = (request.uri.queryParameters["q"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces)
                if let records, !words.isEmpty {
                    let found = try records.search(patient: key, words: String(words.prefix(40)))
                    try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.search", patient: key,
                                               resource: "patient/\(key)", outcome: "\(found.count)", detail: String(words.prefix(40))))
                    values["search"] = ["q": String(words.prefix(40)), "results": foundValues(found, page)]
                }
                return page.html(renderer.render("patient", values))
            } catch where error == .breakGlassRequired {
                return lockedPatientPage(page, key: key, account: account, message: error)
            }
        case (.post, "/staff/patients/{key}/break-glass"):
            let key = try Self.patientKey(context)
            do {
                try desk.breakGlass(key, for: account, reason: form["reason"]?.first ?? "")
                return page.redirect("/staff/patients/\(key)")
            } catch where error == .reasonTooShort {
                return lockedPatientPage(page, key: key, account: account, message: error)
            }
        case (.get, "/staff/audit"):
            let filter = try AuditFilter(request)
            let (events, older) = try auditPage(filter)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "audit.read", resource: "audit", outcome: "ok",
                                       detail: filter.query(before: filter.beforeMs)))
            var values = page.values(title: page.text("auditTitle"))
            values["filter"] = filter.fields
            values["query"] = filter.query
            if let older { values["older"] = "/staff/audit?" + filter.query(before: older) }
            values["eventRows"] = Self.auditRows(events, lang: page.lang)
            return page.html(renderer.render("audit", values))
        case (.get, "/staff/audit.csv"):
            let filter = try AuditFilter(request)
            let events = try auditEvents(filter, limit: Self.exportLimit)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "audit.export", resource: "audit", outcome: "ok",
                                       detail: filter.query))
            var csv = "at,node,chain,sequence,staff,role,action,patient,resource,outcome,detail,hash\r\n"
            for e in events {
                let fields = [Self.shanghai(e.row["at_ms"]?.integerValue ?? 0), text(e, "node"), text(e, "chain"), String(e.row["sequence"]?.integerValue ?? 0),
                              text(e, "staff"), text(e, "role"), text(e, "action"), text(e, "patient"), text(e, "resource"), text(e, "outcome"),
                              text(e, "detail"), text(e, "hash")]
                csv += fields.map(Self.csvField).joined(separator: ",") + "\r\n"
            }
            page.extraHeaders.append((.contentDisposition, "attachment; filename=\"audit.csv\""))
            return page.asset(csv, contentType: "text/csv; charset=utf-8")
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    func text(_ e: (key: String, row: [String: ColumnValue]), _ column: String) -> String { e.row[column]?.textValue ?? "" }

    /// Two-step sign-in: on, with a form to turn it off; or off, with a fresh secret to put in an
    /// authenticator app and a form to turn it on (the secret a refused form sent comes back, so
    /// the app need not be set up again).
    func twoStepPage(_ page: PageAnswer, _ account: StaffAccount, message: StaffError?, status: Int, secret: String? = nil) throws(StaffError) -> Response {
        var values = page.values(title: page.text("twoStepTitle"), message: message)
        if try desk.twoStepEnabled(account.number) {
            values["enabled"] = true
        } else {
            let secret = secret.flatMap { TwoStepCodes.isWellFormed($0) ? $0 : nil } ?? TwoStepCodes.newSecret()
            values["secret"] = secret
            values["setupKey"] = TwoStepCodes.setupKey(secret: secret)
            values["authenticatorURL"] = TwoStepCodes.authenticatorURL(secret: secret, staffNumber: account.number)
        }
        return page.html(renderer.render("two-step", values), status: status)
    }

    /// A patient key from the path: 64 lowercase hex digits, else no such patient.
    static func patientKey(_ context: PatientRequestContext) throws(StaffError) -> String {
        let key = context.parameters.get("key") ?? ""
        guard key.count == 64, key.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { throw .patientNotFound }
        return key
    }

    func patientValues(_ page: PageAnswer, _ r: PatientRecordView) -> [String: Any] {
        var values = page.values(title: page.text("patientTitle"))
        var record: [String: Any] = [
            "key": r.key, "name": r.name, "sex": page.text(r.sex).isEmpty ? r.sex : page.text(r.sex), "birthDate": r.birthDate,
            "residentID": r.residentIDMasked, "mobile": r.mobileMasked,
            "appointments": r.appointments.map { a -> [String: Any] in
                ["date": a.date ?? "", "halfDay": page.text(a.halfDay ?? "").isEmpty ? (a.halfDay ?? "") : page.text(a.halfDay ?? ""),
                 "department": a.department ?? "", "practitioner": a.practitioner ?? "", "status": a.status]
            },
        ]
        if let reason = r.breakGlassReason { record["breakGlassReason"] = reason }
        // The visits and their notes as they stand (the timeline); opening the patient was the audited read.
        record["visits"] = ((try? records?.timeline(patient: r.key)) ?? []).map { v -> [String: Any] in
            let current = v.current
            return ["id": v.encounter.id, "date": v.encounter.date, "department": v.encounter.department, "practitioner": v.encounter.practitioner,
                    "kind": current.map { page.lang == .zh ? $0.kind.zh : $0.kind.en } ?? "", "complaint": current?.note.chiefComplaint ?? "",
                    "diagnoses": current?.note.diagnoses.map { "\($0.name)（\($0.code)）" }.joined(separator: "、") ?? ""]
        }
        // Results, newest first, each as it stands (a corrected report shows once, as corrected).
        record["results"] = ((try? orders?.currentReports(patient: r.key)) ?? []).map { rep -> [String: Any] in
            let item = orders?.catalogue.item(rep.item)
            let flagged = rep.observations.filter { $0.flag != .normal }
            var v: [String: Any] = ["order": rep.order, "at": Self.shanghai(rep.atMs), "name": (page.lang == .zh ? item?.zh : item?.en) ?? rep.item,
                                    "corrected": rep.status == .corrected, "abnormal": !flagged.isEmpty]
            v["summary"] = flagged.isEmpty ? page.text("resultAllNormal")
                : flagged.prefix(6).map { "\($0.name) \($0.value)\($0.unit.isEmpty ? "" : " " + $0.unit) \(page.lang == .zh ? $0.flag.zh : $0.flag.en)" }.joined(separator: "；")
            return v
        }
        values["record"] = record
        return values
    }

    /// A patient outside the staff member's care: the reason, and the break-glass form if their
    /// roles may break glass.
    func lockedPatientPage(_ page: PageAnswer, key: String, account: StaffAccount, message: StaffError) -> Response {
        var values = page.values(title: page.text("patientTitle"), message: message)
        values["locked"] = true
        values["key"] = key
        values["mayBreakGlass"] = desk.rules.scope(of: "patient.break_glass", for: account.roles) != nil
        return page.html(renderer.render("patient", values), status: message.status)
    }

    func accountsPage(_ page: PageAnswer, message: StaffError?, status: Int) throws(StaffError) -> Response {
        var values = page.values(title: page.text("accountsTitle"), message: message)
        let twoStep = try desk.twoStepAccounts()
        values["accounts"] = try desk.accounts().map { a -> [String: Any] in
            ["number": a.number, "name": a.name, "roles": a.sortedRoles.map { page.lang == .zh ? $0.zh : $0.en }.joined(separator: ", "),
             "departments": a.departments.joined(separator: ", "), "active": a.active, "state": page.text(a.active ? "active" : "disabled"),
             "twoStepState": twoStep.contains(a.number) ? "on" : "off", "twoStep": page.text(twoStep.contains(a.number) ? "on" : "off"),
             "prescribes": a.roles.contains(.doctor),
             "rights": PrescribingRight.allCases.map { r -> [String: Any] in
                 ["value": r.rawValue, "label": page.lang == .zh ? r.zh : r.en, "held": a.rights.contains(r)]
             }]
        }
        values["roleChoices"] = StaffRole.allCases.map { ["value": $0.rawValue, "label": page.lang == .zh ? $0.zh : $0.en] }
        return page.html(renderer.render("accounts", values), status: status)
    }

    static let auditCells = ["staff", "role", "action", "patient", "resource", "outcome", "detail", "node"]

    /// The auditor's table rows, escaped here rather than by the template engine: a page of 100
    /// rows through Mustache's dynamic lookups cost most of the page's CPU. Roles are named in
    /// the page's language (`data-roles` keeps the codes).
    static func auditRows(_ events: [(key: String, row: [String: ColumnValue])], lang: PageLanguage) -> String {
        var html = ""
        html.reserveCapacity(events.count * 400)
        for e in events {
            html += "<tr class=\"event\"><td class=\"time\">\(shanghai(e.row["at_ms"]?.integerValue ?? 0))</td>"
            for cell in auditCells {
                let value = e.row[cell]?.textValue ?? ""
                if cell == "role" {
                    let names = value.split(separator: ",").map { code in StaffRole(rawValue: String(code)).map { lang == .zh ? $0.zh : $0.en } ?? String(code) }
                    html += "<td class=\"role\" data-roles=\"\(htmlEscaped(value))\">" + htmlEscaped(names.joined(separator: lang == .zh ? "、" : ", ")) + "</td>"
                } else {
                    html += "<td class=\"\(cell)\">" + htmlEscaped(value) + "</td>"
                }
            }
            html += "</tr>\n"
        }
        return html
    }

    /// Text made safe for an element's content or a quoted attribute value.
    static func htmlEscaped(_ text: String) -> String { HTMLText.escaped(text) }

    /// One page of the auditor's view, newest first, and where the next (older) page starts: it
    /// ends before the oldest time shown, so that no event of a millisecond the page cut through
    /// is skipped (the page then shows fewer rows; a single millisecond with more events than a
    /// page goes on to the next millisecond).
    func auditPage(_ f: AuditFilter) throws(StaffError) -> (events: [(key: String, row: [String: ColumnValue])], olderBeforeMs: Int64?) {
        var events = try auditEvents(f, limit: Self.auditPageSize + 1)
        guard events.count > Self.auditPageSize else { return (events, nil) }
        let cut = events[Self.auditPageSize].row["at_ms"]?.integerValue ?? 0
        events.removeLast()
        let whole = events.filter { ($0.row["at_ms"]?.integerValue ?? 0) != cut }
        if !whole.isEmpty { events = whole }
        return (events, whole.isEmpty ? cut : whole.last?.row["at_ms"]?.integerValue)
    }

    func auditEvents(_ f: AuditFilter, limit: Int) throws(StaffError) -> [(key: String, row: [String: ColumnValue])] {
        var equal: [String: ColumnValue] = [:]
        if !f.staff.isEmpty { equal["staff"] = .text(f.staff) }
        if !f.patient.isEmpty { equal["patient"] = .text(f.patient) }
        if !f.action.isEmpty { equal["action"] = .text(f.action) }
        let to = [f.toMs, f.beforeMs].compactMap { $0 }.min()
        let range = f.fromMs == nil && to == nil ? nil : (column: "at_ms", from: f.fromMs.map { ColumnValue.integer($0) }, to: to.map { ColumnValue.integer($0) })
        // Newest first across every node's chain, by the time each event was recorded.
        do { return try desk.store.liveRows(AuditTrail.table, equal: equal, range: range, newestBy: "at_ms", limit: limit) } catch { throw .storeUnavailable }
    }

    static func shanghai(_ ms: Int64) -> String {
        guard let c = try? ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(ms) / 1000)) else { return "" }
        let seconds = ((ms / 1000) % 60 + 60) % 60
        return "\(c.date) \(c.time):\(seconds < 10 ? "0" : "")\(seconds)"
    }

    /// A CSV field, quoted when it must be, and never read as a formula by a spreadsheet.
    static func csvField(_ s: String) -> String {
        var v = s
        if let first = v.first, "=+-@".contains(first) { v = "'" + v }
        return v.contains(where: { ",\"\r\n".contains($0) }) ? "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : v
    }

    // MARK: Forms

    /// An urlencoded form body (at most `limitKiB`): each name with its values in order.
    static func form(_ request: Request, limitKiB: Int = 64) async throws(StaffError) -> [String: [String]] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limitKiB * 1024) } catch {
            throw StaffError(413, "request.too_large", zh: "表单过大（最多 \(limitKiB) KiB）。", en: "the form is too large (at most \(limitKiB) KiB).")
        }
        var fields: [String: [String]] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), let value = parts.count > 1 ? decode(parts[1]) : "" else {
                throw StaffError(400, "request.form", zh: "表单编码有误。", en: "the form is not properly encoded.")
            }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\r" && $0 != "\t" }) else {
                throw StaffError(400, "request.control_character", zh: "表单字段 \(name.prefix(30)) 含有控制字符。", en: "form field \(name.prefix(30)) contains control characters.")
            }
            fields[name, default: []].append(value)
        }
        return fields
    }
}

/// The auditor's filters, from the query string.
struct AuditFilter {
    var staff = "", patient = "", action = "", from = "", to = ""
    var fromMs: Int64?, toMs: Int64?
    /// A page of the auditor's view: events recorded before this instant (the older-page link).
    var beforeMs: Int64?

    init(_ request: Request) throws(StaffError) {
        let q = request.uri.queryParameters
        func value(_ name: String, _ limit: Int) throws(StaffError) -> String {
            let v = (q[name[...]].map { String($0) } ?? "").trimmingCharacters(in: .whitespaces)
            guard v.count <= limit, !v.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw StaffError(400, "audit.filter", zh: "筛选条件 \(name) 过长或含控制字符。", en: "filter \(name) is too long or contains control characters.")
            }
            return v
        }
        staff = try value("staff", 16).uppercased()
        patient = try value("patient", 64)
        action = try value("action", 40)
        from = try value("from", 10)
        to = try value("to", 10)
        func day(_ text: String, _ name: String) throws(StaffError) -> Int64? {
            guard !text.isEmpty else { return nil }
            do {
                let d = try CivilDate(parsing: text, field: name)
                return Int64(ShanghaiTime.instant(date: d, time: try LocalTime(minuteOfDay: 0)).timeIntervalSince1970 * 1000)
            } catch { throw .invalid(error) }
        }
        fromMs = try day(from, "from")
        toMs = try day(to, "to").map { $0 + 86_400_000 }
        let before = try value("before", 15)
        if !before.isEmpty {
            guard let ms = Int64(before), ms > 0 else {
                throw StaffError(400, "audit.filter", zh: "before 应为毫秒时间戳。", en: "before is a time in milliseconds.")
            }
            beforeMs = ms
        }
    }

    var fields: [String: String] { ["staff": staff, "patient": patient, "action": action, "from": from, "to": to] }

    var query: String { query(before: nil) }

    /// The filter as a query string, and the page (`before`) if given.
    func query(before: Int64?) -> String {
        let filtered = fields.sorted { $0.key < $1.key }.filter { !$0.value.isEmpty }
            .map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
        return (filtered + (before.map { ["before=\($0)"] } ?? [])).joined(separator: "&")
    }
}

/// What one answer is made of: its language, cookies to set and the signed-in person, if any.
struct PageAnswer {
    var lang: PageLanguage
    var node: String
    var cookies: [Cookie] = []
    var extraHeaders: [(HTTPField.Name, String)] = []
    var signedIn: (session: StaffSession, account: StaffAccount, csrf: String)?

    init(lang: PageLanguage, node: String) { self.lang = lang; self.node = node }

    func text(_ key: String) -> String { lang.texts[key] ?? "" }

    func values(title: String, message: StaffError? = nil) -> [String: Any] {
        var v: [String: Any] = ["lang": lang.htmlTag, "otherLang": lang.other.rawValue, "t": lang.texts, "title": title, "node": node]
        if let signedIn { v["signedIn"] = true; v["csrf"] = signedIn.csrf }
        if let message {
            v["message"] = ["code": message.code, "text": lang == .zh ? message.zh : message.en, "kind": message.status < 300 ? "info" : "error"]
        }
        return v
    }

    func headers(contentType: String) -> HTTPFields {
        var h = HTTPFields()
        h[.contentType] = contentType
        for (name, value) in StaffPages.securityHeaders + extraHeaders { h[name] = value }
        for c in cookies { h.append(HTTPField(name: .setCookie, value: c.description)) }
        return h
    }

    func html(_ body: String, status: Int = 200) -> Response {
        Response(status: .init(code: status), headers: headers(contentType: "text/html; charset=utf-8"), body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func asset(_ body: String, contentType: String) -> Response {
        Response(status: .ok, headers: headers(contentType: contentType), body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func redirect(_ location: String, clearing cookie: String? = nil) -> Response {
        var page = self
        if let cookie { page.cookies.append(Cookie(name: cookie, value: "", maxAge: 0, path: "/staff", secure: true, httpOnly: true, sameSite: .strict)) }
        var h = page.headers(contentType: "text/html; charset=utf-8")
        h[.location] = location
        return Response(status: .seeOther, headers: h)
    }

    func refusal(_ error: StaffError, _ renderer: PageRenderer) -> Response {
        html(renderer.render("refused", values(title: text("refusedTitle"), message: error)), status: error.status)
    }
}

/// The templates and the stylesheet, shipped as the module's resources.
struct PageRenderer: Sendable {
    let library: MustacheLibrary
    let stylesheet: String
    /// The waiting-room display's script (the pages allow no inline script).
    let displayScript: String
    /// The visit page's script: the diagnosis search as one types.
    let recordScript: String
    /// The pharmacy queue's script: fetches the queue again when the server says it changed.
    let pharmacyScript: String

    static func shipped() throws -> PageRenderer {
        guard let base = Bundle.module.resourceURL else {
            throw StaffError(500, "pages.missing", zh: "找不到页面模板（安装不完整）。", en: "the page templates are missing (an incomplete install).")
        }
        var library = MustacheLibrary()
        let folder = base.appendingPathComponent("Templates")
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where name.hasSuffix(".mustache") {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            try library.register(text, named: String(name.dropLast(".mustache".count)))
        }
        let css = try String(contentsOf: base.appendingPathComponent("Static/style.css"), encoding: .utf8)
        let script = try String(contentsOf: base.appendingPathComponent("Static/display.js"), encoding: .utf8)
        let record = try String(contentsOf: base.appendingPathComponent("Static/record.js"), encoding: .utf8)
        let pharmacy = try String(contentsOf: base.appendingPathComponent("Static/pharmacy.js"), encoding: .utf8)
        return PageRenderer(library: library, stylesheet: css, displayScript: script, recordScript: record, pharmacyScript: pharmacy)
    }

    func render(_ template: String, _ values: [String: Any]) -> String {
        library.render(values, withTemplate: template) ?? "<!DOCTYPE html><title>ClinicMesh</title><p>模板缺失 / template missing: \(template)</p>"
    }
}
