import HashTreeCollections
import Domain

// The replicated state machine every node applies from the Raft log: membership, one liveness
// record per node, and the lease history per block. Deterministic: same entries, same state.

public typealias BlockID = String
public typealias Epoch = UInt64

public struct MemberInfo: Hashable, Sendable, Codable {
    public var node: NodeID
    public var address: String
    public var department: String
    public var certificateSerial: String
    public var evicted: Bool
    public init(node: NodeID, address: String, department: String, certificateSerial: String, evicted: Bool = false) {
        self.node = node; self.address = address; self.department = department
        self.certificateSerial = certificateSerial; self.evicted = evicted
    }
}

/// Epoch-based liveness (as in CockroachDB): leases name the holder's liveness epoch; the epoch
/// moves when the leader commits an expiry or the node restarts, which invalidates its leases.
public struct LivenessRecord: Hashable, Sendable, Codable {
    public var epoch: UInt64
    public var incarnation: UInt64
    public var live: Bool
}

/// One record of a slot, made by a block's holder under the epoch it held; `kind` says what it
/// is (a booking, a hold, its confirmation, a release of some sort, ...). Each slot is a sequence
/// of generations; the valid record with the highest generation says what the slot is now.
public struct Booking: Hashable, Sendable {
    public var id: String
    public var block: BlockID
    public var slot: Int
    public var patient: String
    public var epoch: Epoch
    public var generation: UInt32
    public var kind: BookingKind
    /// On a release: the slot goes back on offer only from this wall time (the holder's clock),
    /// a random delay after the cancellation, so a cancel-and-rebook hand-off cannot be timed.
    public var reofferAtMs: Int64

    public init(id: String, block: BlockID, slot: Int, patient: String, epoch: Epoch, generation: UInt32 = 0, kind: BookingKind, reofferAtMs: Int64 = 0) {
        self.id = id; self.block = block; self.slot = slot; self.patient = patient; self.epoch = epoch
        self.generation = generation; self.kind = kind; self.reofferAtMs = reofferAtMs
    }

    /// A record from the fields of the wire's and the log's layout (`BookingKind.Fields`); they
    /// must say a kind (`BookingKind.init?(id:block:fields:)`). Decoders use the failable form.
    public init(id: String, block: BlockID, slot: Int, patient: String, epoch: Epoch, generation: UInt32 = 0, releases: String? = nil,
                tag: String = "", reofferAtMs: Int64 = 0, confirms: String? = nil, holdUntilMs: Int64 = 0, refusal: String? = nil) {
        let fields = BookingKind.Fields(releases: releases, tag: tag, confirms: confirms, holdUntilMs: holdUntilMs, refusal: refusal)
        guard let kind = BookingKind(id: id, block: block, fields: fields) else { preconditionFailure("no booking kind has the fields \(fields)") }
        self.init(id: id, block: block, slot: slot, patient: patient, epoch: epoch, generation: generation, kind: kind, reofferAtMs: reofferAtMs)
    }

    // The fields of the wire's and the log's layout, derived from `kind`.
    public var releases: String? { kind.released }
    public var confirms: String? { kind.confirmed }
    public var tag: String { kind.fields.tag }
    public var holdUntilMs: Int64 { kind.fields.holdUntilMs }
    public var refusal: String? { kind.fields.refusal }

    public var isRefusal: Bool {
        if case .refusal = kind { return true }
        return false
    }
    /// A cancellation, an expiry or a reservation's release: it frees the slot it names.
    public var isRelease: Bool { kind.released != nil }
    /// A hold not confirmed in this record (a confirmation holds the slot for good).
    public var isHold: Bool {
        if case .hold = kind { return true }
        return false
    }
}

extension Booking: Codable {
    enum CodingKeys: String, CodingKey { case id, block, slot, patient, epoch, generation, releases, tag, reofferAtMs, confirms, holdUntilMs, refusal }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        block = try c.decode(BlockID.self, forKey: .block)
        slot = try c.decode(Int.self, forKey: .slot)
        patient = try c.decode(String.self, forKey: .patient)
        epoch = try c.decode(Epoch.self, forKey: .epoch)
        generation = try c.decodeIfPresent(UInt32.self, forKey: .generation) ?? 0
        reofferAtMs = try c.decodeIfPresent(Int64.self, forKey: .reofferAtMs) ?? 0
        let fields = BookingKind.Fields(
            releases: try c.decodeIfPresent(String.self, forKey: .releases), tag: try c.decodeIfPresent(String.self, forKey: .tag) ?? "",
            confirms: try c.decodeIfPresent(String.self, forKey: .confirms), holdUntilMs: try c.decodeIfPresent(Int64.self, forKey: .holdUntilMs) ?? 0,
            refusal: try c.decodeIfPresent(String.self, forKey: .refusal))
        guard let kind = BookingKind(id: id, block: block, fields: fields) else {
            throw DecodingError.dataCorruptedError(forKey: .tag, in: c, debugDescription: "booking \(id): no kind has the fields \(fields)")
        }
        self.kind = kind
    }

    /// The keys and values the first layout wrote (absent optionals left out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let f = kind.fields
        try c.encode(id, forKey: .id)
        try c.encode(block, forKey: .block)
        try c.encode(slot, forKey: .slot)
        try c.encode(patient, forKey: .patient)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(generation, forKey: .generation)
        try c.encodeIfPresent(f.releases, forKey: .releases)
        try c.encode(reofferAtMs, forKey: .reofferAtMs)
        try c.encode(f.tag, forKey: .tag)
        try c.encodeIfPresent(f.confirms, forKey: .confirms)
        try c.encode(f.holdUntilMs, forKey: .holdUntilMs)
        try c.encodeIfPresent(f.refusal, forKey: .refusal)
    }
}

/// A lease grant or takeover: moves `block` from `fromEpoch` to `toEpoch` (strictly larger),
/// granted to `holder` at its liveness epoch, with `voters` as the quorum set for this epoch,
/// listing every booking the takeover collected (the ones active from now on besides new ones).
public struct LeaseChange: Hashable, Sendable, Codable {
    public var block: BlockID
    public var fromEpoch: Epoch
    public var toEpoch: Epoch
    public var holder: NodeID
    public var holderLiveness: UInt64
    public var voters: [NodeID]
    public var collected: [Booking]
    /// A quota bucket's trim, carried by the takeover that made it (`QuotaTrim`): `collected`
    /// leaves out what it drops. Nil in entries of versions before trims, and in other takeovers.
    public var trim: QuotaTrim?
    public init(block: BlockID, fromEpoch: Epoch, toEpoch: Epoch, holder: NodeID, holderLiveness: UInt64, voters: [NodeID], collected: [Booking],
                trim: QuotaTrim? = nil) {
        self.block = block; self.fromEpoch = fromEpoch; self.toEpoch = toEpoch; self.holder = holder
        self.holderLiveness = holderLiveness; self.voters = voters; self.collected = collected; self.trim = trim
    }
}

/// The end of a block's history: the leader collected its records from a quorum of the voters of
/// `fromEpoch` under a newer promise (`toEpoch`), as a takeover does, so `records` are its valid
/// records for good. Every node keeps them in its read model, then forgets the block: its records
/// leave memory and the booking log, and its lease record leaves the cluster state.
public struct BlockClosure: Hashable, Sendable, Codable {
    public var block: BlockID
    public var fromEpoch: Epoch
    public var toEpoch: Epoch
    /// The block's slot count, as defined.
    public var slots: Int
    public var records: [Booking]
    public init(block: BlockID, fromEpoch: Epoch, toEpoch: Epoch, slots: Int, records: [Booking]) {
        self.block = block; self.fromEpoch = fromEpoch; self.toEpoch = toEpoch; self.slots = slots; self.records = records
    }

    /// Per slot, the records of its highest generation (`slotViews` over the final records).
    public var finalSlots: [Int: [Booking]] {
        var r = LeaseRecord(block: block, home: NodeID(""), slots: 0)
        r.epoch = toEpoch
        r.setCollected(records)
        return slotViews(record: r, bookings: []).views
    }
}

public enum ClusterCommand: Hashable, Sendable, Codable {
    case upsertMember(MemberInfo)
    case evict(NodeID)
    /// A node's heartbeat reached the leader with a new incarnation or after an expiry.
    case renewLiveness(node: NodeID, incarnation: UInt64)
    /// Proposed only by the leader, from durations on its own monotonic clock.
    case expireLiveness(node: NodeID, epoch: UInt64)
    /// A doctor's session (block of slots) and the department node that normally holds it.
    case defineBlock(BlockID, home: NodeID, slots: Int)
    /// A doctor's session that opens for booking at `opensAtMs` (wall time, judged by the
    /// holder's clock; e.g. 15:00 Asia/Shanghai seven days before the visit).
    case defineSession(BlockID, home: NodeID, slots: Int, opensAtMs: Int64)
    case lease(LeaseChange)
    /// Proposed only by the leader, after the collection `BlockClosure` describes.
    case closeBlock(BlockClosure)
}

public struct LeaseRecord: Hashable, Sendable, Codable {
    public var block: BlockID
    public var home: NodeID
    public var slots: Int
    /// Bookable from this wall time on (0: always).
    public var opensAtMs: Int64 = 0
    public var epoch: Epoch = 0
    public var holder: NodeID?
    public var holderLiveness: UInt64 = 0
    public var voters: [NodeID] = []
    public private(set) var collected: [Booking] = []
    public private(set) var collectedIDs: Set<String> = []
    /// The epoch of each collected record, by id: derived from `collected`, never stored. A
    /// replica may still hold an older record under the same id (one never acknowledged, whose
    /// retry the takeover collected): that one is not the collected record.
    public private(set) var collectedEpochs: [String: Epoch] = [:]
    /// Positions in `collected` by patient, derived like `collectedEpochs`: a quota check reads
    /// one patient's records of a bucket whose collected list may hold everyone's.
    private(set) var collectedByPatient: [String: [Int]] = [:]
    /// Positions in `collected` by slot, derived likewise: a request looks at its candidate slots
    /// (a quota bucket's slot is its patient), not at every collected record.
    private(set) var collectedBySlot: [Int: [Int]] = [:]
    /// (epoch, holder) of every grant so far, oldest first.
    public var history: [Epoch: NodeID] = [:]
    /// A quota bucket's latest trim: what its collected list no longer keeps, and the visit dates
    /// its holder no longer takes reservations for.
    public internal(set) var trim: QuotaTrim?

    mutating func setCollected(_ records: [Booking]) {
        collected = records
        collectedIDs = Set(records.map(\.id))
        collectedEpochs = Dictionary(records.map { ($0.id, $0.epoch) }, uniquingKeysWith: max)
        collectedByPatient = Dictionary(grouping: records.indices, by: { records[$0].patient })
        collectedBySlot = Dictionary(grouping: records.indices, by: { records[$0].slot })
    }

    /// The collected records of one slot.
    public func collected(inSlot slot: Int) -> [Booking] { (collectedBySlot[slot] ?? []).map { collected[$0] } }

    /// The collected records of one patient.
    public func collected(of patient: String) -> [Booking] { (collectedByPatient[patient] ?? []).map { collected[$0] } }

    enum CodingKeys: String, CodingKey {
        case block, home, slots, opensAtMs, epoch, holder, holderLiveness, voters, collected, collectedIDs, history, trim
    }
}

extension LeaseRecord {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        block = try c.decode(BlockID.self, forKey: .block)
        home = try c.decode(NodeID.self, forKey: .home)
        slots = try c.decode(Int.self, forKey: .slots)
        opensAtMs = try c.decodeIfPresent(Int64.self, forKey: .opensAtMs) ?? 0
        epoch = try c.decodeIfPresent(Epoch.self, forKey: .epoch) ?? 0
        holder = try c.decodeIfPresent(NodeID.self, forKey: .holder)
        holderLiveness = try c.decodeIfPresent(UInt64.self, forKey: .holderLiveness) ?? 0
        voters = try c.decodeIfPresent([NodeID].self, forKey: .voters) ?? []
        history = try c.decodeIfPresent([Epoch: NodeID].self, forKey: .history) ?? [:]
        trim = try c.decodeIfPresent(QuotaTrim.self, forKey: .trim)
        setCollected(try c.decodeIfPresent([Booking].self, forKey: .collected) ?? [])
    }
}

public struct ClusterState: Hashable, Sendable, Codable {
    public private(set) var members: [NodeID: MemberInfo] = [:]
    public private(set) var raftConfig: ClusterConfig
    public private(set) var liveness: [NodeID: LivenessRecord] = [:]
    /// A tree, not a hash table: the core publishes its state after every step (`ConsensusView`),
    /// and a change to a shared tree copies one path, where a shared table would copy every block.
    public private(set) var blocks: TreeDictionary<BlockID, LeaseRecord> = [:]
    /// Blocks closed for good (`BlockClosure`): never defined, leased or booked again.
    public private(set) var closed: TreeSet<BlockID> = []
    public private(set) var appliedIndex: LogIndex = 0
    public private(set) var rejected: Int = 0

    public init(config: ClusterConfig) { raftConfig = config }

    enum CodingKeys: String, CodingKey { case members, raftConfig, liveness, blocks, closed, appliedIndex, rejected }

    /// Snapshots written before blocks could close have no `closed` key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        members = try c.decode([NodeID: MemberInfo].self, forKey: .members)
        raftConfig = try c.decode(ClusterConfig.self, forKey: .raftConfig)
        liveness = try c.decode([NodeID: LivenessRecord].self, forKey: .liveness)
        blocks = try c.decode(TreeDictionary<BlockID, LeaseRecord>.self, forKey: .blocks)
        closed = try c.decodeIfPresent(TreeSet<BlockID>.self, forKey: .closed) ?? []
        appliedIndex = try c.decode(LogIndex.self, forKey: .appliedIndex)
        rejected = try c.decode(Int.self, forKey: .rejected)
    }

    public enum Role: String, Sendable { case voter, learner, none }
    /// Membership role, from the Raft configuration this state has applied.
    public func role(of n: NodeID) -> Role {
        raftConfig.isVoter(n) ? .voter : raftConfig.learners.contains(n) ? .learner : .none
    }

    public func isLive(_ n: NodeID) -> Bool {
        guard let l = liveness[n], l.live else { return false }
        return members[n]?.evicted != true
    }

    /// A lease is usable while its holder's liveness record is live at the epoch it was granted under.
    public func leaseValid(_ b: BlockID) -> Bool {
        guard let r = blocks[b], let h = r.holder, let l = liveness[h] else { return false }
        return l.live && l.epoch == r.holderLiveness && members[h]?.evicted != true
    }

    public mutating func apply(_ entry: LogEntry<ClusterCommand>) {
        appliedIndex = entry.index
        switch entry.body {
        case .noop: break
        case .config(let c):
            raftConfig = raftConfig.applying(c) ?? raftConfig
        case .command(let cmd):
            if !apply(cmd) { rejected += 1 }
        }
    }

    /// Applies one command; false if it was stale or invalid (then nothing changes).
    @discardableResult
    public mutating func apply(_ cmd: ClusterCommand) -> Bool {
        switch cmd {
        case .upsertMember(let m):
            if members[m.node]?.evicted == true { return false } // eviction is final
            members[m.node] = m
        case .evict(let n):
            guard var m = members[n] else { return false }
            m.evicted = true
            members[n] = m
            if var l = liveness[n] { l.live = false; l.epoch += 1; liveness[n] = l }
        case .renewLiveness(let n, let inc):
            guard members[n]?.evicted != true else { return false }
            guard var l = liveness[n] else {
                liveness[n] = LivenessRecord(epoch: 1, incarnation: inc, live: true)
                return true
            }
            if inc < l.incarnation { return false }
            if inc > l.incarnation { l.epoch += 1; l.incarnation = inc } // a restart loses the old leases
            else if l.live { return false }
            l.live = true
            liveness[n] = l
        case .expireLiveness(let n, let e):
            guard var l = liveness[n], l.live, l.epoch == e else { return false }
            l.live = false
            l.epoch += 1
            liveness[n] = l
        case .defineBlock(let b, let home, let slots):
            guard blocks[b] == nil, !closed.contains(b) else { return false }
            blocks[b] = LeaseRecord(block: b, home: home, slots: slots)
        case .defineSession(let b, let home, let slots, let opensAt):
            guard blocks[b] == nil, !closed.contains(b) else { return false }
            blocks[b] = LeaseRecord(block: b, home: home, slots: slots, opensAtMs: opensAt)
        case .lease(let c):
            guard var r = blocks[c.block], c.fromEpoch == r.epoch, c.toEpoch > r.epoch else { return false }
            guard let l = liveness[c.holder], l.live, l.epoch == c.holderLiveness else { return false }
            r.epoch = c.toEpoch
            r.holder = c.holder
            r.holderLiveness = c.holderLiveness
            r.voters = c.voters
            // Every takeover keeps to the bucket's trim, whether or not its leader knew of it.
            if isQuotaBucket(c.block) { r.trim = QuotaTrim.latest(r.trim, c.trim) }
            r.setCollected(r.trim.map { $0.kept(c.collected) } ?? c.collected)
            r.history[c.toEpoch] = c.holder
            blocks[c.block] = r
        case .closeBlock(let c):
            guard let r = blocks[c.block], c.fromEpoch == r.epoch, c.toEpoch > r.epoch else { return false }
            blocks[c.block] = nil
            closed.insert(c.block)
        }
        return true
    }

    public mutating func restore(config: ClusterConfig) { raftConfig = config }
}

/// Whether a record is valid, derived from the lease history a replica knows (never stored):
/// made under the block's current epoch, or carried forward by the committed takeover. Whether a
/// valid booking still holds its slot is `slotViews`' question (a later release supersedes it).
public enum BookingStatus: Sendable, Equatable { case active, inactive, unknown }

public func bookingStatus(_ b: Booking, in state: ClusterState) -> BookingStatus {
    guard let r = state.blocks[b.block] else { return .unknown }
    if b.epoch > r.epoch { return .unknown }
    if b.epoch == r.epoch || r.collectedEpochs[b.id] == b.epoch { return .active }
    return .inactive
}

/// What a replica can say about each slot of a block from the bookings it holds.
public enum SlotView: Sendable, Equatable { case free, booked(Booking), unknown }

/// Per slot, the valid records of its highest generation (one, unless the protocol broke: two
/// records for one slot generation is a double booking). `unknown` for the whole block while a
/// record under an epoch newer than this replica's history exists.
public func slotViews(block: BlockID, bookings: [Booking], state: ClusterState, slots: Set<Int>? = nil) -> (views: [Int: [Booking]], unknown: Bool) {
    guard let r = state.blocks[block] else { return ([:], true) }
    return slotViews(record: r, bookings: bookings, slots: slots)
}

/// `slotViews` from the block's lease record (its current epoch and collected records); with
/// `slots`, of those slots only (`bookings` must then be theirs).
public func slotViews(record r: LeaseRecord, bookings: [Booking], slots: Set<Int>? = nil) -> (views: [Int: [Booking]], unknown: Bool) {
    let block = r.block
    var current: [Int: [Booking]] = [:]
    func add(_ b: Booking) {
        guard let top = current[b.slot]?.first else { current[b.slot] = [b]; return }
        if b.generation > top.generation { current[b.slot] = [b] }
        else if b.generation == top.generation, !current[b.slot]!.contains(where: { $0.id == b.id && $0.epoch == b.epoch }) { current[b.slot]!.append(b) }
    }
    // A refusal takes no slot (no slot status).
    let collected = slots.map { $0.sorted().flatMap(r.collected(inSlot:)) } ?? r.collected
    for b in collected where b.kind.slotStatus != nil { add(b) }
    for b in bookings where b.block == block {
        if b.epoch > r.epoch { return ([:], true) }
        if b.epoch == r.epoch, !r.collectedIDs.contains(b.id), b.kind.slotStatus != nil { add(b) }
    }
    return (current, false)
}

/// The booking that holds a slot now, from its `slotViews` entry (nil: free, or released): the
/// one current record, which leaves its slot busy or busy-tentative.
public func holdingBooking(_ current: [Booking]?) -> Booking? {
    guard let c = current, c.count == 1 else { return nil }
    switch c[0].kind.slotStatus {
    case .busy?, .busyTentative?: return c[0]
    default: return nil
    }
}
