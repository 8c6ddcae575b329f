// Small shared value types: node ids, terms, a seedable PRNG and a trace hash.
// Everything here is deterministic across processes (no Set/Dictionary ordering leaks out).

public typealias Term = UInt64
public typealias LogIndex = UInt64

/// A node's identity as it appears in its certificate and in membership.
public struct NodeID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
}

/// SplitMix64: tiny, fast, fully determined by its seed. Used for election-timeout jitter
/// inside the cores and for every random choice in the simulator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<bound without modulo bias worth caring about at these sizes.
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return next() % bound
    }
    public mutating func chance(_ p: Double) -> Bool {
        Double(next() >> 11) / Double(1 << 53) < p
    }
}

/// 64-bit FNV-1a, so a simulated trace can be fingerprinted without a crypto dependency.
public struct FNV1a64: Sendable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    public mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01B3
    }
    public mutating func add(_ v: UInt64) {
        var x = v
        for _ in 0..<8 { add(UInt8(truncatingIfNeeded: x)); x >>= 8 }
    }
    public mutating func add(_ s: String) {
        for b in s.utf8 { add(b) }
        add(UInt8(0xFF))
    }
}

/// Majority of `n` voters.
@inlinable public func quorum(of n: Int) -> Int { n / 2 + 1 }
