import Consensus
import Testing

typealias TNode = RaftNode<String, [String]>
typealias TMsg = RaftMessage<String, [String]>
typealias TAction = RaftAction<String, [String]>

/// A few Raft nodes wired by hand: messages wait in `inflight` until delivered, and disk writes
/// complete at once unless `slowDisk` holds them back.
struct Harness {
    var nodes: [NodeID: TNode] = [:]
    var inflight: [TMsg] = []
    var isolated: Set<NodeID> = []
    var applied: [NodeID: [String]] = [:]
    var disk: [NodeID: DurableRaftState<String, [String]>] = [:]
    var slowDisk: Set<NodeID> = []
    var heldWrites: [NodeID: [PersistRequest<String, [String]>]] = [:]
    var ids: [NodeID]

    init(voters: [NodeID], learners: [NodeID] = [], seed: UInt64 = 1) {
        ids = (voters + learners).sorted()
        for (k, id) in ids.enumerated() {
            var o = RaftConfig()
            o.seed = seed &+ UInt64(k) &* 7919
            nodes[id] = TNode(id: id, options: o, bootstrap: ClusterConfig(voters: voters, learners: learners))
            applied[id] = []
            disk[id] = .init()
        }
    }

    mutating func handle(_ id: NodeID, _ actions: [TAction]) {
        for a in actions {
            switch a {
            case .send(let m): inflight.append(m)
            case .persist(let p):
                if slowDisk.contains(id) { heldWrites[id, default: []].append(p); continue }
                disk[id]!.apply(p)
                handle(id, nodes[id]!.persisted(upTo: p.seq))
            case .apply(let es):
                for e in es { if case .command(let c) = e.body { applied[id]!.append(c) } }
            case .restoreSnapshot(let s): applied[id] = s.data
            case .roleChanged: break
            }
        }
    }

    mutating func flushDisk(_ id: NodeID) {
        let ws = heldWrites[id] ?? []
        heldWrites[id] = []
        for p in ws { disk[id]!.apply(p) }
        if let last = ws.last { handle(id, nodes[id]!.persisted(upTo: last.seq)) }
    }

    mutating func deliverAll(limit: Int = 10_000) {
        var n = 0
        while !inflight.isEmpty, n < limit {
            let m = inflight.removeFirst()
            n += 1
            if isolated.contains(m.from) || isolated.contains(m.to) { continue }
            guard nodes[m.to] != nil else { continue }
            handle(m.to, nodes[m.to]!.receive(m))
        }
    }

    mutating func tick(_ times: Int = 1) {
        for _ in 0..<times {
            for id in ids { handle(id, nodes[id]!.tick()) }
            deliverAll()
        }
    }

    mutating func propose(_ c: String) -> Bool {
        guard let l = leader else { return false }
        let (r, acts) = nodes[l]!.propose(c)
        handle(l, acts)
        deliverAll()
        if case .success = r { return true }
        return false
    }

    var leader: NodeID? {
        ids.filter { nodes[$0]!.role == .leader && !isolated.contains($0) }.max { nodes[$0]!.term < nodes[$1]!.term }
    }

    mutating func electLeader() -> NodeID? {
        for _ in 0..<200 { tick(); if let l = leader { return l } }
        return nil
    }
}

@Suite struct RaftTests {
    @Test func electsOneLeaderAndCommits() throws {
        var h = Harness(voters: ["a", "b", "c"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        #expect(h.ids.filter { h.nodes[$0]!.role == .leader }.count == 1)
        do { let ok = h.propose("x"); #expect(ok) }
        do { let ok = h.propose("y"); #expect(ok) }
        h.tick(10)
        for id in h.ids { #expect(h.applied[id] == ["x", "y"], "node \(id)") }
        #expect(h.nodes[l]!.commitIndex == h.nodes[l]!.lastIndex)
    }

    @Test func voteIsSentOnlyAfterItIsDurable() {
        var n = TNode(id: "b", options: RaftConfig(), bootstrap: ClusterConfig(voters: ["a", "b", "c"]))
        let req = TMsg(from: "a", to: "b", term: 1, body: .requestVote(lastLogIndex: 0, lastLogTerm: 0, preVote: false, transfer: false))
        let acts = n.receive(req)
        var persistSeq: UInt64?
        for a in acts {
            if case .persist(let p) = a { persistSeq = p.seq }
            if case .send(let m) = a, case .requestVoteResponse(true, _) = m.body { Issue.record("vote granted before persisted") }
        }
        let seq = try! #require(persistSeq)
        #expect(n.votedFor == "a")
        let after = n.persisted(upTo: seq)
        let granted = after.contains { if case .send(let m) = $0, case .requestVoteResponse(true, false) = m.body { return true }; return false }
        #expect(granted)
        // Same term, another candidate: refused.
        let other = n.receive(TMsg(from: "c", to: "b", term: 1, body: .requestVote(lastLogIndex: 5, lastLogTerm: 1, preVote: false, transfer: false)))
        #expect(other.contains { if case .send(let m) = $0, case .requestVoteResponse(false, _) = m.body { return true }; return false })
    }

    @Test func appendIsAckedOnlyAfterItIsDurable() {
        var h = Harness(voters: ["a", "b", "c"])
        guard let l = h.electLeader() else { Issue.record("no leader"); return }
        let followers = h.ids.filter { $0 != l }
        h.slowDisk = Set(followers)
        do { let ok = h.propose("x"); #expect(ok) }
        h.tick(5)
        #expect(h.applied[l] == [], "committed before any follower made it durable")
        h.flushDisk(followers[0])
        h.deliverAll()
        h.tick(10)
        #expect(h.applied[l] == ["x"])
    }

    @Test func leaderOnlyCommitsByCountingCurrentTermEntries() {
        // A node elected with a term-1 entry on a majority must still not report it committed
        // before its own term's entry is on a majority (figure 8).
        var n = TNode(id: "a", options: RaftConfig(), bootstrap: ClusterConfig(voters: ["a", "b", "c"]),
                      restoring: .init(hardState: HardState(term: 1), entries: [LogEntry(index: 1, term: 1, body: .command("old"))]))
        func durable(_ n: inout TNode, _ acts: [TAction]) {
            var seq: UInt64 = 0
            for a in acts { if case .persist(let p) = a { seq = max(seq, p.seq) } }
            if seq > 0 { durable(&n, n.persisted(upTo: seq)) }
        }
        for _ in 0..<40 where n.role == .follower { durable(&n, n.tick()) }
        #expect(n.role == .preCandidate)
        durable(&n, n.receive(TMsg(from: "b", to: "a", term: n.term + 1, body: .requestVoteResponse(granted: true, preVote: true))))
        #expect(n.role == .candidate)
        durable(&n, n.receive(TMsg(from: "b", to: "a", term: n.term, body: .requestVoteResponse(granted: true, preVote: false))))
        #expect(n.role == .leader)
        // b says it has index 1 (term 1) only: not enough to commit anything.
        _ = n.receive(TMsg(from: "b", to: "a", term: n.term, body: .appendEntriesResponse(success: true, prevLogIndex: 0, matchIndex: 1, conflictTerm: nil, conflictIndex: 0)))
        #expect(n.commitIndex == 0)
        // Once b has the leader's no-op (index 2, current term), both commit.
        _ = n.receive(TMsg(from: "b", to: "a", term: n.term, body: .appendEntriesResponse(success: true, prevLogIndex: 1, matchIndex: 2, conflictTerm: nil, conflictIndex: 0)))
        #expect(n.commitIndex == 2)
    }

    @Test func configChangeWaitsUntilTheLeaderCommittedInItsTerm() {
        var n = TNode(id: "a", options: RaftConfig(), bootstrap: ClusterConfig(voters: ["a", "b", "c"], learners: ["d"]))
        func durable(_ n: inout TNode, _ acts: [TAction]) {
            var seq: UInt64 = 0
            for a in acts { if case .persist(let p) = a { seq = max(seq, p.seq) } }
            if seq > 0 { durable(&n, n.persisted(upTo: seq)) }
        }
        for _ in 0..<40 where n.role == .follower { durable(&n, n.tick()) }
        durable(&n, n.receive(TMsg(from: "b", to: "a", term: n.term + 1, body: .requestVoteResponse(granted: true, preVote: true))))
        durable(&n, n.receive(TMsg(from: "b", to: "a", term: n.term, body: .requestVoteResponse(granted: true, preVote: false))))
        #expect(n.role == .leader)
        let (r1, a1) = n.proposeConfigChange(ConfigChange(.remove, "d"))
        durable(&n, a1)
        #expect(r1 == .failure(.configChangePending), "a leader must commit in its own term before changing membership")
        durable(&n, n.receive(TMsg(from: "b", to: "a", term: n.term, body: .appendEntriesResponse(success: true, prevLogIndex: 0, matchIndex: n.lastIndex, conflictTerm: nil, conflictIndex: 0))))
        #expect(n.commitIndex == n.lastIndex)
        let (r2, _) = n.proposeConfigChange(ConfigChange(.remove, "d"))
        guard case .success = r2 else { Issue.record("refused after commit: \(r2)"); return }
    }

    @Test func fastBackoffSkipsConflictingTermsInFewRoundTrips() {
        // Follower c has 50 stale entries of term 2 that the leader never had.
        // a and b are at term 5, so the stale term-2 suffix on c can never win an election.
        var h = Harness(voters: ["a", "b", "c"])
        for id in ["a", "b"] as [NodeID] {
            var o = RaftConfig(); o.seed = UInt64(id.rawValue.utf8.first!)
            h.nodes[id] = TNode(id: id, options: o, bootstrap: ClusterConfig(voters: ["a", "b", "c"]), restoring: .init(hardState: HardState(term: 5)))
        }
        let stale = (1...50).map { LogEntry<String>(index: LogIndex($0), term: 2, body: .command("stale\($0)")) }
        var o = RaftConfig(); o.seed = 99
        h.nodes["c"] = TNode(id: "c", options: o, bootstrap: ClusterConfig(voters: ["a", "b", "c"]), restoring: .init(hardState: HardState(term: 2), entries: stale))
        h.isolated = ["c"]
        guard let l = h.electLeader() else { Issue.record("no leader"); return }
        for k in 0..<5 { let ok = h.propose("v\(k)"); #expect(ok) }
        h.tick(5)
        // Count rejections once c is back.
        h.isolated = []
        var rejections = 0
        for _ in 0..<30 {
            for id in h.ids { h.handle(id, h.nodes[id]!.tick()) }
            for m in h.inflight { if case .appendEntriesResponse(false, _, _, _, _) = m.body, m.from == "c" { rejections += 1 } }
            h.deliverAll()
        }
        #expect(h.applied["c"] == h.applied[l])
        #expect(h.applied["c"]?.count == 5)
        #expect(rejections <= 4, "fast back-off took \(rejections) rejections")
    }

    @Test func lagingFollowerCatchesUpBySnapshot() {
        var h = Harness(voters: ["a", "b", "c"])
        guard let l = h.electLeader() else { Issue.record("no leader"); return }
        let lag = h.ids.first { $0 != l }!
        h.isolated = [lag]
        for k in 0..<20 { let ok = h.propose("v\(k)"); #expect(ok) }
        h.tick(3)
        let idx = h.nodes[l]!.appliedIndex
        h.handle(l, h.nodes[l]!.compact(through: idx, data: h.applied[l]!))
        #expect(h.nodes[l]!.snapshotIndex == idx)
        h.isolated = []
        h.tick(20)
        #expect(h.applied[lag] == h.applied[l])
        #expect(h.nodes[lag]!.snapshotIndex == idx)
        #expect(h.disk[lag]!.snapshot?.lastIndex == idx)
    }

    @Test func learnerReplicatesWithoutVotingAndIsPromotedOnlyWhenCaughtUp() throws {
        var h = Harness(voters: ["a", "b", "c"], learners: ["d"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        do { let ok = h.propose("x"); #expect(ok) }
        h.tick(5)
        #expect(h.applied["d"] == ["x"])
        #expect(h.nodes["d"]!.role == .follower)
        // Cut d off and grow the log: promotion must wait.
        h.isolated = ["d"]
        for k in 0..<40 { _ = h.propose("y\(k)") }
        let (r1, a1) = h.nodes[l]!.proposeConfigChange(ConfigChange(.promote, "d"))
        h.handle(l, a1)
        #expect(r1 == .failure(.learnerNotCaughtUp))
        h.isolated = []
        h.tick(10)
        let (r2, a2) = h.nodes[l]!.proposeConfigChange(ConfigChange(.promote, "d"))
        h.handle(l, a2)
        h.deliverAll()
        h.tick(5)
        guard case .success = r2 else { Issue.record("promotion refused: \(r2)"); return }
        for id in h.ids { #expect(h.nodes[id]!.config.voters == ["a", "b", "c", "d"]) }
        // With four voters, two alone cannot commit.
        let others = h.ids.filter { $0 != l }
        h.isolated = Set(others.prefix(2))
        let before = h.nodes[l]!.commitIndex
        _ = h.propose("z")
        h.tick(3)
        #expect(h.nodes[l]!.commitIndex == before)
    }

    @Test func leaderTransferMovesLeadership() throws {
        var h = Harness(voters: ["a", "b", "c"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        let target = h.ids.first { $0 != l }!
        let (r, acts) = h.nodes[l]!.transferLeadership(to: target)
        h.handle(l, acts)
        h.deliverAll()
        if case .failure(let e) = r { Issue.record("transfer refused: \(e)") }
        h.tick(2)
        #expect(h.leader == target)
    }

    @Test func preVoteKeepsARejoiningNodeFromDisruptingTheTerm() throws {
        var h = Harness(voters: ["a", "b", "c"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        let term = h.nodes[l]!.term
        let other = h.ids.first { $0 != l }!
        h.isolated = [other]
        h.tick(300)
        #expect(h.nodes[other]!.term == term, "pre-vote should keep an isolated node's term")
        h.isolated = []
        h.tick(30)
        #expect(h.leader == l)
        #expect(h.nodes[l]!.term == term)
    }

    @Test func checkQuorumMakesAnIsolatedLeaderStepDown() throws {
        var h = Harness(voters: ["a", "b", "c"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        h.isolated = [l]
        h.tick(100)
        #expect(h.nodes[l]!.role != .leader)
    }

    @Test func removedVoterLeavesAndClusterContinues() throws {
        var h = Harness(voters: ["a", "b", "c"])
        let lFound = h.electLeader()
        let l = try #require(lFound)
        let victim = h.ids.first { $0 != l }!
        let (r, acts) = h.nodes[l]!.proposeConfigChange(ConfigChange(.remove, victim))
        h.handle(l, acts)
        h.tick(5)
        guard case .success = r else { Issue.record("\(r)"); return }
        #expect(h.nodes[l]!.config.voters.count == 2)
        h.isolated = [victim]
        do { let ok = h.propose("after"); #expect(ok) }
        h.tick(5)
        #expect(h.applied[l]?.last == "after")
    }
}
