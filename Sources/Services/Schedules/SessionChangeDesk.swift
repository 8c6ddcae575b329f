import Consensus
import Domain
import Foundation
import ReplicatedCore

// Doctors' changes to their published sessions (停诊, 替诊, 加号, 改期) and the department head's
// decisions. A request is a replicated `session_change` row. Approving it changes the rota at
// once, in one transaction (the schedule rows, and for a move the new session with its block);
// what the change does to bookings is the session block's holder's work (`carryOut`): it alone
// knows every booking of the block, and a new holder after a failover picks the work up where it
// stopped. Every booking touched gets an SMS under an id made from the change and the booking,
// so no patient is told twice and none is left untold.

/// One request as staff pages show it.
package struct SessionChangeRecord: Sendable, Hashable {
    package var id: String
    package var change: SessionChange
    package var department: String
    /// The staff number of the doctor who asked.
    package var requestedBy: String
    package var requestedMs: Int64
    package var status: SessionChangeStatus
    package var decidedBy: String?
    package var decidedMs: Int64?
    /// The head's note (required with a refusal).
    package var note: String?
    /// `.move`: the session it became.
    package var movedTo: ScheduleKey?
    /// What the holder has done with the bookings so far ("cancelled 2, moved 3").
    package var outcome: String?
}

package struct SessionChangeDesk: Sendable {
    let rota: RotaDesk
    let booking: BookingDesk
    /// This node's SMS outbox (nil: the node has no patient API and sends no SMS).
    let outbox: SMSOutbox?

    package init(rota: RotaDesk, booking: BookingDesk, outbox: SMSOutbox?) {
        self.rota = rota; self.booking = booking; self.outbox = outbox
    }

    var store: any RecordStore { rota.store }
    var nowMs: Int64 { rota.clock.wallMillis() }

    /// How a booking's cancellation by change `id` is named: the SMS scan of `BookingMessages`
    /// leaves those to this desk, which words them.
    package static let cancellationPrefix = "chg:"
    static func cancellationID(change: String, hold: String) -> String { "\(cancellationPrefix)\(change):\(hold)" }
    static func messageID(change: String, hold: String) -> String { "change:\(change):\(hold)" }

    // MARK: Requests

    /// Files a doctor's request for one of their own sessions, checked against the rota and the
    /// bookings as they stand; one pending request per session.
    package func request(_ change: SessionChange, doctor: String, staff: String) throws(StaffError) -> SessionChangeRecord {
        let (row, department) = try session(change.session)
        guard !doctor.isEmpty, RotaDesk.place(change.session, row).doctor.rawValue == doctor else {
            throw StaffError(403, "change.not_yours", zh: "这不是您的出诊，不能为其他医生申请变更。",
                             en: "this is not your session; you cannot ask to change another doctor's session.")
        }
        if try changes(department: department, status: .pending).contains(where: { $0.change.session == change.session }) {
            throw StaffError(409, "change.pending", zh: "该出诊已有一项待审批的变更申请，请等待科主任处理后再申请。",
                             en: "this session already has a change request waiting for the department head; wait for the decision first.")
        }
        _ = try effect(of: change, row: row, department: department)
        let record = SessionChangeRecord(id: UUID().uuidString.lowercased(), change: change, department: department, requestedBy: staff,
                                         requestedMs: nowMs, status: .pending)
        try storing { try store.write { w in try w.insert("session_change", key: record.id, values: Self.values(record)) } }
        return record
    }

    /// A department's requests, newest first.
    package func changes(department: String, status: SessionChangeStatus? = nil, limit: Int = 200) throws(StaffError) -> [SessionChangeRecord] {
        var equal: [String: ColumnValue] = ["department": .text(department)]
        if let status { equal["status"] = .text(status.rawValue) }
        let rows = try storing { try store.liveRows("session_change", equal: equal, range: nil, newestBy: nil, limit: 100_000) }
        return rows.compactMap { Self.record($0.key, $0.row) }.sorted { ($0.requestedMs, $0.id) > ($1.requestedMs, $1.id) }.prefix(limit).map { $0 }
    }

    /// A doctor's own requests (for sessions they see or saw), newest first.
    package func changes(doctor: String, limit: Int = 100) throws(StaffError) -> [SessionChangeRecord] {
        let rows = try storing { try store.liveRows("session_change", equal: ["practitioner": .text(doctor)], range: nil, newestBy: nil, limit: 100_000) }
        return rows.compactMap { Self.record($0.key, $0.row) }.sorted { ($0.requestedMs, $0.id) > ($1.requestedMs, $1.id) }.prefix(limit).map { $0 }
    }

    package func change(_ id: String) throws(StaffError) -> SessionChangeRecord {
        guard let row = try storing({ try store.liveRow("session_change", key: id) }), let record = Self.record(id, row) else {
            throw StaffError(404, "change.not_found", zh: "没有这项变更申请。", en: "there is no such change request.")
        }
        return record
    }

    // MARK: Decisions

    /// Approves a pending request: checked again against the rota as it is now, then the rota
    /// changes in one transaction with the request's new status. The bookings follow on the
    /// session block's holder.
    package func approve(_ id: String, by staff: String, note: String) throws(StaffError) -> SessionChangeRecord {
        var record = try pending(id)
        let (row, department) = try session(record.change.session)
        let effect = try effect(of: record.change, row: row, department: department)
        record.status = .approved
        record.decidedBy = staff
        record.decidedMs = nowMs
        record.note = note.isEmpty ? nil : String(note.prefix(SessionChange.reasonMaxLength))
        record.movedTo = effect.newSession?.key
        let key = record.change.session.rawValue
        try storing {
            try store.write { w in
                if let s = effect.newSession {
                    try w.insert("schedule", key: s.key.rawValue, values: rota.scheduleValues(s, department: department, doctor: effect.doctor))
                }
                if !effect.schedule.isEmpty { try w.upsert("schedule", key: key, values: effect.schedule) }
                try w.upsert("session_change", key: id, values: Self.values(record))
            }
        }
        if let s = effect.newSession { rota.defineBlocks([s]) }
        return record
    }

    /// Refuses a pending request with the head's reason; nothing else changes.
    package func refuse(_ id: String, by staff: String, note: String) throws(StaffError) -> SessionChangeRecord {
        var record = try pending(id)
        let text: String
        do { text = try SessionChange.note(note) } catch { throw .invalid(error) }
        record.status = .refused
        record.decidedBy = staff
        record.decidedMs = nowMs
        record.note = text
        try storing { try store.write { w in try w.upsert("session_change", key: id, values: Self.values(record)) } }
        return record
    }

    private func pending(_ id: String) throws(StaffError) -> SessionChangeRecord {
        let record = try change(id)
        guard record.status == .pending else {
            throw StaffError(409, "change.decided", zh: "这项申请已经\(record.status.zh)，不能再次审批。",
                             en: "this request is already \(record.status.en); it cannot be decided again.")
        }
        return record
    }

    // MARK: Checking a change against the rota

    /// What approving a change writes: the session's schedule columns, and for a move the new session.
    struct Effect {
        var schedule: [String: ColumnValue] = [:]
        var newSession: RotaSession?
        /// Who sees the new session's patients.
        var doctor: PractitionerID?
    }

    /// The session's schedule row and department, if it still takes place and is not over.
    private func session(_ key: ScheduleKey) throws(StaffError) -> ([String: ColumnValue], String) {
        guard let row = try storing({ try store.liveRow("schedule", key: key.rawValue) }), let department = row["department"]?.textValue else {
            throw StaffError(404, "change.no_session", zh: "没有这个出诊时段。", en: "there is no such session.")
        }
        guard RotaDesk.isActive(row) else {
            throw StaffError(409, "change.not_active", zh: "该出诊已停诊或已改期，不能再变更。", en: "this session was cancelled or moved; it can no longer be changed.")
        }
        let place = RotaDesk.place(key, row)
        guard instantMs(key.date, place.end) > nowMs else {
            throw StaffError(409, "change.past", zh: "该出诊已经结束，不能再变更。", en: "this session is over; it can no longer be changed.")
        }
        return (row, department)
    }

    /// Checks `change` against the rota and the session's bookings now; what approving it writes.
    func effect(of change: SessionChange, row: [String: ColumnValue], department: String) throws(StaffError) -> Effect {
        let key = change.session
        let place = RotaDesk.place(key, row)
        let capacity = Int(row["capacity"]?.integerValue ?? 0)
        func conflicts(_ candidate: SessionPlace) throws(StaffError) {
            let others = try rota.published(department: department, from: candidate.key.date, through: candidate.key.date).active.values
                .filter { $0.key != key }
            if let c = Rota.conflicts([candidate] + others).first(where: { $0.first.key == candidate.key || $0.second.key == candidate.key }) {
                throw StaffError(409, c.code, zh: c.zh + "申请未提交。", en: c.en + " Nothing was changed.")
            }
        }
        switch change.kind {
        case .stop:
            return Effect(schedule: ["status": .text(SessionState.stopped.rawValue)])
        case .substitute:
            guard let substitute = change.substitute, try rota.doctors(department: department)[substitute] != nil else {
                throw StaffError(400, "change.substitute_unknown", zh: "替诊医生 \(change.substitute?.rawValue ?? "") 不是本科室的医生，请选择本科室医生。",
                                 en: "\(change.substitute?.rawValue ?? "") is not a doctor of this department; choose one who is.")
            }
            try conflicts(SessionPlace(key: key, doctor: substitute, start: place.start, end: place.end, room: place.room))
            return Effect(schedule: ["practitioner": .text(substitute.rawValue)])
        case .addSlots:
            let total = capacity + change.extraSlots
            guard Schedule.capacityRange.contains(total) else {
                throw StaffError(400, "schedule.capacity", zh: "加号后该出诊将有 \(total) 个号，超过上限 500，请减少加号数量。",
                                 en: "with the extra slots the session would hold \(total), above the limit of 500; ask for fewer.")
            }
            let room = booking.consensus.lookup { $0.block(key.rawValue)?.slots } ?? 0
            guard room >= total else {
                throw StaffError(409, "change.no_room", zh: "该出诊发布时没有为加号留出余量（最多 \(room) 个号），请改为加诊。",
                                 en: "this session was published without room for extra slots (at most \(room)); add a session instead.")
            }
            let perSlot = max(1, (place.end.minuteOfDay - place.start.minuteOfDay) / max(1, capacity))
            let end: LocalTime
            do { end = try LocalTime(minuteOfDay: place.end.minuteOfDay + change.extraSlots * perSlot, field: "extraSlots") } catch {
                throw StaffError(400, "change.past_midnight", zh: "加号后出诊会排到午夜之后，请减少加号数量。", en: "the extra slots would run past midnight; ask for fewer.")
            }
            try conflicts(SessionPlace(key: key, doctor: place.doctor, start: place.start, end: end, room: place.room))
            let reserve = Int(row["walk_in_reserve"]?.integerValue ?? 0) + (change.extraForWalkIns ? change.extraSlots : 0)
            return Effect(schedule: ["capacity": .integer(Int64(total)), "end": .text(end.description), "walk_in_reserve": .integer(Int64(reserve))])
        case .move:
            guard let to = change.moveTo else { throw .invalid(ValidationError(field: "moveDate", code: "change.move_missing", zh: "改期申请须填写新的日期和时段。", en: "A move needs the new date and half-day.")) }
            guard instantMs(key.date, place.start) > nowMs else {
                throw StaffError(409, "change.begun", zh: "该出诊已经开始，不能改期；可申请停诊。", en: "this session has begun and cannot be moved; ask to cancel it instead.")
            }
            if change.bookings == nil, activeBookings(key.rawValue) > 0 {
                throw StaffError(409, "change.bookings_unsaid", zh: "该出诊已有患者预约，请选择预约随出诊改期还是取消预约。",
                                 en: "this session has bookings; say whether they move with it or are cancelled.")
            }
            let start = to.start ?? to.halfDay.defaultStart
            let minutes = place.end.minuteOfDay - place.start.minuteOfDay
            let moved: RotaSession
            do {
                let end = try LocalTime(minuteOfDay: start.minuteOfDay + minutes, field: "moveStart")
                let schedule = try Schedule(practitionerID: key.practitionerID, departmentID: DepartmentID(department), date: to.date, halfDay: to.halfDay,
                                            capacity: capacity, feeFen: Int(row["fee_fen"]?.integerValue ?? 0), start: start, end: end)
                // Opens no later than the session it replaces: its bookings move in at once.
                let opens = min(row["opens_at_ms"]?.integerValue ?? 0, RotaDesk.ms(rota.release.opensAt(to.date)))
                moved = try RotaSession(schedule: schedule, room: place.room ?? "", walkInReserve: Int(row["walk_in_reserve"]?.integerValue ?? 0),
                                        opensAt: Date(timeIntervalSince1970: Double(opens) / 1000))
            } catch {
                throw .invalid(error)
            }
            guard instantMs(to.date, start) > nowMs else {
                throw StaffError(400, "change.move_past", zh: "新的出诊时间 \(to.date) \(start) 已经过去，请选择以后的时间。",
                                 en: "the new time \(to.date) \(start) has passed; choose a later one.")
            }
            if try rota.published(department: department, from: to.date, through: to.date).keys.contains(moved.key) {
                throw StaffError(409, "rota.exists", zh: "医生 \(key.practitionerID) 在 \(to.date) \(to.halfDay.zh)已有出诊记录，不能改到这一时段。",
                                 en: "doctor \(key.practitionerID) already has a session on \(to.date) in the \(to.halfDay.en); choose another time.")
            }
            try conflicts(SessionPlace(key: moved.key, doctor: place.doctor, start: moved.schedule.start, end: moved.schedule.end, room: place.room))
            return Effect(schedule: ["status": .text(SessionState.moved.rawValue)], newSession: moved, doctor: place.doctor)
        }
    }

    /// Bookings held or confirmed in the block, as this node knows them.
    private func activeBookings(_ block: String) -> Int {
        booking.consensus.lookup { $0.appointments(in: block) }.values.filter { $0.status == .pending || $0.status == .booked }.count
    }

    private func instantMs(_ date: CivilDate, _ time: LocalTime) -> Int64 {
        RotaDesk.ms(ShanghaiTime.instant(date: date, time: time))
    }

    // MARK: Rows

    static func values(_ r: SessionChangeRecord) -> [String: ColumnValue] {
        let c = r.change
        func text(_ s: String?) -> ColumnValue { s.map(ColumnValue.text) ?? .null }
        func integer(_ n: Int64?) -> ColumnValue { n.map(ColumnValue.integer) ?? .null }
        return [
            "session": .text(c.session.rawValue), "department": .text(r.department), "practitioner": .text(c.session.practitionerID.rawValue),
            "date": .text(c.session.date.description), "kind": .text(c.kind.rawValue), "reason": .text(c.reason),
            "substitute": text(c.substitute?.rawValue), "extra_slots": .integer(Int64(c.extraSlots)), "extra_walk_in": .integer(c.extraForWalkIns ? 1 : 0),
            "move_date": text(c.moveTo?.date.description), "move_half_day": text(c.moveTo?.halfDay.rawValue),
            "move_start": text(c.moveTo?.start?.description), "bookings": text(c.bookings?.rawValue),
            "status": .text(r.status.rawValue), "requested_by": .text(r.requestedBy), "requested_ms": .integer(r.requestedMs),
            "decided_by": text(r.decidedBy), "decided_ms": integer(r.decidedMs), "note": text(r.note),
            "moved_to": text(r.movedTo?.rawValue), "outcome": text(r.outcome),
        ]
    }

    /// A stored request; nil if it does not read back (a later version wrote what this one cannot).
    static func record(_ id: String, _ row: [String: ColumnValue]) -> SessionChangeRecord? {
        guard let session = row["session"]?.textValue.flatMap({ try? ScheduleKey(rawValue: $0) }),
              let kind = row["kind"]?.textValue.flatMap(SessionChangeKind.init(rawValue:)),
              let status = row["status"]?.textValue.flatMap(SessionChangeStatus.init(rawValue:)),
              let department = row["department"]?.textValue else { return nil }
        let move = row["move_date"]?.textValue.flatMap { try? CivilDate(parsing: $0) }.flatMap { date in
            row["move_half_day"]?.textValue.flatMap(HalfDay.init(rawValue:)).map { half in
                SessionMove(date: date, halfDay: half, start: row["move_start"]?.textValue.flatMap { try? LocalTime(parsing: $0) })
            }
        }
        // Read back as written: its own checks held on the day it was asked.
        guard let change = try? SessionChange(
            kind: kind, session: session, reason: row["reason"]?.textValue ?? "", substitute: row["substitute"]?.textValue.flatMap { try? PractitionerID($0) },
            extraSlots: Int(row["extra_slots"]?.integerValue ?? 0), extraForWalkIns: row["extra_walk_in"]?.integerValue == 1, moveTo: move,
            bookings: row["bookings"]?.textValue.flatMap(MovedBookings.init(rawValue:)), today: min(session.date, move?.date ?? session.date)) else { return nil }
        return SessionChangeRecord(
            id: id, change: change, department: department, requestedBy: row["requested_by"]?.textValue ?? "",
            requestedMs: row["requested_ms"]?.integerValue ?? 0, status: status, decidedBy: row["decided_by"]?.textValue,
            decidedMs: row["decided_ms"]?.integerValue, note: row["note"]?.textValue,
            movedTo: row["moved_to"]?.textValue.flatMap { try? ScheduleKey(rawValue: $0) }, outcome: row["outcome"]?.textValue)
    }
}
