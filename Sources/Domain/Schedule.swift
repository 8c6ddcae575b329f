import Foundation

/// 上午 / 下午: the two clinic sessions of a day.
public enum HalfDay: String, CaseIterable, Hashable, Sendable, Codable {
    case morning
    case afternoon
    /// 夜间门诊.
    case evening

    public var zh: String {
        switch self {
        case .morning: "上午"
        case .afternoon: "下午"
        case .evening: "晚间"
        }
    }

    public var en: String {
        switch self {
        case .morning: "morning"
        case .afternoon: "afternoon"
        case .evening: "evening"
        }
    }

    /// Default clinic hours: 08:00-12:00, 13:30-17:30 and 18:00-21:00.
    public var defaultStart: LocalTime {
        switch self {
        case .morning: LocalTime(uncheckedMinuteOfDay: 8 * 60)
        case .afternoon: LocalTime(uncheckedMinuteOfDay: 13 * 60 + 30)
        case .evening: LocalTime(uncheckedMinuteOfDay: 18 * 60)
        }
    }

    public var defaultEnd: LocalTime {
        switch self {
        case .morning: LocalTime(uncheckedMinuteOfDay: 12 * 60)
        case .afternoon: LocalTime(uncheckedMinuteOfDay: 17 * 60 + 30)
        case .evening: LocalTime(uncheckedMinuteOfDay: 21 * 60)
        }
    }

    /// Where a session of this half-day may start: morning sessions before noon, afternoon ones
    /// from noon to 18:00, evening ones from 18:00 on, so that a session's half-day always says
    /// when it happens.
    var allowedStarts: Range<Int> {
        switch self {
        case .morning: 0..<12 * 60
        case .afternoon: 12 * 60..<18 * 60
        case .evening: 18 * 60..<24 * 60
        }
    }

    /// Morning, afternoon, evening: the order of a day.
    public var order: Int {
        switch self {
        case .morning: 0
        case .afternoon: 1
        case .evening: 2
        }
    }
}

extension LocalTime {
    /// For values the caller has already kept within 0...1439 (constants, slot boundaries).
    init(uncheckedMinuteOfDay minute: Int) {
        minuteOfDay = minute
    }
}

/// FHIR Schedule: one doctor's clinic session (出诊) on one date and half-day, cut into `capacity`
/// numbered slots (号源).
public struct Schedule: Hashable, Sendable {
    public let practitionerID: PractitionerID
    public let departmentID: DepartmentID
    public let date: CivilDate
    public let halfDay: HalfDay
    /// Number of slots, 号序 1...capacity.
    public let capacity: Int
    /// Registration fee for each slot, in fen.
    public let feeFen: Int
    public let start: LocalTime
    public let end: LocalTime

    /// Up to 500 slots: a busy specialist's day of short visits stays well inside it.
    public static let capacityRange = 1...500

    /// The identity key: two nodes that create this session make the same key.
    public var key: ScheduleKey {
        ScheduleKey(practitionerID: practitionerID, date: date, halfDay: halfDay)
    }

    /// - Parameters:
    ///   - start: defaults to the half-day's usual start (08:00 or 13:30).
    ///   - end: defaults to the half-day's usual end (12:00 or 17:30).
    public init(
        practitionerID: PractitionerID, departmentID: DepartmentID, date: CivilDate, halfDay: HalfDay,
        capacity: Int, feeFen: Int, start: LocalTime? = nil, end: LocalTime? = nil
    ) throws(ValidationError) {
        let start = start ?? halfDay.defaultStart
        let end = end ?? halfDay.defaultEnd
        guard Self.capacityRange.contains(capacity) else {
            throw ValidationError(
                field: "capacity", code: "schedule.capacity",
                zh: "号源数量应在 1 至 500 之间，当前为 \(capacity)，请重新填写。",
                en: "The capacity must be between 1 and 500 slots, \(capacity) was given; please enter it again.")
        }
        try FeeTable.validateFee(feeFen, field: "feeFen")
        guard halfDay.allowedStarts.contains(start.minuteOfDay) else {
            throw ValidationError(
                field: "start", code: "schedule.start",
                zh: "\(halfDay.zh)出诊的开始时间 \(start) 不在\(halfDay.zh)（上午须早于 12:00，下午在 12:00 至 18:00 之前，晚间不早于 18:00），请修改开始时间或选择另一时段。",
                en: "A \(halfDay.en) session cannot start at \(start) (morning sessions start before 12:00, afternoon ones from 12:00 to before 18:00, evening ones at 18:00 or later); change the start time or the half-day.")
        }
        guard start < end else {
            throw ValidationError(
                field: "end", code: "schedule.end",
                zh: "出诊结束时间 \(end) 必须晚于开始时间 \(start)，请修改。",
                en: "The session end \(end) must be after its start \(start); please correct it.")
        }
        let minutes = end.minuteOfDay - start.minuteOfDay
        guard capacity <= minutes else {
            throw ValidationError(
                field: "capacity", code: "schedule.capacity.exceeds_minutes",
                zh: "\(minutes) 分钟的出诊时间放不下 \(capacity) 个号（每个号至少 1 分钟），请减少号源数量或延长出诊时间。",
                en: "A \(minutes)-minute session cannot hold \(capacity) slots (each needs at least one minute); lower the capacity or lengthen the session.")
        }
        self.practitionerID = practitionerID
        self.departmentID = departmentID
        self.date = date
        self.halfDay = halfDay
        self.capacity = capacity
        self.feeFen = feeFen
        self.start = start
        self.end = end
    }

    /// A session for `practitioner` in their own department, priced from `fees` by title unless
    /// `feeFen` overrides it for this session.
    public init(
        practitioner: Practitioner, date: CivilDate, halfDay: HalfDay, capacity: Int,
        feeFen: Int? = nil, fees: FeeTable = .standard, start: LocalTime? = nil, end: LocalTime? = nil
    ) throws(ValidationError) {
        try self.init(
            practitionerID: practitioner.id, departmentID: practitioner.departmentID, date: date,
            halfDay: halfDay, capacity: capacity, feeFen: feeFen ?? fees.feeFen(for: practitioner.title),
            start: start, end: end)
    }

    /// The session's slots, 号序 1...capacity, all free. The session is split evenly to the
    /// minute: slot n ends at start + n * length / capacity (rounded down), so the slots are
    /// contiguous and the last ends exactly at `end` even when the length does not divide evenly.
    public func slots() -> [Slot] {
        let minutes = end.minuteOfDay - start.minuteOfDay
        func boundary(_ n: Int) -> LocalTime {
            LocalTime(uncheckedMinuteOfDay: start.minuteOfDay + n * minutes / capacity)
        }
        return (1...capacity).map { sequence in
            Slot(validatedScheduleKey: key, sequence: sequence, start: boundary(sequence - 1), end: boundary(sequence), status: .free)
        }
    }
}

extension Schedule: Codable {
    private enum CodingKeys: String, CodingKey {
        case practitionerID, departmentID, date, halfDay, capacity, feeFen, start, end
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            practitionerID: container.decode(PractitionerID.self, forKey: .practitionerID),
            departmentID: container.decode(DepartmentID.self, forKey: .departmentID),
            date: container.decode(CivilDate.self, forKey: .date),
            halfDay: container.decode(HalfDay.self, forKey: .halfDay),
            capacity: container.decode(Int.self, forKey: .capacity),
            feeFen: container.decode(Int.self, forKey: .feeFen),
            start: container.decode(LocalTime.self, forKey: .start),
            end: container.decode(LocalTime.self, forKey: .end))
    }
}

/// FHIR Slot: one numbered appointment slot (号源) of a schedule.
public struct Slot: Hashable, Sendable {
    public let scheduleKey: ScheduleKey
    /// 号序, 1...capacity.
    public let sequence: Int
    public let start: LocalTime
    public let end: LocalTime
    public private(set) var status: SlotStatus

    public var key: SlotKey {
        SlotKey(validatedScheduleKey: scheduleKey, sequence: sequence)
    }

    public init(scheduleKey: ScheduleKey, sequence: Int, start: LocalTime, end: LocalTime, status: SlotStatus = .free) throws(ValidationError) {
        try SlotKey.validateSequence(sequence, field: "sequence")
        guard start < end else {
            throw ValidationError(
                field: "end", code: "slot.end",
                zh: "号源结束时间 \(end) 必须晚于开始时间 \(start)，请修改。",
                en: "The slot end \(end) must be after its start \(start); please correct it.")
        }
        self.init(validatedScheduleKey: scheduleKey, sequence: sequence, start: start, end: end, status: status)
    }

    init(validatedScheduleKey scheduleKey: ScheduleKey, sequence: Int, start: LocalTime, end: LocalTime, status: SlotStatus) {
        self.scheduleKey = scheduleKey
        self.sequence = sequence
        self.start = start
        self.end = end
        self.status = status
    }

    /// Changes the status if STATUS-TRANSITIONS.md allows it; otherwise leaves it and throws.
    public mutating func transition(to next: SlotStatus) throws(ValidationError) {
        status = try status.transition(to: next)
    }
}

extension Slot: Codable {
    private enum CodingKeys: String, CodingKey { case scheduleKey, sequence, start, end, status }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            scheduleKey: container.decode(ScheduleKey.self, forKey: .scheduleKey),
            sequence: container.decode(Int.self, forKey: .sequence),
            start: container.decode(LocalTime.self, forKey: .start),
            end: container.decode(LocalTime.self, forKey: .end),
            status: container.decode(SlotStatus.self, forKey: .status))
    }
}

/// FHIR Appointment: a patient's booking of one slot.
public struct Appointment: Hashable, Sendable {
    /// Made where the booking is written (a random UUID), never a database counter.
    public let id: UUID
    public let slotKey: SlotKey
    public let patientKey: PatientKey
    public private(set) var status: AppointmentStatus
    /// When the appointment was created (an instant; show it with `ShanghaiTime`).
    public let created: Date

    /// A new appointment starts `pending` (the slot is held); a stored one may be in any status
    /// the transition table uses.
    public init(id: UUID, slotKey: SlotKey, patientKey: PatientKey, status: AppointmentStatus = .pending, created: Date) throws(ValidationError) {
        guard !AppointmentStatus.unused.contains(status) else {
            throw ValidationError(
                field: "status", code: "appointment.status.unused",
                zh: "ClinicMesh 不使用预约状态「\(status.zh)」(\(status.rawValue))，请使用状态流转表中的状态。",
                en: "ClinicMesh does not use the appointment status \"\(status.en)\" (\(status.rawValue)); use a status from the transition table.")
        }
        self.id = id
        self.slotKey = slotKey
        self.patientKey = patientKey
        self.status = status
        self.created = created
    }

    /// Changes the status if STATUS-TRANSITIONS.md allows it; otherwise leaves it and throws.
    public mutating func transition(to next: AppointmentStatus) throws(ValidationError) {
        status = try status.transition(to: next)
    }
}

extension Appointment: Codable {
    private enum CodingKeys: String, CodingKey { case id, slotKey, patientKey, status, created }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: container.decode(UUID.self, forKey: .id),
            slotKey: container.decode(SlotKey.self, forKey: .slotKey),
            patientKey: container.decode(PatientKey.self, forKey: .patientKey),
            status: container.decode(AppointmentStatus.self, forKey: .status),
            created: container.decode(Date.self, forKey: .created))
    }
}
