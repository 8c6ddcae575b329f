import Consensus
import Crypto
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
import Synchronization

// Appointments as FHIR calls them, derived from the booking records of the consensus side: a hold
// (Appointment pending, Slot busy-tentative), its confirmation (booked, busy), a release
// (cancelled, free). Staff steps after that (arrived, fulfilled, noshow) live in the replicated
// `appointment` table. Nothing here is a second copy of the booking state.

/// An appointment's id: the hold's request id, its slot and its block, so any node can route a
/// confirmation or cancellation to the block's holder before it has seen the hold itself.
package struct AppointmentRef: Hashable, Sendable {
    package var holdID: String
    package var block: String
    package var slot: Int

    /// The hold's request id: per patient, so one patient's request id can never clash with another's.
    package static func holdID(patient: String, requestID: String) -> String {
        let digest = SHA256.hash(data: Array("\(patient)|\(requestID)".utf8))
        return "h" + lowercaseHex(digest.prefix(12))
    }

    package var encoded: String { "\(holdID).\(slot).\(Data(block.utf8).base64URL)" }

    package init(holdID: String, block: String, slot: Int) { self.holdID = holdID; self.block = block; self.slot = slot }

    package init?(encoded: String) {
        let parts = encoded.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0].count == 25, parts[0].hasPrefix("h"), let slot = Int(parts[1]), slot >= 0,
              let data = Data(base64URL: parts[2]), let block = String(data: data, encoding: .utf8), !block.isEmpty else { return nil }
        self.init(holdID: parts[0], block: block, slot: slot)
    }

    package var confirmationID: String { "c:" + holdID }
    package var cancellationID: String { "x:" + holdID }
}

/// One doctor's session as patients search it (from the replicated `schedule` and `practitioner` rows).
package struct SessionInfo: Sendable, Hashable {
    package var schedule: String
    package var department: String
    package var departmentName: String
    package var practitioner: String
    package var practitionerName: String
    package var title: PractitionerTitle?
    package var date: CivilDate
    package var halfDay: HalfDay
    package var capacity: Int
    /// The session's hours: a published rota's own, else the half-day's usual ones.
    package var start: LocalTime
    package var end: LocalTime
    /// The last slots, kept for the registration desk (现场号): never offered online.
    package var walkInReserve: Int
    /// The consulting room (诊室) a published rota gives; "" for a session without one.
    package var room: String = ""

    /// Slots 0..<onlineSlots are offered online.
    package var onlineSlots: Int { capacity - walkInReserve }

    /// Slot `index` (0-based) start and end, "HH:mm", split evenly over the session's hours.
    package func times(of index: Int) -> (start: LocalTime, end: LocalTime) {
        let first = start.minuteOfDay, minutes = end.minuteOfDay - first
        func at(_ n: Int) -> LocalTime { (try? LocalTime(hour: (first + n * minutes / capacity) / 60, minute: (first + n * minutes / capacity) % 60)) ?? start }
        return (at(index), at(index + 1))
    }

    /// Wall time (ms since 1970) when slot `index` starts, Asia/Shanghai.
    package func startMs(of index: Int) -> Int64 {
        let t = times(of: index).start
        return Int64(ShanghaiTime.instant(date: date, time: t).timeIntervalSince1970 * 1000)
    }

    package var quotaTag: QuotaTag { QuotaTag(visitDay: date.unixDay, department: department) }
}

/// The sessions and doctors, read from the replica and kept in memory while the replica's
/// `department`, `practitioner` and `schedule` tables stay unchanged (their change stamps): searches
/// at the 15:00 rush never read SQLite for them, and a new session is visible at once. After a
/// change one request reloads; the others go on with the copy they have meanwhile.
package final class SessionDirectory: Sendable {
    /// One load: the sessions by key, and in the order searches list them.
    package struct Loaded: Sendable {
        var byKey: [String: SessionInfo]
        var ordered: [SessionInfo]
    }
    private struct Cache {
        var stamps: [UInt64] = []
        var loaded: Loaded?
        var reloading = false
    }
    private let cache = Mutex(Cache())
    private static let tables = ["department", "practitioner", "schedule"]
    /// Each session's slots as a search lists them, but for status (built once per session).
    private let templates = Mutex<[String: (info: SessionInfo, slots: [SlotResource])]>([:])

    package func sessions(_ store: any RecordStore) throws -> [String: SessionInfo] { try current(store).byKey }

    /// One session by key. While another request reloads, `current` answers from the copy
    /// before the change; a session missing from that copy is read afresh rather than called
    /// unknown (a booking refused "no such session" is a final answer).
    package func session(_ key: String, in store: any RecordStore) throws -> SessionInfo? {
        if let found = try current(store).byKey[key] { return found }
        let stale = cache.withLock { $0.stamps != Self.tables.map { store.changeStamp(table: $0) } }
        return stale ? try Self.load(store)[key] : nil
    }

    /// Every session by date, morning first, then schedule id.
    package func ordered(_ store: any RecordStore) throws -> [SessionInfo] { try current(store).ordered }

    private func current(_ store: any RecordStore) throws -> Loaded {
        let stamps = Self.tables.map { store.changeStamp(table: $0) }
        let current = cache.withLock { c -> Loaded? in
            if let loaded = c.loaded, c.stamps == stamps || c.reloading { return loaded }
            c.reloading = true
            return nil
        }
        if let current { return current }
        do {
            // Stamps taken before the read: a change committed meanwhile makes the next request reload.
            let byKey = try Self.load(store)
            let ordered = byKey.values.sorted {
                ($0.date, $0.halfDay.order, $0.schedule) < ($1.date, $1.halfDay.order, $1.schedule)
            }
            let fresh = Loaded(byKey: byKey, ordered: ordered)
            cache.withLock { $0 = Cache(stamps: stamps, loaded: fresh) }
            return fresh
        } catch {
            cache.withLock { $0.reloading = false }
            throw error
        }
    }

    /// The session's slots with everything but their status and opening time.
    package func slotTemplates(of s: SessionInfo) -> [SlotResource] {
        if let t = templates.withLock({ $0[s.schedule] }), t.info == s { return t.slots }
        let slots = (0..<s.capacity).map { index in
            let t = s.times(of: index)
            return SlotResource(
                id: "\(s.schedule)/\(index + 1)", schedule: s.schedule, department: s.department, departmentName: s.departmentName,
                practitioner: s.practitioner, practitionerName: s.practitionerName, title: s.title?.rawValue, titleZh: s.title?.zh,
                date: s.date.description, halfDay: s.halfDay.rawValue, start: t.start.description, end: t.end.description,
                status: SlotStatus.free.rawValue, opensAtMs: nil)
        }
        templates.withLock { $0[s.schedule] = (s, slots) }
        return slots
    }

    private static func load(_ store: any RecordStore) throws -> [String: SessionInfo] {
        let departments = try store.liveRows("department")
        let practitioners = try store.liveRows("practitioner")
        var out: [String: SessionInfo] = [:]
        for (key, row) in try store.liveRows("schedule") {
            // A stopped or moved session is no longer offered (its key stays with the old rows).
            guard RotaDesk.isActive(row) else { continue }
            out[key] = SessionInfo(schedule: key, row: row, department: { departments[$0] }, practitioner: { practitioners[$0] })
        }
        return out
    }
}

extension SessionInfo {
    /// A session from its schedule row, whatever its state; nil if the row lacks what a session
    /// needs. `department` and `practitioner` give the rows that name them.
    package init?(schedule key: String, row: [String: ColumnValue], department: (String) -> [String: ColumnValue]?,
                  practitioner: (String) -> [String: ColumnValue]?) {
        guard let p = row["practitioner"]?.text, let d = row["department"]?.text,
              let dateText = row["date"]?.text, let date = try? CivilDate(parsing: dateText),
              let half = row["half_day"]?.text.flatMap(HalfDay.init(rawValue:)), let capacity = row["capacity"]?.integer, capacity > 0 else { return nil }
        let start = row["start"]?.text.flatMap { try? LocalTime(parsing: $0) } ?? half.defaultStart
        let end = row["end"]?.text.flatMap { try? LocalTime(parsing: $0) } ?? half.defaultEnd
        let reserve = Int(row["walk_in_reserve"]?.integer ?? 0)
        let doctor = practitioner(p)
        self.init(
            schedule: key, department: d, departmentName: department(d)?["name"]?.text ?? d, practitioner: p,
            practitionerName: doctor?["name"]?.text ?? p, title: doctor?["title"]?.text.flatMap(PractitionerTitle.init(rawValue:)),
            date: date, halfDay: half, capacity: Int(capacity), start: start, end: end > start ? end : half.defaultEnd,
            walkInReserve: (0...Int(capacity)).contains(reserve) ? reserve : 0, room: row["room"]?.text ?? "")
    }
}

extension AppointmentRecords {
    /// The status once `acknowledged` is known to have happened, when these records may lag it:
    /// a confirmation makes a pending hold booked; a cancellation ends every status.
    package func status(after acknowledged: AppointmentStatus?) -> AppointmentStatus? {
        switch acknowledged {
        case .booked? where status == nil || status == .pending: .booked
        case .cancelled?: .cancelled
        default: status
        }
    }
}

extension Data {
    /// Base64 with the URL alphabet, unpadded: a byte map (Foundation's string search costs more
    /// than the encoding, and every appointment id carries one).
    package var base64URL: String {
        let bytes = base64EncodedData().compactMap { b -> UInt8? in
            switch b {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: b
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    package init?(base64URL: String) {
        var bytes = base64URL.utf8.map { b -> UInt8 in
            switch b {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: b
            }
        }
        while bytes.count % 4 != 0 { bytes.append(UInt8(ascii: "=")) }
        self.init(base64Encoded: Data(bytes))
    }
}

/// The statuses staff set on appointments (arrived, fulfilled, no-show: the replicated
/// `appointment` row), kept while the row's change stamp stands: a patient's list would otherwise
/// read SQLite once for every confirmed appointment in it.
package final class StaffStatusCache: Sendable {
    private struct Entry { var stamp: UInt64; var status: String? }
    private let entries = Mutex<[String: Entry]>([:])
    private let limit = 100_000

    /// The staff status of `holdID`'s appointment; nil if staff set none, or if the row cannot
    /// be read now (nothing is kept then).
    package func status(of holdID: String, in store: any RecordStore) -> String? {
        let stamp = store.changeStamp(table: "appointment", key: holdID)
        if let e = entries.withLock({ $0[holdID] }), e.stamp == stamp { return e.status }
        let status: String?
        do { status = try store.liveRow("appointment", key: holdID)?["status"]?.text } catch { return nil }
        entries.withLock { e in
            if e.count >= limit { e.removeAll(keepingCapacity: true) }
            e[holdID] = Entry(stamp: stamp, status: status)
        }
        return status
    }
}

extension BlockAvailability {
    package func status(of slot: Int, nowMs: Int64) -> SlotStatus {
        if unknown { return .busyUnavailable }
        switch taken[slot] {
        case nil: return .free
        case .booked: return .busy
        case .held: return .busyTentative
        case .releasedUntil(let t): return t > nowMs ? .busy : .free // released, back on offer at t
        }
    }
}

/// Each block's availability, kept while its records and lease epoch stay the same: a search at
/// the rush reads this, not every booking record of every session it lists.
package final class AvailabilityCache: Sendable {
    private let entries = Mutex<[BlockID: (version: UInt64, epoch: Epoch, value: BlockAvailability)]>([:])

    /// Call inside `BookingConsensus.lookup`.
    package func availability(of block: BlockID, _ summary: BookingLookup.Block, in lookup: BookingLookup) -> BlockAvailability {
        if let e = entries.withLock({ $0[block] }), e.version == summary.version, e.epoch == summary.epoch { return e.value }
        let value = lookup.availability(of: block)
        entries.withLock { $0[block] = (summary.version, summary.epoch, value) }
        return value
    }
}
