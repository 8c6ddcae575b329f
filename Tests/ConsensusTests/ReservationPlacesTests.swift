@testable import Consensus
import Testing

/// A reservation whose first place in the bucket another reservation holds takes one of its other
/// places, and its release finds it there.
@Suite struct ReservationPlacesTests {
    /// Two request ids whose reservations hash to the same first place.
    static func collidingRequestIDs() -> (String, String) {
        var seen: [Int: String] = [:]
        for i in 0... {
            let id = "r\(i)"
            let place = ConsensusCore.reservationSlots(ConsensusCore.reservationID(of: id))[0]
            if let other = seen[place] { return (other, id) }
            seen[place] = id
        }
        fatalError("unreachable")
    }

    @Test func aReservationWhoseFirstPlaceIsTakenTakesAnotherAndIsReleasedThere() {
        let (first, second) = Self.collidingRequestIDs()
        var o = ConsensusCoreOptions()
        o.quotaBuckets = 1
        var one = OneNodeCore(options: o)
        for _ in 0..<3_000 where !one.core.cluster.leaseValid(quotaBucketPrefix + "0") { one.tick() }
        #expect(one.core.cluster.leaseValid(quotaBucketPrefix + "0"))

        let today = 20_800
        one.run(one.core.request(BookingRequest(id: first, block: "s", slot: 0, patient: "p"), quota: QuotaTag(visitDay: today, department: "neike")))
        one.run(one.core.request(BookingRequest(id: second, block: "s", slot: 1, patient: "p"), quota: QuotaTag(visitDay: today + 200, department: "neike")))
        let booked = one.outcomes.compactMap { o -> String? in
            if case .booked(let b) = o { return b.id }
            return nil
        }
        #expect(booked == [first, second], "\(one.outcomes)")
        let bucket = one.core.booking.store.records(in: quotaBucketPrefix + "0")
        let places = Set(bucket.map(\.slot))
        #expect(places.count == 2, "the second reservation took another place: \(bucket)")

        // Cancelling the second booking gives its reservation back, found at its other place.
        one.outcomes = []
        one.run(one.core.request(BookingRequest(id: "x:" + second, block: "s", slot: 1, patient: "p", releases: second),
                                 quota: QuotaTag(visitDay: today + 200, department: "neike")))
        for _ in 0..<50 { one.tick() }
        let released = one.core.booking.store.records(in: quotaBucketPrefix + "0").filter { $0.kind.released == ConsensusCore.reservationID(of: second) }
        #expect(released.count == 1, "\(one.core.booking.store.records(in: quotaBucketPrefix + "0"))")
        let reservation = bucket.first { $0.id == ConsensusCore.reservationID(of: second) }
        #expect(released.first?.slot == reservation?.slot)
    }
}
