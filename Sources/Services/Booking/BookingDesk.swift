import Consensus
import Crypto
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
import Synchronization

// MARK: - Requests and answers (JSON, snake_case)

package struct HoldRequest: Codable, Sendable {
    /// The client's id for this booking: a retry with the same id never books twice.
    package var requestID: String
    /// A slot (`<schedule>/<sequence>`), or a schedule for "any free slot of this session".
    package var slotID: String?
    package var scheduleID: String?
    package enum CodingKeys: String, CodingKey { case requestID = "request_id", slotID = "slot_id", scheduleID = "schedule_id" }
}

package struct ConfirmRequest: Codable, Sendable {
    /// insurance (医保) or card; settlement itself is the billing flow's.
    package var payment: String?
    package init(payment: String?) { self.payment = payment }
}

/// FHIR Slot, as patients search it.
package struct SlotResource: Codable, Sendable, Hashable {
    package var resourceType = "Slot"
    package var id: String
    package var schedule: String
    package var department: String
    package var departmentName: String
    package var practitioner: String
    package var practitionerName: String
    package var title: String?
    package var titleZh: String?
    package var date: String
    package var halfDay: String
    package var start: String
    package var end: String
    package var status: String
    /// When the session opens for booking (ms since 1970), if it is not open yet.
    package var opensAtMs: Int64?

    package enum CodingKeys: String, CodingKey {
        case resourceType, id, schedule, department, departmentName = "department_name", practitioner, practitionerName = "practitioner_name"
        case title, titleZh = "title_zh", date, halfDay = "half_day", start, end, status, opensAtMs = "opens_at_ms"
    }
}

/// FHIR Appointment, as its patient sees it.
package struct AppointmentResource: Codable, Sendable, Hashable {
    package var resourceType = "Appointment"
    package var id: String
    package var status: String
    package var statusZh: String
    package var slot: String
    package var department: String?
    package var practitioner: String?
    package var practitionerName: String?
    package var date: String?
    package var start: String?
    package var end: String?
    /// A pending hold is released at this time (ms since 1970) unless confirmed.
    package var holdUntilMs: Int64?
    /// How the patient paid at confirmation: insurance (医保) or card.
    package var payment: String?
    package var node: String

    package enum CodingKeys: String, CodingKey {
        case resourceType, id, status, statusZh = "status_zh", slot, department, practitioner, practitionerName = "practitioner_name"
        case date, start, end, holdUntilMs = "hold_until_ms", payment, node
    }
}

/// The payment method as a confirmation record's tag (`payment:insurance`, `payment:card`).
package enum PaymentTag {
    package static let prefix = "payment:"
    package static func encode(_ method: String) -> String { prefix + method }
    package static func decode(_ tag: String) -> String? { tag.hasPrefix(prefix) ? String(tag.dropFirst(prefix.count)) : nil }
}

package struct SearchQuery: Sendable {
    package var department: String?
    package var date: String?
    package var halfDay: String?
    package var practitioner: String?
    package var title: String?
    /// Only free slots (default), or every slot with its status.
    package var onlyFree = true
    /// At most this many slots in the answer (1...500, default 200).
    package var limit = 200

    package init(department: String? = nil, date: String? = nil, halfDay: String? = nil, practitioner: String? = nil, title: String? = nil,
                 onlyFree: Bool = true, limit: Int = 200) {
        self.department = department; self.date = date; self.halfDay = halfDay; self.practitioner = practitioner; self.title = title
        self.onlyFree = onlyFree; self.limit = limit
    }
}

/// The booking side of one node: slot search, holds, confirmations, cancellations, staff steps.
package final class BookingDesk: Sendable {
    package let consensus: any BookingConsensus
    package let store: any RecordStore
    package let clock: NodeClock
    /// This node's id, named in every appointment it answers with.
    package let nodeID: String
    /// Hold length and the late-cancellation rule (the patient config's; its defaults without one).
    package let config: PatientConfig
    package let directory = SessionDirectory()
    package let availability = AvailabilityCache()
    package let staffStatuses = StaffStatusCache()
    /// Where appointments of closed sessions are kept (`BookingReadModel.keepClosed`): the
    /// consensus side no longer knows them.
    private let history = Mutex<BookingReadModel?>(nil)

    package init(consensus: any BookingConsensus, store: any RecordStore, clock: NodeClock, nodeID: String, config: PatientConfig) {
        self.consensus = consensus; self.store = store; self.clock = clock; self.nodeID = nodeID; self.config = config
    }

    /// Answers for closed sessions' appointments from `readModel` from now on.
    package func keepHistory(in readModel: BookingReadModel) { history.withLock { $0 = readModel } }

    package var nowMs: Int64 { clock.wallMillis() }
}

// MARK: - The operations

extension BookingDesk {
    /// Free (or all) slots of the sessions matching `q`, with live availability from the lease records.
    package func searchSlots(_ q: SearchQuery) throws(PatientError) -> [SlotResource] {
        let sessions: [SessionInfo]
        do { sessions = try directory.ordered(store) } catch {
            throw PatientError(503, "store.unavailable", zh: "号源目录暂时无法读取。", en: "the session directory cannot be read right now.")
        }
        if let h = q.halfDay, HalfDay(rawValue: h) == nil {
            throw PatientError(400, "search.half_day", zh: "half_day 只能是 morning、afternoon 或 evening。", en: "half_day must be morning, afternoon or evening.")
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
        // Which slots to list and their status, from one published view; the resources after.
        let picked = consensus.lookup { lookup in
            var out: [(session: Int, slot: Int, status: SlotStatus, opensAtMs: Int64?)] = []
            for (i, s) in matching.enumerated() {
                guard let block = lookup.block(s.schedule) else { continue }
                let taken = availability.availability(of: s.schedule, block, in: lookup)
                let opensAtMs = block.opensAtMs > now ? block.opensAtMs : nil
                for index in 0..<min(s.onlineSlots, block.slots) {
                    let status = taken.status(of: index, nowMs: now)
                    if q.onlyFree, status != .free { continue }
                    if out.count >= q.limit { return out }
                    out.append((i, index, status, opensAtMs))
                }
            }
            return out
        }
        var templates: [Int: [SlotResource]] = [:]
        return picked.map { p in
            if templates[p.session] == nil { templates[p.session] = directory.slotTemplates(of: matching[p.session]) }
            var slot = templates[p.session]![p.slot]
            slot.status = p.status.rawValue
            slot.opensAtMs = p.opensAtMs
            return slot
        }
    }

    /// Holds a slot for the patient (Appointment pending) until it is confirmed or runs out.
    package func hold(_ r: HoldRequest, session: PatientSession) async throws(PatientError) -> AppointmentResource {
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
            guard let found = try directory.session(schedule, in: store) else {
                throw PatientError(404, "slot.unknown", zh: "没有这个出诊时段。", en: "there is no such session.")
            }
            info = found
        } catch let e as PatientError { throw e } catch {
            throw PatientError(503, "store.unavailable", zh: "号源目录暂时无法读取。", en: "the session directory cannot be read right now.")
        }
        let walkInOnly = PatientError(409, "slot.walk_in", zh: "该号为现场号，只在挂号窗口挂出，请选择其他号。",
                                      en: "this slot is kept for walk-ins at the registration desk; choose another slot.")
        if slots.isEmpty, info.onlineSlots == 0 { throw walkInOnly }
        let candidates = slots.isEmpty ? Array(0..<min(info.onlineSlots, 64)) : slots
        guard let first = candidates.first, candidates.allSatisfy({ $0 < info.capacity }) else {
            throw PatientError(404, "slot.unknown", zh: "该时段没有这个号。", en: "this session has no such slot.")
        }
        guard candidates.allSatisfy({ $0 < info.onlineSlots }) else { throw walkInOnly }
        let holdID = AppointmentRef.holdID(patient: session.patient, requestID: r.requestID)
        // A session this node sees full is refused without a quota round or a booking: a released
        // slot goes back on offer only minutes later, and by then its records have reached every
        // node. Refusing never risks a double booking; the holder decides every booking. But the
        // request may be a retry of one answered through another node whose records have not come
        // yet (its quota refused it, say): the patient's quota bucket is asked for the request's
        // first outcome, and only a request it has no record of is refused here.
        let now = nowMs
        let anyFree = consensus.lookup { lookup -> Bool in
            guard let block = lookup.block(schedule), !lookup.knowsRequest(holdID, block: schedule, patient: session.patient) else { return true }
            let a = availability.availability(of: schedule, block, in: lookup)
            return a.unknown || candidates.contains { a.status(of: $0, nowMs: now) == .free }
        }
        let q = BookingRequest(id: holdID, block: schedule, slot: first, patient: session.patient, alternatives: Array(candidates.dropFirst()),
                               holdMs: Int64(config.holdMinutes) * 60_000, onlyIfKnown: !anyFree)
        switch await consensus.book(q, quota: info.quotaTag, timeout: .seconds(5)) {
        case .booked(let b)?:
            return appointment(AppointmentRef(holdID: holdID, block: schedule, slot: b.slot), status: .pending, hold: b, info: info)
        case .refused(_, .unknownRequest)?: throw PatientError.refused(.slotTaken)
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// Confirms a hold (payment succeeded): Appointment booked, Slot busy.
    package func confirm(_ id: String, _ r: ConfirmRequest, session: PatientSession) async throws(PatientError) -> AppointmentResource {
        let ref = try ownRef(id, session)
        if let p = r.payment, !["insurance", "card"].contains(p) {
            throw PatientError(400, "payment.method", zh: "payment 只能是 insurance（医保）或 card（银行卡）。", en: "payment must be insurance or card.")
        }
        // The payment method rides in the confirmation record: quorum-durable with it, on every
        // node with it, and no replica write (a commit, then a merge on every peer) per payment.
        let q = BookingRequest(id: ref.confirmationID, block: ref.block, slot: ref.slot, patient: session.patient, confirms: ref.holdID,
                               tag: PaymentTag.encode(r.payment ?? "card"))
        switch await consensus.book(q, quota: nil, timeout: .seconds(5)) {
        case .booked(let confirmation)?:
            // Through another node than the holder, this node may not have the record yet.
            var answer = try appointmentNow(ref, acknowledged: .booked)
            answer.payment = answer.payment ?? PaymentTag.decode(confirmation.tag)
            return answer
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// Cancels an appointment, held or confirmed; within `late_cancel_hours` of the visit it is a strike.
    package func cancel(_ id: String, session: PatientSession) async throws(PatientError) -> AppointmentResource {
        let ref = try ownRef(id, session)
        let info = try? directory.sessions(store)[ref.block]
        let q = BookingRequest(id: ref.cancellationID, block: ref.block, slot: ref.slot, patient: session.patient, releases: ref.holdID)
        let outcome = await consensus.book(q, quota: info?.quotaTag, timeout: .seconds(5))
        switch outcome {
        case .booked?:
            if let info, info.startMs(of: ref.slot) - nowMs < Int64(config.policy.lateCancelHours) * 3_600_000 {
                let today = ShanghaiTime.unixDay(wallMs: nowMs)
                // Best effort with a generous wait: the cancellation stands either way.
                _ = await consensus.strike(Strike(kind: .lateCancel, day: today), patient: session.patient, id: "late:" + ref.holdID, timeout: .seconds(5))
            }
            return try appointmentNow(ref, acknowledged: .cancelled)
        case .refused(_, let reason)?: throw PatientError.refused(reason)
        case nil: throw PatientError.timeout
        }
    }

    /// One of the patient's appointments, as this node knows it now.
    package func appointment(_ id: String, session: PatientSession) throws(PatientError) -> AppointmentResource {
        if let ref = AppointmentRef(encoded: id), consensus.lookup({ $0.isClosed(ref.block) }) {
            guard let found = closedAppointments(patient: session.patient).first(where: { $0.id == ref.encoded }) else { throw PatientError.notFound }
            return found
        }
        let ref = try ownRef(id, session)
        return try appointmentNow(ref, acknowledged: nil)
    }

    /// Every appointment of the patient this node knows, closed sessions' included.
    package func appointments(session: PatientSession) -> [AppointmentResource] {
        let holds = consensus.lookup { $0.holds(of: session.patient) }
        let live = holds.sorted { $0.id < $1.id }.compactMap {
            try? appointmentNow(AppointmentRef(holdID: $0.id, block: $0.block, slot: $0.slot), acknowledged: nil)
        }
        return live + closedAppointments(patient: session.patient)
    }

    /// The patient's appointments in closed sessions, from the read model's final rows.
    private func closedAppointments(patient: String) -> [AppointmentResource] {
        guard let rows = try? history.withLock({ $0 })?.closedAppointments(patient: patient) else { return [] }
        return rows.map(closedAppointment)
    }

    /// Sessions whose date lies more than `retentionDays` days before today (Asia/Shanghai):
    /// the ones to close (`ConsensusCore.close`), oldest key first.
    package func sessionsPastRetention(retentionDays: Int) throws -> [BlockID] {
        let lastKept = ShanghaiTime.unixDay(wallMs: nowMs) - retentionDays
        return try directory.sessions(store).values.filter { $0.date.unixDay < lastKept }.map(\.schedule).sorted()
    }

    private func closedAppointment(_ row: AppointmentRow) -> AppointmentResource {
        let ref = AppointmentRef(holdID: row.holdID, block: row.block, slot: row.slot)
        var status = AppointmentStatus(rawValue: row.status) ?? .cancelled
        if status == .booked, let staff = staffStatuses.status(of: row.holdID, in: store), let s = AppointmentStatus(rawValue: staff) { status = s }
        let info = try? directory.sessions(store)[row.block]
        return appointment(ref, status: status, hold: nil, info: info, payment: row.payment)
    }

    private func ownRef(_ id: String, _ session: PatientSession) throws(PatientError) -> AppointmentRef {
        guard let ref = AppointmentRef(encoded: id) else {
            throw PatientError(400, "appointment.id", zh: "预约号格式不正确。", en: "the appointment id is malformed.")
        }
        // A block the committed cluster state does not define (yet, on a lagging replica) has no
        // appointments here: the core would answer "no holder, retry", which no retry changes.
        let (defined, owner) = consensus.lookup { lookup in
            (lookup.block(ref.block) != nil, lookup.appointment(holdID: ref.holdID, block: ref.block, slot: ref.slot).hold?.patient)
        }
        guard defined, !ref.block.hasPrefix(quotaBucketPrefix) else { throw PatientError.notFound }
        if let owner, owner != session.patient { throw PatientError.notFound }
        return ref
    }

    /// `acknowledged`: the step a quorum just accepted for this request. This node's records may
    /// not show it yet (it was not in that quorum), so they never answer with less.
    package func appointmentNow(_ ref: AppointmentRef, acknowledged: AppointmentStatus?) throws(PatientError) -> AppointmentResource {
        let records = consensus.lookup { $0.appointment(holdID: ref.holdID, block: ref.block, slot: ref.slot) }
        var status = records.status(after: acknowledged)
        if status == .booked, let staff = staffStatuses.status(of: ref.holdID, in: store),
           let s = AppointmentStatus(rawValue: staff) {
            status = s
        }
        guard let status else { throw PatientError.notFound }
        let info = try? directory.sessions(store)[ref.block]
        return appointment(ref, status: status, hold: records.hold, info: info, payment: records.confirmation.flatMap { PaymentTag.decode($0.tag) })
    }

    private func appointment(_ ref: AppointmentRef, status: AppointmentStatus, hold: Booking?, info: SessionInfo?, payment: String? = nil) -> AppointmentResource {
        let t = info?.times(of: ref.slot)
        return AppointmentResource(
            id: ref.encoded, status: status.rawValue, statusZh: status.zh, slot: "\(ref.block)/\(ref.slot + 1)", department: info?.department,
            practitioner: info?.practitioner, practitionerName: info?.practitionerName, date: info?.date.description,
            start: t?.start.description, end: t?.end.description, holdUntilMs: status == .pending ? hold?.holdUntilMs : nil, payment: payment,
            node: nodeID)
    }
}

