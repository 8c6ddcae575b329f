import Consensus
import Crypto
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
import Synchronization

/// A refusal the patient reads: an HTTP status, a stable code, Chinese first, English too.
public struct PatientError: Error, Codable, Sendable, Hashable {
    public var status: Int
    public var code: String
    public var zh: String
    public var en: String
    /// Seconds a client should wait before asking again (the `Retry-After` header), if any.
    public var retryAfterS: Int? = nil

    package init(_ status: Int, _ code: String, zh: String, en: String, retryAfterS: Int? = nil) {
        self.status = status; self.code = code; self.zh = zh; self.en = en; self.retryAfterS = retryAfterS
    }

    package init(_ v: ValidationError) { self.init(400, v.code, zh: v.zh, en: v.en) }

    package enum CodingKeys: String, CodingKey { case status, code, zh = "message_zh", en = "message_en" }

    package static let unauthorized = PatientError(401, "auth.required", zh: "请先用身份证号和手机验证码登录。",
                                           en: "sign in first with your resident ID and the code sent to your mobile.")
    package static func rateLimited(retryAfterS: Int) -> PatientError {
        PatientError(429, "rate.limited", zh: "请求过于频繁，请 \(retryAfterS) 秒后再试。", en: "too many requests; please try again in \(retryAfterS) s.",
                     retryAfterS: retryAfterS)
    }
    package static func otpRateLimited(retryAfterS: Int) -> PatientError {
        PatientError(429, "otp.rate_limited", zh: "该手机号获取验证码过于频繁，请 \(retryAfterS) 秒后再试。",
                     en: "codes were requested too often for this mobile; try again in \(retryAfterS) s.", retryAfterS: retryAfterS)
    }
    package static let busy = PatientError(503, "server.busy", zh: "本节点正忙，请一秒后重试（同一请求号不会重复预约）。",
                                   en: "this node is busy; retry in a second (the same request id never books twice).", retryAfterS: 1)
    /// One answer whether the name or the mobile differs, and nothing of the record shown: an ID
    /// number alone must not tell a stranger the registered name or mobile.
    package static let notOnRecord = PatientError(
        403, "identity.not_on_record",
        zh: "姓名或手机号与该身份证号的登记信息不一致。验证码只发送到登记的手机号：请核对姓名和手机号后重试；如已更换手机号，请携带身份证到挂号窗口办理变更。",
        en: "the name or mobile does not match what is registered for this resident ID. Codes go only to the registered mobile: check both and try again; if you have changed your mobile, bring your ID card to a registration desk to change it.")
    package static let notFound = PatientError(404, "appointment.not_found", zh: "找不到该预约（如刚刚预约，请稍后再查）。",
                                       en: "no such appointment (if you just booked it, look again in a moment).")
    package static let timeout = PatientError(503, "lease.timeout", zh: "集群未在时限内给出结果；请用同一请求号重试，不会重复预约。",
                                      en: "the cluster gave no outcome in time; retry with the same request id, it never books twice.")

    /// The booking primitive's refusals, with the HTTP status a client can switch on.
    package static func refused(_ r: RefuseReason) -> PatientError {
        let (code, zh, en) = r.words
        let status: Int
        switch r {
        case .noHolder, .notHolder, .quotaUnavailable: status = 503
        case .slotTaken, .released, .requestMismatch, .notBooked: status = 409
        case .noSuchSlot, .unknownRequest: status = 404
        case .notYetOpen, .banned: status = 403
        case .quotaExceeded: status = 409
        case .holdExpired: status = 410
        case .sessionClosed, .alreadyArrived, .queueChanged, .queueEmpty: status = 409
        case .noAppointment: status = 404
        case .stockShort, .batchExpired, .unknownBatch, .batchMismatch, .alreadyDispensed, .notDispensed, .returnTooMuch: status = 409
        }
        return PatientError(status, code, zh: zh, en: en)
    }
}

/// The patient side of one node: sign-in codes and sessions, the rate limits, the SMS outbox.
package final class PatientDesk: Sendable {
    package let config: PatientConfig
    package let store: any RecordStore
    package let clock: NodeClock
    package let tokens: SessionTokens
    package let codes = OneTimeCodes()
    package let perAddress: RateLimiter
    package let perMobile: RateLimiter
    package let inFlight: InFlightLimit
    package let outbox: SMSOutbox
    package let sender: any SMSSender
    package let patientKeySecret: SymmetricKey

    /// `smsFile`: where the file sender writes (the config's `sms_file`, resolved against the data directory).
    package init(config: PatientConfig, dataDir: String, smsFile: String, dataKey: SymmetricKey, store: any RecordStore, clock: NodeClock) throws {
        self.config = config
        self.store = store
        self.clock = clock
        tokens = SessionTokens(dataKey: dataKey)
        perAddress = RateLimiter(burst: config.perAddressBurst, perSecond: config.perAddressPerSecond)
        inFlight = InFlightLimit(limit: config.maxInFlight)
        perMobile = RateLimiter(burst: config.otpPerMobileBurst, perSecond: 1 / Double(config.otpPerMobileEverySeconds))
        outbox = try SMSOutbox(path: (dataDir as NSString).appendingPathComponent("outbox.sqlite"))
        if config.smsSender == "webhook", let url = config.smsWebhookURL.flatMap(URL.init(string:)) {
            sender = WebhookSMSSender(url: url)
        } else {
            sender = FileSMSSender(path: smsFile)
        }
        patientKeySecret = Self.patientKeySecret(dataKey: dataKey)
    }

    /// The cluster secret patient keys are HMACs under (`PatientKey`), derived from the data key.
    package static func patientKeySecret(dataKey: SymmetricKey) -> SymmetricKey {
        SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data("clinicmesh patient key v1".utf8), using: dataKey))
    }

    /// The session behind a bearer token, if it is valid now.
    package func session(token: String) -> PatientSession? { tokens.verify(token, nowMs: clock.wallMillis()) }
}

// MARK: - Requests and answers (JSON, snake_case)

package struct CodeRequest: Codable, Sendable {
    package var name: String
    package var residentID: String
    package var mobile: String
    package enum CodingKeys: String, CodingKey { case name, residentID = "resident_id", mobile }
}

package struct SignInRequest: Codable, Sendable {
    package var residentID: String
    package var mobile: String
    package var code: String
    package enum CodingKeys: String, CodingKey { case residentID = "resident_id", mobile, code }
}

package struct SignInAnswer: Codable, Sendable {
    package var token: String
    package var patient: String
    package var expiresAtMs: Int64
    package enum CodingKeys: String, CodingKey { case token, patient, expiresAtMs = "expires_at_ms" }
}

// MARK: - The operations

extension PatientDesk {
    package var nowMs: Int64 { clock.wallMillis() }

    /// Sends a sign-in code by SMS (after the rate limits and the real-name checks). A resident ID
    /// already registered gets its code only at the mobile on record, and only with the name on
    /// record: a name and an ID number are no secret, and the code is what signs in as that patient.
    package func requestCode(_ r: CodeRequest) throws(PatientError) -> Int {
        let id: ResidentID, mobile: MobileNumber, name: String
        do throws(ValidationError) {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(nowMs) / 1000)).date
            id = try ResidentID(r.residentID, today: today, field: "resident_id")
            mobile = try MobileNumber(r.mobile, field: "mobile")
            name = try Patient(name: r.name, sex: id.sex, birthDate: id.birthDate, residentID: id, mobile: mobile).name
        } catch { throw PatientError(error) }
        if let wait = perMobile.take(mobile.digits, nowNanos: clock.monotonicNanos()) {
            throw PatientError.otpRateLimited(retryAfterS: wait)
        }
        let key = try patientKey(id)
        if let existing = try registeredPatient(key), !Self.sameName(existing, name) || existing["mobile"]?.text != mobile.digits {
            throw PatientError.notOnRecord
        }
        let code = codes.issue(name: name, residentID: id, mobile: mobile, nowMs: nowMs,
                                    ttlMs: Int64(config.otpTTLSeconds) * 1000, tries: config.otpMaxTries)
        let minutes = max(1, config.otpTTLSeconds / 60)
        let message = SMSMessage(
            id: "code:" + UUID().uuidString.lowercased(), kind: "code", mobile: mobile.digits,
            text: "【ClinicMesh】验证码 \(code)，\(minutes) 分钟内有效，请勿告诉他人。Your ClinicMesh code is \(code), valid for \(minutes) minutes; never share it.")
        do { try outbox.enqueue(message, nowMs: nowMs) } catch {
            throw PatientError(503, "sms.unavailable", zh: "短信暂时无法发送，请稍后再试。", en: "SMS cannot be sent right now; please try again shortly.")
        }
        return config.otpTTLSeconds
    }

    /// Trades a right code for a session token; registers the patient on first sign-in. Never
    /// changes a registered patient's name or mobile.
    package func signIn(_ r: SignInRequest) throws(PatientError) -> SignInAnswer {
        let id: ResidentID, mobile: MobileNumber
        do throws(ValidationError) {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(nowMs) / 1000)).date
            id = try ResidentID(r.residentID, today: today, field: "resident_id")
            mobile = try MobileNumber(r.mobile, field: "mobile")
        } catch { throw PatientError(error) }
        let (check, entry) = codes.check(residentID: id, mobile: mobile, code: r.code, nowMs: nowMs)
        switch check {
        case .ok: break
        case .wrong(let left):
            throw PatientError(401, "otp.wrong", zh: "验证码不正确，还可尝试 \(left) 次。", en: "the code is wrong; \(left) tries left.")
        case .expired:
            throw PatientError(401, "otp.expired", zh: "验证码已过期，请重新获取。", en: "the code has expired; request a new one.")
        case .exhausted:
            throw PatientError(401, "otp.exhausted", zh: "验证码错误次数过多，已作废，请重新获取。", en: "too many wrong tries; the code is void, request a new one.")
        case .unknown:
            throw PatientError(401, "otp.unknown", zh: "没有待验证的验证码，请先获取验证码（须在同一节点）。",
                               en: "no code is waiting for this resident ID and mobile; request one first (on the same node).")
        }
        guard let entry else { throw PatientError.unauthorized }
        let key = try patientKey(id)
        // The row may have arrived from a peer since the code was sent: the record decides.
        if let existing = try registeredPatient(key) {
            if !Self.sameName(existing, entry.name) {
                throw PatientError(403, "identity.mismatch", zh: "姓名与该身份证号登记的姓名不一致，请核对后重试或到窗口办理。",
                                   en: "the name differs from the one registered for this resident ID; check it, or see the front desk.")
            }
            if existing["mobile"]?.text != mobile.digits { throw PatientError.notOnRecord }
        } else {
            do {
                try store.write { w in
                    try w.insert("patient", key: key, values: [
                        "name": .text(entry.name), "resident_id": .text(id.value), "mobile": .text(mobile.digits),
                        "sex": .text(id.sex.rawValue), "birth_date": .text(id.birthDate.description)])
                }
            } catch {
                throw PatientError(503, "store.unavailable", zh: "本节点暂时不能登记患者（\(error)），请稍后再试或换一个节点。",
                                   en: "this node cannot register patients right now (\(error)); try again shortly or use another node.")
            }
        }
        let expires = nowMs + Int64(config.sessionHours) * 3_600_000
        return SignInAnswer(token: tokens.issue(patient: key, expiresAtMs: expires), patient: key, expiresAtMs: expires)
    }

    private func patientKey(_ id: ResidentID) throws(PatientError) -> String {
        do { return try PatientKey(residentID: id, clusterSecret: patientKeySecret).hex } catch { throw PatientError(error) }
    }

    /// Whether a registered row carries `name` (checked already), however the stored one was typed.
    private static func sameName(_ row: [String: ColumnValue], _ name: String) -> Bool {
        guard let stored = row["name"]?.text else { return false }
        return ((try? Patient.normalizedName(stored)) ?? stored) == name
    }

    /// The patient's row as this replica has it, nil if the resident ID is not registered here.
    private func registeredPatient(_ key: String) throws(PatientError) -> [String: ColumnValue]? {
        do { return try store.liveRow("patient", key: key) } catch {
            throw PatientError(503, "store.unavailable", zh: "本节点暂时无法读取患者登记（\(error)），请稍后再试或换一个节点。",
                               en: "this node cannot read patient registrations right now (\(error)); try again shortly or use another node.")
        }
    }
}
