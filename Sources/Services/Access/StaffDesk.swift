import Crypto
import Domain
import Foundation
import Logging
import ReplicatedCore
import ReplicatedStore

/// A refusal on the staff side: the HTTP status, a stable code, and what it means in both languages.
package struct StaffError: Error, Sendable, Equatable {
    package var status: Int
    package var code: String
    package var zh: String
    package var en: String

    package init(_ status: Int, _ code: String, zh: String, en: String) {
        self.status = status; self.code = code; self.zh = zh; self.en = en
    }

    package static let wrongCredentials = StaffError(401, "auth.wrong_credentials", zh: "工号、密码或动态验证码不正确（开启了两步验证的账户须填写验证码）。",
                                                     en: "wrong staff number, password or two-step code (an account with two-step sign-in needs its code).")
    package static let locked = StaffError(403, "auth.locked", zh: "连续登录失败次数过多，账户已锁定 15 分钟；请稍后再试，或请管理员重置密码。",
                                           en: "too many failed sign-ins: the account is locked for 15 minutes; try later, or ask an administrator to reset the password.")
    package static let disabled = StaffError(403, "auth.disabled", zh: "该账户已停用，请联系管理员。", en: "this account is disabled; contact an administrator.")
    package static let expired = StaffError(401, "session.expired", zh: "登录已因长时间无操作而失效，请重新登录。", en: "your session timed out after inactivity; please sign in again.")
    package static let invalid = StaffError(401, "session.invalid", zh: "登录凭据无效，请重新登录。", en: "the session is not valid; please sign in again.")
    package static let revoked = StaffError(401, "session.revoked", zh: "该登录已注销或被管理员撤销，请重新登录。", en: "this session was signed out or revoked; please sign in again.")
    package static let signedOut = StaffError(200, "session.signed_out", zh: "已退出登录。", en: "you have signed out.")
    package static let csrf = StaffError(403, "csrf.invalid", zh: "表单已失效或来源不明（缺少或错误的 CSRF 令牌），未做任何更改；请刷新页面后重试。",
                                         en: "the form is stale or did not come from this site (missing or wrong CSRF token); nothing was changed. Reload the page and try again.")
    package static let denied = StaffError(403, "access.denied", zh: "您的角色无权进行此操作。", en: "your role is not allowed to do this.")
    package static let storeUnavailable = StaffError(503, "store.unavailable", zh: "数据暂时无法读写，请稍后再试。", en: "the records cannot be read or written right now; try again shortly.")

    package static func invalid(_ e: ValidationError) -> StaffError { StaffError(400, e.code, zh: e.zh, en: e.en) }

    package static func rateLimited(retryAfterS: Int) -> StaffError {
        StaffError(429, "rate.limited", zh: "来自此地址的登录尝试过多，请 \(retryAfterS) 秒后再试。", en: "too many sign-in attempts from this address; try again in \(retryAfterS) s.")
    }
}

/// A staff account as the `staff` table holds it.
package struct StaffAccount: Sendable, Hashable {
    package var number: String
    package var name: String
    package var roles: Set<StaffRole>
    package var departments: [String]
    package var practitioner: String
    /// Prescribing rights beyond the ordinary, granted by the hospital (`PrescribingRight`).
    package var rights: Set<PrescribingRight>
    package var active: Bool
    package var mustChangePassword: Bool
    package var sessionsAfterMs: Int64
    package var passwordHash: String

    init(number: String, row: [String: ColumnValue]) {
        self.number = number
        name = row["name"]?.textValue ?? ""
        roles = Set((row["roles"]?.textValue ?? "").split(separator: ",").compactMap { StaffRole(rawValue: String($0)) })
        departments = (row["departments"]?.textValue ?? "").split(separator: ",").map(String.init)
        practitioner = row["practitioner"]?.textValue ?? ""
        rights = Set((row["rights"]?.textValue ?? "").split(separator: ",").compactMap { PrescribingRight(rawValue: String($0)) })
        active = (row["active"]?.integerValue ?? 0) == 1
        mustChangePassword = (row["must_change_password"]?.integerValue ?? 0) == 1
        sessionsAfterMs = row["sessions_after_ms"]?.integerValue ?? 0
        passwordHash = row["password_hash"]?.textValue ?? ""
    }

    package var sortedRoles: [StaffRole] { roles.sorted() }
}

/// Staff accounts, sign-in and sessions on one node, over the replicated store; every sign-in and
/// every change of an account is an audit event.
package final class StaffDesk: Sendable {
    package static let lockAfterFailures = 5
    package static let lockWindowMs: Int64 = 15 * 60_000

    package let store: any RecordStore
    package let clock: NodeClock
    package let node: String
    package let tokens: StaffTokens
    package let hasher: PasswordHasher
    package let rules: AccessRules
    package let audit: AuditTrail
    package let idleMs: Int64
    /// `patient.read` in `dept` scope: an appointment in the staff member's department this many
    /// days either side of today.
    package let careWindowDays: Int
    let patientKeySecret: SymmetricKey
    let logger: Logger

    package init(store: any RecordStore, clock: NodeClock, node: String, dataKey: SymmetricKey, hasher: PasswordHasher = PasswordHasher(),
                 rules: AccessRules, audit: AuditTrail, idleSeconds: Int, careWindowDays: Int = 30, logger: Logger) {
        self.store = store; self.clock = clock; self.node = node; self.hasher = hasher; self.rules = rules; self.audit = audit
        tokens = StaffTokens(dataKey: dataKey)
        patientKeySecret = PatientDesk.patientKeySecret(dataKey: dataKey)
        idleMs = Int64(idleSeconds) * 1000
        self.careWindowDays = careWindowDays
        self.logger = logger
    }

    package var nowMs: Int64 { clock.wallMillis() }

    // MARK: Accounts

    package func account(_ number: String) throws(StaffError) -> StaffAccount? {
        do { return try store.liveRow("staff", key: number).map { StaffAccount(number: number, row: $0) } } catch { throw .storeUnavailable }
    }

    package func accounts() throws(StaffError) -> [StaffAccount] {
        do { return try store.liveRows("staff").map { StaffAccount(number: $0.key, row: $0.value) }.sorted { $0.number < $1.number } } catch { throw .storeUnavailable }
    }

    /// A new account. `by`: who made it (a staff number, or the admin certificate's name).
    package func addAccount(number: String, name: String, roles: [String], departments: [String], practitioner: String = "",
                            password: String, mustChangePassword: Bool, by: String) async throws(StaffError) -> StaffAccount {
        let staff: StaffNumber, cleanName: String
        do {
            staff = try StaffNumber(number)
            cleanName = try StaffName.check(name)
            try StaffPasswordRule.check(password, staffNumber: staff)
        } catch { throw .invalid(error) }
        var parsedRoles: Set<StaffRole> = []
        for r in roles {
            guard let role = StaffRole(rawValue: r.trimmingCharacters(in: .whitespaces)) else {
                throw StaffError(400, "staff.role_unknown", zh: "未知角色 \(r.prefix(40))；可选：\(StaffRole.allCases.map(\.rawValue).joined(separator: "、"))。",
                                 en: "unknown role \(r.prefix(40)); one of: \(StaffRole.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            parsedRoles.insert(role)
        }
        guard !parsedRoles.isEmpty else { throw StaffError(400, "staff.role_missing", zh: "请至少选择一个角色。", en: "choose at least one role.") }
        let depts = try checkedDepartments(departments)
        if parsedRoles.contains(where: { [.doctor, .nurse, .departmentHead].contains($0) }), depts.isEmpty {
            throw StaffError(400, "staff.department_missing", zh: "医生、护士和科室主任须属于至少一个科室。", en: "doctors, nurses and department heads belong to at least one department.")
        }
        let hash: String
        do { hash = try await hasher.hash(password) } catch { throw .storeUnavailable }
        let values: [String: ColumnValue] = [
            "name": .text(cleanName), "roles": .text(parsedRoles.sorted().map(\.rawValue).joined(separator: ",")),
            "departments": .text(depts.joined(separator: ",")), "practitioner": .text(practitioner), "active": .integer(1),
            "password_hash": .text(hash), "must_change_password": .integer(mustChangePassword ? 1 : 0), "sessions_after_ms": .integer(0),
        ]
        let created: Bool
        do {
            created = try store.write { w -> Bool in
                guard try store.liveRow("staff", key: staff.rawValue) == nil else { return false }
                _ = try w.insert("staff", key: staff.rawValue, values: values)
                return true
            }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: by, action: "staff.add", resource: "staff/\(staff.rawValue)", outcome: created ? "ok" : "exists"))
        guard created else { throw StaffError(409, "staff.exists", zh: "工号 \(staff.rawValue) 已存在。", en: "staff number \(staff.rawValue) already exists.") }
        return StaffAccount(number: staff.rawValue, row: values)
    }

    private func checkedDepartments(_ departments: [String]) throws(StaffError) -> [String] {
        var out: [String] = []
        for d in departments.map({ $0.trimmingCharacters(in: .whitespaces) }).filter({ !$0.isEmpty }) {
            let known: Bool
            do { known = try store.liveRow("department", key: d) != nil } catch { throw .storeUnavailable }
            guard known else {
                throw StaffError(400, "staff.department_unknown", zh: "没有科室 \(d.prefix(40))（请填科室代码，如 neike）。", en: "there is no department \(d.prefix(40)) (give its code, such as neike).")
            }
            if !out.contains(d) { out.append(d) }
        }
        return out
    }

    /// Disables an account: it cannot sign in, and its sessions end on every node.
    package func disable(_ number: String, by: String) throws(StaffError) {
        guard let a = try account(number) else { throw StaffError(404, "staff.unknown", zh: "没有这个工号。", en: "there is no such staff number.") }
        do {
            try store.write { w in _ = try w.update("staff", key: a.number, values: ["active": .integer(0), "sessions_after_ms": .integer(nowMs)]) }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: by, action: "staff.disable", resource: "staff/\(a.number)", outcome: "ok"))
    }

    /// Grants exactly these prescribing rights (none: all withdrawn); audited.
    package func setRights(_ number: String, _ rights: Set<PrescribingRight>, by: String) throws(StaffError) {
        guard let a = try account(number) else { throw StaffError(404, "staff.unknown", zh: "没有这个工号。", en: "there is no such staff number.") }
        let text = rights.map(\.rawValue).sorted().joined(separator: ",")
        do {
            try store.write { w in _ = try w.update("staff", key: a.number, values: ["rights": .text(text)]) }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: by, action: "staff.rights", resource: "staff/\(a.number)", outcome: "ok", detail: text))
    }

    /// Sets a new password that must be changed at the next sign-in; ends the account's sessions,
    /// clears its lockout and turns two-step sign-in off (a reset is how a lost phone is replaced).
    package func resetPassword(_ number: String, to password: String, by: String) async throws(StaffError) {
        guard let a = try account(number) else { throw StaffError(404, "staff.unknown", zh: "没有这个工号。", en: "there is no such staff number.") }
        do { try StaffPasswordRule.check(password, staffNumber: try StaffNumber(a.number)) } catch { throw .invalid(error) }
        let hash: String
        do { hash = try await hasher.hash(password) } catch { throw .storeUnavailable }
        do {
            try store.write { w in
                _ = try w.update("staff", key: a.number, values: ["password_hash": .text(hash), "must_change_password": .integer(1),
                                                                   "active": .integer(1), "sessions_after_ms": .integer(nowMs)])
                try clearFailures(a.number, w)
                if try store.liveRow(Self.twoStepTable, key: a.number) != nil {
                    _ = try w.update(Self.twoStepTable, key: a.number, values: ["secret": .null, "enabled_ms": .integer(0)])
                }
            }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: by, action: "staff.reset_password", resource: "staff/\(a.number)", outcome: "ok"))
    }

    /// The signed-in person's account, once `password` proves it is them (a wrong one is audited
    /// under `action`).
    private func accountForSecurityChange(_ session: StaffSession, password: String, action: String) async throws(StaffError) -> StaffAccount {
        guard let a = try account(session.staff) else { throw StaffError.revoked }
        guard await hasher.verify(String(password.prefix(StaffPasswordRule.maximumLength)), against: a.passwordHash) else {
            try record(AuditEvent(staff: a.number, role: roleText(a), action: action, resource: "staff/\(a.number)", outcome: "wrong_credentials"))
            throw StaffError(400, "password.current_wrong", zh: "当前密码不正确。", en: "the current password is wrong.")
        }
        return a
    }

    /// The signed-in person changes their own password; their other sessions end.
    package func changePassword(_ session: StaffSession, current: String, new: String) async throws(StaffError) -> String {
        let a = try await accountForSecurityChange(session, password: current, action: "staff.change_password")
        do { try StaffPasswordRule.check(new, staffNumber: try StaffNumber(a.number)) } catch { throw .invalid(error) }
        guard new != current else { throw StaffError(400, "password.unchanged", zh: "新密码不能与当前密码相同。", en: "the new password must differ from the current one.") }
        let hash: String
        do { hash = try await hasher.hash(new) } catch { throw .storeUnavailable }
        let now = nowMs
        do {
            try store.write { w in
                _ = try w.update("staff", key: a.number, values: ["password_hash": .text(hash), "must_change_password": .integer(0), "sessions_after_ms": .integer(now)])
            }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: a.number, action: "staff.change_password", resource: "staff/\(a.number)", outcome: "ok"))
        return tokens.cookie(StaffSession(staff: a.number, id: StaffTokens.newSessionID(), issuedAtMs: now, expiresAtMs: now + idleMs))
    }

    // MARK: Sign-in

    /// Checks a staff number, password and, for an account with two-step sign-in, its code. The
    /// answer, and the time it takes, are the same for an unknown number as for a wrong password:
    /// both cost one scrypt derivation; a wrong code gets the same answer and counts as a failure.
    package func signIn(number: String, password: String, code: String = "") async throws(StaffError) -> (cookie: String, account: StaffAccount) {
        let staff = try? StaffNumber(number)
        let found = try staff.flatMap { s throws(StaffError) in try account(s.rawValue) }
        let who = staff?.rawValue ?? "-"
        if let found, try lockedUntil(found.number) != nil {
            try record(AuditEvent(staff: who, action: "staff.sign_in", outcome: "locked"))
            throw StaffError.locked
        }
        let matches = await hasher.verify(String(password.prefix(StaffPasswordRule.maximumLength)), against: found?.passwordHash ?? hasher.decoy())
        guard let account = found, matches else {
            if let found { try countFailure(found.number) }
            try record(AuditEvent(staff: who, action: "staff.sign_in", outcome: "wrong_credentials"))
            throw StaffError.wrongCredentials
        }
        guard account.active else {
            try record(AuditEvent(staff: who, role: roleText(account), action: "staff.sign_in", outcome: "disabled"))
            throw StaffError.disabled
        }
        guard try takeTwoStepCode(account.number, code) else {
            try countFailure(account.number)
            try record(AuditEvent(staff: who, role: roleText(account), action: "staff.sign_in", outcome: "wrong_code"))
            throw StaffError.wrongCredentials
        }
        // A success does not clear the failures: they lapse 15 minutes after their first, so that a
        // node that has not yet heard of another node's failures cannot wipe them out.
        try record(AuditEvent(staff: who, role: roleText(account), action: "staff.sign_in", outcome: "ok"))
        let now = nowMs
        let session = StaffSession(staff: account.number, id: StaffTokens.newSessionID(), issuedAtMs: now, expiresAtMs: now + idleMs)
        return (tokens.cookie(session), account)
    }

    /// Until when the account is locked, counting every node's failures; nil: not locked.
    package func lockedUntil(_ number: String) throws(StaffError) -> Int64? {
        let rows: [(key: String, row: [String: ColumnValue])]
        do { rows = try signInRows(number) } catch { throw .storeUnavailable }
        let now = nowMs
        var failures = 0
        var until: Int64 = 0
        for r in rows {
            let start = r.row["window_start_ms"]?.integerValue ?? 0
            until = max(until, r.row["locked_until_ms"]?.integerValue ?? 0)
            if now - start < Self.lockWindowMs {
                failures += Int(r.row["failures"]?.integerValue ?? 0)
                until = max(until, failures >= Self.lockAfterFailures ? start + Self.lockWindowMs : 0)
            }
        }
        return until > now ? until : nil
    }

    /// Counts a failure in this node's row; the one that reaches the limit (across every node's
    /// rows as this node sees them) locks the account for the full 15 minutes from now.
    private func countFailure(_ number: String) throws(StaffError) {
        let key = "\(number)/\(node)"
        let now = nowMs
        do {
            try store.write { w in
                let rows = try signInRows(number)
                let row = rows.first { $0.key == key }?.row
                let start = row?["window_start_ms"]?.integerValue ?? 0
                let fresh = now - start >= Self.lockWindowMs
                let failures = fresh ? 1 : (row?["failures"]?.integerValue ?? 0) + 1
                var values: [String: ColumnValue] = ["staff": .text(number), "node": .text(node), "failures": .integer(failures),
                                                     "window_start_ms": .integer(fresh ? now : start)]
                let others = rows.filter { $0.key != key && now - ($0.row["window_start_ms"]?.integerValue ?? 0) < Self.lockWindowMs }
                    .reduce(0) { $0 + ($1.row["failures"]?.integerValue ?? 0) }
                if failures + others >= Int64(Self.lockAfterFailures) { values["locked_until_ms"] = .integer(now + Self.lockWindowMs) }
                if row == nil { _ = try w.insert("staff_sign_in", key: key, values: values) } else { _ = try w.update("staff_sign_in", key: key, values: values) }
            }
        } catch { throw .storeUnavailable }
    }

    /// The account's failure rows, one per node that counted failures.
    private func signInRows(_ number: String) throws -> [(key: String, row: [String: ColumnValue])] {
        try store.liveRows("staff_sign_in", equal: ["staff": .text(number)], range: nil, newestBy: nil, limit: 1_000)
    }

    private func clearFailures(_ number: String, _ w: LocalWriter) throws {
        for r in try signInRows(number)
        where (r.row["failures"]?.integerValue ?? 0) != 0 || (r.row["locked_until_ms"]?.integerValue ?? 0) != 0 {
            _ = try w.update("staff_sign_in", key: r.key, values: ["failures": .integer(0), "locked_until_ms": .integer(0)])
        }
    }

    // MARK: Two-step sign-in

    static let twoStepTable = "staff_two_step"

    /// Two-step is on while the row holds a secret.
    static func twoStepOn(_ row: [String: ColumnValue]) -> Bool { row["secret"]?.textValue != nil }

    /// Whether the account signs in with a code as well as its password.
    package func twoStepEnabled(_ number: String) throws(StaffError) -> Bool {
        do { return try store.liveRow(Self.twoStepTable, key: number).map(Self.twoStepOn) ?? false } catch { throw .storeUnavailable }
    }

    /// The staff numbers that have two-step sign-in on.
    package func twoStepAccounts() throws(StaffError) -> Set<String> {
        do { return Set(try store.liveRows(Self.twoStepTable).filter { Self.twoStepOn($0.value) }.keys) } catch { throw .storeUnavailable }
    }

    /// True if the account has no two-step sign-in, or `code` is valid now and newer than the last
    /// one taken (which it then becomes).
    private func takeTwoStepCode(_ number: String, _ code: String) throws(StaffError) -> Bool {
        let now = nowMs
        guard try twoStepEnabled(number) else { return true }
        do {
            return try store.write { w -> Bool in
                guard let row = try store.liveRow(Self.twoStepTable, key: number), let secret = row["secret"]?.textValue else { return true }
                guard let step = TwoStepCodes.matchingStep(code: code, secret: secret, nowMs: now),
                      step > (row["last_step"]?.integerValue ?? 0) else { return false }
                _ = try w.update(Self.twoStepTable, key: number, values: ["last_step": .integer(step)])
                return true
            }
        } catch { throw .storeUnavailable }
    }

    /// Turns two-step sign-in on with a secret the person's app now holds: their password, and a
    /// code from the app, prove both.
    package func enableTwoStep(_ session: StaffSession, password: String, secret: String, code: String) async throws(StaffError) {
        let a = try await accountForSecurityChange(session, password: password, action: "staff.two_step_on")
        guard TwoStepCodes.isWellFormed(secret) else {
            throw StaffError(400, "two_step.secret_invalid", zh: "密钥无效，请重新打开两步验证页面。", en: "the secret is not valid; open the two-step page again.")
        }
        guard let step = TwoStepCodes.matchingStep(code: code, secret: secret, nowMs: nowMs) else {
            try record(AuditEvent(staff: a.number, role: roleText(a), action: "staff.two_step_on", resource: "staff/\(a.number)", outcome: "wrong_code"))
            throw StaffError(400, "two_step.code_wrong", zh: "验证码不正确：请确认手机时间准确，并输入验证器当前显示的 6 位数字。",
                             en: "the code is wrong: check the phone's clock and type the 6 digits the app shows now.")
        }
        let values: [String: ColumnValue] = ["secret": .text(secret), "enabled_ms": .integer(nowMs), "last_step": .integer(step)]
        do {
            try store.write { w in _ = try w.upsert(Self.twoStepTable, key: a.number, values: values) }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: a.number, role: roleText(a), action: "staff.two_step_on", resource: "staff/\(a.number)", outcome: "ok"))
    }

    /// Turns two-step sign-in off (the password proves it is the person).
    package func disableTwoStep(_ session: StaffSession, password: String) async throws(StaffError) {
        let a = try await accountForSecurityChange(session, password: password, action: "staff.two_step_off")
        do {
            try store.write { w in
                guard try store.liveRow(Self.twoStepTable, key: a.number) != nil else { return }
                _ = try w.update(Self.twoStepTable, key: a.number, values: ["secret": .null, "enabled_ms": .integer(0)])
            }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: a.number, role: roleText(a), action: "staff.two_step_off", resource: "staff/\(a.number)", outcome: "ok"))
    }

    // MARK: Sessions

    /// The session a cookie stands for, with a renewed cookie when its idle deadline should move;
    /// refused if forged, expired, signed out, revoked by a disable or reset, or the account is gone.
    package func session(cookie: String?) throws(StaffError) -> (session: StaffSession, account: StaffAccount, renewed: String?) {
        guard let cookie, !cookie.isEmpty else { throw StaffError.invalid }
        let now = nowMs
        switch tokens.check(cookie, nowMs: now) {
        case .invalid: throw StaffError.invalid
        case .expired: throw StaffError.expired
        case .valid(let s):
            guard let a = try account(s.staff), a.active, s.issuedAtMs >= a.sessionsAfterMs else { throw StaffError.revoked }
            let ended: Bool
            do { ended = try store.liveRow("staff_session_end", key: s.id) != nil } catch { throw .storeUnavailable }
            if ended { throw StaffError.revoked }
            // The idle deadline moves with use; the cookie is renewed at most once a minute (or a
            // quarter of the idle time, if that is shorter).
            var renewed: String?
            if s.expiresAtMs - now <= idleMs - min(60_000, idleMs / 4) {
                var next = s
                next.expiresAtMs = now + idleMs
                renewed = tokens.cookie(next)
            }
            return (s, a, renewed)
        }
    }

    /// Ends a session on every node (the row replicates; each node refuses it once it has it).
    package func signOut(_ s: StaffSession) throws(StaffError) {
        do { try store.write { w in _ = try w.insert("staff_session_end", key: s.id, values: ["staff": .text(s.staff), "ended_ms": .integer(nowMs)]) } } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: s.staff, action: "staff.sign_out", outcome: "ok"))
    }

    // MARK: Access and audit

    /// Whether the account may take `action` (`RBAC.md`); a refusal is itself an audit event.
    package func authorize(_ account: StaffAccount, action: String, resource: String) throws(StaffError) {
        guard rules.scope(of: action, for: account.roles) != nil else {
            try record(AuditEvent(staff: account.number, role: roleText(account), action: "access.denied", resource: resource, outcome: "denied", detail: action))
            throw StaffError.denied
        }
    }

    package func record(_ e: AuditEvent) throws(StaffError) {
        do { try audit.record(e) } catch {
            logger.error("审计事件写入失败 / audit event not written", metadata: ["audit.action": "\(e.action)", "audit.error": "\(error)"])
            throw .storeUnavailable
        }
    }

    package func roleText(_ a: StaffAccount) -> String { a.sortedRoles.map(\.rawValue).joined(separator: ",") }
}
