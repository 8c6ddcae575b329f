// Raft (figure 2 of the paper) plus PreVote, CheckQuorum, fast back-off, snapshots,
// single-server membership changes with learners, and leader transfer, as a pure value.
// Inputs: receive / tick / propose / persisted / compact. Output: [RaftAction].
// Durability rule: any message that promises something (a vote, an append ack, a snapshot ack)
// and the leader's own match index wait until the shell confirms the write that backs them.

public struct RaftNode<Command: Sendable & Equatable, SnapshotData: Sendable>: Sendable {
    public typealias Message = RaftMessage<Command, SnapshotData>
    public typealias Action = RaftAction<Command, SnapshotData>
    public typealias Entry = LogEntry<Command>

    struct Progress: Sendable {
        var next: LogIndex
        var match: LogIndex = 0
        var recentActive = false
    }

    public let id: NodeID
    public let options: RaftConfig
    public private(set) var term: Term = 0
    public private(set) var votedFor: NodeID?
    public private(set) var role: RaftRole = .follower
    public private(set) var leader: NodeID?
    public private(set) var commitIndex: LogIndex = 0
    public private(set) var appliedIndex: LogIndex = 0
    public private(set) var config: ClusterConfig

    private var log: [Entry] = []
    public private(set) var snapshot: Snapshot<SnapshotData>?
    /// Config entries still in the log (index, resulting config); the base is the snapshot's or bootstrap's.
    private var configHistory: [(LogIndex, ClusterConfig)] = []
    private var baseConfig: ClusterConfig

    private var electionElapsed = 0
    private var heartbeatElapsed = 0
    private var randomizedTimeout = 0
    private var votes: [NodeID: Bool] = [:]
    private(set) var progress: [NodeID: Progress] = [:]
    private var rng: SplitMix64
    private var transferTarget: NodeID?

    // Persistence bookkeeping.
    private var persistSeq: UInt64 = 0
    private var durableSeq: UInt64 = 0
    private var held: [(UInt64, Message)] = []
    private var pendingLastIndex: [(UInt64, LogIndex)] = []
    private var durableLastIndex: LogIndex = 0
    private var selfVoteSeq: UInt64?

    private var out: [Action] = []

    /// Starts from durable state (empty for a brand-new node). `bootstrap` is the initial
    /// configuration, used only when neither a snapshot nor a config entry says otherwise.
    public init(id: NodeID, options: RaftConfig, bootstrap: ClusterConfig, restoring state: DurableRaftState<Command, SnapshotData> = .init()) {
        self.id = id
        self.options = options
        self.rng = SplitMix64(seed: options.seed ^ 0xA5A5_5A5A_0F0F_F0F0)
        self.term = state.hardState.term
        self.votedFor = state.hardState.votedFor
        self.snapshot = state.snapshot
        self.baseConfig = state.snapshot?.config ?? bootstrap
        self.config = baseConfig
        if let s = state.snapshot {
            commitIndex = s.lastIndex
            appliedIndex = s.lastIndex
        }
        log = state.entries.filter { $0.index > (state.snapshot?.lastIndex ?? 0) }
        for e in log { if case .config(let c) = e.body { record(c, at: e.index) } }
        durableLastIndex = lastIndex
        resetElectionTimeout()
    }

    // MARK: Log helpers

    public var snapshotIndex: LogIndex { snapshot?.lastIndex ?? 0 }
    public var snapshotTerm: Term { snapshot?.lastTerm ?? 0 }
    public var lastIndex: LogIndex { log.last?.index ?? snapshotIndex }
    public var lastTerm: Term { log.last?.term ?? snapshotTerm }
    public var hardState: HardState { HardState(term: term, votedFor: votedFor) }
    /// A leader whose state machine has caught up with an entry of its own term: its applied
    /// state is the latest committed one, so it may act on it.
    public var isReadyLeader: Bool { role == .leader && appliedIndex == commitIndex && termAt(commitIndex) == term }
    /// On the leader: the highest log index known to be on `node` (a learner's catch-up progress).
    public func matchIndex(of node: NodeID) -> LogIndex? { role == .leader ? progress[node]?.match : nil }

    /// Term of the entry at `i`, or nil if unknown (compacted away or past the end).
    public func termAt(_ i: LogIndex) -> Term? {
        if i == snapshotIndex { return snapshotTerm }
        guard i > snapshotIndex, i <= lastIndex else { return i == 0 ? 0 : nil }
        return log[Int(i - snapshotIndex - 1)].term
    }
    public func entry(at i: LogIndex) -> Entry? {
        guard i > snapshotIndex, i <= lastIndex else { return nil }
        return log[Int(i - snapshotIndex - 1)]
    }
    public var entries: [Entry] { log }

    private func entries(from i: LogIndex, max: Int) -> [Entry] {
        guard i > snapshotIndex, i <= lastIndex else { return [] }
        let start = Int(i - snapshotIndex - 1)
        return Array(log[start..<min(log.count, start + max)])
    }

    private mutating func record(_ c: ConfigChange, at index: LogIndex) {
        let prev = configHistory.last?.1 ?? baseConfig
        let next = prev.applying(c) ?? prev
        configHistory.append((index, next))
        config = next
    }

    private mutating func recomputeConfig() {
        let last = lastIndex, snap = snapshotIndex
        configHistory.removeAll { $0.0 > last || $0.0 <= snap }
        config = configHistory.last?.1 ?? baseConfig
        if role == .leader {
            for m in config.members where progress[m] == nil { progress[m] = Progress(next: lastIndex + 1) }
        }
    }

    private var pendingConfigChange: Bool { (configHistory.last?.0 ?? 0) > commitIndex }

    // MARK: Persistence

    private mutating func persist(hard: Bool = false, truncateFrom: LogIndex? = nil, entries: [Entry] = [], snapshot: Snapshot<SnapshotData>? = nil) {
        persistSeq += 1
        out.append(.persist(PersistRequest(seq: persistSeq, hardState: hard ? hardState : nil, snapshot: snapshot, truncateFrom: truncateFrom, entries: entries)))
        pendingLastIndex.append((persistSeq, lastIndex))
    }

    /// Sends now if nothing is waiting on disk, else once the last requested write is durable.
    private mutating func sendDurable(_ m: Message) {
        if durableSeq >= persistSeq { out.append(.send(m)) } else { held.append((persistSeq, m)) }
    }
    private mutating func send(_ m: Message) { out.append(.send(m)) }

    /// The shell made every persist request up to `seq` durable, in order.
    public mutating func persisted(upTo seq: UInt64) -> [Action] {
        guard seq > durableSeq else { return [] }
        durableSeq = seq
        while let f = pendingLastIndex.first, f.0 <= seq { durableLastIndex = f.1; pendingLastIndex.removeFirst() }
        var keep: [(UInt64, Message)] = []
        for h in held { if h.0 <= seq { out.append(.send(h.1)) } else { keep.append(h) } }
        held = keep
        if role == .candidate, let s = selfVoteSeq, s <= seq {
            selfVoteSeq = nil
            votes[id] = true
            checkElection(preVote: false)
        }
        if role == .leader { maybeCommit() }
        return drain()
    }

    private mutating func drain() -> [Action] {
        applyCommitted()
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    // MARK: Roles

    private mutating func resetElectionTimeout() {
        let r = options.electionTimeoutTicks
        randomizedTimeout = r.lowerBound + Int(rng.below(UInt64(r.upperBound - r.lowerBound + 1)))
        electionElapsed = 0
    }

    private mutating func becomeFollower(term newTerm: Term, leader: NodeID?) {
        let changed = role != .follower || newTerm != term
        if newTerm > term {
            term = newTerm
            votedFor = nil
            persist(hard: true)
        }
        role = .follower
        self.leader = leader
        transferTarget = nil
        selfVoteSeq = nil
        heartbeatElapsed = 0
        resetElectionTimeout()
        if changed { out.append(.roleChanged(.follower, term: term)) }
    }

    private mutating func campaign(preVote: Bool, transfer: Bool) {
        guard config.isVoter(id) else { return }
        votes = [:]
        leader = nil
        resetElectionTimeout()
        let voteTerm: Term
        if preVote {
            role = .preCandidate
            voteTerm = term + 1
            votes[id] = true
            out.append(.roleChanged(.preCandidate, term: term))
        } else {
            role = .candidate
            term += 1
            votedFor = id
            persist(hard: true)
            selfVoteSeq = persistSeq // our own vote counts only once it is durable
            voteTerm = term
            out.append(.roleChanged(.candidate, term: term))
        }
        for v in config.voters where v != id {
            let m = Message(from: id, to: v, term: voteTerm, body: .requestVote(lastLogIndex: lastIndex, lastLogTerm: lastTerm, preVote: preVote, transfer: transfer))
            if preVote { send(m) } else { sendDurable(m) }
        }
        checkElection(preVote: preVote)
    }

    private mutating func checkElection(preVote: Bool) {
        let granted = config.voters.filter { votes[$0] == true }.count
        let rejected = config.voters.filter { votes[$0] == false }.count
        let q = quorum(of: config.voters.count)
        if granted >= q {
            if preVote { campaign(preVote: false, transfer: false) } else { becomeLeader() }
        } else if rejected >= q {
            becomeFollower(term: term, leader: nil)
        }
    }

    private mutating func becomeLeader() {
        role = .leader
        leader = id
        transferTarget = nil
        heartbeatElapsed = 0
        electionElapsed = 0
        progress = [:]
        for m in config.members { progress[m] = Progress(next: lastIndex + 1) }
        progress[id]?.recentActive = true
        out.append(.roleChanged(.leader, term: term))
        // A current-term entry lets earlier-term entries commit (figure 8).
        appendLocal(.noop)
        broadcastAppend()
    }

    // MARK: Ticks

    public mutating func tick() -> [Action] {
        if role == .leader {
            heartbeatElapsed += 1
            electionElapsed += 1
            if electionElapsed >= options.electionTimeoutTicks.lowerBound {
                electionElapsed = 0
                transferTarget = nil // a transfer that took a whole election timeout has failed
                if options.checkQuorum {
                    let active = config.voters.filter { $0 == id || progress[$0]?.recentActive == true }.count
                    for k in progress.keys { progress[k]?.recentActive = false }
                    if active < quorum(of: config.voters.count) {
                        becomeFollower(term: term, leader: nil)
                        return drain()
                    }
                }
            }
            if heartbeatElapsed >= options.heartbeatTicks {
                heartbeatElapsed = 0
                broadcastAppend()
            }
        } else {
            electionElapsed += 1
            if electionElapsed >= randomizedTimeout && config.isVoter(id) {
                campaign(preVote: options.preVote, transfer: false)
            }
        }
        return drain()
    }

    // MARK: Proposals

    private mutating func appendLocal(_ body: EntryBody<Command>) {
        let e = Entry(index: lastIndex + 1, term: term, body: body)
        log.append(e)
        if case .config(let c) = body { record(c, at: e.index); recomputeConfig() }
        persist(entries: [e])
    }

    public mutating func propose(_ command: Command) -> (Result<LogIndex, ProposeError>, [Action]) {
        guard role == .leader else { return (.failure(.notLeader(leader: leader)), []) }
        guard transferTarget == nil else { return (.failure(.transferInProgress), []) }
        appendLocal(.command(command))
        let idx = lastIndex
        broadcastAppend()
        return (.success(idx), drain())
    }

    public mutating func proposeConfigChange(_ change: ConfigChange) -> (Result<LogIndex, ProposeError>, [Action]) {
        guard role == .leader else { return (.failure(.notLeader(leader: leader)), []) }
        guard transferTarget == nil else { return (.failure(.transferInProgress), []) }
        // Not before an entry of this term commits: a new leader may not know of a config change
        // its predecessor appended, and two changes in flight break single-server safety.
        guard !pendingConfigChange, termAt(commitIndex) == term else { return (.failure(.configChangePending), []) }
        guard config.applying(change) != nil else { return (.failure(.invalidConfigChange), []) }
        if change.op == .promote {
            let m = progress[change.node]?.match ?? 0
            guard m + options.promotionLag >= lastIndex else { return (.failure(.learnerNotCaughtUp), []) }
        }
        appendLocal(.config(change))
        let idx = lastIndex
        broadcastAppend()
        return (.success(idx), drain())
    }

    /// Hand leadership to `target`: catch it up, then tell it to campaign at once.
    public mutating func transferLeadership(to target: NodeID) -> (Result<Void, ProposeError>, [Action]) {
        guard role == .leader else { return (.failure(.notLeader(leader: leader)), []) }
        guard target != id, config.isVoter(target) else { return (.failure(.invalidConfigChange), []) }
        transferTarget = target
        electionElapsed = 0
        if progress[target]?.match == lastIndex {
            send(Message(from: id, to: target, term: term, body: .timeoutNow))
        } else {
            sendAppend(to: target)
        }
        return (.success(()), drain())
    }

    /// The state machine captured everything up to `index` (<= applied) in `data`: drop the log prefix.
    public mutating func compact(through index: LogIndex, data: SnapshotData) -> [Action] {
        guard index > snapshotIndex, index <= appliedIndex, let t = termAt(index) else { return [] }
        let cfg = configHistory.last(where: { $0.0 <= index })?.1 ?? baseConfig
        let s = Snapshot(lastIndex: index, lastTerm: t, config: cfg, data: data)
        log.removeFirst(Int(index - snapshotIndex))
        snapshot = s
        baseConfig = cfg
        configHistory.removeAll { $0.0 <= index }
        persist(snapshot: s)
        return drain()
    }

    // MARK: Replication (leader side)

    private mutating func broadcastAppend() {
        for m in config.members where m != id { sendAppend(to: m) }
        if config.voters == [id] || config.voters.isEmpty { maybeCommit() }
    }

    private mutating func sendAppend(to peer: NodeID) {
        guard var p = progress[peer] else { return }
        if p.next <= snapshotIndex, let s = snapshot {
            send(Message(from: id, to: peer, term: term, body: .installSnapshot(s)))
            p.next = s.lastIndex + 1
            progress[peer] = p
            return
        }
        let prev = p.next - 1
        let batch = entries(from: p.next, max: options.maxEntriesPerAppend)
        send(Message(from: id, to: peer, term: term, body: .appendEntries(prevLogIndex: prev, prevLogTerm: termAt(prev) ?? 0, entries: batch, leaderCommit: commitIndex)))
        if let last = batch.last { p.next = last.index + 1 } // optimistic; a rejection rewinds it
        progress[peer] = p
    }

    private mutating func maybeCommit() {
        guard role == .leader else { return }
        var matches: [LogIndex] = config.voters.map { $0 == id ? durableLastIndex : (progress[$0]?.match ?? 0) }
        guard !matches.isEmpty else { return }
        matches.sort(by: >)
        let n = matches[quorum(of: matches.count) - 1]
        // Only an entry of the current term commits by counting replicas (figure 8).
        #if CLINICMESH_BUG_SWITCHES
        if options.bugCommitEarlierTerm, n > commitIndex, termAt(n) != term { commitIndex = n }
        #endif
        if n > commitIndex, termAt(n) == term {
            commitIndex = n
            if !config.isVoter(id), !pendingConfigChange {
                becomeFollower(term: term, leader: nil) // we removed or demoted ourselves
            }
        }
    }

    private mutating func applyCommitted() {
        guard commitIndex > appliedIndex else { return }
        let from = max(appliedIndex + 1, snapshotIndex + 1)
        guard from <= commitIndex else { appliedIndex = commitIndex; return }
        var batch: [Entry] = []
        batch.reserveCapacity(Int(commitIndex - from + 1))
        var i = from
        while i <= commitIndex, let e = entry(at: i) { batch.append(e); i += 1 }
        appliedIndex = batch.last?.index ?? appliedIndex
        if !batch.isEmpty { out.append(.apply(batch)) }
    }

    // MARK: Receiving

    public mutating func receive(_ m: Message) -> [Action] {
        guard m.to == id else { return [] }
        if case .requestVote(_, _, let pre, let transfer) = m.body, m.term > term {
            // Leader lease (CheckQuorum): while we hear from a live leader, ignore disruptive candidates.
            if options.checkQuorum, !transfer, leader != nil, electionElapsed < options.electionTimeoutTicks.lowerBound {
                return []
            }
            if !pre { becomeFollower(term: m.term, leader: nil) }
        } else if case .requestVoteResponse(let granted, true) = m.body, granted {
            // A granted pre-vote carries the proposed term; it does not move ours.
        } else if m.term > term {
            switch m.body {
            case .appendEntries, .installSnapshot, .timeoutNow: becomeFollower(term: m.term, leader: m.from)
            default: becomeFollower(term: m.term, leader: nil)
            }
        } else if m.term < term {
            switch m.body {
            case .appendEntries, .installSnapshot:
                // Tell a stale leader about the newer term so it steps down.
                send(Message(from: id, to: m.from, term: term, body: .appendEntriesResponse(success: false, prevLogIndex: 0, matchIndex: 0, conflictTerm: nil, conflictIndex: 0)))
            case .requestVote(_, _, true, _):
                send(Message(from: id, to: m.from, term: term, body: .requestVoteResponse(granted: false, preVote: true)))
            default: break
            }
            return drain()
        }

        switch m.body {
        case .requestVote(let li, let lt, let pre, _):
            handleVote(m, lastLogIndex: li, lastLogTerm: lt, preVote: pre)
        case .requestVoteResponse(let granted, let pre):
            if (pre && role == .preCandidate && m.term == term + 1) || (!pre && role == .candidate && m.term == term) {
                votes[m.from] = granted
                checkElection(preVote: pre)
            }
        case .appendEntries(let prev, let prevTerm, let es, let lc):
            handleAppend(m, prev: prev, prevTerm: prevTerm, entries: es, leaderCommit: lc)
        case .appendEntriesResponse(let ok, let prev, let match, let ct, let ci):
            handleAppendResponse(from: m.from, success: ok, prev: prev, match: match, conflictTerm: ct, conflictIndex: ci)
        case .installSnapshot(let s):
            handleSnapshot(m, s)
        case .installSnapshotResponse(let match):
            guard role == .leader, var p = progress[m.from] else { break }
            p.recentActive = true
            p.match = max(p.match, match)
            p.next = max(p.next, p.match + 1)
            progress[m.from] = p
            maybeCommit()
        case .timeoutNow:
            if m.from == leader, role == .follower { campaign(preVote: false, transfer: true) }
        }
        return drain()
    }

    private func logUpToDate(lastLogIndex: LogIndex, lastLogTerm: Term) -> Bool {
        lastLogTerm > lastTerm || (lastLogTerm == lastTerm && lastLogIndex >= lastIndex)
    }

    private mutating func handleVote(_ m: Message, lastLogIndex: LogIndex, lastLogTerm: Term, preVote: Bool) {
        let upToDate = logUpToDate(lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm)
        if preVote {
            // Grant only for a later term and a log at least as good; nothing changes here.
            let grant = m.term > term && upToDate
            send(Message(from: id, to: m.from, term: grant ? m.term : term, body: .requestVoteResponse(granted: grant, preVote: true)))
            return
        }
        var canVote = votedFor == nil || votedFor == m.from
        #if CLINICMESH_BUG_SWITCHES
        if options.bugVoteTwice { canVote = true }
        #endif
        canVote = canVote && m.term == term
        if canVote && upToDate {
            votedFor = m.from
            persist(hard: true)
            electionElapsed = 0
            sendDurable(Message(from: id, to: m.from, term: term, body: .requestVoteResponse(granted: true, preVote: false)))
        } else {
            send(Message(from: id, to: m.from, term: term, body: .requestVoteResponse(granted: false, preVote: false)))
        }
    }

    private mutating func handleAppend(_ m: Message, prev prevIn: LogIndex, prevTerm prevTermIn: Term, entries esIn: [Entry], leaderCommit: LogIndex) {
        if role != .follower || leader != m.from { becomeFollower(term: term, leader: m.from) }
        electionElapsed = 0
        var prev = prevIn, prevTerm = prevTermIn, es = esIn
        func reply(_ ok: Bool, match: LogIndex, ct: Term? = nil, ci: LogIndex = 0) -> Message {
            Message(from: id, to: m.from, term: term, body: .appendEntriesResponse(success: ok, prevLogIndex: prevIn, matchIndex: match, conflictTerm: ct, conflictIndex: ci))
        }
        if prev < snapshotIndex {
            // Entries up to our snapshot are committed and therefore identical: skip them.
            let skip = Int(snapshotIndex - prev)
            if es.count <= skip { sendDurable(reply(true, match: snapshotIndex)); return }
            es.removeFirst(skip)
            prev = snapshotIndex
            prevTerm = snapshotTerm
        }
        if prev > lastIndex {
            send(reply(false, match: 0, ci: lastIndex + 1))
            return
        }
        if let t = termAt(prev), t != prevTerm {
            var first = prev
            while first > snapshotIndex + 1, termAt(first - 1) == t { first -= 1 }
            send(reply(false, match: 0, ct: t, ci: first))
            return
        }
        // Find the first entry we do not already have; truncate a conflicting suffix.
        var truncateFrom: LogIndex?
        var newEntries: [Entry] = []
        for (k, e) in es.enumerated() {
            if let t = termAt(e.index) {
                if t == e.term { continue }
                truncateFrom = e.index
                log.removeLast(Int(lastIndex - e.index + 1))
            }
            newEntries = Array(es[k...])
            break
        }
        if truncateFrom != nil || !newEntries.isEmpty {
            if let t = truncateFrom {
                configHistory.removeAll { $0.0 >= t }
                config = configHistory.last?.1 ?? baseConfig
            }
            log.append(contentsOf: newEntries)
            for e in newEntries { if case .config(let c) = e.body { record(c, at: e.index) } }
            persist(truncateFrom: truncateFrom, entries: newEntries)
        }
        let lastNew = prev + LogIndex(es.count)
        if leaderCommit > commitIndex { commitIndex = max(commitIndex, min(leaderCommit, lastNew)) }
        sendDurable(reply(true, match: lastNew))
    }

    private mutating func handleAppendResponse(from peer: NodeID, success: Bool, prev: LogIndex, match: LogIndex, conflictTerm: Term?, conflictIndex: LogIndex) {
        guard role == .leader, var p = progress[peer] else { return }
        p.recentActive = true
        if success {
            p.match = max(p.match, match)
            p.next = max(p.next, p.match + 1)
            progress[peer] = p
            maybeCommit()
            if transferTarget == peer, p.match == lastIndex {
                send(Message(from: id, to: peer, term: term, body: .timeoutNow))
            } else if p.next <= lastIndex {
                sendAppend(to: peer)
            }
            return
        }
        guard prev >= p.match, conflictIndex > 0 else { progress[peer] = p; return } // stale rejection
        var next = conflictIndex
        if let ct = conflictTerm {
            // Fast back-off: if we have that term, resume right after our last entry of it.
            var i = min(lastIndex, prev)
            while i > snapshotIndex, let t = termAt(i), t > ct { i -= 1 }
            if termAt(i) == ct { next = i + 1 }
        }
        p.next = max(p.match + 1, min(next, prev))
        progress[peer] = p
        sendAppend(to: peer)
    }

    private mutating func handleSnapshot(_ m: Message, _ s: Snapshot<SnapshotData>) {
        if role != .follower || leader != m.from { becomeFollower(term: term, leader: m.from) }
        electionElapsed = 0
        func reply(_ match: LogIndex) -> Message {
            Message(from: id, to: m.from, term: term, body: .installSnapshotResponse(matchIndex: match))
        }
        guard s.lastIndex > commitIndex else { sendDurable(reply(commitIndex)); return }
        if termAt(s.lastIndex) == s.lastTerm {
            log.removeFirst(Int(s.lastIndex - snapshotIndex))
        } else {
            log.removeAll()
        }
        let dropRest = log.isEmpty
        snapshot = s
        baseConfig = s.config
        recomputeConfig()
        commitIndex = s.lastIndex
        appliedIndex = s.lastIndex
        out.append(.restoreSnapshot(s))
        persist(truncateFrom: dropRest ? s.lastIndex + 1 : nil, snapshot: s)
        sendDurable(reply(s.lastIndex))
    }
}
