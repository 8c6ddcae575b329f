/// A whole replica in memory, on the pure merge: a dictionary of rows, the log of operations that
/// still own a column, and the version vector. It follows the SQLite replica's rules for local
/// writes, merges, review items and anti-entropy batches, so tests and the simulator can run many
/// replicas without a database. Every write or merge is one commit, durable the moment it returns.
///
/// Left out, because the simulator keeps clocks within the HLC bound and one schema version:
/// parking of changes stamped too far ahead or for unknown columns, and incarnation checks.
public struct MemoryReplica: Sendable {
    public struct RowKey: Hashable, Comparable, Sendable {
        public let table: String
        public let key: String

        public init(table: String, key: String) {
            self.table = table
            self.key = key
        }

        public static func < (a: Self, b: Self) -> Bool { (a.table, a.key) < (b.table, b.key) }
    }

    public enum WriteError: Error, Equatable, Sendable {
        case unknownTable(String)
        case unknownColumn(String, table: String)
        case rowExists(table: String, key: String)
        case rowMissing(table: String, key: String)
    }

    /// What merging a batch did.
    public struct ApplyReport: Equatable, Sendable {
        public var applied = 0
        public var superseded = 0
        public var duplicates = 0
        /// Changes this replica cannot hold (unknown table or column, malformed): skipped.
        public var skipped = 0
        public var reviewItems = 0
        public init() {}
    }

    public let origin: OriginID
    /// Table name → column names; the review table is always there.
    public let tables: [String: [String]]
    public let rules: MergeRules
    public private(set) var hlc: HybridLogicalClock
    public private(set) var lastSeq: UInt64 = 0
    public private(set) var rows: [RowKey: MergeRow] = [:]
    public private(set) var versionVector = VersionVector()
    /// Origin → sequence → the row its operation wrote, for operations that still own a slot.
    private var log: [OriginID: [UInt64: RowKey]] = [:]

    public init(origin: OriginID, tables: [String: [String]], maxClockOffsetMillis: Int64 = 500, rules: MergeRules = MergeRules()) {
        self.origin = origin
        self.tables = tables.merging([ReviewItem.table: ReviewItem.columns]) { a, _ in a }
        self.rules = rules
        hlc = HybridLogicalClock(maxOffsetMillis: maxClockOffsetMillis)
    }

    /// The replicated tables as a person would compare them: every row ever seen, live or not,
    /// with values, existence and versions.
    public var content: [RowKey: MergeRow] { rows }

    public func row(_ table: String, _ key: String) -> MergeRow? { rows[RowKey(table: table, key: key)] }

    // MARK: Local writes

    /// Creates a row. Refused if a live row has that key: two writers of one identity make one row.
    @discardableResult
    public mutating func insert(_ table: String, key: String, values: [String: ColumnValue], wallMillis: Int64) throws(WriteError) -> ChangeVersion {
        let columns = try columns(of: table)
        let rowKey = RowKey(table: table, key: key)
        let row = rows[rowKey]
        if let row, row.isLive { throw .rowExists(table: table, key: key) }
        for name in values.keys where !columns.contains(name) { throw .unknownColumn(name, table: table) }
        let version = nextLocalVersion(wallMillis)
        let kind = row == nil ? RowExistence.created : RowExistence.reinserted
        var changes = [SlotChange(slot: RowClock.aliveSlot, value: .integer(kind), version: version)]
        for (i, column) in columns.enumerated() {
            changes.append(SlotChange(slot: UInt16(i), value: values[column] ?? .null, version: version))
        }
        _ = merge(rowKey, changes)
        return version
    }

    /// Changes some columns of a live row.
    @discardableResult
    public mutating func update(_ table: String, key: String, values: [String: ColumnValue], wallMillis: Int64) throws(WriteError) -> ChangeVersion {
        let columns = try columns(of: table)
        let rowKey = RowKey(table: table, key: key)
        guard rows[rowKey]?.isLive == true else { throw .rowMissing(table: table, key: key) }
        var slots: [(UInt16, ColumnValue)] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let i = columns.firstIndex(of: name) else { throw .unknownColumn(name, table: table) }
            slots.append((UInt16(i), value))
        }
        let version = nextLocalVersion(wallMillis)
        _ = merge(rowKey, slots.map { SlotChange(slot: $0.0, value: $0.1, version: version) })
        return version
    }

    /// Updates the row if it is live, creates it otherwise.
    @discardableResult
    public mutating func upsert(_ table: String, key: String, values: [String: ColumnValue], wallMillis: Int64) throws(WriteError) -> ChangeVersion {
        if rows[RowKey(table: table, key: key)]?.isLive == true {
            return try update(table, key: key, values: values, wallMillis: wallMillis)
        }
        return try insert(table, key: key, values: values, wallMillis: wallMillis)
    }

    /// Deletes a live row, leaving a tombstone.
    @discardableResult
    public mutating func delete(_ table: String, key: String, wallMillis: Int64) throws(WriteError) -> ChangeVersion {
        _ = try columns(of: table)
        let rowKey = RowKey(table: table, key: key)
        guard rows[rowKey]?.isLive == true else { throw .rowMissing(table: table, key: key) }
        let version = nextLocalVersion(wallMillis)
        _ = merge(rowKey, [SlotChange(slot: RowClock.aliveSlot, value: .integer(RowExistence.deleted), version: version)])
        return version
    }

    private func columns(of table: String) throws(WriteError) -> [String] {
        guard let columns = tables[table] else { throw .unknownTable(table) }
        return columns
    }

    private mutating func nextLocalVersion(_ wallMillis: Int64) -> ChangeVersion {
        let stamp = hlc.now(wallMillis: wallMillis)
        lastSeq += 1
        versionVector[origin] = lastSeq
        return ChangeVersion(hlc: stamp, origin: origin, seq: lastSeq)
    }

    // MARK: Merging

    /// Decides and applies changes to one row, and keeps the log to the operations that own a slot.
    private mutating func merge(_ rowKey: RowKey, _ changes: [SlotChange]) -> RowMergeDecision {
        let before = rows[rowKey] ?? MergeRow(columns: tables[rowKey.table]?.count ?? 0)
        let decision = RowMerge.decide(before, changes, rules: rules)
        guard decision.applied > 0 else { return decision }
        var after = before
        RowMerge.apply(decision.writes, to: &after)
        rows[rowKey] = after
        let ownership = RowMerge.ownership(before: before.clock, after: after.clock)
        for op in ownership.gained { log[op.origin, default: [:]][op.seq] = rowKey }
        for op in ownership.released { log[op.origin]?[op.seq] = nil }
        return decision
    }

    /// Merges a batch from a peer, then advances the version vector by the batch's coverage.
    @discardableResult
    public mutating func apply(_ batch: ChangeBatch, wallMillis: Int64) -> ApplyReport {
        var report = ApplyReport()
        var order: [RowKey] = []
        var groups: [RowKey: [SlotChange]] = [:]
        var newest = HLCTimestamp.zero
        for change in batch.changes {
            let rowKey = RowKey(table: change.table, key: change.key)
            guard let columns = tables[change.table], !change.key.isEmpty,
                  change.version.seq > 0, change.version.seq <= UInt64(Int64.max) else { report.skipped += 1; continue }
            let slot: UInt16
            if change.column == Self.aliveColumn, let v = change.value.integer, (RowExistence.deleted...RowExistence.created).contains(v) {
                slot = RowClock.aliveSlot
            } else if let index = columns.firstIndex(of: change.column) {
                slot = UInt16(index)
            } else {
                report.skipped += 1
                continue
            }
            if groups[rowKey] == nil { order.append(rowKey) }
            groups[rowKey, default: []].append(SlotChange(slot: slot, value: change.value, version: change.version))
            newest = max(newest, change.version.hlc)
        }
        // Before any review item is written, so it is stamped after what it reports.
        _ = hlc.receive(newest, wallMillis: wallMillis)
        for rowKey in order {
            let decision = merge(rowKey, groups[rowKey]!)
            report.applied += decision.applied
            report.superseded += decision.superseded
            report.duplicates += decision.duplicates
            let columns = tables[rowKey.table]!
            for conflict in decision.conflicts {
                let item = ReviewItem(table: rowKey.table, key: rowKey.key, column: columns[Int(conflict.slot)], conflict: conflict)
                guard rows[RowKey(table: ReviewItem.table, key: item.id)] == nil else { continue }
                _ = try? insert(ReviewItem.table, key: item.id, values: item.values, wallMillis: wallMillis)
                report.reviewItems += 1
            }
        }
        let carried = Set(batch.changes.map(\.version.origin))
        for (origin, seq) in batch.coverage.sortedEntries where origin != self.origin {
            guard versionVector.entries[origin] != nil || carried.contains(origin) else { continue }
            guard versionVector[origin] >= batch.base[origin] else { continue }
            versionVector[origin] = max(versionVector[origin], seq)
        }
        return report
    }

    /// Every change this replica holds that `since` lacks, in (origin, sequence) order, at most
    /// about `limit` changes (a batch is cut between operations, never inside one).
    public func changes(since: VersionVector, limit: Int = 10_000) -> ChangeBatch {
        var changes: [Change] = []
        var coverage = VersionVector()
        for (origin, covered) in versionVector.sortedEntries {
            let from = since[origin]
            guard covered > from else { continue }
            let operations = (log[origin] ?? [:]).filter { $0.key > from && $0.key <= covered }
            for seq in operations.keys.sorted() {
                let operation = self.changes(of: operations[seq]!, owner: OperationID(origin: origin, seq: seq))
                if changes.count + operation.count > limit, !changes.isEmpty {
                    // Nothing of this origin between the last operation sent and this one.
                    coverage[origin] = seq - 1
                    return ChangeBatch(changes: changes, base: since, coverage: coverage)
                }
                changes += operation
            }
            coverage[origin] = covered
        }
        return ChangeBatch(changes: changes, base: since, coverage: coverage)
    }

    /// The columns of a row whose current value the operation wrote.
    private func changes(of rowKey: RowKey, owner: OperationID) -> [Change] {
        guard let row = rows[rowKey], let columns = tables[rowKey.table] else { return [] }
        var out: [Change] = []
        for (slot, version) in row.clock.entries where OperationID(version) == owner {
            if slot == RowClock.aliveSlot {
                out.append(Change(table: rowKey.table, key: rowKey.key, column: Self.aliveColumn, value: .integer(row.alive), version: version))
            } else if Int(slot) < columns.count {
                out.append(Change(table: rowKey.table, key: rowKey.key, column: columns[Int(slot)], value: row.values[Int(slot)], version: version))
            }
        }
        return out.sorted { $0.column < $1.column }
    }

    /// The pseudo-column that carries a row's existence in change streams (as in the SQLite replica).
    public static let aliveColumn = "crdt_alive"
}
