// Faults aimed at the instants that matter, which faults at random instants rarely hit: a crash
// right after a protocol step that promises something, or between a write and its fsync; and the
// Raft figure-8 history, driven step by step by what the nodes do.

import Consensus

/// A step after which a node is crashed when a fault is armed for it.
enum ProtocolPoint: UInt8, CaseIterable {
    /// Sent a granted vote (not a pre-vote).
    case vote
    /// Sent a takeover promise.
    case promise
    /// Sent an accept reply that accepts.
    case acceptReply
    /// Told a client (or the node a request came through) that it is booked.
    case ack
    /// Queued its own proposal for a slot of a session (as its holder) for the disk: crashed
    /// before the fsync. (A quota reservation's place is the request's own; a refusal takes none.)
    case holderWrite
    /// Queued any write for the disk (log entries, hard state, accepted bookings, promises).
    case write

    /// More often the steps the booking protocol's durability hangs on.
    static func draw(_ rng: inout SplitMix64) -> ProtocolPoint {
        let weighted: [ProtocolPoint] = [.vote, .promise, .acceptReply, .ack, .ack, .ack, .holderWrite, .holderWrite, .holderWrite, .write]
        return weighted[Int(rng.below(UInt64(weighted.count)))]
    }

    init?(sending m: ConsensusMessage) {
        switch m {
        case .raft(let r):
            guard case .requestVoteResponse(true, false) = r.body else { return nil }
            self = .vote
        case .lease(let e):
            switch e.body {
            case .promise(_, _, true, _): self = .promise
            case .acceptReply(_, _, _, true): self = .acceptReply
            default: return nil
            }
        default:
            return nil
        }
    }

    /// `.write` stands for any write, a holder's own included.
    func covers(_ p: ProtocolPoint) -> Bool { self == p || (self == .write && p == .holderWrite) }
}

struct ArmedCrash {
    var point: ProtocolPoint
    /// nil: whichever node gets there first.
    var node: Int?
    var downMs: UInt64
    var untilUs: UInt64
}

enum Figure8Step: Equatable {
    case start
    /// Until there is a leader with three voters.
    case prepare
    case healFirst
    case crashFirst
    case end
}

/// Figure 8 of the Raft paper with three voters: leader L1 (term t1) appends X at index i and is
/// cut off before sending it; L2 is elected without it (term t2) and cut off as it appends its own
/// entry at i; L1 comes back and is elected again (t3) with the third voter F, whose vote it needs,
/// F acknowledges L1's new entry at i+1 while L1's own disk stalls, and L1 crashes before that
/// entry is durable. Now X is on L1 and F only, like an entry "committed" by counting replicas of
/// an earlier term, and L2 can still be elected by L1's vote (F is cut off) and overwrite it.
enum Figure8State: Equatable {
    case idle
    /// The cluster was healed; waiting for a leader with three voters (random faults wait too).
    case preparing(untilUs: UInt64)
    /// The next entry a leader writes is X: cut the leader off before it is sent.
    case armed(untilUs: UInt64)
    case firstCut(l1: Int, term: Term, untilUs: UInt64)
    /// `term`: L2's.
    case secondCut(l1: Int, l2: Int, term: Term, untilUs: UInt64)
    case reelected(l1: Int, l2: Int, untilUs: UInt64)
    case crashed(l1: Int, l2: Int, untilUs: UInt64)

    var untilUs: UInt64? {
        switch self {
        case .idle: return nil
        case .preparing(let u), .armed(let u), .firstCut(_, _, let u), .secondCut(_, _, _, let u), .reelected(_, _, let u), .crashed(_, _, let u): return u
        }
    }
}

extension ClusterSimulation {
    /// Node `n` took step `p`: crash it now, after the step (its messages are on their way), if a
    /// fault is armed for that.
    func reached(_ p: ProtocolPoint, _ n: SimNode) {
        armed.removeAll { $0.untilUs < now }
        guard let i = armed.firstIndex(where: { $0.point.covers(p) && ($0.node == nil || $0.node == n.idx) }) else { return }
        let a = armed.remove(at: i)
        hashEvent(13, n.idx, Int(p.rawValue), a.downMs)
        schedule(now, .fault(.crashAt(n.idx, downMs: a.downMs, p)))
    }

    // MARK: Figure 8

    func figure8Step(_ step: Figure8Step) {
        hashEvent(14, 0)
        switch step {
        case .start:
            // Begin from a healed cluster: the random faults' downs end early, and wait meanwhile.
            guard faultsActive, figure8 == .idle else { return }
            armed = []
            for i in nodes.indices { setLinks(i, isolated: false) }
            for n in nodes where n.paused { applyFault(.resume(n.idx)) }
            for n in nodes where !n.up { restart(n) }
            figure8 = .preparing(untilUs: now + 4_000_000)
            figure8Step(.prepare)
        case .prepare:
            guard faultsActive, case .preparing = figure8 else { return }
            guard let leader = nodes.filter({ $0.up && $0.raft.role == .leader }).max(by: { $0.raft.term < $1.raft.term }) else {
                schedule(now + 300_000, .fault(.figure8(.prepare)))
                return
            }
            // Three voters: L1 and F must be a majority without L2, and L1 and L2 one without F.
            if leader.raft.config.voters.count != 3 {
                membershipChange(force: true)
                schedule(now + 300_000, .fault(.figure8(.prepare)))
                return
            }
            figure8 = .armed(untilUs: now + 2_000_000)
            // X: an entry that changes nothing (the leader's own membership again), in case the
            // leader has nothing else to write soon.
            if let me = leader.cluster.members[leader.id] { propose(leader, .upsertMember(me)) }
        case .healFirst:
            guard case .secondCut(let l1, let l2, _, _) = figure8 else { return }
            reconnect(l1, except: [l2])
        case .crashFirst:
            guard case .reelected(let l1, let l2, _) = figure8, nodes[l1].up else { endFigure8(); return }
            crash(nodes[l1], loseAll: true)
            stats.figure8Histories += 1
            schedule(now + 100_000 + rng.below(300_000), .fault(.restart(l1)))
            // Only L1 and L2 may talk now: F (which may hold L1's new entry) cannot vote.
            for j in nodes.indices where j != l1 && j != l2 { cutOff(j) }
            reconnect(l2, except: [])
            reconnect(l1, except: [])
            figure8 = .crashed(l1: l1, l2: l2, untilUs: now + 3_000_000)
        case .end:
            endFigure8()
        }
    }

    /// A leader's write: while armed, the entry is X, and its leader L1 is cut off before sending it.
    func figure8Persist(_ n: SimNode, _ p: ClusterPersist) {
        guard case .armed = figure8, n.raft.role == .leader, !p.entries.isEmpty, n.raft.config.voters.count == 3 else { return }
        cutOff(n.idx)
        figure8 = .firstCut(l1: n.idx, term: n.raft.term, untilUs: now + 3_000_000)
    }

    /// Called before the new leader's first entry is written or sent.
    func figure8Leader(_ n: SimNode, _ term: Term) {
        switch figure8 {
        case .firstCut(let l1, let t, _) where n.idx != l1 && term > t:
            cutOff(n.idx)
            figure8 = .secondCut(l1: l1, l2: n.idx, term: term, untilUs: now + 4_000_000)
            schedule(now + 100_000 + rng.below(300_000), .fault(.figure8(.healFirst)))
        case .secondCut(let l1, let l2, let t, _) where n.idx == l1 && term > t:
            // Its new term's first entry stays off its disk while F acknowledges it.
            n.diskStallUntilUs = max(n.diskStallUntilUs, now + 500_000)
            figure8 = .reelected(l1: l1, l2: l2, untilUs: now + 2_000_000)
            schedule(now + 40_000 + rng.below(110_000), .fault(.figure8(.crashFirst)))
        case .crashed(_, let l2, _) where n.idx == l2:
            schedule(now + 300_000, .fault(.figure8(.end)))
        default:
            break
        }
    }

    /// A schedule that did not go its way within its time gives up.
    func figure8Deadline() {
        if let u = figure8.untilUs, now > u { endFigure8() }
    }

    func endFigure8() {
        let cut = figure8Cut.sorted()
        figure8 = .idle
        figure8Cut = []
        for a in cut { setLinks(a, isolated: false) }
    }

    func cutOff(_ a: Int) {
        figure8Cut.insert(a)
        for j in nodes.indices where j != a { blockedLink[a][j] = true; blockedLink[j][a] = true }
    }

    /// Links `a` again with every node not cut off and not in `except`.
    func reconnect(_ a: Int, except: Set<Int>) {
        figure8Cut.remove(a)
        for j in nodes.indices where j != a && !except.contains(j) && !figure8Cut.contains(j) {
            blockedLink[a][j] = false
            blockedLink[j][a] = false
        }
    }
}

extension Booking {
    /// A record for a slot of a session, which another request could want too.
    var takesASlot: Bool { !isRefusal && !block.hasPrefix(quotaBucketPrefix) }
}
