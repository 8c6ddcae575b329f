/// A FHIR status whose changes follow ClinicMesh's own transition table.
///
/// FHIR R4 lists the status values but gives no normative transitions, so the table lives in
/// `STATUS-TRANSITIONS.md` beside this file, and `allowedNext` spells out exactly the same rows.
/// A test parses the markdown and compares every (from, to) pair, so the two cannot drift.
public protocol ClinicStatus: CaseIterable, Hashable, Sendable, Codable, RawRepresentable
where RawValue == String, AllCases == [Self] {
    /// The resource whose status this is: a code for error codes ("slot") and labels.
    static var resource: (code: String, zh: String, en: String) { get }
    var zh: String { get }
    var en: String { get }
    /// The statuses this one may change to: exactly the table's rows starting here.
    var allowedNext: Set<Self> { get }
}

extension ClinicStatus {
    public func canTransition(to next: Self) -> Bool {
        allowedNext.contains(next)
    }

    /// Returns `next` if the table allows the change, and otherwise refuses it with an error
    /// that names both statuses and lists what is allowed from here.
    public func transition(to next: Self) throws(ValidationError) -> Self {
        guard canTransition(to: next) else { throw refusal(to: next) }
        return next
    }

    /// Statuses that have no way out (final states and the ones ClinicMesh does not use).
    public var isTerminal: Bool { allowedNext.isEmpty }

    private func refusal(to next: Self) -> ValidationError {
        let resource = Self.resource
        // Keep the order of `allCases` so that messages are stable.
        let allowed = Self.allCases.filter(allowedNext.contains)
        let zhFrom = "「\(zh)」(\(rawValue))", zhTo = "「\(next.zh)」(\(next.rawValue))"
        let enFrom = "\"\(en)\" (\(rawValue))", enTo = "\"\(next.en)\" (\(next.rawValue))"
        let zhAdvice: String, enAdvice: String
        if allowed.isEmpty {
            zhAdvice = "\(zhFrom) 是终止状态，不能再改变；如需重新办理，请新建记录。"
            enAdvice = "\(enFrom) is a final status and cannot change; to start again, create a new record."
        } else {
            zhAdvice = "从 \(zhFrom) 只能改为：" + allowed.map { "「\($0.zh)」(\($0.rawValue))" }.joined(separator: "、") + "。请按状态流转表操作。"
            enAdvice = "From \(enFrom) the status may only change to: " + allowed.map { "\"\($0.en)\" (\($0.rawValue))" }.joined(separator: ", ") + ". Please follow the status transition table."
        }
        return ValidationError(
            field: "status", code: "\(resource.code).status.transition",
            zh: "\(resource.zh)状态不能从 \(zhFrom) 改为 \(zhTo)。" + zhAdvice,
            en: "The \(resource.en) status cannot change from \(enFrom) to \(enTo). " + enAdvice)
    }
}

/// FHIR R4 Slot.status; raw values are the FHIR codes.
public enum SlotStatus: String, ClinicStatus {
    case busy
    case free
    case busyUnavailable = "busy-unavailable"
    case busyTentative = "busy-tentative"
    case enteredInError = "entered-in-error"

    public static var resource: (code: String, zh: String, en: String) { ("slot", "号源", "slot") }

    public var zh: String {
        switch self {
        case .busy: "已预约"
        case .free: "可预约"
        case .busyUnavailable: "停诊"
        case .busyTentative: "锁号中"
        case .enteredInError: "录入错误"
        }
    }

    public var en: String {
        switch self {
        case .busy: "booked"
        case .free: "free"
        case .busyUnavailable: "unavailable"
        case .busyTentative: "held"
        case .enteredInError: "entered in error"
        }
    }

    /// Mirrors the "Slot" table of STATUS-TRANSITIONS.md.
    public var allowedNext: Set<SlotStatus> {
        switch self {
        case .free: [.busyTentative, .busyUnavailable, .enteredInError]   // hold; 停诊; correction
        case .busyTentative: [.busy, .free, .enteredInError]              // confirm; released; correction
        case .busy: [.free, .enteredInError]                              // cancel; correction
        case .busyUnavailable: [.free, .enteredInError]                   // session resumes; correction
        case .enteredInError: []
        }
    }
}

/// FHIR R4 Appointment.status; raw values are the FHIR codes.
public enum AppointmentStatus: String, ClinicStatus {
    case proposed
    case pending
    case booked
    case arrived
    case fulfilled
    case cancelled
    case noshow
    case enteredInError = "entered-in-error"
    case checkedIn = "checked-in"
    case waitlist

    public static var resource: (code: String, zh: String, en: String) { ("appointment", "预约", "appointment") }

    /// ClinicMesh's flow never uses these (no row of the table mentions them).
    public static let unused: Set<AppointmentStatus> = [.proposed, .checkedIn, .waitlist]

    public var zh: String {
        switch self {
        case .proposed: "拟定（未使用）"
        case .pending: "待支付"
        case .booked: "已预约"
        case .arrived: "已报到"
        case .fulfilled: "已就诊"
        case .cancelled: "已取消"
        case .noshow: "爽约"
        case .enteredInError: "录入错误"
        case .checkedIn: "已签到（未使用）"
        case .waitlist: "候补（未使用）"
        }
    }

    public var en: String {
        switch self {
        case .proposed: "proposed (not used)"
        case .pending: "awaiting payment"
        case .booked: "booked"
        case .arrived: "arrived"
        case .fulfilled: "fulfilled"
        case .cancelled: "cancelled"
        case .noshow: "no-show"
        case .enteredInError: "entered in error"
        case .checkedIn: "checked in (not used)"
        case .waitlist: "waitlisted (not used)"
        }
    }

    /// Mirrors the "Appointment" table of STATUS-TRANSITIONS.md.
    public var allowedNext: Set<AppointmentStatus> {
        switch self {
        case .pending: [.booked, .cancelled, .enteredInError]             // pay; hold released; correction
        case .booked: [.cancelled, .arrived, .noshow, .enteredInError]    // cancel; check-in; no-show; correction
        case .arrived: [.fulfilled, .enteredInError]                      // seen; correction
        case .fulfilled, .cancelled, .noshow, .enteredInError: []         // final
        case .proposed, .checkedIn, .waitlist: []                         // not used
        }
    }
}
