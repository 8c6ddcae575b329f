/// The version of every column of one row, and of its existence register (`RowClock.aliveSlot`).
/// Column slots are the columns' positions in their table.
public struct RowClock: Equatable, Sendable {
    public static let aliveSlot: UInt16 = .max

    /// (slot, version) pairs sorted by slot: rows have a handful of columns, so a small array beats
    /// a dictionary on every merge.
    public private(set) var entries: [(slot: UInt16, version: ChangeVersion)] = []

    public init() {}

    public static func == (a: RowClock, b: RowClock) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.slot == $1.slot && $0.version == $1.version }
    }

    public subscript(slot: UInt16) -> ChangeVersion? {
        get { entries.first { $0.slot == slot }?.version }
        set {
            if let i = entries.firstIndex(where: { $0.slot >= slot }), entries[i].slot == slot {
                if let newValue { entries[i].version = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                let i = entries.firstIndex { $0.slot > slot } ?? entries.endIndex
                entries.insert((slot, newValue), at: i)
            }
        }
    }

    /// The operations that own at least one slot.
    public var operations: Set<OperationID> { Set(entries.map { OperationID($0.version) }) }
}

/// `crdt_alive` values: 0 deleted, 1 inserted again after a delete, 2 created where no row was known.
public enum RowExistence {
    public static let deleted: Int64 = 0, reinserted: Int64 = 1, created: Int64 = 2
}

/// One row as the merge sees it: every column (live or not), the existence register and the clock.
public struct MergeRow: Equatable, Sendable {
    public var values: [ColumnValue]
    public var alive: Int64
    public var clock: RowClock

    public init(values: [ColumnValue], alive: Int64, clock: RowClock) {
        self.values = values
        self.alive = alive
        self.clock = clock
    }

    /// A row this replica has never seen: no values, no versions, not alive.
    public init(columns: Int) {
        self.init(values: Array(repeating: .null, count: columns), alive: RowExistence.deleted, clock: RowClock())
    }

    public var isLive: Bool { alive != RowExistence.deleted }
}

/// A change after name resolution: the column's slot in the row clock.
public struct SlotChange: Hashable, Sendable {
    public let slot: UInt16
    public let value: ColumnValue
    public let version: ChangeVersion

    public init(slot: UInt16, value: ColumnValue, version: ChangeVersion) {
        self.slot = slot
        self.value = value
        self.version = version
    }
}

/// One operation (one row write) by origin and sequence number.
public struct OperationID: Hashable, Sendable {
    public let origin: OriginID
    public let seq: UInt64

    public init(origin: OriginID, seq: UInt64) {
        self.origin = origin
        self.seq = seq
    }

    public init(_ version: ChangeVersion) { self.init(origin: version.origin, seq: version.seq) }
}

/// Two nodes created the same row (neither knew of the other's) with different values in one
/// column that neither has edited since.
public struct CreationConflict: Hashable, Sendable {
    public struct Side: Hashable, Sendable {
        public let version: ChangeVersion
        public let value: ColumnValue

        public init(version: ChangeVersion, value: ColumnValue) {
            self.version = version
            self.value = value
        }
    }

    public let slot: UInt16
    /// The replica's own creation, and the incoming one.
    public let first: Side
    public let second: Side

    public init(slot: UInt16, first: Side, second: Side) {
        self.slot = slot
        self.first = first
        self.second = second
    }
}

/// How versions are ordered. Only bug switches make it anything but `ChangeVersion`'s order.
public struct MergeRules: Sendable {
    public init() {}

    #if CLINICMESH_BUG_SWITCHES
    /// Planted bug: on equal HLC stamps the change merged last wins, whichever node wrote it.
    public var bugTieBreakIgnoresNode = false
    #endif

    func loses(_ incoming: ChangeVersion, to current: ChangeVersion) -> Bool {
        #if CLINICMESH_BUG_SWITCHES
        if bugTieBreakIgnoresNode { return incoming.hlc < current.hlc }
        #endif
        return incoming < current
    }
}

/// What merging changes into one row decides: the writes that win, in order, and what to tell.
public struct RowMergeDecision: Equatable, Sendable {
    /// The changes that win their slot, in the order they are applied (a later one may overwrite
    /// an earlier one's slot).
    public var writes: [SlotChange] = []
    /// Changes older than what the row already had.
    public var superseded = 0
    /// Changes the row already had.
    public var duplicates = 0
    /// Found on the row as it was before the merge.
    public var conflicts: [CreationConflict] = []

    public var applied: Int { writes.count }
}

/// The merge of changes into one row, as pure functions: last-writer-wins per column, the
/// existence register included. Applying a decision's writes is all a store has to do, so the
/// same set of changes in any order, with duplicates, gives the same row.
public enum RowMerge {
    public static func decide(_ row: MergeRow, _ changes: [SlotChange], rules: MergeRules = MergeRules()) -> RowMergeDecision {
        var decision = RowMergeDecision()
        decision.conflicts = creationConflicts(row, changes)
        var clock = row.clock
        for change in changes {
            if let current = clock[change.slot] {
                if change.version == current { decision.duplicates += 1; continue }
                if rules.loses(change.version, to: current) { decision.superseded += 1; continue }
            }
            clock[change.slot] = change.version
            decision.writes.append(change)
        }
        return decision
    }

    /// Applies winning writes to the row they were decided for.
    public static func apply(_ writes: [SlotChange], to row: inout MergeRow) {
        for write in writes {
            row.clock[write.slot] = write.version
            if write.slot == RowClock.aliveSlot {
                row.alive = write.value.integer ?? RowExistence.deleted
            } else {
                row.values[Int(write.slot)] = write.value
            }
        }
    }

    /// Two nodes that each created the row (neither knew of the other's) with a different value
    /// in a column that neither has edited since: a person must look at it.
    static func creationConflicts(_ row: MergeRow, _ changes: [SlotChange]) -> [CreationConflict] {
        guard row.alive == RowExistence.created, let local = row.clock[RowClock.aliveSlot],
              let incoming = changes.first(where: { $0.slot == RowClock.aliveSlot && $0.value == .integer(RowExistence.created) })
        else { return [] }
        guard local.origin.node != incoming.version.origin.node else { return [] }
        var conflicts: [CreationConflict] = []
        for change in changes where change.version == incoming.version && change.slot != RowClock.aliveSlot {
            guard row.clock[change.slot] == local, row.values[Int(change.slot)] != change.value else { continue }
            conflicts.append(CreationConflict(slot: change.slot, first: .init(version: local, value: row.values[Int(change.slot)]),
                                              second: .init(version: incoming.version, value: change.value)))
        }
        return conflicts
    }

    /// The operations a row's log must now serve (they own a slot they did not own before), and
    /// the ones it may forget (they own no slot of the row any more; each operation writes one row).
    public static func ownership(before: RowClock, after: RowClock) -> (gained: Set<OperationID>, released: Set<OperationID>) {
        var gained: Set<OperationID> = []
        var displaced: Set<OperationID> = []
        for (slot, version) in after.entries where before[slot] != version {
            gained.insert(OperationID(version))
            if let old = before[slot] { displaced.insert(OperationID(old)) }
        }
        return (gained, displaced.subtracting(after.operations))
    }
}
