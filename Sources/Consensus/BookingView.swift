import HashTreeCollections

/// The booking state as readers see it: an immutable value the consensus shell publishes after
/// each step of the core. Its maps are persistent hash trees, so a published view and the next
/// one share everything but what the step changed; keeping it up to date costs the changed blocks,
/// never the whole state, and no reader ever takes the core's lock.
public struct BookingView: Sendable {
    /// One block as readers need it: the lease, the slots' availability, the appointments.
    public struct BlockState: Sendable {
        public var summary: BookingLookup.Block
        public var availability: BlockAvailability
        /// Valid records by the hold they belong to.
        public var appointments: [String: AppointmentRecords]
        var holder: NodeID?
        var holderLiveness: UInt64
        /// The valid records a quorum has acknowledged (what its holder owes patients messages about).
        public var settled: [Booking]
        /// Records still waiting for their quorum here: the block is looked at again when they settle.
        var pendingIDs: Set<String>
    }

    public internal(set) var blocks: TreeDictionary<BlockID, BlockState> = [:]
    /// Hold ids by patient (slot blocks only).
    public internal(set) var holdsByPatient: TreeDictionary<String, TreeSet<String>> = [:]
    /// Where each hold is (its block).
    public internal(set) var holdBlocks: TreeDictionary<String, BlockID> = [:]
    /// The id of every record this node has, its own or collected by a takeover.
    public internal(set) var recordIDs: TreeSet<String> = []
    /// Requests taken in here that still wait for their outcome (`ConsensusCore.isOpen`).
    public internal(set) var openRequests: Set<String> = []

    public init() {}

    /// Blocks with records still waiting for their quorum.
    var unsettled: Set<BlockID> = []
    /// This process (its id and incarnation), and every node's liveness and eviction now: whether
    /// this node holds a block depends on them, and they are small.
    var me: NodeID?
    var incarnation: UInt64 = 0
    var liveness: [NodeID: LivenessRecord] = [:]
    var evicted: Set<NodeID> = []

    /// Whether this process may book in `block` now (`BookingNode.holds`, read from the view).
    public func heldHere(_ block: BlockID) -> Bool {
        guard let b = blocks[block], let holder = b.holder, holder == me, let l = liveness[holder] else { return false }
        return l.live && l.epoch == b.holderLiveness && !evicted.contains(holder) && l.incarnation == incarnation
    }

    /// Brings the view up to date with `core` for `changed` blocks and `records` written since the
    /// last update (`all`: everything, after a restart or a snapshot).
    public mutating func update(from core: ConsensusCore, changed: Set<BlockID>, records: [Booking], all: Bool = false) {
        var changed = changed
        if all {
            self = BookingView()
            changed = Set(core.cluster.blocks.keys)
            for r in core.booking.store.records.values { note(r) }
            for block in core.cluster.blocks.values { for r in block.collected { note(r) } }
        } else {
            for r in records { note(r) }
            for id in changed { for r in core.cluster.blocks[id]?.collected ?? [] { note(r) } }
        }
        // A record that settled since (acknowledged by its quorum) changes what the holder owes.
        for block in unsettled where blocks[block]?.pendingIDs.contains(where: { !core.booking.isPending($0) }) ?? true {
            changed.insert(block)
        }
        for block in changed where !block.hasPrefix(quotaBucketPrefix) { rebuild(block, from: core) }
        openRequests = core.openRequestIDs
        me = core.id
        incarnation = core.booking.incarnation
        if liveness != core.cluster.liveness { liveness = core.cluster.liveness }
        evicted = Set(core.cluster.members.values.filter(\.evicted).map(\.node))
    }

    private mutating func note(_ r: Booking) {
        recordIDs.insert(r.id)
        guard r.isHold, !r.block.hasPrefix(quotaBucketPrefix) else { return }
        holdBlocks[r.id] = r.block
        holdsByPatient[r.patient, default: []].insert(r.id)
    }

    private mutating func rebuild(_ block: BlockID, from core: ConsensusCore) {
        guard let lease = core.cluster.blocks[block] else {
            blocks[block] = nil
            unsettled.remove(block)
            return
        }
        let records = core.booking.store.records(in: block)
        let valid = (records + lease.collected).filter { bookingStatus($0, in: core.cluster) == .active }
        var appointments: [String: AppointmentRecords] = [:]
        for b in valid where !b.isRefusal {
            if b.isHold { appointments[b.id, default: AppointmentRecords()].hold = b }
            if let hold = b.confirms { appointments[hold, default: AppointmentRecords()].confirmation = b }
            if let hold = b.releases { appointments[hold, default: AppointmentRecords()].release = b }
        }
        let pending = Set(valid.lazy.map(\.id).filter { core.booking.isPending($0) })
        blocks[block] = BlockState(
            summary: BookingLookup.Block(slots: lease.slots, opensAtMs: lease.opensAtMs, epoch: lease.epoch, version: core.booking.store.versions[block] ?? 0),
            availability: Self.availability(block, records, core.cluster), appointments: appointments,
            holder: lease.holder, holderLiveness: lease.holderLiveness, settled: valid.filter { !pending.contains($0.id) }, pendingIDs: pending)
        if pending.isEmpty { unsettled.remove(block) } else { unsettled.insert(block) }
    }

    static func availability(_ block: BlockID, _ records: [Booking], _ state: ClusterState) -> BlockAvailability {
        let view = slotViews(block: block, bookings: records, state: state)
        var taken: [Int: BlockAvailability.Taken] = [:]
        for (slot, records) in view.views {
            if let held = holdingBooking(records) {
                taken[slot] = held.isHold ? .held : .booked
            } else if let top = records.first, top.reofferAtMs > 0 {
                taken[slot] = .releasedUntil(top.reofferAtMs)
            }
        }
        return BlockAvailability(unknown: view.unknown, taken: taken)
    }
}

/// The cluster as readers see it (membership, leases, liveness, this node's Raft role and
/// progress), published by the shell after each step like `BookingView`.
public struct ClusterView: Sendable {
    public var id: NodeID
    /// The committed state machine: members, blocks and their leases, liveness.
    public var cluster: ClusterState
    public var role: RaftRole
    public var term: Term
    public var leader: NodeID?
    public var commitIndex: LogIndex
    public var lastIndex: LogIndex
    /// How far each member's log matches this leader's (empty unless this node leads).
    public var matchIndex: [NodeID: LogIndex]

    public var isLeader: Bool { role == .leader }

    public init(_ core: ConsensusCore) {
        id = core.id
        cluster = core.cluster
        role = core.raft.role
        term = core.raft.term
        leader = core.raft.leader
        commitIndex = core.raft.commitIndex
        lastIndex = core.raft.lastIndex
        var match: [NodeID: LogIndex] = [:]
        if core.raft.role == .leader {
            for n in core.cluster.raftConfig.members { match[n] = core.raft.matchIndex(of: n) }
        }
        matchIndex = match
    }
}
