// Deterministic whole-cluster simulator: N nodes run the real RaftNode, ClusterState, BookingNode
// and LeaseManager, and a replica of the replicated records each (`Replication.swift`), in one
// thread, under a virtual clock, a faulty network, pauses, crashes and lost un-fsynced writes.
// Every random choice comes from SplitMix64 generators seeded by the run's seed.

import Consensus
import ReplicatedCore

public enum BugSwitch: String, Sendable, CaseIterable {
    case voteTwice = "vote-twice"
    case promiseWithoutRecording = "promise-without-recording"
    case ackBeforeQuorum = "ack-before-quorum"
    case bookOverBooking = "book-over-booking"
    case quotaIgnoresPending = "quota-ignores-pending"
    case commitEarlierTerm = "commit-earlier-term"
    case bookAfterRestart = "book-after-restart"
    case acceptReplyBeforeDurable = "accept-reply-before-durable"
    /// The CRDT merge: on equal HLC stamps the change merged last wins, whichever node wrote it.
    case mergeTieIgnoresNode = "merge-tie-ignores-node"
    /// A quota bucket's trim drops reservations that the windows of visits still bookable count.
    case trimDropsCounted = "trim-drops-counted"
}

public struct SimOptions: Sendable {
    public var nodes = 5
    public var initialVoters = 3
    /// Faults are injected in [0, faultMs); then the cluster is healed and must recover.
    public var faultMs: UInt64 = 12_000
    /// After faults stop, a leader and a holder for every block must exist within this.
    public var livenessDeadlineMs: UInt64 = 8_000
    public var quietMs: UInt64 = 10_000
    public var blocks = 8
    public var slotsPerBlock = 10
    public var maxDrift = 0.02
    public var faults = true
    /// Drawn per seed unless set: most requests want any free slot of two sessions (a rush).
    public var hotspot: Bool?
    /// Drawn per seed unless set: the Raft figure-8 schedule runs once (`Faults.swift`).
    public var figure8: Bool?
    /// A client that got no answer within this retries through another node.
    public var clientTimeoutMs: UInt64 = 1_000
    /// In the quiet, every block acknowledges a fresh booking, and retried requests get an
    /// answer that does not say to retry, within this.
    public var quietAnswerMs: UInt64 = 1_500
    public var tickMs: UInt64 = 10
    /// Only honoured in builds with CLINICMESH_BUG_SWITCHES.
    public var bug: BugSwitch?
    public init() {}
}

public struct SimStats: Sendable, Codable {
    public var simulatedMs: UInt64 = 0
    public var events = 0
    public var elections = 0
    public var takeovers = 0
    /// Takeovers of quota buckets that trimmed them, and the acknowledged records they dropped.
    public var quotaTrims = 0
    public var recordsTrimmed = 0
    public var pauses = 0
    public var pausesLongerThanLease = 0
    public var crashes = 0
    public var partitions = 0
    public var voterChanges = 0
    public var snapshotsInstalled = 0
    public var bookingsAcked = 0
    public var bookingsRefused = 0
    public var lostUnsyncedWrites = 0
    /// Crashes right after a protocol step (`ProtocolPoint`).
    public var protocolCrashes = 0
    public var diskStalls = 0
    /// Runs of the figure-8 schedule that got as far as crashing the re-elected first leader.
    public var figure8Histories = 0
    public var hotspot = false
    /// Client retries after no answer or a retryable one.
    public var clientRetries = 0
    public var electionMs: [UInt64] = []
    public var failoverMs: [UInt64] = []
    public var takeoverMs: [UInt64] = []
    /// Replicated records (`Replication.swift`).
    public var replicaWrites = 0
    public var replicaBatches = 0
    public var reviewItems = 0
}

public struct SimFailure: Error, Sendable, Codable, CustomStringConvertible {
    public var rule: String
    public var detail: String
    public var atMs: UInt64
    public var description: String { "\(rule) at \(atMs) ms: \(detail)" }
}

public struct SeedResult: Sendable {
    public var seed: UInt64
    public var failure: SimFailure?
    public var traceHash: UInt64
    public var stats: SimStats
}

typealias Cmd = ClusterCommand

enum Payload {
    case peer(ConsensusMessage)
    case client(BookingRequest)
}

/// The per-person quotas the simulated quota clients book under (the product's defaults).
let simQuotaPolicy = QuotaPolicy.standard

enum EventKind {
    case tick(Int, life: Int)
    case deliver(to: Int, from: Int, Payload)
    case fsync(Int, life: Int)
    case client
    case fault(Fault)
    case checkpoint
    case membership
    /// The client's wait for an answer to its `attempt`-th try of a request.
    case clientTimeout(String, attempt: Int)
    case clientRetry(String)
    /// Faults stopped `livenessDeadlineMs` ago: the liveness check, then probes and retries.
    case quiet
    case quietDeadline
    case replicaWrite
    case antiEntropy(Int, life: Int)
    case replicate(to: Int, from: Int, ReplicationMessage)
}

enum Fault {
    case isolate([Int], untilMs: UInt64)
    case heal([Int])
    case oneWay(from: Int, untilMs: UInt64)
    case healOneWay(Int)
    case flap(Int, remaining: Int)
    case pause(Int, ms: UInt64)
    case resume(Int)
    case crash(Int, downMs: UInt64)
    case restart(Int)
    case healAll
    /// Crash the next node (this one, or any) that takes this protocol step, down for `downMs`.
    case arm(ProtocolPoint, node: Int?, downMs: UInt64)
    case crashAt(Int, downMs: UInt64, ProtocolPoint)
    /// The node's fsyncs wait this long (a disk that stalls).
    case diskStall(Int, ms: UInt64)
    case figure8(Figure8Step)
}

struct Event {
    var time: UInt64 // microseconds of global virtual time
    var seq: UInt64
    var kind: EventKind
}

/// Min-heap on (time, seq): seq makes ties deterministic.
struct EventQueue {
    private var heap: [Event] = []
    var isEmpty: Bool { heap.isEmpty }
    private static func less(_ a: Event, _ b: Event) -> Bool { a.time != b.time ? a.time < b.time : a.seq < b.seq }
    mutating func push(_ e: Event) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if Self.less(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
        }
    }
    mutating func pop() -> Event? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, Self.less(heap[l], heap[m]) { m = l }
            if r < heap.count, Self.less(heap[r], heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m); i = m
        }
        return top
    }
}

enum PendingWrite {
    case raft(ClusterPersist)
    case booking(BookingWrite)
}

final class SimNode {
    let idx: Int
    let id: NodeID
    let drift: Double
    let clockOffsetUs: UInt64
    var up = true
    var paused = false
    var deferred: [EventKind] = []
    /// Bumped on crash so events scheduled for the old process are ignored.
    var life = 0
    var incarnation: UInt64 = 1
    // Disk: only what an fsync completed.
    var diskRaft = DurableRaftState<ClusterCommand, ClusterState>()
    var diskBooking = BookingDurableState()
    var pending: [PendingWrite] = []
    var fsyncScheduled = false
    var diskStallUntilUs: UInt64 = 0
    // Process memory: the same core a real node runs.
    var core: ConsensusCore
    var campaignSinceUs: UInt64?
    /// Ticks over the whole run, every process of this node: its clock allows no more.
    var ticked: UInt64 = 0
    /// Replicated records: durable at every commit, so a crash loses none of it.
    var replica: MemoryReplica
    let replicaClockOffsetMs: Int64

    var raft: ClusterRaft { core.raft }
    var cluster: ClusterState { core.cluster }
    var booking: BookingNode { core.booking }

    init(idx: Int, id: NodeID, drift: Double, offset: UInt64, core: ConsensusCore, replica: MemoryReplica, replicaClockOffsetMs: Int64) {
        self.idx = idx; self.id = id; self.drift = drift; self.clockOffsetUs = offset
        self.core = core
        self.replica = replica
        self.replicaClockOffsetMs = replicaClockOffsetMs
    }

    /// This node's monotonic clock in ms: drifts from true time, keeps running while paused.
    func localMs(_ globalUs: UInt64) -> UInt64 { UInt64((Double(globalUs) * drift + Double(clockOffsetUs)) / 1000) }
}

public final class ClusterSimulation {
    let seed: UInt64
    let opt: SimOptions
    var rng: SplitMix64
    /// The replicas' own random choices (`Replication.swift`).
    var replicationRng: SplitMix64
    var queue = EventQueue()
    var now: UInt64 = 0
    var seqNo: UInt64 = 0
    var nodes: [SimNode] = []
    var index: [NodeID: Int] = [:]
    var blockedLink: [[Bool]]
    var flapping: [Bool]
    var faultsActive = true
    var trace = FNV1a64()
    var stats = SimStats()
    var failure: SimFailure?
    let bootstrap: ClusterConfig
    var setupDone = false
    var requestCounter = 0
    var acked: [String: Booking] = [:]
    /// Drawn per seed (`SimOptions.hotspot`, `.figure8`).
    var hotspot = false
    var figure8Planned = false
    var livenessAtUs: UInt64 = 0
    // Clients (`Clients.swift`).
    var calls: [String: ClientCall] = [:]
    var finalOutcome: [String: BookingOutcome] = [:]
    /// Requests answered `released` after their first outcome was a booking: that booking must
    /// have been released validly (checked at the end, when every release has had its chance).
    var releasedClaims: [(id: String, booking: Booking, node: Int, atUs: UInt64)] = []
    /// Quiet-phase probes (request id -> block) and retries of requests with a final outcome.
    var probes: [String: BlockID] = [:]
    var quietRetries: [String] = []
    var quietAnswers: [String: [BookingOutcome]] = [:]
    /// When each booking record (id@epoch) was first written anywhere.
    var firstWrittenUs: [String: UInt64] = [:]
    // Faults at protocol points and the figure-8 schedule (`Faults.swift`).
    var armed: [ArmedCrash] = []
    var figure8 = Figure8State.idle
    var figure8Cut: Set<Int> = []
    /// Recent client requests, re-sent now and then through another node (retries).
    var recentRequests: [BookingRequest] = []
    /// Requests made under the quotas: request id -> (patient, what the booking is for).
    var quotaRequests: [String: (patient: String, tag: QuotaTag)] = [:]
    // Checker memory.
    var leaderOfTerm: [Term: Int] = [:]
    var committed: [LogIndex: LogEntry<ClusterCommand>] = [:]
    var maxCommitted: LogIndex = 0
    var takeoverStart: [String: UInt64] = [:]
    var takeoverSeen: Set<String> = []
    var failoverStartUs: UInt64?
    var lastCheckpointLogMatch: UInt64 = 0
    /// The newest cluster state any node has applied so far, and whose it was: the history the
    /// safety checks judge by. Committed history never shrinks, but just after restarts every
    /// node may be behind it for a while (three nodes: two restarted, one down), which loses
    /// nothing; `checkConvergence` fails a run whose nodes never catch up again.
    var newestApplied: (state: ClusterState, node: Int)?
    var committedAtLiveness: LogIndex = 0
    var commitTerm: [LogIndex: Term] = [:]
    let coreOptions: ConsensusCoreOptions
    /// Sessions closed in this run (`BlockClosure`): when the leader is asked, which blocks (of
    /// those no rush uses), and the closures committed. From their own generator, so a seed's
    /// other choices are the same as before closing existed.
    var closeAtUs: UInt64?
    var closeTargets: [BlockID] = []
    var closures: [BlockID: BlockClosure] = [:]
    /// Quota-bucket trims in this run (half the seeds, from their own generator): the quota
    /// clients' visit dates move on with time (`simDayUs` a day) and the leader trims the buckets
    /// behind them, as a real one does each day. The latest trim asked for, if any.
    var trims = false
    var trimAsked: QuotaTrim?
    var trimsSeen: [BlockID: QuotaTrim] = [:]
    var trimmedCount: [BlockID: Int] = [:]
    static let simDayUs: UInt64 = 50_000
    /// Visit dates this many days behind today stay bookable (sessions open after their date,
    /// and the policy's slack): retries of requests this old still find what they first found.
    static let trimSlackDays = 30

    public init(seed: UInt64, options: SimOptions = .init()) {
        self.seed = seed
        self.opt = options
        self.rng = SplitMix64(seed: seed)
        self.replicationRng = SplitMix64(seed: seed ^ 0x7265_706C_6963_6173)
        var trimming = SplitMix64(seed: seed ^ 0x7472_696D)
        trims = (trimming.chance(0.5) || options.bug == .trimDropsCounted)
        var closing = SplitMix64(seed: seed ^ 0x636C_6F73_6564)
        if options.blocks > 2, closing.chance(0.5) {
            closeAtUs = options.faultMs * (300 + closing.below(500))
            let first = 2 + Int(closing.below(UInt64(options.blocks - 2)))
            closeTargets = Array(Set([first, 2 + Int(closing.below(UInt64(options.blocks - 2)))])).sorted().map { "b\($0)" }
        }
        self.blockedLink = Array(repeating: Array(repeating: false, count: options.nodes), count: options.nodes)
        self.flapping = Array(repeating: false, count: options.nodes)
        let ids = (1...options.nodes).map { NodeID("n\($0)") }
        bootstrap = ClusterConfig(voters: Array(ids.prefix(options.initialVoters)), learners: Array(ids.dropFirst(options.initialVoters)))
        var ro = RaftConfig()
        var bo = BookingOptions()
        var mergeRules = MergeRules()
        bo.retryTicks = 20 // re-send unanswered accepts every 200 ms
        #if CLINICMESH_BUG_SWITCHES
        switch options.bug {
        case .voteTwice: ro.bugVoteTwice = true
        case .promiseWithoutRecording: bo.bugPromiseWithoutRecording = true
        case .ackBeforeQuorum: bo.bugAckBeforeQuorum = true
        case .bookOverBooking: bo.bugBookOverBooking = true
        case .quotaIgnoresPending: bo.bugQuotaIgnoresPending = true
        case .commitEarlierTerm: ro.bugCommitEarlierTerm = true
        case .bookAfterRestart: bo.bugBookAfterRestart = true
        case .acceptReplyBeforeDurable: bo.bugAcceptReplyBeforeDurable = true
        case .mergeTieIgnoresNode: mergeRules.bugTieBreakIgnoresNode = true
        case .trimDropsCounted: bo.bugTrimDropsCounted = true
        case nil: break
        }
        #endif
        ro.seed = 0
        var co = ConsensusCoreOptions()
        co.raft = ro
        co.booking = bo
        co.quotaBuckets = 4
        co.reofferDelayMs = 100...2_000 // short enough that released slots are booked again within a run
        coreOptions = co
        for (i, id) in ids.enumerated() {
            index[id] = i
            let drift = 1.0 + (Double(rng.below(2001)) / 1000.0 - 1.0) * options.maxDrift
            let offset = rng.below(1_000_000_000)
            let replica = MemoryReplica(origin: OriginID(node: id.rawValue, incarnation: 1), tables: simTables, rules: mergeRules)
            let n = SimNode(idx: i, id: id, drift: drift, offset: offset, core: makeCore(i, id: id, incarnation: 1),
                            replica: replica, replicaClockOffsetMs: replicationRng.chance(0.6) ? 0 : Int64(1 + replicationRng.below(300)))
            nodes.append(n)
        }
        hotspot = options.hotspot ?? rng.chance(0.35)
        figure8Planned = options.figure8 ?? (options.faults && rng.chance(0.3))
        stats.hotspot = hotspot
    }

    func makeCore(_ i: Int, id: NodeID, incarnation: UInt64, raft: DurableRaftState<ClusterCommand, ClusterState> = .init(), booking: BookingDurableState = .init()) -> ConsensusCore {
        var o = coreOptions
        o.raft.seed = rng.next()
        o.seed = rng.next()
        o.renewPhase = UInt64(i)
        return ConsensusCore(id: id, incarnation: incarnation, bootstrap: bootstrap, options: o, restoringRaft: raft, restoringBooking: booking)
    }

    func schedule(_ atUs: UInt64, _ k: EventKind) {
        seqNo += 1
        queue.push(Event(time: atUs, seq: seqNo, kind: k))
    }

    func fail(_ rule: String, _ detail: String) {
        if failure == nil { failure = SimFailure(rule: rule, detail: detail, atMs: now / 1000) }
    }

    // MARK: Run

    public func run() -> SeedResult {
        for n in nodes { schedule(UInt64(rng.below(opt.tickMs * 1000)), .tick(n.idx, life: n.life)) }
        schedule(200_000, .client)
        schedule(100_000, .checkpoint)
        schedule(3_000_000 + rng.below(2_000_000), .membership)
        if opt.faults { planFaults() }
        startReplication()
        let faultEndUs = opt.faultMs * 1000
        schedule(faultEndUs, .fault(.healAll))
        livenessAtUs = faultEndUs + opt.livenessDeadlineMs * 1000
        // The quiet lasts at least until the probes' deadline.
        let endUs = faultEndUs + max(opt.quietMs, opt.livenessDeadlineMs + opt.quietAnswerMs) * 1000
        schedule(livenessAtUs, .quiet)
        if figure8Planned { schedule(2_500_000 + rng.below(3_500_000), .fault(.figure8(.start))) }
        while failure == nil, let e = queue.pop() {
            if e.time > endUs { break }
            now = e.time
            stats.events += 1
            process(e.kind)
        }
        now = endUs
        if failure == nil { checkSafety(full: true) }
        if failure == nil { checkConvergence() }
        if failure == nil { checkTickRates() }
        if failure == nil { checkReleasedClaims() }
        if failure == nil { checkReplicasAgree() }
        if failure == nil { checkReplicatedTablesConverge() }
        stats.simulatedMs = now / 1000
        trace.add(UInt64(acked.count))
        return SeedResult(seed: seed, failure: failure, traceHash: trace.value, stats: stats)
    }

    func planFaults() {
        var t: UInt64 = 1_000_000
        let end = opt.faultMs * 1000
        while true {
            t += 300_000 + rng.below(1_200_000)
            guard t < end else { break }
            let n = Int(rng.below(UInt64(opt.nodes)))
            switch rng.below(6) {
            case 0:
                let size = 1 + Int(rng.below(2))
                var set: [Int] = [n]
                while set.count < size { let m = Int(rng.below(UInt64(opt.nodes))); if !set.contains(m) { set.append(m) } }
                schedule(t, .fault(.isolate(set.sorted(), untilMs: 0)))
                schedule(t + 500_000 + rng.below(3_500_000), .fault(.heal(set.sorted())))
            case 1:
                schedule(t, .fault(.oneWay(from: n, untilMs: 0)))
                schedule(t + 500_000 + rng.below(2_500_000), .fault(.healOneWay(n)))
            case 2:
                schedule(t, .fault(.flap(n, remaining: 6 + Int(rng.below(14)))))
            case 3:
                // Longer than the 2 s liveness timeout, so the node's leases are taken over meanwhile.
                schedule(t, .fault(.pause(n, ms: 2_500 + rng.below(2_500))))
            default:
                schedule(t, .fault(.crash(n, downMs: 200 + rng.below(3_800))))
            }
        }
        // Aimed faults, besides: crashes at protocol points, and disks that stall.
        t = 1_000_000
        while true {
            t += 500_000 + rng.below(1_500_000)
            guard t < end else { break }
            let n = Int(rng.below(UInt64(opt.nodes)))
            if rng.chance(0.2) {
                schedule(t, .fault(.diskStall(n, ms: 100 + rng.below(900))))
                continue
            }
            // Short downs too: a holder back within its old lease's lifetime must not book under
            // it (most often after losing its own proposal). A holder's steps: whichever holder.
            let point = ProtocolPoint.draw(&rng)
            let down = rng.chance(point == .holderWrite ? 0.8 : 0.5) ? 50 + rng.below(350) : 400 + rng.below(2_600)
            let anyNode = point == .holderWrite || point == .ack || rng.chance(0.5)
            schedule(t, .fault(.arm(point, node: anyNode ? nil : n, downMs: down)))
        }
    }

    // MARK: Events

    func hashEvent(_ code: UInt8, _ a: Int, _ b: Int = 0, _ c: UInt64 = 0) {
        trace.add(now)
        trace.add(code)
        trace.add(UInt64(a) << 32 | UInt64(b))
        trace.add(c)
    }

    func process(_ k: EventKind) {
        switch k {
        case .tick(let i, let life):
            let n = nodes[i]
            guard n.up, n.life == life else { return }
            if n.paused { n.deferred.append(k); return }
            hashEvent(1, i)
            n.ticked += 1
            tick(n)
            let interval = Double(opt.tickMs * 1000) / n.drift
            schedule(now + UInt64(interval), .tick(i, life: n.life))
        case .deliver(let to, let from, let p):
            let n = nodes[to]
            guard n.up else { return }
            if n.paused { n.deferred.append(k); return }
            deliver(n, from: from, p)
        case .fsync(let i, let life):
            let n = nodes[i]
            guard n.up, n.life == life else { return }
            if n.paused { n.deferred.append(k); return }
            if now < n.diskStallUntilUs { schedule(n.diskStallUntilUs, k); return }
            hashEvent(3, i, n.pending.count)
            fsync(n)
        case .client:
            // New requests stop in the quiet's last seconds: only probes and retries then.
            guard now < livenessAtUs else { return }
            clientRequest()
            schedule(now + (hotspot ? 15_000 + rng.below(45_000) : 20_000 + rng.below(60_000)), .client)
        case .fault(let f):
            applyFault(f)
        case .checkpoint:
            checkSafety(full: now >= lastCheckpointLogMatch + 2_000_000)
            figure8Deadline()
            schedule(now + 200_000, .checkpoint)
        case .membership:
            // Voter changes stop with the faults: each moves every block to a new epoch, which
            // would hide a block that no longer books in the quiet.
            guard faultsActive else { return }
            membershipChange()
            schedule(now + 3_000_000 + rng.below(3_000_000), .membership)
        case .clientTimeout(let id, let attempt):
            clientTimedOut(id, attempt: attempt)
        case .clientRetry(let id):
            retryClient(id)
        case .quiet:
            checkLiveness()
            committedAtLiveness = maxCommitted
            if failure == nil { startQuietChecks() }
        case .quietDeadline:
            checkQuietAnswers()
        case .replicaWrite:
            replicaWrite()
        case .antiEntropy(let i, let life):
            let n = nodes[i]
            guard n.up, n.life == life else { return }
            if n.paused { n.deferred.append(k); return }
            startAntiEntropy(n)
            schedule(now + 150_000 + replicationRng.below(200_000), .antiEntropy(i, life: n.life))
        case .replicate(let to, let from, let m):
            let n = nodes[to]
            guard n.up else { return }
            if n.paused { n.deferred.append(k); return }
            receiveReplication(n, from: from, m)
        }
    }

    func tick(_ n: SimNode) {
        if !setupDone, n.raft.role == .leader, n.raft.isReadyLeader { setup(n) }
        // The leader's shell asks again now and then until the sessions are closed, as a real one does.
        if let at = closeAtUs, now >= at, setupDone, n.raft.role == .leader, n.core.ticks % 50 == 0,
           closeTargets.contains(where: { n.cluster.blocks[$0] != nil }) {
            n.core.close(closeTargets)
        }
        if trims, setupDone, n.raft.role == .leader, n.core.ticks % 200 == 0 {
            let trim = simQuotaPolicy.trim(today: today, openDaysBack: Self.trimSlackDays - QuotaPolicy.trimSlackDays)
            trimAsked = QuotaTrim.latest(trimAsked, trim)
            n.core.trimQuota(trim)
        }
        // The shell learns of cut links late (about half a second on average), as a real one does.
        if rng.chance(0.02) { n.core.setUnreachable(Set(nodes.filter { blockedLink[n.idx][$0.idx] }.map(\.id))) }
        // Wall clock: the node's own (drifting) clock from a fixed date; policy only, never safety.
        handle(n, n.core.tick(nowMs: n.localMs(now), wallMs: 1_795_000_000_000 + Int64(n.localMs(now))))
    }

    /// The quota clients' first visit date now: day 0 unless this run trims.
    var today: Int { trims ? Int(now / Self.simDayUs) : 0 }

    /// The admin's first act: members and the doctors' sessions, proposed once there is a leader.
    func setup(_ leader: SimNode) {
        if leader.cluster.members.count == nodes.count && (0..<opt.blocks).allSatisfy({ leader.cluster.blocks["b\($0)"] != nil }) { setupDone = true; return }
        if leader.core.ticks % 20 != 0 { return }
        for n in nodes where leader.cluster.members[n.id] == nil {
            _ = propose(leader, .upsertMember(MemberInfo(node: n.id, address: "10.0.0.\(n.idx + 1):7400", department: "dept-\(n.idx + 1)", certificateSerial: "serial-\(n.idx + 1)")))
        }
        for b in 0..<opt.blocks where leader.cluster.blocks["b\(b)"] == nil {
            // One slot more than the workload uses: the quiet's probe books it.
            _ = propose(leader, .defineBlock("b\(b)", home: nodes[b % nodes.count].id, slots: opt.slotsPerBlock + 1))
        }
    }

    @discardableResult
    func propose(_ n: SimNode, _ c: Cmd) -> Bool {
        let (r, effects) = n.core.propose(c)
        handle(n, effects)
        if case .success = r { return true }
        return false
    }

    func deliver(_ n: SimNode, from: Int, _ p: Payload) {
        switch p {
        case .peer(let m):
            switch m {
            case .raft(let r): hashEvent(2, n.idx, from, r.term)
            case .lease(let e): hashEvent(4, n.idx, from, leaseCode(e.body))
            case .request(let q): hashEvent(5, n.idx, from, UInt64(q.slot))
            case .outcome(let o): hashEvent(11, n.idx, from, UInt64(o.requestID.utf8.count))
            case .proposal: hashEvent(12, n.idx, from)
            }
            handle(n, n.core.receive(m, from: nodes[from].id, nowMs: n.localMs(now)))
        case .client(let q):
            hashEvent(5, n.idx, from, UInt64(q.slot))
            if let tag = quotaRequests[q.id]?.tag {
                handle(n, n.core.request(q, quota: tag))
            } else {
                handle(n, n.core.request(q))
            }
        }
    }

    func leaseCode(_ b: LeaseMessage) -> UInt64 {
        switch b {
        case .accept(let x): return 1 << 40 | x.epoch
        case .acceptReply(_, _, let e, let ok): return 2 << 40 | e << 1 | (ok ? 1 : 0)
        case .prepare(_, let e): return 3 << 40 | e
        case .promise(_, let e, let ok, let bs): return 4 << 40 | e << 8 | UInt64(bs.count) << 1 | (ok ? 1 : 0)
        case .renew(let i): return 5 << 40 | i
        case .gossip(let bs): return 6 << 40 | UInt64(bs.count)
        case .resign(let i): return 7 << 40 | i
        case .epochRefused(_, let e): return 8 << 40 | e
        case .confirm(_, let e, let round): return 9 << 40 | e << 20 | round
        case .confirmReply(_, let e, let round, let ok): return 10 << 40 | e << 20 | round << 1 | (ok ? 1 : 0)
        }
    }

    func clientRequest() {
        guard let target = nodes.indices.randomElement(using: &rng) else { return }
        let q: BookingRequest
        if !acked.isEmpty, rng.chance(hotspot ? 0.15 : 0.08) {
            // A patient cancels: release an acknowledged booking (reservations are the nodes' own).
            let keys = acked.keys.filter { !$0.hasPrefix("quota:") }.sorted()
            guard !keys.isEmpty else { return }
            let b = acked[keys[Int(rng.below(UInt64(keys.count)))]]!
            guard !b.isRelease else { return }
            requestCounter += 1
            q = BookingRequest(id: "x\(requestCounter)", block: b.block, slot: b.slot, patient: b.patient, releases: b.id)
            if let tag = quotaRequests[b.id]?.tag { quotaRequests[q.id] = (b.patient, tag) }
            recentRequests.append(q)
            if recentRequests.count > 64 { recentRequests.removeFirst() }
        } else if !acked.isEmpty, rng.chance(0.06) {
            // A patient pays for a hold: its confirmation races the holder's expiry of it.
            let holds = acked.values.filter(\.isHold).map(\.id).sorted()
            guard !holds.isEmpty else { return }
            let h = acked[holds[Int(rng.below(UInt64(holds.count)))]]!
            requestCounter += 1
            q = BookingRequest(id: "k\(requestCounter)", block: h.block, slot: h.slot, patient: h.patient, confirms: h.id)
            recentRequests.append(q)
            if recentRequests.count > 64 { recentRequests.removeFirst() }
        } else if !recentRequests.isEmpty, rng.chance(0.2) {
            // A client that doubts its answer retries the same request through any node.
            q = recentRequests[Int(rng.below(UInt64(recentRequests.count)))]
        } else {
            requestCounter += 1
            // At a rush most requests want any free slot of one of two sessions: each slot freed
            // (a cancellation, a hold run out) is booked again at once.
            let rush = hotspot && rng.chance(0.7)
            let slot = Int(rng.below(UInt64(opt.slotsPerBlock)))
            // Some patients take any of a few slots of the session.
            let alternatives = rush ? Array(0..<opt.slotsPerBlock).shuffled(using: &rng)
                : rng.chance(0.3) ? (0..<2).map { _ in Int(rng.below(UInt64(opt.slotsPerBlock))) } : []
            // About a third book under the quotas: a few patients, visits over 12 days, each
            // block standing for one of three departments.
            let quota = rng.chance(0.35)
            let patient = quota ? "q\(rng.below(12))" : "p\(rng.below(1000))"
            let block = Int(rng.below(UInt64(rush ? min(2, opt.blocks) : opt.blocks)))
            // A quarter are holds of 1.5 to 4.5 s, which their holder expires unless confirmed.
            let holdMs = rng.chance(0.25) ? Int64(1_500 + rng.below(3_000)) : 0
            q = BookingRequest(id: "r\(requestCounter)", block: "b\(block)",
                               slot: slot, patient: patient, alternatives: alternatives, holdMs: holdMs)
            if quota { quotaRequests[q.id] = (patient, QuotaTag(visitDay: today + Int(rng.below(12)), department: "d\(block % 3)")) }
            recentRequests.append(q)
            if recentRequests.count > 64 { recentRequests.removeFirst() }
        }
        sendClient(q, via: target, afterUs: 100 + rng.below(2_000))
    }

    /// `force`: the figure-8 schedule's own change, towards three voters.
    func membershipChange(force: Bool = false) {
        guard figure8 == .idle || force, let l = nodes.first(where: { $0.up && !$0.paused && $0.raft.role == .leader }), setupDone else { return }
        let cfg = l.raft.config
        let change: ConfigChange
        if cfg.voters.count <= opt.initialVoters, let learner = cfg.learners.randomElement(using: &rng) {
            change = ConfigChange(.promote, learner)
        } else {
            let others = cfg.voters.filter { $0 != l.id }
            guard let v = others.randomElement(using: &rng) else { return }
            change = ConfigChange(.demote, v)
        }
        let (r, effects) = l.core.proposeConfigChange(change)
        handle(l, effects)
        if case .success = r { stats.voterChanges += 1; hashEvent(6, l.idx, Int(change.op.rawValue)) }
    }

    // MARK: Network

    func send(from n: SimNode, to: NodeID, _ p: Payload) {
        guard let t = index[to] else { return }
        if t == n.idx { schedule(now, .deliver(to: t, from: t, p)); return }
        if blockedLink[n.idx][t] { return }
        if faultsActive {
            if rng.chance(0.02) { return }
            var d = 300 + rng.below(4_700)
            if rng.chance(0.05) { d += rng.below(100_000) }        // reordering
            if rng.chance(0.003) { d += 500_000 + rng.below(2_500_000) } // very late delivery
            schedule(now + d, .deliver(to: t, from: n.idx, p))
            if rng.chance(0.01) { schedule(now + d + rng.below(50_000), .deliver(to: t, from: n.idx, p)) }
        } else {
            schedule(now + 300 + rng.below(4_700), .deliver(to: t, from: n.idx, p))
        }
    }

    func setLinks(_ a: Int, isolated: Bool) {
        for j in 0..<nodes.count where j != a { setLink(a, j, blocked: isolated); setLink(j, a, blocked: isolated) }
    }

    /// The random faults' heals leave the figure-8 schedule's cuts alone; it heals its own.
    func setLink(_ a: Int, _ b: Int, blocked: Bool) {
        if !blocked, figure8Cut.contains(a) || figure8Cut.contains(b) { return }
        blockedLink[a][b] = blocked
    }

    func noteLeaderHit(_ i: Int) {
        if nodes[i].raft.role == .leader, failoverStartUs == nil { failoverStartUs = now }
    }

    func applyFault(_ f: Fault) {
        hashEvent(7, 0)
        switch f {
        case .isolate(let set, _):
            guard faultsActive, figure8 == .idle else { return }
            stats.partitions += 1
            for a in set { for j in 0..<nodes.count where !set.contains(j) { blockedLink[a][j] = true; blockedLink[j][a] = true } }
            for a in set { noteLeaderHit(a) }
        case .heal(let set):
            for a in set { setLinks(a, isolated: false) }
        case .oneWay(let a, _):
            guard faultsActive, figure8 == .idle else { return }
            stats.partitions += 1
            for j in 0..<nodes.count where j != a { blockedLink[a][j] = true }
            noteLeaderHit(a)
        case .healOneWay(let a):
            for j in 0..<nodes.count where j != a { setLink(a, j, blocked: false) }
        case .flap(let a, let remaining):
            guard faultsActive, figure8 == .idle else { return }
            if remaining % 2 == 0 { stats.partitions += 1 }
            setLinks(a, isolated: remaining % 2 == 0 && remaining > 0)
            if remaining > 0 { schedule(now + 50_000 + rng.below(250_000), .fault(.flap(a, remaining: remaining - 1))) }
        case .pause(let i, let ms):
            let n = nodes[i]
            guard faultsActive, figure8 == .idle, n.up, !n.paused, downCount() < 2 else { return }
            n.paused = true
            stats.pauses += 1
            if ms > 2_000 { stats.pausesLongerThanLease += 1 }
            noteLeaderHit(i)
            schedule(now + ms * 1000, .fault(.resume(i)))
        case .resume(let i):
            let n = nodes[i]
            guard n.paused else { return }
            n.paused = false
            let d = n.deferred
            n.deferred = []
            // The deferred tick (if one came due) carries the node's tick chain on; another
            // here would be a second chain, and each pause would speed the node's clock up.
            for k in d { process(k) }
        case .crash(let i, let ms):
            let n = nodes[i]
            guard faultsActive, figure8 == .idle, n.up, !n.paused, downCount() < 2 else { return }
            noteLeaderHit(i)
            crash(n)
            schedule(now + ms * 1000, .fault(.restart(i)))
        case .restart(let i):
            restart(nodes[i])
        case .arm(let point, let node, let ms):
            guard faultsActive, figure8 == .idle else { return }
            armed.append(ArmedCrash(point: point, node: node, downMs: ms, untilUs: now + 3_000_000))
        case .crashAt(let i, let ms, _):
            let n = nodes[i]
            guard faultsActive, figure8 == .idle, n.up, !n.paused, downCount() < 2 else { return }
            stats.protocolCrashes += 1
            noteLeaderHit(i)
            // The OS flushed none of its writes since the last fsync: a reply or an acknowledgement
            // sent before its write was durable shows.
            crash(n, loseAll: true)
            schedule(now + ms * 1000, .fault(.restart(i)))
        case .diskStall(let i, let ms):
            guard faultsActive, figure8 == .idle else { return }
            stats.diskStalls += 1
            nodes[i].diskStallUntilUs = max(nodes[i].diskStallUntilUs, now + ms * 1000)
        case .figure8(let step):
            figure8Step(step)
        case .healAll:
            faultsActive = false
            endFigure8()
            armed = []
            for i in 0..<nodes.count { setLinks(i, isolated: false); flapping[i] = false }
            for n in nodes where n.paused { applyFault(.resume(n.idx)) }
            for n in nodes where !n.up { restart(n) }
        }
    }

    func downCount() -> Int { nodes.filter { !$0.up || $0.paused }.count }

    func crash(_ n: SimNode, loseAll: Bool = false) {
        stats.crashes += 1
        if !n.pending.isEmpty { stats.lostUnsyncedWrites += 1 }
        n.up = false
        n.life += 1
        // Un-fsynced writes: the OS may have flushed some prefix of them, or none.
        let kept = loseAll ? 0 : Int(rng.below(UInt64(n.pending.count + 1)))
        for w in n.pending.prefix(kept) {
            switch w {
            case .raft(let p): n.diskRaft.apply(p)
            case .booking(let b): n.diskBooking.apply(b)
            }
        }
        n.pending = []
        n.fsyncScheduled = false
        n.deferred = []
    }

    func restart(_ n: SimNode) {
        guard !n.up else { return }
        n.up = true
        n.incarnation += 1 // stored durably before anything else in a real shell
        n.core = makeCore(n.idx, id: n.id, incarnation: n.incarnation, raft: n.diskRaft, booking: n.diskBooking)
        n.campaignSinceUs = nil
        hashEvent(8, n.idx)
        schedule(now + 1_000, .tick(n.idx, life: n.life))
        schedule(now + 1_000 + replicationRng.below(300_000), .antiEntropy(n.idx, life: n.life))
    }

    // MARK: Disk

    func queueWrite(_ n: SimNode, _ w: PendingWrite) {
        n.pending.append(w)
        if !n.fsyncScheduled {
            n.fsyncScheduled = true
            // Mostly fast disks, sometimes a slow fsync with a heavy tail (P(> x) = 10 ms / x, up to
            // 800 ms): a crash then loses the writes queued behind it.
            let d = rng.chance(0.1) ? 10_000 * 80 / (1 + rng.below(80)) : 200 + rng.below(3_000)
            schedule(now + d, .fsync(n.idx, life: n.life))
        }
    }

    func fsync(_ n: SimNode) {
        n.fsyncScheduled = false
        let ws = n.pending
        n.pending = []
        var raftSeq: UInt64 = 0, bookSeq: UInt64 = 0
        for w in ws {
            switch w {
            case .raft(let p): n.diskRaft.apply(p); raftSeq = p.seq
            case .booking(let b): n.diskBooking.apply(b); bookSeq = b.seq
            }
        }
        handle(n, n.core.persisted(raftUpTo: raftSeq, bookingUpTo: bookSeq))
    }

    // MARK: Effects

    func handle(_ n: SimNode, _ effects: [CoreEffect]) {
        for e in effects {
            switch e {
            case .send(let to, let m):
                send(from: n, to: to, .peer(m))
                if !armed.isEmpty, let p = ProtocolPoint(sending: m) { reached(p, n) }
            case .persistRaft(let p):
                figure8Persist(n, p)
                queueWrite(n, .raft(p))
                if !armed.isEmpty { reached(.write, n) }
            case .persistBooking(let w):
                queueWrite(n, .booking(w))
                for r in w.records where firstWrittenUs["\(r.id)@\(r.epoch)"] == nil { firstWrittenUs["\(r.id)@\(r.epoch)"] = now }
                if !armed.isEmpty { reached(w.records.contains { n.booking.isPending($0.id) && $0.takesASlot } ? .holderWrite : .write, n) }
            case .outcome(let o):
                if case .booked(let b) = o {
                    hashEvent(10, n.idx, b.slot, b.epoch)
                    if let first = acked.updateValue(b, forKey: b.id) {
                        if first != b { fail("a retried request returns its first outcome", "request \(b.id) acknowledged as \(first) and later as \(b)") }
                    } else {
                        stats.bookingsAcked += 1
                    }
                    if !armed.isEmpty { reached(.ack, n) }
                } else {
                    stats.bookingsRefused += 1
                }
                noteOutcome(o, at: n)
            case .applied(let entry, let accepted):
                applied(n, entry, accepted: accepted)
            case .snapshotRestored:
                stats.snapshotsInstalled += 1
            case .roleChanged(let role, let term):
                roleChanged(n, role, term)
            case .takeoverStarted(let b, let e):
                let key = "\(b)#\(e)"
                if takeoverStart[key] == nil { takeoverStart[key] = now }
            }
        }
    }

    func roleChanged(_ n: SimNode, _ role: RaftRole, _ term: Term) {
        hashEvent(9, n.idx, Int(role == .leader ? 1 : 0), term)
        switch role {
        case .leader:
            figure8Leader(n, term)
            if let other = leaderOfTerm[term], other != n.idx {
                fail("one leader per term", "n\(other + 1) and n\(n.idx + 1) both lead term \(term)")
            }
            leaderOfTerm[term] = n.idx
            stats.elections += 1
            if let s = n.campaignSinceUs { stats.electionMs.append((now - s) / 1000) }
            if let s = failoverStartUs { stats.failoverMs.append((now - s) / 1000); failoverStartUs = nil }
            n.campaignSinceUs = nil
            checkLeaderCompleteness(n, term)
        case .preCandidate, .candidate:
            if n.campaignSinceUs == nil { n.campaignSinceUs = now }
        case .follower:
            n.campaignSinceUs = nil
        }
    }

    /// A committed entry the node's cluster state has just applied (`accepted`: it changed it).
    func applied(_ n: SimNode, _ e: LogEntry<ClusterCommand>, accepted: Bool) {
        if let c = committed[e.index] {
            if c != e { fail("committed entry changed", "index \(e.index) applied as term \(e.term) on n\(n.idx + 1), committed as term \(c.term)") }
        } else {
            committed[e.index] = e
            // The commit happened in this node's current term or earlier: an upper bound is sound
            // for checking leader completeness (only leaders of later terms must have it).
            commitTerm[e.index] = n.raft.term
            maxCommitted = max(maxCommitted, e.index)
        }
        if case .command(.closeBlock(let c)) = e.body, accepted, closures[c.block] == nil {
            closures[c.block] = c
            checkClosure(c)
        }
        if case .command(.lease(let c)) = e.body, accepted {
            let key = "\(c.block)#\(c.toEpoch)"
            if takeoverSeen.insert(key).inserted {
                stats.takeovers += 1
                if let s = takeoverStart[key] { stats.takeoverMs.append((now - s) / 1000) }
                checkTakeover(c)
                if let trim = c.trim, trim != trimsSeen[c.block] {
                    trimsSeen[c.block] = trim
                    stats.quotaTrims += 1
                    trimmedCount[c.block] = trimmedAcked(in: c.block, by: trim).count
                    stats.recordsTrimmed = trimmedCount.values.reduce(0, +)
                }
            }
        }
    }
}
