import Consensus
import ConsensusStorage
import Domain
import Foundation
import Logging
import Mesh
import NIOConcurrencyHelpers
import PKI
import Services
import AdminAPI
import Synchronization

/// The real-process shell around `ConsensusCore` (the same value the simulator drives): a 10 ms
/// tick on a thread of its own, durable writes on another (group commit: one fsync per batch,
/// then `persisted`), messages over one consensus link per peer, and booking answers handed to
/// whoever waits for them. The protocol and its safety argument: `Consensus.docc/PROTOCOL.md`.
final class ConsensusShell: Sendable {
    let id: NodeID
    let logger: Logger
    let clock: NodeClock
    /// A pthread mutex, not `Synchronization.Mutex`: on Linux the latter is a priority-inheritance
    /// futex that hands the lock to the next waiter. At the rush every request, message and tick
    /// takes this lock; with more threads than the two cores, the lock then sat with a waiter not
    /// yet running while others spun and queued behind it.
    private let core: NIOLockedValueBox<ConsensusCore>
    /// The core's state after its last step, for every reader: nobody else takes the core's lock.
    private let published: Mutex<ConsensusView>
    private let disk: DurableQueue
    private let outboxes: Mutex<[NodeID: LinkMailbox]>
    private let waiters = Mutex<Waiters>(Waiters())
    private let diskError = Mutex<String?>(nil)
    let membership: LiveMembership
    private let stopped = Atomic<Bool>(false)
    /// Set while the consensus logs cannot be written (a full disk): the core neither ticks nor
    /// takes messages, as if the process were stopped, until the disk thread's retry succeeds.
    private let paused = Atomic<Bool>(false)
    /// Committed evictions, for the node to close connections (consumed by one task).
    let evictions: AsyncStream<String>
    private let evictionSink: AsyncStream<String>.Continuation

    struct Waiters {
        var next = 0
        var byRequest: [String: [Int: Waiter]] = [:]
        /// The earliest deadline of any waiter (monotonic ms), so most ticks skip the sweep.
        var earliestDeadlineMs = UInt64.max
        /// Set by `stop()`, which answers every waiter: no new ones after it.
        var closed = false

        /// Adds a waiter for request `id`; false once closed (the caller answers it nil itself).
        mutating func add(_ c: CheckedContinuation<BookingOutcome?, Never>, for id: String, deadlineMs: UInt64) -> Bool {
            guard !closed else { return false }
            next += 1
            byRequest[id, default: [:]][next] = Waiter(continuation: c, deadlineMs: deadlineMs)
            earliestDeadlineMs = min(earliestDeadlineMs, deadlineMs)
            return true
        }

        /// Takes out every waiter, and takes no more.
        mutating func close() -> [CheckedContinuation<BookingOutcome?, Never>] {
            defer { byRequest = [:]; closed = true }
            return byRequest.values.flatMap(\.values).map(\.continuation)
        }

        /// Takes out every waiter whose deadline passed.
        mutating func expired(nowMs: UInt64) -> [CheckedContinuation<BookingOutcome?, Never>] {
            guard nowMs >= earliestDeadlineMs else { return [] }
            var out: [CheckedContinuation<BookingOutcome?, Never>] = []
            var earliest = UInt64.max
            for (id, ws) in byRequest {
                var left = ws
                for (token, w) in ws {
                    if w.deadlineMs <= nowMs { out.append(w.continuation); left[token] = nil } else { earliest = min(earliest, w.deadlineMs) }
                }
                byRequest[id] = left.isEmpty ? nil : left
            }
            earliestDeadlineMs = earliest
            return out
        }
    }

    struct Waiter {
        var continuation: CheckedContinuation<BookingOutcome?, Never>
        var deadlineMs: UInt64
    }

    /// Opens the Raft log and the booking log in `directory`, bumps the durable incarnation.
    init(id: String, directory: String, bootstrap: ClusterConfig, peers: [String], membership: LiveMembership,
         clock: NodeClock, logger: Logger, policy: QuotaPolicy = .standard, snapshotChunkBytes: Int = 4 << 20) throws {
        self.id = NodeID(id)
        self.snapshotChunkBytes = snapshotChunkBytes
        self.logger = logger
        self.clock = clock
        self.membership = membership
        let raftLog = try FileRaftLog(directory: directory)
        let bookingLog = try FileBookingLog(directory: directory)
        let incarnation = try Incarnation.bump(directory: directory)
        var options = ConsensusCoreOptions()
        options.seed = UInt64.random(in: .min ... .max)
        options.raft.seed = UInt64.random(in: .min ... .max)
        options.renewPhase = UInt64.random(in: 0..<options.renewEveryTicks)
        options.booking.quotaPolicy = policy
        // Real processes share two cores with everything else; at a release rush a heartbeat can
        // wait a few hundred ms behind requests. Elections after 0.5 to 1 s of silence, not 150 to
        // 300 ms (the simulator's), so load alone does not unseat a leader.
        options.raft.electionTimeoutTicks = 50...100
        let restored: DurableRaftState<ClusterCommand, ClusterState>
        do {
            restored = try ConsensusWire.typed(raftLog.state)
        } catch {
            throw NodeError(.startup, zh: "Raft 日志无法解码（\(directory)）：\(error)", en: "the Raft log in \(directory) does not decode: \(error)")
        }
        let core = ConsensusCore(id: NodeID(id), incarnation: incarnation, bootstrap: bootstrap, options: options,
                                 restoringRaft: restored, restoringBooking: bookingLog.state)
        self.core = NIOLockedValueBox(core)
        self.published = Mutex(core.view)
        let entryBytes = self.entryBytes, stateBytes = self.stateBytes
        self.disk = DurableQueue(raftLog: raftLog, bookingLog: bookingLog, directory: directory) {
            ConsensusWire.bytes($0, entryBytes: entryBytes.bytes, stateBytes: stateBytes.bytes)
        }
        let boxes = Dictionary(uniqueKeysWithValues: peers.map { (NodeID($0), LinkMailbox(capacity: Self.linkCapacity)) })
        self.outboxes = Mutex(boxes)
        (evictions, evictionSink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .unbounded)
        self.untaken = Mutex(boxes)
        membership.update(core.cluster)
        logger.info("共识层已启动 / consensus started", metadata: ["raft.incarnation": "\(incarnation)", "raft.term": "\(core.raft.term)"])
    }

    /// Messages a link may wait for while its peer is unreachable.
    static let linkCapacity = 2048
    /// The mailboxes no link task has taken yet.
    private let untaken: Mutex<[NodeID: LinkMailbox]>
    /// Where events are counted (set once by the node, right after it is made).
    private let metricsSink = Mutex<NodeMetrics?>(nil)

    func report(to metrics: NodeMetrics) { metricsSink.withLock { $0 = metrics } }
    private var metrics: NodeMetrics? { metricsSink.withLock { $0 } }

    /// Keeps a closed block's final rows (the read model), called under the core's lock when the
    /// closure is applied: before the booking store's forget of the block is queued for the disk.
    private let closureSink = Mutex<(@Sendable (BlockClosure) -> Void)?>(nil)
    func onClosure(_ keep: @escaping @Sendable (BlockClosure) -> Void) { closureSink.withLock { $0 = keep } }

    /// The encoded messages for `peer`'s link (taken once, by the link's task).
    func outbound(for peer: String) -> LinkMailbox? {
        untaken.withLock { $0.removeValue(forKey: NodeID(peer)) }
    }

    /// Log entries as encoded when first written: a lagging follower is sent them again.
    private let entryBytes = EncodedEntries()
    private let stateBytes = EncodedState()
    /// State bytes per snapshot chunk (`tuning.snapshot_chunk_bytes`), and entry bytes per append.
    private let snapshotChunkBytes: Int
    /// The newest snapshot sent to each peer, and when.
    private let snapshotsSent = Mutex<[NodeID: (index: LogIndex, atMs: UInt64)]>([:])
    private let snapshotAssembly = Mutex(SnapshotAssembly())

    /// Blocks whose booking records or lease changed since the read model last asked.
    let changed = ChangedBlocks()

    /// The consensus state as of the core's last step.
    var view: ConsensusView { published.withLock { $0 } }

    /// Why this node stopped taking part in consensus, if it did.
    var failure: String? { diskError.withLock { $0 } }

    // MARK: Running

    /// Starts the tick and disk threads. `stop()` ends them.
    func start() {
        disk.start { [self] raftSeq, bookingSeq in
            step { $0.persisted(raftUpTo: raftSeq, bookingUpTo: bookingSeq) }
        } failed: { [self] error in
            // Without durable writes this node must not acknowledge anything: it pauses (like a
            // stopped process: its leases move) while the disk thread retries the same writes.
            let first = diskError.withLock { e in defer { e = "\(error)" }; return e == nil }
            paused.store(true, ordering: .relaxed)
            if first {
                logger.critical("共识存储写入失败，暂停参与共识，重试中 / consensus storage failed, pausing and retrying", metadata: ["raft.error": "\(error)"])
            }
        } recovered: { [self] in
            diskError.withLock { $0 = nil }
            paused.store(false, ordering: .relaxed)
            logger.notice("共识存储恢复，继续参与共识 / consensus storage writable again, taking part again")
        } timed: { [self] log, took in
            metrics?.consensusDiskWrite(log: log, took: took)
        }
        let ticker = Thread { [self] in
            var ticks: UInt64 = 0
            var unreachable: Set<NodeID> = []
            while !stopped.load(ordering: .relaxed) {
                usleep(10_000)
                if stopped.load(ordering: .relaxed) { break }
                let now = nowMs()
                let wall = clock.wallMillis()
                ticks += 1
                if ticks % 10 == 0 { refreshUnreachable(&unreachable, nowMs: now) }
                step { $0.tick(nowMs: now, wallMs: wall) }
                for c in waiters.withLock({ $0.expired(nowMs: now) }) { c.resume(returning: nil) }
            }
        }
        ticker.name = "consensus-tick"
        ticker.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        disk.stop()
        for box in outboxes.withLock({ Array($0.values) }) { box.finish() }
        evictionSink.finish()
        for c in waiters.withLock({ $0.close() }) { c.resume(returning: nil) }
    }

    func nowMs() -> UInt64 { clock.monotonicNanos() / 1_000_000 }

    /// A peer whose consensus link has been down this long is unreachable to the core, which
    /// then refuses at once what it could only send into the void (`ConsensusCore.setUnreachable`).
    /// Long enough to ride over a reconnect.
    static let unreachableAfterMs: UInt64 = 1_000

    /// Tells the core which peers are unreachable now, when that changed since `known`.
    private func refreshUnreachable(_ known: inout Set<NodeID>, nowMs: UInt64) {
        let cut = outboxes.withLock { boxes in
            Set(boxes.filter { _, box in box.downSinceMs.map { nowMs >= $0 + Self.unreachableAfterMs } ?? false }.keys)
        }
        guard cut != known else { return }
        known = cut
        logger.notice("无法连接的对端 / unreachable peers", metadata: ["raft.unreachable": "\(cut.map(\.rawValue).sorted())"])
        core.withLockedValue { $0.setUnreachable(cut) }
    }

    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// One step of the core. Writes are queued in order while the core is locked; everything
    /// else (sends, answers, logs) happens after. Messages to self are fed back in a loop.
    private func step(_ body: (inout ConsensusCore) -> [CoreEffect]) {
        guard !stopped.load(ordering: .relaxed), !paused.load(ordering: .relaxed) else { return }
        var effects = runLocked(body)
        while !effects.isEmpty {
            var again: [ConsensusMessage] = []
            for e in effects {
                switch e {
                case .send(let to, let m) where to == id: again.append(m)
                default: perform(e)
                }
            }
            effects = []
            let now = nowMs()
            for m in again { effects += runLocked { $0.receive(m, from: id, nowMs: now) } }
        }
    }

    private func runLocked(_ body: (inout ConsensusCore) -> [CoreEffect]) -> [CoreEffect] {
        let wall = clock.wallMillis()
        return core.withLockedValue { c in
            c.observeWall(wall)
            let effects = body(&c)
            var rest: [CoreEffect] = []
            var wrote = false
            var membershipChanged = false
            for e in effects {
                switch e {
                case .persistRaft(let p): disk.enqueue(raft: p); wrote = true
                case .persistBooking(let w):
                    disk.enqueue(booking: w); wrote = true
                    changed.note(w.records.map(\.block))
                case .applied(let entry, let accepted):
                    if case .command(let cmd) = entry.body {
                        switch cmd {
                        case .upsertMember, .evict: membershipChanged = true
                        case .lease(let change): changed.note([change.block])
                        case .closeBlock(let closure):
                            if accepted { closureSink.withLock { $0 }?(closure) }
                        case .defineBlock(let block, _, _), .defineSession(let block, _, _, _): changed.note([block])
                        default: break
                        }
                    }
                    rest.append(e)
                case .snapshotRestored:
                    membershipChanged = true
                    changed.noteAll()
                    rest.append(e)
                default: rest.append(e)
                }
            }
            if wrote { disk.kick() }
            if membershipChanged { membership.update(c.cluster) }
            countEvents(rest, in: c)
            let view = c.view
            published.withLock { $0 = view }
            return rest
        }
    }

    /// Counts what metrics need from this step, under the core's lock: the previous holder of a
    /// block is only known from the lease history right here.
    private func countEvents(_ effects: [CoreEffect], in c: ConsensusCore) {
        guard let metrics else { return }
        metrics.observeLeader(c.raft.leader?.rawValue, term: c.raft.term)
        for e in effects {
            switch e {
            case .applied(let entry, accepted: true):
                if case .command(.lease(let change)) = entry.body {
                    let previous = change.fromEpoch == 0 ? nil : c.cluster.blocks[change.block]?.history[change.fromEpoch]
                    metrics.leaseChanged(block: change.block, holder: change.holder.rawValue, previous: previous?.rawValue)
                }
                if case .command(.evict) = entry.body { metrics.evictionApplied() }
            case .roleChanged(let role, let term): metrics.roleChanged(role, term: term)
            case .takeoverStarted: metrics.takeoverStarted()
            default: break
            }
        }
    }

    private func perform(_ e: CoreEffect) {
        switch e {
        case .send(let to, let m):
            if case .raft(let r) = m, case .installSnapshot(let s) = r.body {
                sendSnapshot(r, s, to: to)
                return
            }
            if case .raft(let r) = m, case .appendEntries = r.body {
                // Entries that carry long lists of records would not fit one frame together.
                for part in ConsensusWire.appendParts(r, entryBytes: entryBytes.bytes, maxBytes: snapshotChunkBytes) {
                    outboxes.withLock { $0[to] }?.post(ConsensusWire.encode(.raft(part), entryBytes: entryBytes.bytes, stateBytes: stateBytes.bytes))
                }
                return
            }
            let bytes = ConsensusWire.encode(m, entryBytes: entryBytes.bytes, stateBytes: stateBytes.bytes)
            outboxes.withLock { $0[to] }?.post(bytes)
        case .outcome(let o):
            let ws = waiters.withLock { $0.byRequest.removeValue(forKey: o.requestID) }
            for w in ws?.values ?? [:].values { w.continuation.resume(returning: o) }
        case .roleChanged(let role, let term):
            logger.notice("Raft 角色变化 / raft role changed", metadata: ["raft.role": "\(role.rawValue)", "raft.term": "\(term)"])
        case .applied(let entry, let accepted):
            if accepted, case .command(.evict(let n)) = entry.body {
                logger.notice("驱逐已提交 / eviction committed", metadata: ["raft.evicted": "\(n)"])
                evictionSink.yield(n.rawValue)
            }
            if accepted, case .command(.closeBlock(let c)) = entry.body {
                logger.info("号源时段已关闭并归档 / session closed and archived", metadata: [
                    "lease.block": "\(c.block)", "lease.epoch": "\(c.fromEpoch)", "lease.collected": "\(c.records.count)"])
            }
            if accepted, case .command(.lease(let c)) = entry.body {
                logger.info("租约变更 / lease changed", metadata: [
                    "lease.block": "\(c.block)", "lease.epoch": "\(c.toEpoch)", "lease.holder": "\(c.holder)", "lease.collected": "\(c.collected.count)"])
            }
        case .takeoverStarted(let block, let epoch):
            logger.info("开始接管租约 / lease takeover started", metadata: ["lease.block": "\(block)", "lease.epoch": "\(epoch)"])
        case .snapshotRestored, .persistRaft, .persistBooking:
            break
        }
    }

    /// Sends a snapshot in chunks that each fit a mesh frame. Raft asks for it again on every
    /// append the follower refuses while it is still on its way; the same snapshot is not sent to
    /// the same peer again until the first transfer had time to arrive.
    private func sendSnapshot(_ r: ClusterRaftMessage, _ s: Snapshot<ClusterState>, to peer: NodeID) {
        let now = nowMs()
        let state = stateBytes.bytes(s)
        let allowance = 3_000 + 1_000 * UInt64((state.count + snapshotChunkBytes - 1) / snapshotChunkBytes)
        let due = snapshotsSent.withLock { sent -> Bool in
            if let last = sent[peer], last.index == s.lastIndex, now < last.atMs + allowance { return false }
            sent[peer] = (s.lastIndex, now)
            return true
        }
        guard due, let box = outboxes.withLock({ $0[peer] }) else { return }
        let chunks = ConsensusWire.snapshotChunks(r, state: state, chunkBytes: snapshotChunkBytes)
        logger.info("向落后的节点发送快照 / sending a snapshot to a lagging peer", metadata: [
            "mesh.peer": "\(peer)", "raft.snapshot_index": "\(s.lastIndex)", "raft.snapshot_bytes": "\(state.count)", "raft.chunks": "\(chunks.count)"])
        for c in chunks { box.post(c) }
    }

    // MARK: Inputs from the node

    /// A message from `peer`'s consensus link.
    func received(_ bytes: [UInt8], from peer: String) {
        let m: ConsensusMessage
        do {
            switch try ConsensusWire.decodeInbound(bytes) {
            case .message(let whole): m = whole
            case .snapshotChunk(let chunk):
                // Decoding a whole state takes long: it happens here, on the link's task, not under the core's lock.
                guard chunk.from == NodeID(peer), let whole = snapshotAssembly.withLock({ $0.add(chunk) }) else { return }
                m = .raft(try ConsensusWire.installSnapshot(whole))
            }
        } catch {
            logger.warning("无法解码共识消息，已丢弃 / undecodable consensus message dropped", metadata: ["mesh.peer": "\(peer)", "raft.error": "\(error)"])
            return
        }
        let now = nowMs()
        step { $0.receive(m, from: NodeID(peer), nowMs: now) }
    }

    /// Books through the core and waits for the outcome; nil if none came within `timeout`
    /// (the client retries with the same request id; a retry never books twice).
    func book(_ q: BookingRequest, quota: QuotaTag? = nil, timeout: Duration) async -> BookingOutcome? {
        await outcome(of: q.id, timeout: timeout) { core in
            if let quota { return core.request(q, quota: quota) }
            return core.request(q)
        }
    }

    /// Records a strike against a patient in their quota bucket; nil if no outcome came in time.
    func strike(_ strike: Strike, patient: String, id: String, timeout: Duration) async -> BookingOutcome? {
        await outcome(of: ConsensusCore.strikeRequestID(id), timeout: timeout) { $0.strike(strike, patient: patient, id: id) }
    }

    /// Starts a request with `start` and waits for the outcome of request `id`. The tick thread
    /// answers nil once `timeout` passed: no timer task per request.
    private func outcome(of id: String, timeout: Duration, start: @escaping (inout ConsensusCore) -> [CoreEffect]) async -> BookingOutcome? {
        let deadline = nowMs() + UInt64(max(0, NodeMetrics.nanoseconds(timeout))) / 1_000_000
        return await withCheckedContinuation { (c: CheckedContinuation<BookingOutcome?, Never>) in
            guard waiters.withLock({ $0.add(c, for: id, deadlineMs: deadline) }) else { c.resume(returning: nil); return }
            step(start)
        }
    }

    /// On the leader: starts closing at most `limit` of `blocks` that are still defined.
    func close(_ blocks: [BlockID], atMost limit: Int) {
        step { core in
            let defined = core.cluster.blocks
            let open = blocks.filter { defined[$0] != nil }.prefix(limit)
            if !open.isEmpty { core.close(Array(open)) }
            return []
        }
    }

    /// On the leader: trims the quota buckets for today's date (`QuotaPolicy.trim`), sessions
    /// staying open `openDaysBack` days after their date.
    func trimQuotaBuckets(openDaysBack: Int) {
        let today = ShanghaiTime.unixDay(wallMs: clock.wallMillis())
        step { core in
            core.trimQuota(core.options.booking.quotaPolicy.trim(today: today, openDaysBack: openDaysBack))
            return []
        }
    }

    /// A clean shutdown: no more liveness renewals; hands leadership on if it leads.
    func resign() { step { $0.resign() } }

    /// Proposes (or passes on to the leader) a definition command.
    func propose(_ command: ClusterCommand) {
        step { $0.propose(command).1 }
    }

    /// Proposes a command on this node, which must lead (the admin's membership entries).
    func proposeHere(_ command: ClusterCommand) -> Result<LogIndex, ProposeError> {
        var result: Result<LogIndex, ProposeError> = .failure(.notLeader(leader: nil))
        step { core in
            guard core.isLeader else {
                result = .failure(.notLeader(leader: core.raft.leader))
                return []
            }
            let (r, effects) = core.propose(command)
            result = r
            return effects
        }
        return result
    }

    /// A single-server change of the Raft configuration (add a learner, promote it); leader only.
    func proposeConfigChange(_ change: ConfigChange) -> Result<LogIndex, ProposeError> {
        var result: Result<LogIndex, ProposeError> = .failure(.notLeader(leader: nil))
        step { core in
            let (r, effects) = core.proposeConfigChange(change)
            result = r
            return effects
        }
        return result
    }

    /// A consensus link for a member that joined after this node started; false if it has one.
    func addPeer(_ peer: String) -> Bool {
        let id = NodeID(peer)
        guard !isStopped, id != self.id else { return false }
        return outboxes.withLock { boxes in
            guard boxes[id] == nil else { return false }
            let box = LinkMailbox(capacity: Self.linkCapacity)
            boxes[id] = box
            untaken.withLock { $0[id] = box }
            return true
        }
    }
}

/// Encoded log entries by index. An entry (index, term) never changes, and a follower that lags
/// is sent the same entries again; a lease change of a quota bucket carries every record its
/// takeover collected, and encoding it is the costly part of a send.
final class EncodedEntries: Sendable {
    private struct Cache {
        var byIndex: [LogIndex: LogEntry<[UInt8]>] = [:]
        var bytes = 0
        /// The newest index asked for: what is kept is counted down from it.
        var newest: LogIndex = 0
    }
    private let cache = Mutex(Cache())
    /// Entries kept below the newest one asked for.
    static let keep: LogIndex = 1 << 16
    /// Bytes kept, at most: a few entries may each carry megabytes of records.
    static let budget = 64 << 20

    func bytes(_ e: LogEntry<ClusterCommand>) -> LogEntry<[UInt8]> {
        guard case .command = e.body else { return ConsensusWire.bytes(e) }
        if let hit = cache.withLock({ $0.byIndex[e.index] }), hit.term == e.term { return hit }
        let encoded = ConsensusWire.bytes(e)
        cache.withLock { c in
            c.newest = max(c.newest, e.index)
            let floor = c.newest > Self.keep ? c.newest - Self.keep : 0
            // An entry a lagging follower needs, far below the newest, is not kept: keeping it would
            // only be undone by the next pruning.
            guard e.index > floor else { return }
            if let old = c.byIndex.updateValue(encoded, forKey: e.index) { c.bytes -= Self.size(old) }
            c.bytes += Self.size(encoded)
            // Pruned from the newest index, so at most `keep` entries stay: one pruning per `keep`
            // entries cached, never one per call.
            if c.byIndex.count > 2 * Int(Self.keep) {
                c.byIndex = c.byIndex.filter { $0.key > floor }
                c.bytes = c.byIndex.values.reduce(0) { $0 + Self.size($1) }
            }
            if c.bytes > Self.budget {
                for i in c.byIndex.keys.sorted() where c.bytes > Self.budget / 2 {
                    if let dropped = c.byIndex.removeValue(forKey: i) { c.bytes -= Self.size(dropped) }
                }
            }
        }
        return encoded
    }

    private static func size(_ e: LogEntry<[UInt8]>) -> Int {
        if case .command(let c) = e.body { return c.count }
        return 0
    }
}

/// The encoded state of the newest snapshot: it is persisted once and sent to each follower
/// that lags behind it, and a state with long quota buckets is costly to encode.
final class EncodedState: Sendable {
    private let newest = Mutex<(index: LogIndex, term: Term, bytes: [UInt8])?>(nil)

    func bytes(_ s: Snapshot<ClusterState>) -> [UInt8] {
        if let hit = newest.withLock({ $0 }), hit.index == s.lastIndex, hit.term == s.lastTerm { return hit.bytes }
        let encoded = ConsensusWire.stateBytes(s)
        newest.withLock { n in
            if (n?.index ?? 0) <= s.lastIndex { n = (s.lastIndex, s.lastTerm, encoded) }
        }
        return encoded
    }
}

/// The durable process incarnation: grows on every start, never below seconds since 2025, so
/// even a node that lost this file cannot reuse one.
enum Incarnation {
    static func bump(directory: String) throws -> UInt64 {
        let path = directory + "/incarnation"
        let old = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        let floor = UInt64(max(0, Date().timeIntervalSince1970 - 1_735_689_600))
        let next = max(old + 1, floor)
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data("\(next)\n".utf8)) else {
            throw NodeError(.startup, zh: "无法写入 \(tmp)。", en: "cannot write \(tmp).")
        }
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else { throw NodeError(.startup, zh: "无法写入 \(path)。", en: "cannot write \(path).") }
        let d = open(directory, O_RDONLY)
        if d >= 0 { _ = fsync(d); close(d) }
        return next
    }
}

/// Writes for the consensus logs, made durable on a thread of their own: everything queued is
/// encoded there (`encode`: a snapshot's state takes long, and the core's lock is not held for
/// it), written with one fsync per log, then `done` reports the highest sequence numbers written.
final class DurableQueue: Sendable {
    private struct State {
        var raft: [ClusterPersist] = []
        var bookings: [BookingWrite] = []
        var stop = false
    }
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let logs: Mutex<(FileRaftLog, FileBookingLog)>
    private let directory: String
    private let encode: @Sendable (ClusterPersist) -> BytePersist

    init(raftLog: sending FileRaftLog, bookingLog: sending FileBookingLog, directory: String,
         encode: @escaping @Sendable (ClusterPersist) -> BytePersist) {
        logs = Mutex((raftLog, bookingLog))
        self.directory = directory
        self.encode = encode
    }

    func enqueue(raft p: ClusterPersist) { state.withLock { $0.raft.append(p) } }
    func enqueue(booking w: BookingWrite) { state.withLock { $0.bookings.append(w) } }
    func kick() { wake.signal() }
    func stop() {
        state.withLock { $0.stop = true }
        wake.signal()
    }

    /// A failed write (a full disk) is retried every second until it succeeds or the node stops:
    /// `failed` on each failure, `recovered` before `done` once it went through. Before a retry
    /// the failed log is put back exactly as it was before the batch (whatever part of the batch
    /// reached it, even whole records whose fsync failed, is cut off) and reopened, so nothing is
    /// ever appended twice (a Raft persist applied twice would duplicate entries). A log that a
    /// completed rewrite replaced already holds the batch; a log written already is not written again.
    /// `timed` gets how long each log's successful group commit (its writes and one fsync) took.
    func start(done: @escaping @Sendable (UInt64, UInt64) -> Void, failed: @escaping @Sendable (any Error) -> Void,
               recovered: @escaping @Sendable () -> Void, timed: @escaping @Sendable (_ log: String, _ took: Duration) -> Void) {
        let thread = Thread { [self] in
            let clock = ContinuousClock()
            while true {
                wake.wait()
                let (queued, bookingsQueued, stop) = state.withLock { s in
                    defer { s.raft = []; s.bookings = [] }
                    return (s.raft, s.bookings, s.stop)
                }
                if stop { return }
                var raft = queued.map(encode), bookings = bookingsQueued
                if raft.isEmpty && bookings.isEmpty { continue }
                let raftSeq = raft.last?.seq ?? 0, bookingSeq = bookings.last?.seq ?? 0
                let raftPath = directory + "/raft.log", bookingsPath = directory + "/bookings.log"
                let before = (raft: Self.fileID(raftPath), bookings: Self.fileID(bookingsPath))
                var failures = 0
                var took: (raft: Duration?, bookings: Duration?)
                while true {
                    do {
                        if failures > 0 {
                            if !raft.isEmpty {
                                if try Self.restore(raftPath, to: before.raft) { raft = [] }
                                try reopen(raft: true)
                            }
                            if !bookings.isEmpty {
                                if try Self.restore(bookingsPath, to: before.bookings) { bookings = [] }
                                try reopen(raft: false)
                            }
                        }
                        try logs.withLock { l in
                            if !raft.isEmpty {
                                let start = clock.now
                                try l.0.write(raft)
                                took.raft = start.duration(to: clock.now)
                                raft = []
                            }
                            if !bookings.isEmpty {
                                let start = clock.now
                                try l.1.write(bookings)
                                took.bookings = start.duration(to: clock.now)
                                bookings = []
                            }
                        }
                        break
                    } catch {
                        failures += 1
                        failed(error)
                        for _ in 0..<10 where !state.withLock({ $0.stop }) { usleep(100_000) }
                        if state.withLock({ $0.stop }) { return }
                    }
                }
                if failures > 0 { recovered() }
                if let t = took.raft { timed("raft", t) }
                if let t = took.bookings { timed("bookings", t) }
                done(raftSeq, bookingSeq)
            }
        }
        thread.name = "consensus-disk"
        thread.start()
    }

    /// A file's inode and size, if it exists.
    static func fileID(_ path: String) -> (inode: UInt64, size: Int64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_ino), Int64(st.st_size))
    }

    /// Cuts `path` back to its size before the batch; true if a rewrite replaced the file
    /// meanwhile (a new inode: it already holds the whole state, the batch included).
    static func restore(_ path: String, to before: (inode: UInt64, size: Int64)?) throws -> Bool {
        guard let now = fileID(path) else { return false }
        if let before, now.inode != before.inode { return true }
        let size = before?.size ?? 0
        guard now.size > size else { return false }
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw NodeError(.storage, zh: "无法打开 \(path) 以截回：\(String(cString: strerror(errno)))", en: "cannot open \(path) to cut it back: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0, fsync(fd) == 0 else {
            throw NodeError(.storage, zh: "无法把 \(path) 截回 \(size) 字节：\(String(cString: strerror(errno)))", en: "cannot cut \(path) back to \(size) bytes: \(String(cString: strerror(errno)))")
        }
        return false
    }

    /// Reopens a log (after `restore`; opening also cuts a torn last record).
    private func reopen(raft: Bool) throws {
        let directory = self.directory
        try logs.withLock { l in
            if raft { l.0 = try FileRaftLog(directory: directory) } else { l.1 = try FileBookingLog(directory: directory) }
        }
    }
}

/// The handshake check, from the replicated membership once it names a node, else from the
/// config file (bootstrap). An evicted node is refused whatever the config says.
final class LiveMembership: MembershipView, Sendable {
    private let configured: StaticMembership
    private let members = Mutex<[String: MemberInfo]>([:])

    init(configured: StaticMembership) { self.configured = configured }

    func update(_ state: ClusterState) {
        let m = Dictionary(uniqueKeysWithValues: state.members.map { ($0.key.rawValue, $0.value) })
        members.withLock { $0 = m }
    }

    func admits(nodeID: String, serial: String) -> Bool {
        guard let m = members.withLock({ $0[nodeID] }) else { return configured.admits(nodeID: nodeID, serial: serial) }
        if m.evicted { return false }
        // "NEW,OLD" while a certificate rotation is under way (`MemberSerials`): both are accepted.
        if let presented = SerialFormat.normalise(serial),
           MemberSerials.list(m.certificateSerial).contains(where: { SerialFormat.normalise($0) == presented }) { return true }
        // During a rotation the config may list the next serial before membership records it.
        return configured.admits(nodeID: nodeID, serial: serial)
    }

    func isEvicted(_ nodeID: String) -> Bool { members.withLock { $0[nodeID]?.evicted ?? false } }
}

extension ConsensusShell: BookingConsensus {
    func lookup<T>(_ body: (BookingLookup) -> T) -> T { body(BookingLookup(view)) }
    func takeChangedBlocks() -> ChangedBlocks.Taken { changed.take() }
}
