import Foundation

/// The booking side's durable state on disk: promised epochs and booking records, as an
/// append-only file of checksummed `BookingWrite` records (the same framing as `FileRaftLog`).
/// `write` returns after `fsync`; only then may the core be told `persisted`.
public final class FileBookingLog {
    public let path: String
    public private(set) var state = BookingDurableState()
    public private(set) var recoveredTornBytes = 0
    private var fd: Int32
    private var fileSize = 0
    /// Rewrite the file as one record of the whole state once it has grown this much past it.
    public var rewriteThreshold = 8 << 20
    private var sizeAfterRewrite = 0

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/bookings.log"
        fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw StorageError(code: .io, message: "open: \(String(cString: strerror(errno)))", path: path) }
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data())
        var off = 0
        while off < bytes.count {
            guard let (payload, next) = FileRaftLog.frame(bytes, at: off) else {
                if FileRaftLog.anyValidFrame(bytes, after: off) {
                    close(fd)
                    throw StorageError(code: .corrupt, message: "bad record at offset \(off) followed by valid records", path: path)
                }
                recoveredTornBytes = bytes.count - off
                guard ftruncate(fd, off_t(off)) == 0, fsync(fd) == 0 else {
                    close(fd)
                    throw StorageError(code: .io, message: "truncate torn tail: \(String(cString: strerror(errno)))", path: path)
                }
                break
            }
            var r = ByteReader(payload)
            guard let w = r.bookingWrite(), r.o == payload.count else {
                close(fd)
                throw StorageError(code: .corrupt, message: "undecodable record at offset \(off)", path: path)
            }
            state.apply(w)
            off = next
        }
        fileSize = off
        sizeAfterRewrite = off
        _ = lseek(fd, off_t(off), SEEK_SET)
    }

    deinit { close(fd) }

    /// Appends the writes in order and fsyncs once (group commit).
    public func write(_ writes: [BookingWrite]) throws {
        guard !writes.isEmpty else { return }
        var all: [UInt8] = []
        for w in writes {
            var b = ByteWriter()
            b.bookingWrite(w)
            all += FileRaftLog.framed(b.bytes)
        }
        let ok = all.withUnsafeBytes { buf -> Bool in
            var done = 0
            while done < buf.count {
                let n = posixWrite(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        guard ok else { throw StorageError(code: .io, message: "write: \(String(cString: strerror(errno)))", path: path) }
        guard fsync(fd) == 0 else { throw StorageError(code: .io, message: "fsync: \(String(cString: strerror(errno)))", path: path) }
        for w in writes { state.apply(w) }
        fileSize += all.count
        if fileSize > sizeAfterRewrite + rewriteThreshold { try rewrite() }
    }

    /// Replaces the file by records holding the whole state (temp file, fsync, rename, fsync dir).
    public func rewrite() throws {
        var all: [UInt8] = []
        var b = ByteWriter()
        b.bookingWrite(BookingWrite(seq: 0, promise: nil, records: state.records.values.sorted { $0.id < $1.id }))
        all += FileRaftLog.framed(b.bytes)
        for (block, epoch) in state.promised.sorted(by: { $0.key < $1.key }) {
            var p = ByteWriter()
            p.bookingWrite(BookingWrite(seq: 0, promise: (block: block, epoch: epoch), records: []))
            all += FileRaftLog.framed(p.bytes)
        }
        let tmp = path + ".tmp"
        let t = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard t >= 0 else { throw StorageError(code: .io, message: "open temp", path: tmp) }
        let ok = all.withUnsafeBytes { buf in posixWrite(t, buf.baseAddress!, buf.count) == buf.count } && fsync(t) == 0
        close(t)
        guard ok, rename(tmp, path) == 0 else { throw StorageError(code: .io, message: "rewrite failed", path: path) }
        let d = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if d >= 0 { _ = fsync(d); close(d) }
        close(fd)
        fd = open(path, O_RDWR, 0o600)
        guard fd >= 0 else { throw StorageError(code: .io, message: "reopen after rewrite", path: path) }
        fileSize = all.count
        sizeAfterRewrite = fileSize
        _ = lseek(fd, off_t(fileSize), SEEK_SET)
    }
}

extension ByteWriter {
    mutating func bookingWrite(_ w: BookingWrite) {
        if let p = w.promise { u8(1); str(p.block); u64(p.epoch) } else { u8(0) }
        bookings(w.records)
    }
}

extension ByteReader {
    mutating func bookingWrite() -> BookingWrite? {
        guard let has = u8() else { return nil }
        var promise: (block: BlockID, epoch: Epoch)?
        if has == 1 {
            guard let b = str(), let e = u64() else { return nil }
            promise = (b, e)
        } else if has != 0 { return nil }
        guard let rs = bookings() else { return nil }
        return BookingWrite(seq: 0, promise: promise, records: rs)
    }
}
