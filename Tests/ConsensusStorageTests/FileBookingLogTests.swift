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
}
