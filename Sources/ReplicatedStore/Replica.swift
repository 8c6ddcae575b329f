import Foundation
import GRDB
import Logging
import ReplicatedCore
import Synchronization

/// One node's SQLite replica: owns the single connection pool, runs the append-only migrations,
/// records every local write as column-level changes, and merges changes from peers.
///
/// Durability: the database runs in WAL mode. With `Durability.full` (the default) SQLite runs
/// `synchronous=FULL`, which fsyncs the WAL at every commit, so a write is durable when `write`
/// returns; with `.normal` commits are fsynced only at checkpoints (faster, but a power loss may
/// roll back recent commits, so an unclean restart then starts a new origin incarnation).
public final class Replica: Sendable {
    public struct Options: Sendable {
        public enum Durability: String, Sendable { case full, normal }

        public var durability: Durability = .full
        public var cipher: FieldCipher?
        /// A remote change stamped further ahead of the local wall clock than this is parked.
        public var maxClockOffsetMillis: Int64 = 500
        public var wallClock: @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
        /// Start a new incarnation whatever the node state says (a restore from backup does).
        public var forceNewIncarnation = false
        /// The highest incarnation of this node that peers know of (used when rebuilding a node).
        public var knownIncarnation: UInt32 = 0
        public var logger = Logger(label: "clinicmesh.store")

        public init() {}
    }

    public let node: String
    public let schema: ReplicaSchema
    public let path: String?
    let writer: any DatabaseWriter
    let options: Options
    let tables: [String: TableInfo]
    let tablesByID: [Int64: TableInfo]
    let state: Mutex<State>
    /// Held for the replica's life: two writers on one file would reuse sequence numbers.
    let lock: FileLock?
    /// Moves for every row a commit writes: in-memory copies of rows check it (`RowStamps`).
    public let rowStamps = RowStamps()

    /// What the replica knows in memory; always equal to what its database says after a commit.
    struct State: Sendable {
        var hlc: HybridLogicalClock
        var origin: OriginID
        var originRef: UInt32
        var lastSeq: UInt64
        var origins: [UInt32: OriginID]
        var originRefs: [OriginID: UInt32]
        var writesRefusedBecause: StoreError?
    }

    public var origin: OriginID { state.withLock { $0.origin } }
    public var writesRefusedBecause: StoreError? { state.withLock { $0.writesRefusedBecause } }

    /// Opens (creating if needed) the replica at `path`, or an in-memory one when `path` is nil.
    public static func open(path: String?, node: String, schema: ReplicaSchema, options: Options = Options()) throws -> Replica {
        guard !node.isEmpty, node.utf8.count <= 64 else {
            throw StoreError(.invalidKey, zh: "节点 ID 不能为空且不超过 64 字节。", en: "a node id must be non-empty and at most 64 bytes.")
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        let synchronous = options.durability == .full ? "FULL" : "NORMAL"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let lock = try path.map { try FileLock(path: $0 + ".lock") }
        let writer: any DatabaseWriter = if let path {
            try DatabasePool(path: path, configuration: config)
        } else {
            try DatabaseQueue(configuration: config)
        }
        // GRDB's pool switches its writer to WAL with synchronous=NORMAL after `prepareDatabase`
        // runs, so the level is set again here, on the one connection that writes.
        try writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("crdt-core-v1", migrate: Self.createCoreTables)
        schema.register(in: &migrator)
        try migrator.migrate(writer)

        let allTables = schema.tables().merging([ReviewItems.table.name: ReviewItems.table,
                                                 ReviewItems.resolutions.name: ReviewItems.resolutions]) { a, _ in a }
        let ids = try writer.read { db in
            try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT name, id FROM crdt_table").map { (row: Row) -> (String, Int64) in (row[0], row[1]) })
        }
        var infos: [String: TableInfo] = [:]
        for (name, table) in allTables {
            guard let id = ids[name] else { throw StoreError.unknownTable(name) }
            infos[name] = TableInfo(id: id, table: table)
        }
        let state = try writer.write { db in
            try Self.startIncarnation(db: db, path: path, node: node, options: options)
        }
        return Replica(node: node, schema: schema, path: path, writer: writer, options: options,
                       tables: infos, state: state, lock: lock)
    }

    private init(node: String, schema: ReplicaSchema, path: String?, writer: any DatabaseWriter, options: Options,
                 tables: [String: TableInfo], state: State, lock: FileLock?) {
        self.lock = lock
        self.node = node
        self.schema = schema
        self.path = path
        self.writer = writer
        self.options = options
        self.tables = tables
        self.tablesByID = Dictionary(uniqueKeysWithValues: tables.values.map { ($0.id, $0) })
        self.state = Mutex(state)
    }

    /// Closes the database, then records the clean shutdown (in that order, so a crash in between
    /// counts as unclean).
    public func close() throws {
        let s = state.withLock { $0 }
        let generation = try writer.read { db in try Self.meta(db, "generation").map { UInt64(clamping: $0) } ?? 0 }
        try writer.close()
        if let path {
            try NodeState(node: node, incarnation: s.origin.incarnation, generation: generation, cleanShutdown: true,
                          durability: options.durability.rawValue)
                .save(databasePath: path)
        }
        lock?.release()
    }

    /// Runs read-only SQL against a consistent snapshot (live rows: `WHERE crdt_alive > 0`).
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.read(body)
    }

    /// Stops local writes and says why (clock too far off, disk full). Merges from peers go on.
    public func refuseWrites(_ reason: StoreError) { state.withLock { $0.writesRefusedBecause = reason } }
    public func allowWrites() { state.withLock { $0.writesRefusedBecause = nil } }

    /// Runs `body` as one local transaction; every insert/update/delete in it becomes changes with
    /// this node's origin. Returns once the transaction is committed (fsynced with `.full`).
    @discardableResult
    public func write<T>(_ body: (LocalWriter) throws -> T) throws -> T {
        if let reason = writesRefusedBecause {
            throw StoreError(.writesRefused, zh: "本节点暂停写入：\(reason.zh)", en: "this node is refusing writes: \(reason.en)")
        }
        return try transaction { merger in
            try body(LocalWriter(merger: merger))
        }
    }

    /// Runs a write transaction over a copy of the state and publishes the copy only once SQLite
    /// has committed it (GRDB runs the commit hook on the writer queue, before the next write).
    func transaction<T>(_ body: (Merger) throws -> T) throws -> T {
        try writer.write { db in
            let start = state.withLock { $0 }
            let merger = Merger(db: db, replica: self, state: start, wallMillis: options.wallClock())
            let result = try body(merger)
            try merger.persistClock()
            let committed = merger.state
            let written = merger.written
            db.afterNextTransaction(onCommit: { [self] _ in
                rowStamps.bump(written)
                state.withLock { current in
                    // A refusal this transaction made wins; otherwise whatever `refuseWrites` or
                    // `allowWrites` did while it ran stays (a lifted refusal must stay lifted).
                    var published = committed
                    if committed.writesRefusedBecause == start.writesRefusedBecause {
                        published.writesRefusedBecause = current.writesRefusedBecause
                    }
                    current = published
                }
            })
            return result
        }
    }

    // MARK: - Opening

    private static func createCoreTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE crdt_meta(key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
            INSERT INTO crdt_meta(key, value) VALUES ('schema_version', 0);
            CREATE TABLE crdt_table(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE crdt_origin(
                id INTEGER PRIMARY KEY,
                node TEXT NOT NULL,
                incarnation INTEGER NOT NULL,
                covered INTEGER NOT NULL DEFAULT 0,
                UNIQUE(node, incarnation));
            CREATE TABLE crdt_log(
                origin INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                tbl INTEGER NOT NULL,
                key TEXT NOT NULL,
                PRIMARY KEY(origin, seq)) WITHOUT ROWID;
            CREATE TABLE crdt_parked(
                origin INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                col TEXT NOT NULL,
                tbl TEXT NOT NULL,
                key TEXT NOT NULL,
                value,
                hlc INTEGER NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY(origin, seq, col)) WITHOUT ROWID;
            """)
        try ReplicaSchema.create(ReviewItems.table, in: db, system: true)
        try ReplicaSchema.create(ReviewItems.resolutions, in: db, system: true)
    }

    static func meta(_ db: Database, _ key: String) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT value FROM crdt_meta WHERE key = ?", arguments: [key])
    }

    static func setMeta(_ db: Database, _ key: String, _ value: some DatabaseValueConvertible) throws {
        try db.execute(sql: "INSERT INTO crdt_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       arguments: [key, value])
    }

    /// Every known origin with its local id and how far this replica covers it.
    static func originRows(_ db: Database) throws -> [(ref: UInt32, origin: OriginID, covered: UInt64)] {
        try Row.fetchAll(db, sql: "SELECT id, node, incarnation, covered FROM crdt_origin").map { row in
            (UInt32(clamping: row[0] as Int64), OriginID(node: row[1], incarnation: UInt32(clamping: row[2] as Int64)),
             UInt64(bitPattern: row[3]))
        }
    }

    static func loadOrigins(_ db: Database) throws -> [UInt32: OriginID] {
        Dictionary(uniqueKeysWithValues: try originRows(db).map { ($0.ref, $0.origin) })
    }

    /// Decides this run's incarnation (see `NodeState`) and records it in the database and beside it.
    private static func startIncarnation(db: Database, path: String?, node: String, options: Options) throws -> State {
        let storedNode = try String.fetchOne(db, sql: "SELECT value FROM crdt_meta WHERE key = 'node'")
        if let storedNode, storedNode != node {
            throw StoreError(.wrongNode, zh: "此数据库属于节点 \(storedNode)，不能作为节点 \(node) 打开；请检查配置中的数据库路径。",
                             en: "this database belongs to node \(storedNode) and cannot be opened as node \(node); check the database path in the config.")
        }
        let side = try path.flatMap { try NodeState.load(databasePath: $0) }
        if let side, side.node != node {
            throw StoreError(.wrongNode, zh: "节点状态文件属于节点 \(side.node)，不是 \(node)。", en: "the node state file belongs to node \(side.node), not \(node).")
        }
        let storedIncarnation = try meta(db, "incarnation").map { UInt32(clamping: $0) }
        let storedGeneration = UInt64(clamping: try meta(db, "generation") ?? 0)
        var lastSeq = UInt64(clamping: try meta(db, "last_seq") ?? 0)
        // Peers may have shown us a newer life of this node than the database remembers.
        let known = max(options.knownIncarnation, UInt32(clamping: try meta(db, "known_incarnation") ?? 0))
        // Seconds since 2025 as a floor, so a node rebuilt with neither its database nor its state
        // file still starts above every incarnation it had before (unless its clock went back).
        let clockFloor = UInt32(clamping: options.wallClock() / 1000 - 1_735_689_600)
        func next() throws -> UInt32 {
            let highest = max(storedIncarnation ?? 0, side?.incarnation ?? 0, known, clockFloor)
            guard highest < UInt32.max else {
                throw StoreError(.corruptMetadata, zh: "incarnation 编号已用尽；请用新的节点 ID 重建本节点。",
                                 en: "incarnation numbers are exhausted; rebuild this node under a new node id.")
            }
            return highest + 1
        }
        let incarnation: UInt32
        if let storedIncarnation {
            var reasons: [String] = []
            let unsyncedLastRun = side?.durability == Options.Durability.normal.rawValue || options.durability == .normal
            if options.forceNewIncarnation { reasons.append("requested") }
            if let side, side.generation != storedGeneration { reasons.append("database generation \(storedGeneration) differs from node state \(side.generation) (restored or copied database)") }
            if let side, !side.cleanShutdown, unsyncedLastRun { reasons.append("unclean shutdown without per-commit fsync") }
            if side == nil, path != nil { reasons.append("node state file missing") }
            if known >= storedIncarnation { reasons.append("peers know incarnation \(known)") }
            if reasons.isEmpty {
                incarnation = storedIncarnation
            } else {
                incarnation = try next()
                lastSeq = 0
                options.logger.notice("starting a new origin incarnation", metadata: [
                    "store.node": "\(node)", "store.incarnation": "\(incarnation)", "store.reason": "\(reasons.joined(separator: "; "))"])
            }
        } else {
            incarnation = try next()
            lastSeq = 0
        }
        let generation = max(storedGeneration, side?.generation ?? 0) + 1
        try setMeta(db, "node", node)
        try setMeta(db, "incarnation", Int64(incarnation))
        try setMeta(db, "last_seq", Int64(lastSeq))
        try setMeta(db, "generation", Int64(generation))
        let origin = OriginID(node: node, incarnation: incarnation)
        try db.execute(sql: "INSERT OR IGNORE INTO crdt_origin(node, incarnation, covered) VALUES (?, ?, 0)",
                       arguments: [node, Int64(incarnation)])
        if let path {
            try NodeState(node: node, incarnation: incarnation, generation: generation, cleanShutdown: false,
                          durability: options.durability.rawValue)
                .save(databasePath: path)
        }
        let origins = try loadOrigins(db)
        let originRefs = Dictionary(uniqueKeysWithValues: origins.map { ($0.value, $0.key) })
        let hlc = UInt64(bitPattern: try meta(db, "hlc") ?? 0)
        return State(hlc: HybridLogicalClock(last: HLCTimestamp(rawValue: hlc), maxOffsetMillis: options.maxClockOffsetMillis),
                     origin: origin, originRef: originRefs[origin]!, lastSeq: lastSeq,
                     origins: origins, originRefs: originRefs, writesRefusedBecause: nil)
    }
}

/// A replicated table with the SQL the merge uses, built once.
struct TableInfo: Sendable {
    let id: Int64
    let table: ReplicatedTable
    let selectSQL: String
    /// The same columns and the key, for a WHERE clause of the caller's.
    let selectManySQL: String
    let insertSQL: String
    let updateSQL: String
    /// Column name → slot, for the merge's per-change lookup.
    let slots: [String: Int]

    init(id: Int64, table: ReplicatedTable) {
        self.id = id
        self.table = table
        slots = Dictionary(uniqueKeysWithValues: table.columns.enumerated().map { ($0.element.name, $0.offset) })
        let name = table.name.quotedDatabaseIdentifier
        let key = table.keyColumn.quotedDatabaseIdentifier
        let columns = table.columns.map { $0.name.quotedDatabaseIdentifier }
        let all = columns + [ReplicaSchema.aliveColumn, ReplicaSchema.clockColumn]
        selectSQL = "SELECT \(all.joined(separator: ", ")) FROM \(name) WHERE \(key) = ?"
        selectManySQL = "SELECT \(all.joined(separator: ", ")), \(key) FROM \(name)"
        let placeholders = Array(repeating: "?", count: all.count + 1).joined(separator: ", ")
        // DO NOTHING lets the merge try an insert first and learn from the change count that the
        // row was there after all.
        insertSQL = "INSERT INTO \(name)(\(all.joined(separator: ", ")), \(key)) VALUES (\(placeholders)) ON CONFLICT(\(key)) DO NOTHING"
        updateSQL = "UPDATE \(name) SET \(all.map { "\($0) = ?" }.joined(separator: ", ")) WHERE \(key) = ?"
    }
}

extension Replica {
    /// Copies the WAL into the main database file (before backups and file copies).
    public func checkpoint() throws {
        try writer.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    /// The SQLite settings in force on the connection that writes: (journal mode, synchronous level).
    public func durabilitySettings() throws -> (journalMode: String, synchronous: Int) {
        try writer.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
    }
}
