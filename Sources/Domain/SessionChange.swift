import Foundation

/// What a doctor asks to change about one of their published sessions (出诊变更); the department
/// head approves or refuses it.
public enum SessionChangeKind: String, CaseIterable, Hashable, Sendable {
    /// 停诊: the session does not take place; its bookings are cancelled.
    case stop
    /// 替诊: another doctor of the department sees the session's patients.
    case substitute
    /// 加号: more slots at the end of the session.
    case addSlots = "add_slots"
    /// 改期: the session moves to another date or time.
    case move

    public var zh: String {
        switch self {
        case .stop: "停诊"
        case .substitute: "替诊"
        case .addSlots: "加号"
        case .move: "改期"
        }
    }

    public var en: String {
        switch self {
        case .stop: "cancel the session"
        case .substitute: "substitute doctor"
        case .addSlots: "extra slots"
        case .move: "move the session"
        }
    }
}

/// What happens to a moved session's bookings: they move with it (same number where free), or
/// they are cancelled.
public enum MovedBookings: String, CaseIterable, Hashable, Sendable {
    case move
    case cancel
}

/// Where a session moves to.
public struct SessionMove: Hashable, Sendable {
    public let date: CivilDate
    public let halfDay: HalfDay
    /// Nil: the half-day's usual start.
    public let start: LocalTime?

    public init(date: CivilDate, halfDay: HalfDay, start: LocalTime?) {
        self.date = date; self.halfDay = halfDay; self.start = start
    }
}

/// A request to change a session, checked for what it says by itself; whether it fits the rota
/// and the bookings is the desk's part.
public struct SessionChange: Hashable, Sendable {
    public let kind: SessionChangeKind
    public let session: ScheduleKey
    /// Why, in the doctor's words (the head reads it; patients never do).
    public let reason: String
    /// `.substitute`: who sees the patients.
    public let substitute: PractitionerID?
    /// `.addSlots`: how many.
    public let extraSlots: Int
    /// `.addSlots`: kept for the registration desk (现场号) rather than offered online.
    public let extraForWalkIns: Bool
    /// `.move`: where to.
    public let moveTo: SessionMove?
    /// `.move`: what happens to its bookings (the desk requires it when there are any).
    public let bookings: MovedBookings?

    public static let reasonMaxLength = 200
    /// Slots one request adds at most (a session holds at most `Schedule.capacityRange` slots).
    public static let extraSlotsRange = 1...100

    public init(kind: SessionChangeKind, session: ScheduleKey, reason: String, substitute: PractitionerID? = nil,
                extraSlots: Int = 0, extraForWalkIns: Bool = false, moveTo: SessionMove? = nil, bookings: MovedBookings? = nil,
                today: CivilDate) throws(ValidationError) {
        self.reason = try InputText.nonEmptyText(reason, field: "reason", maxLength: Self.reasonMaxLength, zhLabel: "变更原因", enLabel: "reason")
        guard session.date >= today else {
            throw ValidationError(
                field: "session", code: "change.past",
                zh: "\(session.date) 的出诊已经过去，不能再变更。",
                en: "The session of \(session.date) is over; it can no longer be changed.")
        }
        switch kind {
        case .stop:
            break
        case .substitute:
            guard let substitute else {
                throw ValidationError(field: "substitute", code: "change.substitute_missing",
                                      zh: "替诊申请须选择替诊医生。", en: "A substitution needs the doctor who stands in; choose one.")
            }
            guard substitute != session.practitionerID else {
                throw ValidationError(field: "substitute", code: "change.substitute_self",
                                      zh: "替诊医生不能是本人，请选择另一位医生。", en: "A doctor cannot stand in for themselves; choose another doctor.")
            }
        case .addSlots:
            guard Self.extraSlotsRange.contains(extraSlots) else {
                throw ValidationError(
                    field: "extraSlots", code: "change.extra_slots",
                    zh: "加号数量应在 1 至 100 之间，当前为 \(extraSlots)，请重新填写。",
                    en: "Between 1 and 100 extra slots may be asked at once, \(extraSlots) was given; please enter it again.")
            }
        case .move:
            guard let moveTo else {
                throw ValidationError(field: "moveDate", code: "change.move_missing",
                                      zh: "改期申请须填写新的日期和时段。", en: "A move needs the new date and half-day.")
            }
            try Rota.checkDates(from: moveTo.date, days: 1, today: today)
            if moveTo.date == session.date, moveTo.halfDay == session.halfDay {
                throw ValidationError(
                    field: "moveHalfDay", code: "change.move_same_half_day",
                    zh: "新的时段与原出诊相同（\(session.date) \(session.halfDay.zh)）；同一时段内改开始时间请先停诊再加诊，或选择另一个日期或时段。",
                    en: "The new half-day is the session's own (\(session.date) \(session.halfDay.en)); choose another date or half-day.")
            }
        }
        self.kind = kind
        self.session = session
        self.substitute = kind == .substitute ? substitute : nil
        self.extraSlots = kind == .addSlots ? extraSlots : 0
        self.extraForWalkIns = kind == .addSlots && extraForWalkIns
        self.moveTo = kind == .move ? moveTo : nil
        self.bookings = kind == .move ? bookings : nil
    }
}

extension SessionChange {
    /// The department head's reason for refusing a request (the doctor reads it).
    public static func note(_ text: String) throws(ValidationError) -> String {
        try InputText.nonEmptyText(text, field: "note", maxLength: reasonMaxLength, zhLabel: "驳回原因", enLabel: "reason for refusing")
    }
}

/// Where a request stands.
public enum SessionChangeStatus: String, CaseIterable, Hashable, Sendable {
    /// Waiting for the department head.
    case pending
    /// Approved: the rota has changed, and the session block's holder moves or cancels the
    /// bookings and sends the SMS.
    case approved
    case refused

    public var zh: String {
        switch self {
        case .pending: "待审批"
        case .approved: "已批准"
        case .refused: "已驳回"
        }
    }

    public var en: String {
        switch self {
        case .pending: "pending"
        case .approved: "approved"
        case .refused: "refused"
        }
    }
}

/// A published session's state (the schedule row's `status`).
public enum SessionState: String, CaseIterable, Hashable, Sendable {
    case active
    /// 停诊: approved cancellation; its bookings are cancelled.
    case stopped
    /// 改期: it takes place under another key; its bookings move there or are cancelled.
    case moved
}
