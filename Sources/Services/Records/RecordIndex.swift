import Domain
import Foundation
import GRDB
import Logging
import ReplicatedCore
import ReplicatedStore
import Synchronization

/// One note a department search found.
package struct NoteHit: Sendable {
    package var encounter: String
    package var version: String
    package var patient: String
    package var department: String
    package var practitioner: String
    package var date: String
}

/// What a department search asks for. Every filter is optional but the department.
package struct NoteQuery: Sendable {
    package var department: String
    package var words: String = ""
    package var diagnosis: String = ""
    package var practitioner: String = ""
    package var from: String = ""
    package var to: String = ""
    package var limit: Int = 50

    package init(department: String, words: String = "", diagnosis: String = "", practitioner: String = "", from: String = "", to: String = "", limit: Int = 50) {
        self.department = department; self.words = words; self.diagnosis = diagnosis; self.practitioner = practitioner
        self.from = from; self.to = to; self.limit = limit
    }
}

/// The notes as this node searches them (a read model in `records.sqlite`, never replicated):
/// each visit's current note, tokenized by `SearchText`, with its department, doctor and
/// diagnoses as scope tokens. Fed from the replica's change log, so a version written here or
/// merged from a peer is searchable within a round; rebuilt from the replica when asked.
package final class RecordIndex: Sendable {
    private let db: DatabasePool
    private let store: any RecordStore
    /// The replica's changes of a table after some marks (`Replica.changedKeys`).
    private let changes: @Sendable (Replica.ChangeMarks) throws -> (keys: Set<String>, marks: Replica.ChangeMarks)
    private let logger: Logger
    private let marks = Mutex<Replica.ChangeMarks?>(nil)

    package init(path: String, store: any RecordStore,
                 changes: @escaping @Sendable (Replica.ChangeMarks) throws -> (keys: Set<String>, marks: Replica.ChangeMarks), logger: Logger) throws {
        var config = Configuration()
        config.journalMode = .wal
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        db = try DatabasePool(path: path, configuration: config)
        self.store = store; self.changes = changes; self.logger = logger
        var migrator = DatabaseMigrator()
        migrator.eraseDatabaseOnSchemaChange = true
        migrator.registerMigration("v1 note_doc, note_fts, change_mark (read model)") { db in
            try db.execute(sql: """
                CREATE TABLE note_doc (
                    docid INTEGER PRIMARY KEY, encounter TEXT NOT NULL UNIQUE, version TEXT NOT NULL, hlc INTEGER NOT NULL,
                    patient TEXT NOT NULL, department TEXT NOT NULL, practitioner TEXT NOT NULL, date TEXT NOT NULL, void INTEGER NOT NULL);
                CREATE INDEX note_doc_patient ON note_doc(patient);
                CREATE VIRTUAL TABLE note_fts USING fts5(body, scope, tokenize = 'unicode61');
                CREATE TABLE change_mark (origin INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
                """)
        }
        try migrator.migrate(db)
    }

    /// Takes in the versions changed since the last round, until cancelled.
    package func run(every: Duration = .milliseconds(500)) async {
        while !Task.isCancelled {
            do { _ = try await offload { try self.catchUp() } } catch {
                logger.warning("病历检索索引更新失败，稍后重试 / note search index update failed, retrying", metadata: ["node.error": "\(error)"])
            }
            try? await Task.sleep(for: every)
        }
    }

    /// Indexes what changed since the last round; returns how many versions it read.
    @discardableResult
    package func catchUp() throws -> Int {
        var read = 0
        while true {
            let from = try marks.withLock { known in
                if let known { return known }
                let stored = try db.read { db in
                    Dictionary(try Row.fetchAll(db, sql: "SELECT origin, seq FROM change_mark").map { ($0["origin"] as Int64, $0["seq"] as Int64) },
                               uniquingKeysWith: { a, _ in a })
                }
                known = stored
                return stored
            }
            let (keys, next) = try changes(from)
            guard next != from else { return read }
            let rows = try store.liveRows("note_version", keys: keys)
            try db.write { db in
                for (key, row) in rows { try Self.take(key, row, db) }
                for (origin, seq) in next where from[origin] != seq {
                    try db.execute(sql: "INSERT INTO change_mark(origin, seq) VALUES (?, ?) ON CONFLICT(origin) DO UPDATE SET seq = excluded.seq",
                                   arguments: [origin, seq])
                }
            }
            marks.withLock { $0 = next }
            read += rows.count
        }
    }

    /// Forgets everything and indexes the replica's notes again from its change log's start.
    package func rebuild() throws {
        try db.write { db in
            try db.execute(sql: "DELETE FROM note_doc; DELETE FROM note_fts; DELETE FROM change_mark")
        }
        marks.withLock { $0 = [:] }
        try catchUp()
    }

    /// A version replaces the visit's indexed note if it is newer.
    static func take(_ key: String, _ row: [String: ColumnValue], _ db: Database) throws {
        guard let version = RecordDesk.version(key, row) else { return }
        let existing = try Row.fetchOne(db, sql: "SELECT docid, hlc, version FROM note_doc WHERE encounter = ?", arguments: [version.encounter])
        // Newest by HLC, then key: the order every node shows versions in.
        if let existing, (version.hlc, key) <= (existing["hlc"] as Int64, existing["version"] as String) { return }
        let void = version.kind == .enteredInError
        let department = row["department"]?.textValue ?? "", practitioner = row["practitioner"]?.textValue ?? ""
        let values: [DatabaseValueConvertible] = [key, version.hlc, row["patient"]?.textValue ?? "", department, practitioner,
                                                  row["date"]?.textValue ?? "", void ? 1 : 0]
        let docid: Int64
        if let existing {
            docid = existing["docid"]
            try db.execute(sql: "UPDATE note_doc SET version = ?, hlc = ?, patient = ?, department = ?, practitioner = ?, date = ?, void = ? WHERE docid = ?",
                           arguments: StatementArguments(values + [docid]))
            try db.execute(sql: "DELETE FROM note_fts WHERE rowid = ?", arguments: [docid])
        } else {
            try db.execute(sql: "INSERT INTO note_doc(version, hlc, patient, department, practitioner, date, void, encounter) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: StatementArguments(values + [version.encounter]))
            docid = db.lastInsertedRowID
        }
        guard !void else { return }
        let scope = [SearchText.scopeToken("d", department), SearchText.scopeToken("u", practitioner)]
            + version.note.diagnoses.map { SearchText.scopeToken("x", $0.code.uppercased()) }
        try db.execute(sql: "INSERT INTO note_fts(rowid, body, scope) VALUES (?, ?, ?)",
                       arguments: [docid, SearchText.indexTokens(version.note.searchableText), scope.joined(separator: " ")])
    }

    /// The department's visits whose current note has every word (and the diagnosis, doctor and
    /// dates asked), newest indexed first.
    package func search(_ q: NoteQuery) throws -> [NoteHit] {
        var scope = [SearchText.scopeToken("d", q.department)]
        if !q.practitioner.isEmpty { scope.append(SearchText.scopeToken("u", q.practitioner)) }
        if !q.diagnosis.isEmpty { scope.append(SearchText.scopeToken("x", q.diagnosis.uppercased())) }
        var match = "scope : (" + scope.map { "\"\($0)\"" }.joined(separator: " AND ") + ")"
        if let words = SearchText.matchQuery(q.words) { match += " AND body : (\(words))" }
        var sql = "SELECT d.encounter, d.version, d.patient, d.department, d.practitioner, d.date FROM note_fts JOIN note_doc d ON d.docid = note_fts.rowid WHERE note_fts MATCH ?"
        var arguments: [DatabaseValueConvertible] = [match]
        if !q.from.isEmpty { sql += " AND d.date >= ?"; arguments.append(q.from) }
        if !q.to.isEmpty { sql += " AND d.date <= ?"; arguments.append(q.to) }
        sql += " ORDER BY note_fts.rowid DESC LIMIT ?"
        arguments.append(max(1, min(q.limit, 200)))
        return try db.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { r in
                NoteHit(encounter: r["encounter"], version: r["version"], patient: r["patient"], department: r["department"],
                        practitioner: r["practitioner"], date: r["date"])
            }
        }
    }

    /// How many visits' notes are indexed (the bench's and the tests' check).
    package func count() throws -> Int {
        try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM note_doc WHERE void = 0") ?? 0 }
    }
}
