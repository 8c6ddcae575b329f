import HashTreeCollections

// One node's whole consensus side as a pure value: Raft, the replicated cluster state, the booking
// protocol (holder and voter) and, while leading, the lease manager. The simulator and the real
// node shell drive this same value: they feed it ticks, messages, client requests and "persisted"
// notices, and carry out the effects it returns (send, make durable, answer a client).

public typealias ClusterRaft = RaftNode<ClusterCommand, ClusterState>
public typealias ClusterRaftMessage = RaftMessage<ClusterCommand, ClusterState>
public typealias ClusterPersist = PersistRequest<ClusterCommand, ClusterState>

/// What travels between the consensus sides of two nodes.
public enum ConsensusMessage: Sendable {
    case raft(ClusterRaftMessage)
    case lease(LeaseEnvelope)
    /// A client's booking, passed on towards the block's holder; the answer comes back as `outcome`.
    case request(BookingRequest)
    case outcome(BookingOutcome)
    /// A command for the leader to propose; only definitions (members, blocks) are taken from peers.
    case proposal(ClusterCommand)
}

/// The final answer to one booking request.
public enum BookingOutcome: Sendable, Equatable {
    case booked(Booking)
    case refused(requestID: String, reason: RefuseReason)

    public var requestID: String {
        switch self {
        case .booked(let b): return b.id
        case .refused(let id, _): return id
        }
    }
}

public enum CoreEffect: Sendable {
    case send(to: NodeID, ConsensusMessage)
    /// Make durable in this order; then call `persisted(raftUpTo:bookingUpTo:)`.
    case persistRaft(ClusterPersist)
    case persistBooking(BookingWrite)
    /// A booking request this node took in (from a client or a peer) has its answer.
    case outcome(BookingOutcome)
    /// A committed entry, after the cluster state applied it (`accepted`: it changed the state).
    case applied(LogEntry<ClusterCommand>, accepted: Bool)
    case snapshotRestored(LogIndex)
    case roleChanged(RaftRole, term: Term)
    case takeoverStarted(block: BlockID, toEpoch: Epoch)
}

public struct ConsensusCoreOptions: Sendable {
    public var raft = RaftConfig()
    public var booking = BookingOptions()
    public var leases = LeaseManagerOptions()
    /// Ticks between liveness renewals sent to the leader, and this node's phase within them.
    public var renewEveryTicks: UInt64 = 50
    public var renewPhase: UInt64 = 0
    /// Ticks between booking-record gossip rounds (repair; bookings also travel in the store).
    public var gossipEveryTicks: UInt64 = 30
    /// Bookings acknowledged here are pushed to every member this often: the voters a round did
    /// not ask (`BookingNode.firstQuorum`) learn of them this way.
    public var pushAckedEveryTicks: UInt64 = 5
    /// Booking records per repair-sweep message, at least; more when there are so many records
    /// that a sweep would take longer than `gossipSweepRounds` rounds.
    public var gossipSlice = 64
    /// The repair sweep reaches every record within about this many gossip rounds (30 rounds of
    /// 300 ms: 9 s), so replicas that missed a record agree again soon after faults stop.
    public var gossipSweepRounds = 30
    /// The most records in one repair-sweep message.
    public var gossipSliceLimit = 1_024
    /// How long a cancelled slot stays off offer (uniformly random in this range), in ms.
    public var reofferDelayMs: ClosedRange<Int64> = 300_000...1_800_000
    /// Per-person quota buckets (blocks `quota/N`), defined by the leader; 0 turns quotas off.
    public var quotaBuckets = 16
    /// Compact the Raft log into a snapshot of the cluster state every this many applied entries,
    /// or later when the state is large (`ConsensusCore.compactionDue`).
    public var compactEvery: LogIndex = 64
    /// A request passed on more often than this is refused (two nodes disagreeing on the holder).
    public var maxHops: UInt8 = 3
    /// Ticks between sweeps of this node's blocks for holds that ran out (released by their holder).
    public var expireHoldsEveryTicks: UInt64 = 100
    /// Seeds the core's random choices: re-offer delays (the simulator's seed, or anything in a real node).
    public var seed: UInt64 = 0
    public init() {}
}

public struct ConsensusCore: Sendable {
    public let id: NodeID
    public let incarnation: UInt64
    public let options: ConsensusCoreOptions
    public private(set) var raft: ClusterRaft
    public private(set) var cluster: ClusterState
    public private(set) var booking: BookingNode
    public private(set) var manager: LeaseManager
    public private(set) var ticks: UInt64 = 0
    private var rng: SplitMix64
    /// Who passed us a request still open here, so the answer can go back the same way.
    private(set) var replyTo: TreeDictionary<String, NodeID> = [:]
    /// The monotonic time of the last input, for the leader hook that runs inside `handle`.
    private var lastNowMs: UInt64 = 0
    /// The wall clock (ms since 1970) at the last tick: release windows and re-offer delays only.
    private var lastWallMs: Int64 = 0
    /// Bookings this node acknowledged since the last gossip round: pushed to every member.
    private var freshAcked: [Booking] = []
    /// The repair sweep's order (the record ids when it began, sorted) and where it goes on next
    /// round: sorted once per sweep, not every round. Records made since wait for the next sweep.
    private var sweepOrder: [String] = []
    private var sweepNext = 0
    /// Bookings under a per-person quota taken in here, by request id, between their reservation
    /// (`quota:<request id>`) and their outcome.
    private(set) var quotaFlows: TreeDictionary<String, BookingRequest> = [:]
    /// Releases of reservations still to be confirmed (retried on ticks).
    private var pendingReleases: [String: BookingRequest] = [:]
    /// A booking's release -> the release of its reservation, sent once the first is acknowledged.
    private var releaseAfter: [String: BookingRequest] = [:]
    private var bucketsProposedAt: UInt64 = 0
    /// When this node last told the leader that voters refuse its accepts in a block (by tick).
    private var epochRefusedSent: [BlockID: UInt64] = [:]
    /// Set by a clean shutdown: no more liveness renewals from this process.
    public private(set) var resigned = false
    /// Set when the cluster state came from a snapshot: booking records of blocks it says are
    /// closed are forgotten at the next tick (the write needs an effect), and those a quota
    /// bucket's trim made inactive are dropped.
    private var forgetClosedRecords = true
    /// What the entries applied since the last snapshot carry (`compactionDue`); from a restart
    /// on, what was applied since it.
    private var weightSinceSnapshot = 0
    /// Per quota bucket, the trim this leader last looked for records to drop under: each look
    /// reads the whole bucket under the core's lock, so once per trim (a day) is enough.
    private var trimLookedAt: [BlockID: QuotaTrim] = [:]
    private var out: [CoreEffect] = []

    /// `incarnation` must be stored durably and grow on every process start (the shell's job).
    public init(id: NodeID, incarnation: UInt64, bootstrap: ClusterConfig, options: ConsensusCoreOptions = .init(),
                restoringRaft: DurableRaftState<ClusterCommand, ClusterState> = .init(),
                restoringBooking: BookingDurableState = .init()) {
        self.id = id
        self.incarnation = incarnation
        self.options = options
        raft = ClusterRaft(id: id, options: options.raft, bootstrap: bootstrap, restoring: restoringRaft)
        cluster = restoringRaft.snapshot?.data ?? ClusterState(config: bootstrap)
        booking = BookingNode(id: id, incarnation: incarnation, options: options.booking, restoring: restoringBooking)
        manager = LeaseManager(id: id, options: options.leases)
        rng = SplitMix64(seed: options.seed ^ 0x5EED_C0DE)
    }

    public var isLeader: Bool { raft.role == .leader }

    /// Whether a request taken in here still waits for its outcome (its quota round or its
    /// holder's answer): a retry of it must wait for that outcome too, not be answered afresh.
    public func isOpen(_ requestID: String) -> Bool { view.isOpen(requestID) }

    private mutating func drain() -> [CoreEffect] {
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    // MARK: Inputs

    /// `nowMs`: this node's monotonic clock. Only the leader's lease manager reads it, for durations.
    public mutating func tick(nowMs: UInt64, wallMs: Int64) -> [CoreEffect] {
        ticks += 1
        lastNowMs = nowMs
        lastWallMs = wallMs
        handle(raft.tick())
        if forgetClosedRecords {
            forgetClosedRecords = false
            let closed = booking.store.blocks.filter(cluster.closed.contains)
            if !closed.isEmpty { handle(booking.forget(closed.sorted())) }
            for b in booking.store.blocks.sorted() where cluster.blocks[b]?.trim != nil {
                handle(booking.dropInactive(in: b, state: cluster))
            }
        }
        handle(booking.tick(state: cluster))
        if raft.role == .leader {
            handle(manager.tick(now: nowMs, state: cluster, ready: raft.isReadyLeader))
        }
        if !resigned, ticks % options.renewEveryTicks == options.renewPhase % options.renewEveryTicks, let l = raft.leader {
            sendLease(to: l, .renew(incarnation: incarnation))
        }
        if ticks % options.pushAckedEveryTicks == 0 { pushAcked() }
        if ticks % options.gossipEveryTicks == 0 { gossip() }
        if raft.role == .leader, raft.isReadyLeader {
            defineBuckets()
            // An evicted node leaves the Raft configuration too (one change at a time).
            if let gone = cluster.raftConfig.members.first(where: { cluster.members[$0]?.evicted == true }) {
                handle(raft.proposeConfigChange(ConfigChange(.remove, gone)).1)
            }
        }
        if ticks % 100 == 0 { for q in pendingReleases.values.sorted(by: { $0.id < $1.id }) { take(q) } }
        if ticks % options.expireHoldsEveryTicks == 0 { expireHolds() }
        return drain()
    }

    public mutating func receive(_ m: ConsensusMessage, from: NodeID, nowMs: UInt64) -> [CoreEffect] {
        lastNowMs = nowMs
        switch m {
        case .raft(let r):
            guard r.from == from, r.to == id else { break }
            handle(raft.receive(r))
        case .lease(let e):
            guard e.from == from, e.to == id else { break }
            switch e.body {
            case .promise, .renew, .resign, .epochRefused:
                if raft.role == .leader { handle(manager.receive(e, now: nowMs, state: cluster)) }
            default:
                handle(booking.receive(e, state: cluster))
            }
        case .request(let q):
            if replyTo.count < 100_000 { replyTo[q.id] = from }
            take(q)
        case .outcome(let o):
            finish(o)
        case .proposal(let c):
            switch c {
            case .upsertMember(let m) where m.node == from: _ = submit(c)
            case .defineBlock, .defineSession, .evict: _ = submit(c) // .evict: an admin's, passed on by a node
            default: break // everything else only the leader's own parts propose
            }
        }
        return drain()
    }

    /// The peers the shell cannot reach now (their link down for a while). A request is not
    /// passed on to such a holder, and a holder that cannot reach a quorum of a block's voters
    /// starts no new round there: both are refused at once as `noHolder`, retryable, with nothing
    /// sent or written, rather than left to run into the client's timeout. A stale set is safe:
    /// it costs a retry, or the timeout as before.
    public mutating func setUnreachable(_ peers: Set<NodeID>) {
        booking.unreachable = peers
    }

    /// A clean shutdown: asks the leader to end this node's liveness so its blocks move at once
    /// (call again until `cluster.isLive(id)` is false), and hands leadership on if it leads.
    public mutating func resign() -> [CoreEffect] {
        resigned = true
        if let l = raft.leader { sendLease(to: l, .resign(incarnation: incarnation)) }
        if raft.role == .leader, let next = cluster.raftConfig.voters.first(where: { $0 != id && cluster.isLive($0) }) {
            handle(raft.transferLeadership(to: next).1)
        }
        return drain()
    }

    /// The wall clock read just now (a real node's shell, before each step): release windows and
    /// hold expiries are judged at the instant a request arrives, not at the last tick.
    public mutating func observeWall(_ wallMs: Int64) { lastWallMs = wallMs }

    /// A booking from a client of this node.
    public mutating func request(_ q: BookingRequest) -> [CoreEffect] {
        take(q)
        return drain()
    }

    public mutating func persisted(raftUpTo: UInt64, bookingUpTo: UInt64) -> [CoreEffect] {
        if raftUpTo > 0 { handle(raft.persisted(upTo: raftUpTo)) }
        if bookingUpTo > 0 { handle(booking.persisted(upTo: bookingUpTo)) }
        return drain()
    }

    /// Asks this node, if it leads, to close `blocks` (sessions over, past their retention): each is
    /// collected from its voters like a takeover, then closed by a committed `BlockClosure`. Ask
    /// again after a change of leader or a failed attempt; quota buckets are never closed.
    public mutating func close(_ blocks: [BlockID]) {
        guard raft.role == .leader else { return }
        manager.close(blocks.filter { !isQuotaBucket($0) })
    }

    /// Whether to take a snapshot now: after `compactEvery` applied entries, once the entries since
    /// the last one carry at least half as much as the state would (records collected or closed,
    /// one per entry). A snapshot costs in proportion to the state, whose quota buckets may hold
    /// months of reservations; the log between two in proportion to what its entries carry.
    var compactionDue: Bool {
        guard cluster.appliedIndex >= raft.snapshotIndex + options.compactEvery else { return false }
        // The state weighs at least one per block: no scan of every block at every step while the
        // log weighs less than half that (publishing weeks of rota applies thousands of blocks).
        guard weightSinceSnapshot * 2 >= cluster.blocks.count else { return false }
        let state = cluster.blocks.values.reduce(cluster.blocks.count) { $0 + $1.collected.count }
        return weightSinceSnapshot * 2 >= state
    }

    /// What an applied entry adds to the log's weight (`compactionDue`).
    static func weight(_ e: LogEntry<ClusterCommand>) -> Int {
        switch e.body {
        case .command(.lease(let c)): 1 + c.collected.count
        case .command(.closeBlock(let c)): 1 + c.records.count
        default: 1
        }
    }

    /// Asks this node, if it leads, to trim the quota buckets to `wanted` (`QuotaPolicy.trim`):
    /// each bucket with enough records to drop (a sixteenth of what it holds here) is taken over
    /// with the trim. Ask again as the days pass; a bucket is looked at once per trim and leadership.
    public mutating func trimQuota(_ wanted: QuotaTrim) {
        guard raft.role == .leader else { return }
        #if CLINICMESH_BUG_SWITCHES
        var wanted = wanted
        if options.booking.bugTrimDropsCounted { wanted.reservationsBefore = wanted.visitsFrom }
        #endif
        for (b, r) in cluster.blocks where isQuotaBucket(b) && !(r.trim?.covers(wanted) ?? false) {
            if trimLookedAt[b] == wanted { continue }
            trimLookedAt[b] = wanted
            guard let trim = QuotaTrim.latest(r.trim, wanted) else { continue }
            // One record per request: the collected list and the leader's store mostly hold the same.
            var latest: [String: Booking] = [:]
            for record in r.collected + booking.store.records(in: b) where (latest[record.id]?.epoch ?? 0) <= record.epoch { latest[record.id] = record }
            let records = Array(latest.values)
            let dropped = records.count - trim.kept(records).count
            if dropped > 0, dropped * 16 >= records.count { manager.trim(b, to: trim) }
        }
    }

    /// Proposes on the leader; elsewhere passes definitions on to the leader it knows.
    public mutating func propose(_ c: ClusterCommand) -> (Result<LogIndex, ProposeError>, [CoreEffect]) {
        let r = submit(c)
        return (r, drain())
    }

    private mutating func submit(_ c: ClusterCommand) -> Result<LogIndex, ProposeError> {
        let (r, acts) = raft.propose(c)
        handle(acts)
        if case .failure(.notLeader(let l?)) = r, l != id {
            switch c {
            case .upsertMember, .defineBlock, .defineSession, .evict: out.append(.send(to: l, .proposal(c)))
            default: break
            }
        }
        return r
    }

    public mutating func proposeConfigChange(_ change: ConfigChange) -> (Result<LogIndex, ProposeError>, [CoreEffect]) {
        let (r, acts) = raft.proposeConfigChange(change)
        handle(acts)
        return (r, drain())
    }

    // MARK: Booking requests

    private mutating func take(_ q: BookingRequest) {
        if q.hops > options.maxHops {
            finish(.refused(requestID: q.id, reason: .noHolder))
            return
        }
        // A released slot goes back on offer after a random 5 to 30 minutes (quota places at once).
        let delay: Int64
        switch q.recordKind(wallMs: lastWallMs) {
        case .cancellation?, .expiry?:
            delay = options.reofferDelayMs.lowerBound + Int64(rng.below(UInt64(options.reofferDelayMs.upperBound - options.reofferDelayMs.lowerBound + 1)))
        default:
            delay = 0
        }
        handle(booking.request(q, state: cluster, wallMs: lastWallMs, reofferDelayMs: delay))
    }

    /// Answers locally and back along the path the request came.
    private mutating func finish(_ o: BookingOutcome) {
        if let back = replyTo.removeValue(forKey: o.requestID), back != id {
            out.append(.send(to: back, .outcome(o)))
        }
        if o.requestID.hasPrefix(Self.reservationPrefix),
           let flow = quotaFlows[String(o.requestID.dropFirst(Self.reservationPrefix.count))] {
            reserved(o, for: flow)
            return
        }
        if case .booked = o, let release = releaseAfter.removeValue(forKey: o.requestID) {
            pendingReleases[release.id] = release
            take(release)
        }
        if pendingReleases[o.requestID] != nil {
            switch o {
            case .booked, .refused(_, .notBooked), .refused(_, .requestMismatch): pendingReleases[o.requestID] = nil
            default: break // retried on a later tick
            }
            return
        }
        // The booking's outcome ends its flow. A refusal for good (`finalRefusals`: made durable by
        // the holder, so no retry can book the request after all) gives the reservation back. Any
        // other refusal keeps it: the same request may still be booked through another node (a
        // client's retry racing a stale holder's answer; simulator seed 225), and the quota errs on
        // the side of refusing.
        if let flow = quotaFlows.removeValue(forKey: o.requestID), case .refused(_, let reason) = o, Self.finalRefusals.contains(reason) {
            let reservation = Self.reservationPrefix + flow.id
            // The release says why, so a retry of the request meets this refusal again, not `released`.
            let release = Self.bucketRequest(Self.reservationReleasePrefix + reservation, block: Self.quotaBucket(patient: flow.patient, buckets: options.quotaBuckets),
                                             patient: flow.patient, placesOf: reservation, releases: reservation, tag: RefusalRelease.tag(reason))
            pendingReleases[release.id] = release
            take(release)
        }
        out.append(.outcome(o))
    }

    // MARK: Per-person quotas

    static let reservationPrefix = "quota:"
    /// A reservation's release: `release:<reservation id>`.
    static let reservationReleasePrefix = "release:"
    /// The id of the quota reservation a booking request takes first (`request(_:quota:)`).
    public static func reservationID(of requestID: String) -> String { reservationPrefix + requestID }
    /// A booking's refusals that give its quota reservation back: the holder made them durable
    /// (`BookingNode.refuse`), and they say nothing about the patient's quota.
    static let finalRefusals: Set<RefuseReason> = [.slotTaken, .notYetOpen]

    /// The patient's quota bucket (the places a reservation takes in it: `reservationSlots`).
    public static func quotaBucket(patient: String, buckets: Int) -> BlockID {
        var h = FNV1a64()
        h.add(patient)
        return quotaBucketPrefix + String(Int(h.value % UInt64(max(1, buckets))))
    }

    /// The places a reservation (or a strike) may take in its bucket, the first free one of them:
    /// one place per id collides with another id's now and then (a bucket holds tens of thousands
    /// of reservations in 2^31 places), and the later reservation would be refused `slotTaken`.
    /// Its release names the same places, where the holder finds it.
    static func reservationSlots(_ reservationID: String) -> [Int] {
        (0..<8).map { k in
            var h = FNV1a64()
            h.add(k == 0 ? reservationID : reservationID + "#\(k)")
            return Int(h.value % UInt64(Int32.max))
        }
    }

    /// A request for a place in a quota bucket, at the first free one of the id's places.
    static func bucketRequest(_ id: String, block: BlockID, patient: String, placesOf reservation: String, releases: String? = nil,
                              tag: String = "") -> BookingRequest {
        let places = reservationSlots(reservation)
        return BookingRequest(id: id, block: block, slot: places[0], patient: patient, alternatives: Array(places.dropFirst()),
                              releases: releases, tag: tag)
    }

    /// A booking under the per-person quotas: a reservation from the holder of the patient's
    /// bucket first (checked against `QuotaPolicy`, quorum-durable like a booking), then the
    /// booking. A retry with the same request id reuses both (each step is idempotent by its id).
    /// A release (`q.releases` set) gives the reservation back once the booking's release is
    /// acknowledged; a refused booking keeps it (see `finish`).
    public mutating func request(_ q: BookingRequest, quota: QuotaTag) -> [CoreEffect] {
        guard options.quotaBuckets > 0, q.confirms == nil else { take(q); return drain() }
        if q.releases != nil {
            releaseWithReservation(q)
            return drain()
        }
        let id = Self.reservationPrefix + q.id
        let bucket = Self.quotaBucket(patient: q.patient, buckets: options.quotaBuckets)
        var reservation = Self.bucketRequest(id, block: bucket, patient: q.patient, placesOf: id, tag: quota.encoded)
        // Only a known reservation goes on: an earlier attempt got that far, and its booking's
        // outcome (or the first one, if it never reached the holder) is the answer.
        reservation.onlyIfKnown = q.onlyIfKnown
        // The booking carries its quota tag, so whoever releases it later knows to give the place back.
        var booking = q
        booking.tag = quota.encoded
        booking.onlyIfKnown = false
        quotaFlows[q.id] = booking
        take(reservation)
        return drain()
    }

    /// Releases `q.releases`, then gives its quota reservation back once that is acknowledged.
    private mutating func releaseWithReservation(_ q: BookingRequest) {
        guard let booking = q.releases else { return }
        let reservation = Self.reservationPrefix + booking
        releaseAfter[q.id] = Self.bucketRequest(Self.reservationReleasePrefix + reservation, block: Self.quotaBucket(patient: q.patient, buckets: options.quotaBuckets),
                                                patient: q.patient, placesOf: reservation, releases: reservation)
        take(q)
    }

    static let strikePrefix = "strike:"
    /// The request id under which a strike's outcome comes.
    public static func strikeRequestID(_ id: String) -> String { strikePrefix + id }

    /// Records a strike (a no-show, a late cancellation) in the patient's quota bucket, where the
    /// ban ladder counts it. Idempotent by `id`; the outcome comes as `strike:<id>`.
    public mutating func strike(_ strike: Strike, patient: String, id: String) -> [CoreEffect] {
        let rid = Self.strikeRequestID(id)
        guard options.quotaBuckets > 0 else { return [.outcome(.refused(requestID: rid, reason: .quotaUnavailable))] }
        take(Self.bucketRequest(rid, block: Self.quotaBucket(patient: patient, buckets: options.quotaBuckets), patient: patient, placesOf: rid, tag: strike.encoded))
        return drain()
    }

    /// The holder releases holds that ran out unconfirmed (by its wall clock), and gives their
    /// quota places back. A retry of the same expiry is idempotent by its id.
    private mutating func expireHolds() {
        guard lastWallMs > 0 else { return }
        // In block order, not the dictionary's (which differs between runs): a replay must send the same.
        for r in cluster.blocks.values.filter({ $0.holder == id && !isQuotaBucket($0.block) }).sorted(by: { $0.block < $1.block }) {
            guard booking.holds(r.block, in: cluster) else { continue }
            let view = slotViews(block: r.block, bookings: booking.store.records(in: r.block), state: cluster)
            guard !view.unknown else { continue }
            for slot in view.views.keys.sorted() {
                guard let hold = holdingBooking(view.views[slot]), case .hold(let until, let quota) = hold.kind, until <= lastWallMs else { continue }
                // A hold whose own round is still open may yet be lost with its epoch; its expiry waits.
                if booking.isPending(hold.id) { continue }
                let q = BookingRequest(id: holdExpiryPrefix + hold.id, block: r.block, slot: hold.slot, patient: hold.patient, releases: hold.id)
                if options.quotaBuckets > 0, quota != nil { releaseWithReservation(q) } else { take(q) }
            }
        }
    }

    /// The reservation's outcome: book, or refuse the booking for the quota's reason.
    private mutating func reserved(_ o: BookingOutcome, for request: BookingRequest) {
        switch o {
        case .booked:
            take(request)
        case .refused(_, let reason):
            quotaFlows[request.id] = nil
            let passedOn = Self.reservationFinalRefusals.contains(reason) || reason == .unknownRequest
            finish(.refused(requestID: request.id, reason: passedOn ? reason : .quotaUnavailable))
        }
    }

    /// A reservation's refusals that are the booking's final answer too: the quota or a ban; a
    /// retry of a request whose reservation was given back (`released` for a cancelled booking,
    /// the booking's own refusal for one refused for good); the id reused for another patient; a
    /// visit date the bucket's trim has passed (`noSuchSlot`, as its closed session would say).
    /// Anything else (no holder, a timeout) says only that the bucket cannot decide now.
    static let reservationFinalRefusals = finalRefusals.union([.quotaExceeded, .banned, .released, .requestMismatch, .noSuchSlot])

    /// The leader defines the quota buckets once members are known, spread over the members.
    private mutating func defineBuckets() {
        guard options.quotaBuckets > 0, ticks >= bucketsProposedAt + 100 else { return }
        let members = cluster.members.values.filter { !$0.evicted }.map(\.node).sorted()
        // Spread over every node of the Raft configuration, so wait until all have registered.
        guard !members.isEmpty, cluster.raftConfig.members.allSatisfy(members.contains) else { return }
        var proposed = false
        for i in 0..<options.quotaBuckets where cluster.blocks[quotaBucketPrefix + "\(i)"] == nil {
            handle(raft.propose(.defineBlock(quotaBucketPrefix + "\(i)", home: members[i % members.count], slots: Int(Int32.max))).1)
            proposed = true
        }
        if proposed { bucketsProposedAt = ticks }
    }

    private mutating func sendLease(to: NodeID, _ body: LeaseMessage) {
        out.append(.send(to: to, .lease(LeaseEnvelope(from: id, to: to, body: body))))
    }

    /// Booking records travel to every replica: what this node acknowledged goes to every
    /// member within `pushAckedEveryTicks` (`pushAcked`); a sweep through all its records, a
    /// slice per round to every member, repairs whatever a node missed while it was down or cut
    /// off, or never heard of because no quorum acknowledged it (`gossip`). Every member, not a
    /// random one: a record then reaches each peer within one sweep, not after a random number.
    private var gossipPeers: [NodeID] { Set(cluster.raftConfig.members).union(cluster.members.keys).filter { $0 != id }.sorted() }

    private mutating func pushAcked() {
        guard !freshAcked.isEmpty else { return }
        for p in gossipPeers { sendLease(to: p, .gossip(freshAcked)) }
        freshAcked = []
    }

    private mutating func gossip() {
        let peers = gossipPeers
        guard !peers.isEmpty else { return }
        let records = booking.store.records
        guard !records.isEmpty else { return }
        if sweepNext >= sweepOrder.count { sweepOrder = records.keys.sorted(); sweepNext = 0 }
        let size = min(options.gossipSliceLimit, max(options.gossipSlice, (sweepOrder.count + options.gossipSweepRounds - 1) / max(1, options.gossipSweepRounds)))
        let slice = sweepOrder[sweepNext..<min(sweepOrder.count, sweepNext + size)]
        sweepNext += slice.count
        let batch = slice.compactMap { records[$0] }
        for peer in peers { sendLease(to: peer, .gossip(batch)) }
    }

    // MARK: Actions of the parts

    private mutating func handle(_ actions: [RaftAction<ClusterCommand, ClusterState>]) {
        for a in actions {
            switch a {
            case .send(let m):
                out.append(.send(to: m.to, .raft(m)))
            case .persist(let p):
                out.append(.persistRaft(p))
            case .apply(let es):
                for e in es {
                    weightSinceSnapshot += Self.weight(e)
                    let rejectedBefore = cluster.rejected
                    cluster.apply(e)
                    let accepted = cluster.rejected == rejectedBefore
                    // The shell keeps the final records (the read model) when it sees `applied`,
                    // before the booking store's forget is written.
                    out.append(.applied(e, accepted: accepted))
                    if accepted, case .command(.closeBlock(let c)) = e.body {
                        freshAcked.removeAll { $0.block == c.block }
                        handle(booking.forget([c.block]))
                    }
                    if accepted, case .command(.lease(let c)) = e.body, cluster.blocks[c.block]?.trim != nil {
                        handle(booking.dropInactive(in: c.block, state: cluster))
                    }
                }
                if compactionDue {
                    weightSinceSnapshot = 0
                    handle(raft.compact(through: cluster.appliedIndex, data: cluster))
                }
            case .restoreSnapshot(let s):
                cluster = s.data
                weightSinceSnapshot = 0
                out.append(.snapshotRestored(s.lastIndex))
                forgetClosedRecords = true
            case .roleChanged(let role, let term):
                // Both hooks see the log as it is at the change; the shell learns after them.
                if role == .leader { manager.becameLeader(now: lastNowMs) } else { manager.steppedDown() }
                trimLookedAt = [:]
                out.append(.roleChanged(role, term: term))
            }
        }
    }

    private mutating func handle(_ actions: [BookingAction]) {
        for a in actions {
            switch a {
            case .send(let e): out.append(.send(to: e.to, .lease(e)))
            case .persist(let w): out.append(.persistBooking(w))
            case .acknowledged(let b):
                if freshAcked.count < 4096 { freshAcked.append(b) }
                if case .refusal(let reason, _) = b.kind {
                    finish(.refused(requestID: b.id, reason: reason))
                } else {
                    finish(.booked(b))
                }
            case .refused(let rid, let reason): finish(.refused(requestID: rid, reason: reason))
            case .forward(var q, let to):
                q.hops += 1
                out.append(.send(to: to, .request(q)))
            case .epochRefused(let block, let epoch):
                // Once per round of retries is enough: every pending accept of the block says it.
                if let at = epochRefusedSent[block], ticks < at + UInt64(options.booking.retryTicks) { continue }
                epochRefusedSent[block] = ticks
                guard let l = raft.leader else { continue }
                let e = LeaseEnvelope(from: id, to: l, body: .epochRefused(block: block, epoch: epoch))
                if l == id { handle(manager.receive(e, now: lastNowMs, state: cluster)) } else { out.append(.send(to: l, .lease(e))) }
            }
        }
    }

    private mutating func handle(_ actions: [LeaseManagerAction]) {
        for a in actions {
            switch a {
            case .propose(let c): handle(raft.propose(c).1)
            case .send(let e): out.append(.send(to: e.to, .lease(e)))
            case .takeoverStarted(let b, let e): out.append(.takeoverStarted(block: b, toEpoch: e))
            }
        }
    }

}
