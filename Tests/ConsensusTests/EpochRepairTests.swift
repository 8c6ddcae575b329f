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

    /// A voter that promised a newer epoch refuses the holder's accept under the current one:
    /// the holder says so, since nothing else would ever move the block on.
    @Test func aHolderWhoseAcceptIsRefusedUnderItsOwnEpochSaysSo() {
        let s = leasedState()
        var h = BookingNode(id: "n1", incarnation: 1)
        _ = h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs)
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
        func book(_ q: BookingRequest) -> [BookingAction] { throughQuorum(&n1, q, state: s) }
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
        func run(_ q: BookingRequest) -> [BookingAction] { throughQuorum(&n1, q, state: s) }
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

    /// A refusal from the holder's records (slot taken, nothing to release) is a record a quorum
    /// holds before anyone is told, and a takeover carries it: a retry at the next holder, which
    /// never saw the request, gets the same answer, whatever the slot looks like by then.
    @Test func aHoldersRefusalIsToldOnlyOnceAQuorumHoldsItAndOutlivesItsEpoch() {
        let s = leasedState()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        guard case .booked(let r1)? = answer(&n1, BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s) else {
            Issue.record("not booked"); return
        }
        let late = BookingRequest(id: "r2", block: "b", slot: 0, patient: "q")
        var acts = n1.request(late, state: s, wallMs: testWallMs)
        #expect(!acts.contains { if case .refused = $0 { return true }; return false }, "nothing told before a quorum accepted")
        acts += n1.persisted(upTo: lastPersistSeq(acts)!)
        for e in sends(acts) {
            guard case .accept(let b) = e.body else { continue }
            #expect(b.id == "r2" && b.refusal == RefuseReason.slotTaken.rawValue)
            acts += n1.receive(LeaseEnvelope(from: e.to, to: "n1", body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)), state: s)
        }
        #expect(acts.contains { if case .acknowledged(let b) = $0 { return b.id == "r2" && b.isRefusal }; return false })
        #expect(answer(&n1, late, state: s) == .refused(requestID: "r2", reason: .slotTaken), "a retry: the same")
        let refusal = n1.store.records["r2"]!
        let cancel = BookingRequest(id: "x9", block: "b", slot: 1, patient: "p", releases: "nothing-here")
        #expect(answer(&n1, cancel, state: s) == .refused(requestID: "x9", reason: .notBooked))
        // The block moves to n2, whose store is empty; the takeover collected all three. r1 is
        // cancelled since, so slot 0 is free: still r2 is refused as before.
        let s2 = leasedState(epoch: 2, collected: [r1, refusal, n1.store.records["x9"]!])
        var next = BookingNode(id: "n2", incarnation: 1)
        var s3 = s2
        s3.apply(.lease(LeaseChange(block: "b", fromEpoch: 2, toEpoch: 3, holder: "n2", holderLiveness: s2.liveness["n2"]!.epoch,
                                    voters: ["n1", "n2", "n3"], collected: s2.blocks["b"]!.collected)))
        guard case .booked? = answer(&next, BookingRequest(id: "x1", block: "b", slot: 0, patient: "p", releases: "r1"), state: s3) else {
            Issue.record("not released"); return
        }
        #expect(answer(&next, late, state: s3) == .refused(requestID: "r2", reason: .slotTaken))
        #expect(answer(&next, cancel, state: s3) == .refused(requestID: "x9", reason: .notBooked))
    }

    /// A holder whose epoch was taken over without its knowing (paused while voters promised a
    /// newer one) tells no one an answer from its stale records: its refusal is not accepted.
    @Test func aHolderTakenOverUnbeknownToItTellsNoOneAStaleRefusal() {
        let s = leasedState()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = answer(&n1, BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s)
        // Meanwhile the block moved on: r1 was released and the slot booked again by r2 (at
        // epoch 2, which n1's history does not have yet), so the voters refuse epoch 1.
        var acts = n1.request(BookingRequest(id: "r2", block: "b", slot: 0, patient: "q"), state: s, wallMs: testWallMs)
        acts += n1.persisted(upTo: lastPersistSeq(acts)!)
        for e in sends(acts) where e.to != "n1" {
            if case .accept(let b) = e.body {
                acts += n1.receive(LeaseEnvelope(from: e.to, to: "n1", body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: false)), state: s)
            }
        }
        #expect(!acts.contains { a in
            switch a {
            case .refused(let id, _): return id == "r2"
            case .acknowledged(let b): return b.id == "r2"
            default: return false
            }
        }, "r2 is not told slot taken: it may be booked under the newer epoch")
    }
}
