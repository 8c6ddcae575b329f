import Testing
@testable import Consensus

@Suite struct ConsensusSmokeTests {
    @Test func moduleLinks() {}
}
