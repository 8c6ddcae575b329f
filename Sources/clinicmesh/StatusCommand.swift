import ArgumentParser
import ClinicNode
import AdminAPI
import Services
import Foundation
import Mesh
import PKI

/// `clinicmesh status`: asks nodes' admin APIs (admin certificate required) and prints a table.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "查看节点状态（需管理员证书）/ Show node status (needs an admin certificate)",
        discussion: """
            输出整个集群一张表：Leader 与任期；每个成员的角色、科室、可达性、复制滞后、时钟偏差、持有的租约块、上次反熵、数据版本；
            以及需要人处理的事项（时钟偏差、磁盘将满、待核对记录、两节点集群无法容忍故障等）。有节点未应答时退出码为 1。
            One table for the whole cluster: leader and term; each member's role, department, reachability, replication lag,
            clock offset, lease blocks held, last anti-entropy and schema version; and what needs a person (clock off, disk
            nearly full, review items waiting, a 2-node cluster that survives no failure, ...). Exits 1 if a node did not answer.

            --config ADMIN.json 询问其中列出的每个节点；或用 --node host:port --node-id ID --admin-cert DIR 询问一个节点。
            节点必须出示本集群 CA 签发、名为该节点 ID 的节点证书（给出序列号时还须是其中之一），否则不发送请求。
            --config ADMIN.json asks every node it lists; or ask one node with --node host:port --node-id ID --admin-cert DIR.
            The node must present a node certificate of the cluster CA for that node id (and, if serials are given, one of
            them); otherwise no request is sent.
            """
    )

    @Option(name: .long, help: "管理配置（JSON，见 Cluster/CONFIG.md）/ Admin config (JSON, see Cluster/CONFIG.md)")
    var config: String?

    @Option(name: .long, help: "节点管理地址 host:port / A node's admin address host:port")
    var node: String?

    @Option(name: .long, help: "该节点的 ID（与 --node 一起用，必填）/ That node's id (with --node, required)")
    var nodeId: String?

    @Option(name: .long, help: "可接受的节点证书序列号，可重复（与 --node 一起用）/ Accepted node certificate serial, repeatable (with --node)")
    var serial: [String] = []

    @Option(name: .long, help: "管理员证书文件夹（admin.crt、admin.key、ca.crt）/ Admin certificate folder")
    var adminCert: String?

    @Option(name: .long, help: "集群 ID（与 --node 一起用）/ Cluster id (with --node)")
    var clusterId: String = "clinicmesh-example"

    @Flag(name: .long, help: "只问健康状况 / Ask for health only")
    var health = false

    @Flag(name: .long, help: "输出 JSON（整个集群的报告，含各节点原始状态）/ Print JSON (the cluster report, each node's own status included)")
    var json = false

    @Flag(name: .long, help: "另外列出每个节点自己的详细状态 / Also print each node's own detailed status")
    var detail = false

    func validate() throws {
        if config == nil && (node == nil || nodeId == nil || adminCert == nil) {
            throw ValidationError("需要 --config，或同时给出 --node、--node-id 与 --admin-cert。\nGive --config, or all of --node, --node-id and --admin-cert.")
        }
    }

    func run() async throws {
        var targets: [(host: String, port: Int, id: String, serials: [String])] = []
        let certDir: String
        let cluster: String
        do {
            if let config {
                let admin = try AdminConfig.load(path: config)
                targets = admin.nodes.map { ($0.host, $0.port, $0.id, $0.serials ?? []) }
                certDir = admin.adminCertDir
                cluster = admin.clusterID
            } else {
                let parts = node!.split(separator: ":")
                guard parts.count == 2, let port = Int(parts[1]) else {
                    throw NodeError(.admin, zh: "--node 应为 host:port。", en: "--node must be host:port.")
                }
                targets = [(String(parts[0]), port, nodeId!, serial)]
                certDir = adminCert!
                cluster = clusterId
            }
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
        let credentials: MeshCredentials
        do {
            credentials = try MeshCredentials.load(directory: certDir, kind: .admin)
        } catch {
            FileHandle.standardError.write(Data("无法读取管理员证书 / cannot load the admin certificate: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if health {
            var failed = false
            var outputs: [String] = []
            for target in targets {
                do {
                    let bytes = try await AdminClient.request(
                        host: target.host, port: target.port, command: "health", clusterID: cluster, credentials: credentials,
                        expectedNodeID: target.id, serials: target.serials)
                    if json {
                        outputs.append(String(decoding: bytes, as: UTF8.self))
                    } else {
                        let h = try JSONDecoder().decode(NodeHealth.self, from: Data(bytes))
                        outputs.append("\(h.nodeID): \(h.ok ? "正常 / ok" : "暂停写入 / writes refused")，对端 / peers \(h.reachablePeers)/\(h.peers)")
                    }
                } catch {
                    failed = true
                    outputs.append("\(target.id) \(target.host):\(target.port): 无法获取 / unavailable: \(error)")
                }
            }
            print(json && targets.count > 1 ? "[" + outputs.joined(separator: ",\n") + "]" : outputs.joined(separator: "\n"))
            if failed { throw ExitCode.failure }
            return
        }

        // Every node at once: one that hangs must not hold the others' answers back.
        // Plain values out of the child tasks: one answer or one error text per node.
        struct Answer: Sendable { let id: String; let status: NodeStatus?; let error: String? }
        let results = await withTaskGroup(of: Answer.self) { group in
            for target in targets {
                group.addTask {
                    do {
                        let status = try await AdminClient.status(
                            host: target.host, port: target.port, clusterID: cluster, credentials: credentials,
                            expectedNodeID: target.id, serials: target.serials)
                        return Answer(id: target.id, status: status, error: nil)
                    } catch {
                        return Answer(id: target.id, status: nil, error: "\(error)")
                    }
                }
            }
            var all: [Answer] = []
            for await answer in group { all.append(answer) }
            return all
        }
        var answers: [String: NodeStatus] = [:]
        var unanswered: [String: String] = [:]
        for answer in results {
            if let status = answer.status { answers[answer.id] = status } else { unanswered[answer.id] = answer.error ?? "?" }
        }
        let report = ClusterReport.build(clusterID: cluster, answers: answers, unanswered: unanswered)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table())
            if detail {
                for id in answers.keys.sorted() { print("\n" + Self.table(answers[id]!)) }
            }
        }
        if !unanswered.isEmpty { throw ExitCode.failure }
    }

    static func table(_ s: NodeStatus) -> String {
        var lines: [String] = []
        lines.append("节点 / node: \(s.nodeID)   科室 / department: \(s.department)   集群 / cluster: \(s.clusterID)   网络 / mesh: \(s.meshAddress)")
        lines.append("写入 / writes: " + (s.writesRefused ? "已暂停 / REFUSED — \(s.writesRefusedReason ?? "")" : "正常 / accepted")
            + "   暂存变更 / parked: \(s.parkedChanges)   运行 / uptime: \(Int(s.uptimeS)) s   数据版本 / schema: \(s.schemaVersion.map(String.init) ?? "-")")
        lines.append("版本向量 / version vector: " + s.versionVector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        for line in s.attention ?? [] { lines.append("⚠ 需要处理 / needs attention: " + line) }
        if let c = s.consensus {
            lines.append("Raft: 角色 / role \(c.role)   任期 / term \(c.term)   Leader \(c.leader ?? "-")   已提交 / commit \(c.commitIndex)   号源块 / blocks \(c.blocks)")
            if let failure = c.failure { lines.append("共识已停止（日志无法写入）/ consensus stopped (logs cannot be written): \(failure)") }
            lines.append("成员 / members: " + c.members.map { m in
                "\(m.id)[\(m.role)\(m.live ? "" : ", 不在线 / not live")\(m.evicted ? ", 已驱逐 / evicted" : ""), 租约 / leases \(m.blocksHeld)]"
            }.joined(separator: "  "))
        }
        let header = ["对端 peer", "地址 address", "可达 reachable", "滞后 lag", "时钟偏差 offset ms", "往返 rtt ms", "上次联系 last contact ms", "上次反熵 anti-entropy ms"]
        var rows = [header]
        for p in s.peers {
            rows.append([p.id, p.address, p.reachable ? "是 yes" : "否 no", p.lagChanges.map(String.init) ?? "-",
                         p.clockOffsetMs.map(String.init) ?? "-", p.rttMs.map { String($0) } ?? "-", p.lastContactMsAgo.map(String.init) ?? "-",
                         p.lastAntiEntropyMsAgo.map(String.init) ?? "-"])
        }
        func width(_ text: String) -> Int { text.unicodeScalars.reduce(0) { $0 + ($1.value > 0x2E80 ? 2 : 1) } }
        let widths = (0..<header.count).map { i in rows.map { width($0[i]) }.max() ?? 0 }
        for row in rows {
            lines.append(row.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - width(cell)) }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }
}
