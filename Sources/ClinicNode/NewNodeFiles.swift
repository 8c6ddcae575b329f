import Foundation
import PKI
import Services
import AdminAPI

/// The files a new node needs, made on the admin's machine: its certificate (the CA key stays
/// here), and a config listing the current members as peers and voters (so it starts as a learner).
public enum NewNodeFiles {
    public struct Plan: Sendable {
        public var config: NodeConfig
        public var serial: String
    }

    public static func make(nodeID: String, department: String, clusterID: String, mesh: NodeConfig.Endpoint, admin: NodeConfig.Endpoint,
                            metrics: NodeConfig.Endpoint?, membership: RaftMembership, ca: ClusterCA, hosts: [String],
                            out: String, validity: TimeInterval = 365 * 86_400) throws -> Plan {
        if let existing = membership.members.first(where: { $0.id == nodeID }) {
            throw NodeError(.admin, zh: existing.evicted ? "节点 ID \(nodeID) 已被驱逐，不能再用；重建请换一个新的 ID（如 \(nodeID)-2）。" : "集群中已有节点 \(nodeID)。",
                            en: existing.evicted ? "the node id \(nodeID) was evicted and is never reused; rebuild under a new id (e.g. \(nodeID)-2)." : "the cluster already has a node \(nodeID).")
        }
        let peers = membership.members.filter { !$0.evicted && $0.role != "none" }
        var configPeers: [NodeConfig.Peer] = []
        for p in peers {
            guard let endpoint = NodeConfig.Endpoint.parse(p.address) else {
                throw NodeError(.admin, zh: "成员 \(p.id) 没有登记可用的地址（\(p.address)）。", en: "member \(p.id) has no usable registered address (\(p.address)).")
            }
            configPeers.append(.init(id: p.id, host: endpoint.host, port: endpoint.port, serials: MemberSerials.list(p.serial)))
        }
        let issued = try ca.issueNode(NodeCertificateRequest(nodeID: nodeID, department: department, hosts: hosts, validity: validity))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try PKIFiles.writeIssued(issued, ca: ca, to: (out as NSString).appendingPathComponent("certs"), force: false)
        var config = NodeConfig(nodeID: nodeID, department: department, clusterID: clusterID, mesh: mesh, admin: admin,
                                dataDir: "data", certDir: "certs", dataKeyFile: "data.key", peers: configPeers)
        config.metrics = metrics
        config.voters = peers.filter { $0.role == "voter" }.map(\.id)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = (out as NSString).appendingPathComponent("\(nodeID).json")
        guard FileManager.default.createFile(atPath: path, contents: try encoder.encode(config)) else {
            throw NodeError(.admin, zh: "无法写入 \(path)。", en: "cannot write \(path).")
        }
        return Plan(config: config, serial: issued.serial)
    }
}
