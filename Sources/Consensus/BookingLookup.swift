// What the node's services may read of the consensus state: derived answers (a slot's status, an
// appointment's records, a patient's holds) over the view the shell published last, never the
// core itself.

public struct BookingLookup: Sendable {
    private let view: BookingView

    public init(_ view: BookingView) { self.view = view }

    /// A block as the committed lease history has it.
    public struct Block: Sendable, Hashable {
        public var slots: Int
        /// When patients may start booking (wall ms; 0: open).
        public var opensAtMs: Int64
        public var epoch: Epoch
        /// Grows whenever a record of the block is written here.
        public var version: UInt64
    }

    public func block(_ id: BlockID) -> Block? { view.blocks[id]?.summary }

    /// Which slots of `block` are taken, from its valid records.
    public func availability(of block: BlockID) -> BlockAvailability {
        view.blocks[block]?.availability ?? BlockAvailability(unknown: false, taken: [:])
    }

    /// The valid records of the appointment whose hold is `holdID` in `slot` of `block` (this
    /// node's own and those the takeovers collected).
    public func appointment(holdID: String, block: BlockID, slot: Int) -> AppointmentRecords {
        guard let r = view.blocks[block]?.appointments[holdID] else { return AppointmentRecords() }
        return AppointmentRecords(hold: r.hold?.slot == slot ? r.hold : nil, confirmation: r.confirmation?.slot == slot ? r.confirmation : nil,
                                  release: r.release?.slot == slot ? r.release : nil)
    }

    /// Every appointment of `block` this node has valid records of, by its hold's id.
    public func appointments(in block: BlockID) -> [String: AppointmentRecords] { view.blocks[block]?.appointments ?? [:] }

    /// Every slot block (a session; not a quota bucket) the committed lease history defines.
    public var slotBlocks: [BlockID] { Array(view.blocks.keys) }

    /// The patient's valid holds (their appointments) this node has records of.
    public func holds(of patient: String) -> [Booking] {
        (view.holdsByPatient[patient] ?? []).compactMap { id in view.holdBlocks[id].flatMap { view.blocks[$0]?.appointments[id]?.hold } }
    }

    /// Whether this node knows anything of request `holdID`: it waits on it, or has a record of it
    /// or of its quota reservation (made or refused), its own or collected by a takeover. A retry
    /// must then reach the holder, which answers it with its first outcome.
    public func knowsRequest(_ holdID: String) -> Bool {
        view.openRequests.contains(holdID) || view.recordIDs.contains(holdID) || view.recordIDs.contains(ConsensusCore.reservationID(of: holdID))
    }

    /// The acknowledged, valid records of every slot block this node holds now: what its holder
    /// owes patients messages about.
    public func recordsOfHeldBlocks() -> [(block: BlockID, records: [Booking])] {
        view.blocks.compactMap { id, b in view.heldHere(id) ? (id, b.settled) : nil }
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
}
