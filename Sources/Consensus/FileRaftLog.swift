// The durable store behind Raft's persist actions: one append-only file of checksummed records,
// fsynced before `write` returns. On open, a torn last record (a crash mid-write) is cut off;
// a bad record followed by good data is corruption and refuses to open rather than guess.

import Foundation

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable { case io, corrupt }
    public let code: Code
    public let message: String
    public let path: String
    public var description: String { "raft log \(code.rawValue) at \(path): \(message)" }
}

public typealias ByteRaftState = DurableRaftState<[UInt8], [UInt8]>
public typealias BytePersist = PersistRequest<[UInt8], [UInt8]>

public final class FileRaftLog {
    public let path: String
    public private(set) var state: ByteRaftState
    private let file: RecordFile
    /// Bytes cut from the end on open because the last record was incomplete or failed its checksum.
    public var recoveredTornBytes: Int { file.recoveredTornBytes }
    public var fileSize: Int { file.size }
    /// Rewrite the file as one record once it grows past this after a snapshot.
    public var rewriteThreshold = 4 << 20

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/raft.log"
        var restored = ByteRaftState()
        let path = self.path
        file = try RecordFile(path: path, mode: 0o644) { payload, offset in
            var r = ByteReader(payload)
            guard let p = r.persist() else {
                throw StorageError(code: .corrupt, message: "undecodable record at offset \(offset)", path: path)
            }
            restored.apply(p)
        }
        state = restored
    }

    /// Appends one persist request and fsyncs; only after this returns may the core be told `persisted`.
    public func write(_ p: BytePersist) throws { try write([p]) }

    /// Appends several persist requests in order with one fsync (group commit).
    public func write(_ ps: [BytePersist]) throws {
        guard !ps.isEmpty else { return }
        try file.append(ps.map { p in
            var w = ByteWriter()
            w.persist(p)
            return w.bytes
        })
        for p in ps { state.apply(p) }
        if ps.contains(where: { $0.snapshot != nil }), file.size > rewriteThreshold { try rewrite() }
    }

    /// Replaces the file by one record holding the whole state.
    public func rewrite() throws {
        var w = ByteWriter()
        w.persist(BytePersist(seq: 0, hardState: state.hardState, snapshot: state.snapshot, truncateFrom: nil, entries: state.entries))
        try file.replace(with: [w.bytes])
    }
}

private let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
}

// MARK: Binary encoding (little-endian, length-prefixed)

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
    mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    mutating func str(_ s: String) { blob(Array(s.utf8)) }
    mutating func config(_ c: ClusterConfig) {
        u32(UInt32(c.voters.count)); for v in c.voters { str(v.rawValue) }
        u32(UInt32(c.learners.count)); for v in c.learners { str(v.rawValue) }
    }
    mutating func entry(_ e: LogEntry<[UInt8]>) {
        u64(e.index); u64(e.term)
        switch e.body {
        case .noop: u8(0)
        case .command(let c): u8(1); blob(c)
        case .config(let c): u8(2); u8(c.op.rawValue); str(c.node.rawValue)
        }
    }
    mutating func persist(_ p: BytePersist) {
        u8((p.hardState != nil ? 1 : 0) | (p.snapshot != nil ? 2 : 0) | (p.truncateFrom != nil ? 4 : 0))
        if let s = p.snapshot { u64(s.lastIndex); u64(s.lastTerm); config(s.config); blob(s.data) }
        if let t = p.truncateFrom { u64(t) }
        u32(UInt32(p.entries.count)); for e in p.entries { entry(e) }
        if let h = p.hardState { u64(h.term); if let v = h.votedFor { u8(1); str(v.rawValue) } else { u8(0) } }
    }
}

struct ByteReader {
    let b: [UInt8]
    var o = 0
    init(_ b: [UInt8]) { self.b = b }
    mutating func u8() -> UInt8? { guard o < b.count else { return nil }; defer { o += 1 }; return b[o] }
    mutating func u32() -> UInt32? {
        guard o + 4 <= b.count else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(b[o + k]) << (8 * UInt32(k)) }
        o += 4
        return v
    }
    mutating func u64() -> UInt64? {
        guard o + 8 <= b.count else { return nil }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(b[o + k]) << (8 * UInt64(k)) }
        o += 8
        return v
    }
    mutating func blob() -> [UInt8]? {
        guard let n = u32(), o + Int(n) <= b.count else { return nil }
        defer { o += Int(n) }
        return Array(b[o..<o + Int(n)])
    }
    mutating func str() -> String? { blob().map { String(decoding: $0, as: UTF8.self) } }
    mutating func config() -> ClusterConfig? {
        guard let nv = u32(), nv < 10_000 else { return nil }
        var voters: [NodeID] = []
        for _ in 0..<nv { guard let s = str() else { return nil }; voters.append(NodeID(s)) }
        guard let nl = u32(), nl < 10_000 else { return nil }
        var learners: [NodeID] = []
        for _ in 0..<nl { guard let s = str() else { return nil }; learners.append(NodeID(s)) }
        return ClusterConfig(voters: voters, learners: learners)
    }
    mutating func entry() -> LogEntry<[UInt8]>? {
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
    mutating func persist() -> BytePersist? {
        guard let flags = u8() else { return nil }
        var snap: Snapshot<[UInt8]>?
        if flags & 2 != 0 {
            guard let li = u64(), let lt = u64(), let c = config(), let d = blob() else { return nil }
            snap = Snapshot(lastIndex: li, lastTerm: lt, config: c, data: d)
        }
        var trunc: LogIndex?
        if flags & 4 != 0 { guard let t = u64() else { return nil }; trunc = t }
        guard let n = u32() else { return nil }
        var es: [LogEntry<[UInt8]>] = []
        for _ in 0..<n { guard let e = entry() else { return nil }; es.append(e) }
        var hard: HardState?
        if flags & 1 != 0 {
            guard let t = u64(), let hv = u8() else { return nil }
            var v: NodeID?
            if hv == 1 { guard let s = str() else { return nil }; v = NodeID(s) }
            hard = HardState(term: t, votedFor: v)
        }
        guard o == b.count else { return nil }
        return BytePersist(seq: 0, hardState: hard, snapshot: snap, truncateFrom: trunc, entries: es)
    }
}
