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

public struct QuotaPolicy: Sendable, Hashable, Codable {
    public var rules: [QuotaRule]

    public init(rules: [QuotaRule]) { self.rules = rules }

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
                for (i, d) in days.enumerated() where days[i...].prefix { $0 < d + rule.windowDays }.count > rule.limit { return false }
            }
        }
        return true
    }
}
