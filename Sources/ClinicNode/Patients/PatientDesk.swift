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

    init(_ status: Int, _ code: String, zh: String, en: String, retryAfterS: Int? = nil) {
        self.status = status; self.code = code; self.zh = zh; self.en = en; self.retryAfterS = retryAfterS
    }

    init(_ v: ValidationError) { self.init(400, v.code, zh: v.zh, en: v.en) }

    enum CodingKeys: String, CodingKey { case status, code, zh = "message_zh", en = "message_en" }

    static let unauthorized = PatientError(401, "auth.required", zh: "请先用身份证号和手机验证码登录。",
                                           en: "sign in first with your resident ID and the code sent to your mobile.")
    static func rateLimited(retryAfterS: Int) -> PatientError {
        PatientError(429, "rate.limited", zh: "请求过于频繁，请 \(retryAfterS) 秒后再试。", en: "too many requests; please try again in \(retryAfterS) s.",
                     retryAfterS: retryAfterS)
    }
    static func otpRateLimited(retryAfterS: Int) -> PatientError {
        PatientError(429, "otp.rate_limited", zh: "该手机号获取验证码过于频繁，请 \(retryAfterS) 秒后再试。",
                     en: "codes were requested too often for this mobile; try again in \(retryAfterS) s.", retryAfterS: retryAfterS)
    }
    static let busy = PatientError(503, "server.busy", zh: "本节点正忙，请一秒后重试（同一请求号不会重复预约）。",
                                   en: "this node is busy; retry in a second (the same request id never books twice).", retryAfterS: 1)
    /// One answer whether the name or the mobile differs, and nothing of the record shown: an ID
    /// number alone must not tell a stranger the registered name or mobile.
    static let notOnRecord = PatientError(
        403, "identity.not_on_record",
        zh: "姓名或手机号与该身份证号的登记信息不一致。验证码只发送到登记的手机号：请核对姓名和手机号后重试；如已更换手机号，请携带身份证到挂号窗口办理变更。",
        en: "the name or mobile does not match what is registered for this resident ID. Codes go only to the registered mobile: check both and try again; if you have changed your mobile, bring your ID card to a registration desk to change it.")
    static let notFound = PatientError(404, "appointment.not_found", zh: "找不到该预约（如刚刚预约，请稍后再查）。",
                                       en: "no such appointment (if you just booked it, look again in a moment).")
    static let timeout = PatientError(503, "lease.timeout", zh: "集群未在时限内给出结果；请用同一请求号重试，不会重复预约。",
                                      en: "the cluster gave no outcome in time; retry with the same request id, it never books twice.")

    /// The booking primitive's refusals, with the HTTP status a client can switch on.
    static func refused(_ r: RefuseReason) -> PatientError {
        let (code, zh, en) = BookAnswer.words(r)
        let status: Int
        switch r {
        case .noHolder, .notHolder, .quotaUnavailable: status = 503
        case .slotTaken, .released, .requestMismatch, .notBooked: status = 409
        case .noSuchSlot: status = 404
        case .notYetOpen, .banned: status = 403
        case .quotaExceeded: status = 409
        case .holdExpired: status = 410
        }
        return PatientError(status, code, zh: zh, en: en)
    }
}

/// The patient side of one node: sign-in, search, holds, confirmations, cancellations and SMS.
final class PatientDesk: Sendable {
    let config: PatientConfig
    let tokens: SessionTokens
    let codes = OneTimeCodes()
    let perAddress: RateLimiter
    let perMobile: RateLimiter
    let inFlight: InFlightLimit
    let directory = SessionDirectory()
    let availability = AvailabilityCache()
    let staffStatuses = StaffStatusCache()
    let outbox: SMSOutbox
    let sender: any SMSSender
    let patientKeySecret: SymmetricKey
    /// The port the HTTPS listener bound (useful with port 0).
    let boundPort = Mutex<Int?>(nil)

    init(config: PatientConfig, dataDir: String, dataKey: SymmetricKey) throws {
        self.config = config
        tokens = SessionTokens(dataKey: dataKey)
        perAddress = RateLimiter(burst: config.perAddressBurst, perSecond: config.perAddressPerSecond)
        inFlight = InFlightLimit(limit: config.maxInFlight)
        perMobile = RateLimiter(burst: config.otpPerMobileBurst, perSecond: 1 / Double(config.otpPerMobileEverySeconds))
        outbox = try SMSOutbox(path: (dataDir as NSString).appendingPathComponent("outbox.sqlite"))
        if config.smsSender == "webhook", let url = config.smsWebhookURL.flatMap(URL.init(string:)) {
            sender = WebhookSMSSender(url: url)
        } else {
            sender = FileSMSSender(path: NodeConfig.resolve(config.smsFile, base: dataDir))
        }
        patientKeySecret = DemoData.patientKeySecret(dataKey: dataKey)
    }
}

// MARK: - Requests and answers (JSON, snake_case)

struct CodeRequest: Codable, Sendable {
    var name: String
    var residentID: String
    var mobile: String
    enum CodingKeys: String, CodingKey { case name, residentID = "resident_id", mobile }
}

struct SignInRequest: Codable, Sendable {
    var residentID: String
    var mobile: String
    var code: String
    enum CodingKeys: String, CodingKey { case residentID = "resident_id", mobile, code }
}

struct SignInAnswer: Codable, Sendable {
    var token: String
    var patient: String
    var expiresAtMs: Int64
    enum CodingKeys: String, CodingKey { case token, patient, expiresAtMs = "expires_at_ms" }
}

struct HoldRequest: Codable, Sendable {
    /// The client's id for this booking: a retry with the same id never books twice.
    var requestID: String
    /// A slot (`<schedule>/<sequence>`), or a schedule for "any free slot of this session".
    var slotID: String?
    var scheduleID: String?
    enum CodingKeys: String, CodingKey { case requestID = "request_id", slotID = "slot_id", scheduleID = "schedule_id" }
}

struct ConfirmRequest: Codable, Sendable {
    /// insurance (医保) or card; settlement itself is the billing flow's.
    var payment: String?
}

/// FHIR Slot, as patients search it.
struct SlotResource: Codable, Sendable, Hashable {
    var resourceType = "Slot"
    var id: String
    var schedule: String
    var department: String
    var departmentName: String
    var practitioner: String
    var practitionerName: String
    var title: String?
    var titleZh: String?
    var date: String
    var halfDay: String
    var start: String
    var end: String
    var status: String
    /// When the session opens for booking (ms since 1970), if it is not open yet.
    var opensAtMs: Int64?

    enum CodingKeys: String, CodingKey {
        case resourceType, id, schedule, department, departmentName = "department_name", practitioner, practitionerName = "practitioner_name"
        case title, titleZh = "title_zh", date, halfDay = "half_day", start, end, status, opensAtMs = "opens_at_ms"
    }
}

/// FHIR Appointment, as its patient sees it.
struct AppointmentResource: Codable, Sendable, Hashable {
    var resourceType = "Appointment"
    var id: String
    var status: String
    var statusZh: String
    var slot: String
    var department: String?
    var practitioner: String?
    var practitionerName: String?
    var date: String?
    var start: String?
    var end: String?
    /// A pending hold is released at this time (ms since 1970) unless confirmed.
    var holdUntilMs: Int64?
    /// How the patient paid at confirmation: insurance (医保) or card.
    var payment: String?
    var node: String

    enum CodingKeys: String, CodingKey {
        case resourceType, id, status, statusZh = "status_zh", slot, department, practitioner, practitionerName = "practitioner_name"
        case date, start, end, holdUntilMs = "hold_until_ms", payment, node
    }
}

/// The payment method as a confirmation record's tag (`payment:insurance`, `payment:card`).
enum PaymentTag {
    static let prefix = "payment:"
    static func encode(_ method: String) -> String { prefix + method }
    static func decode(_ tag: String) -> String? { tag.hasPrefix(prefix) ? String(tag.dropFirst(prefix.count)) : nil }
}

struct SearchQuery: Sendable {
    var department: String?
    var date: String?
    var halfDay: String?
    var practitioner: String?
    var title: String?
    /// Only free slots (default), or every slot with its status.
    var onlyFree = true
    /// At most this many slots in the answer (1...500, default 200).
    var limit = 200
}

// MARK: - The operations

extension MeshNode {
    var nowMs: Int64 { clock.wallMillis() }

    /// Sends a sign-in code by SMS (after the rate limits and the real-name checks). A resident ID
    /// already registered gets its code only at the mobile on record, and only with the name on
    /// record: a name and an ID number are no secret, and the code is what signs in as that patient.
    func requestCode(_ r: CodeRequest, desk: PatientDesk) throws(PatientError) -> Int {
        let id: ResidentID, mobile: MobileNumber, name: String
        do throws(ValidationError) {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(nowMs) / 1000)).date
            id = try ResidentID(r.residentID, today: today, field: "resident_id")
            mobile = try MobileNumber(r.mobile, field: "mobile")
            name = try Patient(name: r.name, sex: id.sex, birthDate: id.birthDate, residentID: id, mobile: mobile).name
        } catch { throw PatientError(error) }
        if let wait = desk.perMobile.take(mobile.digits, nowNanos: clock.monotonicNanos()) {
            throw PatientError.otpRateLimited(retryAfterS: wait)
        }
        let key = try patientKey(id, desk: desk)
        if let existing = try registeredPatient(key), !Self.sameName(existing, name) || existing["mobile"]?.text != mobile.digits {
            throw PatientError.notOnRecord
        }
        let code = desk.codes.issue(name: name, residentID: id, mobile: mobile, nowMs: nowMs,
                                    ttlMs: Int64(desk.config.otpTTLSeconds) * 1000, tries: desk.config.otpMaxTries)
        let minutes = max(1, desk.config.otpTTLSeconds / 60)
        let message = SMSMessage(
            id: "code:" + UUID().uuidString.lowercased(), kind: "code", mobile: mobile.digits,
            text: "【ClinicMesh】验证码 \(code)，\(minutes) 分钟内有效，请勿告诉他人。Your ClinicMesh code is \(code), valid for \(minutes) minutes; never share it.")
        do { try desk.outbox.enqueue(message, nowMs: nowMs) } catch {
            throw PatientError(503, "sms.unavailable", zh: "短信暂时无法发送，请稍后再试。", en: "SMS cannot be sent right now; please try again shortly.")
        }
        return desk.config.otpTTLSeconds
    }

    /// Trades a right code for a session token; registers the patient on first sign-in. Never
    /// changes a registered patient's name or mobile.
    func signIn(_ r: SignInRequest, desk: PatientDesk) throws(PatientError) -> SignInAnswer {
        let id: ResidentID, mobile: MobileNumber
        do throws(ValidationError) {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(nowMs) / 1000)).date
            id = try ResidentID(r.residentID, today: today, field: "resident_id")
            mobile = try MobileNumber(r.mobile, field: "mobile")
        } catch { throw PatientError(error) }
        let (check, entry) = desk.codes.check(residentID: id, mobile: mobile, code: r.code, nowMs: nowMs)
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
        let key = try patientKey(id, desk: desk)
        // The row may have arrived from a peer since the code was sent: the record decides.
        if let existing = try registeredPatient(key) {
            if !Self.sameName(existing, entry.name) {
                throw PatientError(403, "identity.mismatch", zh: "姓名与该身份证号登记的姓名不一致，请核对后重试或到窗口办理。",
                                   en: "the name differs from the one registered for this resident ID; check it, or see the front desk.")
            }
            if existing["mobile"]?.text != mobile.digits { throw PatientError.notOnRecord }
        } else {
            do {
                try write { w in
                    try w.insert("patient", key: key, values: [
                        "name": .text(entry.name), "resident_id": .text(id.value), "mobile": .text(mobile.digits),
                        "sex": .text(id.sex.rawValue), "birth_date": .text(id.birthDate.description)])
                }
            } catch {
                throw PatientError(503, "store.unavailable", zh: "本节点暂时不能登记患者（\(error)），请稍后再试或换一个节点。",
                                   en: "this node cannot register patients right now (\(error)); try again shortly or use another node.")
            }
        }
        let expires = nowMs + Int64(desk.config.sessionHours) * 3_600_000
        return SignInAnswer(token: desk.tokens.issue(patient: key, expiresAtMs: expires), patient: key, expiresAtMs: expires)
    }

    private func patientKey(_ id: ResidentID, desk: PatientDesk) throws(PatientError) -> String {
        do { return try PatientKey(residentID: id, clusterSecret: desk.patientKeySecret).hex } catch { throw PatientError(error) }
    }

    /// Whether a registered row carries `name` (checked already), however the stored one was typed.
    private static func sameName(_ row: [String: ColumnValue], _ name: String) -> Bool {
        guard let stored = row["name"]?.text else { return false }
        return ((try? Patient.normalizedName(stored)) ?? stored) == name
    }

    /// The patient's row as this replica has it, nil if the resident ID is not registered here.
    private func registeredPatient(_ key: String) throws(PatientError) -> [String: ColumnValue]? {
        do { return try replica.liveRow("patient", key: key) } catch {
            throw PatientError(503, "store.unavailable", zh: "本节点暂时无法读取患者登记（\(error)），请稍后再试或换一个节点。",
                               en: "this node cannot read patient registrations right now (\(error)); try again shortly or use another node.")
        }
    }

    /// Free (or all) slots of the sessions matching `q`, with live availability from the lease records.
    func searchSlots(_ q: SearchQuery, desk: PatientDesk) throws(PatientError) -> [SlotResource] {
        let sessions: [SessionInfo]
        do { sessions = try desk.directory.ordered(replica: replica) } catch {
            throw PatientError(503, "store.unavailable", zh: "号源目录暂时无法读取。", en: "the session directory cannot be read right now.")
        }
        if let h = q.halfDay, HalfDay(rawValue: h) == nil {
            throw PatientError(400, "search.half_day", zh: "half_day 只能是 morning 或 afternoon。", en: "half_day must be morning or afternoon.")
        }
        let date: CivilDate?
        if let d = q.date {
            guard let parsed = try? CivilDate(parsing: d) else {
                throw PatientError(400, "search.date", zh: "date 须为 yyyy-mm-dd。", en: "date must be yyyy-mm-dd.")
            }
            date = parsed
        } else {
            date = nil
        }
        // The directory keeps its sessions in search order: a filter, no sort per search. By index,
        // so only the matches are copied (a session is five strings: retains and releases).
        var matching: [SessionInfo] = []
        for i in sessions.indices {
            if matching.count == 200 { break }
            guard (q.department == nil || sessions[i].department == q.department) && (date == nil || sessions[i].date == date)
                && (q.halfDay == nil || sessions[i].halfDay.rawValue == q.halfDay)
                && (q.practitioner == nil || sessions[i].practitioner == q.practitioner)
                && (q.title == nil || sessions[i].title?.rawValue == q.title) else { continue }
            matching.append(sessions[i])
        }
        let now = nowMs
        // Under the core's lock only which slots to list and their status (every booking waits
        // for that lock); the resources, strings and all, are made after it.
        let picked = consensus.inspect { c in
            var out: [(session: Int, slot: Int, status: SlotStatus, opensAtMs: Int64?)] = []
            for (i, s) in matching.enumerated() {
                guard let block = c.cluster.blocks[s.schedule] else { continue }
                let availability = desk.availability.availability(of: s.schedule, in: c)
                let opensAtMs = block.opensAtMs > now ? block.opensAtMs : nil
                for index in 0..<min(s.capacity, block.slots) {
                    let status = availability.status(of: index, nowMs: now)
                    if q.onlyFree, status != .free { continue }
                    if out.count >= q.limit { return out }
                    out.append((i, index, status, opensAtMs))
                }
            }
            return out
        }
        var templates: [Int: [SlotResource]] = [:]
        return picked.map { p in
            if templates[p.session] == nil { templates[p.session] = desk.directory.slotTemplates(of: matching[p.session]) }
            var slot = templates[p.session]![p.slot]
            slot.status = p.status.rawValue
            slot.opensAtMs = p.opensAtMs
            return slot
        }
    }

    /// Holds a slot for the patient (Appointment pending) until it is confirmed or runs out.
    func hold(_ r: HoldRequest, session: PatientSession, desk: PatientDesk) async throws(PatientError) -> AppointmentResource {
        guard !r.requestID.isEmpty, r.requestID.utf8.count <= 128 else {
            throw PatientError(400, "request.invalid", zh: "request_id 须为 1 到 128 字节。", en: "request_id must be 1 to 128 bytes.")
        }
        let schedule: String, slots: [Int]
        if let slotID = r.slotID {
            guard let slash = slotID.lastIndex(of: "/"), let seq = Int(slotID[slotID.index(after: slash)...]), seq >= 1 else {
                throw PatientError(400, "slot.invalid", zh: "slot_id 的格式应为 <号源排班>/<序号>。", en: "slot_id must look like <schedule>/<sequence>.")
            }
            schedule = String(slotID[..<slash])
            slots = [seq - 1]
        } else if let s = r.scheduleID {
            schedule = s
            slots = []
        } else {
            throw PatientError(400, "slot.missing", zh: "请给出 slot_id（指定号）或 schedule_id（该时段任意号）。",
                               en: "give slot_id (one slot) or schedule_id (any free slot of that session).")
        }
        let info: SessionInfo
        do {
            guard let found = try desk.directory.sessions(replica: replica)[schedule] else {
                throw PatientError(404, "slot.unknown", zh: "没有这个出诊时段。", en: "there is no such session.")
            }
            info = found
        } catch let e as PatientError { throw e } catch {
            throw PatientError(503, "store.unavailable", zh: "号源目录暂时无法读取。", en: "the session directory cannot be read right now.")
        }
        let candidates = slots.isEmpty ? Array(0..<min(info.capacity, 64)) : slots
        guard let first = candidates.first, candidates.allSatisfy({ $0 < info.capacity }) else {
            throw PatientError(404, "slot.unknown", zh: "该时段没有这个号。", en: "this session has no such slot.")
        }
        let holdID = AppointmentRef.holdID(patient: session.patient, requestID: r.requestID)
        // A session this node sees full is refused here, before the quota round and the holder: a
        // released slot goes back on offer only minutes later, and by then its records have
        // reached every node. Refusing never risks a double booking; the holder decides every
        // booking, and every retry of a request this node knows a record of (its hold, or its
        // reservation or the reservation's refusal in the patient's quota bucket) or still waits
        // on: a retry is answered with its first outcome, not with what the session looks like now.
        let now = nowMs
        let reservation = ConsensusCore.reservationID(of: holdID)
        let anyFree = consensus.inspect { c -> Bool in
            let bucket = c.cluster.blocks[ConsensusCore.quotaBucket(patient: session.patient, buckets: c.options.quotaBuckets)]
            guard let block = c.cluster.blocks[schedule], !c.isOpen(holdID), c.booking.store.records[holdID] == nil, !block.collectedIDs.contains(holdID),
                  c.booking.store.records[reservation] == nil, bucket?.collectedIDs.contains(reservation) != true else { return true }
            let a = desk.availability.availability(of: schedule, in: c)
            return a.unknown || candidates.contains { a.status(of: $0, nowMs: now) == .free }
        }
        guard anyFree else { throw PatientError.refused(.slotTaken) }
        let q = BookingRequest(id: holdID, block: schedule, slot: first, patient: session.patient, alternatives: Array(candidates.dropFirst()),
                               holdMs: Int64(desk.config.holdMinutes) * 60_000)
        switch await consensus.book(q, quota: info.quotaTag, timeout: .seconds(5)) {
        case .booked(let b)?:
            return appointment(AppointmentRef(holdID: holdID, block: schedule, slot: b.slot), status: .pending, hold: b, info: info)
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// Confirms a hold (payment succeeded): Appointment booked, Slot busy.
    func confirm(_ id: String, _ r: ConfirmRequest, session: PatientSession, desk: PatientDesk) async throws(PatientError) -> AppointmentResource {
        let ref = try ownRef(id, session)
        if let p = r.payment, !["insurance", "card"].contains(p) {
            throw PatientError(400, "payment.method", zh: "payment 只能是 insurance（医保）或 card（银行卡）。", en: "payment must be insurance or card.")
        }
        // The payment method rides in the confirmation record: quorum-durable with it, on every
        // node with it, and no replica write (a commit, then a merge on every peer) per payment.
        let q = BookingRequest(id: ref.confirmationID, block: ref.block, slot: ref.slot, patient: session.patient, confirms: ref.holdID,
                               tag: PaymentTag.encode(r.payment ?? "card"))
        switch await consensus.book(q, timeout: .seconds(5)) {
        case .booked(let confirmation)?:
            // Through another node than the holder, this node may not have the record yet.
            var answer = try appointmentNow(ref, desk: desk, acknowledged: .booked)
            answer.payment = answer.payment ?? PaymentTag.decode(confirmation.tag)
            return answer
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// Cancels an appointment, held or confirmed; within `late_cancel_hours` of the visit it is a strike.
    func cancel(_ id: String, session: PatientSession, desk: PatientDesk) async throws(PatientError) -> AppointmentResource {
        let ref = try ownRef(id, session)
        let info = try? desk.directory.sessions(replica: replica)[ref.block]
        let q = BookingRequest(id: ref.cancellationID, block: ref.block, slot: ref.slot, patient: session.patient, releases: ref.holdID)
        let outcome = await consensus.book(q, quota: info?.quotaTag, timeout: .seconds(5))
        switch outcome {
        case .booked?:
            if let info, info.startMs(of: ref.slot) - nowMs < Int64(desk.config.policy.lateCancelHours) * 3_600_000 {
                let today = shanghaiDay(wallMs: nowMs)
                // Best effort with a generous wait: the cancellation stands either way.
                _ = await consensus.strike(Strike(kind: .lateCancel, day: today), patient: session.patient, id: "late:" + ref.holdID, timeout: .seconds(5))
            }
            return try appointmentNow(ref, desk: desk, acknowledged: .cancelled)
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// One of the patient's appointments, as this node knows it now.
    func appointment(_ id: String, session: PatientSession, desk: PatientDesk) throws(PatientError) -> AppointmentResource {
        let ref = try ownRef(id, session)
        return try appointmentNow(ref, desk: desk, acknowledged: nil)
    }

    /// Every appointment of the patient this node knows.
    func appointments(session: PatientSession, desk: PatientDesk) -> [AppointmentResource] {
        let holds = consensus.inspect { c in
            c.booking.store.records(of: session.patient).filter { $0.isHold && !$0.block.hasPrefix(quotaBucketPrefix) }
        }
        return holds.sorted { $0.id < $1.id }.compactMap {
            try? appointmentNow(AppointmentRef(holdID: $0.id, block: $0.block, slot: $0.slot), desk: desk, acknowledged: nil)
        }
    }

    private func ownRef(_ id: String, _ session: PatientSession) throws(PatientError) -> AppointmentRef {
        guard let ref = AppointmentRef(encoded: id) else {
            throw PatientError(400, "appointment.id", zh: "预约号格式不正确。", en: "the appointment id is malformed.")
        }
        // A block the committed cluster state does not define (yet, on a lagging replica) has no
        // appointments here: the core would answer "no holder, retry", which no retry changes.
        let (defined, owner) = consensus.inspect { c in
            (c.cluster.blocks[ref.block] != nil, AppointmentRecords.find(ref, in: c).hold?.patient)
        }
        guard defined, !ref.block.hasPrefix(quotaBucketPrefix) else { throw PatientError.notFound }
        if let owner, owner != session.patient { throw PatientError.notFound }
        return ref
    }

    /// `acknowledged`: the step a quorum just accepted for this request. This node's records may
    /// not show it yet (it was not in that quorum), so they never answer with less.
    func appointmentNow(_ ref: AppointmentRef, desk: PatientDesk, acknowledged: AppointmentStatus?) throws(PatientError) -> AppointmentResource {
        let records = consensus.inspect { AppointmentRecords.find(ref, in: $0) }
        var status = records.status(after: acknowledged)
        if status == .booked, let staff = desk.staffStatuses.status(of: ref.holdID, in: replica),
           let s = AppointmentStatus(rawValue: staff) {
            status = s
        }
        guard let status else { throw PatientError.notFound }
        let info = try? desk.directory.sessions(replica: replica)[ref.block]
        return appointment(ref, status: status, hold: records.hold, info: info, payment: records.confirmation.flatMap { PaymentTag.decode($0.tag) })
    }

    private func appointment(_ ref: AppointmentRef, status: AppointmentStatus, hold: Booking?, info: SessionInfo?, payment: String? = nil) -> AppointmentResource {
        let t = info?.times(of: ref.slot)
        return AppointmentResource(
            id: ref.encoded, status: status.rawValue, statusZh: status.zh, slot: "\(ref.block)/\(ref.slot + 1)", department: info?.department,
            practitioner: info?.practitioner, practitionerName: info?.practitionerName, date: info?.date.description,
            start: t?.start.description, end: t?.end.description, holdUntilMs: status == .pending ? hold?.holdUntilMs : nil, payment: payment,
            node: config.nodeID)
    }
}

