import Crypto

/// A creation conflict as the row a replica writes for it. Keyed by the conflict itself, so every
/// replica that notices the same conflict writes the same row, and a replica writes it only if it
/// has no row under that key yet (a settled item is never reopened).
public struct ReviewItem: Equatable, Sendable {
    public static let table = "crdt_review"
    public static let columns = ["tbl", "row_key", "col", "node_a", "value_a", "node_b", "value_b"]

    public let id: String
    public let values: [String: ColumnValue]

    public init(table: String, key: String, column: String, conflict: CreationConflict) {
        let (a, b) = conflict.first.version < conflict.second.version ? (conflict.first, conflict.second) : (conflict.second, conflict.first)
        let identity = [table, key, column, a.version.description, b.version.description].joined(separator: "\u{0}")
        id = hex(SHA256.hash(data: Array(identity.utf8)).prefix(16))
        values = [
            "tbl": .text(table), "row_key": .text(key), "col": .text(column),
            "node_a": .text(a.version.origin.node), "value_a": a.value,
            "node_b": .text(b.version.origin.node), "value_b": b.value,
        ]
    }
}
