import ReplicatedCore
import TestSupport
import Testing
@testable import ReplicatedStore

@Suite struct ChangeBatchCodecTests {
    static let sample: ChangeBatch = {
        let origin = OriginID(node: "neike-1", incarnation: 3)
        let v = ChangeVersion(hlc: HLCTimestamp(wallMillis: 1_790_000_000_123, logical: 7), origin: origin, seq: 42)
        let values: [ColumnValue] = [.null, .integer(-1), .integer(.max), .integer(.min), .real(-0.0), .real(.nan), .real(3.25),
                                     .text(""), .text("张三 患者"), .blob([]), .blob([0, 255, 7])]
        return ChangeBatch(
            changes: values.enumerated().map { Change(table: "patient", key: "pat:ab", column: "c\($0.offset)", value: $0.element, version: v) },
            base: VersionVector([OriginID(node: "waike-1", incarnation: 1): 3]),
            coverage: VersionVector([origin: 42, OriginID(node: "erke-1", incarnation: 1): 9]))
    }()

    @Test func roundTripsEveryValueKind() throws {
        #expect(try ChangeBatchCodec.decode(ChangeBatchCodec.encode(Self.sample)) == Self.sample)
        #expect(try ChangeBatchCodec.decodeCompressed(ChangeBatchCodec.encodeCompressed(Self.sample)) == Self.sample)
    }

    @Test func malformedInputIsRefusedNeverTrapped() throws {
        let valid = ChangeBatchCodec.encode(Self.sample)
        var rng = SeededRandom(seed: 99)
        var refused = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0: bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1: bytes = Array(valid.prefix(Int(rng.next() % UInt64(valid.count))))
            case 2:
                bytes = valid
                for _ in 0...(rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1) }
            default:
                bytes = valid
                bytes.insert(0xff, at: Int(rng.next() % UInt64(bytes.count)))
            }
            do { _ = try ChangeBatchCodec.decode(bytes) } catch { refused += 1 }
        }
        #expect(refused > 15_000)
        #expect(throws: ChangeBatchCodec.DecodingError.self) { try ChangeBatchCodec.decode([1, 0xff, 0xff, 0xff, 0xff, 0x0f]) }
    }

    @Test func malformedChangesFromAPeerAreRejectedWithoutHarm() throws {
        let clock = ManualClock()
        let replica = try Replica.open(path: nil, node: "a", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        let v = ChangeVersion(hlc: HLCTimestamp(wallMillis: clock.now, logical: 0), origin: OriginID(node: "evil", incarnation: 1), seq: 1)
        let bad = ChangeBatch(changes: [
            Change(table: "record", key: "", column: "a", value: "x", version: v),
            Change(table: "record", key: "k", column: ReplicaSchema.aliveColumn, value: "yes", version: v),
            Change(table: "record", key: String(repeating: "k", count: 600), column: "a", value: "x", version: v),
        ], coverage: VersionVector())
        let report = try replica.apply(bad)
        // An empty key is malformed for every version; a long key or an unknown existence value
        // may be valid for a later one, so those are kept, not dropped.
        #expect(report.rejected == 1 && report.parkedUnknownSchema == 2 && report.applied == 0)
        #expect(try replica.liveRows("record").isEmpty)
    }
}

@Suite struct HostilePeerTests {
    /// Junk a peer could send after decoding: unknown tables and columns, NULLs where text is
    /// expected (the review table included), extreme sequence numbers, coverage for the
    /// receiver's own origin. The replica must not trap, must keep working, and must not let a
    /// peer advance its own stream.
    @Test func junkBatchesNeverTrapAndNeverHijackTheOwnStream() throws {
        let clock = ManualClock()
        let replica = try Replica.open(path: nil, node: "a", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        try replica.write { try $0.insert("record", key: "mine", values: ["a": "x"]) }
        var rng = SeededRandom(seed: 7)
        let tables = ["record", "crdt_review", "crdt_review_resolution", "nope", ""]
        let columns = ["a", "b", "name", "tbl", "status", ReplicaSchema.aliveColumn, "zzz", "value_a"]
        let values: [ColumnValue] = [.null, .integer(2), .integer(-9), .integer(.max), .real(.nan), .text(""), .text("x"), .blob([1, 2, 3]), .blob([UInt8](repeating: 1, count: 40))]
        let seqs: [UInt64] = [0, 1, 2, 3, UInt64(Int64.max), UInt64(Int64.max) + 1, .max]
        let nodes = [OriginID(node: "b", incarnation: 1), OriginID(node: "a", incarnation: 0), replica.origin, OriginID(node: "c", incarnation: .max)]
        for _ in 0..<300 {
            var changes: [Change] = []
            for _ in 0..<Int(rng.next() % 12) {
                let version = ChangeVersion(hlc: HLCTimestamp(rawValue: rng.next() % 2 == 0 ? rng.next() : HLCTimestamp(wallMillis: clock.now, logical: 0).rawValue),
                                            origin: nodes.randomElement(using: &rng)!, seq: seqs.randomElement(using: &rng)!)
                changes.append(Change(table: tables.randomElement(using: &rng)!, key: ["k", "", "mine"].randomElement(using: &rng)!,
                                      column: columns.randomElement(using: &rng)!, value: values.randomElement(using: &rng)!, version: version))
            }
            let coverage = VersionVector(Dictionary(nodes.map { ($0, seqs.randomElement(using: &rng)!) }, uniquingKeysWith: max))
            _ = try replica.apply(ChangeBatch(changes: changes, base: VersionVector(), coverage: coverage))
            _ = try replica.reviewItems(includeResolved: true)
            _ = try replica.changes(since: VersionVector(), limit: 50)
            _ = try replica.digest()
        }
        _ = try replica.retryParked()
        // Its own stream is only ever advanced by its own writes.
        #expect(try replica.versionVector()[replica.origin] == 1)
        // Peers claimed sequence numbers of this node's own incarnation that it never wrote: it
        // stops local writes and says why, rather than reuse them.
        #expect(replica.writesRefusedBecause?.code == .writesRefused)
    }
}
