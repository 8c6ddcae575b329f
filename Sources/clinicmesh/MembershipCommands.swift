import ArgumentParser
import ClinicNode
import AdminAPI
import Services
import Foundation
import PKI

/// Parses `host:port` options, saying which option was wrong.
func endpoint(_ text: String, option: String) throws -> NodeConfig.Endpoint {
    guard let e = NodeConfig.Endpoint.parse(text) else {
        throw ValidationError("\(option) 应为 host:port（端口 1–65535），收到 \(text)。\n\(option) must be host:port (port 1-65535); got \(text).")
    }
    return e
}

func say(_ line: String) { print(line) }

/// The cluster CA from `folder`; a failure is said on stderr (in both languages) and exits 1.
func loadAuthority(_ folder: String) throws -> ClusterCA {
    do { return try PKIFiles.loadCA(from: folder) } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// `clinicmesh cluster add-node`: a new node, or the rebuild of a lost one, from the admin's machine.
struct AddNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-node",
        abstract: "加入新节点或重建丢失的科室节点：在本机签发证书，登记为学习者，跟踪追赶，按需提升为投票成员 / Add a node or rebuild a lost department node: issue its certificate here, add it as a learner, follow its catch-up, promote it if the voter count calls for it",
        discussion: """
            步骤：1) 在本机用 CA 签发节点证书（ca.key 不离开本机），把证书与配置写到 --out；2) 经 Leader 在成员表中登记
            它的地址、科室与证书序列号，并加为学习者；3) 请把 --out 复制到新机器并启动 `clinicmesh node run --config ID.json`，
            新节点先从对端取快照，再跟随变更流；4) 本命令显示追赶进度，追上后按需要（投票成员保持奇数、最多 5 个、分散在不同科室）
            提升为投票成员。重建丢失的节点：用同一科室、一个新的节点 ID，并用 --replaces 指出丢失的节点（先驱逐它）。
            Steps: 1) issue the node certificate here with the CA (ca.key never leaves this machine) and write it and the config
            to --out; 2) record the node's address, department and certificate serial in the membership through the leader, and
            add it as a learner; 3) copy --out to the new machine and start `clinicmesh node run --config ID.json`: it fetches a
            snapshot from a peer, then follows the change stream; 4) this command shows the catch-up and, once caught up,
            promotes learners if the voter count calls for it (odd, at most 5, across departments). To rebuild a lost node, use
            its department, a new node id, and --replaces with the lost node (it is evicted first).
            """)

    @Option(help: "管理配置 / Admin config (JSON)") var config: String
    @Option(help: "CA 文件夹（含 ca.crt 与 ca.key）/ CA folder (ca.crt and ca.key)") var ca: String
    @Option(help: "新节点 ID / New node id") var nodeId: String
    @Option(help: "科室名称，例如 内科 / Department, e.g. 内科") var department: String
    @Option(help: "新节点的网状网络地址 host:port / Its mesh address") var mesh: String
    @Option(help: "新节点的管理地址 host:port / Its admin address") var admin: String
    @Option(help: "新节点的指标地址 host:port（可选）/ Its metrics address (optional)") var metrics: String?
    @Option(help: "证书中的域名或 IP，可重复（默认 --mesh 的主机）/ DNS names or IPs for the certificate, repeatable (default: the --mesh host)") var host: [String] = []
    @Option(help: "输出文件夹：证书与配置 / Output folder: certificate and config") var out: String
    @Option(help: "集群数据密钥文件，复制到输出文件夹（否则请自行从现有节点安全复制）/ The cluster data key, copied to --out (else copy it yourself from a node)") var dataKey: String?
    @Option(help: "要替换的丢失节点（先驱逐）/ The lost node it replaces (evicted first)") var replaces: String?
    @Option(help: "追赶完成的判据：最多还差多少变更 / Caught up when at most this many changes behind") var maxLag: UInt64 = 100
    @Option(help: "等待新节点追赶的秒数 / Seconds to wait for the catch-up") var timeout: Int = 1800
    @Flag(help: "只登记，不等待追赶与提升 / Register only; do not wait for catch-up and promotion") var noWait = false

    func validate() throws {
        _ = try endpoint(mesh, option: "--mesh")
        _ = try endpoint(admin, option: "--admin")
        if let metrics { _ = try endpoint(metrics, option: "--metrics") }
        if department.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--department 不能为空。\n--department must not be empty.") }
        if timeout < 1 { throw ValidationError("--timeout 至少 1 秒。\n--timeout must be at least 1 s.") }
    }

    func run() async throws {
        let target = try AdminTarget(path: config)
        let authority = try loadAuthority(ca)
        let meshEndpoint = try endpoint(mesh, option: "--mesh"), adminEndpoint = try endpoint(admin, option: "--admin")
        var cluster = ClusterAdmin(clusterID: target.config.clusterID, credentials: target.credentials, nodes: target.config.nodes, report: say)
        do {
            if let replaces {
                try await cluster.evictLost(replaces, department: department, timeout: .seconds(60))
            }
            let view = try await cluster.leaderView()
            if replaces == nil, let lost = view.members.first(where: { $0.department == department && !$0.evicted && !$0.live && $0.role != "none" }) {
                say("⚠ 同科室的节点 \(lost.id) 不在线；若它已损毁，请加 --replaces \(lost.id) 以驱逐它 / node \(lost.id) of the same department is not live; if it is lost, add --replaces \(lost.id) to evict it")
            }
            let plan = try NewNodeFiles.make(
                nodeID: nodeId, department: department, clusterID: target.config.clusterID, mesh: meshEndpoint, admin: adminEndpoint,
                metrics: try metrics.map { try endpoint($0, option: "--metrics") }, membership: view, ca: authority,
                hosts: host.isEmpty ? [meshEndpoint.host] : host, out: out)
            say("已签发证书，序列号 \(plan.serial)；证书与配置在 \(out) / certificate issued, serial \(plan.serial); certificate and config in \(out)")
            let keyPath = (out as NSString).appendingPathComponent("data.key")
            if let dataKey {
                try SecureCopy.copy(from: dataKey, to: keyPath)
            } else {
                say("请把集群数据密钥从现有节点安全复制到新节点的 \(keyPath)（权限 0600）/ copy the cluster data key from an existing node to \(keyPath) on the new node (mode 0600), by a safe channel")
            }
            try await cluster.register(MemberAddRequest(node: nodeId, address: "\(meshEndpoint.host):\(meshEndpoint.port)", department: department, serial: plan.serial),
                                       timeout: .seconds(120))
            try AdminConfigFile.add(node: .init(id: nodeId, host: adminEndpoint.host, port: adminEndpoint.port, serials: [plan.serial]), to: config)
            say("已把 \(nodeId) 加入管理配置 \(config) / added \(nodeId) to the admin config \(config)")
            say("下一步：把 \(out) 复制到新机器，运行 clinicmesh node run --config \(nodeId).json / next: copy \(out) to the new machine and run clinicmesh node run --config \(nodeId).json")
            if noWait {
                say("追上后运行 clinicmesh cluster promote --config \(config) --node \(nodeId) / once it has caught up, run clinicmesh cluster promote --config \(config) --node \(nodeId)")
                return
            }
            let newNode = AdminConfig.Node(id: nodeId, host: adminEndpoint.host, port: adminEndpoint.port, serials: [plan.serial])
            try await cluster.waitForCatchUp(newNode, maxLagChanges: maxLag, timeout: .seconds(timeout))
            cluster.nodes.append(newNode)
            try await cluster.promoteAsNeeded(prefer: nodeId, timeout: .seconds(300))
            for line in try await cluster.summary() { say(line) }
        } catch let error as NodeError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// `clinicmesh cluster promote`: follow a learner's catch-up and promote while the voter count calls for it.
struct PromoteNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "等待学习者追上，并按需要提升为投票成员（保持奇数、分散科室）/ Wait for a learner to catch up and promote learners as the voter count calls for (odd, across departments)")

    @Option(help: "管理配置 / Admin config (JSON)") var config: String
    @Option(help: "要跟踪的学习者（须在管理配置中）/ The learner to follow (listed in the admin config)") var node: String?
    @Option(help: "追赶完成的判据：最多还差多少变更 / Caught up when at most this many changes behind") var maxLag: UInt64 = 100
    @Option(help: "等待秒数 / Seconds to wait") var timeout: Int = 1800

    func run() async throws {
        let target = try AdminTarget(path: config)
        let cluster = ClusterAdmin(clusterID: target.config.clusterID, credentials: target.credentials, nodes: target.config.nodes, report: say)
        do {
            if let node {
                try await cluster.waitForCatchUp(try target.node(node), maxLagChanges: maxLag, timeout: .seconds(timeout))
            }
            try await cluster.promoteAsNeeded(prefer: node, timeout: .seconds(timeout))
            for line in try await cluster.summary() { say(line) }
        } catch let error as NodeError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

enum SecureCopy {
    static func copy(from source: String, to destination: String) throws {
        guard let data = FileManager.default.contents(atPath: source) else {
            throw NodeError(.admin, zh: "无法读取数据密钥 \(source)。", en: "cannot read the data key \(source).")
        }
        guard FileManager.default.createFile(atPath: destination, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw NodeError(.admin, zh: "无法写入 \(destination)。", en: "cannot write \(destination).")
        }
    }
}

/// Adds a node to the admin config file, keeping everything else as written (relative paths too).
enum AdminConfigFile {
    static func add(node: AdminConfig.Node, to path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
              var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw NodeError(.config, zh: "无法读取管理配置 \(path)。", en: "cannot read the admin config \(path).")
        }
        var nodes = object["nodes"] as? [[String: Any]] ?? []
        nodes.removeAll { ($0["id"] as? String) == node.id }
        nodes.append(["id": node.id, "host": node.host, "port": node.port, "serials": node.serials ?? []])
        object["nodes"] = nodes
        let out = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// `clinicmesh cluster rotate-cert`: a node's new certificate, accepted beside the old one until it restarts with it.
struct RotateCert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-cert",
        abstract: "轮换节点证书，不停机：签发新证书并登记序列号，节点重启换上后旧证书自动注销 / Rotate a node's certificate without downtime: issue it, record its serial; once the node restarts with it the old one is dropped",
        discussion: """
            新证书写到 --out；在 Leader 登记新序列号后，新旧证书都被握手接受，节点可以在任何时候把 node.crt、node.key 换成新的并重启
            （其租约在正常关闭时转交，重启后取回）；重启后节点只登记新序列号，轮换完成。--wait 等到完成为止。
            The new certificate goes to --out; once the leader has recorded its serial, handshakes accept both the new and the old
            certificate, so the node can swap in the new node.crt and node.key and restart whenever suits (a clean shutdown hands
            its leases over, it takes them back after). Restarted, the node records the new serial alone and the rotation is done.
            --wait waits for that.
            """)

    @Option(help: "管理配置 / Admin config (JSON)") var config: String
    @Option(help: "CA 文件夹（含 ca.crt 与 ca.key）/ CA folder (ca.crt and ca.key)") var ca: String
    @Option(help: "节点 ID / Node id") var node: String
    @Option(help: "证书中的域名或 IP，可重复（默认登记的网状网络地址的主机）/ DNS names or IPs, repeatable (default: the host of its registered mesh address)") var host: [String] = []
    @Option(help: "输出文件夹 / Output folder") var out: String
    @Option(help: "有效天数 / Validity in days") var validityDays: Int = 365
    @Option(help: "与 --wait 一起：等待秒数 / With --wait: seconds to wait") var timeout: Int = 1800
    @Flag(help: "等待节点以新证书重启 / Wait for the node to restart with the new certificate") var wait = false

    func run() async throws {
        let target = try AdminTarget(path: config)
        let authority = try loadAuthority(ca)
        let cluster = ClusterAdmin(clusterID: target.config.clusterID, credentials: target.credentials, nodes: target.config.nodes, report: say)
        do {
            let view = try await cluster.leaderView()
            guard let member = view.members.first(where: { $0.id == node && !$0.evicted }) else {
                throw NodeError(.admin, zh: "集群中没有（未被驱逐的）节点 \(node)。", en: "the cluster has no (unevicted) node \(node).")
            }
            let hosts = host.isEmpty ? [NodeConfig.Endpoint.parse(member.address)?.host].compactMap { $0 } : host
            guard !hosts.isEmpty else {
                throw NodeError(.admin, zh: "无法从登记的地址 \(member.address) 得出主机名；请用 --host 给出。", en: "no host in the registered address \(member.address); give --host.")
            }
            let issued = try authority.issueNode(NodeCertificateRequest(nodeID: node, department: member.department, hosts: hosts,
                                                                        validity: TimeInterval(validityDays) * 86_400))
            try PKIFiles.writeIssued(issued, ca: authority, to: out, force: false)
            say("已签发新证书，序列号 \(issued.serial)，在 \(out) / new certificate issued, serial \(issued.serial), in \(out)")
            let rotation = CertRotation(node: node, serial: issued.serial)
            try await cluster.recordRotation(rotation, timeout: .seconds(120))
            let old = target.config.nodes.first { $0.id == node }?.serials ?? []
            if let entry = target.config.nodes.first(where: { $0.id == node }) {
                try AdminConfigFile.add(node: .init(id: node, host: entry.host, port: entry.port, serials: old.isEmpty ? [] : [issued.serial] + old), to: config)
            }
            say("下一步：把 \(out)/node.crt 与 node.key 复制到 \(node) 的 cert_dir 并重启它（systemctl restart clinicmesh-node）/ next: copy \(out)/node.crt and node.key into the cert_dir of \(node) and restart it (systemctl restart clinicmesh-node)")
            if wait { try await cluster.waitForRotation(rotation, timeout: .seconds(timeout)) }
        } catch let error as NodeError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        } catch let error as PKIError {
            FileHandle.standardError.write(Data("\(error.messageWithCause)\n".utf8))
            throw ExitCode.failure
        }
    }
}
