import ClinicNode
import Services
import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing

@Suite("Snapshot size cap", .serialized, .timeLimit(.minutes(5)))
struct SnapshotCapTests {
    /// A logger whose entries the test reads (notices and up).
    func recordingLogger(_ label: String) -> (Logger, InMemoryLogHandler) {
        var handler = InMemoryLogHandler()
        handler.logLevel = .notice
        return (Logger(label: label) { _ in handler }, handler)
    }

    func errors(_ handler: InMemoryLogHandler) -> [String] {
        handler.entries.compactMap { $0.metadata["node.error"].map { "\($0)" } }
    }

    @Test("an over-size snapshot is refused by the serving node and by the receiving node, with a bilingual reason")
    func overSizeSnapshotIsRefused() async throws {
        var files = try TestClusterFiles(ids: ["neike", "waike", "erke", "yanke"])
        defer { files.remove() }
        // neike serves nothing over one page; waike serves anything up to the default cap.
        files.configs["neike"]!.tuning.maxSnapshotBytes = 4096
        let nodes = try await startCluster(files, only: ["neike", "waike"])
        for i in 0..<50 {
            try nodes["neike"]!.node.write { w in
                _ = try w.insert("slot", key: "dr-li/2026-01-05/morning/\(String(format: "%03d", i))", values: [
                    "schedule": .text("dr-li/2026-01-05/morning"), "sequence": .integer(Int64(i)), "status": .text("free")])
            }
        }
        #expect(await eventually { try nodes["waike"]!.node.replica.liveRows("slot").count == 50 })

        func newNode(_ id: String, cap: Int64?) -> NodeConfig {
            var config = files.configs[id]!
            if let cap { config.tuning.maxSnapshotBytes = cap }
            config.peers = config.peers.filter { ["neike", "waike"].contains($0.id) }
            for index in config.peers.indices { config.peers[index].port = nodes[config.peers[index].id]!.node.meshPort }
            return config
        }

        // erke (default cap): neike refuses to serve, waike's snapshot is taken.
        let (erkeLogger, erkeLog) = recordingLogger("erke")
        let erke = try await MeshNode.open(config: newNode("erke", cap: nil), logger: erkeLogger)
        #expect(erke.snapshotFrom == "waike")
        #expect(try erke.replica.liveRows("slot").count == 50)
        let served = try #require(errors(erkeLog).first { $0.contains("snapshotTooLarge") || $0.contains("max_snapshot_bytes") }, "\(errors(erkeLog))")
        #expect(served.contains("节点 neike 的快照"))
        #expect(served.contains("the snapshot of node neike"))

        // yanke (cap of one page): refuses what waike sends as soon as the first chunk would pass it.
        let (yankeLogger, yankeLog) = recordingLogger("yanke")
        let yankeConfig = newNode("yanke", cap: 4096)
        let yanke = try await MeshNode.open(config: yankeConfig, logger: yankeLogger)
        #expect(yanke.snapshotFrom == nil)
        #expect(try yanke.replica.liveRows("slot").isEmpty, "nothing of a refused snapshot is used")
        let received = try #require(errors(yankeLog).first { $0.contains("节点 waike 的快照") }, "\(errors(yankeLog))")
        // Chinese first, then English.
        let zh = try #require(received.range(of: "超过上限 tuning.max_snapshot_bytes = 4096 字节"))
        let en = try #require(received.range(of: "exceeds tuning.max_snapshot_bytes = 4096 bytes"))
        #expect(zh.lowerBound < en.lowerBound)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: yankeConfig.dataDir).filter { $0.contains(".incoming-") }
        #expect(leftovers.isEmpty, "the partial download is removed: \(leftovers)")

        // Both still start and follow the change stream.
        var running = nodes
        for (id, node) in [("erke", erke), ("yanke", yanke)] {
            for other in ["neike", "waike"] {
                running[other]!.node.setPeerAddress(id, host: "127.0.0.1", port: node.meshPort)
                node.setPeerAddress(other, host: "127.0.0.1", port: running[other]!.node.meshPort)
            }
            running[id] = RunningNode(node)
        }
        #expect(await eventually { try yanke.replica.liveRows("slot").count == 50 })
        for node in running.values { try await node.stop() }
    }

    @Test("max_snapshot_bytes is read from the config and must be positive")
    func configField() throws {
        let base = """
            {"node_id": "neike", "department": "内科", "cluster_id": "c", "mesh": {"host": "127.0.0.1", "port": 1},
             "admin": {"host": "127.0.0.1", "port": 2}, "data_dir": "d", "cert_dir": "c", "data_key_file": "k",
             "tuning": {"max_snapshot_bytes": VALUE}}
            """
        let parsed = try JSONDecoder().decode(NodeConfig.self, from: Data(base.replacingOccurrences(of: "VALUE", with: "1048576").utf8))
        #expect(parsed.tuning.maxSnapshotBytes == 1_048_576)
        #expect(NodeConfig.Tuning().maxSnapshotBytes == 8 << 30)
        let zero = try JSONDecoder().decode(NodeConfig.self, from: Data(base.replacingOccurrences(of: "VALUE", with: "0").utf8))
        #expect(throws: NodeError.self) { try zero.validate() }
    }
}
