import Foundation
import ReplicatedCore
import Testing
@testable import ReplicatedStore

/// A node that may have lost writes it already shipped must never reuse their sequence numbers.
@Suite struct IncarnationTests {
    let clock = ManualClock()

    func open(_ path: String, durability: Replica.Options.Durability = .full, force: Bool = false) throws -> Replica {
        var options = TestSchema.options(clock: clock, durability: durability)
        options.forceNewIncarnation = force
        return try Replica.open(path: path, node: "a", schema: TestSchema.v1, options: options)
    }

    /// Copies the database files as they stand, like the disk after the last fsync.
    func snapshot(_ path: String, to copy: String) throws {
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
            try? FileManager.default.removeItem(atPath: copy + suffix)
            try FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
        }
    }

    func restore(_ copy: String, to path: String) throws {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: copy + suffix) {
            try FileManager.default.copyItem(atPath: copy + suffix, toPath: path + suffix)
        }
    }

    @Test func crashBetweenWriteAndFsyncStartsANewIncarnationAndPeersGiveTheLostWritesBack() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let path = folder.path + "/a.sqlite", synced = folder.path + "/synced.sqlite"
        let peer = try Replica.open(path: nil, node: "b", schema: TestSchema.v1, options: TestSchema.options(clock: clock))
        var a: Replica? = try open(path, durability: .normal)
        for i in 1...3 { try a!.write { try $0.insert("record", key: "k\(i)", values: ["b": .integer(Int64(i))]) } }
        try a!.checkpoint()
        try snapshot(path, to: synced)
        // Written and shipped, but with synchronous=NORMAL not yet fsynced when the power goes.
        for i in 4...5 { try a!.write { try $0.insert("record", key: "k\(i)", values: ["b": .integer(Int64(i))]) } }
        try peer.apply(a!.changes(since: peer.versionVector()))
        let firstLife = a!.origin
        a = nil  // no clean close: the power is gone
        try restore(synced, to: path)

        let reborn = try open(path, durability: .normal)
        #expect(reborn.origin == OriginID(node: "a", incarnation: firstLife.incarnation + 1))
        #expect(try reborn.liveRows("record").count == 3)
        let version = try reborn.write { try $0.insert("record", key: "k6", values: ["b": 6]) }
        #expect(version.seq == 1 && version.origin == reborn.origin)
        try syncAll([reborn, peer])
        #expect(try reborn.liveRows("record").keys.sorted() == ["k1", "k2", "k3", "k4", "k5", "k6"])
        #expect(try reborn.versionVector()[firstLife] == 5)
        #expect(try reborn.digest() == peer.digest())
        try reborn.close()
    }

    @Test func cleanRestartAndUncleanRestartWithFullSyncKeepTheIncarnation() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let path = folder.path + "/a.sqlite"
        var a: Replica? = try open(path)
        let first = a!.origin
        try a!.write { try $0.insert("record", key: "k1", values: [:]) }
        try a!.close()
        a = try open(path)
        #expect(a!.origin == first)
        try a!.write { try $0.insert("record", key: "k2", values: [:]) }
        a = nil  // crash: every commit was fsynced, nothing shipped can be missing
        let again = try open(path)
        #expect(again.origin == first)
        #expect(try again.write { try $0.insert("record", key: "k3", values: [:]) }.seq == 3)
        try again.close()
    }

    @Test func databaseReplacedByAnOlderCopyStartsANewIncarnation() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanup() }
        let path = folder.path + "/a.sqlite", backup = folder.path + "/backup.sqlite"
        var a: Replica? = try open(path)
        try a!.write { try $0.insert("record", key: "k1", values: [:]) }
        try a!.checkpoint()
        try snapshot(path, to: backup)
        try a!.close()
        a = try open(path)
        try a!.write { try $0.insert("record", key: "k2", values: [:]) }
        let before = a!.origin
        try a!.close()
        a = nil
        try restore(backup, to: path)
        let restored = try open(path)
        #expect(restored.origin.incarnation == before.incarnation + 1)
        try restored.close()
        // And a restore can ask for one explicitly.
        let forced = try open(path, force: true)
        #expect(forced.origin.incarnation == before.incarnation + 2)
        try forced.close()
    }
}
