import Consensus
import Services
import AdminAPI
import Domain
import Foundation
import Mesh

// The admin API's consensus commands: the booking primitive (`book`), block definitions, this
// node's view of bookings and leases, and the consensus part of `status`. JSON field names are
// snake_case, as everywhere on the admin API.

extension MeshNode {
    func consensusStatus() -> ConsensusStatus {
        let failure = consensus.failure
        let c = consensus.view
        let held = Dictionary(grouping: c.cluster.blocks.values.filter { c.cluster.leaseValid($0.block) }, by: { $0.holder })
        let ids = Set(c.cluster.members.keys).union(c.cluster.raftConfig.members).sorted()
        let members = ids.map { n in
            let m = c.cluster.members[n]
            return MemberStatus(id: n.rawValue, role: c.cluster.role(of: n).rawValue, department: m?.department ?? "",
                                address: m?.address ?? "", live: c.cluster.isLive(n), evicted: m?.evicted ?? false,
                                blocksHeld: held[n]?.count ?? 0)
        }
        return ConsensusStatus(role: c.role.rawValue, term: c.term, leader: c.leader?.rawValue,
                               commitIndex: c.commitIndex, snapshotIndex: c.snapshotIndex, members: members, blocks: c.cluster.blocks.count, failure: failure)
    }

    /// The booking primitive: acknowledged only once quorum-durable under the current epoch.
    /// (`book`, in MetricsEndpoint.swift, calls this and counts the answer.)
    func bookUnmeasured(_ command: BookCommand) async -> BookAnswer {
        // Reservations and their releases are the nodes' own: clients may not name or free them.
        let reserved = ["quota:", "release:", "strike:", holdExpiryPrefix]
        if reserved.contains(where: { command.requestID.hasPrefix($0) || (command.releases?.hasPrefix($0) ?? false) })
            || command.requestID.isEmpty || command.requestID.utf8.count > 128 || (command.alternatives?.count ?? 0) > 64 {
            return BookAnswer(outcome: "refused", code: "request.invalid",
                              messageZh: "请求号须为 1 到 128 字节且不以 quota:、release:、strike: 或 expire: 开头，候选号不超过 64 个。",
                              messageEn: "request ids must be 1 to 128 bytes and not start with quota:, release:, strike: or expire:; at most 64 alternative slots.",
                              node: config.nodeID)
        }
        let timeout = Duration.milliseconds(min(max(command.timeoutMs ?? 5_000, 100), 60_000))
        let q = BookingRequest(id: command.requestID, block: command.block, slot: command.slot, patient: command.patient,
                               alternatives: command.alternatives ?? [], releases: command.releases)
        var quota: QuotaTag?
        if let given = command.quota {
            guard let date = try? CivilDate(parsing: given.visitDate, field: "quota.visit_date"), !given.department.isEmpty else {
                return BookAnswer(outcome: "refused", code: "request.invalid",
                                  messageZh: "quota.visit_date 须为 yyyy-mm-dd 的日期，quota.department 不能为空。",
                                  messageEn: "quota.visit_date must be a yyyy-mm-dd date and quota.department must not be empty.", node: config.nodeID)
            }
            quota = QuotaTag(visitDay: date.unixDay, department: given.department)
        }
        return BookAnswer.from(await consensus.book(q, quota: quota, timeout: timeout), node: config.nodeID)
    }

    /// Proposes the definitions now, and again every second until they are committed (there may
    /// be no leader yet, or it may change on the way).
    public func defineBlocks(_ blocks: [BlockDefinition]) {
        let now = clock.monotonicNanos()
        runtime.withLock {
            $0.pendingBlocks += blocks
            $0.blocksProposedNanos = now
        }
        for b in blocks { consensus.propose(b.command) }
    }

    /// Uncommitted block definitions are proposed again once their commit is overdue: 1 ms per
    /// pending block after the last proposal, at least 1 s and at most 10 s, and at most
    /// `reproposalsPerRound` a round. A rota of thousands of sessions takes the leader longer
    /// than a second to commit, and proposing all of them again every second buried it in
    /// duplicates; a few blocks proposed while no leader was known go again within a second.
    static func reproposeAfterNanos(pending: Int) -> UInt64 { UInt64(min(10_000, max(1_000, pending))) * 1_000_000 }
    static let reproposalsPerRound = 2_000

    /// Evicts `node` from the cluster (admin): committed through the leader, retried until it is.
    /// From then on every node closes its connections and refuses its certificate, its leases
    /// move, and it leaves the Raft configuration.
    public func evict(_ node: String) {
        runtime.withLock { _ = $0.pendingEvictions.insert(node) }
        consensus.propose(.evict(NodeID(node)))
    }

    func reproposeBlocks() {
        let evictions = runtime.withLock { $0.pendingEvictions }
        if !evictions.isEmpty {
            let cluster = consensus.view.cluster
            let left = evictions.filter { cluster.members[NodeID($0)]?.evicted != true }
            runtime.withLock { $0.pendingEvictions = left }
            for n in left { consensus.propose(.evict(NodeID(n))) }
        }
        let (pending, proposedAt) = runtime.withLock { ($0.pendingBlocks, $0.blocksProposedNanos) }
        guard !pending.isEmpty else { return }
        let blocks = consensus.view.cluster.blocks
        let missing = pending.filter { blocks[$0.block] == nil }
        let now = clock.monotonicNanos()
        let due = now >= proposedAt + Self.reproposeAfterNanos(pending: missing.count)
        runtime.withLock {
            $0.pendingBlocks = missing
            if due, !missing.isEmpty { $0.blocksProposedNanos = now }
        }
        guard due else { return }
        for b in missing.prefix(Self.reproposalsPerRound) { consensus.propose(b.command) }
    }

    /// `quotaBucketRecords: false` leaves the quota buckets' records out (the blocks stay listed):
    /// the buckets never close, and they keep months of reservations (`QuotaTrim`).
    public func bookingsView(quotaBucketRecords: Bool = true) -> BookingsView {
        let c = consensus.view
        var all: [String: Booking] = [:]
        let wanted = { (b: Booking) in quotaBucketRecords || !isQuotaBucket(b.block) }
        for b in c.records where wanted(b) { all["\(b.id)@\(b.epoch)"] = b }
        for r in c.cluster.blocks.values { for b in r.collected where wanted(b) { all["\(b.id)@\(b.epoch)"] = b } }
        let byBlock = Dictionary(grouping: all.values, by: \.block)
        let views = byBlock.mapValues { slotViews(block: $0[0].block, bookings: $0, state: c.cluster).views }
        let releasedIDs = Set(all.values.filter { $0.isRelease && bookingStatus($0, in: c.cluster) == .active }.compactMap(\.releases))
        let bookings = all.values.sorted { ($0.id, $0.epoch) < ($1.id, $1.epoch) }.map { b -> BookingRecord in
            let s: String
            switch bookingStatus(b, in: c.cluster) {
            case .inactive: s = "inactive"
            case .unknown: s = "unknown"
            case .active where b.isRelease: s = "release"
            case .active where b.isRefusal: s = "refused"
            case .active:
                // Valid: it holds its slot if it is the slot's newest record, else a release ended it.
                if views[b.block]?[b.slot]?.contains(where: { $0.id == b.id && $0.epoch == b.epoch }) == true { s = "active" }
                else { s = releasedIDs.contains(b.id) ? "released" : "superseded" }
            }
            return BookingRecord(b, status: s)
        }
        let blocks = c.cluster.blocks.values.sorted { $0.block < $1.block }.map {
            BlockView(block: $0.block, home: $0.home.rawValue, holder: $0.holder?.rawValue, epoch: $0.epoch,
                      valid: c.cluster.leaseValid($0.block), collected: $0.collected.count, opensAtMs: $0.opensAtMs)
        }
        return BookingsView(node: config.nodeID, appliedIndex: c.cluster.appliedIndex, blocks: blocks, bookings: bookings)
    }
}

/// Sessions a published rota defines, proposed like any other block definition.
extension MeshNode: SessionBlocks {
    package func defineSessions(_ sessions: [SessionBlock]) {
        defineBlocks(sessions.map { BlockDefinition(block: $0.block, home: $0.home, slots: $0.slots, opensAtMs: $0.opensAtMs) })
    }
}
