import Consensus
import Foundation
import Testing

/// A state where block "b" is held by n1 at `epoch` with voters n1..n3.
func leasedState(epoch: Epoch = 1, collected: [Booking] = []) -> ClusterState {
    var s = ClusterState(config: ClusterConfig(voters: ["n1", "n2", "n3"]))
    for n in ["n1", "n2", "n3"] as [NodeID] {
        s.apply(.upsertMember(MemberInfo(node: n, address: "x", department: "d", certificateSerial: "1")))
        s.apply(.renewLiveness(node: n, incarnation: 1))
    }
    s.apply(.defineBlock("b", home: "n1", slots: 4))
    s.apply(.lease(LeaseChange(block: "b", fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
    if epoch > 1 {
        s.apply(.lease(LeaseChange(block: "b", fromEpoch: 1, toEpoch: epoch, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: collected)))
    }
    return s
}

func sends(_ acts: [BookingAction]) -> [LeaseEnvelope] {
    acts.compactMap { if case .send(let e) = $0 { return e }; return nil }
}
func lastPersistSeq(_ acts: [BookingAction]) -> UInt64? {
    acts.compactMap { if case .persist(let w) = $0 { return w.seq }; return nil }.last
}

/// The wall clock the tests' holders read: 2026-11-30 00:53:20 UTC.
let testWallMs: Int64 = 1_796_000_000_000

/// `q` at holder `holder`, its writes durable and every voter asked accepting: the actions in order.
func throughQuorum(_ holder: inout BookingNode, _ q: BookingRequest, state s: ClusterState,
                   wallMs: Int64 = testWallMs, delay: Int64 = 0) -> [BookingAction] {
    var acts = holder.request(q, state: s, wallMs: wallMs, reofferDelayMs: delay)
    if let seq = lastPersistSeq(acts) { acts += holder.persisted(upTo: seq) }
    for e in sends(acts) { // the voters asked, the holder itself among them
        if case .accept(let b) = e.body {
            acts += holder.receive(LeaseEnvelope(from: e.to, to: holder.id, body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)), state: s)
        }
    }
    return acts + confirmedByVoters(&holder, acts, state: s)
}

/// A retry answered from the holder's records: what it says once the voters asked confirm
/// that its epoch is still the newest (no sends in the result).
func retried(_ holder: inout BookingNode, _ q: BookingRequest, state s: ClusterState, wallMs: Int64 = testWallMs) -> [BookingAction] {
    let acts = holder.request(q, state: s, wallMs: wallMs)
    return (acts + confirmedByVoters(&holder, acts, state: s)).filter { if case .send = $0 { return false }; return true }
}

/// The voters' answers to the epoch confirmations among `acts`, all "yes".
func confirmedByVoters(_ holder: inout BookingNode, _ acts: [BookingAction], state s: ClusterState) -> [BookingAction] {
    var out: [BookingAction] = []
    for e in sends(acts) {
        if case .confirm(let block, let epoch, let round) = e.body {
            out += holder.receive(LeaseEnvelope(from: e.to, to: holder.id, body: .confirmReply(block: block, epoch: epoch, round: round, ok: true)), state: s)
        }
    }
    return out
}

/// What the client of `q` hears once a quorum accepted whatever the holder wrote for it: a
/// booking, or a refusal (a refusal record's, or one answered without a record).
func answer(_ holder: inout BookingNode, _ q: BookingRequest, state s: ClusterState,
            wallMs: Int64 = testWallMs, delay: Int64 = 0) -> BookingOutcome? {
    for a in throughQuorum(&holder, q, state: s, wallMs: wallMs, delay: delay) {
        switch a {
        case .acknowledged(let b) where b.id == q.id:
            return b.refusal.flatMap(RefuseReason.init(rawValue:)).map { .refused(requestID: b.id, reason: $0) } ?? .booked(b)
        case .refused(let id, let reason) where id == q.id:
            return .refused(requestID: id, reason: reason)
        default:
            continue
        }
    }
    return nil
}

@Suite struct LeaseTests {
    @Test func activityIsDerivedFromEpochAndTakeoverList() {
        let old = Booking(id: "x", block: "b", slot: 0, patient: "p", epoch: 1)
        let lost = Booking(id: "y", block: "b", slot: 1, patient: "q", epoch: 1)
        let s = leasedState(epoch: 2, collected: [old])
        #expect(bookingStatus(old, in: s) == .active)
        #expect(bookingStatus(lost, in: s) == .inactive)
        #expect(bookingStatus(Booking(id: "z", block: "b", slot: 2, patient: "r", epoch: 2), in: s) == .active)
        #expect(bookingStatus(Booking(id: "w", block: "b", slot: 2, patient: "r", epoch: 3), in: s) == .unknown)
        let v = slotViews(block: "b", bookings: [lost, Booking(id: "w", block: "b", slot: 3, patient: "r", epoch: 3)], state: s)
        #expect(v.unknown, "a booking newer than our history makes the block unknown")
    }

    /// A replica may hold a request's record from an epoch whose round never finished while the
    /// takeover collected the request's later record (its retry's booking, or its refusal): only
    /// the collected one counts, so the stale one shows no booking and takes no quota place.
    @Test func aStaleRecordUnderACollectedIDIsInactive() throws {
        let stale = Booking(id: "c", block: "b", slot: 0, patient: "p", epoch: 1, confirms: "h")
        let refusal = Booking(id: "c", block: "b", slot: -1, patient: "p", epoch: 2, refusal: RefuseReason.holdExpired.rawValue)
        var s = leasedState(epoch: 2)
        s.apply(.lease(LeaseChange(block: "b", fromEpoch: 2, toEpoch: 3, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [refusal])))
        #expect(bookingStatus(stale, in: s) == .inactive)
        #expect(bookingStatus(refusal, in: s) == .active)
        // The same after a snapshot's round trip (the index is derived, not stored).
        let copy = try JSONDecoder().decode(ClusterState.self, from: JSONEncoder().encode(s))
        #expect(copy == s)
        #expect(bookingStatus(stale, in: copy) == .inactive)
        #expect(bookingStatus(refusal, in: copy) == .active)
    }

    @Test func holderAcknowledgesOnlyAfterAQuorumOfVoters() {
        let s = leasedState()
        var h = BookingNode(id: "n1", incarnation: 1)
        let acts = h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs)
        let accepts = sends(acts)
        #expect(accepts.map(\.to) == ["n1", "n2"], "a quorum is asked first: the holder and the next voter")
        let reply = { (from: NodeID) in LeaseEnvelope(from: from, to: "n1", body: .acceptReply(bookingID: "r1", block: "b", epoch: 1, ok: true)) }
        let first = h.receive(reply("n2"), state: s)
        #expect(!first.contains { if case .acknowledged = $0 { return true }; return false })
        let second = h.receive(reply("n3"), state: s)
        #expect(second.contains { if case .acknowledged(let b) = $0 { return b.id == "r1" }; return false })
        // The slot is spent for this epoch, whatever happens to r1.
        #expect(answer(&h, BookingRequest(id: "r2", block: "b", slot: 0, patient: "q"), state: s) == .refused(requestID: "r2", reason: .slotTaken))
    }

    /// A round asks a quorum of live voters first; a voter known dead is skipped. A round short
    /// of its quorum after `hedgeTicks` asks the voters left out, and after `retryTicks` every
    /// voter not heard from.
    @Test func aRoundAsksLiveVotersFirstThenTheRestThenEveryVoterOnRetry() {
        var s = leasedState()
        s.apply(.expireLiveness(node: "n2", epoch: 1))
        var h = BookingNode(id: "n1", incarnation: 1)
        let acts = h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs)
        #expect(sends(acts).map(\.to) == ["n1", "n3"])
        var hedged: [NodeID] = []
        for _ in 0..<h.options.hedgeTicks { hedged += sends(h.tick(state: s)).map(\.to) }
        #expect(hedged == ["n2"])
        var retried: [NodeID] = []
        for _ in h.options.hedgeTicks..<h.options.retryTicks { retried += sends(h.tick(state: s)).map(\.to) }
        #expect(retried.sorted() == ["n1", "n2", "n3"])
    }

    /// One voter of the first quorum stalls (its disk, say): the voter asked at `hedgeTicks`
    /// completes the quorum, long before `retryTicks`.
    @Test func aStalledVoterCostsHedgeTicksNotRetryTicks() {
        let s = leasedState()
        var h = BookingNode(id: "n1", incarnation: 1)
        #expect(sends(h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs)).map(\.to) == ["n1", "n2"])
        let reply = { (from: NodeID) in LeaseEnvelope(from: from, to: "n1", body: .acceptReply(bookingID: "r1", block: "b", epoch: 1, ok: true)) }
        _ = h.receive(reply("n1"), state: s)
        var asked: [NodeID] = []
        for _ in 0..<h.options.hedgeTicks { asked += sends(h.tick(state: s)).map(\.to) }
        #expect(asked == ["n3"], "n2 is silent: n3 is asked")
        #expect(h.receive(reply("n3"), state: s).contains { if case .acknowledged(let b) = $0 { return b.id == "r1" }; return false })
        #expect(h.options.hedgeTicks < h.options.retryTicks)
    }

    /// What the shell cannot reach: a holder without a reachable quorum refuses a new request at
    /// once, writing and sending nothing (a retry may book it later); with one voter cut off, the
    /// round asks the reachable one first; a node that cannot reach the holder does not pass the
    /// request on.
    @Test func unreachablePeersAreNotAskedAndNotWaitedFor() {
        let s = leasedState()
        var h = BookingNode(id: "n1", incarnation: 1)
        h.unreachable = ["n2", "n3"]
        #expect(h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs) == [.refused(requestID: "r1", reason: .noHolder)])
        #expect(!h.isPending("r1") && h.store.records["r1"] == nil)
        h.unreachable = ["n2"]
        let acts = h.request(BookingRequest(id: "r1", block: "b", slot: 0, patient: "p"), state: s, wallMs: testWallMs)
        #expect(sends(acts).map(\.to) == ["n1", "n3"])
        #expect(h.isPending("r1"))

        var other = BookingNode(id: "n3", incarnation: 1)
        #expect(other.request(BookingRequest(id: "r2", block: "b", slot: 1, patient: "q"), state: s, wallMs: testWallMs) == [.forward(BookingRequest(id: "r2", block: "b", slot: 1, patient: "q"), to: "n1")])
        other.unreachable = ["n1"]
        #expect(other.request(BookingRequest(id: "r2", block: "b", slot: 1, patient: "q"), state: s, wallMs: testWallMs) == [.refused(requestID: "r2", reason: .noHolder)])
    }

    @Test func voterRecordsPromiseBeforeAnsweringAndThenRefusesOlderEpochs() {
        let s = leasedState()
        var v = BookingNode(id: "n2", incarnation: 1)
        let b1 = Booking(id: "r1", block: "b", slot: 0, patient: "p", epoch: 1)
        // Accept under epoch 1: the reply waits for the write.
        var acts = v.receive(LeaseEnvelope(from: "n1", to: "n2", body: .accept(b1)), state: s)
        #expect(sends(acts).isEmpty)
        acts = v.persisted(upTo: lastPersistSeq(acts)!)
        #expect(sends(acts).first?.body == .acceptReply(bookingID: "r1", block: "b", epoch: 1, ok: true))
        // Prepare epoch 2: the promise (with r1) waits for the write of the new epoch.
        acts = v.receive(LeaseEnvelope(from: "n3", to: "n2", body: .prepare(block: "b", epoch: 2)), state: s)
        #expect(sends(acts).isEmpty)
        #expect(v.store.promised["b"] == 2)
        acts = v.persisted(upTo: lastPersistSeq(acts)!)
        #expect(sends(acts).first?.body == .promise(block: "b", epoch: 2, ok: true, bookings: [b1]))
        // A late write from the old holder is refused.
        let late = Booking(id: "r9", block: "b", slot: 1, patient: "q", epoch: 1)
        acts = v.receive(LeaseEnvelope(from: "n1", to: "n2", body: .accept(late)), state: s)
        #expect(sends(acts).first?.body == .acceptReply(bookingID: "r9", block: "b", epoch: 1, ok: false))
        #expect(v.store.records["r9"] == nil)
        // A prepare for an older epoch is refused with the epoch we promised.
        acts = v.receive(LeaseEnvelope(from: "n3", to: "n2", body: .prepare(block: "b", epoch: 1)), state: s)
        #expect(sends(acts).first?.body == .promise(block: "b", epoch: 2, ok: false, bookings: []))
    }

    @Test func restartedHolderDoesNotBookUnderItsOldLease() {
        let s = leasedState()
        let h = BookingNode(id: "n1", incarnation: 2) // liveness still says incarnation 1
        #expect(!h.holds("b", in: s))
        var s2 = s
        s2.apply(.renewLiveness(node: "n1", incarnation: 2))
        #expect(!s2.leaseValid("b"), "a restart moves the liveness epoch, ending the old lease")
    }

    @Test func takeoverAppliesOnlyFromTheCurrentEpochAndExpiryOnlyByEntry() {
        var s = leasedState()
        let stale = LeaseChange(block: "b", fromEpoch: 0, toEpoch: 5, holder: "n2", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])
        do { let ok = s.apply(.lease(stale)); #expect(!ok) }
        #expect(s.blocks["b"]?.epoch == 1)
        #expect(s.leaseValid("b"))
        do { let ok = s.apply(.expireLiveness(node: "n1", epoch: 1)); #expect(ok) }
        #expect(!s.leaseValid("b"))
        do { let ok = s.apply(.expireLiveness(node: "n1", epoch: 1)); #expect(!ok, "an expiry for an old epoch is stale") }
    }

    @Test func leaderRunsTakeoverAsPhaseOneThenProposesCollectedBookings() {
        var s = leasedState()
        s.apply(.expireLiveness(node: "n1", epoch: 1))
        var m = LeaseManager(id: "n2")
        m.becameLeader(now: 0)
        let acts = m.tick(now: 10, state: s, ready: true)
        let prepares = acts.compactMap { a -> LeaseEnvelope? in if case .send(let e) = a { return e }; return nil }
        #expect(prepares.map(\.to) == ["n1", "n2", "n3"])
        guard case .prepare(_, let epoch) = prepares.first?.body else { Issue.record("no prepare"); return }
        #expect(epoch == 2)
        let b1 = Booking(id: "r1", block: "b", slot: 0, patient: "p", epoch: 1)
        let stale = Booking(id: "r0", block: "b", slot: 1, patient: "p", epoch: 0)
        _ = m.receive(LeaseEnvelope(from: "n2", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [])), now: 11, state: s)
        let out = m.receive(LeaseEnvelope(from: "n3", to: "n2", body: .promise(block: "b", epoch: 2, ok: true, bookings: [b1, stale])), now: 12, state: s)
        guard case .propose(.lease(let c))? = out.first else { Issue.record("no proposal: \(out)"); return }
        #expect(c.fromEpoch == 1 && c.toEpoch == 2)
        #expect(c.collected == [b1])
        #expect(c.holder != "n1")
    }
}
