/// A hybrid logical clock stamp: 48 bits of wall-clock milliseconds and a 16-bit logical counter,
/// packed so that comparing the integers compares the stamps.
public struct HLCTimestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public static let logicalBits: UInt64 = 16
    public static let maxLogical: UInt64 = (1 << logicalBits) - 1
    public static let zero = HLCTimestamp(rawValue: 0)

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(wallMillis: Int64, logical: UInt64) {
        let wall = UInt64(clamping: max(0, wallMillis)) & ((1 << 48) - 1)
        self.rawValue = (wall << Self.logicalBits) | (logical & Self.maxLogical)
    }

    public var wallMillis: Int64 { Int64(rawValue >> Self.logicalBits) }
    public var logical: UInt64 { rawValue & Self.maxLogical }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "\(wallMillis).\(logical)" }
}

/// The HLC as a pure value: the caller passes the wall clock in, so tests and the simulator can
/// drive it with any clock they like.
///
/// - `now(wallMillis:)` stamps a local event; stamps only ever grow.
/// - `receive(_:wallMillis:)` folds in a remote stamp. A stamp further ahead of the local wall clock
///   than `maxOffsetMillis` is *deferred*: the caller keeps the change and retries once its clock has
///   caught up. It is never dropped, which would leave a hole in that origin's sequence.
public struct HybridLogicalClock: Sendable {
    public private(set) var last: HLCTimestamp
    public let maxOffsetMillis: Int64

    public enum ReceiveOutcome: Equatable, Sendable {
        case accepted
        /// Retry once the local wall clock reaches `retryAtWallMillis`.
        case deferred(aheadByMillis: Int64, retryAtWallMillis: Int64)
    }

    public init(last: HLCTimestamp = .zero, maxOffsetMillis: Int64 = 500) {
        self.last = last
        self.maxOffsetMillis = maxOffsetMillis
    }

    public mutating func now(wallMillis: Int64) -> HLCTimestamp {
        let wall = HLCTimestamp(wallMillis: wallMillis, logical: 0)
        if wall > last {
            last = wall
        } else {
            last = Self.successor(of: last)
        }
        return last
    }

    public func check(_ remote: HLCTimestamp, wallMillis: Int64) -> ReceiveOutcome {
        let ahead = remote.wallMillis - wallMillis
        if ahead > maxOffsetMillis {
            return .deferred(aheadByMillis: ahead, retryAtWallMillis: remote.wallMillis - maxOffsetMillis)
        }
        return .accepted
    }

    /// Folds a remote stamp in if it is within the bound; the clock is unchanged when deferred.
    public mutating func receive(_ remote: HLCTimestamp, wallMillis: Int64) -> ReceiveOutcome {
        let outcome = check(remote, wallMillis: wallMillis)
        guard outcome == .accepted else { return outcome }
        if remote > last { last = remote }
        return .accepted
    }

    /// The next stamp after `stamp`. When the logical counter is full the wall part moves one
    /// millisecond ahead instead of wrapping, so stamps stay strictly increasing.
    static func successor(of stamp: HLCTimestamp) -> HLCTimestamp {
        if stamp.logical < HLCTimestamp.maxLogical {
            return HLCTimestamp(rawValue: stamp.rawValue + 1)
        }
        return HLCTimestamp(wallMillis: stamp.wallMillis + 1, logical: 0)
    }
}
