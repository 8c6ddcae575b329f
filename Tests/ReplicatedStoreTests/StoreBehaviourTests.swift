import Crypto
import Foundation
import GRDB
import Testing
@testable import ReplicatedStore

@Suite struct StoreBehaviourTests {
    let clock = ManualClock()

    func memoryReplica(_ node: String, schema: ReplicaSchema = TestSchema.v1) throws -> Replica {
        try Replica.open(path: nil, node: node, schema: schema, options: TestSchema.options(clock: clock))
    }

    @Test func localWritesAreRefusedWithReasonsThatNameTheInput() throws {
        let a = try memoryReplica("a")
        try a.write { try $0.insert("record", key: "p1", values: ["a": "内科"]) }
        #expect(throws: StoreError.self) { try a.write { try $0.insert("record", key: "p1", values: [:]) } }
        #expect(throws: StoreError.self) { try a.write { try $0.update("record", key: "nobody", values: ["a": "x"]) } }
        #expect(throws: StoreError.self) { try a.write { try $0.update("record", key: "p1", values: ["nope": "x"]) } }
        #expect(throws: StoreError.self) { try a.write { try $0.insert("nope", key: "p1", values: [:]) } }
        #expect(throws: StoreError.self) { try a.write { try $0.insert("record", key: "", values: [:]) } }
        do {
            try a.write { try $0.update("record", key: "p1", values: ["nope": "x"]) }
            Issue.record("an unknown column was accepted")
        } catch let error as StoreError {
            #expect(error.code == .unknownColumn && error.zh.contains("nope") && error.en.contains("nope"))
        }
        // Failed transactions leave nothing behind and do not burn sequence numbers.
        #expect(try a.write { try $0.update("record", key: "p1", values: ["b": 1]) }.seq == 2)
        a.refuseWrites(StoreError(.writesRefused, zh: "时钟偏差过大", en: "clock is off"))
        #expect(throws: StoreError.self) { try a.write { try $0.update("record", key: "p1", values: ["a": "x"]) } }
        a.allowWrites()
        try a.write { try $0.update("record", key: "p1", values: ["a": "外科"]) }
        #expect(try a.liveRow("record", key: "p1")?["a"] == "外科")
    }

    /// A row's change stamp moves once a local write or a merged change to it commits, and not for
    /// a transaction that failed: in-memory copies of rows rely on it.
    @Test func rowStampsMoveWithCommittedWritesAndMerges() throws {
        let a = try memoryReplica("a"), b = try memoryReplica("b")
        let start = a.rowStamps.stamp(table: "record", key: "p1")
        try a.write { try $0.insert("record", key: "p1", values: ["a": "内科"]) }
        let written = a.rowStamps.stamp(table: "record", key: "p1")
        #expect(written != start)
        #expect(throws: StoreError.self) {
            try a.write { w in
                try w.update("record", key: "p1", values: ["a": "外科"])
                try w.update("record", key: "p1", values: ["nope": "x"])
            }
        }
        #expect(a.rowStamps.stamp(table: "record", key: "p1") == written)
        let before = b.rowStamps.stamp(table: "record", key: "p1")
        try b.apply(a.changes(since: b.versionVector()))
        #expect(b.rowStamps.stamp(table: "record", key: "p1") != before)
        #expect(try b.liveRow("record", key: "p1")?["a"] == "内科")
    }

    /// The clock guard lifted a refusal while a merge transaction ran; publishing that
    /// transaction's state put the refusal back, and writes stayed refused for good (seen in the
    /// clock-skew drill).
    @Test func aRefusalLiftedDuringATransactionStaysLifted() throws {
        let a = try memoryReplica("a")
        let reason = StoreError(.writesRefused, zh: "时钟偏差过大", en: "clock is off")
        a.refuseWrites(reason)
        try a.transaction { _ in a.allowWrites() }
        #expect(a.writesRefusedBecause == nil)
        try a.transaction { _ in a.refuseWrites(reason) }
        #expect(a.writesRefusedBecause == reason)
        a.allowWrites()
        try a.write { try $0.insert("record", key: "p1", values: ["a": "内科"]) }
    }

    @Test func deleteThenReinsertOnAnotherNodeWinsByClock() throws {
        let a = try memoryReplica("a"), b = try memoryReplica("b")
        try a.write { try $0.insert("record", key: "p", values: ["a": "1", "b": 1]) }
        try syncAll([a, b])
        clock.advance(10)
        try a.write { try $0.delete("record", key: "p") }
        try syncAll([a, b])
        #expect(try b.liveRow("record", key: "p") == nil)
        clock.advance(10)
        try b.write { try $0.insert("record", key: "p", values: ["a": "2"]) }
        try syncAll([a, b])
        #expect(try a.liveRow("record", key: "p")?["a"] == "2")
        #expect(try a.liveRow("record", key: "p")?["b"] == .null)
        #expect(try a.digest() == b.digest())
        // A re-insert is not a creation, so it raises no review item.
        #expect(try a.reviewItems().isEmpty)
    }

    @Test func sameIdentityCreatedOnTwoNodesConvergesAndIsKeptForReview() throws {
        let a = try memoryReplica("a"), b = try memoryReplica("b"), c = try memoryReplica("c")
        try a.write { try $0.insert("record", key: "patient-1", values: ["a": "内科", "name": "张三"]) }
        clock.advance(5)
        try b.write { try $0.insert("record", key: "patient-1", values: ["a": "外科", "name": "张三"]) }
        try syncAll([c, a, b])
        for replica in [a, b, c] {
            #expect(try replica.liveRow("record", key: "patient-1")?["a"] == "外科")
            let items = try replica.reviewItems()
            #expect(items.count == 1)
            #expect(items.first?.column == "a")
            #expect(items.first?.nodeA == "a" && items.first?.valueA == "内科")
            #expect(items.first?.nodeB == "b" && items.first?.valueB == "外科")
        }
        #expect(try a.digest() == b.digest() && b.digest() == c.digest())
        let id = try #require(try c.reviewItems().first?.id)
        try c.resolveReviewItem(id, note: "核对身份证后确认为外科 / confirmed 外科 from the ID card", by: "admin-li")
        try syncAll([a, b, c])
        #expect(try a.reviewItems().isEmpty)
        #expect(try a.reviewItems(includeResolved: true).first?.status == "resolved")
    }

    @Test func personalDataIsSealedAtTheOriginAndReplicatesAsCiphertext() throws {
        let a = try memoryReplica("a"), b = try memoryReplica("b")
        try a.write { try $0.insert("record", key: "p", values: ["name": "欧阳娜娜"]) }
        try syncAll([a, b])
        let rawA = try a.read { db in try Data.fetchOne(db, sql: "SELECT name FROM record WHERE id = 'p'") }
        let rawB = try b.read { db in try Data.fetchOne(db, sql: "SELECT name FROM record WHERE id = 'p'") }
        let sealed = try #require(rawA)
        #expect(rawA == rawB)
        #expect(sealed.range(of: Data("欧阳娜娜".utf8)) == nil)
        #expect(try b.liveRow("record", key: "p")?["name"] == "欧阳娜娜")
        // The same value sealed on another node gives the same bytes, so creations compare equal.
        #expect(try FieldCipher(dataKey: TestSchema.dataKey).seal("欧阳娜娜", table: "record", column: "name", key: "p") == .blob([UInt8](sealed)))
        let wrongKey = FieldCipher(dataKey: SymmetricKey(size: .bits256))
        #expect(throws: StoreError.self) { try wrongKey.open(.blob([UInt8](sealed)), table: "record", column: "name", key: "p") }
        var flipped = [UInt8](sealed)
        flipped[flipped.count - 1] ^= 1
        #expect(throws: StoreError.self) { try FieldCipher(dataKey: TestSchema.dataKey).open(.blob(flipped), table: "record", column: "name", key: "p") }
        var noKey = TestSchema.options(clock: clock)
        noKey.cipher = nil
        let keyless = try Replica.open(path: nil, node: "c", schema: TestSchema.v1, options: noKey)
        #expect(throws: StoreError.self) { try keyless.write { try $0.insert("record", key: "q", values: ["name": "x"]) } }
    }

    @Test func dataKeyFileIsPrivateAndLoadsBack() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let path = folder.path + "/data.key"
        let key = try DataKeyFile.create(at: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try DataKeyFile.load(from: path) == key)
        #expect(throws: StoreError.self) { try DataKeyFile.create(at: path) }
    }

    @Test func changeTooFarAheadIsParkedNotDroppedAndServedOnward() throws {
        let behind = ManualClock(clock.now - 2_000)
        let a = try memoryReplica("a"), c = try memoryReplica("c")
        let b = try Replica.open(path: nil, node: "b", schema: TestSchema.v1, options: TestSchema.options(clock: behind))
        try a.write { try $0.insert("record", key: "p", values: ["a": "x"]) }
        let report = try b.apply(a.changes(since: b.versionVector()))
        #expect(report.parkedClockAhead == 6 && report.applied == 0)
        #expect(try b.parkedCount() == 6)
        #expect(try b.liveRow("record", key: "p") == nil)
        // b holds the parked changes durably, so it covers them and passes them on.
        #expect(try b.versionVector()[a.origin] == 1)
        try c.apply(b.changes(since: c.versionVector()))
        #expect(try c.liveRow("record", key: "p")?["a"] == "x")
        behind.advance(1_600)
        #expect(try b.retryParked().applied == 6)
        #expect(try b.parkedCount() == 0)
        #expect(try b.liveRow("record", key: "p")?["a"] == "x")
        #expect(try a.digest() == b.digest() && b.digest() == c.digest())
    }

    @Test func aParkedChangeDoesNotStallWhatFollowsIt() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let newer = try memoryReplica("new", schema: TestSchema.v2)
        let older = try Replica.open(path: nil, node: "old", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        try newer.write { try $0.insert("record", key: "first", values: ["note": "只有新版本认识的列"]) }
        for i in 0..<40 { try newer.write { try $0.insert("record", key: "k\(i)", values: ["b": .integer(Int64(i))]) } }
        for _ in 0..<100 {
            let batch = try newer.changes(since: older.versionVector(), limit: 20)
            if batch.isEmpty { break }
            try older.apply(batch)
        }
        #expect(try older.versionVector()[newer.origin] == 41)
        #expect(try older.liveRows("record").count == 41)
        let parked = try older.read { try Row.fetchAll($0, sql: "SELECT col, reason FROM crdt_parked") }
        // Every insert from the newer node carries its `note` column, which waits for the upgrade.
        #expect(parked.count == 41 && parked.allSatisfy { $0["col"] == "note" }, "parked: \(parked)")
    }

    @Test func nodeOneSchemaVersionBehindParksWhatItDoesNotKnowUntilItUpgrades() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let newer = try memoryReplica("new", schema: TestSchema.v2)
        var older: Replica? = try Replica.open(path: folder.path + "/old.sqlite", node: "old", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        try newer.write { w in
            try w.insert("record", key: "p", values: ["a": "内科", "note": "青霉素过敏"])
            try w.insert("allergy", key: "al1", values: ["substance": "青霉素"])
        }
        let report = try older!.apply(newer.changes(since: older!.versionVector()))
        #expect(report.parkedUnknownSchema == 3)
        #expect(try older!.versionVector()[newer.origin] == 2)
        #expect(try older!.liveRow("record", key: "p")?["a"] == "内科")
        // The older node still writes and its changes still reach the newer one.
        try older!.write { try $0.insert("record", key: "q", values: ["a": "儿科"]) }
        try newer.apply(older!.changes(since: newer.versionVector()))
        #expect(try newer.liveRow("record", key: "q")?["note"] == .null)
        try older!.close()
        older = nil
        let upgraded = try Replica.open(path: folder.path + "/old.sqlite", node: "old", schema: TestSchema.v2, options: TestSchema.options(clock: clock))
        #expect(try upgraded.retryParked().applied == 3)
        try syncAll([newer, upgraded])
        #expect(try upgraded.liveRow("record", key: "p")?["note"] == "青霉素过敏")
        #expect(try upgraded.digest() == newer.digest())
        try upgraded.close()
    }

    @Test func filesRunInWALWithTheChosenSynchronousLevel() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let full = try Replica.open(path: folder.path + "/full.sqlite", node: "a", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        #expect(try full.durabilitySettings() == ("wal", 2))
        try full.close()
        let normal = try Replica.open(path: folder.path + "/normal.sqlite", node: "b", schema: TestSchema.v1,
                                      options: TestSchema.options(clock: clock, durability: .normal))
        #expect(try normal.durabilitySettings() == ("wal", 1))
        try normal.close()
        #expect(throws: StoreError.self) {
            try Replica.open(path: folder.path + "/full.sqlite", node: "intruder", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        }
        // One writer per file: a second open while the first is live is refused.
        let open = try Replica.open(path: folder.path + "/full.sqlite", node: "a", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        #expect(throws: StoreError.self) {
            try Replica.open(path: folder.path + "/full.sqlite", node: "a", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        }
        try open.close()
    }
}
