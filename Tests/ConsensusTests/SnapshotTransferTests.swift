@testable import Consensus
import Foundation
import Testing

/// A snapshot's state in its compressed form, sent in chunks that each fit a mesh frame.
@Suite("Snapshot transfer")
struct SnapshotTransferTests {
    /// A state with `bookings` collected records spread over blocks, with patients that do not
    /// repeat (so it does not compress to almost nothing).
    static func state(bookings: Int) -> ClusterState {
        var s = leasedState()
        let perBlock = 500
        for b in 0..<(bookings + perBlock - 1) / perBlock {
            let block = "neike-\(b)/2026-12-\(10 + b % 18)/morning"
            s.apply(.defineBlock(block, home: "n1", slots: perBlock))
            let records = (0..<min(perBlock, bookings - b * perBlock)).map { i in
                Booking(id: "r\(b)-\(i)-\(UInt64(b * 7_919 + i).multipliedReportingOverflow(by: 2_654_435_761).partialValue)",
                        block: block, slot: i, patient: "pk\((b * perBlock + i) &* 40_503)", epoch: 1)
            }
            s.apply(.lease(LeaseChange(block: block, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1,
                                       voters: ["n1", "n2", "n3"], collected: records)))
        }
        return s
    }

    static func message(_ s: ClusterState, index: LogIndex = 900) -> ClusterRaftMessage {
        ClusterRaftMessage(from: "n1", to: "n2", term: 7,
                           body: .installSnapshot(Snapshot(lastIndex: index, lastTerm: 6, config: ClusterConfig(voters: ["n1", "n2", "n3"]), data: s)))
    }

    static func chunks(_ m: ClusterRaftMessage, chunkBytes: Int) throws -> [SnapshotChunk] {
        guard case .installSnapshot(let s) = m.body else { return [] }
        return try ConsensusWire.snapshotChunks(m, state: ConsensusWire.stateBytes(s), chunkBytes: chunkBytes).map {
            guard case .snapshotChunk(let c) = try ConsensusWire.decodeInbound($0) else { throw ConsensusWireError("not a chunk") }
            return c
        }
    }

    @Test("a state larger than a mesh frame goes in chunks that each fit one, and comes back equal")
    func largeStateRoundTrip() throws {
        let s = Self.state(bookings: 60_000)
        let plain = ConsensusWire.json(s)
        #expect(plain.count > 8 << 20, "the state's JSON is \(plain.count) bytes: the test needs more than one frame of it")
        let m = Self.message(s)
        guard case .installSnapshot(let snapshot) = m.body else { return }
        let compressed = ConsensusWire.stateBytes(snapshot)
        #expect(compressed.count < plain.count / 2, "\(compressed.count) of \(plain.count) bytes")
        let encoded = ConsensusWire.snapshotChunks(m, state: compressed, chunkBytes: 1 << 20)
        #expect(encoded.count > 1)
        #expect(encoded.allSatisfy { $0.count < (1 << 20) + 1_024 })
        var assembly = SnapshotAssembly()
        var whole: SnapshotChunk?
        for bytes in encoded {
            #expect(whole == nil, "complete before its last chunk")
            guard case .snapshotChunk(let c) = try ConsensusWire.decodeInbound(bytes) else { Issue.record("not a chunk"); return }
            whole = assembly.add(c)
        }
        let done = try #require(whole)
        #expect(assembly.heldBytes == 0)
        let back = try ConsensusWire.installSnapshot(done)
        guard case .installSnapshot(let got) = back.body else { Issue.record("not a snapshot"); return }
        #expect(back.from == "n1" && back.to == "n2" && back.term == 7)
        #expect(got.lastIndex == 900 && got.lastTerm == 6 && got.config == snapshot.config)
        #expect(got.data == s)
    }

    @Test("a log or a peer of the previous version holds the state as plain JSON: it still reads")
    func plainJSONStillReads() throws {
        let s = Self.state(bookings: 300)
        #expect(try ConsensusWire.state(from: ConsensusWire.json(s)) == s)
        // The whole message of the previous version (raft body 4) too.
        let old = ConsensusWire.encode(.raft(Self.message(s)), stateBytes: { ConsensusWire.json($0.data) })
        guard case .raft(let r) = try ConsensusWire.decode(old), case .installSnapshot(let got) = r.body else { Issue.record("not a snapshot"); return }
        #expect(got.data == s)
    }

    @Test("a chunk that does not continue the transfer under way drops it; the next whole send completes")
    func gapsAndRestarts() throws {
        let first = try Self.chunks(Self.message(Self.state(bookings: 2_000)), chunkBytes: 4_096)
        #expect(first.count >= 4)
        var assembly = SnapshotAssembly()
        #expect(assembly.add(first[0]) == nil && assembly.add(first[1]) == nil)
        #expect(assembly.add(first[3]) == nil, "a gap (chunk 2 lost with a link)")
        #expect(assembly.heldBytes == 0, "the transfer with a gap is dropped")
        #expect(assembly.add(first[2]) == nil, "no transfer to continue")

        // A newer snapshot starts over in the middle of an older one's transfer.
        let newer = try Self.chunks(Self.message(Self.state(bookings: 2_100), index: 950), chunkBytes: 4_096)
        #expect(assembly.add(first[0]) == nil && assembly.add(first[1]) == nil)
        var whole: SnapshotChunk?
        for c in newer {
            whole = assembly.add(c)
            if c != newer.last { #expect(whole == nil) }
        }
        let done = try #require(whole)
        #expect(done.lastIndex == 950)
        #expect(assembly.add(first[2]) == nil, "the older transfer was replaced, not resumed")

        // A first chunk again (a resend) starts over; a later chunk repeated is a gap.
        #expect(assembly.add(newer[0]) == nil && assembly.add(newer[1]) == nil && assembly.add(newer[0]) == nil)
        #expect(assembly.heldBytes == newer[0].bytes.count)
        #expect(assembly.add(newer[1]) == nil && assembly.add(newer[1]) == nil)
        #expect(assembly.heldBytes == 0)
    }

    @Test("chunks from two senders are put together apart")
    func twoSenders() throws {
        let a = try Self.chunks(Self.message(Self.state(bookings: 1_000)), chunkBytes: 4_096)
        var fromN3 = Self.message(Self.state(bookings: 1_200), index: 910)
        fromN3.from = "n3"
        let b = try Self.chunks(fromN3, chunkBytes: 4_096)
        var assembly = SnapshotAssembly()
        var done: [SnapshotChunk] = []
        for i in 0..<max(a.count, b.count) {
            if i < a.count, let w = assembly.add(a[i]) { done.append(w) }
            if i < b.count, let w = assembly.add(b[i]) { done.append(w) }
        }
        #expect(Set(done.map(\.from)) == ["n1", "n3"])
        for w in done { _ = try ConsensusWire.installSnapshot(w) }
    }

    @Test("damaged chunks and states are errors, never traps")
    func damagedInput() throws {
        let encoded = ConsensusWire.snapshotChunks(Self.message(Self.state(bookings: 500)), state: Array(repeating: 7, count: 9_000), chunkBytes: 4_000)
        let one = encoded[1]
        for cut in stride(from: 2, to: one.count, by: 97) {
            #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(Array(one.prefix(cut))) }
        }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(one + [0]) }

        // A chunk that says it lies outside its state, or announces a state over the limit.
        func chunk(total: UInt64, offset: UInt64, bytes: Int) -> [UInt8] {
            var w = ByteWriter()
            w.u8(ConsensusWire.version); w.u8(5); w.str("n1"); w.str("n2"); w.u64(7); w.u64(900); w.u64(6)
            w.config(ClusterConfig(voters: ["n1"])); w.u64(total); w.u64(offset); w.blob(Array(repeating: 1, count: bytes))
            return w.bytes
        }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(chunk(total: 10, offset: 8, bytes: 4)) }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(chunk(total: 10, offset: 11, bytes: 1)) }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(chunk(total: 10, offset: 0, bytes: 0)) }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(chunk(total: UInt64.max, offset: 0, bytes: 1)) }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.decodeInbound(chunk(total: ConsensusWire.maximumTransferBytes + 1, offset: 0, bytes: 1)) }

        // A complete transfer whose state is not a state.
        var assembly = SnapshotAssembly()
        var whole: SnapshotChunk?
        for bytes in encoded {
            guard case .snapshotChunk(let c) = try ConsensusWire.decodeInbound(bytes) else { continue }
            whole = assembly.add(c)
        }
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.installSnapshot(try #require(whole)) }

        // Compressed states: cut, bit-flipped, and a piece that declares more than a piece may hold.
        guard case .installSnapshot(let s) = Self.message(Self.state(bookings: 500)).body else { return }
        let good = ConsensusWire.stateBytes(s)
        for cut in stride(from: 1, to: good.count, by: max(1, good.count / 50)) {
            #expect(throws: (any Error).self) { _ = try ConsensusWire.state(from: Array(good.prefix(cut))) }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var flipped = good
            let at = Int.random(in: 1..<flipped.count, using: &rng)
            flipped[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            _ = try? ConsensusWire.state(from: flipped)  // an error or, rarely, another valid state: never a trap
        }
        var huge = ByteWriter()
        huge.u8(ConsensusWire.compressedStateForm)
        huge.blob([0, 0, 0x50, 0, 1, 2, 3])  // declares 5 MiB: more than a piece holds
        #expect(throws: ConsensusWireError.self) { _ = try ConsensusWire.state(from: huge.bytes) }
    }
    @Test("an append too large for one frame goes as appends chained by index and term, each within the bound")
    func appendParts() throws {
        let records = (0..<3_000).map { Booking(id: "q\($0)", block: "neike-1/2026-12-10/morning", slot: $0, patient: "pk\($0)", epoch: 2) }
        let entries: [LogEntry<ClusterCommand>] = (0..<12).map { i in
            let body: EntryBody<ClusterCommand> = i % 4 == 1
                ? .command(.lease(LeaseChange(block: "neike-1/2026-12-10/morning", fromEpoch: 1, toEpoch: 2, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: records)))
                : i == 6 ? .noop : .command(.defineBlock("b\(i)", home: "n1", slots: 4))
            return LogEntry(index: 101 + LogIndex(i), term: 5, body: body)
        }
        let m = ClusterRaftMessage(from: "n1", to: "n2", term: 5, body: .appendEntries(prevLogIndex: 100, prevLogTerm: 4, entries: entries, leaderCommit: 105))
        let big = ConsensusWire.encodedSize(ConsensusWire.bytes(entries[1]))
        let parts = ConsensusWire.appendParts(m, maxBytes: big + 1_000)
        #expect(parts.count > 2)
        var prev: (LogIndex, Term) = (100, 4)
        var all: [LogEntry<ClusterCommand>] = []
        for p in parts {
            guard case .appendEntries(let pi, let pt, let es, let commit) = p.body else { Issue.record("not an append"); return }
            #expect(pi == prev.0 && pt == prev.1, "each part follows the one before")
            #expect(commit == 105 && p.from == "n1" && p.to == "n2" && p.term == 5)
            #expect(!es.isEmpty)
            let size = es.reduce(0) { $0 + ConsensusWire.encodedSize(ConsensusWire.bytes($1)) }
            #expect(es.count == 1 || size <= big + 1_000)
            // The bytes on the wire are what the size says.
            let wire = ConsensusWire.encode(.raft(p))
            #expect(wire.count == size + 2 + 4 + 2 + 4 + 2 + 8 + 1 + 8 + 8 + 4 + 8)
            all += es
            prev = (es.last!.index, es.last!.term)
        }
        #expect(all == entries)
        // An entry over the bound goes alone; an append that fits stays whole.
        #expect(ConsensusWire.appendParts(m, maxBytes: 10).count == entries.count)
        #expect(ConsensusWire.appendParts(m, maxBytes: 100 << 20).count == 1)
    }
}
