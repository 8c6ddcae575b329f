import Consensus
import Foundation

/// The booking side's durable state on disk: promised epochs and booking records, as an
/// append-only file of checksummed `BookingWrite` records (the same framing as `FileRaftLog`).
/// `write` returns after `fsync`; only then may the core be told `persisted`.
public final class FileBookingLog {
    public let path: String
    /// What the file holds: the records and promises, without `BookingDurableState`'s read
    /// indexes (the core keeps those; only a restart reads this copy, through `state`).
    private var records: [BlockID: [String: Booking]] = [:]
    private var promised: [BlockID: Epoch] = [:]
    /// Records dropped with closed blocks, or by a quota bucket's trim, since the last rewrite:
    /// their bytes are still in the file.
    private var forgottenSinceRewrite = 0
    private let file: RecordFile
    public var recoveredTornBytes: Int { file.recoveredTornBytes }
    /// Rewrite the file as records of the whole state once it has grown this much past it.
    public var rewriteThreshold = 8 << 20
    static let rewriteChunk = 10_000
    private var sizeAfterRewrite: Int

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/bookings.log"
        var restored: [BookingWrite] = []
        let path = self.path
        file = try RecordFile(path: path, mode: 0o600) { payload, offset in
            var r = ByteReader(payload)
            guard let w = r.bookingWrite(), r.o == payload.count else {
                throw StorageError.corrupt(path, offset: offset, "undecodable record")
            }
            restored.append(w)
        }
        sizeAfterRewrite = file.size
        for w in restored { keep(w) }
    }

    /// Appends the writes in order and fsyncs once (group commit).
    public func write(_ writes: [BookingWrite]) throws {
        guard !writes.isEmpty else { return }
        try file.append(writes) { $0.bookingWrite($1) }
        for w in writes { keep(w) }
        // Grown well past the last rewrite, or mostly closed blocks' records: the file follows the open blocks.
        if file.size > sizeAfterRewrite + rewriteThreshold
            || (forgottenSinceRewrite > 1_000 && forgottenSinceRewrite > records.values.reduce(0, { $0 + $1.count })) {
            try rewrite()
        }
    }

    /// Replaces the file by records holding the whole state, at most `rewriteChunk` bookings each
    /// (a record of more would not be read back: a reader takes at most `ConsensusWire.maxItems`).
    public func rewrite() throws {
        var records: [[UInt8]] = []
        let all = self.records.values.flatMap(\.values).sorted { $0.id < $1.id }
        for start in stride(from: 0, to: all.count, by: Self.rewriteChunk) {
            var b = ByteWriter()
            b.bookingWrite(BookingWrite(seq: 0, promise: nil, records: Array(all[start..<min(all.count, start + Self.rewriteChunk)])))
            records.append(b.bytes)
        }
        for (block, epoch) in promised.sorted(by: { $0.key < $1.key }) {
            var p = ByteWriter()
            p.bookingWrite(BookingWrite(seq: 0, promise: (block: block, epoch: epoch), records: []))
            records.append(p.bytes)
        }
        try file.replace(with: records)
        sizeAfterRewrite = file.size
        forgottenSinceRewrite = 0
    }

    /// The durable state the file holds, indexed for the core.
    public var state: BookingDurableState {
        var s = BookingDurableState()
        s.apply(BookingWrite(seq: 0, promise: nil, records: records.values.flatMap(\.values)))
        for (block, epoch) in promised { s.apply(BookingWrite(seq: 0, promise: (block: block, epoch: epoch), records: [])) }
        return s
    }

    /// The same rules as `BookingDurableState.apply`: closed blocks forgotten, the highest
    /// promise, and per request the record of the latest epoch (a request id names one block).
    private func keep(_ w: BookingWrite) {
        for b in w.forget {
            promised[b] = .max
            forgottenSinceRewrite += records.removeValue(forKey: b)?.count ?? 0
        }
        for ref in w.drop where records[ref.block]?[ref.id].map(ref.drops) == true {
            records[ref.block]![ref.id] = nil
            forgottenSinceRewrite += 1
        }
        if let p = w.promise { promised[p.block] = max(promised[p.block] ?? 0, p.epoch) }
        for r in w.records where BookingDurableState.supersedes(r, records[r.block]?[r.id]) { records[r.block, default: [:]][r.id] = r }
    }
}

extension ByteWriter {
    /// The first byte: 2 without a promise, 3 with one (0 and 1: the same before holds, read as
    /// legacy); 4 lists closed blocks to forget, 5 records to drop (block, id, epoch), then the
    /// rest of the write follows.
    mutating func bookingWrite(_ w: BookingWrite) {
        if !w.forget.isEmpty {
            u8(4)
            u32(UInt32(w.forget.count))
            for b in w.forget { str(b) }
        }
        if !w.drop.isEmpty {
            u8(5)
            u32(UInt32(w.drop.count))
            for ref in w.drop { str(ref.block); str(ref.id); u64(ref.epoch) }
        }
        if let p = w.promise { u8(3); str(p.block); u64(p.epoch) } else { u8(2) }
        bookings(w.records)
    }
}

extension ByteReader {
    mutating func bookingWrite() -> BookingWrite? {
        guard let flag = u8(), flag <= 5 else { return nil }
        if flag == 5 {
            guard let n = u32(), n <= 1 << 24 else { return nil }
            var drop: [RecordRef] = []
            for _ in 0..<n {
                guard let block = str(), let id = str(), let epoch = u64() else { return nil }
                drop.append(RecordRef(block: block, id: id, epoch: epoch))
            }
            guard var rest = bookingWrite(), rest.forget.isEmpty, rest.drop.isEmpty else { return nil }
            rest.drop = drop
            return rest
        }
        if flag == 4 {
            guard let n = u32(), n <= 1 << 20 else { return nil }
            var forget: [BlockID] = []
            for _ in 0..<n {
                guard let b = str() else { return nil }
                forget.append(b)
            }
            guard var rest = bookingWrite(), rest.forget.isEmpty else { return nil }
            rest.forget = forget
            return rest
        }
        let legacy = flag < 2
        var promise: (block: BlockID, epoch: Epoch)?
        if flag % 2 == 1 {
            guard let b = str(), let e = u64() else { return nil }
            promise = (b, e)
        }
        guard let rs = bookings(legacy: legacy, most: 1 << 24) else { return nil }
        return BookingWrite(seq: 0, promise: promise, records: rs)
    }
}
