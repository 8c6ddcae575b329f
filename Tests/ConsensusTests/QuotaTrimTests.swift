@testable import Consensus
import Domain
import Testing

/// Trimming a quota bucket: what a trim drops, that no decision about a visit still bookable
/// changes, and that a trimmed bucket's holder refuses visits its windows can no longer count.
@Suite struct QuotaTrimTests {
    let policy = QuotaPolicy.standard
    let t0: Int64 = 1_796_000_000_000
    var today: Int { ShanghaiTime.unixDay(wallMs: t0) }

    @Test func theTrimOfADayLeavesEveryWindowOfAVisitStillBookable() {
        let trim = policy.trim(today: 20_000, openDaysBack: 2)
        #expect(trim.visitsFrom == 20_000 - 2 - QuotaPolicy.trimSlackDays)
        #expect(trim.reservationsBefore + policy.longestWindowDays == trim.visitsFrom)
        // 3 no-shows in 365 days ban for 90: a strike counts for 455 days.
        #expect(trim.strikesBefore == 20_000 - QuotaPolicy.trimSlackDays - 455)
        #expect(policy.trim(today: 20_001, openDaysBack: 2).covers(trim))
        #expect(!trim.covers(policy.trim(today: 20_001, openDaysBack: 2)))
    }

    /// For any reservations held and any visit from `visitsFrom` on, the rules decide the same
    /// with the trimmed reservations left out; and no ban from today on changes without old strikes.
    @Test func noDecisionAboutABookableVisitChanges() {
        let trim = policy.trim(today: 1_000, openDaysBack: 2)
        var rng = SplitMix64(seed: 11)
        for round in 0..<400 {
            let held = (0..<Int(rng.below(9))).map { _ in
                QuotaTag(visitDay: trim.reservationsBefore - 120 + Int(rng.below(240)), department: rng.chance(0.5) ? "neike" : "waike")
            }
            let records = held.enumerated().map { i, tag in
                Booking(id: "quota:r\(round)-\(i)", block: "quota/0", slot: i, patient: "p", epoch: 1, kind: .quotaReservation(tag))
            }
            let kept = trim.kept(records).compactMap { b -> QuotaTag? in
                if case .quotaReservation(let tag) = b.kind { return tag }
                return nil
            }
            let visit = QuotaTag(visitDay: trim.visitsFrom + Int(rng.below(30)), department: rng.chance(0.5) ? "neike" : "waike")
            #expect(policy.broken(by: visit, held: held) == policy.broken(by: visit, held: kept), "round \(round)")

            let strikes = (0..<Int(rng.below(6))).map { _ in Strike(kind: .noShow, day: trim.strikesBefore - 200 + Int(rng.below(700))) }
            let keptStrikes = strikes.filter { $0.day >= trim.strikesBefore }
            for day in [1_000, 1_001, 1_100] {
                #expect(policy.ban(strikes: strikes, today: day)?.until == policy.ban(strikes: keptStrikes, today: day)?.until, "round \(round) day \(day)")
            }
        }
    }

    @Test func aReservationLeavesWithItsReleaseAndTheRefusalsThatNameIt() {
        let trim = QuotaTrim(reservationsBefore: 100, visitsFrom: 190, strikesBefore: 50)
        let old = QuotaTag(visitDay: 99, department: "neike"), recent = QuotaTag(visitDay: 100, department: "neike")
        let records = [
            Booking(id: "quota:r1", block: "quota/0", slot: 1, patient: "p", epoch: 1, kind: .quotaReservation(old)),
            Booking(id: "release:quota:r1", block: "quota/0", slot: 1, patient: "p", epoch: 1, generation: 1, kind: .release(of: "quota:r1", refused: nil)),
            Booking(id: "quota:r2", block: "quota/0", slot: 2, patient: "p", epoch: 1, kind: .quotaReservation(old)),
            Booking(id: "release:quota:r2", block: "quota/0", slot: -1, patient: "p", epoch: 1, kind: .refusal(.notBooked, requestTag: "")),
            Booking(id: "quota:r3", block: "quota/0", slot: -1, patient: "p", epoch: 1, kind: .refusal(.quotaExceeded, requestTag: old.encoded)),
            Booking(id: "quota:r4", block: "quota/0", slot: 4, patient: "p", epoch: 1, kind: .quotaReservation(recent)),
            Booking(id: "release:quota:r4", block: "quota/0", slot: 4, patient: "p", epoch: 1, generation: 1, kind: .release(of: "quota:r4", refused: .slotTaken)),
            Booking(id: "strike:s1", block: "quota/0", slot: 5, patient: "p", epoch: 1, kind: .strike(Strike(kind: .noShow, day: 49))),
            Booking(id: "strike:s2", block: "quota/0", slot: 6, patient: "p", epoch: 1, kind: .strike(Strike(kind: .lateCancel, day: 50))),
            // A refused release of a reservation nobody knows: kept (nothing says how old it is).
            Booking(id: "release:quota:r9", block: "quota/0", slot: -1, patient: "p", epoch: 1, kind: .refusal(.notBooked, requestTag: "")),
        ]
        #expect(trim.kept(records).map(\.id) == ["quota:r4", "release:quota:r4", "strike:s2", "release:quota:r9"])
    }

    /// A bucket at epoch 1 with an old and a recent reservation is taken over with a trim: the old
    /// one leaves the holder's store and any later takeover, the recent one still counts, and a
    /// reservation for a visit the trim passed is refused as its closed session would be.
    @Test func aTrimmedBucketForgetsWhatItDroppedAndRefusesVisitsItCannotCount() {
        var s = ClusterState(config: ClusterConfig(voters: ["n1"]))
        s.apply(.upsertMember(MemberInfo(node: "n1", address: "x", department: "d", certificateSerial: "1")))
        s.apply(.renewLiveness(node: "n1", incarnation: 1))
        let bucket = quotaBucketPrefix + "0"
        s.apply(.defineBlock(bucket, home: "n1", slots: Int(Int32.max)))
        s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1"], collected: [])))
        var n1 = BookingNode(id: "n1", incarnation: 1)
        func book(_ q: BookingRequest) -> [BookingAction] {
            var acts = n1.request(q, state: s, wallMs: t0)
            if let seq = lastPersistSeq(acts) { acts += n1.persisted(upTo: seq) }
            for e in sends(acts) {
                if case .accept(let b) = e.body {
                    acts += n1.receive(LeaseEnvelope(from: e.to, to: "n1", body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)), state: s)
                }
            }
            return acts
        }
        func answer(_ acts: [BookingAction]) -> String? {
            for a in acts {
                if case .acknowledged(let b) = a { return b.refusal ?? "booked" }
                if case .refused(_, let reason) = a { return reason.rawValue }
            }
            return nil
        }
        let recent = QuotaTag(visitDay: today + 3, department: "neike")
        #expect(answer(book(BookingRequest(id: "quota:old", block: bucket, slot: 1, patient: "p", tag: QuotaTag(visitDay: today - 200, department: "neike").encoded))) == "booked")
        #expect(answer(book(BookingRequest(id: "quota:recent", block: bucket, slot: 2, patient: "p", tag: recent.encoded))) == "booked")

        let trim = policy.trim(today: today, openDaysBack: 2)
        let collected = trim.kept(n1.store.records(in: bucket).sorted { $0.id < $1.id })
        #expect(collected.map(\.id) == ["quota:recent"])
        let trimmed = s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 1, toEpoch: 2, holder: "n1", holderLiveness: 1, voters: ["n1"],
                                                 collected: collected, trim: trim)))
        #expect(trimmed)
        let drop = n1.dropInactive(in: bucket, state: s)
        #expect(drop.contains { if case .persist(let w) = $0 { return w.drop.map(\.id) == ["quota:old"] }; return false })
        #expect(n1.store.records(in: bucket).map(\.id) == ["quota:recent"])

        // A takeover that does not know of the trim (a voter's stale records) still keeps to it.
        let stale = Booking(id: "quota:old", block: bucket, slot: 1, patient: "p", epoch: 1, kind: .quotaReservation(QuotaTag(visitDay: today - 200, department: "neike")))
        let takenOver = s.apply(.lease(LeaseChange(block: bucket, fromEpoch: 2, toEpoch: 3, holder: "n1", holderLiveness: 1, voters: ["n1"],
                                                   collected: collected + [stale])))
        #expect(takenOver)
        #expect(s.blocks[bucket]?.collected.map(\.id) == ["quota:recent"])
        #expect(s.blocks[bucket]?.trim == trim)

        #expect(answer(book(BookingRequest(id: "quota:again", block: bucket, slot: 3, patient: "p", tag: recent.encoded))) == RefuseReason.quotaExceeded.rawValue)
        #expect(answer(book(BookingRequest(id: "quota:late", block: bucket, slot: 4, patient: "q",
                                          tag: QuotaTag(visitDay: trim.visitsFrom - 1, department: "neike").encoded))) == RefuseReason.noSuchSlot.rawValue)
        #expect(answer(book(BookingRequest(id: "quota:edge", block: bucket, slot: 5, patient: "q",
                                          tag: QuotaTag(visitDay: trim.visitsFrom, department: "neike").encoded))) == "booked")
    }
}
