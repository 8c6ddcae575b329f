import Domain
import HashTreeCollections

// The booking-side protocol, one Paxos instance per block: the epoch is the ballot, a takeover
// is phase 1 (prepare/promise), a quorum-accepted booking is phase 2. Pure value; the shell
// carries `send`, makes `persist` durable, then calls `persisted(upTo:)`.

public enum LeaseMessage: Sendable, Equatable {
    /// Holder -> voter of the epoch: durably accept this booking.
    case accept(Booking)
    case acceptReply(bookingID: String, block: BlockID, epoch: Epoch, ok: Bool)
    /// Leader -> voter of the current epoch: phase 1 of a takeover to `epoch`.
    case prepare(block: BlockID, epoch: Epoch)
    /// `ok`: the voter durably recorded `epoch` and lists the block's bookings; else `epoch` is
    /// the higher epoch it already promised.
    case promise(block: BlockID, epoch: Epoch, ok: Bool, bookings: [Booking])
    /// Node -> leader: I am alive in this incarnation.
    case renew(incarnation: UInt64)
    /// Node -> leader, on a clean shutdown: end my liveness now, so my blocks move at once.
    case resign(incarnation: UInt64)
    /// Anti-entropy: booking records travel between replicas in any order, duplicated or late.
    case gossip([Booking])
    /// Holder -> voter of the epoch: is `epoch` still the newest you promised for `block`? Asked
    /// before a retry is answered from the holder's records (`BookingNode.confirmThenAnswer`).
    case confirm(block: BlockID, epoch: Epoch, round: UInt64)
    case confirmReply(block: BlockID, epoch: Epoch, round: UInt64, ok: Bool)
    /// Holder -> leader: voters refuse my accepts under `epoch`, the block's current one, because
    /// they promised a newer epoch in a takeover that never committed. Only a new takeover (to the
    /// same holder, above that promise) can make the block bookable again.
    case epochRefused(block: BlockID, epoch: Epoch)
}

public struct LeaseEnvelope: Sendable, Equatable {
    public var from: NodeID
    public var to: NodeID
    public var body: LeaseMessage
    public init(from: NodeID, to: NodeID, body: LeaseMessage) { self.from = from; self.to = to; self.body = body }
}

public struct BookingRequest: Sendable, Equatable {
    public var id: String
    public var block: BlockID
    public var slot: Int
    public var patient: String
    /// Other slots that will do as well: the first free one of `[slot] + alternatives` is booked
    /// (any slot of a session; a free place in a quota bucket).
    public var alternatives: [Int]
    /// Set to release this booking (by its request id) instead of booking: the slot becomes free.
    /// Naming a hold releases it whether or not it was confirmed since.
    public var releases: String?
    /// Set to confirm this hold (by its request id): the slot stays the patient's for good.
    public var confirms: String?
    /// For a hold: how long it stays unconfirmed before the holder releases it (ms; 0: not a hold).
    public var holdMs: Int64
    /// Carried into the record (a quota reservation: `QuotaTag.encoded`; a strike: `Strike.encoded`).
    public var tag: String
    /// How many nodes passed it on towards the holder.
    public var hops: UInt8
    /// Set to ask only for the first outcome of an earlier attempt: a holder with no record of the
    /// request refuses it `unknownRequest` and records nothing.
    public var onlyIfKnown: Bool
    public init(id: String, block: BlockID, slot: Int, patient: String, alternatives: [Int] = [], releases: String? = nil,
                confirms: String? = nil, holdMs: Int64 = 0, tag: String = "", hops: UInt8 = 0, onlyIfKnown: Bool = false) {
        self.id = id; self.block = block; self.slot = slot; self.patient = patient
        self.alternatives = alternatives; self.releases = releases; self.confirms = confirms; self.holdMs = holdMs
        self.tag = tag; self.hops = hops; self.onlyIfKnown = onlyIfKnown
    }

    /// Names an existing booking (a release or a confirmation) rather than taking a free slot.
    var targets: String? { releases ?? confirms }

    public var candidates: [Int] { [slot] + alternatives }
}

public enum RefuseReason: String, Sendable, Equatable, CaseIterable {
    /// No live holder for the block right now (failover under way, or the block is unknown here).
    case noHolder
    case slotTaken
    case noSuchSlot
    case notHolder
    /// The request id was used before for another patient or slot.
    case requestMismatch
    /// A release names a booking that does not hold its slot (never made, or already released).
    case notBooked
    /// A retry of a booking that has since been released (cancelled).
    case released
    /// The session is not open for booking yet (by the holder's clock).
    case notYetOpen
    /// The patient's quota (per visit date, per department, ...) is used up.
    case quotaExceeded
    /// The patient's quota bucket cannot be reached now: refused rather than booked unchecked.
    case quotaUnavailable
    /// A confirmation came after its hold ran out (by the holder's clock), or the hold was released.
    case holdExpired
    /// The patient is banned from booking for now (no-shows or late cancellations: `BanRule`).
    case banned
    /// An `onlyIfKnown` request the holder has no record of: nothing was done.
    case unknownRequest
    // The floor's (`FloorCommand`); refused without a record, as they change nothing.
    /// The session's queue is closed: its session is over.
    case sessionClosed
    /// Checking in an appointment the session has no confirmed booking for.
    case noAppointment
    /// Checking in a patient who already did (waiting, called or seen).
    case alreadyArrived
    /// The patient called now is not the one the asking screen showed: someone acted first.
    case queueChanged
    /// Nobody is waiting and nobody is called.
    case queueEmpty
    // The pharmacy's (`StockCommand`); refused without a record, as they move nothing.
    /// Not enough packages of a batch for the movement.
    case stockShort
    /// The batch is past its expiry date (by the holder's clock).
    case batchExpired
    /// The pharmacy has no such batch of the drug.
    case unknownBatch
    /// A receipt names a known batch with another expiry date.
    case batchMismatch
    /// The prescription was dispensed already (at this window or another).
    case alreadyDispensed
    /// A return for a prescription that was never dispensed.
    case notDispensed
    /// A return of more than was dispensed (and not yet returned).
    case returnTooMuch
}

extension Booking {
    /// The same booking a request asks for (a retry), not another one under a reused id.
    func matches(_ q: BookingRequest) -> Bool {
        // A refusal record names no slot or target: the request's id, block and patient say it is the same.
        if case .refusal = kind { return block == q.block && patient == q.patient }
        // A floor record's slot and patient are its subject's, which the command may not name.
        if case .floor = kind { return block == q.block && FloorCommand(requestTag: q.tag) != nil }
        if case .stock(let r) = kind { return block == q.block && StockCommand(requestTag: q.tag)?.event == r.event }
        return block == q.block && patient == q.patient && kind.released == q.releases && kind.confirmed == q.confirms && q.candidates.contains(slot)
    }
}

/// The tag of a reservation's release made because its booking was refused for good.
enum RefusalRelease {
    private static let prefix = "refused|"
    static func tag(_ reason: RefuseReason) -> String { prefix + reason.rawValue }
    static func reason(tag: String) -> RefuseReason? {
        tag.hasPrefix(prefix) ? RefuseReason(rawValue: String(tag.dropFirst(prefix.count))) : nil
    }
}

/// Blocks whose records are quota reservations (`ConsensusCore` defines and uses them).
public let quotaBucketPrefix = "quota/"
/// Request ids of the holder's own releases of holds that ran out: `expire:<hold id>` (the
/// expiry's kind, as the wire and the log say it).
public let holdExpiryPrefix = "expire:"

/// A write to the node's booking store: the promised epoch of a block and/or booking records,
/// closed blocks whose records and promises the store forgets (`BlockClosure`), or records that
/// became inactive for good and are deleted (`drop`, after a quota bucket's trim).
public struct BookingWrite: Sendable, Equatable {
    public var seq: UInt64
    public var promise: (block: BlockID, epoch: Epoch)?
    public var records: [Booking]
    public var forget: [BlockID]
    public var drop: [RecordRef]
    public init(seq: UInt64, promise: (block: BlockID, epoch: Epoch)?, records: [Booking], forget: [BlockID] = [], drop: [RecordRef] = []) {
        self.seq = seq; self.promise = promise; self.records = records; self.forget = forget; self.drop = drop
    }
    public static func == (a: BookingWrite, b: BookingWrite) -> Bool {
        a.seq == b.seq && a.records == b.records && a.promise?.block == b.promise?.block && a.promise?.epoch == b.promise?.epoch
            && a.forget == b.forget && a.drop == b.drop
    }
}

/// One record version: the record of request `id` in `block` made under `epoch` (a later version
/// under the same id is another record, which a drop of this one leaves alone).
public struct RecordRef: Sendable, Hashable {
    public var block: BlockID
    public var id: String
    public var epoch: Epoch
    public init(block: BlockID, id: String, epoch: Epoch) { self.block = block; self.id = id; self.epoch = epoch }
    public init(_ b: Booking) { self.init(block: b.block, id: b.id, epoch: b.epoch) }

    /// Whether a drop of this version deletes `b` (this version or an older one of the request).
    public func drops(_ b: Booking) -> Bool { b.block == block && b.id == id && b.epoch <= epoch }
}

/// What survives a crash of the booking store (only writes the shell made durable).
public struct BookingDurableState: Sendable, Equatable {
    public private(set) var promised: [BlockID: Epoch] = [:]
    /// The records with their indexes, in persistent trees: the core publishes them after every
    /// step (`ConsensusView`) at the cost of a copied path per write, never a copied table.
    public private(set) var index = BookingRecordIndex()

    public init() {}

    public var records: TreeDictionary<String, Booking> { index.records }
    public var versions: TreeDictionary<BlockID, UInt64> { index.versions }

    /// The same promises and records (indexes and versions follow from them).
    public static func == (a: Self, b: Self) -> Bool { a.promised == b.promised && a.index.records == b.index.records }

    public mutating func apply(_ w: BookingWrite) {
        for b in w.forget {
            // Final: after a restart the cluster state may not know of the closure yet, and this
            // voter must not accept a record for the block meanwhile.
            promised[b] = .max
            index.forget(b)
        }
        for ref in w.drop where index.records[ref.id].map(ref.drops) == true { index.remove(ref.id) }
        if let p = w.promise { promised[p.block] = max(promised[p.block] ?? 0, p.epoch) }
        for r in w.records where Self.supersedes(r, index.records[r.id]) { index.put(r) }
    }

    /// The blocks this store holds records of, or promises that are not final.
    public var blocks: Set<BlockID> { Set(index.blocks).union(promised.filter { $0.value != .max }.keys) }

    /// One record per request: the latest epoch it was made under (an older one is inactive).
    package static func supersedes(_ new: Booking, _ old: Booking?) -> Bool { (old?.epoch ?? 0) <= new.epoch }

    public func records(in block: BlockID) -> [Booking] { index.records(in: block) }
    public func records(in block: BlockID, slot: Int) -> [Booking] { index.records(in: block, slot: slot) }
    public func records(of patient: String) -> [Booking] { index.records(of: patient) }
    public func releases(of bookingID: String) -> [Booking] { index.releases(of: bookingID) }
}

/// Booking records, one per request id, with the indexes a request or a reader looks through (its
/// block, its slot, the patient's records, the releases of one booking), never every record.
public struct BookingRecordIndex: Sendable {
    public private(set) var records: TreeDictionary<String, Booking> = [:]
    /// A block's records themselves, not their ids: the slot search's availability reads a hot
    /// block's whole list again whenever it moves, hundreds of times a second at the rush.
    private var byBlock: TreeDictionary<BlockID, TreeDictionary<String, Booking>> = [:]
    private var idsBySlot: TreeDictionary<SlotKey, TreeSet<String>> = [:]
    private var idsByPatient: TreeDictionary<String, TreeSet<String>> = [:]
    private var releasesOf: TreeDictionary<String, TreeSet<String>> = [:]
    /// Grows whenever a record of the block is written: views derived from a block's records
    /// (the slot search's availability) are kept until it moves.
    public private(set) var versions: TreeDictionary<BlockID, UInt64> = [:]
    struct SlotKey: Hashable { var block: BlockID; var slot: Int }

    /// Adds `r`, or replaces the record of its request id.
    mutating func put(_ r: Booking) {
        if let old = records[r.id] {
            // A request remade under a later epoch may take another slot: it leaves the old one's index.
            if old.block != r.block || old.slot != r.slot || old.patient != r.patient || old.kind.released != r.kind.released {
                removeFromIndexes(old)
            }
        }
        records[r.id] = r
        byBlock[r.block, default: [:]][r.id] = r
        idsBySlot[SlotKey(block: r.block, slot: r.slot), default: []].insert(r.id)
        idsByPatient[r.patient, default: []].insert(r.id)
        if let target = r.kind.released { releasesOf[target, default: []].insert(r.id) }
        versions[r.block, default: 0] += 1
    }

    /// Deletes one record, with its index entries.
    mutating func remove(_ id: String) {
        guard let r = records.removeValue(forKey: id) else { return }
        removeFromIndexes(r)
        versions[r.block, default: 0] += 1
    }

    /// Drops a closed block's records, with their index entries.
    mutating func forget(_ block: BlockID) {
        versions[block] = nil
        guard let gone = byBlock.removeValue(forKey: block) else { return }
        for r in gone.values {
            records[r.id] = nil
            removeFromIndexes(r)
        }
    }

    private mutating func removeFromIndexes(_ r: Booking) {
        if byBlock[r.block] != nil {
            byBlock[r.block]![r.id] = nil
            if byBlock[r.block]!.isEmpty { byBlock[r.block] = nil }
        }
        Self.remove(r.id, from: &idsBySlot, at: SlotKey(block: r.block, slot: r.slot))
        Self.remove(r.id, from: &idsByPatient, at: r.patient)
        if let target = r.kind.released { Self.remove(r.id, from: &releasesOf, at: target) }
    }

    private static func remove<K: Hashable>(_ id: String, from index: inout TreeDictionary<K, TreeSet<String>>, at key: K) {
        guard var ids = index.removeValue(forKey: key) else { return }
        ids.remove(id)
        if !ids.isEmpty { index[key] = ids }
    }

    /// The blocks with records here.
    public var blocks: some Collection<BlockID> { byBlock.keys }

    public func records(in block: BlockID) -> [Booking] { byBlock[block].map { Array($0.values) } ?? [] }
    /// The records of one slot of a block (a release and a confirmation are on their hold's slot).
    public func records(in block: BlockID, slot: Int) -> [Booking] {
        (idsBySlot[SlotKey(block: block, slot: slot)] ?? []).compactMap { records[$0] }
    }
    public func records(of patient: String) -> [Booking] { (idsByPatient[patient] ?? []).compactMap { records[$0] } }
    /// The release records that name `bookingID`.
    public func releases(of bookingID: String) -> [Booking] { (releasesOf[bookingID] ?? []).compactMap { records[$0] } }
}

public enum BookingAction: Sendable, Equatable {
    case send(LeaseEnvelope)
    case persist(BookingWrite)
    /// The patient may be told: quorum-durable under an epoch no voter knew to be superseded.
    case acknowledged(Booking)
    case refused(requestID: String, reason: RefuseReason)
    case forward(BookingRequest, to: NodeID)
    /// A voter refused an accept under the epoch this node holds `block` at (see
    /// `LeaseMessage.epochRefused`): the leader must move the block to a new epoch.
    case epochRefused(block: BlockID, epoch: Epoch)
}

public struct BookingOptions: Sendable {
    /// Ticks after which every voter that has not accepted a round is asked (again).
    public var retryTicks = 20
    /// Ticks after which a round still short of its quorum also asks the voters its first quorum
    /// left out: one voter whose disk stalls (a VM's fsync can take 200 ms) then costs this long,
    /// not `retryTicks`. Later than a round under load usually takes, so it rarely adds a message.
    public var hedgeTicks = 5
    /// The rules a quota bucket's holder checks reservations against.
    public var quotaPolicy = QuotaPolicy.standard
    #if CLINICMESH_BUG_SWITCHES
    /// Bug switch: answer a prepare without recording the new epoch.
    public var bugPromiseWithoutRecording = false
    /// Bug switch: acknowledge after the first voter accepts instead of a quorum.
    public var bugAckBeforeQuorum = false
    /// Bug switch: book the next generation of a slot that a booking still holds.
    public var bugBookOverBooking = false
    /// Bug switch: a quota bucket's holder does not count pending (unacknowledged) reservations.
    public var bugQuotaIgnoresPending = false
    /// Bug switch: a holder restarted after a crash goes on booking under its pre-crash lease.
    public var bugBookAfterRestart = false
    /// Bug switch: a voter replies to an accept before the booking is durable.
    public var bugAcceptReplyBeforeDurable = false
    /// Bug switch: a quota bucket's trim drops every reservation before the first visit date
    /// still bookable, including those the quota windows of later visits count.
    public var bugTrimDropsCounted = false
    #endif
    public init() {}
}

public struct BookingNode: Sendable {
    struct Pending: Sendable {
        var booking: Booking
        var voters: [NodeID]
        var acks: Set<NodeID> = []
        /// Voters sent this round's accept (the first quorum, then everyone).
        var asked: Set<NodeID> = []
        var sinceSend = 0
    }

    public let id: NodeID
    /// Bumped by the shell on every process start; leases granted to an older one are not used.
    public let incarnation: UInt64
    public let options: BookingOptions
    /// Everything written, durable or not yet; the shell's durable copy is what survives a crash.
    public private(set) var store: BookingDurableState
    /// Persistent, like the store: the published view answers "still pending?" from it.
    private(set) var pending: TreeDictionary<String, Pending> = [:]
    /// Slot generations this process already proposed a value for under an epoch: one value per
    /// (slot, generation) per ballot.
    private var tried: [BlockID: (epoch: Epoch, slots: [SlotGeneration: String])] = [:]
    struct SlotGeneration: Hashable { var slot: Int; var generation: UInt32 }
    private var acked: Set<String> = []
    /// Answers to retries waiting for a quorum to confirm this holder's epoch, per block: the
    /// round in flight and the answers that came in after it was sent (they wait for the next).
    struct Confirmation: Sendable {
        var epoch: Epoch
        var round: UInt64
        var voters: [NodeID]
        var acks: Set<NodeID> = []
        var answers: [Booking]
        var next: [Booking] = []
        var sinceSend = 0
    }
    private var confirmations: [BlockID: Confirmation] = [:]
    private var confirmRounds: UInt64 = 0
    private var persistSeq: UInt64 = 0
    private var durableSeq: UInt64 = 0
    private var held: [(UInt64, LeaseEnvelope)] = []
    private var out: [BookingAction] = []
    /// Peers the shell cannot reach now (`ConsensusCore.setUnreachable`): not asked first in a
    /// round, not passed requests, and not counted towards a quorum a new round could reach.
    public var unreachable: Set<NodeID> = []

    public init(id: NodeID, incarnation: UInt64, options: BookingOptions = .init(), restoring: BookingDurableState = .init()) {
        self.id = id; self.incarnation = incarnation; self.options = options; self.store = restoring
    }

    public var pendingCount: Int { pending.count }
    /// Proposed here and not yet quorum-durable (nobody has been told).
    public func isPending(_ id: String) -> Bool { pending[id] != nil }

    /// True if this process may book in `block` now, according to the history it has applied.
    public func holds(_ block: BlockID, in state: ClusterState) -> Bool {
        #if CLINICMESH_BUG_SWITCHES
        if options.bugBookAfterRestart, let r = state.blocks[block], r.holder == id, state.leaseValid(block) { return true }
        #endif
        return Self.holds(block, id: id, incarnation: incarnation, in: state)
    }

    /// Whether process `incarnation` of node `id` holds a valid lease on `block` in `state`.
    static func holds(_ block: BlockID, id: NodeID, incarnation: UInt64, in state: ClusterState) -> Bool {
        guard let r = state.blocks[block], r.holder == id, state.leaseValid(block) else { return false }
        return state.liveness[id]?.incarnation == incarnation
    }

    private mutating func persist(promise: (BlockID, Epoch)? = nil, records: [Booking] = [], forget: [BlockID] = [], drop: [RecordRef] = []) {
        persistSeq += 1
        let w = BookingWrite(seq: persistSeq, promise: promise.map { (block: $0.0, epoch: $0.1) }, records: records, forget: forget, drop: drop)
        store.apply(w)
        out.append(.persist(w))
    }
    private mutating func sendDurable(_ e: LeaseEnvelope) {
        if durableSeq >= persistSeq { out.append(.send(e)) } else { held.append((persistSeq, e)) }
    }
    private mutating func drain() -> [BookingAction] {
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    public mutating func persisted(upTo seq: UInt64) -> [BookingAction] {
        guard seq > durableSeq else { return [] }
        durableSeq = seq
        var keep: [(UInt64, LeaseEnvelope)] = []
        for h in held { if h.0 <= seq { out.append(.send(h.1)) } else { keep.append(h) } }
        held = keep
        return drain()
    }

    /// Forgets closed blocks (`BlockClosure`): their records and promises leave the store (and,
    /// by the write, the booking log), with every trace of them in this process.
    public mutating func forget(_ blocks: [BlockID]) -> [BookingAction] {
        let known = store.blocks
        let held = blocks.filter { known.contains($0) || tried[$0] != nil }
        guard !held.isEmpty else { return [] }
        for b in held {
            for r in store.records(in: b) { acked.remove(r.id) }
            tried[b] = nil
        }
        let closing = Set(held)
        pending = pending.filter { !closing.contains($0.value.booking.block) }
        persist(forget: held.sorted())
        return drain()
    }

    /// Deletes `block`'s records that are inactive for good: made under an epoch before the current
    /// one and not carried forward by its takeover, so no later takeover collects them either (it
    /// collects the current epoch's records and the collected ones). Run after a quota bucket's trim,
    /// which leaves the records it drops in exactly that state.
    public mutating func dropInactive(in block: BlockID, state: ClusterState) -> [BookingAction] {
        guard let r = state.blocks[block] else { return [] }
        let gone = store.records(in: block).filter { $0.epoch < r.epoch && r.collectedEpochs[$0.id] != $0.epoch }
        guard !gone.isEmpty else { return [] }
        for b in gone { acked.remove(b.id) }
        persist(drop: gone.map(RecordRef.init).sorted { $0.id < $1.id })
        return drain()
    }

    // MARK: Holder

    /// `wallMs`: the holder's wall clock (release windows, re-offer delays: policy, never safety).
    /// `reofferDelayMs`: how long a slot this request releases stays off offer.
    public mutating func request(_ q: BookingRequest, state: ClusterState, wallMs: Int64, reofferDelayMs: Int64 = 0) -> [BookingAction] {
        // A closed block's session is long over: nothing more is booked or released in it.
        if state.closed.contains(q.block) { return [.refused(requestID: q.id, reason: .noSuchSlot)] }
        guard let r = state.blocks[q.block] else { return [.refused(requestID: q.id, reason: .noHolder)] }
        // Only the holder answers, retries included: only it knows this epoch's records (a
        // cancellation made since a takeover is not in the takeover's list).
        guard holds(q.block, in: state) else {
            if let h = r.holder, h != id, state.leaseValid(q.block), !unreachable.contains(h) { return [.forward(q, to: h)] }
            return [.refused(requestID: q.id, reason: .noHolder)]
        }
        // A retry of a request a takeover carried forward: its first outcome, unless released since.
        if r.collectedIDs.contains(q.id), let b = r.collected.first(where: { $0.id == q.id }) {
            guard b.matches(q) else { return [.refused(requestID: q.id, reason: .requestMismatch)] }
            if releasedSince(b, r, state: state) { return [.refused(requestID: q.id, reason: retryAfterRelease(of: b, r, state: state))] }
            confirmThenAnswer(b, r)
            return drain()
        }
        guard q.candidates.allSatisfy({ $0 >= 0 && $0 < r.slots }), q.alternatives.count <= 64 else {
            return [.refused(requestID: q.id, reason: .noSuchSlot)]
        }
        if let b = store.records[q.id] {
            guard b.matches(q) else { return [.refused(requestID: q.id, reason: .requestMismatch)] }
            switch bookingStatus(b, in: state) {
            case .active where releasedSince(b, r, state: state):
                return [.refused(requestID: q.id, reason: retryAfterRelease(of: b, r, state: state))]
            case .active where b.epoch == r.epoch:
                // Made by this process under the epoch it holds: answered, or its answer is coming.
                if acked.contains(b.id) { confirmThenAnswer(b, r); return drain() }
                if pending[b.id] == nil { propose(b, voters: r.voters, state: state) }
                return drain()
            case .active:
                confirmThenAnswer(b, r)
                return drain()
            case .unknown:
                return [.refused(requestID: q.id, reason: .noHolder)]
            case .inactive:
                break // never acknowledged: book it afresh under this epoch
            }
        }
        if q.onlyIfKnown {
            // The asking node saw the session full and answers slot_taken. In the patient's quota
            // bucket that answer is made durable under the request's id, so that a retry (through
            // any node, after its view of the session changed) hears it again, not a new outcome.
            guard isQuotaBucket(q.block), let asked = q.recordKind(wallMs: wallMs) else { return [.refused(requestID: q.id, reason: .unknownRequest)] }
            return refuse(q, asked, .slotTaken, r, state: state)
        }
        // A pharmacy's block takes stock movements and nothing else; no other block takes them.
        if isPharmacyBlock(q.block) {
            guard let command = StockCommand(requestTag: q.tag) else { return [.refused(requestID: q.id, reason: .noSuchSlot)] }
            return stock(q, command, r, state: state, wallMs: wallMs)
        }
        if let command = FloorCommand(requestTag: q.tag), !isQuotaBucket(q.block) {
            return floor(q, command, r, state: state)
        }
        // The record asked for. Fields that say no kind (a session's booking whose tag is not a
        // quota; a bucket's record that is neither a reservation nor a strike) fit no slot.
        guard let asked = q.recordKind(wallMs: wallMs) else { return [.refused(requestID: q.id, reason: .noSuchSlot)] }
        let takesFreeSlot = asked.released == nil && asked.confirmed == nil
        if takesFreeSlot, r.opensAtMs > 0, wallMs < r.opensAtMs {
            return refuse(q, asked, .notYetOpen, r, state: state)
        }
        // A strike (no-show, late cancellation) is only recorded; a reservation is checked.
        if case .quotaReservation(let tag) = asked {
            // A visit this long ago: its session is closed or closing, and the trimmed records
            // its windows (by this holder's rules) would count are gone.
            if let trim = r.trim, tag.visitDay < max(trim.visitsFrom, trim.reservationsBefore + options.quotaPolicy.longestWindowDays) {
                return refuse(q, asked, .noSuchSlot, r, state: state)
            }
            let today = ShanghaiTime.unixDay(wallMs: wallMs)
            if options.quotaPolicy.ban(strikes: strikes(of: q.patient, in: q.block, state: state), today: today) != nil {
                return refuse(q, asked, .banned, r, state: state)
            }
            if options.quotaPolicy.broken(by: tag, held: heldReservations(of: q.patient, in: q.block, state: state)) != nil {
                return refuse(q, asked, .quotaExceeded, r, state: state)
            }
        }
        if tried[q.block]?.epoch != r.epoch { tried[q.block] = (r.epoch, [:]) }
        let candidates = Set(q.candidates)
        let mine = candidates.flatMap { store.records(in: q.block, slot: $0) }
        let view = slotViews(block: q.block, bookings: mine, state: state, slots: candidates)
        // Records newer than our history: we cannot say; a retryable answer, never a final one.
        if view.unknown { return [.refused(requestID: q.id, reason: .noHolder)] }
        // The next generation of the first candidate slot whose status the transition table lets
        // the record follow (for a release: the slot whose current record is the booking to
        // release, for the same patient).
        var chosen: (slot: Int, generation: UInt32)?
        for slot in q.candidates {
            let current = view.views[slot]
            let next = (current?.map(\.generation).max()).map { $0 + 1 } ?? 0
            if tried[q.block]!.slots[SlotGeneration(slot: slot, generation: next)] != nil { continue }
            guard asked.mayFollow(slotStatus(current, wallMs: wallMs)) else {
                #if CLINICMESH_BUG_SWITCHES
                if options.bugBookOverBooking, takesFreeSlot { chosen = (slot, next); break }
                #endif
                continue
            }
            switch asked {
            case .confirmation(let hold, _), .expiry(let hold):
                // Only the patient's unconfirmed hold is confirmed or expired; a confirmation comes in time.
                guard let held = holdingBooking(current), held.patient == q.patient, held.id == hold, case .hold(let until, _) = held.kind else { continue }
                if case .confirmation = asked, wallMs >= until { return refuse(q, asked, .holdExpired, r, state: state) }
                if case .expiry = asked, wallMs < until { continue }
            case .cancellation(let target), .release(let target, _):
                guard let held = holdingBooking(current), held.patient == q.patient, held.id == target || held.kind.confirmed == target else { continue }
            case .booking, .hold, .quotaReservation, .strike, .refusal, .floor, .stock:
                break
            }
            chosen = (slot, next)
            break
        }
        guard let (slot, generation) = chosen else {
            switch asked {
            case .confirmation(let hold, _):
                let gone = store.releases(of: hold).contains { bookingStatus($0, in: state) == .active } || r.collected.contains { $0.kind.released == hold }
                return refuse(q, asked, gone ? .holdExpired : .notBooked, r, state: state)
            case .cancellation, .expiry, .release:
                return refuse(q, asked, .notBooked, r, state: state)
            case .booking, .hold, .quotaReservation, .strike, .refusal, .floor, .stock:
                return refuse(q, asked, .slotTaken, r, state: state)
            }
        }
        guard quorumReachable(r) else { return [.refused(requestID: q.id, reason: .noHolder)] }
        tried[q.block]!.slots[SlotGeneration(slot: slot, generation: generation)] = q.id
        let b = Booking(id: q.id, block: q.block, slot: slot, patient: q.patient, epoch: r.epoch, generation: generation, kind: asked,
                        reofferAtMs: asked.released == nil ? 0 : wallMs + reofferDelayMs)
        persist(records: [b])
        propose(b, voters: r.voters, state: state)
        return drain()
    }

    /// The next floor record of `q.block`, numbered after every valid one this holder has (its own
    /// still short of their quorum included), so two commands never act on the same queue.
    private mutating func floor(_ q: BookingRequest, _ command: FloorCommand, _ r: LeaseRecord, state: ClusterState) -> [BookingAction] {
        let own = store.records(in: q.block)
        if own.contains(where: { $0.epoch > r.epoch }) { return [.refused(requestID: q.id, reason: .noHolder)] }
        let valid = r.collected + own.filter { $0.epoch == r.epoch && !r.collectedIDs.contains($0.id) }
        let queue = SessionQueue(records: valid)
        let event: FloorEvent
        switch queue.decide(command) {
        case .refused(let reason): return [.refused(requestID: q.id, reason: reason)]
        case .event(let e): event = e
        }
        guard quorumReachable(r) else { return [.refused(requestID: q.id, reason: .noHolder)] }
        let subject = queue.subject(of: event)
        let b = Booking(id: q.id, block: q.block, slot: subject?.slot ?? -1, patient: subject?.patient ?? q.patient, epoch: r.epoch,
                        kind: .floor(FloorRecord(seq: queue.lastSeq + 1, event: event)))
        persist(records: [b])
        propose(b, voters: r.voters, state: state)
        return drain()
    }

    /// The next stock record of `q.block`, decided from the valid records this holder has. Its own
    /// dispensings still short of their quorum count (they only take stock away, so two windows
    /// never take the same packages); its receipts and returns still short of theirs do not (a
    /// takeover may lose them): a decision that would rest on one waits (a retryable refusal).
    private mutating func stock(_ q: BookingRequest, _ command: StockCommand, _ r: LeaseRecord, state: ClusterState, wallMs: Int64) -> [BookingAction] {
        let own = store.records(in: q.block)
        if own.contains(where: { $0.epoch > r.epoch }) { return [.refused(requestID: q.id, reason: .noHolder)] }
        let mine = own.filter { $0.epoch == r.epoch && !r.collectedIDs.contains($0.id) }
        let settled = r.collected + mine.filter { pending[$0.id] == nil }
        let unsettled = mine.filter { pending[$0.id] != nil }
        let takings = unsettled.filter { if case .stock(let s) = $0.kind, case .dispense = s.event { return true }; return false }
        let ledger = StockLedger(records: settled + takings)
        let everything = StockLedger(records: settled + unsettled)
        let today = ShanghaiTime.unixDay(wallMs: wallMs)
        let event: StockEvent
        switch ledger.decide(command, today: today) {
        case .refused(let reason):
            // Refused only for want of a receipt or a dispensing still short of its quorum: ask again shortly.
            if case .event = everything.decide(command, today: today) { return [.refused(requestID: q.id, reason: .noHolder)] }
            return [.refused(requestID: q.id, reason: reason)]
        case .event(let e):
            // A return gives back packages of a dispensing: that dispensing must have its quorum.
            if case .returned(let rx, _) = e, StockLedger(records: settled).dispensed[rx] == nil { return [.refused(requestID: q.id, reason: .noHolder)] }
            event = e
        }
        guard quorumReachable(r) else { return [.refused(requestID: q.id, reason: .noHolder)] }
        let b = Booking(id: q.id, block: q.block, slot: -1, patient: q.patient, epoch: r.epoch,
                        kind: .stock(StockRecord(seq: everything.lastSeq + 1, atMs: max(wallMs, everything.lastAtMs), event: event)))
        persist(records: [b])
        propose(b, voters: r.voters, state: state)
        return drain()
    }

    /// Answers a retry with the booking it made, once a quorum of the epoch's voters confirms
    /// that no newer epoch was promised since the retry came: a holder paused or cut off while
    /// its block was taken over (and the booking released there) must not say "booked" from its
    /// stale records. A refusal for good needs no round: it stays true.
    private mutating func confirmThenAnswer(_ b: Booking, _ r: LeaseRecord) {
        if b.isRefusal {
            out.append(.acknowledged(b))
            return
        }
        if var c = confirmations[r.block], c.epoch == r.epoch {
            if !c.next.contains(b) { c.next.append(b) }
            confirmations[r.block] = c
            return
        }
        startConfirmation(r.block, epoch: r.epoch, voters: r.voters, answers: [b])
    }

    private mutating func startConfirmation(_ block: BlockID, epoch: Epoch, voters: [NodeID], answers: [Booking]) {
        confirmRounds += 1
        var c = Confirmation(epoch: epoch, round: confirmRounds, voters: voters, answers: answers)
        if voters.contains(id) { c.acks.insert(id) } // this holder promised no newer epoch
        confirmations[block] = c
        for v in voters where v != id {
            out.append(.send(LeaseEnvelope(from: id, to: v, body: .confirm(block: block, epoch: epoch, round: c.round))))
        }
        finishConfirmation(block)
    }

    /// With a quorum: the round's answers go out, and answers that came since start a new round.
    private mutating func finishConfirmation(_ block: BlockID) {
        guard let c = confirmations[block], c.acks.count >= quorum(of: c.voters.count) else { return }
        confirmations[block] = nil
        for b in c.answers { out.append(.acknowledged(b)) }
        if !c.next.isEmpty { startConfirmation(block, epoch: c.epoch, voters: c.voters, answers: c.next) }
    }

    /// Asks a quorum of the epoch's voters to accept `b`: this node (if it votes) and the live,
    /// reachable voters after it in the ring, not every voter. Under load that is a third fewer
    /// messages and durable writes per round with three voters. The others learn of `b` by gossip
    /// once it is acknowledged, or from `tick` if the quorum is slow: after `hedgeTicks` the voters
    /// left out are asked, and on each retry every voter not yet heard from.
    private mutating func propose(_ b: Booking, voters: [NodeID], state: ClusterState) {
        let first = Self.firstQuorum(of: voters, from: id, state: state, unreachable: unreachable)
        pending[b.id] = Pending(booking: b, voters: voters, asked: Set(first))
        for v in first {
            out.append(.send(LeaseEnvelope(from: id, to: v, body: .accept(b))))
        }
    }

    /// Whether a new round in `r`'s block can reach a quorum of its voters (this node, and those
    /// the shell can reach). One that cannot would only run into the client's timeout.
    private func quorumReachable(_ r: LeaseRecord) -> Bool {
        r.voters.count { $0 == id || !unreachable.contains($0) } >= quorum(of: r.voters.count)
    }

    /// `me` first if it votes, then live and reachable voters in ring order after `me`, then the
    /// others, cut to a quorum.
    static func firstQuorum(of voters: [NodeID], from me: NodeID, state: ClusterState, unreachable: Set<NodeID>) -> [NodeID] {
        let ring = voters.sorted()
        let start = ring.firstIndex { $0 > me } ?? 0
        let after = Array(ring[start...] + ring[..<start]).filter { $0 != me }
        let good = { (v: NodeID) in state.isLive(v) && !unreachable.contains(v) }
        let ordered = (voters.contains(me) ? [me] : []) + after.filter(good) + after.filter { !good($0) }
        return Array(ordered.prefix(quorum(of: voters.count)))
    }

    /// Refuses a request for good from this holder's records (slot taken, not open yet, over the
    /// quota, banned, nothing to release or confirm, a hold run out): a refusal record,
    /// quorum-durable like a booking, before anyone is told. A later retry of the request at any
    /// holder finds the record (a takeover collects it) and gets the same answer, so a request
    /// refused can never be booked after all: a booking refused so may give its quota place back,
    /// and a reservation refused so is never granted to a late copy of the request. A holder whose
    /// epoch was taken over unbeknown to it (paused, cut off) cannot get the record accepted, so
    /// it tells no one an answer from its stale records; nor does an answer rest on a record of
    /// its own still short of its quorum, which a takeover may lose. A hold's expiry is the
    /// holder's own request, which no one waits for: refused without a record.
    private mutating func refuse(_ q: BookingRequest, _ asked: BookingKind, _ reason: RefuseReason, _ r: LeaseRecord, state: ClusterState) -> [BookingAction] {
        if case .expiry = asked { return [.refused(requestID: q.id, reason: reason)] }
        guard quorumReachable(r) else { return [.refused(requestID: q.id, reason: .noHolder)] }
        let b = Booking(id: q.id, block: q.block, slot: -1, patient: q.patient, epoch: r.epoch, kind: .refusal(reason, requestTag: q.tag))
        persist(records: [b])
        propose(b, voters: r.voters, state: state)
        return drain()
    }

    /// The answer to a retry of `b`, which a valid release ended: `released`, unless that release
    /// gave back the reservation of a booking refused for good (`RefusalRelease`); then the
    /// booking's refusal, the request's first outcome.
    func retryAfterRelease(of b: Booking, _ r: LeaseRecord, state: ClusterState) -> RefuseReason {
        let release = r.collected.first { $0.kind.released == b.id }
            ?? store.releases(of: b.id).sorted { $0.id < $1.id }.first { settledRelease($0, state: state) }
        if case .release(_, let refused?)? = release?.kind { return refused }
        return .released
    }

    /// The status of a slot whose current records (`slotViews`) are `current`, at this holder's
    /// wall time: a release still short of its quorum, or not back on offer yet, leaves it busy,
    /// and so would two records of one generation (a double booking).
    private func slotStatus(_ current: [Booking]?, wallMs: Int64) -> SlotStatus {
        guard let current else { return .free }
        guard current.count == 1, let status = current[0].kind.slotStatus else { return .busy }
        if status == .free, pending[current[0].id] != nil || current[0].reofferAtMs > wallMs { return .busy }
        return status
    }

    /// Whether a valid release ended `b` (naming it, or the hold it confirms) since it was made.
    func releasedSince(_ b: Booking, _ r: LeaseRecord, state: ClusterState) -> Bool {
        guard b.kind.released == nil else { return false }
        return [b.id, b.kind.confirmed].compactMap { $0 }.contains { target in
            r.collected.contains { $0.kind.released == target } || store.releases(of: target).contains { settledRelease($0, state: state) }
        }
    }

    /// A valid release that is no longer this node's open round: a retry is told `released` only
    /// once the release is quorum-durable (a takeover may lose one still short of its quorum, and
    /// the booking would hold its slot after all).
    private func settledRelease(_ release: Booking, state: ClusterState) -> Bool {
        bookingStatus(release, in: state) == .active && pending[release.id] == nil
    }

    /// The patient's strikes recorded in a quota bucket (valid, not withdrawn).
    func strikes(of patient: String, in block: BlockID, state: ClusterState) -> [Strike] {
        activeRecords(of: patient, in: block, state: state).compactMap { b -> Strike? in
            if case .strike(let strike) = b.kind { return strike }
            return nil
        }
    }

    /// The patient's valid records in `block` that no valid release ended.
    private func activeRecords(of patient: String, in block: BlockID, state: ClusterState) -> [Booking] {
        var records: [String: Booking] = [:]
        for b in store.records(of: patient) where b.block == block { records["\(b.id)@\(b.epoch)"] = b }
        for b in state.blocks[block]?.collected(of: patient) ?? [] { records["\(b.id)@\(b.epoch)"] = b }
        let valid = records.values.filter { bookingStatus($0, in: state) == .active }
        let released = Set(valid.compactMap(\.kind.released))
        // Records that take their place: not a release, not a refusal.
        return valid.filter { ($0.kind.slotStatus == .busy || $0.kind.slotStatus == .busyTentative) && !released.contains($0.id) }
    }

    /// The patient's reservations that count in a quota bucket: valid, not released. Pending ones
    /// count too (they may still be acknowledged), so the check errs on the side of refusing.
    func heldReservations(of patient: String, in block: BlockID, state: ClusterState) -> [QuotaTag] {
        var held = activeRecords(of: patient, in: block, state: state)
        #if CLINICMESH_BUG_SWITCHES
        if options.bugQuotaIgnoresPending { held = held.filter { pending[$0.id] == nil } }
        #endif
        return held.compactMap { b -> QuotaTag? in
            if case .quotaReservation(let tag) = b.kind { return tag }
            return nil
        }
    }

    public mutating func tick(state: ClusterState) -> [BookingAction] {
        for block in confirmations.keys.sorted() {
            guard var c = confirmations[block] else { continue }
            // Our epoch ended: the retries go unanswered here, and their clients ask again.
            if state.blocks[block]?.epoch != c.epoch || !holds(block, in: state) {
                confirmations[block] = nil
                continue
            }
            c.sinceSend += 1
            if c.sinceSend >= options.retryTicks {
                c.sinceSend = 0
                for v in c.voters where !c.acks.contains(v) {
                    out.append(.send(LeaseEnvelope(from: id, to: v, body: .confirm(block: block, epoch: c.epoch, round: c.round))))
                }
            }
            confirmations[block] = c
        }
        for key in pending.keys.sorted() {
            guard var p = pending[key] else { continue }
            // Our epoch ended: the outcome is whatever the takeover collected; never acknowledged here.
            if state.blocks[p.booking.block]?.epoch != p.booking.epoch || !holds(p.booking.block, in: state) {
                pending[key] = nil
                continue
            }
            p.sinceSend += 1
            // A retry asks every voter not heard from; the hedge, those not asked yet.
            let ask: [NodeID]
            if p.sinceSend >= options.retryTicks {
                p.sinceSend = 0
                ask = p.voters.filter { !p.acks.contains($0) }
            } else if p.sinceSend == options.hedgeTicks {
                ask = p.voters.filter { !p.asked.contains($0) }
            } else {
                ask = []
            }
            if !ask.isEmpty {
                for v in ask { out.append(.send(LeaseEnvelope(from: id, to: v, body: .accept(p.booking)))) }
                p.asked = Set(p.voters)
            }
            pending[key] = p
        }
        return drain()
    }

    // MARK: Receiving

    public mutating func receive(_ e: LeaseEnvelope, state: ClusterState) -> [BookingAction] {
        switch e.body {
        case .accept(let b):
            let superseded = max(store.promised[b.block] ?? 0, state.blocks[b.block]?.epoch ?? 0)
            if b.epoch < superseded || state.closed.contains(b.block) {
                out.append(.send(LeaseEnvelope(from: id, to: e.from, body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: false))))
            } else {
                if store.records[b.id] != b || (store.promised[b.block] ?? 0) < b.epoch {
                    persist(promise: (b.block, b.epoch), records: [b])
                }
                #if CLINICMESH_BUG_SWITCHES
                if options.bugAcceptReplyBeforeDurable {
                    out.append(.send(LeaseEnvelope(from: id, to: e.from, body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true))))
                    break
                }
                #endif
                sendDurable(LeaseEnvelope(from: id, to: e.from, body: .acceptReply(bookingID: b.id, block: b.block, epoch: b.epoch, ok: true)))
            }
        case .acceptReply(let bid, let block, let epoch, let ok):
            if !ok {
                // Refused under the epoch we hold: a voter promised a newer one that never became a
                // lease. Without a new epoch this block would refuse every booking for good.
                if pending[bid]?.booking.epoch == epoch, state.blocks[block]?.epoch == epoch, holds(block, in: state) {
                    out.append(.epochRefused(block: block, epoch: epoch))
                }
                break
            }
            guard var p = pending[bid], p.booking.epoch == epoch, p.voters.contains(e.from) else { break }
            p.acks.insert(e.from)
            #if CLINICMESH_BUG_SWITCHES
            let done = p.acks.count >= quorum(of: p.voters.count) || options.bugAckBeforeQuorum
            #else
            let done = p.acks.count >= quorum(of: p.voters.count)
            #endif
            if done {
                pending[bid] = nil
                if acked.insert(bid).inserted { out.append(.acknowledged(p.booking)) }
            } else {
                pending[bid] = p
            }
        case .prepare(let block, let epoch):
            let promised = store.promised[block] ?? 0
            // Closed (in the state, or by the store's final promise): nothing to collect, ever.
            if state.closed.contains(block) || promised == .max { break }
            if epoch < promised {
                out.append(.send(LeaseEnvelope(from: id, to: e.from, body: .promise(block: block, epoch: promised, ok: false, bookings: []))))
                break
            }
            let bookings = store.records(in: block).sorted { $0.id < $1.id }
            let reply = LeaseEnvelope(from: id, to: e.from, body: .promise(block: block, epoch: epoch, ok: true, bookings: bookings))
            #if CLINICMESH_BUG_SWITCHES
            if options.bugPromiseWithoutRecording { out.append(.send(reply)); break }
            #endif
            // Fence first: the epoch is durable before the answer leaves, so older epochs stay refused.
            if epoch > promised { persist(promise: (block, epoch)) }
            sendDurable(reply)
        case .confirm(let block, let epoch, let round):
            let newest = max(store.promised[block] ?? 0, state.blocks[block]?.epoch ?? 0)
            let ok = epoch >= newest && !state.closed.contains(block)
            out.append(.send(LeaseEnvelope(from: id, to: e.from, body: .confirmReply(block: block, epoch: epoch, round: round, ok: ok))))
        case .confirmReply(let block, let epoch, let round, let ok):
            guard var c = confirmations[block], c.round == round, c.epoch == epoch, c.voters.contains(e.from) else { break }
            guard ok else {
                confirmations[block] = nil // a newer epoch exists: this holder's records may be stale
                break
            }
            c.acks.insert(e.from)
            confirmations[block] = c
            finishConfirmation(block)
        case .gossip(let bs):
            // A record no takeover will collect again (inactive) is of no use here: after a quota
            // bucket's trim, a replica that has not dropped it yet would send it back.
            let fresh = bs.filter { b in
                !state.closed.contains(b.block) && store.promised[b.block] != .max && (store.records[b.id].map { $0.epoch < b.epoch } ?? true)
                    && bookingStatus(b, in: state) != .inactive
            }
            if !fresh.isEmpty { persist(records: fresh) }
        case .promise, .renew, .resign, .epochRefused:
            break // for the leader's LeaseManager
        }
        return drain()
    }
}
