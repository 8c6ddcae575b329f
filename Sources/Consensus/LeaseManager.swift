// The leader's side of liveness and leases: it alone proposes expiries (from durations on its own
// monotonic clock) and runs takeovers (phase 1 against the old epoch's voters, then a LeaseChange
// entry listing what it collected). Clocks only decide *when* to act; quorums decide safety.

public enum LeaseManagerAction: Sendable, Equatable {
    case propose(ClusterCommand)
    case send(LeaseEnvelope)
    case takeoverStarted(block: BlockID, toEpoch: Epoch)
}

public struct LeaseManagerOptions: Sendable {
    public var livenessTimeoutMs: UInt64 = 2_000
    public var takeoverTimeoutMs: UInt64 = 1_000
    public var reproposeMs: UInt64 = 500
    /// A gap this long between our own ticks means we were paused: we cannot judge others' silence.
    public var pauseGapMs: UInt64 = 300
    public init() {}
}

public struct LeaseManager: Sendable {
    struct Attempt: Sendable {
        var fromEpoch: Epoch
        var toEpoch: Epoch
        var holder: NodeID
        var promises: [NodeID: [Booking]] = [:]
        var started: UInt64
        var proposed = false
        /// A closing collection (`BlockClosure`), not a move to a new holder.
        var closes = false
    }

    public let id: NodeID
    public let options: LeaseManagerOptions
    private var active = false
    private var lastSeen: [NodeID: UInt64] = [:]
    private var lastNow: UInt64?
    private var attempts: [BlockID: Attempt] = [:]
    private var epochFloor: [BlockID: Epoch] = [:]
    /// Blocks whose current epoch voters may refuse, by that epoch: a takeover attempt above it
    /// was abandoned after its prepares went out, or the holder said its accepts are refused.
    /// Such a block gets a new epoch even though its lease looks right.
    private var fencedAt: [BlockID: Epoch] = [:]
    private var proposedAt: [ClusterCommand: UInt64] = [:]
    /// The blocks in id order, sorted again only when one is added or closed: the tick walks
    /// them a hundred times a second.
    private var blockOrder: [BlockID] = []
    private var closedCountSeen = 0
    /// Blocks this leader was asked to close (`close`); they get no other takeover meanwhile.
    private var closing: Set<BlockID> = []
    /// Quota buckets this leader was asked to trim (`trim`), until their lease record has the trim.
    private var trimming: [BlockID: QuotaTrim] = [:]
    private var out: [LeaseManagerAction] = []

    public init(id: NodeID, options: LeaseManagerOptions = .init()) { self.id = id; self.options = options }

    /// Called when this node becomes leader: everyone gets a full timeout of grace from now.
    public mutating func becameLeader(now: UInt64) {
        active = true
        lastSeen = [:]
        lastNow = now
        attempts = [:]
        proposedAt = [:]
        blockOrder = []
        fencedAt = [:]
        closing = []
        trimming = [:]
    }
    public mutating func steppedDown() { active = false; attempts = [:]; closing = []; trimming = [:] }

    public mutating func close(_ blocks: [BlockID]) {
        guard active else { return }
        closing.formUnion(blocks)
    }

    /// Trims quota bucket `block` (`QuotaTrim`) by a takeover to the holder it would have anyway.
    public mutating func trim(_ block: BlockID, to trim: QuotaTrim) {
        guard active, isQuotaBucket(block) else { return }
        trimming[block] = QuotaTrim.latest(trimming[block], trim)
    }

    /// The trim a takeover of `r` carries: the bucket's own, moved on by one this leader was asked for.
    private func trim(for r: LeaseRecord) -> QuotaTrim? { QuotaTrim.latest(r.trim, trimming[r.block]) }

    private func needsTrim(_ r: LeaseRecord) -> Bool {
        guard let wanted = trimming[r.block] else { return false }
        return !(r.trim?.covers(wanted) ?? false)
    }

    private mutating func propose(_ c: ClusterCommand, now: UInt64) {
        if let t = proposedAt[c], now < t + options.reproposeMs { return }
        proposedAt[c] = now
        out.append(.propose(c))
    }
    private mutating func drain() -> [LeaseManagerAction] {
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    public mutating func receive(_ e: LeaseEnvelope, now: UInt64, state: ClusterState) -> [LeaseManagerAction] {
        guard active else { return [] }
        switch e.body {
        case .renew(let inc):
            lastSeen[e.from] = now
            let l = state.liveness[e.from]
            if state.members[e.from] != nil, state.members[e.from]?.evicted != true,
               l == nil || l!.live == false || inc > l!.incarnation {
                propose(.renewLiveness(node: e.from, incarnation: inc), now: now)
            }
        case .epochRefused(let block, let epoch):
            if let r = state.blocks[block], r.epoch == epoch, r.holder == e.from {
                fencedAt[block] = epoch
                epochFloor[block] = max(epochFloor[block] ?? 0, epoch)
            }
        case .resign(let inc):
            if let l = state.liveness[e.from], l.live, l.incarnation == inc {
                propose(.expireLiveness(node: e.from, epoch: l.epoch), now: now)
            }
        case .promise(let block, let epoch, let ok, let bookings):
            guard var a = attempts[block], let r = state.blocks[block], a.fromEpoch == r.epoch else { break }
            guard ok else {
                epochFloor[block] = max(epochFloor[block] ?? 0, epoch)
                if epoch >= a.toEpoch { attempts[block] = nil } // someone promised higher: retry above it
                break
            }
            guard epoch == a.toEpoch, r.voters.contains(e.from), !a.proposed else { break }
            a.promises[e.from] = bookings
            if a.promises.count >= quorum(of: r.voters.count) {
                var collected: [String: Booking] = [:]
                for b in r.collected { collected[b.id] = b }
                for (_, bs) in a.promises { for b in bs where b.epoch == r.epoch { collected[b.id] = b } }
                if a.closes {
                    a.proposed = true
                    attempts[block] = a
                    out.append(.propose(.closeBlock(BlockClosure(block: block, fromEpoch: r.epoch, toEpoch: a.toEpoch, slots: r.slots,
                                                                 records: collected.values.sorted { $0.id < $1.id }))))
                    break
                }
                guard let l = state.liveness[a.holder], l.live else { attempts[block] = nil; break }
                let trim = trim(for: r)
                let records = collected.values.sorted { $0.id < $1.id }
                let change = LeaseChange(block: block, fromEpoch: r.epoch, toEpoch: a.toEpoch, holder: a.holder,
                                         holderLiveness: l.epoch, voters: state.raftConfig.voters,
                                         collected: trim.map { $0.kept(records) } ?? records, trim: trim)
                a.proposed = true
                out.append(.propose(.lease(change)))
            }
            attempts[block] = a
        default:
            break
        }
        return drain()
    }

    /// `ready`: this leader has applied an entry of its own term, so `state` is the latest history.
    public mutating func tick(now: UInt64, state: ClusterState, ready: Bool) -> [LeaseManagerAction] {
        guard active else { return [] }
        if let last = lastNow, now > last + options.pauseGapMs {
            for k in Array(lastSeen.keys) { lastSeen[k] = now } // we were paused: restart the timers
        }
        lastNow = now
        guard ready else { return [] }
        lastSeen[id] = now

        for n in state.members.keys.sorted() {
            guard let l = state.liveness[n], l.live else { continue }
            let seen = lastSeen[n] ?? now
            if lastSeen[n] == nil { lastSeen[n] = now }
            if n != id, now > seen + options.livenessTimeoutMs {
                propose(.expireLiveness(node: n, epoch: l.epoch), now: now)
            }
        }

        let voters = state.raftConfig.voters
        if blockOrder.count != state.blocks.count || closedCountSeen != state.closed.count {
            blockOrder = state.blocks.keys.sorted()
            closedCountSeen = state.closed.count
        }
        closeBlocks(now: now, state: state)
        for b in blockOrder {
            guard let r = state.blocks[b], !closing.contains(b) else { continue }
            let valid = state.leaseValid(b)
            let homeLive = state.isLive(r.home)
            let wantHolder: NodeID?
            if homeLive { wantHolder = r.home }
            else if valid { wantHolder = r.holder }
            else { wantHolder = pickLive(b, state: state) }
            guard let target = wantHolder else { continue }
            // An attempt overtaken by an earlier one's commit may have left voters promised above
            // the epoch that won: they would refuse every booking under it.
            if let a = attempts[b], a.fromEpoch < r.epoch, a.toEpoch > r.epoch { fencedAt[b] = r.epoch }
            if trimming[b] != nil, !needsTrim(r) { trimming[b] = nil }
            if valid && r.holder == target && r.voters == voters && fencedAt[b] != r.epoch && !needsTrim(r) { attempts[b] = nil; continue }
            if let a = attempts[b], a.fromEpoch == r.epoch, now < a.started + options.takeoverTimeoutMs { continue }
            guard let l = state.liveness[target], l.live else { continue }
            let to = max(r.epoch, epochFloor[b] ?? 0) + 1
            epochFloor[b] = to
            out.append(.takeoverStarted(block: b, toEpoch: to))
            if r.epoch == 0 {
                // First grant: no epoch before it, so no booking can exist to collect.
                attempts[b] = Attempt(fromEpoch: 0, toEpoch: to, holder: target, started: now, proposed: true)
                out.append(.propose(.lease(LeaseChange(block: b, fromEpoch: 0, toEpoch: to, holder: target, holderLiveness: l.epoch, voters: voters, collected: [], trim: trim(for: r)))))
                continue
            }
            attempts[b] = Attempt(fromEpoch: r.epoch, toEpoch: to, holder: target, started: now)
            for v in r.voters { out.append(.send(LeaseEnvelope(from: id, to: v, body: .prepare(block: b, epoch: to)))) }
        }
        return drain()
    }

    /// Collects each block asked to close from a quorum of its current voters under a new
    /// promise, which fences its holder, then proposes the closure (`receive(.promise)`).
    private mutating func closeBlocks(now: UInt64, state: ClusterState) {
        for b in closing.sorted() {
            guard let r = state.blocks[b] else {
                // Closed (or never defined here): nothing of it stays with this leader.
                closing.remove(b)
                attempts[b] = nil; epochFloor[b] = nil; fencedAt[b] = nil
                continue
            }
            if let a = attempts[b], a.closes, a.fromEpoch == r.epoch, now < a.started + options.takeoverTimeoutMs { continue }
            let to = max(r.epoch, epochFloor[b] ?? 0) + 1
            epochFloor[b] = to
            if r.epoch == 0 {
                // Never leased: no record can exist.
                attempts[b] = Attempt(fromEpoch: 0, toEpoch: to, holder: id, started: now, proposed: true, closes: true)
                out.append(.propose(.closeBlock(BlockClosure(block: b, fromEpoch: 0, toEpoch: to, slots: r.slots, records: []))))
                continue
            }
            attempts[b] = Attempt(fromEpoch: r.epoch, toEpoch: to, holder: id, started: now, closes: true)
            for v in r.voters { out.append(.send(LeaseEnvelope(from: id, to: v, body: .prepare(block: b, epoch: to)))) }
        }
    }

    private func pickLive(_ b: BlockID, state: ClusterState) -> NodeID? {
        let live = state.members.keys.sorted().filter { state.isLive($0) }
        guard !live.isEmpty else { return nil }
        var h = FNV1a64()
        h.add(b)
        return live[Int(h.value % UInt64(live.count))]
    }
}
