import Consensus
import Crypto
import Domain
import Foundation
import ReplicatedStore
import Synchronization

// Appointments as FHIR calls them, derived from the booking records of the consensus side: a hold
// (Appointment pending, Slot busy-tentative), its confirmation (booked, busy), a release
// (cancelled, free). Staff steps after that (arrived, fulfilled, noshow) live in the replicated
// `appointment` table. Nothing here is a second copy of the booking state.

/// An appointment's id: the hold's request id, its slot and its block, so any node can route a
/// confirmation or cancellation to the block's holder before it has seen the hold itself.
struct AppointmentRef: Hashable, Sendable {
    var holdID: String
    var block: String
    var slot: Int

    /// The hold's request id: per patient, so one patient's request id can never clash with another's.
    static func holdID(patient: String, requestID: String) -> String {
        let digest = SHA256.hash(data: Array("\(patient)|\(requestID)".utf8))
        return "h" + digest.prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    var encoded: String { "\(holdID).\(slot).\(Data(block.utf8).base64URL)" }

    init(holdID: String, block: String, slot: Int) { self.holdID = holdID; self.block = block; self.slot = slot }

    init?(encoded: String) {
        let parts = encoded.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0].count == 25, parts[0].hasPrefix("h"), let slot = Int(parts[1]), slot >= 0,
              let data = Data(base64URL: parts[2]), let block = String(data: data, encoding: .utf8), !block.isEmpty else { return nil }
        self.init(holdID: parts[0], block: block, slot: slot)
    }

    var confirmationID: String { "c:" + holdID }
    var cancellationID: String { "x:" + holdID }
}

/// One doctor's session as patients search it (from the replicated `schedule` and `practitioner` rows).
struct SessionInfo: Sendable, Hashable {
    var schedule: String
    var department: String
    var departmentName: String
    var practitioner: String
    var practitionerName: String
    var title: PractitionerTitle?
    var date: CivilDate
    var halfDay: HalfDay
    var capacity: Int

    /// Slot `index` (0-based) start and end, "HH:mm", split evenly over the half-day's usual hours.
    func times(of index: Int) -> (start: LocalTime, end: LocalTime) {
        let first = halfDay.defaultStart.minuteOfDay, minutes = halfDay.defaultEnd.minuteOfDay - first
        func at(_ n: Int) -> LocalTime { (try? LocalTime(hour: (first + n * minutes / capacity) / 60, minute: (first + n * minutes / capacity) % 60)) ?? halfDay.defaultStart }
        return (at(index), at(index + 1))
    }

    /// Wall time (ms since 1970) when slot `index` starts, Asia/Shanghai.
    func startMs(of index: Int) -> Int64 {
        let t = times(of: index).start
        return Int64(ShanghaiTime.instant(date: date, time: t).timeIntervalSince1970 * 1000)
    }

    var quotaTag: QuotaTag { QuotaTag(visitDay: dayNumber(date), department: department) }
}

/// The sessions and doctors, read from the replica and kept for a moment: searches at the 15:00
/// rush must not read every schedule row from SQLite each time.
final class SessionDirectory: Sendable {
    private let cache = Mutex<(loadedAtNanos: UInt64, byKey: [String: SessionInfo])?>(nil)
    private let maxAgeNanos: UInt64 = 2_000_000_000

    func sessions(replica: Replica, nowNanos: UInt64) throws -> [String: SessionInfo] {
        if let c = cache.withLock({ $0 }), nowNanos &- c.loadedAtNanos < maxAgeNanos { return c.byKey }
        let fresh = try Self.load(replica)
        cache.withLock { $0 = (nowNanos, fresh) }
        return fresh
    }

    func forget() { cache.withLock { $0 = nil } }

    private static func load(_ replica: Replica) throws -> [String: SessionInfo] {
        let departments = try replica.liveRows("department")
        let practitioners = try replica.liveRows("practitioner")
        var out: [String: SessionInfo] = [:]
        for (key, row) in try replica.liveRows("schedule") {
            guard row["status"]?.text != "stopped", let p = row["practitioner"]?.text, let d = row["department"]?.text,
                  let dateText = row["date"]?.text, let date = try? CivilDate(parsing: dateText),
                  let half = row["half_day"]?.text.flatMap(HalfDay.init(rawValue:)), let capacity = row["capacity"]?.integer, capacity > 0 else { continue }
            out[key] = SessionInfo(
                schedule: key, department: d, departmentName: departments[d]?["name"]?.text ?? d, practitioner: p,
                practitionerName: practitioners[p]?["name"]?.text ?? p,
                title: practitioners[p]?["title"]?.text.flatMap(PractitionerTitle.init(rawValue:)),
                date: date, halfDay: half, capacity: Int(capacity))
        }
        return out
    }
}

/// What the consensus records say of one appointment.
struct AppointmentRecords: Sendable {
    var hold: Booking?
    var confirmation: Booking?
    var release: Booking?

    var status: AppointmentStatus? {
        if release != nil { return .cancelled }
        if confirmation != nil { return .booked }
        if hold != nil { return .pending }
        return nil
    }

    /// The records of `ref` this node knows (its own store and the takeovers' lists), valid only.
    static func find(_ ref: AppointmentRef, in core: ConsensusCore) -> AppointmentRecords {
        var found = AppointmentRecords()
        let collected = core.cluster.blocks[ref.block]?.collected ?? []
        for b in core.booking.store.records(in: ref.block) + collected where b.slot == ref.slot && bookingStatus(b, in: core.cluster) == .active {
            if b.id == ref.holdID { found.hold = b }
            if b.confirms == ref.holdID { found.confirmation = b }
            if b.releases == ref.holdID { found.release = b }
        }
        return found
    }
}

extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    init?(base64URL: String) {
        var s = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        self.init(base64Encoded: s)
    }
}
