import Domain

// A session's queue on the clinic floor (报到, 叫号, 过号) is owned state of its block: floor records,
// numbered by the holder and quorum-accepted like bookings, so only the holder changes the queue
// and a takeover carries it to the next holder. The queue itself is never stored: every replica
// derives it from the block's valid records, the same way it derives slot statuses.

/// What happened on the floor, as a floor record says it.
public enum FloorEvent: Hashable, Sendable {
    /// The patient of appointment `id` (its hold's id, or a staff booking's) arrived.
    case checkIn(String)
    /// Appointment `id` is called; the one called before is done, or missed (过号) if `previousMissed`.
    case call(String, previousMissed: Bool)
    /// The patient called now is called again.
    case recall(String)
    /// The patient called now is done (or missed) and nobody is called next: nobody is waiting.
    case finish(missed: Bool)
    /// A missed patient came back and waits again behind the next `behind` waiting patients.
    case returned(String, behind: Int)
    /// The session is over: nobody is called any more; booked patients who never came are no-shows.
    case close
}

/// A floor record's kind: the event and the number the holder gave it (events apply in that order).
public struct FloorRecord: Hashable, Sendable {
    public var seq: Int
    public var event: FloorEvent

    public init(seq: Int, event: FloorEvent) { self.seq = seq; self.event = event }

    static let prefix = "floor:"

    /// The record's tag (`floor:<seq>:<verb>[:<flag or count>][:<id>]`; the id last, as it may hold colons).
    var encoded: String {
        let body = switch event {
        case .checkIn(let id): "checkin:\(id)"
        case .call(let id, let missed): "call:\(missed ? 1 : 0):\(id)"
        case .recall(let id): "recall:\(id)"
        case .finish(let missed): "finish:\(missed ? 1 : 0)"
        case .returned(let id, let behind): "return:\(behind):\(id)"
        case .close: "close"
        }
        return "\(Self.prefix)\(seq):\(body)"
    }

    init?(encoded tag: String) {
        guard tag.hasPrefix(Self.prefix) else { return nil }
        let parts = tag.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count >= 2, let seq = Int(parts[0]), seq > 0 else { return nil }
        guard let event = FloorWords.event(String(parts[1])) else { return nil }
        self.init(seq: seq, event: event)
    }
}

/// What a client asks of the holder (a request's tag): the holder turns it into the next event,
/// or refuses it, from the queue as its records say it now.
public enum FloorCommand: Hashable, Sendable {
    /// Check in appointment `id`; a patient who missed the call waits again behind `behind` others.
    case checkIn(String, behind: Int)
    /// Call the first patient waiting. `expecting`: who the asking screen shows as called now
    /// (nil: nobody); if that changed since, nothing happens, so two screens pressing at once
    /// call one patient. `missed`: the one called now did not come (过号).
    case next(expecting: String?, missed: Bool)
    /// Call `expecting`, the patient called now, again.
    case recall(expecting: String)
    case close

    static let prefix = "queue:"

    public var requestTag: String {
        let body = switch self {
        case .checkIn(let id, let behind): "checkin:\(behind):\(id)"
        case .next(let expecting, let missed): "next:\(missed ? 1 : 0):\(expecting ?? "")"
        case .recall(let expecting): "recall:\(expecting)"
        case .close: "close"
        }
        return Self.prefix + body
    }

    public init?(requestTag tag: String) {
        guard tag.hasPrefix(Self.prefix) else { return nil }
        let parts = tag.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "checkin" where parts.count == 3:
            guard let behind = Int(parts[1]), (0...SessionQueue.maxBehind).contains(behind), !parts[2].isEmpty else { return nil }
            self = .checkIn(parts[2], behind: behind)
        case "next" where parts.count == 3 && ["0", "1"].contains(parts[1]):
            self = .next(expecting: parts[2].isEmpty ? nil : parts[2], missed: parts[1] == "1")
        case "recall" where parts.count >= 2:
            let id = parts.dropFirst().joined(separator: ":")
            guard !id.isEmpty else { return nil }
            self = .recall(expecting: id)
        case "close" where parts.count == 1:
            self = .close
        default:
            return nil
        }
    }
}

enum FloorWords {
    /// An event from its tag's body (after the number).
    static func event(_ body: String) -> FloorEvent? {
        let parts = body.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        func rest(_ from: Int) -> String? {
            let id = parts.dropFirst(from).joined(separator: ":")
            return id.isEmpty ? nil : id
        }
        switch parts.first {
        case "checkin": return rest(1).map { .checkIn($0) }
        case "call" where parts.count == 3 && ["0", "1"].contains(parts[1]): return rest(2).map { .call($0, previousMissed: parts[1] == "1") }
        case "recall": return rest(1).map { .recall($0) }
        case "finish" where parts.count == 2 && ["0", "1"].contains(parts[1]): return .finish(missed: parts[1] == "1")
        case "return" where parts.count == 3:
            guard let behind = Int(parts[1]), (0...SessionQueue.maxBehind).contains(behind) else { return nil }
            return rest(2).map { .returned($0, behind: behind) }
        case "close" where parts.count == 1: return .close
        default: return nil
        }
    }
}

/// A session's queue as the block's valid records say it: who is booked, waiting in which order,
/// called now, seen, missed, or a no-show.
public struct SessionQueue: Sendable, Equatable {
    public static let maxBehind = 50

    public enum Stage: String, Sendable, Equatable {
        /// Booked (confirmed), not arrived.
        case booked
        case waiting
        case called
        case seen
        /// Called and did not come (过号); waits again only after checking in again.
        case missed
        /// Never came to a session that closed.
        case noShow = "no_show"
    }

    public struct Entry: Sendable, Equatable {
        /// The appointment's id: its hold's (or a staff booking's) request id.
        public var id: String
        public var slot: Int
        public var patient: String
        public var stage: Stage
        /// How many times it was called (a recall counts again).
        public var calls: Int = 0
        /// The floor record that last changed it (0: none).
        public var seq: Int = 0
        /// The waiting order: 号序 for a check-in; behind another patient's key for a return.
        var key: [Int] = []
    }

    public private(set) var entries: [String: Entry] = [:]
    /// The appointment called now.
    public private(set) var current: String?
    public private(set) var closed = false
    /// The number of the newest floor record (the next one gets the number after it).
    public private(set) var lastSeq = 0

    /// The queue from the valid records of one block (bookings, holds, confirmations, releases and
    /// floor records; others are ignored).
    public init(records: [Booking]) {
        var booked: [String: Booking] = [:]
        var confirmed: Set<String> = []
        var released: Set<String> = []
        var floor: [(FloorRecord, String)] = []
        for b in records {
            switch b.kind {
            case .booking, .hold: booked[b.id] = b
            case .confirmation(let hold, _): confirmed.insert(hold)
            case .cancellation(let target), .expiry(let target), .release(let target, _): released.insert(target)
            case .floor(let r): floor.append((r, b.id))
            case .quotaReservation, .strike, .refusal, .stock: break
            }
        }
        for (id, b) in booked where !released.contains(id) {
            if case .hold = b.kind, !confirmed.contains(id) { continue }
            entries[id] = Entry(id: id, slot: b.slot, patient: b.patient, stage: .booked)
        }
        for (r, _) in floor.sorted(by: { ($0.0.seq, $0.1) < ($1.0.seq, $1.1) }) { apply(r) }
    }

    /// Those waiting, first to be called first.
    public var waiting: [Entry] {
        entries.values.filter { $0.stage == .waiting }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    public enum Decision: Sendable, Equatable {
        case event(FloorEvent)
        case refused(RefuseReason)
    }

    /// The event `command` asks for now, or why it is refused.
    public func decide(_ command: FloorCommand) -> Decision {
        if closed { return .refused(.sessionClosed) }
        switch command {
        case .checkIn(let id, let behind):
            guard let e = entries[id] else { return .refused(.noAppointment) }
            switch e.stage {
            case .booked: return .event(.checkIn(id))
            case .missed: return .event(.returned(id, behind: behind))
            case .waiting, .called, .seen: return .refused(.alreadyArrived)
            case .noShow: return .refused(.sessionClosed)
            }
        case .next(let expecting, let missed):
            guard current == expecting else { return .refused(.queueChanged) }
            if let first = waiting.first { return .event(.call(first.id, previousMissed: missed)) }
            return current == nil ? .refused(.queueEmpty) : .event(.finish(missed: missed))
        case .recall(let expecting):
            guard let now = current, now == expecting else { return .refused(.queueChanged) }
            return .event(.recall(now))
        case .close:
            return .event(.close)
        }
    }

    /// The appointment an event is about (its slot and patient go into the record).
    public func subject(of event: FloorEvent) -> Entry? {
        switch event {
        case .checkIn(let id), .call(let id, _), .recall(let id), .returned(let id, _): entries[id]
        case .finish: current.flatMap { entries[$0] }
        case .close: nil
        }
    }

    /// Applies the next record. Events that no longer fit (a check-in of a booking released since,
    /// a call of someone not waiting) change nothing: every replica skips them alike.
    public mutating func apply(_ r: FloorRecord) {
        lastSeq = max(lastSeq, r.seq)
        guard !closed else { return }
        switch r.event {
        case .checkIn(let id):
            guard entries[id]?.stage == .booked else { return }
            entries[id]!.stage = .waiting
            entries[id]!.key = [entries[id]!.slot]
            entries[id]!.seq = r.seq
        case .call(let id, let previousMissed):
            guard entries[id]?.stage == .waiting else { return }
            endCurrent(missed: previousMissed, seq: r.seq)
            entries[id]!.stage = .called
            entries[id]!.calls = 1
            entries[id]!.seq = r.seq
            current = id
        case .recall(let id):
            guard current == id else { return }
            entries[id]!.calls += 1
            entries[id]!.seq = r.seq
        case .finish(let missed):
            endCurrent(missed: missed, seq: r.seq)
        case .returned(let id, let behind):
            guard entries[id]?.stage == .missed else { return }
            let ahead = waiting
            let key: [Int]
            if behind == 0 || ahead.isEmpty {
                key = (ahead.first?.key.first).map { [min($0, entries[id]!.slot) - 1, r.seq] } ?? [entries[id]!.slot]
            } else {
                key = ahead[min(behind, ahead.count) - 1].key + [r.seq]
            }
            entries[id]!.stage = .waiting
            entries[id]!.key = key
            entries[id]!.seq = r.seq
        case .close:
            endCurrent(missed: false, seq: r.seq)
            for id in entries.keys where entries[id]!.stage == .booked {
                entries[id]!.stage = .noShow
                entries[id]!.seq = r.seq
            }
            closed = true
        }
    }

    private mutating func endCurrent(missed: Bool, seq: Int) {
        guard let id = current else { return }
        entries[id]!.stage = missed ? .missed : .seen
        entries[id]!.seq = seq
        current = nil
    }
}
