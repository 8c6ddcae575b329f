// Little-endian, length-prefixed bytes: the wire format and the durable logs
// (`ConsensusStorage`) write and read with these.

public typealias ByteRaftState = DurableRaftState<[UInt8], [UInt8]>
public typealias BytePersist = PersistRequest<[UInt8], [UInt8]>

package struct ByteWriter {
    package var bytes: [UInt8] = []
    package init() {}
    package mutating func u8(_ v: UInt8) { bytes.append(v) }
    package mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
    package mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
    package mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    package mutating func str(_ s: String) { blob(Array(s.utf8)) }
    package mutating func config(_ c: ClusterConfig) {
        u32(UInt32(c.voters.count)); for v in c.voters { str(v.rawValue) }
        u32(UInt32(c.learners.count)); for v in c.learners { str(v.rawValue) }
    }
    package mutating func entry(_ e: LogEntry<[UInt8]>) {
        u64(e.index); u64(e.term)
        switch e.body {
        case .noop: u8(0)
        case .command(let c): u8(1); blob(c)
        case .config(let c): u8(2); u8(c.op.rawValue); str(c.node.rawValue)
        }
    }
}

package struct ByteReader {
    package let b: [UInt8]
    /// The read position.
    package var o = 0
    package init(_ b: [UInt8]) { self.b = b }
    package mutating func u8() -> UInt8? { guard o < b.count else { return nil }; defer { o += 1 }; return b[o] }
    package mutating func u32() -> UInt32? {
        guard o + 4 <= b.count else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(b[o + k]) << (8 * UInt32(k)) }
        o += 4
        return v
    }
    package mutating func u64() -> UInt64? {
        guard o + 8 <= b.count else { return nil }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(b[o + k]) << (8 * UInt64(k)) }
        o += 8
        return v
    }
    package mutating func blob() -> [UInt8]? {
        guard let n = u32(), o + Int(n) <= b.count else { return nil }
        defer { o += Int(n) }
        return Array(b[o..<o + Int(n)])
    }
    package mutating func str() -> String? { blob().map { String(decoding: $0, as: UTF8.self) } }
    package mutating func config() -> ClusterConfig? {
        guard let nv = u32(), nv < 10_000 else { return nil }
        var voters: [NodeID] = []
        for _ in 0..<nv { guard let s = str() else { return nil }; voters.append(NodeID(s)) }
        guard let nl = u32(), nl < 10_000 else { return nil }
        var learners: [NodeID] = []
        for _ in 0..<nl { guard let s = str() else { return nil }; learners.append(NodeID(s)) }
        return ClusterConfig(voters: voters, learners: learners)
    }
    package mutating func entry() -> LogEntry<[UInt8]>? {
        guard let i = u64(), let t = u64(), let k = u8() else { return nil }
        switch k {
        case 0: return LogEntry(index: i, term: t, body: .noop)
        case 1: guard let c = blob() else { return nil }; return LogEntry(index: i, term: t, body: .command(c))
        case 2:
            guard let op = u8().flatMap(ConfigChange.Op.init(rawValue:)), let n = str() else { return nil }
            return LogEntry(index: i, term: t, body: .config(ConfigChange(op, NodeID(n))))
        default: return nil
        }
    }
}
