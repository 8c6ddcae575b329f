import Foundation

/// A doctor's attendance at one session (出诊签到): when they signed in and out, judged against the
/// session's hours. Times are wall milliseconds; the session's hours are Asia/Shanghai.
public struct Attendance: Hashable, Sendable {
    public enum Flag: String, Hashable, Sendable, CaseIterable, Comparable {
        /// Signed in more than the tolerance after the start (迟到).
        case late
        /// The session ended and the doctor never signed in (缺勤).
        case absent
        /// Signed out more than the tolerance before the end (早退).
        case leftEarly = "left_early"

        public var zh: String {
            switch self {
            case .late: "迟到"
            case .absent: "缺勤"
            case .leftEarly: "早退"
            }
        }

        public var en: String {
            switch self {
            case .late: "late"
            case .absent: "absent"
            case .leftEarly: "left early"
            }
        }

        public static func < (a: Self, b: Self) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
    }

    public var startMs: Int64
    public var endMs: Int64
    public var signedInMs: Int64?
    public var signedOutMs: Int64?

    public init(date: CivilDate, start: LocalTime, end: LocalTime, signedInMs: Int64?, signedOutMs: Int64?) {
        startMs = Int64(ShanghaiTime.instant(date: date, time: start).timeIntervalSince1970 * 1000)
        endMs = Int64(ShanghaiTime.instant(date: date, time: end).timeIntervalSince1970 * 1000)
        self.signedInMs = signedInMs
        self.signedOutMs = signedOutMs
    }

    /// The flags at wall time `nowMs`, with `toleranceMinutes` of grace either side (a session
    /// not yet over is never absent; one without a sign-out is not judged for leaving early).
    public func flags(nowMs: Int64, toleranceMinutes: Int) -> Set<Flag> {
        let tolerance = Int64(toleranceMinutes) * 60_000
        guard let signedIn = signedInMs else { return nowMs > endMs ? [.absent] : [] }
        var out: Set<Flag> = []
        if signedIn > startMs + tolerance { out.insert(.late) }
        if let signedOut = signedOutMs, signedOut < endMs - tolerance { out.insert(.leftEarly) }
        return out
    }

    /// Whether the doctor worked the session (signed in).
    public var worked: Bool { signedInMs != nil }
}
