@testable import Consensus
import Testing

/// A block whose voters promised an epoch that never became a lease, and retries of requests
/// whose first attempt was answered (or finished) somewhere else.
@Suite struct EpochRepairTests {
    func prepares(_ acts: [LeaseManagerAction]) -> [(to: NodeID, epoch: Epoch)] {
        acts.compactMap { a in
            if case .send(let e) = a, case .prepare(_, let epoch) = e.body { return (e.to, epoch) }
            return nil
        }
    }

    /// `q` at holder n1, its writes durable and every voter asked accepting: the actions in order.
    static func withQuorum(_ n1: inout BookingNode, _ q: BookingRequest, state s: ClusterState) -> [BookingAction] {
        var acts = n1.request(q, state: s, wallMs: 1_796_000_000_000)
        if let seq = lastPersistSeq(acts) { acts += n1.persisted(upTo: seq) }
        for e in sends(acts) {
            if case .accept(let b) = e.body {
                acts += n1.receive(LeaseEnvelope(from: e.to, to: "n1", body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)), state: s)
            }
        }
        return acts
    }

    /// A voter that promised a newer epoch refuses the holder's accept under the current one:
    /// the holder says so, since nothing else would ever move the block on.
    @Test func aHolderWhoseAcceptIsRefusedUnderItsOwnEpochSaysSo() {
        let s = leasedState()
        var h = BookingNode(id: "n1", incarnation: 1)
        _ = h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s)
        let refused = h.receive(LeaseEnvelope(from: "n2", to: "n1", body: .acceptReply(bookingID: "r1", block: "b", epoch: 1, ok: false)), state: s)
        #expect(refused == [.epochRefused(block: "b", epoch: 1)])
        // A refusal of an accept that is no longer pending here says nothing.
        let stale = h.receive(LeaseEnvelope(from: "n3", to: "n1", body: .acceptReply(bookingID: "old", block: "b", epoch: 1, ok: false)), state: s)
        #expect(stale.isEmpty)
    }

    /// The leader takes the block over again, for the same holder, above every promise.
    @Test func theLeaderMovesAFencedBlockToANewEpochForTheSameHolder() {
        let s = leasedState()
        var m = LeaseManager(id: "n2")
        m.becameLeader(now: 0)
        #expect(prepares(m.tick(now: 10, state: s, ready: true)).isEmpty, "a valid lease at home: nothing to do")
        _ = m.receive(LeaseEnvelope(from: "n1", to: "n2", body: .epochRefused(block: "b", epoch: 1)), now: 20, state: s)
        let sent = prepares(m.tick(now: 30, state: s, ready: true))
        #expect(sent.map(\.to) == ["n1", "n2", "n3"])
        #expect(sent.allSatisfy { $0.epoch == 2 })
        _ = m.receive(LeaseEnvelope(from: "n2", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [])), now: 31, state: s)
        let out = m.receive(LeaseEnvelope(from: "n3", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [])), now: 32, state: s)
        guard case .propose(.lease(let c))? = out.first else { Issue.record("no proposal: \(out)"); return }
        #expect(c.fromEpoch == 1 && c.toEpoch == 2 && c.holder == "n1")
        // Only the holder of the epoch named is heard: anyone else's word changes nothing.
        var other = LeaseManager(id: "n2")
        other.becameLeader(now: 0)
        _ = other.receive(LeaseEnvelope(from: "n3", to: "n2", body: .epochRefused(block: "b", epoch: 1)), now: 20, state: s)
        #expect(prepares(other.tick(now: 30, state: s, ready: true)).isEmpty)
    }

    /// The race the black-box storm hit: a takeover's attempt times out while its LeaseChange is
    /// still on its way; a second attempt prepares a higher epoch; then the first commits. The
    /// voters promised the second epoch, so they refuse every booking under the first. The leader
    /// must not take the committed lease as settled.
    @Test func anAttemptOvertakenByAnEarlierCommitLeadsToAFreshEpoch() {
        var s = leasedState()
        s.apply(.expireLiveness(node: "n1", epoch: 1))
        var m = LeaseManager(id: "n2")
        m.becameLeader(now: 0)
        let first = prepares(m.tick(now: 10, state: s, ready: true))
        #expect(first.first?.epoch == 2)
        _ = m.receive(LeaseEnvelope(from: "n2", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [])), now: 11, state: s)
        let proposed = m.receive(LeaseEnvelope(from: "n3", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [])), now: 12, state: s)
        guard case .propose(.lease(let change))? = proposed.first else { Issue.record("no proposal: \(proposed)"); return }
        // The entry is slow to commit: the attempt times out and a second one prepares epoch 3.
        let second = prepares(m.tick(now: 10 + m.options.takeoverTimeoutMs + 1, state: s, ready: true))
        #expect(second.first?.epoch == 3)
        // Now the first change commits; the voters have promised 3.
        let committed = s.apply(.lease(change))
        #expect(committed)
        let after = prepares(m.tick(now: 20 + m.options.takeoverTimeoutMs, state: s, ready: true))
        #expect(!after.isEmpty, "the block must move past the promised epoch, not stay at 2")
        #expect(after.allSatisfy { $0.epoch == 4 })
    }

    /// A bucket holder's quota refusal is made durable before anyone hears it, so a late copy of
    /// the request (from a link that delivered it after the client's retry) is refused the same.
    @Test func aQuotaRefusalIsDurableAndAnsweredAgainToEveryCopyOfTheRequest() {
        var s = leasedState()
        let bucket = quotaBucketPrefix + "0"
        s.apply(.defineBlock(bucket, home: "n1", slots: Int(Int32.max)))
        s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
        var n1 = BookingNode(id: "n1", incarnation: 1)
        let visit = QuotaTag(visitDay: 20_500, department: "neike").encoded
        func book(_ q: BookingRequest) -> [BookingAction] { Self.withQuorum(&n1, q, state: s) }
        func refusal(_ acts: [BookingAction]) -> String? {
            acts.lazy.compactMap { if case .acknowledged(let b) = $0 { return b.refusal }; return nil }.first
        }
        let limit = n1.options.quotaPolicy
        var taken = 0
        while limit.broken(by: QuotaTag(encoded: visit)!, held: Array(repeating: QuotaTag(encoded: visit)!, count: taken)) == nil {
            #expect(refusal(book(BookingRequest(id: "quota:ok\(taken)", block: bucket, slot: taken, patient: "p", tag: visit))) == nil)
            taken += 1
        }
        let over = BookingRequest(id: "quota:over", block: bucket, slot: 100, patient: "p", tag: visit)
        #expect(refusal(book(over)) == RefuseReason.quotaExceeded.rawValue, "refused through a quorum-durable record")
        #expect(n1.store.records["quota:over"]?.isRefusal == true)
        // The refusal takes no place: the patient's held reservations are unchanged.
        #expect(n1.heldReservations(of: "p", in: bucket, state: s).count == taken)
        // A late copy of the same request is refused again.
        #expect(refusal(book(over)) == RefuseReason.quotaExceeded.rawValue)
    }

    /// A retry of a request whose reservation was given back is answered with the request's
    /// first outcome: `released` after a cancellation; the booking's own refusal after a refusal
    /// for good. Neither is the retryable `quotaUnavailable`.
    @Test func aRetryAfterAReservationWasGivenBackGetsTheFirstOutcome() {
        var s = leasedState()
        let bucket = quotaBucketPrefix + "0"
        s.apply(.defineBlock(bucket, home: "n1", slots: Int(Int32.max)))
        s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
        let visit = QuotaTag(visitDay: 20_500, department: "neike").encoded
        var n1 = BookingNode(id: "n1", incarnation: 1)
        func run(_ q: BookingRequest) -> [BookingAction] { Self.withQuorum(&n1, q, state: s) }
        for (id, tag) in [("cancelled", ""), ("refused", RefusalRelease.tag(.slotTaken))] {
            let reservation = BookingRequest(id: "quota:\(id)", block: bucket, slot: id.count, patient: "p", tag: visit)
            _ = run(reservation)
            _ = run(BookingRequest(id: "release:quota:\(id)", block: bucket, slot: id.count, patient: "p", releases: "quota:\(id)", tag: tag))
            let retry = run(reservation)
            #expect(retry == [.refused(requestID: "quota:\(id)", reason: id == "cancelled" ? .released : .slotTaken)])
        }
        #expect(ConsensusCore.reservationFinalRefusals.isSuperset(of: [.released, .slotTaken, .notYetOpen, .quotaExceeded, .banned]))
        #expect(!ConsensusCore.reservationFinalRefusals.contains(.noHolder))
    }
}
