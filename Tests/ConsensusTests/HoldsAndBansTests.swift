import Consensus
import Testing

/// Holds, confirmations and expiries at the holder, and the ban ladder of the quota buckets.
@Suite struct HoldsAndBansTests {
    let rules = ReleaseRulesTests()
    let t0: Int64 = 1_796_000_000_000

    func hold(_ id: String, slot: Int, patient: String = "p", ms: Int64 = 900_000) -> BookingRequest {
        BookingRequest(id: id, block: "s", slot: slot, patient: patient, holdMs: ms)
    }

    @Test func aHoldRecordsItsExpiryAndAConfirmationKeepsTheSlot() {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        let (h, _) = rules.book(&n1, hold("h1", slot: 1), s, wallMs: t0)
        #expect(h?.holdUntilMs == t0 + 900_000)
        #expect(h?.isHold == true)
        let (c, _) = rules.book(&n1, BookingRequest(id: "c1", block: "s", slot: 1, patient: "p", confirms: "h1"), s, wallMs: t0 + 899_999)
        #expect(c?.confirms == "h1" && c?.generation == 1 && c?.isHold == false)
        // The confirmed slot is nobody else's, and an expiry no longer applies to it.
        #expect(answer(&n1, hold("h2", slot: 1, patient: "q"), state: s, wallMs: t0 + 1_000_000) == .refused(requestID: "h2", reason: .slotTaken))
        let expiry = BookingRequest(id: holdExpiryPrefix + "h1", block: "s", slot: 1, patient: "p", releases: "h1")
        #expect(answer(&n1, expiry, state: s, wallMs: t0 + 2_000_000) == .refused(requestID: expiry.id, reason: .notBooked))
        // A retry of the confirmation answers the same record.
        #expect(retried(&n1, BookingRequest(id: "c1", block: "s", slot: 1, patient: "p", confirms: "h1"), state: s, wallMs: t0 + 2_000_000) == [.acknowledged(c!)])
    }

    @Test func aConfirmationAtTheExpiryInstantIsRefused() {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = rules.book(&n1, hold("h1", slot: 0), s, wallMs: t0)
        let late = BookingRequest(id: "c1", block: "s", slot: 0, patient: "p", confirms: "h1")
        #expect(answer(&n1, late, state: s, wallMs: t0 + 900_000) == .refused(requestID: "c1", reason: .holdExpired))
    }

    @Test func anExpiryWaitsForTheHoldersClockAndThenBeatsALateConfirmation() {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = rules.book(&n1, hold("h1", slot: 0), s, wallMs: t0)
        let expiry = BookingRequest(id: holdExpiryPrefix + "h1", block: "s", slot: 0, patient: "p", releases: "h1")
        #expect(answer(&n1, expiry, state: s, wallMs: t0 + 899_999) == .refused(requestID: expiry.id, reason: .notBooked), "not yet")
        let (released, _) = rules.book(&n1, expiry, s, wallMs: t0 + 900_000, delay: 60_000)
        #expect(released?.releases == "h1")
        // Whoever confirms now is told the hold ran out, with a reason of its own.
        let late = BookingRequest(id: "c1", block: "s", slot: 0, patient: "p", confirms: "h1")
        #expect(answer(&n1, late, state: s, wallMs: t0 + 900_001) == .refused(requestID: "c1", reason: .holdExpired))
        // And the slot comes back only after the re-offer delay.
        #expect(answer(&n1, hold("h2", slot: 0, patient: "q"), state: s, wallMs: t0 + 900_000 + 59_999) == .refused(requestID: "h2", reason: .slotTaken))
        let (again, _) = rules.book(&n1, hold("h3", slot: 0, patient: "q"), s, wallMs: t0 + 960_000)
        #expect(again?.generation == 2)
    }

    @Test func onlyTheHoldsPatientConfirmsOrCancelsIt() {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = rules.book(&n1, hold("h1", slot: 3), s, wallMs: t0)
        let other = BookingRequest(id: "c1", block: "s", slot: 3, patient: "mallory", confirms: "h1")
        #expect(answer(&n1, other, state: s, wallMs: t0 + 1) == .refused(requestID: "c1", reason: .notBooked))
        let cancel = BookingRequest(id: "x1", block: "s", slot: 3, patient: "mallory", releases: "h1")
        #expect(answer(&n1, cancel, state: s, wallMs: t0 + 1) == .refused(requestID: "x1", reason: .notBooked))
    }

    @Test func aCancellationNamesTheHoldConfirmedOrNot() {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = rules.book(&n1, hold("h1", slot: 2), s, wallMs: t0)
        _ = rules.book(&n1, BookingRequest(id: "c1", block: "s", slot: 2, patient: "p", confirms: "h1"), s, wallMs: t0 + 1)
        let (x, _) = rules.book(&n1, BookingRequest(id: "x1", block: "s", slot: 2, patient: "p", releases: "h1"), s, wallMs: t0 + 2)
        #expect(x?.generation == 2)
        // Retries of the hold and of its confirmation now say it was cancelled.
        #expect(answer(&n1, hold("h1", slot: 2), state: s, wallMs: t0 + 3) == .refused(requestID: "h1", reason: .released))
        #expect(n1.request(BookingRequest(id: "c1", block: "s", slot: 2, patient: "p", confirms: "h1"), state: s, wallMs: t0 + 3)
                == [.refused(requestID: "c1", reason: .released)])
    }

    // MARK: Bans

    @Test func theBanLadderCountsStrikesWithinTheirWindow() {
        let policy = QuotaPolicy.standard
        let noShows = [100, 200, 500].map { Strike(kind: .noShow, day: $0) }
        // 100, 200, 500: no three within 365 days.
        #expect(policy.ban(strikes: noShows, today: 501) == nil)
        let three = [100, 200, 464].map { Strike(kind: .noShow, day: $0) }
        // The third within 365 days (464 - 100 = 364): banned for 90 days from day 464.
        #expect(policy.ban(strikes: three, today: 464)?.until == 554)
        #expect(policy.ban(strikes: three, today: 553) != nil)
        #expect(policy.ban(strikes: three, today: 554) == nil, "the ban ends after 90 days")
        let justOutside = [100, 200, 465].map { Strike(kind: .noShow, day: $0) }
        #expect(policy.ban(strikes: justOutside, today: 465) == nil, "465 - 100 = 365 days: not within 12 months")

        let late = [10, 20, 39].map { Strike(kind: .lateCancel, day: $0) }
        #expect(policy.ban(strikes: late, today: 39)?.until == 69)
        #expect(policy.ban(strikes: [10, 20, 40].map { Strike(kind: .lateCancel, day: $0) }, today: 40) == nil)
        // Two of each kind never add up to a ban.
        #expect(policy.ban(strikes: [Strike(kind: .noShow, day: 5), Strike(kind: .noShow, day: 6),
                                     Strike(kind: .lateCancel, day: 5), Strike(kind: .lateCancel, day: 6)], today: 6) == nil)
    }

    @Test func strikesRoundTripAndNeverPassForQuotaTags() {
        let s = Strike(kind: .lateCancel, day: 20_000)
        #expect(Strike(encoded: s.encoded) == s)
        #expect(QuotaTag(encoded: s.encoded) == nil)
        #expect(Strike(encoded: QuotaTag(visitDay: 3, department: "neike").encoded) == nil)
        #expect(Strike(encoded: "strike|noshow|x") == nil)
    }

    /// A bucket holder with three recent no-shows recorded refuses the patient's reservations
    /// (by its own clock's date), and takes other patients'.
    @Test func aBucketHolderRefusesABannedPatient() {
        var s = ClusterState(config: ClusterConfig(voters: ["n1", "n2", "n3"]))
        for n in ["n1", "n2", "n3"] as [NodeID] {
            s.apply(.upsertMember(MemberInfo(node: n, address: "x", department: "d", certificateSerial: "1")))
            s.apply(.renewLiveness(node: n, incarnation: 1))
        }
        let bucket = quotaBucketPrefix + "0"
        s.apply(.defineBlock(bucket, home: "n1", slots: Int(Int32.max)))
        s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
        var n1 = BookingNode(id: "n1", incarnation: 1)
        let today = Int(t0 / 86_400_000)
        func acked(_ acts: [BookingAction]) -> Bool { acts.contains { if case .acknowledged = $0 { return true }; return false } }
        func book(_ q: BookingRequest) -> [BookingAction] {
            var acts = n1.request(q, state: s, wallMs: t0)
            if let seq = lastPersistSeq(acts) { acts += n1.persisted(upTo: seq) }
            for e in sends(acts) { // the voters asked, n1 itself among them
                if case .accept(let b) = e.body {
                    acts += n1.receive(LeaseEnvelope(from: e.to, to: "n1", body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)), state: s)
                }
            }
            return acts
        }
        let visit = QuotaTag(visitDay: today + 3, department: "neike").encoded
        for (i, ago) in [200, 100, 5].enumerated() {
            #expect(acked(book(BookingRequest(id: "strike:n\(i)", block: bucket, slot: 10 + i, patient: "p", tag: Strike(kind: .noShow, day: today - ago).encoded))))
        }
        // Refused for good: a refusal record, quorum-durable before the answer.
        let banned = book(BookingRequest(id: "quota:r1", block: bucket, slot: 1, patient: "p", tag: visit))
        #expect(banned.contains { if case .acknowledged(let b) = $0 { return b.refusal == RefuseReason.banned.rawValue }; return false })
        #expect(acked(book(BookingRequest(id: "quota:r2", block: bucket, slot: 2, patient: "q", tag: visit))), "another patient is not banned")
    }

    /// The holder expires a hold only once the hold's own round is over: one still short of its
    /// quorum (a slow disk here) may be lost with the epoch, and its expiry would release nothing.
    @Test func aHoldStillOpenIsNotExpiredUntilItsRoundIsOver() {
        var o = ConsensusCoreOptions()
        o.quotaBuckets = 0
        var one = OneNodeCore(options: o)
        one.holdBack = { w in w.records.contains { $0.id == "h1" } }
        one.request(hold("h1", slot: 0))
        #expect(one.core.isOpen("h1"))
        let expired = one.wall + 900_000
        let expiries = { (one: OneNodeCore) in one.core.booking.store.records[holdExpiryPrefix + "h1"] }
        for _ in 0..<Int(o.expireHoldsEveryTicks) { one.tick(wallMs: expired) }
        #expect(expiries(one) == nil, "the hold is still open")
        one.flush()
        #expect(one.outcomes.contains { if case .booked(let b) = $0 { return b.id == "h1" }; return false })
        for _ in 0..<Int(o.expireHoldsEveryTicks) { one.tick(wallMs: expired) }
        #expect(expiries(one)?.releases == "h1", "expired once its round is over")
    }
}
