import Domain
import Foundation
import ReplicatedCore

// Doctors' attendance (出诊签到): each doctor signs in to their own session on the workstation and
// out at its end; late, absent and early-leaving sessions are flagged (`Attendance`), and the
// department head sees planned against worked by doctor and week.

package struct AttendanceDesk: Sendable {
    let store: any RecordStore
    let clock: NodeClock
    /// Minutes of grace before a sign-in is late or a sign-out early (`floor.late_minutes`).
    package let toleranceMinutes: Int

    package init(store: any RecordStore, clock: NodeClock, toleranceMinutes: Int) {
        self.store = store; self.clock = clock; self.toleranceMinutes = toleranceMinutes
    }

    /// One session's attendance as this replica has it.
    package struct Line: Sendable, Hashable {
        package var session: ScheduleKey
        package var place: SessionPlace
        package var attendance: Attendance
        package var flags: Set<Attendance.Flag>
    }

    /// One doctor's week.
    package struct Week: Sendable, Hashable {
        package var doctor: PractitionerID
        package var monday: CivilDate
        package var planned = 0
        package var worked = 0
        package var late = 0
        package var absent = 0
        package var leftEarly = 0
        package var flagged: [Line] = []
    }

    /// Signs the doctor in to session `schedule` (today's, their own). A second sign-in keeps the first.
    package func signIn(_ schedule: String, practitioner: String) throws(StaffError) -> Line {
        let (key, row, place) = try ownSession(schedule, practitioner: practitioner)
        let now = clock.wallMillis()
        let existing = try storing { try store.liveRow("session_attendance", key: schedule) }
        if existing?["signed_in_ms"]?.integerValue == nil {
            let end = Attendance(date: key.date, start: place.start, end: place.end, signedInMs: nil, signedOutMs: nil).endMs
            guard now <= end else {
                throw StaffError(409, "attendance.over", zh: "该出诊时段已结束，不能再签到。", en: "this session is over; it can no longer be signed in to.")
            }
            try storing {
                try store.write { w in
                    try w.upsert("session_attendance", key: schedule, values: [
                        "practitioner": .text(practitioner), "department": .text(row["department"]?.textValue ?? ""), "date": .text(key.date.description),
                        "signed_in_ms": .integer(now)])
                }
            }
        }
        return try line(schedule)!
    }

    /// Signs the doctor out of session `schedule`; the last sign-out counts.
    package func signOut(_ schedule: String, practitioner: String) throws(StaffError) -> Line {
        _ = try ownSession(schedule, practitioner: practitioner)
        guard try storing({ try store.liveRow("session_attendance", key: schedule) })?["signed_in_ms"]?.integerValue != nil else {
            throw StaffError(409, "attendance.not_signed_in", zh: "尚未签到，不能签退。", en: "you have not signed in to this session, so you cannot sign out.")
        }
        try storing {
            try store.write { w in try w.upsert("session_attendance", key: schedule, values: ["signed_out_ms": .integer(clock.wallMillis())]) }
        }
        return try line(schedule)!
    }

    /// The session's attendance line, nil if it is not a published session here.
    package func line(_ schedule: String) throws(StaffError) -> Line? {
        guard let key = try? ScheduleKey(rawValue: schedule), let row = try storing({ try store.liveRow("schedule", key: schedule) }) else { return nil }
        let signed = try storing { try store.liveRow("session_attendance", key: schedule) }
        return makeLine(key, row, signed)
    }

    /// Planned against worked, by doctor and week, for the weeks from `from`'s Monday.
    package func weeks(department: String, from: CivilDate, weeks: Int) throws(StaffError) -> [Week] {
        let monday = (try? from.adding(days: 1 - from.weekday.rawValue)) ?? from
        let end = (try? monday.adding(days: 7 * weeks)) ?? monday
        let range = (column: "date", from: ColumnValue.text(monday.description), to: ColumnValue.text(end.description))
        let sessions = try storing { try store.liveRows("schedule", equal: ["department": .text(department)], range: range, newestBy: nil, limit: 1_000_000) }
        let signed = try storing { try store.liveRows("session_attendance", keys: Set(sessions.map(\.key))) }
        var out: [String: Week] = [:]
        for (key, row) in sessions where RotaDesk.isActive(row) {
            guard let k = try? ScheduleKey(rawValue: key) else { continue }
            let line = makeLine(k, row, signed[key])
            let weekStart = (try? k.date.adding(days: 1 - k.date.weekday.rawValue)) ?? k.date
            // The doctor who sees the patients: a substitute's session counts as theirs.
            let doctor = line.place.doctor
            var week = out["\(doctor.rawValue)|\(weekStart)"] ?? Week(doctor: doctor, monday: weekStart)
            week.planned += 1
            if line.attendance.worked { week.worked += 1 }
            if line.flags.contains(.late) { week.late += 1 }
            if line.flags.contains(.absent) { week.absent += 1 }
            if line.flags.contains(.leftEarly) { week.leftEarly += 1 }
            if !line.flags.isEmpty { week.flagged.append(line) }
            out["\(doctor.rawValue)|\(weekStart)"] = week
        }
        return out.values.map { w in
            var w = w
            w.flagged.sort { $0.session.rawValue < $1.session.rawValue }
            return w
        }.sorted { ($0.monday, $0.doctor.rawValue) < ($1.monday, $1.doctor.rawValue) }
    }

    private func makeLine(_ k: ScheduleKey, _ row: [String: ColumnValue], _ signed: [String: ColumnValue]?) -> Line {
        let place = RotaDesk.place(k, row)
        let attendance = Attendance(date: k.date, start: place.start, end: place.end, signedInMs: signed?["signed_in_ms"]?.integerValue,
                                    signedOutMs: signed?["signed_out_ms"]?.integerValue)
        return Line(session: k, place: place, attendance: attendance, flags: attendance.flags(nowMs: clock.wallMillis(), toleranceMinutes: toleranceMinutes))
    }

    /// Today's session of this doctor, or why not.
    private func ownSession(_ schedule: String, practitioner: String) throws(StaffError) -> (ScheduleKey, [String: ColumnValue], SessionPlace) {
        guard let key = try? ScheduleKey(rawValue: schedule), let row = try storing({ try store.liveRow("schedule", key: schedule) }) else {
            throw StaffError(404, "attendance.no_session", zh: "没有这个出诊时段。", en: "there is no such session.")
        }
        let place = RotaDesk.place(key, row)
        guard !practitioner.isEmpty, place.doctor.rawValue == practitioner else {
            throw StaffError(403, "attendance.not_your_session", zh: "这不是您的出诊，不能替其他医生签到或签退。", en: "this is not your session; you cannot sign in or out for another doctor.")
        }
        guard key.date == (try clock.today()) else {
            throw StaffError(409, "floor.not_today", zh: "该出诊时段不在今天（\(key.date)），只能为今天的出诊签到。", en: "this session is not today (\(key.date)); you sign in to today's sessions only.")
        }
        return (key, row, place)
    }
}
