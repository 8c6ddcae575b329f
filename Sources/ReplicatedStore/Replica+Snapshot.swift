import Foundation
import GRDB
import ReplicatedCore

extension Replica {
    /// The newest hybrid logical clock stamp this replica has issued or seen (for heartbeats).
    public func currentHLC() -> HLCTimestamp {
        state.withLock { $0.hlc.last }
    }

    /// This node's wall clock as the replica reads it (the clock its HLC stamps come from).
    public func wallClockMillis() -> Int64 {
        options.wallClock()
    }

    /// Writes a consistent copy of the whole database to `path` with SQLite's `VACUUM INTO`, on a
    /// reader connection: local writes and merges go on meanwhile (WAL). The copy's version vector
    /// matches its rows exactly, so a node that adopts it continues with the change stream.
    public func writeSnapshot(to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try writer.unsafeRead { db in
            try db.execute(sql: "VACUUM INTO ?", arguments: [path])
        }
    }

    /// Makes the snapshot at `snapshotPath` the database of node `node` at `databasePath` (which
    /// must not exist yet): checks it, renames the node in it, and drops the serving node's own
    /// position, so that `open` starts a fresh origin incarnation for `node`, above any life of
    /// `node` the snapshot knows of. Returns the snapshot's version vector.
    @discardableResult
    public static func adoptSnapshot(at snapshotPath: String, as node: String, databasePath: String) throws -> VersionVector {
        guard !FileManager.default.fileExists(atPath: databasePath) else {
            throw StoreError(.wrongNode, zh: "\(databasePath) 已存在；只有新节点才能采用快照。",
                             en: "\(databasePath) already exists; only a new node adopts a snapshot.")
        }
        let queue = try DatabaseQueue(path: snapshotPath)
        let vector: VersionVector = try queue.writeWithoutTransaction { db in
            let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
            guard check == ["ok"], try db.tableExists("crdt_meta"), try db.tableExists("crdt_origin") else {
                throw StoreError(.corruptMetadata, zh: "收到的快照已损坏或不是副本数据库；请重试或从另一个节点获取。",
                                 en: "the snapshot received is corrupt or not a replica database; retry, or fetch it from another node.")
            }
            try db.inTransaction {
                let known = try Int64.fetchOne(db, sql: "SELECT max(incarnation) FROM crdt_origin WHERE node = ?", arguments: [node]) ?? 0
                try db.execute(sql: "DELETE FROM crdt_meta WHERE key IN ('incarnation', 'last_seq', 'generation', 'known_incarnation')")
                try Self.setMeta(db, "node", node)
                try Self.setMeta(db, "known_incarnation", known)
                return .commit
            }
            var vector = VersionVector()
            for row in try Row.fetchAll(db, sql: "SELECT node, incarnation, covered FROM crdt_origin") {
                vector[OriginID(node: row[0], incarnation: UInt32(clamping: row[1] as Int64))] = UInt64(bitPattern: row[2])
            }
            return vector
        }
        try queue.close()
        try FileManager.default.moveItem(atPath: snapshotPath, toPath: databasePath)
        return vector
    }
}
