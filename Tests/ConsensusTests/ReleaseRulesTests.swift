import Consensus
import Testing

/// Release windows and the delay before a cancelled slot is offered again: the holder's clock
/// decides (policy); quorums still decide safety.
@Suite struct ReleaseRulesTests {
    /// Block "s" held by n1 at epoch 1, opening at `opensAt`.
    func session(opensAt: Int64) -> ClusterState {
        var s = ClusterState(config: ClusterConfig(voters: ["n1", "n2", "n3"]))
        for n in ["n1", "n2", "n3"] as [NodeID] {
            s.apply(.upsertMember(MemberInfo(node: n, address: "x", department: "d", certificateSerial: "1")))
            s.apply(.renewLiveness(node: n, incarnation: 1))
        }
        s.apply(.defineSession("s", home: "n1", slots: 4, opensAtMs: opensAt))
        s.apply(.lease(LeaseChange(block: "s", fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
        return s
    }

    /// Books through n1 and lets every voter it asked accept; returns the acknowledged booking, if any.
    func book(_ n1: inout BookingNode, _ q: BookingRequest, _ s: ClusterState, wallMs: Int64, delay: Int64 = 0) -> (Booking?, [BookingAction]) {
        let acts = throughQuorum(&n1, q, state: s, wallMs: wallMs, delay: delay)
        return (acts.compactMap { if case .acknowledged(let b) = $0, !b.isRefusal { return b }; return nil }.first, acts)
    }

    @Test func aSessionOpensAtItsReleaseTimeNotAMillisecondBefore() {
        let opens = testWallMs // a release time, to the millisecond
        let s = session(opensAt: opens)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        let early = answer(&n1, BookingRequest(id: "r1", block: "s", slot: 0, patient: "p"), state: s, wallMs: opens - 1)
        #expect(early == .refused(requestID: "r1", reason: .notYetOpen), "a millisecond before")
        let (booked, _) = book(&n1, BookingRequest(id: "r2", block: "s", slot: 0, patient: "p"), s, wallMs: opens)
        #expect(booked != nil, "at the instant")
    }

    @Test func aCancelledSlotIsOfferedAgainOnlyAfterItsDelay() {
        let s = session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        let t0: Int64 = 1_796_000_000_000
        let (b, _) = book(&n1, BookingRequest(id: "r1", block: "s", slot: 2, patient: "p"), s, wallMs: t0)
        let (release, _) = book(&n1, BookingRequest(id: "x1", block: "s", slot: 2, patient: "p", releases: b!.id), s, wallMs: t0 + 10, delay: 600_000)
        #expect(release?.reofferAtMs == t0 + 10 + 600_000)
        // Another patient right after the cancellation (a hand-off) and just before the delay ends: refused.
        #expect(answer(&n1, BookingRequest(id: "r2", block: "s", slot: 2, patient: "q"), state: s, wallMs: t0 + 20) == .refused(requestID: "r2", reason: .slotTaken))
        #expect(answer(&n1, BookingRequest(id: "r3", block: "s", slot: 2, patient: "q"), state: s, wallMs: t0 + 10 + 599_999) == .refused(requestID: "r3", reason: .slotTaken))
        // From then on it is free again.
        let (again, _) = book(&n1, BookingRequest(id: "r4", block: "s", slot: 2, patient: "q"), s, wallMs: t0 + 10 + 600_000)
        #expect(again?.generation == 2)
    }

    /// A one-node cluster driven through the core: a cancellation's re-offer time lies in the
    /// configured range after the holder's wall clock.
    @Test func theCoreDrawsTheDelayFromItsRange() {
        var o = ConsensusCoreOptions()
        o.quotaBuckets = 0
        o.reofferDelayMs = 300_000...1_800_000
        var one = OneNodeCore(options: o)
        one.request(BookingRequest(id: "r1", block: "s", slot: 1, patient: "p"))
        one.request(BookingRequest(id: "x1", block: "s", slot: 1, patient: "p", releases: "r1"))
        let wall = one.wall
        guard case .booked(let release)? = one.outcomes.last else { Issue.record("no release: \(one.outcomes)"); return }
        #expect(release.isRelease)
        #expect((wall + 300_000...wall + 1_800_000).contains(release.reofferAtMs))
    }
}
