import Consensus
import Foundation
import Testing

/// Closing a block: the leader collects its records like a takeover, commits a `BlockClosure`
/// with them, and the node forgets the block (records, lease record) while refusing it for good.
@Suite struct BlockClosureTests {
    @Test func aClosedBlockKeepsItsFinalRecordsInTheClosureAndLeavesTheNode() throws {
        var n = OneNodeCore(options: ConsensusCoreOptions())
        n.request(BookingRequest(id: "r1", block: "s", slot: 0, patient: "p1"))
        n.request(BookingRequest(id: "r2", block: "s", slot: 1, patient: "p2"))
        n.request(BookingRequest(id: "x1", block: "s", slot: 0, patient: "p1", releases: "r1"))
        #expect(n.outcomes.count == 3 && n.outcomes.allSatisfy { if case .booked = $0 { true } else { false } })
        #expect(n.core.booking.store.records(in: "s").count == 3)

        n.core.close(["s"])
        for _ in 0..<200 where n.core.cluster.blocks["s"] != nil { n.tick() }
        #expect(n.core.cluster.blocks["s"] == nil && n.core.cluster.closed == ["s"])
        let closure = try #require(n.accepted.compactMap { c -> BlockClosure? in
            if case .closeBlock(let closure) = c { return closure } else { return nil }
        }.first)
        #expect(Set(closure.records.map(\.id)) == ["r1", "r2", "x1"])
        #expect(closure.slots == 4)
        // Slot 0 was released, slot 1 is r2's for good.
        #expect(holdingBooking(closure.finalSlots[1])?.id == "r2")
        #expect(holdingBooking(closure.finalSlots[0]) == nil)
        #expect(n.core.booking.store.records(in: "s").isEmpty, "the node forgot the closed block's records")
        #expect(n.core.booking.store.promised["s"] == .max)

        // Every request for it is refused for good, retries included.
        n.outcomes = []
        n.request(BookingRequest(id: "r3", block: "s", slot: 2, patient: "p3"))
        n.request(BookingRequest(id: "r2", block: "s", slot: 1, patient: "p2"))
        #expect(n.outcomes == [.refused(requestID: "r3", reason: .noSuchSlot), .refused(requestID: "r2", reason: .noSuchSlot)])
        // Nor can the block be defined again.
        n.run(n.core.propose(.defineSession("s", home: "n1", slots: 4, opensAtMs: 0)).1)
        for _ in 0..<20 { n.tick() }
        #expect(n.core.cluster.blocks["s"] == nil)
    }

    @Test func quotaBucketsAreNeverClosed() {
        var n = OneNodeCore(options: ConsensusCoreOptions())
        for _ in 0..<200 where n.core.cluster.blocks.keys.filter({ isQuotaBucket($0) }).count < 16 { n.tick() }
        let buckets = n.core.cluster.blocks.keys.filter { isQuotaBucket($0) }
        #expect(!buckets.isEmpty)
        n.core.close(buckets)
        for _ in 0..<200 { n.tick() }
        #expect(n.core.cluster.closed.isEmpty)
    }

    /// A snapshot written before blocks could close has no `closed` key; it still decodes.
    @Test func aClusterStateWithoutClosedBlocksDecodes() throws {
        var state = ClusterState(config: ClusterConfig(voters: ["n1"]))
        state.apply(.defineSession("s", home: "n1", slots: 4, opensAtMs: 0))
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as! [String: Any]
        #expect(json["closed"] != nil)
        json["closed"] = nil
        let decoded = try JSONDecoder().decode(ClusterState.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(decoded == state)
    }
}
