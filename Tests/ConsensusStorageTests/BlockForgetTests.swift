import Consensus
import ConsensusStorage
import Foundation
import Testing

/// A closed block's records leave the booking log: after a reopen they are gone, the block's
/// promise is final, and a rewrite leaves only the open blocks' records in the file.
@Suite struct BlockForgetTests {
    @Test func aForgottenBlockStaysForgottenAcrossReopenAndRewrite() throws {
        let dir = NSTemporaryDirectory() + "booking-log-forget-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let closed = (0..<1_500).map { Booking(id: "c\($0)", block: "past", slot: $0, patient: "p\($0)", epoch: 3) }
        let open = Booking(id: "o1", block: "tomorrow", slot: 1, patient: "q", epoch: 2)
        do {
            let log = try FileBookingLog(directory: dir)
            try log.write([BookingWrite(seq: 1, promise: (block: "past", epoch: 3), records: closed),
                           BookingWrite(seq: 2, promise: (block: "tomorrow", epoch: 2), records: [open])])
            let before = try FileManager.default.attributesOfItem(atPath: log.path)[.size] as! Int
            // Mostly forgotten records: this write rewrites the file down to the open block.
            try log.write([BookingWrite(seq: 3, promise: nil, records: [], forget: ["past"])])
            let after = try FileManager.default.attributesOfItem(atPath: log.path)[.size] as! Int
            #expect(after < before / 10, "the file follows the open blocks (\(before) -> \(after) bytes)")
        }
        let state = try FileBookingLog(directory: dir).state
        #expect(state.records == ["o1": open])
        #expect(state.promised == ["past": .max, "tomorrow": 2], "a closed block's promise is final")
        #expect(state.records(in: "past").isEmpty && state.records(of: "p1").isEmpty)
        #expect(state.blocks == ["tomorrow"])
    }

    /// Without a rewrite, the forget record itself is what a reopen reads.
    @Test func theForgetRecordIsReadBackWithoutARewrite() throws {
        let dir = NSTemporaryDirectory() + "booking-log-forget-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b = Booking(id: "r1", block: "past", slot: 0, patient: "p", epoch: 1)
        do {
            let log = try FileBookingLog(directory: dir)
            try log.write([BookingWrite(seq: 1, promise: (block: "past", epoch: 1), records: [b])])
            try log.write([BookingWrite(seq: 2, promise: nil, records: [], forget: ["past"])])
        }
        let state = try FileBookingLog(directory: dir).state
        #expect(state.records.isEmpty)
        #expect(state.promised == ["past": .max])
    }
}
