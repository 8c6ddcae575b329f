import Domain

// What the node's services may read of the consensus state: derived answers (a slot's status, an
// appointment's records, a patient's holds) over the view the core published last, never the
// core itself. A lookup is a value: a reader may keep it for as long as it reads one moment.

public struct BookingLookup: Sendable {
    private let view: ConsensusView

    public init(_ view: ConsensusView) { self.view = view }

    /// A block as the committed lease history has it.
    public struct Block: Sendable, Hashable {
        public var slots: Int
        /// When patients may start booking (wall ms; 0: open).
        public var opensAtMs: Int64
        public var epoch: Epoch
        /// Grows whenever a record of the block is written here.
        public var version: UInt64
    }

    public func block(_ id: BlockID) -> Block? {
        guard let r = view.cluster.blocks[id] else { return nil }
        return Block(slots: r.slots, opensAtMs: r.opensAtMs, epoch: r.epoch, version: view.store.versions[id] ?? 0)
    }

    /// Which slots of `block` are taken, from its valid records.
    public func availability(of block: BlockID) -> BlockAvailability {
        let view = slotViews(block: block, bookings: view.store.records(in: block), state: view.cluster)
        return Self.availability(view.views, unknown: view.unknown)
    }

    /// Which slots of a closed block its final records leave taken.
    public static func availability(of closure: BlockClosure) -> BlockAvailability { availability(closure.finalSlots, unknown: false) }

    private static func availability(_ views: [Int: [Booking]], unknown: Bool) -> BlockAvailability {
        var taken: [Int: BlockAvailability.Taken] = [:]
        for (slot, records) in views {
            if let held = holdingBooking(records) {
                taken[slot] = held.kind.slotStatus == .busyTentative ? .held : .booked
            } else if let top = records.first, top.reofferAtMs > 0 {
                taken[slot] = .releasedUntil(top.reofferAtMs)
            }
        }
        return BlockAvailability(unknown: unknown, taken: taken)
    }

    /// The valid records of the appointment whose hold is `holdID` (this node's own and those
    /// the takeovers collected).
    public func appointment(holdID: String, block: BlockID, slot: Int) -> AppointmentRecords {
        var found = AppointmentRecords()
        let collected = view.cluster.blocks[block]?.collected(inSlot: slot) ?? []
        for b in view.store.records(in: block, slot: slot) + collected where bookingStatus(b, in: view.cluster) == .active {
            if b.id == holdID { found.hold = b }
            if b.kind.confirmed == holdID { found.confirmation = b }
            if b.kind.released == holdID { found.release = b }
        }
        return found
    }

    /// Every appointment of `block` this node has valid records of, by its hold's id.
    public func appointments(in block: BlockID) -> [String: AppointmentRecords] {
        let collected = view.cluster.blocks[block]?.collected ?? []
        return Self.appointments(of: (view.store.records(in: block) + collected).filter { bookingStatus($0, in: view.cluster) == .active })
    }

    /// The appointments of a closed block, from its final records (`BlockClosure`).
    public static func appointments(of closure: BlockClosure) -> [String: AppointmentRecords] { appointments(of: closure.records) }

    /// Valid records grouped by the appointment (hold) they belong to.
    private static func appointments(of valid: [Booking]) -> [String: AppointmentRecords] {
        var out: [String: AppointmentRecords] = [:]
        for b in valid where !b.isRefusal {
            if b.isHold { out[b.id, default: AppointmentRecords()].hold = b }
            if let hold = b.confirms { out[hold, default: AppointmentRecords()].confirmation = b }
            if let hold = b.releases { out[hold, default: AppointmentRecords()].release = b }
        }
        return out
    }

    /// Every slot block (a session; not a quota bucket) the committed lease history defines.
    public var slotBlocks: [BlockID] { view.cluster.blocks.keys.filter { !isQuotaBucket($0) && !isPharmacyBlock($0) } }

    /// Whether `block` was closed for good (its final rows are in the read model).
    public func isClosed(_ block: BlockID) -> Bool { view.cluster.closed.contains(block) }

    /// Every block closed for good.
    public var closedBlocks: Set<BlockID> { Set(view.cluster.closed) }

    /// The patient's holds (their appointments) this node has records of.
    public func holds(of patient: String) -> [Booking] {
        view.store.records(of: patient).filter { b in
            guard case .hold = b.kind else { return false }
            return !isQuotaBucket(b.block)
        }
    }

    /// Whether this node knows anything of request `holdID` by `patient` in `block`: it waits on
    /// it, or has a record of it or of its quota reservation (made or refused). A retry must then
    /// reach the holder, which answers it with its first outcome.
    public func knowsRequest(_ holdID: String, block: BlockID, patient: String) -> Bool {
        let reservation = ConsensusCore.reservationID(of: holdID)
        let bucket = view.cluster.blocks[ConsensusCore.quotaBucket(patient: patient, buckets: view.quotaBuckets)]
        return view.isOpen(holdID) || view.store.records[holdID] != nil || view.cluster.blocks[block]?.collectedIDs.contains(holdID) == true
            || view.store.records[reservation] != nil || bucket?.collectedIDs.contains(reservation) == true
    }

    /// Whether this node holds `block`'s lease now.
    public func holds(_ block: BlockID) -> Bool { view.holds(block) }

    /// The session's queue as this node's acknowledged, valid records of `block` say it; nil if
    /// the block is unknown here or its records are newer than the lease history known here.
    public func queue(of block: BlockID) -> SessionQueue? {
        guard view.cluster.blocks[block] != nil, !validRecordsUnknown(of: block) else { return nil }
        return SessionQueue(records: validRecords(of: block))
    }

    /// A pharmacy's stock as this node's acknowledged, valid records of its block say it; nil if
    /// the block is unknown here or its records are newer than the lease history known here.
    public func stock(of block: BlockID) -> StockLedger? {
        guard view.cluster.blocks[block] != nil, !validRecordsUnknown(of: block) else { return nil }
        return StockLedger(records: validRecords(of: block))
    }

    /// The acknowledged, valid records of `block` here: those a takeover collected and this node's
    /// own under the current epoch (empty if the block is unknown).
    public func validRecords(of block: BlockID) -> [Booking] {
        guard let r = view.cluster.blocks[block] else { return [] }
        return r.collected + view.store.records(in: block).filter { $0.epoch == r.epoch && !r.collectedIDs.contains($0.id) && !view.isPending($0.id) }
    }

    /// Whether this node has records of `block` newer than the lease history it knows.
    func validRecordsUnknown(of block: BlockID) -> Bool {
        guard let r = view.cluster.blocks[block] else { return true }
        return view.store.records(in: block).contains { $0.epoch > r.epoch }
    }

    /// The acknowledged, valid records of every slot block this node holds now: what its holder
    /// owes patients messages about.
    public func recordsOfHeldBlocks() -> [(block: BlockID, records: [Booking])] {
        var out: [(block: BlockID, records: [Booking])] = []
        for r in view.cluster.blocks.values where !isQuotaBucket(r.block) && !isPharmacyBlock(r.block) && view.holds(r.block) {
            let records = view.store.records(in: r.block) + r.collected
            out.append((r.block, records.filter { bookingStatus($0, in: view.cluster) == .active && !view.isPending($0.id) }))
        }
        return out
    }
}

/// Which slots of a block are taken, derived from its booking records.
public struct BlockAvailability: Sendable, Hashable {
    public enum Taken: Sendable, Hashable { case booked, held, releasedUntil(Int64) }
    /// The block's records are newer than the lease history this node knows: nothing is free.
    public var unknown: Bool
    public var taken: [Int: Taken]
}

/// What the consensus records say of one appointment.
public struct AppointmentRecords: Sendable, Hashable {
    public var hold: Booking?
    public var confirmation: Booking?
    public var release: Booking?
    public init(hold: Booking? = nil, confirmation: Booking? = nil, release: Booking? = nil) {
        self.hold = hold; self.confirmation = confirmation; self.release = release
    }

    /// The appointment's status, along the transition table: a hold makes it pending, its
    /// confirmation books it, a release (cancellation or expiry) cancels it. Nil: no records.
    public var status: AppointmentStatus? {
        guard hold != nil || confirmation != nil || release != nil else { return nil }
        var status = AppointmentStatus.pending
        if confirmation != nil, status.canTransition(to: .booked) { status = .booked }
        if release != nil, status.canTransition(to: .cancelled) { status = .cancelled }
        return status
    }
}
