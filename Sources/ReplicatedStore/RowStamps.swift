import Synchronization

/// Change stamps for rows (hashed into a fixed table) and for whole tables, so a reader can keep a
/// copy of rows in memory and know when to read them again: note the stamp before reading; the
/// copy is current while the stamp is unchanged. Every commit bumps the stamps of the rows it
/// wrote, after it is committed, so a read that raced a commit never looks current. Two rows
/// may share a stamp: that only costs a needless read.
public final class RowStamps: Sendable {
    private static let size = 4096
    private let stamps = Mutex([UInt64](repeating: 0, count: RowStamps.size))
    private let tableStamps = Mutex<[String: UInt64]>([:])

    public init() {}

    public func stamp(table: String, key: String) -> UInt64 {
        let i = Self.index(table, key)
        return stamps.withLock { $0[i] }
    }

    /// Moves with every commit that writes any row of `table`.
    public func stamp(table: String) -> UInt64 { tableStamps.withLock { $0[table] ?? 0 } }

    func bump(_ rows: Set<RowRef>) {
        guard !rows.isEmpty else { return }
        let indexes = rows.map { Self.index($0.table, $0.key) }
        let tables = Set(rows.map(\.table))
        stamps.withLock { s in for i in indexes { s[i] &+= 1 } }
        tableStamps.withLock { s in for t in tables { s[t, default: 0] &+= 1 } }
    }

    private static func index(_ table: String, _ key: String) -> Int {
        var h = Hasher()
        h.combine(table)
        h.combine(key)
        return Int(UInt(bitPattern: h.finalize()) % UInt(size))
    }
}

/// A row by table name and key.
struct RowRef: Hashable {
    var table: String
    var key: String
}
