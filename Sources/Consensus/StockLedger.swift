import Domain

// A pharmacy's stock is owned state of its block (`pharmacy/<code>`): receipts, dispensings and
// returns are stock records, numbered by the holder and quorum-accepted like bookings, so only the
// holder moves stock and a takeover carries every acknowledged movement to the next holder. The
// balances are never stored: every replica derives them from the block's valid records, and the
// holder decides each movement from them, so stock never goes below zero and a prescription is
// dispensed once.

/// Blocks whose records are a pharmacy's stock movements.
public let pharmacyBlockPrefix = "pharmacy/"

/// Whether `block` is a pharmacy's stock block rather than a doctor's session or a quota bucket.
public func isPharmacyBlock(_ block: BlockID) -> Bool { block.hasPrefix(pharmacyBlockPrefix) }

/// Some packages of one batch of one drug.
public struct StockItem: Hashable, Sendable {
    public var drug: String
    public var batch: String
    public var quantity: Int

    public init(drug: String, batch: String, quantity: Int) { self.drug = drug; self.batch = batch; self.quantity = quantity }

    /// Codes and batch numbers that travel in a tag unchanged: letters, digits, hyphens.
    static func isToken(_ s: String, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= max && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
    }

    public var isValid: Bool { Self.isToken(drug, max: 16) && Self.isToken(batch, max: 24) && (1...100_000).contains(quantity) }

    var encoded: String { "\(drug)/\(batch)/\(quantity)" }

    init?(encoded s: Substring) {
        let p = s.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == 3, let q = Int(p[2]) else { return nil }
        self.init(drug: String(p[0]), batch: String(p[1]), quantity: q)
        guard isValid else { return nil }
    }

    static func list(_ items: [StockItem]) -> String { items.map(\.encoded).joined(separator: ",") }

    static func list(_ s: Substring) -> [StockItem]? {
        let parts = s.split(separator: ",")
        guard !parts.isEmpty, parts.count <= 20 else { return nil }
        let items = parts.compactMap(StockItem.init(encoded:))
        return items.count == parts.count ? items : nil
    }
}

/// A stock movement.
public enum StockEvent: Hashable, Sendable {
    /// Packages of a batch received (入库); `expiryDay`: the last day it may be used (Unix day, Shanghai).
    case receive(StockItem, expiryDay: Int)
    /// A prescription dispensed (发药).
    case dispense(rx: String, items: [StockItem])
    /// Packages of a dispensed prescription taken back (退药).
    case returned(rx: String, items: [StockItem])

    var body: String {
        switch self {
        case .receive(let item, let expiry): "in:\(expiry):\(item.encoded)"
        case .dispense(let rx, let items): "out:\(rx):\(StockItem.list(items))"
        case .returned(let rx, let items): "back:\(rx):\(StockItem.list(items))"
        }
    }

    init?(body: Substring) {
        let p = body.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard p.count == 3 else { return nil }
        switch p[0] {
        case "in":
            guard let day = Int(p[1]), (0...200_000).contains(day), let item = StockItem(encoded: p[2]) else { return nil }
            self = .receive(item, expiryDay: day)
        case "out", "back":
            guard StockItem.isToken(String(p[1]), max: 64), let items = StockItem.list(p[2]) else { return nil }
            self = p[0] == "out" ? .dispense(rx: String(p[1]), items: items) : .returned(rx: String(p[1]), items: items)
        default:
            return nil
        }
    }
}

/// A stock record's kind: the movement, the number the holder gave it and the holder's wall time.
public struct StockRecord: Hashable, Sendable {
    public var seq: Int
    public var atMs: Int64
    public var event: StockEvent

    public init(seq: Int, atMs: Int64, event: StockEvent) { self.seq = seq; self.atMs = atMs; self.event = event }

    static let prefix = "stock:"
    /// Far beyond any pharmacy's movements; bounds what a peer's record may claim.
    static let maxSeq = 1_000_000_000_000

    /// `stock:<seq>:<ms>:<movement>`.
    var encoded: String { "\(Self.prefix)\(seq):\(atMs):\(event.body)" }

    init?(encoded tag: String) {
        guard tag.hasPrefix(Self.prefix) else { return nil }
        let p = tag.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard p.count == 3, let seq = Int(p[0]), (1...Self.maxSeq).contains(seq), let ms = Int64(p[1]), ms >= 0, let event = StockEvent(body: p[2]) else { return nil }
        self.init(seq: seq, atMs: ms, event: event)
    }
}

/// What a pharmacy window asks of the holder (a request's tag): the movement it wants; the holder
/// checks it against the ledger as its records say it now.
public struct StockCommand: Hashable, Sendable {
    public var event: StockEvent

    public init(_ event: StockEvent) { self.event = event }

    static let prefix = "stockcmd:"

    public var requestTag: String { Self.prefix + event.body }

    public init?(requestTag tag: String) {
        guard tag.hasPrefix(Self.prefix), let event = StockEvent(body: tag.dropFirst(Self.prefix.count)) else { return nil }
        self.event = event
    }
}

/// A pharmacy's stock as one block's valid records give it.
public struct StockLedger: Sendable {
    public struct Batch: Hashable, Sendable {
        public var drug: String
        public var batch: String
        public var expiryDay: Int
        public var quantity: Int
    }

    public private(set) var batches: [String: Batch] = [:]
    /// Each prescription dispensed, with what it was given.
    public private(set) var dispensed: [String: [StockItem]] = [:]
    /// Packages returned per prescription and batch (`drug/batch`).
    public private(set) var returned: [String: [String: Int]] = [:]
    public private(set) var lastSeq = 0
    /// The holder's wall time of the newest movement (0: none).
    public private(set) var lastAtMs: Int64 = 0

    static func key(_ drug: String, _ batch: String) -> String { "\(drug)/\(batch)" }

    /// The ledger from the valid records of one block (others than stock records are ignored).
    public init(records: [Booking]) {
        let movements = records.compactMap { b -> (StockRecord, String)? in
            if case .stock(let r) = b.kind { return (r, b.id) }
            return nil
        }
        for (r, _) in movements.sorted(by: { ($0.0.seq, $0.1) < ($1.0.seq, $1.1) }) { apply(r) }
    }

    /// Non-expired packages of `drug` on `today` (Unix day).
    public func available(_ drug: String, today: Int) -> Int {
        batches.values.filter { $0.drug == drug && $0.expiryDay >= today }.reduce(0) { $0 + $1.quantity }
    }

    public mutating func apply(_ r: StockRecord) {
        lastSeq = max(lastSeq, r.seq)
        lastAtMs = max(lastAtMs, r.atMs)
        switch r.event {
        case .receive(let item, let expiry):
            let k = Self.key(item.drug, item.batch)
            batches[k, default: Batch(drug: item.drug, batch: item.batch, expiryDay: expiry, quantity: 0)].quantity += item.quantity
        case .dispense(let rx, let items):
            dispensed[rx] = items
            for i in items { batches[Self.key(i.drug, i.batch)]?.quantity -= i.quantity }
        case .returned(let rx, let items):
            for i in items {
                batches[Self.key(i.drug, i.batch)]?.quantity += i.quantity
                returned[rx, default: [:]][Self.key(i.drug, i.batch), default: 0] += i.quantity
            }
        }
    }

    public enum Decision: Sendable, Equatable {
        case event(StockEvent)
        case refused(RefuseReason)
    }

    /// The movement `command` asks for, on the holder's day `today`, or why it is refused.
    public func decide(_ command: StockCommand, today: Int) -> Decision {
        switch command.event {
        case .receive(let item, let expiry):
            if let known = batches[Self.key(item.drug, item.batch)], known.expiryDay != expiry { return .refused(.batchMismatch) }
            if expiry < today { return .refused(.batchExpired) }
        case .dispense(let rx, let items):
            if dispensed[rx] != nil { return .refused(.alreadyDispensed) }
            var wanted: [String: Int] = [:]
            for i in items { wanted[Self.key(i.drug, i.batch), default: 0] += i.quantity }
            for (k, n) in wanted {
                guard let b = batches[k] else { return .refused(.unknownBatch) }
                if b.expiryDay < today { return .refused(.batchExpired) }
                if b.quantity < n { return .refused(.stockShort) }
            }
        case .returned(let rx, let items):
            guard let given = dispensed[rx] else { return .refused(.notDispensed) }
            var back: [String: Int] = [:]
            for i in items { back[Self.key(i.drug, i.batch), default: 0] += i.quantity }
            for (k, n) in back {
                let out = given.filter { Self.key($0.drug, $0.batch) == k }.reduce(0) { $0 + $1.quantity }
                if n + (returned[rx]?[k] ?? 0) > out { return .refused(.returnTooMuch) }
            }
        }
        return .event(command.event)
    }
}
