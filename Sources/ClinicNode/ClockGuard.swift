/// Per-peer clock-offset estimate from heartbeat round trips (NTP style).
///
/// For a heartbeat sent at local wall time `t0` and answered with the peer's wall time `tp`,
/// received after round trip `rtt`, the peer's offset is `tp - (t0 + rtt / 2)`. The estimate is
/// the offset of the sample with the smallest round trip among the last few (queueing only ever
/// adds delay, so the fastest round trip is the least wrong).
public struct ClockOffsetEstimator: Sendable, Hashable {
    public struct Sample: Sendable, Hashable {
        public let offsetMillis: Int64
        public let rttMillis: Double
        public let atMonotonicNanos: UInt64
    }

    public private(set) var samples: [Sample] = []
    public let window: Int

    public init(window: Int = 8) { self.window = max(1, window) }

    /// Adds one round trip: `sentWallMillis` (local, echoed back), the peer's `peerWallMillis`,
    /// and the round trip measured on the local monotonic clock.
    public mutating func add(sentWallMillis: Int64, peerWallMillis: Int64, rttNanos: UInt64, nowMonotonicNanos: UInt64) {
        let rtt = Double(rttNanos) / 1e6
        let offset = peerWallMillis &- (sentWallMillis &+ Int64(rtt / 2))
        samples.append(Sample(offsetMillis: offset, rttMillis: rtt, atMonotonicNanos: nowMonotonicNanos))
        if samples.count > window { samples.removeFirst(samples.count - window) }
    }

    /// The best sample no older than `maxAgeNanos`, if any.
    public func estimate(nowMonotonicNanos: UInt64, maxAgeNanos: UInt64) -> Sample? {
        samples.filter { nowMonotonicNanos &- $0.atMonotonicNanos <= maxAgeNanos }.min { $0.rttMillis < $1.rttMillis }
    }
}

/// The HLC guard's decision (DESIGN.md, "Replicated records"): a node whose clock is off from a
/// majority of its peers by more than the bound stops accepting writes, and resumes once a
/// majority of its peers agree with it again. Pure: offsets in, verdict out.
public struct ClockGuard: Sendable, Hashable {
    public enum Verdict: Sendable, Hashable {
        /// Off from a majority of peers: refuse writes. Carries the peers and their offsets.
        case refuse(offPeers: [String: Int64])
        /// A majority of peers agree: allow writes.
        case allow
        /// Not enough fresh measurements to decide either way: keep the current state.
        case undecided
    }

    public let boundMillis: Int64
    /// How many peers the node has in all (the majority is of these, not only the reachable ones).
    public let peerCount: Int

    public init(boundMillis: Int64, peerCount: Int) {
        self.boundMillis = boundMillis
        self.peerCount = peerCount
    }

    /// - Parameter estimates: fresh estimates by peer id: the offset (peer minus this node) and the
    ///   round trip it came from. An offset is only known to within half its round trip (the delay
    ///   may all be on one way), so a peer counts as off only if it is off by more than the bound
    ///   even then: a loaded node whose heartbeats queue for seconds does not refuse writes for it.
    public func evaluate(_ estimates: [String: (offsetMillis: Int64, rttMillis: Double)]) -> Verdict {
        guard peerCount > 0 else { return .allow }
        let majority = peerCount / 2 + 1
        let off = estimates.filter { Double(abs($0.value.offsetMillis)) - $0.value.rttMillis / 2 > Double(boundMillis) }
        let agree = estimates.filter { abs($0.value.offsetMillis) <= boundMillis }
        if off.count >= majority { return .refuse(offPeers: off.mapValues(\.offsetMillis)) }
        if agree.count >= majority { return .allow }
        return .undecided
    }
}

/// Reconnect delays: exponential from `initial` to `cap`, with full jitter.
public struct Backoff: Sendable {
    public let initialMillis: Int
    public let capMillis: Int

    public init(initialMillis: Int, capMillis: Int) {
        self.initialMillis = initialMillis
        self.capMillis = capMillis
    }

    /// The delay before attempt `attempt` (1 = first retry).
    public func delayMillis<G: RandomNumberGenerator>(attempt: Int, using rng: inout G) -> Int {
        let exponent = min(max(attempt - 1, 0), 20)
        let ceiling = min(capMillis, initialMillis << exponent)
        return Int.random(in: (ceiling / 2)...max(ceiling / 2, ceiling), using: &rng)
    }
}
