import Foundation
import GRDB
import ReplicatedCore

/// One row as stored: every column (live or not), the existence register and the packed clock.
struct RowState {
    let key: String
    var existsInDatabase: Bool
    var values: [ColumnValue]
    var alive: Int64
    var clock: PackedRowClock

    static let deleted = RowExistence.deleted, reinserted = RowExistence.reinserted, created = RowExistence.created

    static func load(_ db: Database, _ info: TableInfo, key: String) throws -> RowState {
        let statement = try db.cachedStatement(sql: info.selectSQL)
        let count = info.table.columns.count
        if let row = try Row.fetchOne(statement, arguments: [key]) { return try RowState(key: key, row: row, columns: count) }
        return RowState(key: key, existsInDatabase: false, values: Array(repeating: .null, count: count),
                        alive: deleted, clock: PackedRowClock())
    }
}

extension RowState {
    /// A row read by `selectSQL` or `selectManySQL`: the columns, then the existence register and the clock.
    init(key: String, row: Row, columns count: Int) throws {
        var values: [ColumnValue] = []
        values.reserveCapacity(count)
        for i in 0..<count { values.append(ColumnValue(row[i] as DatabaseValue)) }
        let clockBytes: [UInt8] = (row[count + 1] as Data?).map { [UInt8]($0) } ?? []
        self.init(key: key, existsInDatabase: true, values: values, alive: row[count], clock: try PackedRowClock(decoding: clockBytes))
    }
}

/// One operation, by local origin id and sequence number.
struct OperationRef: Hashable {
    let origin: UInt32
    let seq: UInt64
}

/// The work of one write transaction: merging changes into rows, logging them, advancing the HLC.
/// Local writes and remote changes go through the same `merge`, so both obey one rule.
final class Merger {
    let db: Database
    let replica: Replica
    var state: Replica.State
    let wallMillis: Int64
    /// The rows this transaction wrote (their stamps move once it commits).
    var written: Set<RowRef> = []

    init(db: Database, replica: Replica, state: Replica.State, wallMillis: Int64) {
        self.db = db
        self.replica = replica
        self.state = state
        self.wallMillis = wallMillis
    }

    /// The last origin resolved: a batch is mostly runs of one origin's operations.
    private var lastOrigin: (id: OriginID, ref: UInt32)?

    func originRef(_ origin: OriginID) throws -> UInt32 {
        if let last = lastOrigin, last.id == origin { return last.ref }
        if let ref = state.originRefs[origin] {
            lastOrigin = (origin, ref)
            return ref
        }
        try db.execute(sql: "INSERT INTO crdt_origin(node, incarnation, covered) VALUES (?, ?, 0)",
                       arguments: [origin.node, Int64(origin.incarnation)])
        guard let ref = UInt32(exactly: db.lastInsertedRowID) else {
            throw StoreError(.corruptMetadata, zh: "来源表已满；请从其他节点重建本节点。", en: "the origin table is full; rebuild this node from a peer.")
        }
        state.originRefs[origin] = ref
        state.origins[ref] = origin
        return ref
    }

    func version(of entry: PackedRowClock.Entry) throws -> ChangeVersion {
        guard let origin = state.origins[entry.origin] else {
            throw StoreError(.corruptMetadata, zh: "行版本引用了未知来源 \(entry.origin)；请从其他节点重建本节点。",
                             en: "a row clock names unknown origin \(entry.origin); rebuild this node from a peer.")
        }
        return ChangeVersion(hlc: HLCTimestamp(rawValue: entry.hlc), origin: origin, seq: entry.seq)
    }

    func loadRow(_ info: TableInfo, key: String) throws -> RowState {
        try RowState.load(db, info, key: key)
    }

    func saveRow(_ info: TableInfo, _ row: inout RowState) throws {
        let statement = try db.cachedStatement(sql: row.existsInDatabase ? info.updateSQL : info.insertSQL)
        var arguments: [DatabaseValue] = []
        arguments.reserveCapacity(row.values.count + 3)
        for value in row.values { arguments.append(value.databaseValue) }
        arguments.append(row.alive.databaseValue)
        arguments.append(ColumnValue.blob(row.clock.encoded()).databaseValue)
        arguments.append(row.key.databaseValue)
        try statement.execute(arguments: StatementArguments(arguments))
        row.existsInDatabase = true
        written.insert(RowRef(table: info.table.name, key: row.key))
    }

    /// The row as the pure merge sees it: its clock with origins named, not numbered.
    func mergeRow(_ row: RowState) throws -> MergeRow {
        var clock = RowClock()
        for (slot, entry) in row.clock.entries { clock[slot] = try version(of: entry) }
        return MergeRow(values: row.values, alive: row.alive, clock: clock)
    }

    /// Last-writer-wins per column, the existence register included (`RowMerge.decide`); writes
    /// the winners into the row.
    func merge(_ row: inout RowState, _ changes: [SlotChange]) throws -> RowMergeDecision {
        let decision = RowMerge.decide(try mergeRow(row), changes)
        for write in decision.writes {
            let ref = try originRef(write.version.origin)
            row.clock[write.slot] = PackedRowClock.Entry(hlc: write.version.hlc.rawValue, origin: ref, seq: write.version.seq)
            if write.slot == PackedRowClock.aliveSlot {
                row.alive = write.value.integer ?? RowState.deleted
            } else {
                row.values[Int(write.slot)] = write.value
            }
        }
        return decision
    }

    /// Applies changes to one row, logs the operations that now own a column, and forgets the
    /// operations that no longer own any (each operation writes one row, so that is exact).
    func mergeAndSave(_ info: TableInfo, _ row: inout RowState, _ changes: [SlotChange]) throws -> RowMergeDecision {
        let before = row.clock
        let outcome = try merge(&row, changes)
        guard outcome.applied > 0 else { return outcome }
        try saveRow(info, &row)
        var gained: Set<OperationRef> = []
        var displaced: Set<OperationRef> = []
        for (slot, entry) in row.clock.entries where before[slot] != entry {
            gained.insert(OperationRef(origin: entry.origin, seq: entry.seq))
            if let old = before[slot] { displaced.insert(OperationRef(origin: old.origin, seq: old.seq)) }
        }
        let stillOwning = Set(row.clock.entries.map { OperationRef(origin: $0.entry.origin, seq: $0.entry.seq) })
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO crdt_log(origin, seq, tbl, key) VALUES (?, ?, ?, ?)")
        for op in gained {
            try insert.execute(arguments: [Int64(op.origin), Int64(bitPattern: op.seq), info.id, row.key])
        }
        let delete = try db.cachedStatement(sql: "DELETE FROM crdt_log WHERE origin = ? AND seq = ?")
        for op in displaced.subtracting(stillOwning) {
            try delete.execute(arguments: [Int64(op.origin), Int64(bitPattern: op.seq)])
        }
        return outcome
    }

    /// The common case when a node catches up: the row is new here. Merges the changes in memory
    /// and inserts the row without reading first; returns nil if the row already exists, and the
    /// caller takes the general path.
    func insertIfNew(_ info: TableInfo, key: String, _ changes: [SlotChange]) throws -> RowMergeDecision? {
        var row = RowState(key: key, existsInDatabase: false, values: Array(repeating: .null, count: info.table.columns.count),
                           alive: RowState.deleted, clock: PackedRowClock())
        let outcome = try merge(&row, changes)
        try saveRow(info, &row)
        guard db.changesCount > 0 else { return nil }
        for op in Set(row.clock.entries.map { OperationRef(origin: $0.entry.origin, seq: $0.entry.seq) }) {
            pendingLog.append((Int64(op.origin), Int64(bitPattern: op.seq), info.id, key))
        }
        if pendingLog.count >= Self.logChunk { try flushLog() }
        return outcome
    }

    /// Log rows for rows new to this replica, written in multi-row statements: one statement per
    /// row was most of the merge's cost over a plain insert. A row appears once per batch, so no
    /// later step of the same batch can displace these operations before they are written.
    private var pendingLog: [(Int64, Int64, Int64, String)] = []
    private static let logChunk = 64

    func flushLog() throws {
        var start = 0
        while start < pendingLog.count {
            let chunk = pendingLog[start..<min(pendingLog.count, start + Self.logChunk)]
            let statement = try db.cachedStatement(sql: "INSERT OR IGNORE INTO crdt_log(origin, seq, tbl, key) VALUES "
                + Array(repeating: "(?, ?, ?, ?)", count: chunk.count).joined(separator: ", "))
            var arguments: [DatabaseValue] = []
            arguments.reserveCapacity(chunk.count * 4)
            for (origin, seq, table, key) in chunk {
                arguments += [origin.databaseValue, seq.databaseValue, table.databaseValue, key.databaseValue]
            }
            try statement.execute(arguments: StatementArguments(arguments))
            start += chunk.count
        }
        pendingLog.removeAll(keepingCapacity: true)
    }

    /// The next local version: a fresh HLC stamp and the next sequence number of this incarnation.
    func nextLocalVersion() -> ChangeVersion {
        let hlc = state.hlc.now(wallMillis: wallMillis)
        state.lastSeq += 1
        return ChangeVersion(hlc: hlc, origin: state.origin, seq: state.lastSeq)
    }

    func persistClock() throws {
        try Replica.setMeta(db, "hlc", Int64(bitPattern: state.hlc.last.rawValue))
        try Replica.setMeta(db, "last_seq", Int64(bitPattern: state.lastSeq))
        try db.execute(sql: "UPDATE crdt_origin SET covered = max(covered, ?) WHERE id = ?",
                       arguments: [Int64(bitPattern: state.lastSeq), Int64(state.originRef)])
    }
}

/// The handle a local transaction writes through. Every call stamps one operation with a new HLC
/// and sequence number; personal-data columns are sealed here, at the origin.
public final class LocalWriter {
    let merger: Merger

    init(merger: Merger) { self.merger = merger }

    /// Creates a row. Refused if a live row has that key: two writers of one identity make one row.
    @discardableResult
    public func insert(_ table: String, key: String, values: [String: ColumnValue]) throws -> ChangeVersion {
        let info = try tableInfo(table)
        try Self.validate(key: key)
        var row = try merger.loadRow(info, key: key)
        guard row.alive == RowState.deleted else {
            throw StoreError(.rowExists, zh: "\(table) 中已有键为 \(key) 的记录；请改用更新。",
                             en: "\(table) already has a row with key \(key); update it instead.")
        }
        for name in values.keys where info.table.columnIndex(name) == nil { throw StoreError.unknownColumn(name, table: table) }
        let version = merger.nextLocalVersion()
        let kind = row.existsInDatabase ? RowState.reinserted : RowState.created
        var changes = [SlotChange(slot: PackedRowClock.aliveSlot, value: .integer(kind), version: version)]
        for (i, column) in info.table.columns.enumerated() {
            changes.append(SlotChange(slot: UInt16(i), value: try seal(values[column.name] ?? .null, column, table, key), version: version))
        }
        _ = try merger.mergeAndSave(info, &row, changes)
        return version
    }

    /// Updates the row if it is live, creates it otherwise.
    @discardableResult
    public func upsert(_ table: String, key: String, values: [String: ColumnValue]) throws -> ChangeVersion {
        let info = try tableInfo(table)
        try Self.validate(key: key)
        let row = try merger.loadRow(info, key: key)
        return row.alive == RowState.deleted ? try insert(table, key: key, values: values) : try update(table, key: key, values: values)
    }

    /// Changes some columns of a live row.
    @discardableResult
    public func update(_ table: String, key: String, values: [String: ColumnValue]) throws -> ChangeVersion {
        let info = try tableInfo(table)
        var row = try merger.loadRow(info, key: key)
        guard row.alive != RowState.deleted else { throw Self.missing(table, key) }
        let version = merger.nextLocalVersion()
        var changes: [SlotChange] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let i = info.table.columnIndex(name) else { throw StoreError.unknownColumn(name, table: table) }
            changes.append(SlotChange(slot: UInt16(i), value: try seal(value, info.table.columns[i], table, key), version: version))
        }
        _ = try merger.mergeAndSave(info, &row, changes)
        return version
    }

    /// Deletes a live row, leaving a tombstone. Clinical records are never deleted this way: they
    /// are marked entered-in-error instead.
    @discardableResult
    public func delete(_ table: String, key: String) throws -> ChangeVersion {
        let info = try tableInfo(table)
        var row = try merger.loadRow(info, key: key)
        guard row.alive != RowState.deleted else { throw Self.missing(table, key) }
        let version = merger.nextLocalVersion()
        _ = try merger.mergeAndSave(info, &row, [SlotChange(slot: PackedRowClock.aliveSlot, value: .integer(RowState.deleted), version: version)])
        return version
    }

    private func tableInfo(_ table: String) throws -> TableInfo {
        guard let info = merger.replica.tables[table] else { throw StoreError.unknownTable(table) }
        return info
    }

    private func seal(_ value: ColumnValue, _ column: ReplicatedTable.Column, _ table: String, _ key: String) throws -> ColumnValue {
        guard column.encrypted, value != .null else { return value }
        guard let cipher = merger.replica.options.cipher else {
            throw StoreError(.encryption, zh: "列 \(table).\(column.name) 需要加密，但本节点没有配置数据密钥。",
                             en: "column \(table).\(column.name) is encrypted but this node has no data key configured.")
        }
        return try cipher.seal(value, table: table, column: column.name, key: key)
    }

    static func validate(key: String) throws {
        guard !key.isEmpty, key.utf8.count <= maxKeyBytes else {
            throw StoreError(.invalidKey, zh: "记录键必须非空且不超过 \(maxKeyBytes) 字节。", en: "a row key must be non-empty and at most \(maxKeyBytes) bytes.")
        }
    }

    static let maxKeyBytes = 512

    private static func missing(_ table: String, _ key: String) -> StoreError {
        StoreError(.rowMissing, zh: "\(table) 中没有键为 \(key) 的有效记录。", en: "\(table) has no live row with key \(key).")
    }
}
