import Consensus
import ConsensusStorage
import Foundation
import Testing

@Suite struct FileBookingLogTests {
    @Test func writesSurviveReopenAndATornTailIsCut() throws {
        let dir = NSTemporaryDirectory() + "booking-log-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b1 = Booking(id: "r1", block: "b", slot: 1, patient: "p", epoch: 2)
        let b2 = Booking(id: "r2", block: "b", slot: 2, patient: "q", epoch: 2)
        do {
            let log = try FileBookingLog(directory: dir)
            try log.write([BookingWrite(seq: 1, promise: (block: "b", epoch: 2), records: [b1]), BookingWrite(seq: 2, promise: nil, records: [b2])])
        }
        // A torn last record (a crash mid-write) is cut; everything before it stays.
        let handle = try #require(FileHandle(forWritingAtPath: dir + "/bookings.log"))
        handle.seekToEndOfFile()
        handle.write(Data([9, 0, 0, 0, 1, 2]))
        try handle.close()
        let log = try FileBookingLog(directory: dir)
        #expect(log.recoveredTornBytes == 6)
        #expect(log.state.records == ["r1": b1, "r2": b2])
        #expect(log.state.promised == ["b": 2])
        // A rewrite keeps the same state.
        try log.rewrite()
        #expect(try FileBookingLog(directory: dir).state == log.state)
    }

    /// A rewrite of more records than one log record may carry (a long quota bucket) reads back.
    @Test func aRewriteOfManyRecordsReadsBack() throws {
        let dir = NSTemporaryDirectory() + "booking-log-many-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let many = (0..<120_000).map { i in
            Booking(id: "quota:r\(i)", block: "quota/\(i % 16)", slot: i, patient: "p\(i)", epoch: 1,
                    kind: .quotaReservation(QuotaTag(visitDay: 20_000 + i % 90, department: "neike")))
        }
        let log = try FileBookingLog(directory: dir)
        try log.write([BookingWrite(seq: 1, promise: nil, records: Array(many[..<60_000])), BookingWrite(seq: 2, promise: nil, records: Array(many[60_000...]))])
        try log.rewrite()
        let read = try FileBookingLog(directory: dir).state
        #expect(read.records.count == many.count)
        #expect(read == log.state)
    }

    /// A drop (after a quota bucket's trim) deletes the record version it names, across a reopen
    /// and a rewrite; a later version of the same request stays.
    @Test func droppedRecordsStayDroppedAndALaterVersionStays() throws {
        let dir = NSTemporaryDirectory() + "booking-log-drop-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = Booking(id: "quota:r1", block: "quota/0", slot: 1, patient: "p", epoch: 1, kind: .quotaReservation(QuotaTag(visitDay: 100, department: "neike")))
        let kept = Booking(id: "quota:r2", block: "quota/0", slot: 2, patient: "p", epoch: 1, kind: .quotaReservation(QuotaTag(visitDay: 300, department: "neike")))
        var remade = old
        remade.epoch = 3
        do {
            let log = try FileBookingLog(directory: dir)
            try log.write([BookingWrite(seq: 1, promise: (block: "quota/0", epoch: 1), records: [old, kept])])
            try log.write([BookingWrite(seq: 2, promise: nil, records: [], drop: [RecordRef(old)])])
        }
        var log = try FileBookingLog(directory: dir)
        #expect(log.state.records == ["quota:r2": kept])
        try log.rewrite()
        log = try FileBookingLog(directory: dir)
        #expect(log.state.records == ["quota:r2": kept])
        try log.write([BookingWrite(seq: 3, promise: nil, records: [remade]), BookingWrite(seq: 4, promise: nil, records: [], drop: [RecordRef(old)])])
        #expect(try FileBookingLog(directory: dir).state.records == ["quota:r1": remade, "quota:r2": kept])
    }

    /// A log the code before `BookingKind` wrote (captured from it), with records of most kinds:
    /// this version reads each record as its kind, and writes the same log byte for byte.
    @Test func aLogWrittenBeforeBookingKindReadsAsKindsAndIsWrittenAlike() throws {
        let old = Self.bytes("b6010000d171bcd003090000006e65696b652d647230040000000000000005000000020000007231090000006e65696b652d647230070000000000000005000000702de794b20300000000000000000000000000000000000000000000000000000000000000000000020000006832090000006e65696b652d6472300a0000000000000005000000702de4b999030000000000000000000000000b00000032303530307c6e65696b65000000000000000000a14352709e0100000004000000633a6831090000006e65696b652d647230090000000000000005000000702de4b99903000000000000000100000000110000007061796d656e743a696e737572616e636500000000000000000102000000683100000000000000000004000000783a6831090000006e65696b652d647230090000000000000005000000702de4b999040000000000000002000000010200000068310000000040ca53709e01000000000000000000000000090000006578706972653a6832090000006e65696b652d6472300a0000000000000005000000702de4b999040000000000000001000000010200000068320000000080d756709e010000000000000000000000009b0100008ad6641502040000000800000071756f74613a68320700000071756f74612f33393000000000000005000000702de4b999050000000000000000000000000b00000032303530307c6e65696b650000000000000000000000000000000000001000000072656c656173653a71756f74613a72370700000071756f74612f33090300000000000005000000702de4b999050000000000000001000000010800000071756f74613a723711000000726566757365647c736c6f7454616b656e205e58709e010000000000000000000000000e000000737472696b653a6c6174653a68310700000071756f74612f33921000000000000005000000702de4b9990500000000000000000000000018000000737472696b657c6c6174655f63616e63656c7c32303439390000000000000000000000000000000000000800000071756f74613a72380700000071756f74612f33ffffffffffffffff05000000702de4b899050000000000000000000000000b00000032303530307c6e65696b650000000000000000000000000000000000010d00000071756f74614578636565646564")
        let quota = QuotaTag(visitDay: 20_500, department: "neike")
        let session = [
            Booking(id: "r1", block: "neike-dr0", slot: 7, patient: "p-甲", epoch: 3, kind: .booking(quota: nil)),
            Booking(id: "h2", block: "neike-dr0", slot: 10, patient: "p-乙", epoch: 3, kind: .hold(untilMs: 1_780_000_900_001, quota: quota)),
            Booking(id: "c:h1", block: "neike-dr0", slot: 9, patient: "p-乙", epoch: 3, generation: 1, kind: .confirmation(of: "h1", label: "payment:insurance")),
            Booking(id: "x:h1", block: "neike-dr0", slot: 9, patient: "p-乙", epoch: 4, generation: 2, kind: .cancellation(of: "h1"), reofferAtMs: 1_780_001_000_000),
            Booking(id: "expire:h2", block: "neike-dr0", slot: 10, patient: "p-乙", epoch: 4, generation: 1, kind: .expiry(of: "h2"), reofferAtMs: 1_780_001_200_000),
        ]
        let bucket = [
            Booking(id: "quota:h2", block: "quota/3", slot: 12_345, patient: "p-乙", epoch: 5, kind: .quotaReservation(quota)),
            Booking(id: "release:quota:r7", block: "quota/3", slot: 777, patient: "p-乙", epoch: 5, generation: 1,
                    kind: .release(of: "quota:r7", refused: .slotTaken), reofferAtMs: 1_780_001_300_000),
            Booking(id: "strike:late:h1", block: "quota/3", slot: 4_242, patient: "p-乙", epoch: 5, kind: .strike(Strike(kind: .lateCancel, day: 20_499))),
            Booking(id: "quota:r8", block: "quota/3", slot: -1, patient: "p-丙", epoch: 5, kind: .refusal(.quotaExceeded, requestTag: quota.encoded)),
        ]
        let oldDir = NSTemporaryDirectory() + "booking-log-old-" + UUID().uuidString
        let newDir = NSTemporaryDirectory() + "booking-log-new-" + UUID().uuidString
        defer { for d in [oldDir, newDir] { try? FileManager.default.removeItem(atPath: d) } }
        try FileManager.default.createDirectory(atPath: oldDir, withIntermediateDirectories: true)
        try Data(old).write(to: URL(fileURLWithPath: oldDir + "/bookings.log"))
        let read = try FileBookingLog(directory: oldDir).state
        #expect(Dictionary(uniqueKeysWithValues: read.records.map { ($0.key, $0.value) }) == Dictionary(uniqueKeysWithValues: (session + bucket).map { ($0.id, $0) }))
        #expect(read.promised == ["neike-dr0": 4])

        let log = try FileBookingLog(directory: newDir)
        try log.write([BookingWrite(seq: 1, promise: (block: "neike-dr0", epoch: 4), records: session), BookingWrite(seq: 2, promise: nil, records: bucket)])
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: newDir + "/bookings.log"))) == old)
    }

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) ?? 0 }
    }
}
