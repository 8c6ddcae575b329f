import Foundation

/// One line of a doctor's weekly template (出诊模板): on `weekday`, in `halfDay`, the doctor sees
/// patients in `room`: `capacity` slots of `minutesPerSlot` minutes from `start`, of which the
/// last `walkInReserve` are kept for the registration desk (现场挂号).
public struct ClinicTemplate: Hashable, Sendable {
    public let practitionerID: PractitionerID
    public let weekday: Weekday
    public let halfDay: HalfDay
    public let room: String
    public let start: LocalTime
    public let capacity: Int
    public let minutesPerSlot: Int
    public let walkInReserve: Int

    public static let minutesPerSlotRange = 1...120
    public static let roomMaxLength = 30

    /// - Parameter start: defaults to the half-day's usual start.
    public init(practitionerID: PractitionerID, weekday: Weekday, halfDay: HalfDay, room: String, start: LocalTime? = nil,
                capacity: Int, minutesPerSlot: Int, walkInReserve: Int = 0) throws(ValidationError) {
        let start = start ?? halfDay.defaultStart
        self.room = try Self.room(room)
        guard Schedule.capacityRange.contains(capacity) else {
            throw ValidationError(
                field: "capacity", code: "schedule.capacity",
                zh: "每次出诊的号源数应在 1 至 500 之间，当前为 \(capacity)，请重新填写。",
                en: "A session holds between 1 and 500 slots, \(capacity) was given; please enter it again.")
        }
        guard Self.minutesPerSlotRange.contains(minutesPerSlot) else {
            throw ValidationError(
                field: "minutesPerSlot", code: "template.minutes_per_slot",
                zh: "每个号的时长应在 1 至 120 分钟之间，当前为 \(minutesPerSlot)，请重新填写。",
                en: "Each slot lasts between 1 and 120 minutes, \(minutesPerSlot) was given; please enter it again.")
        }
        try Self.checkReserve(walkInReserve, capacity: capacity)
        guard halfDay.allowedStarts.contains(start.minuteOfDay) else {
            throw ValidationError(
                field: "start", code: "schedule.start",
                zh: "\(halfDay.zh)出诊不能从 \(start) 开始（上午须早于 12:00，下午在 12:00 至 18:00 之前，晚间不早于 18:00），请修改开始时间或选择另一时段。",
                en: "A \(halfDay.en) session cannot start at \(start) (morning sessions start before 12:00, afternoon ones from 12:00 to before 18:00, evening ones at 18:00 or later); change the start time or the half-day.")
        }
        guard start.minuteOfDay + capacity * minutesPerSlot < 24 * 60 else {
            throw ValidationError(
                field: "capacity", code: "template.past_midnight",
                zh: "从 \(start) 开始的 \(capacity) 个 \(minutesPerSlot) 分钟的号会排到午夜之后，请减少号源数、缩短每号时长或提前开始。",
                en: "\(capacity) slots of \(minutesPerSlot) minutes from \(start) would run past midnight; lower the capacity, shorten the slots or start earlier.")
        }
        self.practitionerID = practitionerID
        self.weekday = weekday
        self.halfDay = halfDay
        self.start = start
        self.capacity = capacity
        self.minutesPerSlot = minutesPerSlot
        self.walkInReserve = walkInReserve
    }

    /// When the last slot ends.
    public var end: LocalTime { LocalTime(uncheckedMinuteOfDay: start.minuteOfDay + capacity * minutesPerSlot) }

    static func room(_ text: String) throws(ValidationError) -> String {
        try InputText.nonEmptyText(text, field: "room", maxLength: roomMaxLength, zhLabel: "诊室", enLabel: "room")
    }

    static func checkReserve(_ reserve: Int, capacity: Int) throws(ValidationError) {
        guard (0...capacity).contains(reserve) else {
            throw ValidationError(
                field: "walkInReserve", code: "template.walk_in_reserve",
                zh: "现场号预留数应在 0 至号源数 \(capacity) 之间，当前为 \(reserve)，请重新填写。",
                en: "The walk-in reserve must be between 0 and the session's \(capacity) slots, \(reserve) was given; please enter it again.")
        }
    }
}

/// When a published session's slots open for booking: `daysAhead` days before its date, at
/// `time` (Asia/Shanghai). The hospital's usual rule is seven days ahead at 15:00.
public struct ReleaseRule: Hashable, Sendable, Codable {
    public let daysAhead: Int
    public let time: LocalTime

    public static let standard = ReleaseRule(validatedDaysAhead: 7, time: LocalTime(uncheckedMinuteOfDay: 15 * 60))
    public static let daysAheadRange = 0...60

    public init(daysAhead: Int, time: LocalTime) throws(ValidationError) {
        guard Self.daysAheadRange.contains(daysAhead) else {
            throw ValidationError(
                field: "daysAhead", code: "release.days_ahead",
                zh: "放号提前天数应在 0 至 60 天之间，当前为 \(daysAhead)，请重新填写。",
                en: "Slots open between 0 and 60 days ahead, \(daysAhead) was given; please enter it again.")
        }
        self.init(validatedDaysAhead: daysAhead, time: time)
    }

    private init(validatedDaysAhead: Int, time: LocalTime) {
        daysAhead = validatedDaysAhead
        self.time = time
    }

    /// The instant a session on `date` opens for booking.
    public func opensAt(_ date: CivilDate) -> Date {
        let day = date.dayNumber - daysAhead
        let opening = CivilDate(dayNumber: day) ?? date
        return ShanghaiTime.instant(date: opening, time: time)
    }
}

/// A session on the rota (排班表): planned from a template or added by hand; it becomes bookable
/// once the rota is published.
public struct RotaSession: Hashable, Sendable {
    public let schedule: Schedule
    public let room: String
    public let walkInReserve: Int
    /// When its slots open for booking.
    public let opensAt: Date

    public var key: ScheduleKey { schedule.key }

    public init(schedule: Schedule, room: String, walkInReserve: Int, opensAt: Date) throws(ValidationError) {
        self.room = try ClinicTemplate.room(room)
        try ClinicTemplate.checkReserve(walkInReserve, capacity: schedule.capacity)
        self.schedule = schedule
        self.walkInReserve = walkInReserve
        self.opensAt = opensAt
    }
}

/// What the conflict checks need of a session, planned or published: who sees its patients,
/// when, where (sessions published before rooms were recorded have none).
public struct SessionPlace: Hashable, Sendable {
    public let key: ScheduleKey
    /// The key's doctor, or the one who stands in for them (替诊).
    public let doctor: PractitionerID
    public let start: LocalTime
    public let end: LocalTime
    public let room: String?

    public init(key: ScheduleKey, doctor: PractitionerID? = nil, start: LocalTime, end: LocalTime, room: String?) {
        self.key = key; self.doctor = doctor ?? key.practitionerID; self.start = start; self.end = end; self.room = room
    }
}

extension RotaSession {
    public var place: SessionPlace { SessionPlace(key: key, start: schedule.start, end: schedule.end, room: room) }
}

/// Two sessions of a rota that cannot both happen.
public struct RotaConflict: Hashable, Sendable {
    public enum Kind: String, Sendable {
        /// One doctor in two sessions at once (or twice in one half-day).
        case doctorTwice = "rota.doctor_twice"
        /// One room used by two sessions at once.
        case roomTwice = "rota.room_twice"
    }
    public let kind: Kind
    public let first: SessionPlace
    public let second: SessionPlace

    public var code: String { kind.rawValue }

    public var zh: String {
        let (a, b) = (first, second)
        switch kind {
        case .doctorTwice:
            return "医生 \(a.doctor) 在 \(a.key.date) 同时有两次出诊（\(a.key.halfDay.zh) \(a.start)-\(a.end) 与 \(b.key.halfDay.zh) \(b.start)-\(b.end)），请删除或改动其中一次。"
        case .roomTwice:
            return "诊室「\(a.room ?? "")」在 \(a.key.date) 同时排了两次出诊（\(a.doctor) \(a.start)-\(a.end) 与 \(b.doctor) \(b.start)-\(b.end)），请为其中一次换诊室或时间。"
        }
    }

    public var en: String {
        let (a, b) = (first, second)
        switch kind {
        case .doctorTwice:
            return "Doctor \(a.doctor) has two sessions at once on \(a.key.date) (\(a.key.halfDay.en) \(a.start)-\(a.end) and \(b.key.halfDay.en) \(b.start)-\(b.end)); remove or move one of them."
        case .roomTwice:
            return "Room \"\(a.room ?? "")\" holds two sessions at once on \(a.key.date) (\(a.doctor) \(a.start)-\(a.end) and \(b.doctor) \(b.start)-\(b.end)); give one of them another room or time."
        }
    }
}

/// Making a rota from the weekly templates, and finding what in it cannot happen.
public enum Rota {
    /// A rota is planned at most this many weeks at once, and never further than a year ahead.
    public static let weeksRange = 1...26
    public static let maximumDaysAhead = 366

    /// The sessions of `weeks` weeks from `from` (7 × weeks dates, whatever weekday `from` is),
    /// one per template line on its weekday, priced from `fees` by the doctor's title.
    /// - Parameters:
    ///   - practitioners: the doctors the templates may name; a template naming another is refused.
    ///   - today: the date in Shanghai now; a rota never starts in the past.
    public static func generate(templates: [ClinicTemplate], practitioners: [PractitionerID: Practitioner], from: CivilDate, weeks: Int,
                                today: CivilDate, fees: FeeTable = .standard, release: ReleaseRule = .standard) throws(ValidationError) -> [RotaSession] {
        guard weeksRange.contains(weeks) else {
            throw ValidationError(
                field: "weeks", code: "rota.weeks",
                zh: "一次排班应为 1 至 26 周，当前为 \(weeks) 周，请重新选择。",
                en: "A rota covers 1 to 26 weeks at a time, \(weeks) was asked; please choose again.")
        }
        try checkDates(from: from, days: 7 * weeks, today: today)
        var sessions: [RotaSession] = []
        for t in templates {
            guard let doctor = practitioners[t.practitionerID] else {
                throw ValidationError(
                    field: "practitionerID", code: "rota.unknown_doctor",
                    zh: "出诊模板中的医生 \(t.practitionerID) 不存在，请先建立该医生或删除这一行。",
                    en: "The template names doctor \(t.practitionerID), who does not exist; add the doctor first or delete the line.")
            }
            let offset = (t.weekday.rawValue - from.weekday.rawValue + 7) % 7
            for week in 0..<weeks {
                let date = try from.adding(days: offset + 7 * week)
                let schedule = try Schedule(practitioner: doctor, date: date, halfDay: t.halfDay, capacity: t.capacity,
                                            fees: fees, start: t.start, end: t.end)
                sessions.append(try RotaSession(schedule: schedule, room: t.room, walkInReserve: t.walkInReserve, opensAt: release.opensAt(date)))
            }
        }
        return sessions.sorted { ($0.schedule.date, $0.schedule.halfDay.order, $0.key.rawValue) < ($1.schedule.date, $1.schedule.halfDay.order, $1.key.rawValue) }
    }

    /// Refuses a rota (or one session) that reaches into the past or more than a year ahead.
    public static func checkDates(from: CivilDate, days: Int, today: CivilDate) throws(ValidationError) {
        guard from >= today else {
            throw ValidationError(
                field: "date", code: "rota.past",
                zh: "不能为已经过去的日期 \(from) 排班（今天是 \(today)），请选择今天或以后的日期。",
                en: "A rota cannot start on \(from), which has passed (today is \(today)); choose today or a later date.")
        }
        guard from.dayNumber + days - 1 <= today.dayNumber + maximumDaysAhead else {
            throw ValidationError(
                field: "date", code: "rota.too_far",
                zh: "排班最远只能到一年以后（\(maximumDaysAhead) 天内），请缩短周数或选择更近的日期。",
                en: "A rota reaches at most a year ahead (\(maximumDaysAhead) days); choose fewer weeks or an earlier date.")
        }
    }

    /// Every pair of sessions that cannot both happen: one doctor twice at once (or twice in a
    /// half-day, which the schedule's identity allows once), one room twice at once. Sessions
    /// that only touch (one ends when the other starts) do not conflict.
    public static func conflicts(_ sessions: [SessionPlace]) -> [RotaConflict] {
        var out: [RotaConflict] = []
        func scan(_ groups: some Sequence<[SessionPlace]>, _ kind: RotaConflict.Kind) {
            for group in groups where group.count > 1 {
                let sorted = group.sorted { ($0.start, $0.key.rawValue) < ($1.start, $1.key.rawValue) }
                for (i, a) in sorted.enumerated() {
                    for b in sorted[(i + 1)...] {
                        // Starts of one half-day sort together, so a later one of a's half-day is not past this break.
                        let sameHalfDay = kind == .doctorTwice && a.key.date == b.key.date && a.key.halfDay == b.key.halfDay
                        guard sameHalfDay || b.start < a.end else { break }
                        out.append(RotaConflict(kind: kind, first: a, second: b))
                    }
                }
            }
        }
        scan(Dictionary(grouping: sessions) { DoctorDay(doctor: $0.doctor, date: $0.key.date) }.values, .doctorTwice)
        scan(Dictionary(grouping: sessions.filter { $0.room != nil }) { RoomDay(room: $0.room ?? "", date: $0.key.date) }.values, .roomTwice)
        return out.sorted { ($0.first.key.rawValue, $0.second.key.rawValue, $0.code) < ($1.first.key.rawValue, $1.second.key.rawValue, $1.code) }
    }

    public static func conflicts(_ sessions: [RotaSession]) -> [RotaConflict] { conflicts(sessions.map(\.place)) }

    private struct DoctorDay: Hashable { var doctor: PractitionerID; var date: CivilDate }
    private struct RoomDay: Hashable { var room: String; var date: CivilDate }
}
