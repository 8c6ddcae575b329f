import Crypto
import Foundation
import GRDB
import ReplicatedCore

extension Replica {
    /// A live row with personal data opened, or nil if there is none with that key.
    public func liveRow(_ table: String, key: String) throws -> [String: ColumnValue]? {
        try liveRows(table, keys: CollectionOfOne(key))[key]
    }

    /// The live rows of `keys` in one read transaction (a batch costs one pool checkout, not one
    /// per row); keys without a live row are left out.
    public func liveRows(_ table: String, keys: some Sequence<String>) throws -> [String: [String: ColumnValue]] {
        guard let info = tables[table] else { throw StoreError.unknownTable(table) }
        let states = try read { db in try keys.map { try RowState.load(db, info, key: $0) } }
        var rows: [String: [String: ColumnValue]] = [:]
        for row in states where row.alive != RowState.deleted { rows[row.key] = try opened(row, info) }
        return rows
    }

    /// Every live row of a table, by key, with personal data opened.
    public func liveRows(_ table: String) throws -> [String: [String: ColumnValue]] {
        guard let info = tables[table] else { throw StoreError.unknownTable(table) }
        // One read transaction for the whole table, not one per row.
        let states = try read { db in
            let keys = try String.fetchAll(db, sql: "SELECT \(info.table.keyColumn.quotedDatabaseIdentifier) FROM \(table.quotedDatabaseIdentifier) WHERE crdt_alive > 0")
            return try keys.map { try RowState.load(db, info, key: $0) }
        }
        var rows: [String: [String: ColumnValue]] = [:]
        for row in states where row.alive != RowState.deleted { rows[row.key] = try opened(row, info) }
        return rows
    }

    /// Live rows whose plain columns equal `equal` and whose `range` column lies in its bounds,
    /// newest first (by `newestBy`, then by key; by key alone if nil), at most `limit` (the audit
    /// trail's filters; encrypted columns cannot be matched, their stored values are ciphertext).
    public func liveRows(_ table: String, equal: [String: ColumnValue], range: (column: String, from: ColumnValue?, to: ColumnValue?)? = nil,
                         newestBy: String? = nil, limit: Int) throws -> [(key: String, row: [String: ColumnValue])] {
        guard let info = tables[table] else { throw StoreError.unknownTable(table) }
        let named = Array(equal.keys) + (range.map { [$0.column] } ?? []) + (newestBy.map { [$0] } ?? [])
        for name in named where info.table.columns.first(where: { $0.name == name && !$0.encrypted }) == nil {
            throw StoreError(.unknownColumn, zh: "表 \(table) 没有可按其筛选的列 \(name)。", en: "table \(table) has no column \(name) to filter by.")
        }
        var conditions = ["crdt_alive > 0"]
        var arguments: [DatabaseValue] = []
        for (name, value) in equal.sorted(by: { $0.key < $1.key }) {
            conditions.append("\(name.quotedDatabaseIdentifier) = ?")
            arguments.append(value.databaseValue)
        }
        if let range {
            if let from = range.from { conditions.append("\(range.column.quotedDatabaseIdentifier) >= ?"); arguments.append(from.databaseValue) }
            if let to = range.to { conditions.append("\(range.column.quotedDatabaseIdentifier) < ?"); arguments.append(to.databaseValue) }
        }
        let key = info.table.keyColumn.quotedDatabaseIdentifier
        let order = (newestBy.map { "\($0.quotedDatabaseIdentifier) DESC, " } ?? "") + "\(key) DESC"
        // The rows themselves in the one query, not their keys and then a lookup per key.
        let sql = "\(info.selectManySQL) WHERE \(conditions.joined(separator: " AND ")) ORDER BY \(order) LIMIT ?"
        arguments.append(max(0, limit).databaseValue)
        let count = info.table.columns.count
        let states = try read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
                try RowState(key: row[count + 2], row: row, columns: count)
            }
        }
        return try states.filter { $0.alive != RowState.deleted }.map { ($0.key, try opened($0, info)) }
    }

    private func opened(_ row: RowState, _ info: TableInfo) throws -> [String: ColumnValue] {
        var values: [String: ColumnValue] = [:]
        for (i, column) in info.table.columns.enumerated() {
            if column.encrypted, row.values[i] != .null {
                guard let cipher = options.cipher else {
                    throw StoreError(.encryption, zh: "本节点没有配置数据密钥，无法读取加密列 \(info.table.name).\(column.name)。",
                                     en: "this node has no data key, so it cannot read encrypted column \(info.table.name).\(column.name).")
                }
                values[column.name] = try cipher.open(row.values[i], table: info.table.name, column: column.name, key: row.key)
            } else {
                values[column.name] = row.values[i]
            }
        }
        return values
    }

    /// SHA-256 over a canonical encoding of every replicated table: every row ever seen (live or
    /// not), in key order, with each column's value and version. Two replicas with the same digest
    /// hold identical replicated state, metadata included.
    public func digest() throws -> String {
        try read { db in
            let origins = try Self.loadOrigins(db)
            var hasher = SHA256()
            for name in tables.keys.sorted() {
                let info = tables[name]!
                hasher.update(data: Array("table\u{0}\(name)\u{0}".utf8))
                let keys = try String.fetchCursor(db, sql: "SELECT \(info.table.keyColumn.quotedDatabaseIdentifier) FROM \(name.quotedDatabaseIdentifier) ORDER BY 1")
                while let key = try keys.next() {
                    let row = try RowState.load(db, info, key: key)
                    var w = ByteWriter()
                    w.string(key)
                    w.varint(UInt64(bitPattern: row.alive))
                    let slots = [PackedRowClock.aliveSlot] + (0..<UInt16(info.table.columns.count))
                    for slot in slots {
                        if slot != PackedRowClock.aliveSlot { w.value(row.values[Int(slot)]) }
                        if let entry = row.clock[slot], let origin = origins[entry.origin] {
                            w.byte(1)
                            w.fixed64(entry.hlc)
                            w.string(origin.node)
                            w.varint(UInt64(origin.incarnation))
                            w.varint(entry.seq)
                        } else {
                            w.byte(0)
                        }
                    }
                    hasher.update(data: w.buffer)
                }
            }
            return hasher.finalize().map { String(format: "%02x", $0) }.joined()
        }
    }
}

extension ByteWriter {
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        varint(UInt64(utf8.count))
        bytes(utf8)
    }

    mutating func value(_ value: ColumnValue) {
        switch value {
        case .null: byte(0)
        case .integer(let v): byte(1); fixed64(UInt64(bitPattern: v))
        case .real(let v): byte(2); fixed64(v.bitPattern)
        case .text(let v): byte(3); string(v)
        case .blob(let v): byte(4); varint(UInt64(v.count)); bytes(v)
        }
    }
}

extension Replica {
    /// Where a reader of changes has got to in this replica's change log: per local origin id, the
    /// last operation it has seen. Local to this replica file (a snapshot install starts it anew).
    public typealias ChangeMarks = [Int64: Int64]

    /// The keys of `table`'s rows changed (written here or merged) after `marks`, at most about
    /// `limit` operations' worth, and the marks to ask from next time. A row changed again is
    /// named again; a row whose changes were all displaced by newer ones is named by the newer.
    public func changedKeys(_ table: String, after marks: ChangeMarks, limit: Int = 5_000) throws -> (keys: Set<String>, marks: ChangeMarks) {
        guard let info = tables[table] else { throw StoreError.unknownTable(table) }
        return try read { db in
            var next = marks
            var keys = Set<String>()
            var budget = limit
            for origin in try Int64.fetchAll(db, sql: "SELECT id FROM crdt_origin ORDER BY id") where budget > 0 {
                let rows = try Row.fetchAll(db, sql: "SELECT seq, tbl, key FROM crdt_log WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?",
                                            arguments: [origin, marks[origin] ?? 0, budget])
                for row in rows {
                    if (row["tbl"] as Int64) == info.id { keys.insert(row["key"]) }
                    next[origin] = row["seq"]
                }
                budget -= rows.count
            }
            return (keys, next)
        }
    }
}
