import HashTreeCollections

/// The consensus state as the core publishes it after every step: an immutable value that every
/// reader (services, status, metrics, admin) uses instead of the core. Copying it costs a few
/// retains: the large parts are persistent trees or change only when an entry applies.
public struct ConsensusView: Sendable {
    public let id: NodeID
    /// The replicated cluster state this node has applied.
    public let cluster: ClusterState
    public let role: RaftRole
    public let term: Term
    public let leader: NodeID?
    public let commitIndex: LogIndex
    public let lastIndex: LogIndex
    /// The last index the log was compacted into a snapshot at (0: never).
    public let snapshotIndex: LogIndex
    private let raftProgress: [NodeID: ClusterRaft.Progress]
    let store: BookingRecordIndex
    private let quotaFlows: TreeDictionary<String, BookingRequest>
    private let replyTo: TreeDictionary<String, NodeID>
    private let pending: TreeDictionary<String, BookingNode.Pending>
    let quotaBuckets: Int
    private let incarnation: UInt64

    init(_ core: ConsensusCore) {
        id = core.id
        cluster = core.cluster
        role = core.raft.role
        term = core.raft.term
        leader = core.raft.leader
        commitIndex = core.raft.commitIndex
        lastIndex = core.raft.lastIndex
        snapshotIndex = core.raft.snapshotIndex
        raftProgress = core.raft.progress
        store = core.booking.store.index
        quotaFlows = core.quotaFlows
        replyTo = core.replyTo
        pending = core.booking.pending
        quotaBuckets = core.options.quotaBuckets
        incarnation = core.incarnation
    }

    public var isLeader: Bool { role == .leader }

    /// On the leader: the highest log index known to be on `node` (a learner's catch-up progress).
    public func matchIndex(of node: NodeID) -> LogIndex? { role == .leader ? raftProgress[node]?.match : nil }

    /// Every booking record this node holds (diagnosis: the admin's bookings dump).
    public var records: some Collection<Booking> { store.records.values }

    /// Whether a request taken in here still waits for its outcome (`ConsensusCore.isOpen`).
    func isOpen(_ requestID: String) -> Bool {
        quotaFlows[requestID] != nil || replyTo[requestID] != nil || pending[requestID] != nil
    }

    /// Whether this node's own record `id` still waits for its quorum.
    func isPending(_ id: String) -> Bool { pending[id] != nil }

    /// Whether this process may book in `block` now, by the history it has applied.
    func holds(_ block: BlockID) -> Bool { BookingNode.holds(block, id: id, incarnation: incarnation, in: cluster) }
}

extension ConsensusCore {
    /// This step's state, to publish.
    public var view: ConsensusView { ConsensusView(self) }
}
