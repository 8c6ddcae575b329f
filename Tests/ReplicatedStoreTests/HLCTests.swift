import ReplicatedCore
import Testing
@testable import ReplicatedStore

@Suite struct HLCTests {
    @Test func stampsOnlyGrowEvenWhenTheWallClockGoesBack() {
        var clock = HybridLogicalClock()
        let a = clock.now(wallMillis: 1_000)
        let b = clock.now(wallMillis: 1_000)
        let c = clock.now(wallMillis: 900)
        let d = clock.now(wallMillis: 2_000)
        #expect(a == HLCTimestamp(wallMillis: 1_000, logical: 0))
        #expect(b == HLCTimestamp(wallMillis: 1_000, logical: 1))
        #expect(c == HLCTimestamp(wallMillis: 1_000, logical: 2))
        #expect(d == HLCTimestamp(wallMillis: 2_000, logical: 0))
    }

    @Test func logicalOverflowMovesTheWallPartInsteadOfWrapping() {
        var clock = HybridLogicalClock(last: HLCTimestamp(wallMillis: 5, logical: HLCTimestamp.maxLogical))
        let next = clock.now(wallMillis: 5)
        #expect(next == HLCTimestamp(wallMillis: 6, logical: 0))
        #expect(next > HLCTimestamp(wallMillis: 5, logical: HLCTimestamp.maxLogical))
    }

    @Test func remoteStampsAdvanceTheClockSoLaterLocalStampsFollowThem() {
        var clock = HybridLogicalClock(maxOffsetMillis: 500)
        #expect(clock.receive(HLCTimestamp(wallMillis: 1_400, logical: 3), wallMillis: 1_000) == .accepted)
        #expect(clock.now(wallMillis: 1_000) == HLCTimestamp(wallMillis: 1_400, logical: 4))
    }

    @Test func stampTooFarAheadIsDeferredAndLeavesTheClockAlone() {
        var clock = HybridLogicalClock(maxOffsetMillis: 500)
        let before = clock.last
        let outcome = clock.receive(HLCTimestamp(wallMillis: 1_501, logical: 0), wallMillis: 1_000)
        #expect(outcome == .deferred(aheadByMillis: 501, retryAtWallMillis: 1_001))
        #expect(clock.last == before)
        #expect(clock.receive(HLCTimestamp(wallMillis: 1_501, logical: 0), wallMillis: 1_001) == .accepted)
    }

    @Test func versionsOrderByStampThenNode() {
        let early = ChangeVersion(hlc: HLCTimestamp(wallMillis: 1, logical: 0), origin: OriginID(node: "z", incarnation: 1), seq: 9)
        let lateA = ChangeVersion(hlc: HLCTimestamp(wallMillis: 2, logical: 0), origin: OriginID(node: "a", incarnation: 1), seq: 1)
        let lateB = ChangeVersion(hlc: HLCTimestamp(wallMillis: 2, logical: 0), origin: OriginID(node: "b", incarnation: 1), seq: 1)
        #expect(early < lateA && lateA < lateB)
    }
}
