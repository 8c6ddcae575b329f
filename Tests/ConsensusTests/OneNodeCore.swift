import Consensus
import Testing

/// A one-node cluster driven through `ConsensusCore`, holding session "s" (4 slots, open).
/// Booking writes are made durable at once unless `holdBack` says to keep one back (a slow disk).
struct OneNodeCore {
    var core: ConsensusCore
    var now: UInt64 = 0
    let wall: Int64 = 1_796_000_000_000
    var outcomes: [BookingOutcome] = []
    /// Committed commands as the cluster state accepted them.
    var accepted: [ClusterCommand] = []
    /// Booking writes kept back, in order, and which to keep back.
    var heldWrites: [BookingWrite] = []
    var holdBack: (BookingWrite) -> Bool = { _ in false }

    init(options: ConsensusCoreOptions) {
        core = ConsensusCore(id: "n1", incarnation: 1, bootstrap: ClusterConfig(voters: ["n1"]), options: options)
        var defined = false
        for _ in 0..<3_000 where !core.cluster.leaseValid("s") {
            tick()
            if core.isLeader, core.raft.isReadyLeader, !defined {
                run(core.propose(.upsertMember(MemberInfo(node: "n1", address: "x", department: "d", certificateSerial: "1"))).1)
                run(core.propose(.defineSession("s", home: "n1", slots: 4, opensAtMs: wall - 1)).1)
                defined = true
            }
        }
        #expect(core.cluster.leaseValid("s"))
    }

    mutating func run(_ effects: [CoreEffect]) {
        var queue = effects
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .persistRaft(let p): queue += core.persisted(raftUpTo: p.seq, bookingUpTo: 0)
            case .persistBooking(let w):
                if holdBack(w) || !heldWrites.isEmpty { heldWrites.append(w) } else { queue += core.persisted(raftUpTo: 0, bookingUpTo: w.seq) }
            case .send(let to, let m) where to == "n1": queue += core.receive(m, from: "n1", nowMs: now)
            case .outcome(let out): outcomes.append(out)
            case .applied(let e, accepted: true): if case .command(let c) = e.body { accepted.append(c) }
            default: break
            }
        }
    }

    mutating func request(_ q: BookingRequest) { run(core.request(q)) }

    /// The writes kept back reach the disk.
    mutating func flush() {
        guard let last = heldWrites.last else { return }
        heldWrites = []
        run(core.persisted(raftUpTo: 0, bookingUpTo: last.seq))
    }

    mutating func tick(wallMs: Int64? = nil) {
        now += 10
        run(core.tick(nowMs: now, wallMs: wallMs ?? wall))
    }
}
