import ClinicNode
import AdminAPI
import Services
import Foundation
import GRDB
import Mesh
import PKI
import ReplicatedCore
import ReplicatedStore
import TestSupport
import Testing

@Suite("Three nodes on loopback with mTLS", .serialized, .timeLimit(.minutes(5)))
struct ReplicationTests {
    @Test("a write on one node is read on the others, personal data stays sealed")
    func writeReachesEveryNode() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        let nodes = try await startCluster(files)
        do {
            try nodes["neike"]!.node.write { w in
                _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("NK")])
                _ = try w.insert("patient", key: String(repeating: "ab", count: 32), values: [
                    "name": .text("张三"), "resident_id": .text("11010519491231002X"), "mobile": .text("13800138000")])
            }
            for id in ["waike", "erke"] {
                let replica = nodes[id]!.node.replica
                #expect(await eventually { try replica.liveRow("department", key: "neike")?["name"] == .text("内科") }, "\(id) never saw the write")
                let patient = try #require(try replica.liveRow("patient", key: String(repeating: "ab", count: 32)))
                #expect(patient["mobile"] == .text("13800138000"), "the data key opens it on every node")
                let stored = try replica.read { db in try Row.fetchOne(db, sql: "SELECT mobile FROM patient") }
                let raw: DatabaseValue = try #require(stored)["mobile"]
                #expect(raw.storage.value as? String != "13800138000", "mobile must be stored and travel sealed")
            }
            // A write on another node travels the other way too.
            try nodes["erke"]!.node.write { w in _ = try w.insert("department", key: "erke", values: ["name": .text("儿科")]) }
            #expect(await eventually { try nodes["neike"]!.node.replica.liveRow("department", key: "erke") != nil })
            #expect(await eventually {
                let digests = try nodes.values.map { try $0.node.replica.digest() }
                return Set(digests).count == 1
            })
        } catch {
            for node in nodes.values { try? await node.stop() }
            throw error
        }
        for node in nodes.values { try await node.stop() }
    }

    @Test("a node that was offline during writes catches up when it returns")
    func offlineNodeCatchesUp() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        var nodes = try await startCluster(files)
        let erkePort = nodes["erke"]!.node.meshPort
        try await nodes["erke"]!.stop()
        for i in 0..<200 {
            try nodes[i % 2 == 0 ? "neike" : "waike"]!.node.write { w in
                _ = try w.insert("slot", key: "dr-li/2026-01-05/morning/\(String(format: "%03d", i))", values: [
                    "schedule": .text("dr-li/2026-01-05/morning"), "sequence": .integer(Int64(i)), "status": .text("free")])
            }
        }
        // Back on the same port, from the same data folder.
        var config = files.configs["erke"]!
        config.mesh.port = erkePort
        let erke = try await MeshNode.open(config: config, logger: quietLogger("erke"))
        for other in ["neike", "waike"] { erke.setPeerAddress(other, host: "127.0.0.1", port: nodes[other]!.node.meshPort) }
        nodes["erke"] = RunningNode(erke)
        let caughtUp = await eventually {
            try erke.replica.liveRows("slot").count == 200
                && Set(try nodes.values.map { try $0.node.replica.digest() }).count == 1
        }
        #expect(caughtUp)
        for node in nodes.values { try await node.stop() }
    }

    @Test("a clock far off from the majority refuses writes, and writes resume once the clocks agree")
    func clockGuard() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        let skewed = NodeClock(offsetMillis: 3_000)
        let nodes = try await startCluster(files, clocks: ["erke": skewed])
        let erke = nodes["erke"]!.node
        #expect(await eventually { try erke.status().writesRefused })
        let status = try erke.status()
        #expect(status.writesRefusedReason?.contains("时钟") == true)
        #expect(status.writesRefusedReason?.contains("clock") == true)
        #expect(status.peers.allSatisfy { ($0.clockOffsetMs ?? 0) < -2_000 })
        #expect(status.attention?.contains { $0.contains("本节点暂停写入") && $0.contains("refuses writes") } == true, "said in words for a person")
        #expect(status.schemaVersion == NodeSchema.schema.version)
        #expect(throws: StoreError.self) { try erke.write { w in _ = try w.insert("department", key: "x", values: [:]) } }
        // The other two see one peer off, not a majority of theirs: they keep writing.
        #expect(try nodes["neike"]!.node.status().writesRefused == false)
        try nodes["neike"]!.node.write { w in _ = try w.insert("department", key: "ok", values: [:]) }

        skewed.offsetMillis = 0
        #expect(await eventually { try !erke.status().writesRefused })
        try erke.write { w in _ = try w.insert("department", key: "x", values: [:]) }
        for node in nodes.values { try await node.stop() }
    }
}

@Suite("Snapshot catch-up", .serialized, .timeLimit(.minutes(5)))
struct SnapshotTests {
    @Test("a new node starts from a peer's snapshot under its own id and a fresh incarnation, then follows the change stream")
    func newNodeBySnapshot() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        var nodes = try await startCluster(files, only: ["neike", "waike"])
        for i in 0..<300 {
            try nodes["neike"]!.node.write { w in
                _ = try w.insert("slot", key: "dr-li/2026-01-05/morning/\(String(format: "%03d", i))", values: [
                    "schedule": .text("dr-li/2026-01-05/morning"), "sequence": .integer(Int64(i)), "status": .text("free")])
            }
        }
        #expect(await eventually { try nodes["waike"]!.node.replica.liveRows("slot").count == 300 })

        var config = files.configs["erke"]!
        for index in config.peers.indices { config.peers[index].port = nodes[config.peers[index].id]!.node.meshPort }
        let erke = try await MeshNode.open(config: config, logger: quietLogger("erke"))
        // Before any change stream runs, the rows are already there: they came by snapshot.
        #expect(erke.snapshotFrom != nil)
        #expect(try erke.replica.liveRows("slot").count == 300)
        #expect(erke.replica.origin.node == "erke")
        #expect(try erke.replica.versionVector().entries.keys.contains { $0.node == "neike" })
        for (id, running) in nodes { running.node.setPeerAddress("erke", host: "127.0.0.1", port: erke.meshPort); _ = id }
        nodes["erke"] = RunningNode(erke)
        try erke.write { w in _ = try w.insert("department", key: "erke", values: ["name": .text("儿科")]) }
        try nodes["neike"]!.node.write { w in _ = try w.insert("department", key: "neike", values: ["name": .text("内科")]) }
        #expect(await eventually { try nodes["neike"]!.node.replica.liveRow("department", key: "erke") != nil })
        #expect(await eventually { try erke.replica.liveRow("department", key: "neike") != nil })
        #expect(await eventually { Set(try nodes.values.map { try $0.node.replica.digest() }).count == 1 })
        for node in nodes.values { try await node.stop() }
    }
}

@Suite("Pure parts of the node")
struct NodeCoreTests {
    @Test("clock guard counts a majority of all peers, not only the measured ones")
    func guardMajority() {
        let g = ClockGuard(boundMillis: 500, peerCount: 2)
        func fast(_ offsets: [String: Int64]) -> [String: (offsetMillis: Int64, rttMillis: Double)] { offsets.mapValues { ($0, 2) } }
        #expect(g.evaluate(fast(["a": 900, "b": -700])) == .refuse(offPeers: ["a": 900, "b": -700]))
        #expect(g.evaluate(fast(["a": 900, "b": 10])) == .undecided)
        #expect(g.evaluate(fast(["a": 900])) == .undecided)
        #expect(g.evaluate(fast(["a": 1, "b": 2])) == .allow)
        #expect(ClockGuard(boundMillis: 500, peerCount: 0).evaluate([:]) == .allow)
    }

    @Test("clock guard does not refuse for offsets its round trips cannot tell from queueing")
    func guardUncertainty() {
        let g = ClockGuard(boundMillis: 500, peerCount: 2)
        // A loaded node: heartbeats answered after 6 s, offsets of 2.6 and 1.1 s either way.
        #expect(g.evaluate(["a": (-2_580, 6_000), "b": (-1_090, 5_000)]) == .undecided)
        // Off by 2.6 s even with all of a 1 s round trip on one side: off.
        #expect(g.evaluate(["a": (-2_580, 1_000), "b": (3_000, 800)]) == .refuse(offPeers: ["a": -2_580, "b": 3_000]))
    }

    @Test("offset estimate takes the fastest round trip")
    func estimator() {
        var e = ClockOffsetEstimator()
        e.add(sentWallMillis: 1_000, peerWallMillis: 1_600, rttNanos: 200_000_000, nowMonotonicNanos: 1)
        e.add(sentWallMillis: 2_000, peerWallMillis: 2_505, rttNanos: 10_000_000, nowMonotonicNanos: 2)
        #expect(e.estimate(nowMonotonicNanos: 3, maxAgeNanos: 10)?.offsetMillis == 500)
        #expect(e.estimate(nowMonotonicNanos: 100, maxAgeNanos: 10) == nil)
    }

    @Test("backoff grows to its cap and stays within it")
    func backoff() {
        var rng = SystemRandomNumberGenerator()
        let b = Backoff(initialMillis: 100, capMillis: 1_000)
        for attempt in 1...30 {
            let d = b.delayMillis(attempt: attempt, using: &rng)
            #expect(d >= 50 && d <= 1_000)
        }
    }

    @Test("the example configs parse and validate")
    func exampleConfigs() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Cluster/example").standardized.path
        for id in ["neike", "waike", "erke"] {
            let config = try NodeConfig.load(path: folder + "/\(id).json")
            #expect(config.nodeID == id)
            #expect(config.peers.count == 2)
        }
        _ = try AdminConfig.load(path: folder + "/admin.json")
    }
}
