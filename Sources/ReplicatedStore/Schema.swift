import GRDB

/// A table whose rows replicate between nodes. Its key is a TEXT made where the row is written
/// (derived from a real-world identity where one exists), never an AUTOINCREMENT.
///
/// On disk the table holds every row it has ever seen, live or deleted, plus two columns of its
/// own: `crdt_alive` (0 deleted, 1 re-inserted after a delete, 2 created) and `crdt_clock` (the
/// version of every column, see `PackedRowClock`). Read live rows with `WHERE crdt_alive > 0`, or through
/// the view `<name>_live` that every replicated table gets.
public struct ReplicatedTable: Sendable, Hashable {
    public enum ColumnType: String, Sendable, Hashable {
        case text = "TEXT", integer = "INTEGER", real = "REAL", blob = "BLOB"
    }

    public struct Column: Sendable, Hashable {
        public let name: String
        public let type: ColumnType
        /// Personal data: sealed with AES-GCM once, at the origin, before it is stored or sent.
        public let encrypted: Bool

        public init(_ name: String, _ type: ColumnType, encrypted: Bool = false) {
            self.name = name
            self.type = encrypted ? .blob : type
            self.encrypted = encrypted
        }
    }

    public let name: String
    public let keyColumn: String
    public private(set) var columns: [Column]
    /// Secondary indexes, as lists of column names.
    public let indexes: [[String]]

    public init(_ name: String, key: String = "id", columns: [Column], indexes: [[String]] = []) {
        self.name = name
        self.keyColumn = key
        self.columns = columns
        self.indexes = indexes
    }

    mutating func append(_ column: Column) { columns.append(column) }

    public func columnIndex(_ name: String) -> Int? { columns.firstIndex { $0.name == name } }
}

/// The replicated schema, as an append-only list of versions. Each version only adds (tables,
/// columns, local indexes), so a node one version behind can still exchange changes with one ahead:
/// changes for tables or columns it does not know yet are parked until it upgrades.
public struct ReplicaSchema: Sendable {
    public enum Step: Sendable {
        case createTable(ReplicatedTable)
        case addColumn(table: String, ReplicatedTable.Column)
    }

    public let versions: [[Step]]

    public init(versions: [[Step]]) { self.versions = versions }

    public var version: Int { versions.count }

    /// The pseudo-column that carries a row's existence in change streams.
    public static let aliveColumn = "crdt_alive"
    public static let clockColumn = "crdt_clock"

    /// Tables as they stand after the first `upTo` versions (all of them by default).
    public func tables(upTo: Int? = nil) -> [String: ReplicatedTable] {
        var tables: [String: ReplicatedTable] = [:]
        for steps in versions.prefix(upTo ?? versions.count) {
            for step in steps {
                switch step {
                case .createTable(let table): tables[table.name] = table
                case .addColumn(let table, let column): tables[table]?.append(column)
                }
            }
        }
        return tables
    }

    func register(in migrator: inout DatabaseMigrator) {
        for (number, steps) in versions.enumerated() {
            migrator.registerMigration("replicated-schema-v\(number + 1)") { db in
                for step in steps {
                    switch step {
                    case .createTable(let table): try Self.create(table, in: db)
                    case .addColumn(let table, let column):
                        try db.alter(table: table) { $0.add(column: column.name, Database.ColumnType(rawValue: column.type.rawValue)) }
                        try Self.recreateLiveView(table, db)
                    }
                }
                try db.execute(sql: "UPDATE crdt_meta SET value = ? WHERE key = 'schema_version'", arguments: [number + 1])
            }
        }
    }

    static func create(_ table: ReplicatedTable, in db: Database, system: Bool = false) throws {
        let names = [table.name] + table.columns.map(\.name)
        guard system || !names.contains(where: { $0.hasPrefix("crdt_") }),
              !table.columns.contains(where: { $0.name == table.keyColumn }),
              Set(table.columns.map(\.name)).count == table.columns.count else {
            throw StoreError(.unknownColumn, zh: "表 \(table.name) 的定义不合法：名称不能以 crdt_ 开头，列名不能重复或与主键同名。",
                             en: "table \(table.name) is not valid: names may not start with crdt_, and columns may not repeat or reuse the key's name.")
        }
        try db.create(table: table.name, options: [.withoutRowID]) { t in
            t.column(table.keyColumn, .text).notNull().primaryKey()
            for column in table.columns {
                t.column(column.name, Database.ColumnType(rawValue: column.type.rawValue))
            }
            t.column(aliveColumn, .integer).notNull().defaults(to: 0)
            t.column(clockColumn, .blob).notNull()
        }
        for (i, columns) in table.indexes.enumerated() {
            try db.create(index: "\(table.name)_idx\(i)", on: table.name, columns: columns)
        }
        try db.execute(sql: "INSERT INTO crdt_table(name) VALUES (?)", arguments: [table.name])
        try recreateLiveView(table.name, db)
    }

    static func recreateLiveView(_ table: String, _ db: Database) throws {
        let columns = try db.columns(in: table).map(\.name).filter { $0 != aliveColumn && $0 != clockColumn }
        let list = columns.map { $0.quotedDatabaseIdentifier }.joined(separator: ", ")
        try db.execute(sql: "DROP VIEW IF EXISTS \((table + "_live").quotedDatabaseIdentifier)")
        try db.execute(sql: "CREATE VIEW \((table + "_live").quotedDatabaseIdentifier) AS SELECT \(list) FROM \(table.quotedDatabaseIdentifier) WHERE \(aliveColumn) > 0")
    }
}
