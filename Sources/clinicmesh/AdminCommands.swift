import ArgumentParser
import ClinicNode
import DemoAndBench
import AdminAPI
import Foundation
import Mesh

/// The nodes of an admin config, and one call to a node's admin API by node id.
struct AdminTarget {
    let config: AdminConfig
    let credentials: MeshCredentials

    init(path: String) throws {
        do {
            config = try AdminConfig.load(path: path)
            credentials = try MeshCredentials.load(directory: config.adminCertDir, kind: .admin)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    func node(_ id: String) throws -> AdminConfig.Node {
        guard let node = config.nodes.first(where: { $0.id == id }) else {
            FileHandle.standardError.write(Data("管理配置中没有节点 \(id) / the admin config lists no node \(id)\n".utf8))
            throw ExitCode.failure
        }
        return node
    }

    func call(_ id: String, _ command: String) async throws -> [UInt8] {
        let node = try node(id)
        return try await AdminClient.request(host: node.host, port: node.port, command: command, clusterID: config.clusterID,
                                             credentials: credentials, expectedNodeID: node.id, serials: node.serials ?? [])
    }
}

/// `clinicmesh book`: the booking primitive from the command line (through any node).
struct BookCommandLine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "book",
        abstract: "预约或取消一个号（经任一节点，需管理员证书）/ Book or cancel a slot through any node (admin certificate)")

    @Option(help: "管理配置 / Admin config (JSON)") var config: String
    @Option(help: "经由哪个节点 / Through which node (id)") var via: String
    @Option(help: "号源块（出诊，如 neike-wang-jianguo/2026-11-27/morning）/ Block (a session)") var block: String
    @Option(help: "号序（从 0 起）/ Slot number (from 0)") var slot: Int
    @Option(help: "也可接受的号序，可重复 / Other acceptable slots, repeatable") var alternative: [Int] = []
    @Option(help: "患者键 / Patient key") var patient: String
    @Option(help: "请求号（重试时用同一个）/ Request id (reuse it to retry)") var requestId: String = UUID().uuidString
    @Option(help: "取消这个请求号的预约 / Cancel the booking of this request id") var cancel: String?
    @Option(help: "就诊日期 yyyy-mm-dd，给出时按个人限额检查 / Visit date, applies the per-person quotas") var visitDate: String?
    @Option(help: "科室（与 --visit-date 一起）/ Department (with --visit-date)") var department: String?
    @Flag(help: "输出 JSON / Print JSON") var json = false

    func run() async throws {
        let target = try AdminTarget(path: config)
        let quota = visitDate.map { BookCommand.Quota(visitDate: $0, department: department ?? "") }
        let command = BookCommand(requestID: requestId, block: block, slot: slot, patient: patient,
                                  alternatives: alternative.isEmpty ? nil : alternative, releases: cancel, quota: quota)
        let bytes = try await target.call(via, "book " + String(decoding: try JSONEncoder().encode(command), as: UTF8.self))
        if json { print(String(decoding: bytes, as: UTF8.self)); return }
        guard let answer = try? JSONDecoder().decode(BookAnswer.self, from: Data(bytes)) else {
            print(String(decoding: bytes, as: UTF8.self))
            throw ExitCode.failure
        }
        switch answer.outcome {
        case "booked":
            let b = answer.booking!
            print("成功 / booked: 请求号 / request \(b.requestID), \(b.block) 号 / slot \(b.slot), 租约纪元 / epoch \(b.epoch) (经 / via \(answer.node))")
        default:
            print("未成功 / not booked [\(answer.code ?? "")]: \(answer.messageZh ?? "") / \(answer.messageEn ?? "")")
            throw ExitCode.failure
        }
    }
}

/// `clinicmesh bookings`: one node's view of leases and bookings.
struct BookingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bookings",
        abstract: "查看某节点所见的租约与预约 / Show the leases and bookings a node sees")

    @Option(help: "管理配置 / Admin config (JSON)") var config: String
    @Option(help: "节点 / Node id") var node: String
    @Flag(help: "输出 JSON / Print JSON") var json = false

    func run() async throws {
        let target = try AdminTarget(path: config)
        let bytes = try await target.call(node, "bookings")
        if json { print(String(decoding: bytes, as: UTF8.self)); return }
        let view = try JSONDecoder().decode(BookingsView.self, from: Data(bytes))
        let sessions = view.blocks.filter { !$0.block.hasPrefix("quota/") }
        print("节点 / node \(view.node): \(sessions.count) 个号源块 / blocks, \(view.bookings.filter { $0.status == "active" && !$0.requestID.hasPrefix("quota:") }.count) 个有效预约 / active bookings")
        for b in sessions.prefix(20) {
            print("  \(b.block)  持有 / holder \(b.holder ?? "-")  纪元 / epoch \(b.epoch)\(b.valid ? "" : "  （无有效租约 / no valid lease）")")
        }
        if sessions.count > 20 { print("  … 另 \(sessions.count - 20) 个 / \(sessions.count - 20) more") }
    }
}

/// `clinicmesh demo seed`: the demo data, each department written by its own node.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "演示集群的辅助命令 / Helpers for the demo cluster (Cluster/demo)",
        subcommands: [Seed.self])

    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "写入演示数据：各科室医生、出诊与号源、患者 / Write demo data: doctors, sessions and slots, patients")

        @Option(help: "管理配置 / Admin config (JSON)") var config: String
        @Option(help: "第一天 yyyy-mm-dd（默认明天；--rota 时默认今天）/ First day (default tomorrow; with --rota today)") var start: String?
        @Option(help: "天数 / Days") var days = 7
        @Flag(help: "出诊来自每周模板并作为排班发布（含今天，至少 3 周）/ Sessions from weekly templates, published as the rota (today included, at least 3 weeks)")
        var rota = false

        func run() async throws {
            let target = try AdminTarget(path: config)
            let first = start ?? {
                let f = DateFormatter()
                f.timeZone = TimeZone(identifier: "Asia/Shanghai")
                f.dateFormat = "yyyy-MM-dd"
                return f.string(from: Date().addingTimeInterval(rota ? 0 : 86_400))
            }()
            for node in target.config.nodes {
                let body = String(decoding: try JSONEncoder().encode(DemoSeedRequest(startDate: first, days: days, rota: rota)), as: UTF8.self)
                let bytes = try await target.call(node.id, "seed-demo " + body)
                guard let s = try? JSONDecoder().decode(DemoData.Summary.self, from: Data(bytes)) else {
                    print("\(node.id): \(String(decoding: bytes, as: UTF8.self))")
                    throw ExitCode.failure
                }
                print("\(node.id): 医生 / doctors +\(s.practitioners), 出诊 / sessions +\(s.schedules), 号 / slots +\(s.slots), 患者 / patients +\(s.patients), 号源块 / blocks \(s.blocks.count), 员工账户 / staff accounts +\(s.staff), 病历 / notes +\(s.visits), 模板 / templates +\(s.templates), 库存入库 / stock receipts +\(s.stock), 处方 / prescriptions +\(s.prescriptions)")
            }
        }
    }
}

/// `clinicmesh cluster`: membership commands, run from the admin's machine.
struct ClusterAdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "集群成员管理（需管理员证书）/ Cluster membership (admin certificate)",
        subcommands: [AddNode.self, PromoteNode.self, RotateCert.self, EvictNode.self])

    struct EvictNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "evict-node",
            abstract: "驱逐节点：提交后各节点立即关闭其连接并拒绝其证书，其租约转移 / Evict a node: once committed every node closes its connections and refuses its certificate; its leases move")

        @Option(help: "管理配置 / Admin config (JSON)") var config: String
        @Option(help: "经由哪个节点 / Through which node (id)") var via: String
        @Option(help: "要驱逐的节点 / The node to evict") var node: String

        func run() async throws {
            let target = try AdminTarget(path: config)
            let body = String(decoding: try JSONEncoder().encode(["node": node]), as: UTF8.self)
            let answer = String(decoding: try await target.call(via, "evict " + body), as: UTF8.self)
            guard answer.contains("proposed") else {
                print(answer)
                throw ExitCode.failure
            }
            print("已提交驱逐 \(node)，等待生效… / eviction of \(node) proposed, waiting for it to commit…")
            for _ in 0..<60 {
                let bytes = try await target.call(via, "status")
                if let s = try? JSONDecoder().decode(NodeStatus.self, from: Data(bytes)),
                   s.consensus?.members.first(where: { $0.id == node })?.evicted == true {
                    print("已驱逐 / evicted: \(node)")
                    return
                }
                try await Task.sleep(for: .seconds(1))
            }
            print("60 秒内未见驱逐生效（是否有 Leader？）/ the eviction did not commit within 60 s (is there a leader?)")
            throw ExitCode.failure
        }
    }
}
