// Values exchanged between the Raft core and its shell: log entries, messages, actions.

/// Voters vote and count towards quorums; learners only receive the log.
/// Kept as sorted arrays so iteration order never depends on hashing.
public struct ClusterConfig: Hashable, Sendable, Codable {
    public private(set) var voters: [NodeID]
    public private(set) var learners: [NodeID]
    public init(voters: [NodeID], learners: [NodeID] = []) {
        self.voters = Array(Set(voters)).sorted()
        self.learners = Array(Set(learners).subtracting(voters)).sorted()
    }
    public var members: [NodeID] { (voters + learners).sorted() }
    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }
    public func isMember(_ id: NodeID) -> Bool { voters.contains(id) || learners.contains(id) }

    /// The config after one single-server change, or nil if the change is a no-op or invalid.
    public func applying(_ change: ConfigChange) -> ClusterConfig? {
        let id = change.node
        switch change.op {
        case .addLearner:
            guard !isMember(id) else { return nil }
            return ClusterConfig(voters: voters, learners: learners + [id])
        case .promote:
            guard learners.contains(id) else { return nil }
            return ClusterConfig(voters: voters + [id], learners: learners.filter { $0 != id })
        case .demote:
            guard voters.contains(id), voters.count > 1 else { return nil }
            return ClusterConfig(voters: voters.filter { $0 != id }, learners: learners + [id])
        case .remove:
            guard isMember(id), !(voters == [id]) else { return nil }
            return ClusterConfig(voters: voters.filter { $0 != id }, learners: learners.filter { $0 != id })
        }
    }
}

/// Single-server membership change: at most one voter is added or removed per committed entry,
/// so any two consecutive configurations have overlapping majorities.
public struct ConfigChange: Hashable, Sendable, Codable {
    public enum Op: UInt8, Hashable, Sendable, Codable { case addLearner, promote, demote, remove }
    public var op: Op
    public var node: NodeID
    public init(_ op: Op, _ node: NodeID) { self.op = op; self.node = node }
}

public enum EntryBody<Command: Sendable & Equatable>: Sendable, Equatable {
    case noop
    case command(Command)
    case config(ConfigChange)
}

public struct LogEntry<Command: Sendable & Equatable>: Sendable, Equatable {
    public var index: LogIndex
    public var term: Term
    public var body: EntryBody<Command>
    public init(index: LogIndex, term: Term, body: EntryBody<Command>) {
        self.index = index; self.term = term; self.body = body
    }
}

public struct HardState: Hashable, Sendable, Codable {
    public var term: Term
    public var votedFor: NodeID?
    public init(term: Term = 0, votedFor: NodeID? = nil) { self.term = term; self.votedFor = votedFor }
}

public struct Snapshot<Data: Sendable>: Sendable {
    public var lastIndex: LogIndex
    public var lastTerm: Term
    public var config: ClusterConfig
    public var data: Data
    public init(lastIndex: LogIndex, lastTerm: Term, config: ClusterConfig, data: Data) {
        self.lastIndex = lastIndex; self.lastTerm = lastTerm; self.config = config; self.data = data
    }
}

/// Everything a node must find again after a crash. Only what the shell confirmed durable.
public struct DurableRaftState<Command: Sendable & Equatable, SnapshotData: Sendable>: Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot<SnapshotData>?
    public var entries: [LogEntry<Command>]
    public init(hardState: HardState = HardState(), snapshot: Snapshot<SnapshotData>? = nil, entries: [LogEntry<Command>] = []) {
        self.hardState = hardState; self.snapshot = snapshot; self.entries = entries
    }

    /// Applies one persist request in the order the shell must follow: snapshot, truncate, append, hard state.
    public mutating func apply(_ p: PersistRequest<Command, SnapshotData>) {
        if let s = p.snapshot {
            entries.removeAll { $0.index <= s.lastIndex }
            snapshot = s
        }
        if let t = p.truncateFrom { entries.removeAll { $0.index >= t } }
        entries.append(contentsOf: p.entries)
        if let h = p.hardState { hardState = h }
    }
}

/// A write the shell must make durable (fsync) before calling `persisted(seq)`.
/// Order inside one request: install `snapshot` (dropping entries it covers), remove entries
/// at or after `truncateFrom`, append `entries`, then store `hardState`.
public struct PersistRequest<Command: Sendable & Equatable, SnapshotData: Sendable>: Sendable {
    public var seq: UInt64
    public var hardState: HardState?
    public var snapshot: Snapshot<SnapshotData>?
    public var truncateFrom: LogIndex?
    public var entries: [LogEntry<Command>]
    public init(seq: UInt64, hardState: HardState?, snapshot: Snapshot<SnapshotData>?, truncateFrom: LogIndex?, entries: [LogEntry<Command>]) {
        self.seq = seq; self.hardState = hardState; self.snapshot = snapshot; self.truncateFrom = truncateFrom; self.entries = entries
    }
}

public struct RaftMessage<Command: Sendable & Equatable, SnapshotData: Sendable>: Sendable {
    public enum Body: Sendable {
        /// `preVote`: asks "would you vote for me at `term`?" without anyone changing term.
        /// `transfer`: sent after TimeoutNow, so voters skip their leader-lease check.
        case requestVote(lastLogIndex: LogIndex, lastLogTerm: Term, preVote: Bool, transfer: Bool)
        case requestVoteResponse(granted: Bool, preVote: Bool)
        case appendEntries(prevLogIndex: LogIndex, prevLogTerm: Term, entries: [LogEntry<Command>], leaderCommit: LogIndex)
        /// On rejection, `conflictTerm`/`conflictIndex` let the leader skip a whole term at once.
        case appendEntriesResponse(success: Bool, prevLogIndex: LogIndex, matchIndex: LogIndex, conflictTerm: Term?, conflictIndex: LogIndex)
        case installSnapshot(Snapshot<SnapshotData>)
        case installSnapshotResponse(matchIndex: LogIndex)
        case timeoutNow
    }
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var body: Body
    public init(from: NodeID, to: NodeID, term: Term, body: Body) {
        self.from = from; self.to = to; self.term = term; self.body = body
    }
}

public enum RaftRole: String, Sendable, Codable { case follower, preCandidate, candidate, leader }

public enum RaftAction<Command: Sendable & Equatable, SnapshotData: Sendable>: Sendable {
    case send(RaftMessage<Command, SnapshotData>)
    case persist(PersistRequest<Command, SnapshotData>)
    /// Committed entries, in order, each exactly once per process lifetime.
    case apply([LogEntry<Command>])
    /// Replace the state machine with this snapshot (follower fell behind the leader's compaction).
    case restoreSnapshot(Snapshot<SnapshotData>)
    case roleChanged(RaftRole, term: Term)
}

public enum ProposeError: Error, Sendable, Equatable {
    case notLeader(leader: NodeID?)
    case transferInProgress
    case configChangePending
    case invalidConfigChange
    case learnerNotCaughtUp
}

public struct RaftConfig: Sendable {
    public var electionTimeoutTicks: ClosedRange<Int> = 15...30
    public var heartbeatTicks: Int = 5
    public var preVote = true
    public var checkQuorum = true
    public var maxEntriesPerAppend = 64
    /// A learner may be promoted only when its match index is at most this far behind.
    public var promotionLag: LogIndex = 16
    public var seed: UInt64 = 0
    #if CLINICMESH_BUG_SWITCHES
    /// Bug switch: grant a second vote in a term already voted in.
    public var bugVoteTwice = false
    /// Bug switch: the leader commits an entry of an earlier term by counting its replicas.
    public var bugCommitEarlierTerm = false
    #endif
    public init() {}
}
