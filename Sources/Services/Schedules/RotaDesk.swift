import Consensus
import Domain
import Foundation
import ReplicatedCore

/// A department's rota (排班表): its doctors' weekly templates, the sessions planned from them for
/// the coming weeks, and publishing those: schedule and slot rows that every node receives, and a
/// lease block per session, held on this node, that opens at the session's release time.
package struct RotaDesk: Sendable {
    let store: any RecordStore
    let blocks: any SessionBlocks
    /// This node: it holds the blocks of the sessions it publishes.
    let node: String
    let clock: NodeClock
    let fees: FeeTable
    let release: ReleaseRule

    package init(store: any RecordStore, blocks: any SessionBlocks, node: String, clock: NodeClock,
                 fees: FeeTable = .standard, release: ReleaseRule = .standard) {
        self.store = store; self.blocks = blocks; self.node = node; self.clock = clock; self.fees = fees; self.release = release
    }

    /// Weeks of a department's rota as they would be published.
    package struct Plan: Sendable {
        /// Sessions not published yet and not begun, in date order.
        package var sessions: [RotaSession]
        /// Sessions of the templates that are published already (publishing leaves them as they are).
        package var published: [ScheduleKey]
        /// Pairs that cannot both happen, each with at least one new session in it.
        package var conflicts: [RotaConflict]
        /// Every session of the department published in the span, templates' or not.
        package var existing: [ScheduleKey: SessionPlace]
        /// Published sessions of the span that were stopped or moved since.
        package var ended: [ScheduleKey: (place: SessionPlace, state: SessionState)] = [:]
    }

    // MARK: Templates

    /// Saves one line of a doctor's weekly template (a line for the same weekday and half-day is
    /// replaced); returns the doctor's department. `department`: the one the rota being edited
    /// belongs to; a doctor of another is refused.
    @discardableResult
    package func saveTemplate(_ t: ClinicTemplate, department wanted: String? = nil) throws(StaffError) -> String {
        let department = try departmentOf(t.practitionerID)
        try saveTemplates([t], department: wanted ?? department)
        return department
    }

    /// Saves template lines of the department's doctors in one transaction (a line replaces the
    /// doctor's line of that weekday and half-day).
    package func saveTemplates(_ lines: [ClinicTemplate], department: String) throws(StaffError) {
        for doctor in Set(lines.map(\.practitionerID)) {
            let theirs = try departmentOf(doctor)
            guard theirs == department else {
                throw StaffError(400, "rota.other_department", zh: "医生 \(doctor) 属于科室 \(theirs)，不能排进 \(department) 的排班。",
                                 en: "doctor \(doctor) belongs to department \(theirs), not to \(department)'s rota.")
            }
        }
        try storing {
            try store.write { w in
                for t in lines {
                    try w.upsert("clinic_template", key: Self.templateKey(t.practitionerID, t.weekday, t.halfDay), values: [
                        "practitioner": .text(t.practitionerID.rawValue), "department": .text(department),
                        "weekday": .integer(Int64(t.weekday.rawValue)), "half_day": .text(t.halfDay.rawValue), "room": .text(t.room),
                        "start": .text(t.start.description), "capacity": .integer(Int64(t.capacity)),
                        "minutes_per_slot": .integer(Int64(t.minutesPerSlot)), "walk_in_reserve": .integer(Int64(t.walkInReserve)),
                    ])
                }
            }
        }
    }

    package func deleteTemplate(_ doctor: PractitionerID, _ weekday: Weekday, _ halfDay: HalfDay) throws(StaffError) {
        let key = Self.templateKey(doctor, weekday, halfDay)
        try storing {
            guard try store.liveRow("clinic_template", key: key) != nil else {
                throw StaffError(404, "template.not_found", zh: "没有这一行出诊模板（\(doctor) \(weekday.zh)\(halfDay.zh)），无需删除。",
                                 en: "there is no template line for \(doctor) on \(weekday.en) \(halfDay.en); nothing to delete.")
            }
            try store.write { w in _ = try w.delete("clinic_template", key: key) }
        }
    }

    /// The department's template lines, by doctor, weekday and half-day.
    package func templates(department: String) throws(StaffError) -> [ClinicTemplate] {
        let rows = try storing {
            try store.liveRows("clinic_template", equal: ["department": .text(department)], range: nil, newestBy: nil, limit: 100_000)
        }
        return rows.compactMap { Self.template($0.row) }
            .sorted { ($0.practitionerID.rawValue, $0.weekday.rawValue, $0.halfDay.order) < ($1.practitionerID.rawValue, $1.weekday.rawValue, $1.halfDay.order) }
    }

    // MARK: Planning and publishing

    /// The department's sessions of `weeks` weeks from `from`, made from its templates, beside
    /// what is published already. `includingBegun`: today's sessions that have begun are planned
    /// too (the demo's rota, as if published before today; never a page's).
    package func plan(department: String, from: CivilDate, weeks: Int, includingBegun: Bool = false) throws(StaffError) -> Plan {
        let today = try today()
        let doctors = try doctors(department: department)
        let sessions = try generate(try templates(department: department), doctors: doctors, from: from, weeks: weeks, today: today)
        let last = (try? from.adding(days: 7 * weeks - 1)) ?? from
        let existing = try published(department: department, from: from, through: last)
        // A stopped or moved session stays as it is: publishing never brings it back.
        let fresh = sessions.filter { !existing.keys.contains($0.key) && (includingBegun || !hasBegun($0)) }
        let freshKeys = Set(fresh.map(\.key))
        let conflicts = Rota.conflicts(fresh.map(\.place) + existing.active.values)
            .filter { freshKeys.contains($0.first.key) || freshKeys.contains($0.second.key) }
        return Plan(sessions: fresh, published: sessions.map(\.key).filter { existing.keys.contains($0) }, conflicts: conflicts, existing: existing.active,
                    ended: existing.ended)
    }

    /// Publishes the plan's new sessions, or nothing if any of them conflicts: their schedule and
    /// slot rows, and their blocks (held here, opening at their release times).
    package func publish(department: String, from: CivilDate, weeks: Int, includingBegun: Bool = false) throws(StaffError) -> Plan {
        let plan = try plan(department: department, from: from, weeks: weeks, includingBegun: includingBegun)
        if let first = plan.conflicts.first {
            let more = plan.conflicts.count - 1
            throw StaffError(409, first.code, zh: first.zh + (more > 0 ? "另有 \(more) 处冲突。" : "") + "排班未发布。",
                             en: first.en + (more > 0 ? " \(more) more conflict(s)." : "") + " Nothing was published.")
        }
        try write(plan.sessions, department: department)
        return plan
    }

    /// Adds one session outside the weekly template (加诊, a peak day), published at once: refused
    /// if the doctor has a session that half-day already, or if it conflicts with what is published.
    package func addSession(department: String, _ line: ClinicTemplate, on date: CivilDate) throws(StaffError) -> RotaSession {
        guard line.weekday == date.weekday else {
            throw StaffError(400, "rota.weekday", zh: "\(date) 是\(date.weekday.zh)，不是\(line.weekday.zh)。", en: "\(date) is a \(date.weekday.en), not a \(line.weekday.en).")
        }
        let doctors = try doctors(department: department)
        guard doctors[line.practitionerID] != nil else {
            throw StaffError(400, "rota.other_department", zh: "医生 \(line.practitionerID) 不在科室 \(department)。",
                             en: "doctor \(line.practitionerID) is not in department \(department).")
        }
        // The line's weekday is the date's: one week from the date makes exactly this session.
        guard let session = try generate([line], doctors: doctors, from: date, weeks: 1, today: try today()).first else { throw .storeUnavailable }
        guard !hasBegun(session) else {
            throw StaffError(400, "rota.past", zh: "这次出诊的开始时间已过，不能再加。", en: "this session's start has passed; it cannot be added.")
        }
        let existing = try published(department: department, from: date, through: date)
        if existing.keys.contains(session.key) {
            throw StaffError(409, "rota.exists", zh: "医生 \(line.practitionerID) 在 \(date) \(line.halfDay.zh)已有出诊；如需增加号源请走加号申请。",
                             en: "doctor \(line.practitionerID) already has a session on \(date) in the \(line.halfDay.en); ask for extra slots instead.")
        }
        if let conflict = Rota.conflicts([session.place] + existing.active.values).first(where: { $0.first.key == session.key || $0.second.key == session.key }) {
            throw StaffError(409, conflict.code, zh: conflict.zh + "未加诊。", en: conflict.en + " Nothing was added.")
        }
        try write([session], department: department)
        return session
    }

    func generate(_ templates: [ClinicTemplate], doctors: [PractitionerID: Practitioner], from: CivilDate, weeks: Int,
                  today: CivilDate) throws(StaffError) -> [RotaSession] {
        do {
            return try Rota.generate(templates: templates, practitioners: doctors, from: from, weeks: weeks, today: today, fees: fees, release: release)
        } catch {
            throw .invalid(error)
        }
    }

    /// A session of today whose start has passed: it is never published.
    func hasBegun(_ s: RotaSession) -> Bool {
        ShanghaiTime.instant(date: s.schedule.date, time: s.schedule.start).timeIntervalSince1970 * 1000 <= Double(clock.wallMillis())
    }

    /// Schedule rows for `sessions`, then their blocks, held here. No slot rows: a session's slots
    /// are its capacity, and their state comes from the booking records alone, so a row per slot
    /// would be replicated to every node for nothing (8 weeks of a large hospital: half a million).
    func write(_ sessions: [RotaSession], department: String) throws(StaffError) {
        try storing {
            try store.write { w in
                for s in sessions { try w.insert("schedule", key: s.key.rawValue, values: scheduleValues(s, department: department)) }
            }
        }
        defineBlocks(sessions)
    }

    /// A published session's schedule row. `doctor`: who sees its patients, if not the key's doctor.
    func scheduleValues(_ s: RotaSession, department: String, doctor: PractitionerID? = nil) -> [String: ColumnValue] {
        let schedule = s.schedule
        return [
            "practitioner": .text((doctor ?? schedule.practitionerID).rawValue), "department": .text(department),
            "date": .text(schedule.date.description), "half_day": .text(schedule.halfDay.rawValue),
            "capacity": .integer(Int64(schedule.capacity)), "status": .text(SessionState.active.rawValue), "room": .text(s.room),
            "start": .text(schedule.start.description), "end": .text(schedule.end.description),
            "walk_in_reserve": .integer(Int64(s.walkInReserve)), "fee_fen": .integer(Int64(schedule.feeFen)),
            "opens_at_ms": .integer(Self.ms(s.opensAt)), "home": .text(node),
        ]
    }

    /// Proposes the sessions' blocks, held here, opening at their release times.
    func defineBlocks(_ sessions: [RotaSession]) {
        blocks.defineSessions(sessions.map {
            SessionBlock(block: $0.key.rawValue, home: node, slots: Self.blockSlots, opensAtMs: Self.ms($0.opensAt))
        })
    }

    /// A session's block has room for the most slots a session may have: its capacity is the
    /// schedule row's, so extra slots (加号) need no new block. A block's slot count costs nothing
    /// per slot; only booked slots have records.
    package static let blockSlots = Schedule.capacityRange.upperBound

    /// Sessions published here, from today on, whose blocks `isDefined` does not know: the node
    /// stopped before its proposal was committed. The node proposes them again.
    package func sessionsWithoutBlocks(isDefined: (BlockID) -> Bool) throws(StaffError) -> [SessionBlock] {
        let today = try today()
        let rows = try storing {
            try store.liveRows("schedule", equal: ["home": .text(node)], range: (column: "date", from: .text(today.description), to: nil),
                               newestBy: nil, limit: 1_000_000)
        }
        return rows.compactMap { key, row in
            guard !isDefined(key), Self.isActive(row), row["capacity"]?.integerValue != nil,
                  let opens = row["opens_at_ms"]?.integerValue else { return nil }
            return SessionBlock(block: key, home: node, slots: Self.blockSlots, opensAtMs: opens)
        }.sorted { $0.block < $1.block }
    }

    // MARK: Rows

    package static func templateKey(_ doctor: PractitionerID, _ weekday: Weekday, _ halfDay: HalfDay) -> String {
        "\(doctor.rawValue)/\(weekday.rawValue)/\(halfDay.rawValue)"
    }

    /// A stored line; nil if it does not validate (a later version wrote what this one cannot read).
    static func template(_ row: [String: ColumnValue]) -> ClinicTemplate? {
        guard let doctor = row["practitioner"]?.textValue.flatMap({ try? PractitionerID($0) }),
              let weekday = row["weekday"]?.integerValue.flatMap({ Weekday(rawValue: Int($0)) }),
              let halfDay = row["half_day"]?.textValue.flatMap(HalfDay.init(rawValue:)),
              let room = row["room"]?.textValue, let start = row["start"]?.textValue.flatMap({ try? LocalTime(parsing: $0) }),
              let capacity = row["capacity"]?.integerValue, let minutes = row["minutes_per_slot"]?.integerValue,
              let reserve = row["walk_in_reserve"]?.integerValue else { return nil }
        return try? ClinicTemplate(practitionerID: doctor, weekday: weekday, halfDay: halfDay, room: room, start: start,
                                   capacity: Int(capacity), minutesPerSlot: Int(minutes), walkInReserve: Int(reserve))
    }

    /// A department's sessions of a span: those that take place, and every key with a schedule row.
    package struct Published: Sendable {
        /// Active sessions, as the conflict checks see them.
        package var active: [ScheduleKey: SessionPlace] = [:]
        /// Stopped and moved sessions too: their keys are not published again.
        package var keys: Set<ScheduleKey> = []
        /// Stopped and moved sessions, with their state.
        package var ended: [ScheduleKey: (place: SessionPlace, state: SessionState)] = [:]
    }

    /// The department's published sessions from `from` through `last` (sessions published before
    /// rooms and times were kept have the half-day's usual hours).
    package func published(department: String, from: CivilDate, through last: CivilDate) throws(StaffError) -> Published {
        // The range's upper bound is exclusive: the day after `last`.
        let end = (try? last.adding(days: 1)) ?? last
        let rows = try storing {
            try store.liveRows("schedule", equal: ["department": .text(department)],
                               range: (column: "date", from: .text(from.description), to: .text(end.description)), newestBy: nil, limit: 1_000_000)
        }
        var out = Published()
        for (key, row) in rows {
            guard let k = try? ScheduleKey(rawValue: key) else { continue }
            out.keys.insert(k)
            if Self.isActive(row) {
                out.active[k] = Self.place(k, row)
            } else if let state = row["status"]?.textValue.flatMap(SessionState.init(rawValue:)) {
                out.ended[k] = (Self.place(k, row), state)
            }
        }
        return out
    }

    /// Whether a schedule row's session takes place (demo sessions have no status).
    package static func isActive(_ row: [String: ColumnValue]) -> Bool {
        (row["status"]?.textValue ?? SessionState.active.rawValue) == SessionState.active.rawValue
    }

    /// Where and when a schedule row's session is (a session published before rooms and times
    /// were kept has its half-day's usual hours).
    package static func place(_ k: ScheduleKey, _ row: [String: ColumnValue]) -> SessionPlace {
        let start = row["start"]?.textValue.flatMap { try? LocalTime(parsing: $0) } ?? k.halfDay.defaultStart
        let end = row["end"]?.textValue.flatMap { try? LocalTime(parsing: $0) } ?? k.halfDay.defaultEnd
        let doctor = row["practitioner"]?.textValue.flatMap { try? PractitionerID($0) }
        return SessionPlace(key: k, doctor: doctor, start: start, end: end, room: row["room"]?.textValue)
    }

    package func doctors(department: String) throws(StaffError) -> [PractitionerID: Practitioner] {
        let rows = try storing {
            try store.liveRows("practitioner", equal: ["department": .text(department)], range: nil, newestBy: nil, limit: 100_000)
        }
        var out: [PractitionerID: Practitioner] = [:]
        for (key, row) in rows {
            guard let id = try? PractitionerID(key), let title = row["title"]?.textValue.flatMap(PractitionerTitle.init(rawValue:)),
                  let dept = try? DepartmentID(department),
                  let doctor = try? Practitioner(id: id, name: row["name"]?.textValue ?? "", title: title, departmentID: dept) else { continue }
            out[id] = doctor
        }
        return out
    }

    func departmentOf(_ doctor: PractitionerID) throws(StaffError) -> String {
        let row = try storing { try store.liveRow("practitioner", key: doctor.rawValue) }
        guard let department = row?["department"]?.textValue else {
            throw StaffError(404, "rota.unknown_doctor", zh: "医生 \(doctor) 不存在，请先建立该医生。",
                             en: "doctor \(doctor) does not exist; add the doctor first.")
        }
        return department
    }

    package func today() throws(StaffError) -> CivilDate { try clock.today() }

    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
}

/// Store work for the staff-facing desks: a refusal passes through; anything else means the
/// records cannot be used now.
@discardableResult
func storing<T>(_ body: () throws -> T) throws(StaffError) -> T {
    do { return try body() } catch let e as StaffError { throw e } catch { throw .storeUnavailable }
}

extension NodeClock {
    /// Today in Asia/Shanghai by this clock (the date the floor, the rota and attendance work on).
    package func today() throws(StaffError) -> CivilDate {
        do { return try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(wallMillis()) / 1000)).date } catch { throw .invalid(error) }
    }
}
