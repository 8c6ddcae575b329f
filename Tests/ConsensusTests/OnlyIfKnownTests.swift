@testable import Consensus
import Testing

/// A node that sees a session full asks the holders for a request's first outcome only
/// (`onlyIfKnown`) before refusing it itself: a retry through another node gets the answer the
/// first attempt got, and a request nobody knows is refused slot_taken, durably, so its retries do too.
@Suite struct OnlyIfKnownTests {
    func outcome(_ one: OneNodeCore, _ id: String) -> String? {
        for o in one.outcomes.reversed() where o.requestID == id {
            switch o {
            case .booked(let b): return "booked slot \(b.slot)"
            case .refused(_, let reason): return reason.rawValue
            }
        }
        return nil
    }

    @Test func aRetryGetsTheFirstOutcomeAndAnUnknownRequestKeepsItsRefusal() {
        var o = ConsensusCoreOptions()
        o.quotaBuckets = 1
        var one = OneNodeCore(options: o)
        let bucket = quotaBucketPrefix + "0"
        for _ in 0..<3_000 where !one.core.cluster.leaseValid(bucket) { one.tick() }
        #expect(one.core.cluster.leaseValid(bucket))
        let neike = QuotaTag(visitDay: 20_800, department: "neike")

        one.run(one.core.request(BookingRequest(id: "r1", block: "s", slot: 0, patient: "p"), quota: neike))
        one.run(one.core.request(BookingRequest(id: "r2", block: "s", slot: 1, patient: "p"), quota: neike))
        #expect(outcome(one, "r1") == "booked slot 0")
        #expect(outcome(one, "r2") == RefuseReason.quotaExceeded.rawValue, "one per department per visit date")

        // Asked again, only if known: each answer is the first one.
        one.outcomes = []
        one.run(one.core.request(BookingRequest(id: "r2", block: "s", slot: 1, patient: "p", onlyIfKnown: true), quota: neike))
        one.run(one.core.request(BookingRequest(id: "r1", block: "s", slot: 0, patient: "p", onlyIfKnown: true), quota: neike))
        for _ in 0..<20 { one.tick() }
        #expect(outcome(one, "r2") == RefuseReason.quotaExceeded.rawValue)
        #expect(outcome(one, "r1") == "booked slot 0")

        // A request no holder knows: refused slot_taken (the asking node saw the session full),
        // durably in the bucket and not in the session; sent for real afterwards, it hears the same.
        let other = QuotaTag(visitDay: 20_801, department: "waike")
        one.run(one.core.request(BookingRequest(id: "r3", block: "s", slot: 2, patient: "p", onlyIfKnown: true), quota: other))
        for _ in 0..<20 { one.tick() }
        #expect(outcome(one, "r3") == RefuseReason.slotTaken.rawValue)
        #expect(one.core.booking.store.records["r3"] == nil, "nothing in the session")
        #expect(one.core.booking.store.records[ConsensusCore.reservationID(of: "r3")]?.isRefusal == true, "a refusal record in the bucket")
        one.outcomes = []
        one.run(one.core.request(BookingRequest(id: "r3", block: "s", slot: 2, patient: "p"), quota: other))
        for _ in 0..<20 { one.tick() }
        #expect(outcome(one, "r3") == RefuseReason.slotTaken.rawValue, "a retry hears its first outcome, though slot 2 is free")
        #expect(one.core.booking.store.records["r3"] == nil)
        // A new request books the free slot as usual.
        one.run(one.core.request(BookingRequest(id: "r4", block: "s", slot: 2, patient: "p"), quota: other))
        #expect(outcome(one, "r4") == "booked slot 2")
    }

    @Test func theFlagCrossesTheWireAndARequestWithoutItIsTheSameBytesAsBefore() throws {
        let plain = BookingRequest(id: "r1", block: "s", slot: 3, patient: "p", alternatives: [4, 5], holdMs: 900_000, hops: 1)
        var asking = plain
        asking.onlyIfKnown = true
        let plainBytes = ConsensusWire.encode(.request(plain))
        let askingBytes = ConsensusWire.encode(.request(asking))
        #expect(askingBytes.count == plainBytes.count + 1)
        #expect(Array(askingBytes.prefix(plainBytes.count)) == plainBytes)
        func request(_ bytes: [UInt8]) throws -> BookingRequest? {
            if case .request(let q) = try ConsensusWire.decode(bytes) { return q }
            return nil
        }
        #expect(try request(plainBytes) == plain)
        #expect(try request(askingBytes) == asking)
        // Flags this version does not know are refused, not guessed at.
        #expect(throws: (any Error).self) { try ConsensusWire.decode(plainBytes + [2]) }
    }
}
