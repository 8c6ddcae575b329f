import Crypto
import GRDB
import ReplicatedCore

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
    /// Changes this node's schema cannot hold yet (unknown table or column, a value this version
    /// does not accept), kept until it upgrades.
    public var parkedUnknownSchema = 0
    /// Malformed changes (empty key, sequence 0 or beyond 2^63), with the first reasons.
    public var rejected = 0
    public var rejectedReasons: [String] = []
    /// Creation conflicts found (two nodes created one identity with different values).
    public var reviewItems = 0

    public init() {}
}

extension Replica {
    /// Merges a batch from a peer in one transaction, then advances the version vector by the
    /// batch's coverage. Changes it cannot merge yet are parked, durably: the vector still covers
    /// them, and this replica serves them on to others like any change it holds.
    /// Idempotent and commutative: any order of the same batches, with duplicates, gives the same rows.
    @discardableResult
    public func apply(_ batch: ChangeBatch) throws -> ApplyReport {
        try transaction { merger in
            var report = ApplyReport()
            try merger.applyChanges(batch.changes, report: &report)
            try merger.advance(by: batch.coverage, base: batch.base, carried: Set(batch.changes.map(\.version.origin)))
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
                guard let origin = merger.state.origins[UInt32(clamping: row[0] as Int64)] else { continue }
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
            for entry in try Self.originRows(db) { vector[entry.origin] = entry.covered }
            return vector
        }
    }

    /// Every change this replica holds that `since` lacks, in (origin, sequence) order, at most
    /// about `limit` changes (a batch is cut between operations, never inside one).
    public func changes(since: VersionVector, limit: Int = 10_000) throws -> ChangeBatch {
        try read { db in
            let origins = try Self.originRows(db).sorted { $0.origin < $1.origin }
            var changes: [Change] = []
            var coverage = VersionVector()
            let logStatement = try db.cachedStatement(sql: "SELECT seq, tbl, key FROM crdt_log WHERE origin = ? AND seq > ? AND seq <= ? ORDER BY seq")
            let parkedStatement = try db.cachedStatement(sql: "SELECT seq, col, tbl, key, value, hlc FROM crdt_parked WHERE origin = ? AND seq > ? AND seq <= ?")
            for entry in origins {
                let from = since[entry.origin]
                guard entry.covered > from else { continue }
                // Operations this replica merged, and ones it parked: both are its to serve. The log
                // is read only as far as the batch can take: a backlog of a million operations
                // must not be read whole for each batch of ten thousand.
                var operations: [UInt64: [Change]] = [:]
                var taken = 0
                var upTo = entry.covered
                let log = try Row.fetchCursor(logStatement, arguments: [Int64(entry.ref), Int64(bitPattern: from), Int64(bitPattern: entry.covered)])
                while let logRow = try log.next() {
                    guard let info = tablesByID[logRow[1]] else { continue }
                    let seq = UInt64(bitPattern: logRow[0])
                    if changes.count + taken >= limit, taken > 0 || !changes.isEmpty {
                        upTo = seq - 1
                        break
                    }
                    let row = try RowState.load(db, info, key: logRow[2])
                    let operation = Self.changes(of: row, info, ownedBy: entry.ref, seq: seq, origin: entry.origin)
                    operations[seq, default: []] += operation
                    taken += operation.count
                }
                let range: StatementArguments = [Int64(entry.ref), Int64(bitPattern: from), Int64(bitPattern: upTo)]
                for parked in try Row.fetchAll(parkedStatement, arguments: range) {
                    let seq = UInt64(bitPattern: parked[0])
                    let version = ChangeVersion(hlc: HLCTimestamp(rawValue: UInt64(bitPattern: parked[5])), origin: entry.origin, seq: seq)
                    operations[seq, default: []].append(Change(table: parked[2], key: parked[3], column: parked[1],
                                                               value: ColumnValue(parked[4] as DatabaseValue), version: version))
                }
                for seq in operations.keys.sorted() {
                    let operation = operations[seq]!
                    if changes.count + operation.count > limit, !changes.isEmpty {
                        // Nothing of this origin between the last operation sent and this one.
                        coverage[entry.origin] = seq - 1
                        return ChangeBatch(changes: changes, base: since, coverage: coverage)
                    }
                    changes += operation
                }
                coverage[entry.origin] = upTo
                if upTo < entry.covered { return ChangeBatch(changes: changes, base: since, coverage: coverage) }
            }
            return ChangeBatch(changes: changes, base: since, coverage: coverage)
        }
    }

    /// The columns of `row` whose current value was written by operation (origin, seq).
    static func changes(of row: RowState, _ info: TableInfo, ownedBy ref: UInt32, seq: UInt64, origin: OriginID) -> [Change] {
        var out: [Change] = []
        for (slot, entry) in row.clock.entries where entry.origin == ref && entry.seq == seq {
            let version = ChangeVersion(hlc: HLCTimestamp(rawValue: entry.hlc), origin: origin, seq: seq)
            if slot == PackedRowClock.aliveSlot {
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
        // Group by row, keeping first-seen order, so each row is read and written once. The
        // changes of one operation arrive together, so most changes join the group before them.
        var order: [RowKey] = []
        var groups: [RowKey: [Change]] = [:]
        var run: (key: RowKey, changes: [Change])?
        func closeRun() {
            guard let current = run else { return }
            if groups[current.key] == nil { order.append(current.key) }
            groups[current.key, default: []] += current.changes
            run = nil
        }
        for change in changes {
            if let current = run, current.key.table == change.table, current.key.key == change.key {
                run!.changes.append(change)
                continue
            }
            closeRun()
            run = (RowKey(table: change.table, key: change.key), [change])
        }
        closeRun()
        var newest = HLCTimestamp.zero
        for rowKey in order {
            let group = groups[rowKey]!
            var admissible: [Change] = []
            for change in group {
                // Structurally malformed: cannot be stored or served, by any version.
                guard change.version.seq > 0, change.version.seq <= UInt64(Int64.max), !rowKey.key.isEmpty else {
                    reject(1, "malformed change \(change.version) for \(rowKey.table)", &report)
                    continue
                }
                try noticeOwnOrigin(change.version)
                admissible.append(change)
            }
            guard !admissible.isEmpty else { continue }
            guard let info = replica.tables[rowKey.table], rowKey.key.utf8.count <= LocalWriter.maxKeyBytes else {
                for change in admissible { try park(change, reason: "unknown_schema") }
                report.parkedUnknownSchema += admissible.count
                continue
            }
            var slotChanges: [SlotChange] = []
            slotChanges.reserveCapacity(admissible.count)
            for change in admissible {
                let slot: UInt16
                if change.column == ReplicaSchema.aliveColumn,
                   let v = change.value.integer, (RowState.deleted...RowState.created).contains(v) {
                    slot = PackedRowClock.aliveSlot
                } else if let index = info.slots[change.column],
                          !info.table.columns[index].encrypted || FieldCipher.looksSealed(change.value) {
                    slot = UInt16(index)
                } else {
                    // A column, or a value, that a later schema version may know: keep it.
                    try park(change, reason: "unknown_schema")
                    report.parkedUnknownSchema += 1
                    continue
                }
                if case .deferred = state.hlc.check(change.version.hlc, wallMillis: wallMillis) {
                    try park(change, reason: "clock_ahead")
                    report.parkedClockAhead += 1
                    continue
                }
                newest = max(newest, change.version.hlc)
                slotChanges.append(SlotChange(slot: slot, value: change.value, version: change.version))
            }
            guard !slotChanges.isEmpty else { continue }
            if let outcome = try insertIfNew(info, key: rowKey.key, slotChanges) {
                report.applied += outcome.applied
                report.duplicates += outcome.duplicates
                report.superseded += outcome.superseded
                continue
            }
            var row = try loadRow(info, key: rowKey.key)
            let outcome = try mergeAndSave(info, &row, slotChanges)
            report.applied += outcome.applied
            report.superseded += outcome.superseded
            report.duplicates += outcome.duplicates
            // Before any review item is written, so it is stamped after what it reports.
            _ = state.hlc.receive(newest, wallMillis: wallMillis)
            for conflict in outcome.conflicts {
                let item = ReviewItem(table: info.table.name, key: row.key, column: info.table.columns[Int(conflict.slot)].name, conflict: conflict)
                if try ReviewItems.record(item, merger: self) { report.reviewItems += 1 }
            }
        }
        try flushLog()
    }

    /// Peers holding changes of this node that it does not have (a newer incarnation, or sequence
    /// numbers past its own) mean it lost writes it had shipped: merge them, but stop local writes
    /// until a restart starts a new incarnation, so no sequence number is ever reused.
    private func noticeOwnOrigin(_ version: ChangeVersion) throws {
        guard version.origin.node == state.origin.node else { return }
        let newerLife = version.origin.incarnation > state.origin.incarnation
        let pastOwnEnd = version.origin.incarnation == state.origin.incarnation && version.seq > state.lastSeq
        guard newerLife || pastOwnEnd else { return }
        let known = max(version.origin.incarnation, state.origin.incarnation)
        try Replica.setMeta(db, "known_incarnation", Int64(known))
        if state.writesRefusedBecause == nil {
            state.writesRefusedBecause = StoreError(
                .writesRefused,
                zh: "其他节点持有本节点 \(version.origin) 的变更 \(version.seq)，说明本节点丢失过已发出的写入；请重启本节点以启用新的 incarnation。",
                en: "peers hold change \(version.seq) of this node's \(version.origin), so this node lost writes it had shipped; restart it to start a new incarnation.")
            replica.options.logger.error("peers hold changes of this node it does not have; refusing writes until restart",
                                         metadata: ["store.origin": "\(version.origin)", "store.seq": "\(version.seq)"])
        }
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
    /// the batch's base. Never for this node's own current origin: only its own writes advance that.
    func advance(by coverage: VersionVector, base: VersionVector, carried: Set<OriginID>) throws {
        let covered = Dictionary(uniqueKeysWithValues: try Replica.originRows(db).map { ($0.origin, $0.covered) })
        let statement = try db.cachedStatement(sql: "UPDATE crdt_origin SET covered = max(covered, ?) WHERE id = ?")
        for (origin, seq) in coverage.entries where origin != state.origin && seq <= UInt64(Int64.max) {
            // An origin this replica has never heard of, with nothing in the batch: not worth a row.
            guard covered[origin] != nil || carried.contains(origin) else { continue }
            guard (covered[origin] ?? 0) >= base[origin] else { continue }
            try statement.execute(arguments: [Int64(bitPattern: seq), Int64(try originRef(origin))])
        }
    }
}

struct RowKey: Hashable {
    let table: String
    let key: String
}
