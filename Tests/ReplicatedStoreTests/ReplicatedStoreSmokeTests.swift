import Testing
@testable import ReplicatedStore

@Suite struct ReplicatedStoreSmokeTests {
    @Test func moduleLinks() {}
}
