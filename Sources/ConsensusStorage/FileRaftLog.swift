// The durable store behind Raft's persist actions: one append-only file of checksummed records,
// fsynced before `write` returns. On open, a torn last record (a crash mid-write) is cut off;
// a bad record followed by good data is corruption and refuses to open rather than guess.

import ClinicErrors
import Consensus
import Foundation

/// A consensus log that cannot be read or written; `subject` is the file's path.
public typealias StorageError = ClinicError<StorageErrorCode>

public enum StorageErrorCode: String, ClinicErrorCode {
    /// The system refused a read, write, fsync or rename (a full disk, permissions).
    case io = "storage.io"
    /// Records that do not decode, followed by ones that do: not a torn tail, so nothing is guessed.
    case corrupt = "storage.corrupt"
}

extension ClinicError where Code == StorageErrorCode {
    /// Call right after the failing system call: `errno` says why.
    static func io(_ path: String, _ what: String) -> StorageError {
        let reason = String(cString: strerror(errno))
        return StorageError(.io, zh: "共识日志 \(path) 读写失败（\(what)）：\(reason)。请检查磁盘空间与权限。",
                            en: "the consensus log \(path) failed (\(what)): \(reason). Check disk space and permissions.", subject: path)
    }

    static func corrupt(_ path: String, offset: Int, _ detail: String) -> StorageError {
        StorageError(.corrupt, zh: "共识日志 \(path) 在偏移 \(offset) 处损坏（\(detail)）。请从备份恢复或重建该节点。",
                     en: "the consensus log \(path) is corrupt at offset \(offset) (\(detail)). Restore from a backup or rebuild this node.", subject: path)
    }
}

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
                throw StorageError.corrupt(path, offset: offset, "undecodable record")
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
        try file.append(ps) { $0.persist($1) }
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

// MARK: The Raft log's records

extension ByteWriter {
    mutating func persist(_ p: BytePersist) {
        u8((p.hardState != nil ? 1 : 0) | (p.snapshot != nil ? 2 : 0) | (p.truncateFrom != nil ? 4 : 0))
        if let s = p.snapshot { u64(s.lastIndex); u64(s.lastTerm); config(s.config); blob(s.data) }
        if let t = p.truncateFrom { u64(t) }
        u32(UInt32(p.entries.count)); for e in p.entries { entry(e) }
        if let h = p.hardState { u64(h.term); if let v = h.votedFor { u8(1); str(v.rawValue) } else { u8(0) } }
    }
}

extension ByteReader {
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
