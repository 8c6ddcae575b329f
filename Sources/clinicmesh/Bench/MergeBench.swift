import ArgumentParser
import Drills
import Foundation
import GRDB
import ReplicatedCore
import ReplicatedStore

/// `clinicmesh bench merge`: the cost of merging remote changes against writing the same rows
/// into a plain table with the same columns, index, PRAGMAs and transaction size.
struct MergeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "测量合并远端变更的速度 / Measure how fast a replica merges remote changes")

    @Option(help: "Remote changes to apply (a change is one column value).")
    var changes = 100_000

    @Option(help: "Changes per transaction (batches are cut between row writes).")
    var batch = 1_000

    @Option(help: "Single-row commits timed for each synchronous level.")
    var commits = 300

    @Flag(help: "Print one JSON object.")
    var json = false

    static let columns = ["patient", "practitioner", "department", "slot", "status", "fee", "note", "created"]
    static let table = ReplicatedTable("visit", columns: [
        .init("patient", .text), .init("practitioner", .text), .init("department", .text), .init("slot", .integer),
        .init("status", .text), .init("fee", .integer), .init("note", .text), .init("created", .integer),
    ], indexes: [["patient"]])
    static let schema = ReplicaSchema(versions: [[.createTable(table)]])

    struct Report: Encodable {
        let bench = "merge"
        let environment: BenchEnvironment
        let changes: Int
        let rows: Int
        let batchChanges: Int
        let synchronous = "FULL"
        let applyS: Double
        let applyPerS: Double
        let plainInsertPerS: Double
        let overheadRatio: Double
        let conflictApplyPerS: Double
        let conflictShare = 0.3
        let fullCommitsPerS: Double
        let normalCommitsPerS: Double
        let goal = "apply_per_s >= 50000 and overhead_ratio <= 2.0 at changes=100000"
    }

    mutating func validate() throws {
        guard changes >= 9, batch >= 9, commits >= 1 else {
            throw ValidationError("--changes 与 --batch 至少为 9，--commits 至少为 1 / --changes and --batch must be at least 9, --commits at least 1")
        }
    }

    func run() throws {
        let folder = NSTemporaryDirectory() + "clinicmesh-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let perRow = Self.columns.count + 1  // every column plus the row's existence
        let rows = changes / perRow
        let rowsPerBatch = max(1, batch / perRow)
        let source = OriginID(node: "bench-source", incarnation: 1)
        let now = Int64(Date().timeIntervalSince1970 * 1000)

        // The workload, built before any timing: `rows` row creations from one remote origin.
        var batches: [ChangeBatch] = []
        var plainRows: [[DatabaseValue]] = []
        var seq: UInt64 = 0
        for start in stride(from: 0, to: rows, by: rowsPerBatch) {
            var batchChanges: [Change] = []
            for row in start..<min(rows, start + rowsPerBatch) {
                seq += 1
                let version = ChangeVersion(hlc: HLCTimestamp(wallMillis: now - 60_000, logical: seq % 60_000), origin: source, seq: seq)
                let values = Self.values(row: row, variant: 0)
                let key = Self.key(row)
                batchChanges.append(Change(table: "visit", key: key, column: ReplicaSchema.aliveColumn, value: 2, version: version))
                for (column, value) in zip(Self.columns, values) {
                    batchChanges.append(Change(table: "visit", key: key, column: column, value: value, version: version))
                }
                plainRows.append([key.databaseValue] + values.map(\.databaseValue))
            }
            batches.append(ChangeBatch(changes: batchChanges, coverage: VersionVector([source: seq])))
        }
        let applied = rows * perRow

        // 1. Merge into an empty replica.
        let replica = try Replica.open(path: folder + "/apply.sqlite", node: "bench-target", schema: Self.schema)
        let applyWatch = Stopwatch()
        for b in batches { try replica.apply(b) }
        let applySeconds = applyWatch.seconds
        try replica.close()

        // 2. The same rows into a plain table: same columns, index, PRAGMAs, transaction size.
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let plain = try DatabasePool(path: folder + "/plain.sqlite", configuration: config)
        try plain.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try plain.write { db in
            try db.create(table: "visit", options: [.withoutRowID]) { t in
                t.column("id", .text).notNull().primaryKey()
                for column in Self.table.columns { t.column(column.name, Database.ColumnType(rawValue: column.type.rawValue)) }
            }
            try db.create(index: "visit_idx0", on: "visit", columns: ["patient"])
        }
        let insertSQL = "INSERT INTO visit(id, \(Self.columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: perRow).joined(separator: ", ")))"
        let plainWatch = Stopwatch()
        for start in stride(from: 0, to: plainRows.count, by: rowsPerBatch) {
            try plain.write { db in
                let statement = try db.cachedStatement(sql: insertSQL)
                for row in plainRows[start..<min(plainRows.count, start + rowsPerBatch)] {
                    try statement.execute(arguments: StatementArguments(row))
                }
            }
        }
        let plainSeconds = plainWatch.seconds
        try plain.close()

        // 3. 30% of the rows already exist locally with other values; half of those local writes
        //    are newer than the remote ones, so conflicts are decided both ways.
        let localClock = LocalClockBox(now - 120_000)
        var options = Replica.Options()
        options.wallClock = { localClock.millis }
        let conflicted = try Replica.open(path: folder + "/conflict.sqlite", node: "bench-target", schema: Self.schema, options: options)
        let existing = Array(stride(from: 0, to: rows, by: 10).flatMap { [$0, $0 + 3, $0 + 6] }.filter { $0 < rows })
        for chunk in stride(from: 0, to: existing.count, by: 500) {
            try conflicted.write { w in
                for row in existing[chunk..<min(existing.count, chunk + 500)] {
                    localClock.millis = row % 2 == 0 ? now - 120_000 : now
                    var values: [String: ColumnValue] = [:]
                    for (column, value) in zip(Self.columns, Self.values(row: row, variant: 1)) { values[column] = value }
                    try w.insert("visit", key: Self.key(row), values: values)
                }
            }
        }
        localClock.millis = now
        let conflictWatch = Stopwatch()
        for b in batches { try conflicted.apply(b) }
        let conflictSeconds = conflictWatch.seconds
        try conflicted.close()

        // 4. What per-commit fsync costs: single-row local transactions at FULL and NORMAL.
        func commitsPerSecond(_ durability: Replica.Options.Durability) throws -> Double {
            var options = Replica.Options()
            options.durability = durability
            let r = try Replica.open(path: folder + "/commit-\(durability).sqlite", node: "bench-\(durability)", schema: Self.schema, options: options)
            let watch = Stopwatch()
            for i in 0..<commits {
                try r.write { try $0.insert("visit", key: Self.key(i), values: ["status": "booked", "slot": .integer(Int64(i))]) }
            }
            let seconds = watch.seconds
            try r.close()
            return Double(commits) / seconds
        }
        let full = try commitsPerSecond(.full)
        let normal = try commitsPerSecond(.normal)

        let report = Report(
            environment: .current(), changes: applied, rows: rows, batchChanges: rowsPerBatch * perRow,
            applyS: rounded(applySeconds, 3), applyPerS: rounded(Double(applied) / applySeconds),
            plainInsertPerS: rounded(Double(applied) / plainSeconds), overheadRatio: rounded(applySeconds / plainSeconds, 2),
            conflictApplyPerS: rounded(Double(applied) / conflictSeconds),
            fullCommitsPerS: rounded(full), normalCommitsPerS: rounded(normal))
        if json {
            try printJSON(report)
        } else {
            print("""
                合并基准 / merge benchmark  (\(report.environment.cpu), \(report.environment.cores) cores, \(report.environment.build))
                  变更 changes              \(applied) in \(rows) rows, \(report.batchChanges) per transaction
                  合并 apply                \(report.applyPerS) changes/s (\(report.applyS) s)
                  普通插入 plain insert      \(report.plainInsertPerS) changes/s
                  开销 overhead ratio        \(report.overheadRatio)x
                  冲突合并 30% conflicts     \(report.conflictApplyPerS) changes/s
                  单行提交 commits FULL      \(report.fullCommitsPerS)/s   NORMAL \(report.normalCommitsPerS)/s
                """)
        }
    }

    static func key(_ row: Int) -> String { "visit:\(String(row, radix: 36))" }

    static func values(row: Int, variant: Int) -> [ColumnValue] {
        [.text("pat:\(String((row &* 2_654_435_761) % 1_000_003, radix: 16))"), .text("doc-\(row % 97)"),
         .text(["neike", "waike", "erke"][row % 3]), .integer(Int64(row % 40 + 1)),
         .text(variant == 0 ? "booked" : "pending"), .integer(Int64([5000, 3000, 2000, 1000][row % 4])),
         .text(variant == 0 ? "复诊，血压控制良好" : "初诊"), .integer(Int64(1_790_000_000 + row))]
    }
}

/// The bench's adjustable wall clock (the replica reads it from its own thread).
final class LocalClockBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ value: Int64) { self.value = value }
    var millis: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "性能基准（输出含命令与机器信息）/ Benchmarks (output names the command and the machine)",
        subcommands: [MergeBench.self, ReplicationBench.self, BookingBench.self, HistoryBench.self, PagesBench.self, FloorBench.self, RecordsBench.self, PrescribingBench.self])
}
