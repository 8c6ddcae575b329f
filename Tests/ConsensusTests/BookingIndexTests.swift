import Consensus
import Testing

@Suite struct BookingIndexTests {
    /// A slot's records come from the per-slot index, and a block's version moves with every write
    /// to it (the slot search keeps its views by it), not with writes to other blocks.
    @Test func slotIndexAndBlockVersions() {
        var s = BookingDurableState()
        s.apply(BookingWrite(seq: 1, promise: nil, records: [
            Booking(id: "a", block: "b1", slot: 3, patient: "p", epoch: 1),
            Booking(id: "b", block: "b1", slot: 4, patient: "q", epoch: 1),
            Booking(id: "c", block: "b2", slot: 3, patient: "p", epoch: 1)]))
        #expect(s.records(in: "b1", slot: 3).map(\.id) == ["a"])
        #expect(s.records(in: "b2", slot: 3).map(\.id) == ["c"])
        #expect(s.records(in: "b1", slot: 5).isEmpty)
        let before = (s.versions["b1"] ?? 0, s.versions["b2"] ?? 0)
        s.apply(BookingWrite(seq: 2, promise: nil, records: [Booking(id: "x", block: "b1", slot: 3, patient: "p", epoch: 1, generation: 1, releases: "a")]))
        #expect(Set(s.records(in: "b1", slot: 3).map(\.id)) == ["a", "x"])
        #expect(s.versions["b1"] ?? 0 > before.0)
        #expect(s.versions["b2"] ?? 0 == before.1)
        // A block's records: every record of it, each request once, at its latest epoch.
        s.apply(BookingWrite(seq: 3, promise: nil, records: [Booking(id: "a", block: "b1", slot: 3, patient: "p", epoch: 2)]))
        s.apply(BookingWrite(seq: 4, promise: nil, records: [Booking(id: "b", block: "b1", slot: 4, patient: "q", epoch: 0)]))
        #expect(s.records(in: "b1").sorted { $0.id < $1.id }.map { "\($0.id)@\($0.epoch)" } == ["a@2", "b@1", "x@1"])
        #expect(s.records(in: "b2").map(\.id) == ["c"] && s.records(in: "b3").isEmpty)
        // A request remade under a later epoch on another slot is found on that slot only.
        s.apply(BookingWrite(seq: 5, promise: nil, records: [Booking(id: "b", block: "b1", slot: 6, patient: "q", epoch: 2)]))
        #expect(s.records(in: "b1", slot: 4).isEmpty)
        #expect(s.records(in: "b1", slot: 6).map(\.id) == ["b"])
        // Equality is by promises and records, however the writes were batched.
        var t = BookingDurableState()
        for r in s.records.values.sorted(by: { $0.id < $1.id }) { t.apply(BookingWrite(seq: 1, promise: nil, records: [r])) }
        #expect(t == s)
    }
}
