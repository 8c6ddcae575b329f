import Crypto
import GRDB

/// What merging a batch did, for logs, metrics and tests.
public struct ApplyReport: Sendable, Equatable {
    /// Changes that won their column and are now the current value.
    public var applied = 0
    /// Changes older than what the replica already had.
    public var superseded = 0
    /// Changes the replica already had.
    public var duplicates = 0
    /// Changes stamped too far ahead of the local clock, kept and retried later.
    public var parkedClockAhead = 0
    /// Changes for tables or columns this node's schema does not have yet, kept until it upgrades.
    public var parkedUnknownSchema = 0
    /// Malformed changes (bad key, bad existence value, sequence 0), with the first reasons.
    public var rejected = 0
    public var rejectedReasons: [String] = []
    /// Creation conflicts found (two nodes created one identity with different values).
    public var reviewItems = 0

    public init() {}
}

extension Replica {
    /// Merges a batch from a peer in one transaction, then advances the version vector by the
    /// batch's coverage (held back below any change it had to park, so that change is sent again).
    /// Idempotent and commutative: any order of the same batches, with duplicates, gives the same rows.
    @discardableResult
    public func apply(_ batch: ChangeBatch) throws -> ApplyReport {
        try transaction { merger in
            var report = ApplyReport()
            try merger.applyChanges(batch.changes, report: &report)
            try merger.advance(by: batch.coverage, base: batch.base)
            return report
        }
    }

    /// Retries parked changes (after the clock caught up, or after a schema upgrade).
    @discardableResult
    public func retryParked() throws -> ApplyReport {
        try transaction { merger in
            let rows = try Row.fetchAll(merger.db, sql: "SELECT origin, seq, col, tbl, key, value, hlc FROM crdt_parked")
            try merger.db.execute(sql: "DELETE FROM crdt_parked")
            var changes: [Change] = []
            for row in rows {
                guard let origin = merger.state.origins[UInt32(row[0] as Int64)] else { continue }
                let version = ChangeVersion(hlc: HLCTimestamp(rawValue: UInt64(bitPattern: row[6])), origin: origin,
                                            seq: UInt64(bitPattern: row[1]))
                changes.append(Change(table: row[3], key: row[4], column: row[2], value: ColumnValue(row[5] as DatabaseValue), version: version))
            }
            var report = ApplyReport()
            try merger.applyChanges(changes, report: &report)
            return report
        }
    }

    public func parkedCount() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM crdt_parked") ?? 0 }
    }

    public func versionVector() throws -> VersionVector {
        try read { db in
            var vector = VersionVector()
            for row in try Row.fetchAll(db, sql: "SELECT node, incarnation, covered FROM crdt_origin") {
                vector[OriginID(node: row[0], incarnation: UInt32(row[1] as Int64))] = UInt64(bitPattern: row[2])
            }
            return vector
        }
    }

    /// Every change this replica holds that `since` lacks, in (origin, sequence) order, at most
    /// about `limit` changes (a batch is cut between operations, never inside one).
    public func changes(since: VersionVector, limit: Int = 10_000) throws -> ChangeBatch {
        try read { db in
            let origins = try Row.fetchAll(db, sql: "SELECT id, node, incarnation, covered FROM crdt_origin").map { row in
                (ref: UInt32(row[0] as Int64), origin: OriginID(node: row[1], incarnation: UInt32(row[2] as Int64)),
                 covered: UInt64(bitPattern: row[3]))
            }.sorted { $0.origin < $1.origin }
            var changes: [Change] = []
            var coverage = VersionVector()
            let logStatement = try db.cachedStatement(sql: "SELECT seq, tbl, key FROM crdt_log WHERE origin = ? AND seq > ? AND seq <= ? ORDER BY seq")
            for entry in origins {
                let from = since[entry.origin]
                guard entry.covered > from else { continue }
                let rows = try Row.fetchCursor(logStatement, arguments: [Int64(entry.ref), Int64(bitPattern: from), Int64(bitPattern: entry.covered)])
                while let logRow = try rows.next() {
                    let seq = UInt64(bitPattern: logRow[0])
                    guard let info = tablesByID[logRow[1]] else { continue }
                    let row = try RowState.load(db, info, key: logRow[2])
                    let operation = Self.changes(of: row, info, ownedBy: entry.ref, seq: seq, origin: entry.origin)
                    if changes.count + operation.count > limit, !changes.isEmpty {
                        // Nothing of this origin between the last operation sent and this one.
                        coverage[entry.origin] = seq - 1
                        return ChangeBatch(changes: changes, base: since, coverage: coverage)
                    }
                    changes += operation
                }
                coverage[entry.origin] = entry.covered
            }
            return ChangeBatch(changes: changes, base: since, coverage: coverage)
        }
    }

    /// The columns of `row` whose current value was written by operation (origin, seq).
    static func changes(of row: RowState, _ info: TableInfo, ownedBy ref: UInt32, seq: UInt64, origin: OriginID) -> [Change] {
        var out: [Change] = []
        for (slot, entry) in row.clock.entries where entry.origin == ref && entry.seq == seq {
            let version = ChangeVersion(hlc: HLCTimestamp(rawValue: entry.hlc), origin: origin, seq: seq)
            if slot == RowClock.aliveSlot {
                out.append(Change(table: info.table.name, key: row.key, column: ReplicaSchema.aliveColumn, value: .integer(row.alive), version: version))
            } else if Int(slot) < info.table.columns.count {
                out.append(Change(table: info.table.name, key: row.key, column: info.table.columns[Int(slot)].name,
                                  value: row.values[Int(slot)], version: version))
            }
        }
        return out.sorted { $0.column < $1.column }
    }
}

extension Merger {
    func applyChanges(_ changes: [Change], report: inout ApplyReport) throws {
        // Group by row, keeping first-seen order, so each row is read and written once.
        var order: [RowKey] = []
        var groups: [RowKey: [Change]] = [:]
        for change in changes {
            let key = RowKey(table: change.table, key: change.key)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(change)
        }
        var newest = HLCTimestamp.zero
        for rowKey in order {
            let group = groups[rowKey]!
            guard let info = replica.tables[rowKey.table] else {
                for change in group { try park(change, reason: "unknown_schema") }
                report.parkedUnknownSchema += group.count
                continue
            }
            guard (try? LocalWriter.validate(key: rowKey.key)) != nil else {
                reject(group.count, "invalid key in \(rowKey.table)", &report)
                continue
            }
            var slotChanges: [SlotChange] = []
            slotChanges.reserveCapacity(group.count)
            for change in group {
                let slot: UInt16
                if change.column == ReplicaSchema.aliveColumn {
                    guard let v = change.value.integer, (RowState.deleted...RowState.created).contains(v) else {
                        reject(1, "existence value \(change.value) in \(rowKey.table)", &report)
                        continue
                    }
                    slot = RowClock.aliveSlot
                } else if let index = info.table.columnIndex(change.column) {
                    slot = UInt16(index)
                } else {
                    try park(change, reason: "unknown_schema")
                    report.parkedUnknownSchema += 1
                    continue
                }
                guard change.version.seq > 0 else { reject(1, "sequence 0 from \(change.version.origin)", &report); continue }
                if case .deferred = state.hlc.check(change.version.hlc, wallMillis: wallMillis) {
                    try park(change, reason: "clock_ahead")
                    report.parkedClockAhead += 1
                    continue
                }
                newest = max(newest, change.version.hlc)
                slotChanges.append(SlotChange(slot: slot, value: change.value, version: change.version))
            }
            guard !slotChanges.isEmpty else { continue }
            var row = try loadRow(info, key: rowKey.key)
            let conflicts = try creationConflicts(info, row, slotChanges)
            let outcome = try mergeAndSave(info, &row, slotChanges)
            report.applied += outcome.won
            report.superseded += outcome.lost
            report.duplicates += outcome.duplicate
            for conflict in conflicts where try ReviewItems.record(conflict, merger: self) {
                report.reviewItems += 1
            }
        }
        _ = state.hlc.receive(newest, wallMillis: wallMillis)
    }

    private func reject(_ count: Int, _ reason: String, _ report: inout ApplyReport) {
        report.rejected += count
        if report.rejectedReasons.count < 10 { report.rejectedReasons.append(reason) }
        replica.options.logger.warning("rejected malformed change", metadata: ["store.reason": "\(reason)"])
    }

    private func park(_ change: Change, reason: String) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO crdt_parked(origin, seq, col, tbl, key, value, hlc, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        try statement.execute(arguments: [Int64(try originRef(change.version.origin)), Int64(bitPattern: change.version.seq),
                                          change.column, change.table, change.key, change.value.databaseValue,
                                          Int64(bitPattern: change.version.hlc.rawValue), reason])
    }

    /// Raises the version vector by a batch's coverage, for origins this replica already has up to
    /// the batch's base, and never past a change still parked.
    func advance(by coverage: VersionVector, base: VersionVector) throws {
        var parkedFloor: [Int64: UInt64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT origin, MIN(seq) FROM crdt_parked GROUP BY origin") {
            parkedFloor[row[0]] = UInt64(bitPattern: row[1])
        }
        var covered: [Int64: UInt64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, covered FROM crdt_origin") {
            covered[row[0]] = UInt64(bitPattern: row[1])
        }
        let statement = try db.cachedStatement(sql: "UPDATE crdt_origin SET covered = max(covered, ?) WHERE id = ?")
        for (origin, seq) in coverage.entries {
            let ref = Int64(try originRef(origin))
            guard (covered[ref] ?? 0) >= base[origin] else { continue }
            let target = parkedFloor[ref].map { min(seq, $0 - 1) } ?? seq
            try statement.execute(arguments: [Int64(bitPattern: target), ref])
        }
    }

    /// Two nodes that each created the same identity (neither knew of the other's row) with a
    /// different value in a column that neither has edited since: a person must look at it.
    func creationConflicts(_ info: TableInfo, _ row: RowState, _ changes: [SlotChange]) throws -> [CreationConflict] {
        guard row.alive == RowState.created, let localEntry = row.clock[RowClock.aliveSlot],
              let incoming = changes.first(where: { $0.slot == RowClock.aliveSlot && $0.value == .integer(RowState.created) })
        else { return [] }
        let local = try version(of: localEntry)
        guard local.origin.node != incoming.version.origin.node else { return [] }
        var conflicts: [CreationConflict] = []
        for change in changes where change.version == incoming.version && change.slot != RowClock.aliveSlot {
            guard row.clock[change.slot] == localEntry, row.values[Int(change.slot)] != change.value else { continue }
            conflicts.append(CreationConflict(table: info.table.name, key: row.key, column: info.table.columns[Int(change.slot)].name,
                                              first: (local, row.values[Int(change.slot)]), second: (incoming.version, change.value)))
        }
        return conflicts
    }
}

struct RowKey: Hashable {
    let table: String
    let key: String
}

struct CreationConflict {
    let table: String
    let key: String
    let column: String
    let first: (version: ChangeVersion, value: ColumnValue)
    let second: (version: ChangeVersion, value: ColumnValue)
}
