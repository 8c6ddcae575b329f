import Consensus
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only file of checksummed records, `[len u32][crc32 u32][payload]`: the durable form
/// of both consensus logs. Opening cuts a torn last record (incomplete, or failing its checksum
/// with nothing valid after it) and refuses a bad record followed by valid ones: that is
/// corruption, not a torn write, and guessing would lose data. `append` returns only after
/// `fsync`; `replace` swaps in a new file atomically (temp file, fsync, rename, fsync folder).
final class RecordFile {
    let path: String
    let mode: mode_t
    private(set) var size = 0
    private(set) var recoveredTornBytes = 0
    private var fd: Int32

    /// Opens (creating) the file and hands every intact record to `replay`, in order.
    init(path: String, mode: mode_t, replay: ([UInt8], Int) throws -> Void) throws {
        self.path = path
        self.mode = mode
        fd = open(path, O_RDWR | O_CREAT, mode)
        guard fd >= 0 else { throw StorageError.io(path, "open") }
        do {
            let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data())
            var off = 0
            while off < bytes.count {
                guard let (payload, next) = Self.record(bytes, at: off) else {
                    if Self.anyValidRecord(bytes, after: off) {
                        throw StorageError.corrupt(path, offset: off, "a bad record followed by valid records")
                    }
                    recoveredTornBytes = bytes.count - off
                    guard ftruncate(fd, off_t(off)) == 0, fsync(fd) == 0 else {
                        throw StorageError.io(path, "truncate torn tail")
                    }
                    break
                }
                try replay(payload, off)
                off = next
            }
            size = off
            _ = lseek(fd, off_t(off), SEEK_SET)
            Self.fsyncFolder(of: path)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Appends the records in order, then fsyncs once (group commit).
    func append(_ payloads: [[UInt8]]) throws {
        guard !payloads.isEmpty else { return }
        let bytes = payloads.flatMap(Self.framed)
        guard Self.writeFully(fd, bytes) else { throw StorageError.io(path, "write") }
        guard fsync(fd) == 0 else { throw StorageError.io(path, "fsync") }
        size += bytes.count
    }

    /// Appends one record per item, as `encode` writes it, with one fsync.
    func append<Item>(_ items: [Item], encode: (inout ByteWriter, Item) -> Void) throws {
        try append(items.map { item in
            var w = ByteWriter()
            encode(&w, item)
            return w.bytes
        })
    }

    /// Replaces the whole file by these records.
    func replace(with payloads: [[UInt8]]) throws {
        let bytes = payloads.flatMap(Self.framed)
        let tmp = path + ".tmp"
        let t = open(tmp, O_RDWR | O_CREAT | O_TRUNC, mode)
        guard t >= 0 else { throw StorageError.io(tmp, "open") }
        let ok = Self.writeFully(t, bytes) && fsync(t) == 0
        close(t)
        guard ok, rename(tmp, path) == 0 else { throw StorageError.io(path, "rewrite") }
        Self.fsyncFolder(of: path)
        close(fd)
        fd = open(path, O_RDWR, mode)
        guard fd >= 0 else { throw StorageError.io(path, "reopen after rewrite") }
        size = bytes.count
        _ = lseek(fd, off_t(size), SEEK_SET)
    }

    // MARK: Framing

    static func framed(_ payload: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(payload.count))
        w.u32(crc32(payload[...]))
        w.bytes.append(contentsOf: payload)
        return w.bytes
    }

    static func record(_ b: [UInt8], at off: Int) -> ([UInt8], Int)? {
        guard off + 8 <= b.count else { return nil }
        var r = ByteReader(Array(b[off..<off + 8]))
        guard let len = r.u32(), let crc = r.u32() else { return nil }
        let end = off + 8 + Int(len)
        guard len > 0, end <= b.count else { return nil }
        let payload = b[(off + 8)..<end]
        guard crc32(payload) == crc else { return nil }
        return (Array(payload), end)
    }

    static func anyValidRecord(_ b: [UInt8], after off: Int) -> Bool {
        var o = off + 1
        while o + 8 <= b.count {
            if record(b, at: o) != nil { return true }
            o += 1
        }
        return false
    }

    private static func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                #if canImport(Glibc)
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                #else
                let n = Darwin.write(fd, buf.baseAddress! + done, buf.count - done)
                #endif
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
    }

    private static func fsyncFolder(of path: String) {
        let d = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if d >= 0 { _ = fsync(d); close(d) }
    }
}
