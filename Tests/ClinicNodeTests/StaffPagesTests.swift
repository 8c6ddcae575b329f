@testable import ClinicNode
import Crypto
import Domain
import Foundation
import GRDB
@testable import HTTPAPI
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Testing

// The staff pages through Hummingbird's router test support (no sockets), over a real replica in
// a temporary file, with scrypt at a low cost so that the sign-ins stay quick. The browser tests
// (Cluster/pages) drive the same pages through chromium on a real cluster.

@Suite("Staff pages and access (router, no sockets)")
struct StaffPagesTests {
    @Test func everyRouteDeclaresAnActionOfTheTableAndEveryActionHasARoute() throws {
        let rules = try AccessRules.shipped()
        let tableActions = Set(rules.actions.map(\.name))
        let routeActions = Set(StaffPages.routes.map(\.action)).subtracting(["public"])
        #expect(routeActions.subtracting(tableActions).isEmpty, "routes whose action RBAC.md lacks: \(routeActions.subtracting(tableActions))")
        #expect(tableActions.subtracting(routeActions).isEmpty, "RBAC.md actions no route takes: \(tableActions.subtracting(routeActions))")
        // Deny by default: a role with an empty cell, or no role at all, gets nothing.
        #expect(rules.scope(of: "staff.manage", for: [.doctor, .nurse]) == nil)
        #expect(rules.scope(of: "audit.read", for: []) == nil)
        #expect(rules.scope(of: "no.such.action", for: Set(StaffRole.allCases)) == nil)
        #expect(rules.scope(of: "staff.manage", for: [.hospitalAdmin]) == .all)
        // Every page action is on a home page, with a link.
        for a in rules.actions where !StaffPages.pageOnlyActions.contains(a.name) { #expect(StaffPages.actionPaths[a.name] != nil, "no home link for \(a.name)") }
    }

    @Test func aMalformedTableIsRefusedWithTheReason() {
        #expect(throws: ValidationError.self) { try AccessRules(markdown: "| action | 中文 | English | doctor |\n|---|---|---|---|\n| home | 首页 | Home | own |") }
        let roles = StaffRole.allCases.map(\.rawValue).joined(separator: " | ")
        let blanks = StaffRole.allCases.dropFirst().map { _ in "" }.joined(separator: " | ")
        #expect(throws: ValidationError.self) {
            try AccessRules(markdown: "| action | 中文 | English | \(roles) |\n|---|\n| home | 首页 | Home | everything | \(blanks) |")
        }
    }

    @Test func signInSessionsRolesCSRFAndSignOut() async throws {
        let f = try StaffFixture()
        try await f.add("N001", roles: ["doctor"], departments: ["neike"], practitioner: "neike-wang-jianguo")
        try await f.add("N101", roles: ["nurse"], departments: ["neike"])
        try await f.app.test(.router) { client in
            // Wrong password and unknown staff number: the same answer.
            let wrong = try await f.signIn(client, "N001", "not-the-password")
            let unknown = try await f.signIn(client, "X999", "not-the-password")
            #expect(wrong.status == .unauthorized && unknown.status == .unauthorized)
            #expect(wrong.code == "auth.wrong_credentials" && unknown.code == "auth.wrong_credentials")

            let doctor = try await f.signIn(client, "N001", StaffFixture.password)
            #expect(doctor.status == .seeOther && doctor.location == "/staff/")
            let cookie = try #require(doctor.session)
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in
                #expect(r.status == .ok)
                let html = String(buffer: r.body)
                #expect(html.contains("id=\"who\"") && html.contains("N001"))
                #expect(html.contains("data-action=\"schedule.own\""))
                #expect(!html.contains("data-action=\"staff.manage\""))
                #expect(!html.contains("<script"), "no script on a page")
                let csp = r.headers[.contentSecurityPolicy] ?? ""
                #expect(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"))
            }
            try await client.execute(uri: "/staff/schedule", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body).contains("id=\"schedule\""))
            }

            // A nurse is refused the doctor's page, and the refusal is audited.
            let nurse = try #require(try await f.signIn(client, "N101", StaffFixture.password).session)
            try await client.execute(uri: "/staff/schedule", method: .get, headers: [.cookie: "cm_staff=\(nurse)"]) { r in
                #expect(r.status == .forbidden)
                #expect(String(buffer: r.body).contains("data-code=\"access.denied\""))
            }
            let denied = try f.replica.liveRows("audit_event", equal: ["action": .text("access.denied"), "staff": .text("N101")], range: nil, newestBy: nil, limit: 10)
            #expect(denied.count == 1)

            // A post without the CSRF token changes nothing.
            try await client.execute(uri: "/staff/sign-out", method: .post, headers: [.cookie: "cm_staff=\(cookie)", .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "")) { r in
                #expect(r.status == .forbidden)
                #expect(String(buffer: r.body).contains("data-code=\"csrf.invalid\""))
            }
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in #expect(r.status == .ok) }

            // Forged: one character changed.
            var forged = Array(cookie)
            forged[5] = forged[5] == "0" ? "1" : "0"
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(String(forged))"]) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/staff/sign-in?reason=invalid")
            }
            try await client.execute(uri: "/staff/", method: .get) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/staff/sign-in")
            }

            // Signing out with the token ends the session (on every node: the row replicates).
            let csrf = f.desk.tokens.csrf(session: try #require(try? f.desk.session(cookie: cookie).session))
            try await client.execute(uri: "/staff/sign-out", method: .post, headers: [.cookie: "cm_staff=\(cookie)", .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(csrf)")) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/staff/sign-in?reason=signed_out")
            }
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in
                #expect(r.headers[.location] == "/staff/sign-in?reason=revoked")
            }
        }
    }

    @Test func fiveFailuresLockTheAccountEvenForTheRightPassword() async throws {
        let f = try StaffFixture()
        try await f.add("W401", roles: ["cashier"], departments: [])
        try await f.app.test(.router) { client in
            for _ in 0..<StaffDesk.lockAfterFailures {
                #expect(try await f.signIn(client, "W401", "wrong-password!").code == "auth.wrong_credentials")
            }
            let locked = try await f.signIn(client, "W401", StaffFixture.password)
            #expect(locked.status == .forbidden && locked.code == "auth.locked")
        }
        // Another node's failures count too: a row per node, summed.
        #expect(try f.desk.lockedUntil("W401") != nil)
        try await f.desk.resetPassword("W401", to: "a-new-password-1", by: "test")
        #expect(try f.desk.lockedUntil("W401") == nil, "a reset clears the lockout")
    }

    @Test func twoStepSignInTakesEachCodeOnceAndAResetTurnsItOff() async throws {
        let f = try StaffFixture()
        try await f.add("E301", roles: ["pharmacist"], departments: [])
        let session = try f.desk.session(cookie: try await f.desk.signIn(number: "E301", password: StaffFixture.password).cookie).session
        let secret = TwoStepCodes.newSecret()
        #expect(TwoStepCodes.authenticatorURL(secret: secret, staffNumber: "E301").contains("secret=\(TwoStepCodes.setupKey(secret: secret).filter { $0 != " " })"))
        let stale = TwoStepCodes.code(secret: secret, nowMs: f.desk.nowMs - 3_600_000)
        await #expect(throws: StaffError.self) { try await f.desk.enableTwoStep(session, password: StaffFixture.password, secret: secret, code: stale) }
        await #expect(throws: StaffError.self) {
            try await f.desk.enableTwoStep(session, password: "not-the-password", secret: secret, code: TwoStepCodes.code(secret: secret, nowMs: f.desk.nowMs))
        }
        #expect(try !f.desk.twoStepEnabled("E301"))
        try await f.desk.enableTwoStep(session, password: StaffFixture.password, secret: secret, code: TwoStepCodes.code(secret: secret, nowMs: f.desk.nowMs))
        #expect(try f.desk.twoStepEnabled("E301"))
        #expect(try f.replica.liveRow("staff_two_step", key: "E301")?["secret"]?.textValue == secret)

        f.clock.offsetMillis = 30_000  // the next step: the code used to turn it on is spent
        let code = TwoStepCodes.code(secret: secret, nowMs: f.desk.nowMs)
        try await f.app.test(.router) { client in
            let without = try await f.signIn(client, "E301", StaffFixture.password)
            #expect(without.status == .unauthorized && without.code == "auth.wrong_credentials" && without.session == nil)
            let with = try await f.signIn(client, "E301", StaffFixture.password, code: code)
            #expect(with.status == .seeOther && with.session != nil)
            let replayed = try await f.signIn(client, "E301", StaffFixture.password, code: code)
            #expect(replayed.code == "auth.wrong_credentials", "a code is taken once")
        }
        let wrongCodes = try f.replica.liveRows("audit_event", equal: ["staff": .text("E301"), "action": .text("staff.sign_in"), "outcome": .text("wrong_code")], range: nil, newestBy: nil, limit: 10)
        #expect(wrongCodes.count == 2)

        // A lost phone: the admin's reset turns two-step off with the password.
        try await f.desk.resetPassword("E301", to: "reset-by-admin-2", by: "test")
        #expect(try !f.desk.twoStepEnabled("E301"))
        try await f.app.test(.router) { client in
            let afterReset = try await f.signIn(client, "E301", "reset-by-admin-2")
            #expect(afterReset.location == "/staff/password")
        }
    }

    @Test func anExpiredSessionSaysSo() async throws {
        let f = try StaffFixture(idleSeconds: 10)
        try await f.add("E201", roles: ["registration_clerk"], departments: [])
        let cookie = try await f.desk.signIn(number: "E201", password: StaffFixture.password).cookie
        f.clock.offsetMillis = 11_000
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in
                #expect(r.headers[.location] == "/staff/sign-in?reason=expired")
            }
            try await client.execute(uri: "/staff/sign-in?reason=expired", method: .get) { r in
                #expect(String(buffer: r.body).contains("data-code=\"session.expired\""))
            }
        }
    }

    @Test func passwordsFollowTheRuleAndAResetMustBeChanged() async throws {
        let f = try StaffFixture()
        await #expect(throws: StaffError.self) { try await f.add("N002", password: "short", roles: ["doctor"], departments: ["neike"]) }
        await #expect(throws: StaffError.self) { try await f.add("N002ABCDEFG", password: "n002abcdefg", roles: ["doctor"], departments: ["neike"]) }
        await #expect(throws: StaffError.self) { try await f.add("N003", roles: ["surgeon"], departments: ["neike"]) }
        await #expect(throws: StaffError.self) { try await f.add("N004", roles: ["doctor"], departments: ["nowhere"]) }
        try await f.add("N005", roles: ["doctor"], departments: ["neike"])
        try await f.desk.resetPassword("N005", to: "reset-by-admin-1", by: "test")
        #expect(try f.desk.account("N005")?.mustChangePassword == true)
        try await f.app.test(.router) { client in
            let s = try await f.signIn(client, "N005", "reset-by-admin-1")
            #expect(s.location == "/staff/password")
            try await client.execute(uri: "/staff/", method: .get, headers: [.cookie: "cm_staff=\(s.session ?? "")"]) { r in
                #expect(r.headers[.location] == "/staff/password", "a reset password is changed before anything else")
            }
        }
    }

    @Test func aDoctorOpensOnlyTheirDepartmentsPatientsUntilBreakGlassWhichTheAuditSays() async throws {
        let f = try StaffFixture()
        try f.replica.write { w in _ = try w.insert("department", key: "waike", values: ["name": .text("外科"), "code": .text("Surgery")]) }
        try await f.add("N001", roles: ["doctor"], departments: ["neike"])
        try await f.add("W001", roles: ["doctor"], departments: ["waike"])
        try await f.add("N301", roles: ["pharmacist"], departments: ["neike"])
        let today = try ShanghaiTime.civil(of: Date()).date
        let resident = try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1950, month: 1, day: 1), sequence: 100)
        let key = try PatientKey(residentID: resident, clusterSecret: PatientDesk.patientKeySecret(dataKey: f.dataKey)).hex
        try f.replica.write { w in
            _ = try w.insert("patient", key: key, values: ["name": .text("赵一鸣"), "resident_id": .text(resident.value), "mobile": .text("13903111000"),
                                                           "sex": .text("male"), "birth_date": .text("1950-01-01")])
        }
        f.appointments.rows = [AppointmentRow(holdID: "h1", block: "waike-sun-lei/\(today)/morning", slot: 0, patient: key, department: "waike",
                                              practitioner: "waike-sun-lei", date: today.description, halfDay: "morning", status: "booked", epoch: 1)]
        try await f.app.test(.router) { client in
            let doctor = try #require(try await f.signIn(client, "N001", StaffFixture.password).session)
            let headers: HTTPFields = [.cookie: "cm_staff=\(doctor)"]
            try await client.execute(uri: "/staff/patients?resident_id=\(resident.value)", method: .get, headers: headers) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/staff/patients/\(key)")
            }
            try await client.execute(uri: "/staff/patients/\(key)", method: .get, headers: headers) { r in
                let html = String(buffer: r.body)
                #expect(r.status == .forbidden && html.contains("data-code=\"access.break_glass_required\"") && html.contains("id=\"break-glass\""))
                #expect(!html.contains("赵一鸣"), "nothing of the patient before break-glass")
            }
            let csrf = f.desk.tokens.csrf(session: try #require(try? f.desk.session(cookie: doctor).session))
            let form: HTTPFields = [.cookie: "cm_staff=\(doctor)", .contentType: "application/x-www-form-urlencoded"]
            try await client.execute(uri: "/staff/patients/\(key)/break-glass", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(csrf)&reason=short")) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("data-code=\"break_glass.reason\""))
            }
            let reason = "急诊会诊，需要查看既往就诊记录"
            let body = "csrf=\(csrf)&reason=\(reason.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
            try await client.execute(uri: "/staff/patients/\(key)/break-glass", method: .post, headers: form, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/staff/patients/\(key)")
            }
            try await client.execute(uri: "/staff/patients/\(key)", method: .get, headers: headers) { r in
                let html = String(buffer: r.body)
                #expect(r.status == .ok && html.contains("赵一鸣") && html.contains("id=\"break-glass-note\""))
                #expect(!html.contains(resident.value) && html.contains(resident.masked) && html.contains("139****1000"), "the identifiers are masked")
            }
            // The surgeon with the appointment opens the record without breaking glass; a pharmacist not at all.
            let surgeon = try #require(try await f.signIn(client, "W001", StaffFixture.password).session)
            try await client.execute(uri: "/staff/patients/\(key)", method: .get, headers: [.cookie: "cm_staff=\(surgeon)"]) { r in
                #expect(r.status == .ok && !String(buffer: r.body).contains("break-glass-note"))
            }
            let pharmacist = try #require(try await f.signIn(client, "N301", StaffFixture.password).session)
            try await client.execute(uri: "/staff/patients/\(key)", method: .get, headers: [.cookie: "cm_staff=\(pharmacist)"]) { r in
                #expect(r.status == .forbidden && String(buffer: r.body).contains("data-code=\"access.denied\""))
            }
        }
        let glass = try f.replica.liveRows("audit_event", equal: ["action": .text("patient.break_glass")], range: nil, newestBy: nil, limit: 10)
        #expect(glass.count == 1 && glass.first?.row["staff"] == .text("N001") && glass.first?.row["patient"] == .text(key)
                && glass.first?.row["detail"] == .text("急诊会诊，需要查看既往就诊记录"))
        let reads = try f.replica.liveRows("audit_event", equal: ["action": .text("patient.read"), "patient": .text(key)], range: nil, newestBy: nil, limit: 10)
        #expect(Set(reads.compactMap { $0.row["outcome"]?.textValue }) == ["denied", "ok_break_glass", "ok"])
    }

    @Test func theAdminResetsAPasswordFromThePageAndAnAddressIsSlowedDown() async throws {
        let f = try StaffFixture()
        try await f.add("ADM01", roles: ["hospital_admin"], departments: [])
        try await f.add("N101", roles: ["nurse"], departments: ["neike"])
        try await f.app.test(.router) { client in
            let admin = try #require(try await f.signIn(client, "ADM01", StaffFixture.password).session)
            let csrf = f.desk.tokens.csrf(session: try #require(try? f.desk.session(cookie: admin).session))
            let form: HTTPFields = [.cookie: "cm_staff=\(admin)", .contentType: "application/x-www-form-urlencoded"]
            try await client.execute(uri: "/staff/accounts/N101/reset-password", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(csrf)&password=short")) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("data-code=\"password.too_short\""))
            }
            try await client.execute(uri: "/staff/accounts/N101/reset-password", method: .post, headers: form,
                                     body: ByteBuffer(string: "csrf=\(csrf)&password=new-nurse-pass-1")) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/staff/accounts")
            }
            #expect(try f.desk.account("N101")?.mustChangePassword == true)
            #expect(try await f.signIn(client, "N101", "new-nurse-pass-1").location == "/staff/password")

            // Forty attempts from one address in a moment: the burst of 30 passes, then 429 with Retry-After.
            var limited = 0
            for _ in 0..<40 where try await f.signIn(client, "X404", "some-password-1").status == .tooManyRequests { limited += 1 }
            #expect(limited >= 5, "\(limited) of 40 rapid sign-ins were slowed down")
        }
    }

    @Test func theAuditorPagesThroughOlderEventsWithoutSkippingAny() async throws {
        let f = try StaffFixture()
        try await f.add("AUD01", roles: ["auditor"], departments: [])
        // 230 events, three to a millisecond: a page cut falls inside a millisecond.
        for i in 0..<230 {
            f.clock.offsetMillis = Int64(i / 3) - 1_000
            try f.desk.audit.record(AuditEvent(staff: "W101", action: "patient.read", resource: "patient/x", outcome: "ok", detail: "look \(i)"))
        }
        f.clock.offsetMillis = 0
        let cookie = try #require(try await f.desk.signIn(number: "AUD01", password: StaffFixture.password).cookie)
        try f.desk.audit.record(AuditEvent(staff: "W102", action: "patient.read", outcome: "ok", detail: "<b onclick=\"x\">'&'</b>"))
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/staff/audit?staff=W102", method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r in
                let html = String(buffer: r.body)
                #expect(html.contains("<td class=\"detail\">&lt;b onclick=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;</td>"), "a field is escaped")
                #expect(!html.contains("<b onclick"))
            }
        }
        let seen = try await f.app.test(.router) { client -> [String] in
            var seen: [String] = []
            var next: String? = "/staff/audit?staff=W101"
            while let uri = next {
                let (rows, older) = try await client.execute(uri: uri, method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { r -> ([String], String?) in
                    #expect(r.status == .ok)
                    let html = String(buffer: r.body)
                    let rows = html.components(separatedBy: "<td class=\"detail\">").dropFirst().map { String($0.prefix { $0 != "<" }) }
                    let older = html.components(separatedBy: "id=\"older\" href=\"").dropFirst().first
                        .map { String($0.prefix { $0 != "\"" }).replacingOccurrences(of: "&amp;", with: "&") }
                    return (rows, older)
                }
                #expect(rows.count <= StaffPages.auditPageSize)
                seen += rows
                next = older
            }
            return seen
        }
        #expect(seen.count == 230 && Set(seen).count == 230, "every event once, across the pages: \(seen.count) rows, \(Set(seen).count) distinct")
        #expect(seen.first == "look 229" && seen.last == "look 0", "newest first")
    }

    @Test func auditVerifyNamesARowEditedByHandInSQLite() async throws {
        let f = try StaffFixture()
        try await f.add("AUD01", roles: ["auditor"], departments: [])
        for i in 0..<20 { try f.desk.audit.record(AuditEvent(staff: "AUD01", action: "audit.read", resource: "audit", outcome: "ok", detail: "look \(i)")) }
        #expect(try AuditVerification.verify(f.replica, node: "n1").intact)
        let victim = AuditTrail.key(chain: f.desk.audit.chain, sequence: 7)
        let db = try DatabaseQueue(path: f.path)
        try await db.write { try $0.execute(sql: "UPDATE audit_event SET outcome = 'denied' WHERE id = ?", arguments: [victim]) }
        let answer = try AuditVerification.verify(f.replica, node: "n1")
        #expect(!answer.intact)
        #expect(answer.chains.first?.brokenAt == victim, "\(answer)")
        #expect(answer.chains.first?.reasonEn?.contains("changed") == true)
        // A removed row is a gap at the next one.
        try await db.write { try $0.execute(sql: "DELETE FROM audit_event WHERE id = ?", arguments: [AuditTrail.key(chain: f.desk.audit.chain, sequence: 3)]) }
        #expect(try AuditVerification.verify(f.replica, node: "n1").chains.first?.brokenAt == AuditTrail.key(chain: f.desk.audit.chain, sequence: 4))
    }
}

/// A staff desk and the pages over a replica in a temporary file.
struct StaffFixture {
    static let password = "correct-horse-1"
    let clock = NodeClock()
    let path: String
    let replica: Replica
    let desk: StaffDesk
    let app: Application<RouterResponder<PatientRequestContext>>
    let rota: RotaDesk
    let blocks = RecordedSessionBlocks()

    let dataKey = SymmetricKey(size: .bits256)
    let appointments = FixtureAppointments()

    init(idleSeconds: Int = 1800) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("staff-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = dir + "/replica.sqlite"
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: dataKey)
        replica = try Replica.open(path: path, node: "n1", schema: NodeSchema.schema, options: options)
        let store = ReplicaStore(replica: replica, signals: WriteSignals())
        try replica.write { w in _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("Internal Medicine")]) }
        let audit = try AuditTrail(store: store, node: "n1", incarnation: replica.origin.incarnation, clock: clock)
        desk = StaffDesk(store: store, clock: clock, node: "n1", dataKey: dataKey, hasher: PasswordHasher(logRounds: 10),
                         rules: try AccessRules.shipped(), audit: audit, idleSeconds: idleSeconds, logger: Logger(label: "staff-test"))
        let router = Router(context: PatientRequestContext.self)
        rota = RotaDesk(store: store, blocks: blocks, node: "n1", clock: clock)
        try StaffPages(desk: desk, appointments: appointments, rota: rota, logger: Logger(label: "staff-test")).add(to: router)
        app = Application(router: router)
    }

    func add(_ number: String, password: String = Self.password, roles: [String], departments: [String], practitioner: String = "") async throws {
        _ = try await desk.addAccount(number: number, name: "测试", roles: roles, departments: departments, practitioner: practitioner,
                                      password: password, mustChangePassword: false, by: "test")
    }

    struct SignIn { var status: HTTPResponse.Status; var code: String?; var location: String?; var session: String? }

    /// The sign-in form as a browser uses it: its pre-session cookie and CSRF token, then the post.
    func signIn(_ client: some TestClientProtocol, _ number: String, _ password: String, code: String = "") async throws -> SignIn {
        let (pre, csrf) = try await client.execute(uri: "/staff/sign-in", method: .get) { r -> (String, String) in
            let pre = Self.cookie("cm_pre", in: r.headers) ?? ""
            let html = String(buffer: r.body)
            let token = html.components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.prefix(while: { $0 != "\"" }) ?? ""
            return (pre, String(token))
        }
        let body = "csrf=\(csrf)&staff_number=\(number)&password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&code=\(code)"
        return try await client.execute(uri: "/staff/sign-in", method: .post,
                                        headers: [.cookie: "cm_pre=\(pre)", .contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: body)) { r in
            let html = String(buffer: r.body)
            let code = html.components(separatedBy: "data-code=\"").dropFirst().first.map { String($0.prefix(while: { $0 != "\"" })) }
            let session = Self.cookie("cm_staff", in: r.headers).flatMap { $0.isEmpty ? nil : $0 }
            return SignIn(status: r.status, code: code, location: r.headers[.location], session: session)
        }
    }

    static func cookie(_ name: String, in headers: HTTPFields) -> String? {
        for value in headers[values: .setCookie] where value.hasPrefix(name + "=") {
            return String(value.dropFirst(name.count + 1).prefix(while: { $0 != ";" }))
        }
        return nil
    }
}

/// Appointments by patient key, as a read model would give them.
final class FixtureAppointments: PatientAppointments, @unchecked Sendable {
    var rows: [AppointmentRow] = []
    func appointments(patient: String) throws -> [AppointmentRow] { rows.filter { $0.patient == patient } }
}
