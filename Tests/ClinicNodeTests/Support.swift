import ClinicNode
import Services
import Foundation
import InMemoryLogging
import Logging
import Mesh
import PKI
import ReplicatedCore
import ReplicatedStore
import ServiceLifecycle

/// A test cluster on disk: a CA, node and admin certificates written as `clinicmesh certs` would,
/// a data key, and one config per node (ports 0 until the nodes have bound).
struct TestClusterFiles {
    let root: String
    let ca: ClusterCA
    let ids: [String]
    var configs: [String: NodeConfig] = [:]
    let clusterID = "test-cluster"

    init(ids: [String]) throws {
        root = NSTemporaryDirectory() + "clinicnode-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        ca = try ClusterCA.create(commonName: "Node Test CA")
        self.ids = ids
        _ = try DataKeyFile.create(at: root + "/data.key")
        var serials: [String: String] = [:]
        for id in ids {
            let issued = try ca.issueNode(.init(nodeID: id, department: "内科", hosts: ["127.0.0.1"], validity: 30 * 86_400))
            try PKIFiles.writeIssued(issued, ca: ca, to: root + "/certs/" + id, force: true)
            serials[id] = issued.serial
        }
        let admin = try ca.issueAdmin(name: "test.admin")
        try PKIFiles.writeIssued(admin, ca: ca, to: root + "/certs/admin", force: true)
        var tuning = NodeConfig.Tuning()
        tuning.heartbeatMillis = 200
        tuning.antiEntropyMillis = 600
        tuning.peerTimeoutMillis = 5000
        tuning.reconnectInitialMillis = 50
        tuning.reconnectMaxMillis = 400
        tuning.durability = "normal"
        for id in ids {
            configs[id] = NodeConfig(
                nodeID: id, department: "内科", clusterID: clusterID,
                mesh: .init(host: "127.0.0.1", port: 0), admin: .init(host: "127.0.0.1", port: 0),
                dataDir: root + "/data/" + id, certDir: root + "/certs/" + id, dataKeyFile: root + "/data.key",
                peers: ids.filter { $0 != id }.map { .init(id: $0, host: "127.0.0.1", port: 1, serials: [serials[$0]!]) },
                tuning: tuning)
        }
    }

    func credentials(_ directory: String, kind: ClusterIdentity.Kind) throws -> MeshCredentials {
        try MeshCredentials.load(directory: root + "/certs/" + directory, kind: kind)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// A node running in this process, on real loopback sockets.
final class RunningNode: Sendable {
    let node: MeshNode
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ node: MeshNode) {
        self.node = node
        self.group = node.makeServiceGroup()
        let group = self.group
        self.task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        try node.close()
    }
}

func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label) { _ in InMemoryLogHandler() }
    logger.logLevel = .warning
    return logger
}

/// Opens every node (binding port 0), tells each the others' ports, and starts them.
func startCluster(_ files: TestClusterFiles, only: [String]? = nil, clocks: [String: NodeClock] = [:], fixedPorts: [String: Int] = [:]) async throws -> [String: RunningNode] {
    var nodes: [String: MeshNode] = [:]
    for id in only ?? files.ids {
        var config = files.configs[id]!
        if let port = fixedPorts[id] { config.mesh.port = port }
        nodes[id] = try await MeshNode.open(config: config, clock: clocks[id] ?? NodeClock(), logger: quietLogger(id))
    }
    for (id, node) in nodes {
        for (other, otherNode) in nodes where other != id {
            node.setPeerAddress(other, host: "127.0.0.1", port: otherNode.meshPort)
        }
    }
    return nodes.mapValues { RunningNode($0) }
}

/// Starts a cluster of `ids`, runs `body` with its running nodes, and stops every node whether
/// `body` throws or not (the files are removed afterwards).
func withRunningCluster(_ ids: [String], _ body: ([String: RunningNode]) async throws -> Void) async throws {
    let files = try TestClusterFiles(ids: ids)
    defer { files.remove() }
    let nodes = try await startCluster(files)
    try await stoppingAfterwards(nodes) { try await body(nodes) }
}

/// Runs `body`, then stops every node, whether `body` threw or not.
func stoppingAfterwards(_ nodes: [String: RunningNode], _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        for node in nodes.values { try? await node.stop() }
        throw error
    }
    for node in nodes.values { try await node.stop() }
}
