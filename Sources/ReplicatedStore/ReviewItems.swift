import GRDB
import ReplicatedCore

/// Disagreements a person must settle: two nodes created the same identity (same patient, same
/// schedule) with different values. The merge still converges (the later creation wins each
/// column); the losing value is kept here rather than silently mixed away.
///
/// Review items are themselves a replicated table, keyed by the conflict, so every replica that
/// notices the same conflict writes the same row and all replicas end up listing it. Detected items
/// never change; what a person decides goes into a second table that only people write, so a
/// replica that notices the conflict late cannot reopen an item already settled.
public enum ReviewItems {
    static let table = ReplicatedTable(ReviewItem.table, columns: [
        .init("tbl", .text), .init("row_key", .text), .init("col", .text),
        .init("node_a", .text), .init("value_a", .blob), .init("node_b", .text), .init("value_b", .blob),
    ])
    static let resolutions = ReplicatedTable("crdt_review_resolution", columns: [
        .init("note", .text), .init("resolved_by", .text),
    ])

    public struct Item: Sendable, Equatable {
        public let id: String
        public let table: String
        public let rowKey: String
        public let column: String
        public let nodeA: String
        public let valueA: ColumnValue
        public let nodeB: String
        public let valueB: ColumnValue
        public let status: String
        public let note: String?
    }

    /// Writes the item unless this replica has a row under its key already. Returns true if it was new here.
    static func record(_ item: ReviewItem, merger: Merger) throws -> Bool {
        guard let info = merger.replica.tables[table.name] else { return false }
        guard !(try merger.loadRow(info, key: item.id)).existsInDatabase else { return false }
        try LocalWriter(merger: merger).insert(table.name, key: item.id, values: item.values)
        return true
    }
}

extension Replica {
    /// Review items, open ones first. Decoded defensively: the rows come from peers.
    public func reviewItems(includeResolved: Bool = false) throws -> [ReviewItems.Item] {
        try read { db in
            let filter = includeResolved ? "" : "AND r.id IS NULL"
            return try Row.fetchAll(db, sql: """
                SELECT i.id, i.tbl, i.row_key, i.col, i.node_a, i.value_a, i.node_b, i.value_b, r.id IS NOT NULL, r.note
                FROM crdt_review i LEFT JOIN crdt_review_resolution r ON r.id = i.id AND r.crdt_alive > 0
                WHERE i.crdt_alive > 0 \(filter) ORDER BY 9, i.tbl, i.row_key, i.col, i.id
                """).map { row in
                ReviewItems.Item(id: row[0], table: row[1] ?? "", rowKey: row[2] ?? "", column: row[3] ?? "",
                                 nodeA: row[4] ?? "", valueA: ColumnValue(row[5] as DatabaseValue),
                                 nodeB: row[6] ?? "", valueB: ColumnValue(row[7] as DatabaseValue),
                                 status: (row[8] as Bool? ?? false) ? "resolved" : "open", note: row[9])
            }
        }
    }

    /// Records what a person decided about an item. Replicates like any write.
    public func resolveReviewItem(_ id: String, note: String, by person: String) throws {
        _ = try write { try $0.upsert(ReviewItems.resolutions.name, key: id, values: ["note": .text(note), "resolved_by": .text(person)]) }
    }
}
