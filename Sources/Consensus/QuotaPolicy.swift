// Per-person booking quotas, checked by the holder of the patient's quota bucket against the
// reservations it holds for that patient. The holder is the only writer of its bucket under its
// epoch and sees every reservation that counts (its own, pending or acknowledged, and the ones a
// takeover collected), so checking them one request at a time is enough: no two reservations can
// both pass a limit that only one of them fits under.

/// What a reservation is for: the visit date (days since 1970-01-01) and the department.
public struct QuotaTag: Sendable, Hashable {
    public var visitDay: Int
    public var department: String

    public init(visitDay: Int, department: String) {
        self.visitDay = visitDay
        self.department = department
    }

    /// The form carried in `Booking.tag`: `<day>|<department>`.
    public var encoded: String { "\(visitDay)|\(department)" }

    public init?(encoded: String) {
        guard let bar = encoded.firstIndex(of: "|"), let day = Int(encoded[..<bar]) else { return nil }
        visitDay = day
        department = String(encoded[encoded.index(after: bar)...])
    }
}

/// One limit: at most `limit` active bookings in any `windowDays` consecutive visit dates
/// (of one department, if `perDepartment`).
public struct QuotaRule: Sendable, Hashable, Codable {
    public var windowDays: Int
    public var limit: Int
    public var perDepartment: Bool

    public init(windowDays: Int, limit: Int, perDepartment: Bool = false) {
        self.windowDays = windowDays
        self.limit = limit
        self.perDepartment = perDepartment
    }

    enum CodingKeys: String, CodingKey { case windowDays = "window_days", limit, perDepartment = "per_department" }
}

/// A mark against a patient, recorded in their quota bucket: a no-show, or a cancellation close
/// to the visit. Bans are counted from these (`BanRule`).
public struct Strike: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case noShow = "noshow"
        /// Cancelled within `BanRule.lateCancelHours` of the visit.
        case lateCancel = "late_cancel"
    }
    public var kind: Kind
    /// The day it happened (days since 1970-01-01, Asia/Shanghai): the visit date of a no-show,
    /// the date of a late cancellation.
    public var day: Int

    public init(kind: Kind, day: Int) { self.kind = kind; self.day = day }

    /// The form carried in `Booking.tag`: `strike|<kind>|<day>`.
    public var encoded: String { "strike|\(kind.rawValue)|\(day)" }

    public init?(encoded: String) {
        let parts = encoded.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "strike", let kind = Kind(rawValue: String(parts[1])), let day = Int(parts[2]) else { return nil }
        self.kind = kind; self.day = day
    }
}

/// One rung of the ban ladder: `count` strikes of `kind` within `windowDays` ban booking for
/// `banDays` from the day of the last of them.
public struct BanRule: Sendable, Hashable, Codable {
    public var kind: Strike.Kind
    public var count: Int
    public var windowDays: Int
    public var banDays: Int

    public init(kind: Strike.Kind, count: Int, windowDays: Int, banDays: Int) {
        self.kind = kind; self.count = count; self.windowDays = windowDays; self.banDays = banDays
    }

    enum CodingKeys: String, CodingKey { case kind, count, windowDays = "window_days", banDays = "ban_days" }
}

public struct QuotaPolicy: Sendable, Hashable, Codable {
    public var rules: [QuotaRule]
    public var bans: [BanRule]
    /// A cancellation this close to the visit start is a strike (`Strike.Kind.lateCancel`).
    public var lateCancelHours: Int

    public init(rules: [QuotaRule], bans: [BanRule] = QuotaPolicy.standardBans, lateCancelHours: Int = 24) {
        self.rules = rules; self.bans = bans; self.lateCancelHours = lateCancelHours
    }

    /// 3 no-shows within 12 months ban booking for 90 days; 3 late cancellations within 30 days, for 30.
    public static let standardBans = [
        BanRule(kind: .noShow, count: 3, windowDays: 365, banDays: 90),
        BanRule(kind: .lateCancel, count: 3, windowDays: 30, banDays: 30),
    ]

    enum CodingKeys: String, CodingKey { case rules, bans, lateCancelHours = "late_cancel_hours" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rules = try c.decodeIfPresent([QuotaRule].self, forKey: .rules) ?? QuotaPolicy.standard.rules
        bans = try c.decodeIfPresent([BanRule].self, forKey: .bans) ?? Self.standardBans
        lateCancelHours = try c.decodeIfPresent(Int.self, forKey: .lateCancelHours) ?? 24
    }

    /// The ban in force on `today`, if any: the rule and the first day the patient may book again.
    public func ban(strikes: [Strike], today: Int) -> (rule: BanRule, until: Int)? {
        var worst: (rule: BanRule, until: Int)?
        for rule in bans where rule.count > 0 {
            let days = strikes.filter { $0.kind == rule.kind }.map(\.day).sorted()
            // Each strike that completes `count` within the window starts a ban from its day.
            for (i, d) in days.enumerated() where i + 1 >= rule.count && d - days[i + 1 - rule.count] < rule.windowDays {
                let until = d + rule.banDays
                let inForce = (d..<until).contains(today)
                if inForce, until > (worst?.until ?? Int.min) { worst = (rule, until) }
            }
        }
        return worst
    }

    /// The defaults: one per department per visit date, 2 per visit date, 3 in any 7 consecutive
    /// visit dates, 5 in any 90.
    public static let standard = QuotaPolicy(rules: [
        QuotaRule(windowDays: 1, limit: 1, perDepartment: true),
        QuotaRule(windowDays: 1, limit: 2),
        QuotaRule(windowDays: 7, limit: 3),
        QuotaRule(windowDays: 90, limit: 5),
    ])

    /// The first rule that `new` would break, given the patient's active `held` reservations.
    public func broken(by new: QuotaTag, held: [QuotaTag]) -> QuotaRule? {
        for rule in rules {
            let days = held.filter { !rule.perDepartment || $0.department == new.department }.map(\.visitDay)
            // Every window of `windowDays` consecutive dates that contains the new visit date.
            for start in (new.visitDay - rule.windowDays + 1)...new.visitDay {
                let inWindow = days.filter { $0 >= start && $0 < start + rule.windowDays }.count
                if inWindow + 1 > rule.limit { return rule }
            }
        }
        return nil
    }

    /// Whether a set of active bookings respects every rule (for checkers).
    public func holds(for tags: [QuotaTag]) -> Bool {
        for rule in rules {
            let groups = rule.perDepartment ? Dictionary(grouping: tags, by: \.department).map(\.value) : [tags]
            for group in groups {
                let days = group.map(\.visitDay).sorted()
                for (i, d) in days.enumerated() where days[i...].prefix(while: { $0 < d + rule.windowDays }).count > rule.limit { return false }
            }
        }
        return true
    }
}

extension QuotaPolicy {
    /// The longest window any rule counts reservations over.
    public var longestWindowDays: Int { rules.map(\.windowDays).max() ?? 0 }
    /// How far back a strike can still count towards a ban in force: a ban's window before its
    /// last strike, and the ban itself after it.
    public var longestBanReachDays: Int { bans.map { $0.windowDays + $0.banDays }.max() ?? 0 }

    /// Days of slack between what a trim drops and what the next request may still count: the
    /// closing of past sessions lags, and the holder's clock may be a day off.
    public static let trimSlackDays = 7

    /// The trim of the quota buckets on `today` (days since 1970, Asia/Shanghai) when sessions stay
    /// open `openDaysBack` days after their date: reservations old enough that no window of a
    /// booking still possible reaches them, and strikes no ban from today on can count.
    public func trim(today: Int, openDaysBack: Int) -> QuotaTrim {
        let visitsFrom = today - max(0, openDaysBack) - Self.trimSlackDays
        return QuotaTrim(reservationsBefore: visitsFrom - longestWindowDays, visitsFrom: visitsFrom,
                         strikesBefore: today - Self.trimSlackDays - longestBanReachDays)
    }
}

/// What a quota bucket no longer keeps (`LeaseChange.trim`): a bucket holds every reservation and
/// strike of its patients, so without trimming it grows with the years. A trim is a takeover of the
/// bucket whose collected list leaves out the records it drops; the records it drops are then
/// inactive on every node (not made under the new epoch, not collected), and each node deletes them.
/// Decisions stay exact because the holder refuses reservations whose windows would reach the dropped
/// ones (`visitsFrom`), and no ban from now on counts a dropped strike.
public struct QuotaTrim: Sendable, Hashable, Codable {
    /// Reservations (and their releases and refusals) for visit dates before this day are dropped.
    public var reservationsBefore: Int
    /// The earliest visit date the bucket's holder takes a reservation for: every window that
    /// contains it starts on or after `reservationsBefore`.
    public var visitsFrom: Int
    /// Strikes of days before this one are dropped.
    public var strikesBefore: Int

    public init(reservationsBefore: Int, visitsFrom: Int, strikesBefore: Int) {
        self.reservationsBefore = reservationsBefore; self.visitsFrom = visitsFrom; self.strikesBefore = strikesBefore
    }

    enum CodingKeys: String, CodingKey {
        case reservationsBefore = "reservations_before", visitsFrom = "visits_from", strikesBefore = "strikes_before"
    }

    /// Whether this trim drops at least what `other` drops.
    public func covers(_ other: QuotaTrim) -> Bool {
        reservationsBefore >= other.reservationsBefore && visitsFrom >= other.visitsFrom && strikesBefore >= other.strikesBefore
    }

    /// The later of two trims, field by field: a bucket's trim never moves back.
    public static func latest(_ a: QuotaTrim?, _ b: QuotaTrim?) -> QuotaTrim? {
        guard let a else { return b }
        guard let b else { return a }
        return QuotaTrim(reservationsBefore: max(a.reservationsBefore, b.reservationsBefore), visitsFrom: max(a.visitsFrom, b.visitsFrom),
                         strikesBefore: max(a.strikesBefore, b.strikesBefore))
    }

    /// `records` (a bucket's, complete as a takeover collects them) without the ones this trim
    /// drops: old reservations and strikes by their own dates, refusals by the request's tag, and
    /// releases, or refused releases, of a dropped reservation.
    public func kept(_ records: [Booking]) -> [Booking] {
        var dropped: Set<String> = []
        for b in records where dropsByDate(b) { dropped.insert(b.id) }
        return records.filter { b in
            if dropped.contains(b.id) { return false }
            if let target = b.kind.released { return !dropped.contains(target) }
            if case .refusal = b.kind, b.id.hasPrefix(ConsensusCore.reservationReleasePrefix) {
                return !dropped.contains(String(b.id.dropFirst(ConsensusCore.reservationReleasePrefix.count)))
            }
            return true
        }
    }

    private func dropsByDate(_ b: Booking) -> Bool {
        switch b.kind {
        case .quotaReservation(let tag): return tag.visitDay < reservationsBefore
        case .strike(let strike): return strike.day < strikesBefore
        case .refusal(_, let requestTag):
            if let tag = QuotaTag(encoded: requestTag) { return tag.visitDay < reservationsBefore }
            if let strike = Strike(encoded: requestTag) { return strike.day < strikesBefore }
            return false
        case .booking, .hold, .confirmation, .cancellation, .expiry, .release, .floor, .stock: return false
        }
    }
}
