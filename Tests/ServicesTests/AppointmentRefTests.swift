@testable import Services
import Consensus
import Domain
import Foundation
import Testing

@Suite struct AppointmentRefTests {
    /// Appointment ids carry the block in unpadded URL-safe base64: it round-trips for every
    /// padding length and for non-ASCII names, and the id never holds '+', '/' or '='.
    @Test func idsRoundTripWithURLSafeBase64() throws {
        let hold = "h" + String(repeating: "a", count: 24)
        for block in ["a", "ab", "abc", "abcd", "neike/2026-12-03/am", "内科?>>>~~~", String(repeating: "\u{FF}", count: 7)] {
            let ref = AppointmentRef(holdID: hold, block: block, slot: 17)
            let id = ref.encoded
            #expect(!id.contains("+") && !id.contains("/") && !id.contains("="), "\(id)")
            let back = try #require(AppointmentRef(encoded: id))
            #expect(back.block == block && back.slot == 17 && back.holdID == hold)
            #expect(id.split(separator: ".").last.map(String.init) == Data(block.utf8).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))
        }
        #expect(AppointmentRef(encoded: hold + ".1.!!!") == nil)
        #expect(Data(base64URL: "_-8") == Data([0xFF, 0xEF]))
    }

    /// A node outside the quorum that accepted a confirmation or cancellation may not have its
    /// record yet; the answer to that request still says what was accepted, never less.
    @Test func anAcknowledgedStepIsNeverAnsweredWithAnEarlierStatus() {
        let hold = Booking(id: "h", block: "b", slot: 0, patient: "p", epoch: 1, holdUntilMs: 1)
        let confirmation = Booking(id: "c", block: "b", slot: 0, patient: "p", epoch: 1, confirms: "h")
        let release = Booking(id: "r", block: "b", slot: 0, patient: "p", epoch: 1, releases: "h")
        let lagging = AppointmentRecords(hold: hold)
        #expect(lagging.status(after: nil) == .pending)
        #expect(lagging.status(after: .booked) == .booked)
        #expect(lagging.status(after: .cancelled) == .cancelled)
        #expect(AppointmentRecords().status(after: .booked) == .booked)
        #expect(AppointmentRecords().status(after: nil) == nil)
        // Records further on than the acknowledged step win: cancelled since the confirmation.
        #expect(AppointmentRecords(hold: hold, confirmation: confirmation, release: release).status(after: .booked) == .cancelled)
        #expect(AppointmentRecords(hold: hold, confirmation: confirmation).status(after: .booked) == .booked)
    }
}
