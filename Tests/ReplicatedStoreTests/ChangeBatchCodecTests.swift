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
        #expect(report.rejected == 3 && report.applied == 0)
        #expect(try replica.liveRows("record").isEmpty)
    }
}
