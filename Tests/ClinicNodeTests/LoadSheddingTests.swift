@testable import ClinicNode
@testable import Services
import Foundation
import Testing

@Suite struct LoadSheddingTests {
    /// The in-flight limit takes exactly `limit` requests, refuses the next, and takes one again
    /// as soon as one is answered.
    @Test func inFlightLimitRefusesBeyondItsLimit() {
        let limit = InFlightLimit(limit: 3)
        #expect((0..<3).allSatisfy { _ in limit.enter() })
        #expect(!limit.enter())
        #expect(limit.current == 3)
        limit.leave()
        #expect(limit.enter())
        #expect(!limit.enter())
    }

    /// `max_in_flight` is read from the config, defaults to 64 and must be at least 1.
    @Test func maxInFlightIsConfigured() throws {
        let decoded = try JSONDecoder().decode(PatientConfig.self, from: Data(#"{"max_in_flight": 32}"#.utf8))
        #expect(decoded.maxInFlight == 32)
        #expect(try JSONDecoder().decode(PatientConfig.self, from: Data("{}".utf8)).maxInFlight == 64)
        let zero = try JSONDecoder().decode(PatientConfig.self, from: Data(#"{"max_in_flight": 0}"#.utf8))
        #expect(throws: NodeError.self) { try zero.validate() }
    }
}
