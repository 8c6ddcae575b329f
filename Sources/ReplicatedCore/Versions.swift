/// One life of one node's change stream. A node that may have lost writes it had already shipped
/// (power loss without fsync, a restore from backup) starts a new incarnation, so a sequence number
/// is never reused for different contents.
public struct OriginID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let node: String
    public let incarnation: UInt32

    public init(node: String, incarnation: UInt32) {
        self.node = node
        self.incarnation = incarnation
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.node, a.incarnation) < (b.node, b.incarnation)
    }

    public var description: String { "\(node)#\(incarnation)" }
}

/// The version of one write: its HLC stamp and where it came from. The total order used by
/// last-writer-wins is (HLC, node id, incarnation, sequence): HLC first, the node id as tie-break,
/// and the rest only to make the order total.
public struct ChangeVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let hlc: HLCTimestamp
    public let origin: OriginID
    public let seq: UInt64

    public init(hlc: HLCTimestamp, origin: OriginID, seq: UInt64) {
        self.hlc = hlc
        self.origin = origin
        self.seq = seq
    }

    public static func < (a: Self, b: Self) -> Bool {
        if a.hlc != b.hlc { return a.hlc < b.hlc }
        if a.origin.node != b.origin.node { return a.origin.node < b.origin.node }
        if a.origin.incarnation != b.origin.incarnation { return a.origin.incarnation < b.origin.incarnation }
        return a.seq < b.seq
    }

    public var description: String { "\(hlc)@\(origin):\(seq)" }
}

/// For each origin, the highest sequence number up to which a replica holds every change of that
/// origin that can still matter (superseded ones are not kept).
public struct VersionVector: Hashable, Sendable, Codable, CustomStringConvertible {
    public private(set) var entries: [OriginID: UInt64]

    public init(_ entries: [OriginID: UInt64] = [:]) {
        self.entries = entries.filter { $0.value > 0 }
    }

    public subscript(origin: OriginID) -> UInt64 {
        get { entries[origin] ?? 0 }
        set { entries[origin] = newValue == 0 ? nil : newValue }
    }

    public mutating func formMax(_ other: VersionVector) {
        for (origin, seq) in other.entries where seq > self[origin] { self[origin] = seq }
    }

    /// True when this vector has seen everything `other` has.
    public func dominates(_ other: VersionVector) -> Bool {
        other.entries.allSatisfy { self[$0.key] >= $0.value }
    }

    public var sortedEntries: [(origin: OriginID, seq: UInt64)] {
        entries.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public var description: String {
        "[" + sortedEntries.map { "\($0.origin)=\($0.seq)" }.joined(separator: ", ") + "]"
    }
}
