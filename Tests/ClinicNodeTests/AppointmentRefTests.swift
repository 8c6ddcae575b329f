@testable import ClinicNode
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
}
