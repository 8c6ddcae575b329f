import Foundation
import GRDB
import ReplicatedCore
import TestSupport
import Testing
@testable import ReplicatedStore

/// Random scripts of local writes on five replicas, exchanged in random orders, cut into partial
/// batches, shuffled, duplicated and replayed late. Every replica must end up with exactly the rows
/// an independent oracle gets by replaying all writes in (HLC, node id) order, and equal digests.
///
/// Replay one seed: `CLINICMESH_SEED=<seed> CLINICMESH_PROPERTY_SCRIPTS=1 swift test --filter ConvergenceProperty`.
@Suite struct ConvergencePropertyTests {
    static let environment = ProcessInfo.processInfo.environment
    static let scripts = Int(environment["CLINICMESH_PROPERTY_SCRIPTS"] ?? "") ?? 1_000
    static let firstSeed = UInt64(environment["CLINICMESH_SEED"] ?? "") ?? 20_261_126

    /// The scripts run in four interleaved shares, each on its own thread.
    static let shares = 4

    @Test(arguments: 0..<shares)
    func randomScriptsConvergeToTheOracle(share: Int) async throws {
        let failure = try await onOwnThread { () -> String? in
            var totals = ScriptStats()
            for i in stride(from: share, to: Self.scripts, by: Self.shares) {
                let seed = Self.firstSeed &+ UInt64(i)
                var script = Script(seed: seed)
                let failure: String?
                do { failure = try script.run() } catch { failure = "threw \(error)" }
                if let failure {
                    return "seed \(seed) failed: \(failure). Replay: CLINICMESH_SEED=\(seed) CLINICMESH_PROPERTY_SCRIPTS=1 swift test --filter ConvergenceProperty"
                }
                totals.add(script.stats)
            }
            let count = (Self.scripts - share + Self.shares - 1) / Self.shares
            print("convergence share \(share): \(count) scripts from seed \(Self.firstSeed &+ UInt64(share)) step \(Self.shares): \(totals)")
            // The scripts must really exercise what they claim to (a single replayed seed may not).
            if count >= 100 {
                guard totals.deletes > 0, totals.reinserts > 0, totals.sameIdentityCreates > 0,
                      totals.superseded > 0, totals.duplicates > 0, totals.reviewItems > 0,
                      totals.parked > 0, totals.truncated > 0 else {
                    return "share \(share) did not exercise every kind of operation: \(totals)"
                }
            }
            return nil
        }
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }
}

struct ScriptStats: CustomStringConvertible {
    var writes = 0, deletes = 0, reinserts = 0, sameIdentityCreates = 0, syncs = 0
    var superseded = 0, duplicates = 0, reviewItems = 0, parked = 0, truncated = 0

    mutating func add(_ o: ScriptStats) {
        writes += o.writes; deletes += o.deletes; reinserts += o.reinserts; sameIdentityCreates += o.sameIdentityCreates
        syncs += o.syncs; superseded += o.superseded; duplicates += o.duplicates; reviewItems += o.reviewItems
        parked += o.parked; truncated += o.truncated
    }

    var description: String {
        "writes=\(writes) deletes=\(deletes) reinserts=\(reinserts) same-identity-creates=\(sameIdentityCreates) syncs=\(syncs) truncated-batches=\(truncated) superseded=\(superseded) duplicates=\(duplicates) parked=\(parked) review-items=\(reviewItems)"
    }
}

/// One write as the oracle sees it.
struct OracleOp {
    enum Kind { case insert, update, delete }
    let version: ChangeVersion
    let kind: Kind
    let key: String
    let values: [String: ColumnValue]
    let created: Bool
}

struct Script {
    let seed: UInt64
    var rng: SeededRandom
    var stats = ScriptStats()
    let clock = ManualClock()
    var replicas: [Replica] = []
    var skews: [ManualClock] = []
    var ops: [OracleOp] = []
    var stash: [ChangeBatch] = []
    let keys = (0..<8).map { "k\($0)" }
    let columns = TestSchema.record.columns.map(\.name)

    init(seed: UInt64) {
        self.seed = seed
        rng = SeededRandom(seed: seed)
    }

    mutating func run() throws -> String? {
        // In one script of four, clocks disagree past the 500 ms bound, so changes get parked.
        let spread: UInt64 = rng.next() % 4 == 0 ? 1_401 : 401
        for i in 0..<5 {
            let skew = ManualClock(Int64(rng.next() % spread) - Int64(spread / 2))
            skews.append(skew)
            var options = TestSchema.options(clock: clock)
            let clock = self.clock
            options.wallClock = { clock.now + skew.now }
            replicas.append(try Replica.open(path: nil, node: "node-\(i)", schema: TestSchema.v1, options: options))
        }
        let writes = 50 + Int(rng.next() % 30)
        while stats.writes < writes {
            clock.advance(Int64(rng.next() % 15))
            let roll = rng.next() % 100
            if roll < 45 {
                try localWrite(on: Int(rng.next() % 5))
            } else if roll < 52 {
                try sameIdentityOnTwoNodes()
            } else if roll < 56 {
                try record(replicas[Int(rng.next() % 5)].retryParked())
            } else {
                try exchange()
            }
        }
        // Faults stop: the clocks agree again and pass every parked stamp, then all is exchanged.
        for skew in skews { skew.set(0) }
        clock.advance(2_000)
        for replica in replicas { try record(replica.retryParked()) }
        try syncAll(replicas)
        for replica in replicas where try replica.parkedCount() > 0 {
            let reasons = try replica.read { try Row.fetchAll($0, sql: "SELECT reason, hlc, tbl, col, seq FROM crdt_parked LIMIT 3") }
            return "\(replica.node) still has \(try replica.parkedCount()) parked changes after the clocks caught up (now \(clock.now)): \(reasons)"
        }
        return try check()
    }

    mutating func randomValue(_ column: String) -> ColumnValue {
        switch column {
        case "a": [ColumnValue.text("内科"), "外科", "儿科", "x", .null][Int(rng.next() % 5)]
        case "b": rng.next() % 4 == 0 ? .null : .integer(Int64(rng.next() % 7) - 3)
        case "c": .real(Double(rng.next() % 1000) / 8)
        case "d": .blob((0..<Int(rng.next() % 4)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        default: .text(["张三", "李四", "王五", "赵六"][Int(rng.next() % 4)])
        }
    }

    mutating func randomRow() -> [String: ColumnValue] {
        var values: [String: ColumnValue] = [:]
        for column in columns where rng.next() % 5 != 0 { values[column] = randomValue(column) }
        return values
    }

    func aliveState(_ replica: Replica, _ key: String) throws -> Int64? {
        try replica.read { db in try Int64.fetchOne(db, sql: "SELECT crdt_alive FROM record WHERE id = ?", arguments: [key]) }
    }

    mutating func localWrite(on index: Int) throws {
        let replica = replicas[index]
        let key = keys[Int(rng.next() % UInt64(keys.count))]
        let state = try aliveState(replica, key)
        if let state, state > 0 {
            if rng.next() % 4 == 0 {
                let version = try replica.write { try $0.delete("record", key: key) }
                ops.append(OracleOp(version: version, kind: .delete, key: key, values: [:], created: false))
                stats.deletes += 1
            } else {
                var values: [String: ColumnValue] = [:]
                while values.isEmpty { values = randomRow() }
                let update = values
                let version = try replica.write { try $0.update("record", key: key, values: update) }
                ops.append(OracleOp(version: version, kind: .update, key: key, values: values, created: false))
            }
        } else {
            let values = randomRow()
            let version = try replica.write { try $0.insert("record", key: key, values: values) }
            ops.append(OracleOp(version: version, kind: .insert, key: key, values: values, created: state == nil))
            if state != nil { stats.reinserts += 1 }
        }
        stats.writes += 1
    }

    /// Two nodes that have never seen a key create it at about the same time (the same patient
    /// registered at two departments).
    mutating func sameIdentityOnTwoNodes() throws {
        let key = "same-\(stats.sameIdentityCreates)"
        let first = Int(rng.next() % 5)
        let second = (first + 1 + Int(rng.next() % 4)) % 5
        for index in [first, second] {
            let values = randomRow()
            let version = try replicas[index].write { try $0.insert("record", key: key, values: values) }
            ops.append(OracleOp(version: version, kind: .insert, key: key, values: values, created: true))
            clock.advance(Int64(rng.next() % 3))
            stats.writes += 1
        }
        stats.sameIdentityCreates += 1
    }

    mutating func exchange() throws {
        let source = replicas[Int(rng.next() % 5)]
        let target = replicas[Int(rng.next() % 5)]
        guard source !== target else { return }
        if !stash.isEmpty, rng.next() % 8 == 0 {
            // A batch that was delayed in the network arrives late.
            let late = stash.remove(at: Int(rng.next() % UInt64(stash.count)))
            try record(target.apply(late))
            return
        }
        let vector = try target.versionVector()
        var batch = try source.changes(since: vector, limit: 1 + Int(rng.next() % 40))
        var reach = vector
        reach.formMax(batch.coverage)
        if !reach.dominates(try source.versionVector()) { stats.truncated += 1 }
        if rng.next() % 2 == 0 { batch.changes.shuffle(using: &rng) }
        try record(target.apply(batch))
        if rng.next() % 5 == 0 { try record(target.apply(batch)) }
        if rng.next() % 6 == 0 { stash.append(batch) }
        stats.syncs += 1
    }

    mutating func record(_ report: ApplyReport) {
        stats.superseded += report.superseded
        stats.duplicates += report.duplicates
        stats.reviewItems += report.reviewItems
        stats.parked += report.parkedClockAhead
    }

    /// Replays every write in (HLC, node id) order: the answer every replica must reach.
    func oracle() -> [String: [String: ColumnValue]] {
        var rows: [String: (alive: Bool, values: [String: ColumnValue])] = [:]
        for op in ops.sorted(by: { $0.version < $1.version }) {
            switch op.kind {
            case .insert:
                var values: [String: ColumnValue] = [:]
                for column in columns { values[column] = op.values[column] ?? .null }
                rows[op.key] = (true, values)
            case .update:
                var row = rows[op.key] ?? (false, [:])
                for (column, value) in op.values { row.values[column] = value }
                rows[op.key] = row
            case .delete:
                rows[op.key]?.alive = false
            }
        }
        return rows.filter(\.value.alive).mapValues(\.values)
    }

    func check() throws -> String? {
        let expected = oracle()
        let digest = try replicas[0].digest()
        let vector = try replicas[0].versionVector()
        let review = try replicas[0].reviewItems()
        for replica in replicas {
            let actual = try replica.liveRows("record")
            if actual != expected {
                let keys = Set(actual.keys).union(expected.keys).sorted().filter { actual[$0] != expected[$0] }
                let first = keys.first ?? "?"
                let history = ops.filter { $0.key == first }.sorted { $0.version < $1.version }
                    .map { "\($0.kind) \($0.version) \($0.values)" }.joined(separator: "\n  ")
                let states = try replicas.map { r in "\(r.node): \(String(describing: try r.liveRow("record", key: first))) alive=\(String(describing: try aliveState(r, first)))" }
                return "\(replica.node) differs from the oracle on keys \(keys): got \(String(describing: actual[first])), expected \(String(describing: expected[first]))\n history of \(first):\n  \(history)\n replicas:\n  \(states.joined(separator: "\n  "))"
            }
            if try replica.digest() != digest { return "\(replica.node) digest differs from node-0" }
            if try replica.versionVector() != vector { return "\(replica.node) version vector differs from node-0" }
            if try replica.reviewItems() != review { return "\(replica.node) review items differ from node-0" }
        }
        // Every review item must hold the two creations' real values, not a mix.
        let cipher = FieldCipher(dataKey: TestSchema.dataKey)
        for item in review {
            let creations = ops.filter { $0.created && $0.key == item.rowKey }
            func matches(_ node: String, _ stored: ColumnValue) throws -> Bool {
                let value = item.column == "name" ? try cipher.open(stored, table: "record", column: "name", key: item.rowKey) : stored
                return creations.contains { $0.version.origin.node == node && ($0.values[item.column] ?? .null) == value }
            }
            guard try matches(item.nodeA, item.valueA), try matches(item.nodeB, item.valueB), item.nodeA != item.nodeB else {
                return "review item \(item) does not match two creations of \(item.rowKey)"
            }
        }
        return nil
    }
}
