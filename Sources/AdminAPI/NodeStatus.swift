import Foundation
import Services

/// What `status` on the admin API answers (JSON, the property names as keys).
public struct NodeStatus: Codable, Sendable, Hashable {
    package init(nodeID: String, department: String, clusterID: String, meshAddress: String, incarnation: UInt32, writesRefused: Bool, writesRefusedReason: String? = nil, versionVector: [String: UInt64], parkedChanges: Int, peers: [PeerStatus], uptimeS: Double, snapshotFrom: String? = nil, consensus: ConsensusStatus? = nil, schemaVersion: Int? = nil, attention: [String]? = nil, alerts: [StatusAlert]? = nil, disk: DiskSpace? = nil, reviewItems: Int? = nil, maxClockOffsetMs: Int64? = nil, metricsAddress: String? = nil) {
        self.nodeID = nodeID; self.department = department; self.clusterID = clusterID; self.meshAddress = meshAddress; self.incarnation = incarnation; self.writesRefused = writesRefused; self.writesRefusedReason = writesRefusedReason; self.versionVector = versionVector; self.parkedChanges = parkedChanges; self.peers = peers; self.uptimeS = uptimeS; self.snapshotFrom = snapshotFrom; self.consensus = consensus; self.schemaVersion = schemaVersion; self.attention = attention; self.alerts = alerts; self.disk = disk; self.reviewItems = reviewItems; self.maxClockOffsetMs = maxClockOffsetMs; self.metricsAddress = metricsAddress
    }

    public var nodeID: String
    public var department: String
    public var clusterID: String
    public var meshAddress: String
    public var incarnation: UInt32
    public var writesRefused: Bool
    /// Why writes are refused, Chinese first then English; nil when they are accepted.
    public var writesRefusedReason: String?
    /// "node#incarnation" to the highest sequence held.
    public var versionVector: [String: UInt64]
    public var parkedChanges: Int
    public var peers: [PeerStatus]
    public var uptimeS: Double
    /// The peer this node's database came from by snapshot, if it started that way.
    public var snapshotFrom: String?
    /// Raft and leases as this node sees them (nil from nodes older than the consensus layer).
    public var consensus: ConsensusStatus?
    /// The replicated schema version this node runs.
    public var schemaVersion: Int?
    /// Whatever needs a person, one sentence each, Chinese then English (empty: nothing).
    public var attention: [String]?
    /// The same items with a stable code each (`clock.off`, `disk.nearly_full`, ...), for scripts
    /// and for `clinicmesh status` to merge the nodes' items into one cluster list.
    public var alerts: [StatusAlert]?
    /// Free and total bytes of the file system holding the data folder.
    public var disk: DiskSpace?
    /// Record conflicts waiting for a person to review.
    public var reviewItems: Int?
    /// The clock-guard bound this node applies (`tuning.max_clock_offset_ms`).
    public var maxClockOffsetMs: Int64?
    /// Where `GET /metrics` listens, if the node serves metrics.
    public var metricsAddress: String?
}

/// One thing in a status that needs a person: a stable code and a sentence in both languages.
public struct StatusAlert: Codable, Sendable, Hashable {
    public var code: String
    /// The member it is about (nil: the node reporting it, or the whole cluster).
    public var node: String?
    public var zh: String
    public var en: String

    public init(_ code: String, node: String? = nil, zh: String, en: String) {
        self.code = code; self.node = node; self.zh = zh; self.en = en
    }

    public var text: String { "\(zh) / \(en)" }
}

public struct PeerStatus: Codable, Sendable, Hashable {
    package init(id: String, address: String, reachable: Bool, inboundSessions: Int, lagChanges: UInt64? = nil, clockOffsetMs: Int64? = nil, rttMs: Double? = nil, lastContactMsAgo: Int64? = nil, lastAntiEntropyMsAgo: Int64? = nil, changesSent: Int, batchesReceived: Int, lastError: String? = nil) {
        self.id = id; self.address = address; self.reachable = reachable; self.inboundSessions = inboundSessions; self.lagChanges = lagChanges; self.clockOffsetMs = clockOffsetMs; self.rttMs = rttMs; self.lastContactMsAgo = lastContactMsAgo; self.lastAntiEntropyMsAgo = lastAntiEntropyMsAgo; self.changesSent = changesSent; self.batchesReceived = batchesReceived; self.lastError = lastError
    }

    public var id: String
    public var address: String
    /// This node's outbound link to the peer is up (TLS and Hello done).
    public var reachable: Bool
    /// Inbound sessions from the peer currently open.
    public var inboundSessions: Int
    /// Writes (origin sequence numbers, any origin) this node holds that the peer has not
    /// acknowledged (nil: never heard back).
    public var lagChanges: UInt64?
    /// Peer clock minus this node's clock, from heartbeats (NTP style, RTT/2).
    public var clockOffsetMs: Int64?
    public var rttMs: Double?
    public var lastContactMsAgo: Int64?
    /// Since the peer last answered with its version vector (anti-entropy).
    public var lastAntiEntropyMsAgo: Int64?
    public var changesSent: Int
    public var batchesReceived: Int
    public var lastError: String?
}

/// What `health` answers.
public struct NodeHealth: Codable, Sendable, Hashable {
    package init(nodeID: String, ok: Bool, writesRefused: Bool, reachablePeers: Int, peers: Int) {
        self.nodeID = nodeID; self.ok = ok; self.writesRefused = writesRefused; self.reachablePeers = reachablePeers; self.peers = peers
    }

    public var nodeID: String
    public var ok: Bool
    public var writesRefused: Bool
    public var reachablePeers: Int
    public var peers: Int
}

package enum AdminJSON {
    package static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    package static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        return try decoder.decode(type, from: Data(bytes))
    }
}

/// The alerts one node's status calls for. Pure: the status in, sentences out.
public enum NodeAlerts {
    public static func of(_ s: NodeStatus, me: String) -> [StatusAlert] {
        var out: [StatusAlert] = []
        if s.writesRefused {
            let reason = s.writesRefusedReason ?? ""
            out.append(StatusAlert("store.writes_refused", node: me, zh: "本节点暂停写入（\(me)）：\(reason)", en: "this node refuses writes (\(me)): \(reason)"))
        }
        if let c = s.consensus {
            if let failure = c.failure {
                out.append(StatusAlert("consensus.failed", node: me,
                    zh: "节点 \(me) 的共识日志无法写入，已暂停参与共识（每秒重试，磁盘可写后自动恢复）：\(failure)",
                    en: "the consensus logs of node \(me) cannot be written; it paused taking part (retrying every second, it resumes by itself once the disk can be written): \(failure)"))
            }
            if c.leader == nil {
                out.append(StatusAlert("raft.no_leader", zh: "节点 \(me) 看不到 Raft Leader（多数投票成员不可达？）",
                                       en: "node \(me) sees no Raft leader (is a majority of the voters unreachable?)"))
            }
            if let m = c.members.first(where: { $0.id == me }) {
                if m.evicted {
                    out.append(StatusAlert("node.evicted", node: me,
                        zh: "节点 \(me) 已被驱逐出集群：其他节点拒绝它的连接；请停机，用新的节点 ID 重建（clinicmesh cluster add-node）",
                        en: "node \(me) was evicted: the others refuse it; stop it and rebuild under a new node id (clinicmesh cluster add-node)"))
                } else if !m.live {
                    out.append(StatusAlert("node.not_live", node: me, zh: "节点 \(me) 在集群中不在线，不持有租约",
                                           en: "node \(me) is not live in the cluster and holds no leases"))
                }
            }
            out += membershipAlerts(c.members)
        }
        for p in s.peers where !p.reachable {
            out.append(StatusAlert("peer.unreachable", node: p.id, zh: "节点 \(me) 连不上 \(p.id)（\(p.address)）\(p.lastError.map { "：\($0)" } ?? "")",
                                   en: "peer \(p.id) (\(p.address)) is unreachable from \(me)\(p.lastError.map { ": \($0)" } ?? "")"))
        }
        let bound = s.maxClockOffsetMs ?? 500
        for p in s.peers {
            guard let offset = p.clockOffsetMs, abs(offset) * 2 > bound else { continue }
            out.append(StatusAlert("clock.off", node: p.id,
                zh: "\(p.id) 的时钟比 \(me) \(offset > 0 ? "快" : "慢") \(abs(offset)) 毫秒（上限 \(bound) 毫秒，超过则停止写入）；请检查 NTP",
                en: "the clock of \(p.id) is \(abs(offset)) ms \(offset > 0 ? "ahead of" : "behind") \(me) (bound \(bound) ms, past it writes stop); check NTP"))
        }
        if let waiting = s.reviewItems, waiting > 0 {
            out.append(StatusAlert("review.waiting", node: me, zh: "节点 \(me) 有 \(waiting) 条记录冲突等待人工核对",
                                   en: "node \(me) has \(waiting) record conflicts waiting for a person to review"))
        }
        if s.parkedChanges > 0 {
            out.append(StatusAlert("store.parked", node: me, zh: "节点 \(me) 有 \(s.parkedChanges) 个变更暂存待合并（时钟超前或来自更新的版本）",
                                   en: "node \(me) has \(s.parkedChanges) changes parked (stamped ahead, or from a newer schema)"))
        }
        if let disk = s.disk, disk.nearlyFull {
            out.append(StatusAlert("disk.nearly_full", node: me,
                zh: "节点 \(me) 的数据盘将满：剩余 \(bytes(disk.freeBytes))（共 \(bytes(disk.sizeBytes))）；满了会拒绝写入，请清理或扩容",
                en: "the data disk of node \(me) is nearly full: \(bytes(disk.freeBytes)) free of \(bytes(disk.sizeBytes)); when full it refuses writes: free space or grow the disk"))
        }
        return out
    }

    /// Voter count and spread: odd, more than two, across departments.
    package static func membershipAlerts(_ members: [MemberStatus]) -> [StatusAlert] {
        let current = members.filter { !$0.evicted }
        let voters = current.filter { $0.role == "voter" }
        var out: [StatusAlert] = []
        if current.count == 2 || voters.count == 2 {
            out.append(StatusAlert("raft.survives_no_failure",
                zh: "集群只有两个\(voters.count == 2 ? "投票成员" : "节点")：任何一个故障都会让集群停止预约；请再加一个节点（clinicmesh cluster add-node）",
                en: "the cluster has only two \(voters.count == 2 ? "voters" : "nodes"): it survives no failure, any one down stops bookings; add a node (clinicmesh cluster add-node)"))
        } else if voters.count == 1 && current.count > 1 {
            out.append(StatusAlert("raft.single_voter", zh: "只有一个投票成员：它故障时集群停止预约",
                                   en: "there is a single voter: if it fails, bookings stop"))
        } else if voters.count > 2 && voters.count % 2 == 0 {
            out.append(StatusAlert("raft.even_voters", zh: "投票成员为偶数（\(voters.count) 个），多一个并不多容忍故障；请增减一个使其为奇数",
                                   en: "there is an even number of voters (\(voters.count)): the extra one tolerates no extra failure; add or remove one to make it odd"))
        }
        let voterDepartments = Set(voters.map(\.department))
        let spare = Set(current.filter { $0.role == "learner" }.map(\.department)).subtracting(voterDepartments).subtracting([""])
        if voters.count > 1, voterDepartments.count < voters.count, !spare.isEmpty {
            out.append(StatusAlert("raft.voters_not_spread",
                zh: "有多个投票成员在同一科室，而科室 \(spare.sorted().joined(separator: "、")) 没有投票成员；一个科室断电可能带走多数",
                en: "several voters share a department while \(spare.sorted().joined(separator: ", ")) has none; one department's outage could take a majority"))
        }
        return out
    }

    package static func bytes(_ n: Int64) -> String {
        if n >= 1 << 30 { return String(format: "%.1f GiB", Double(n) / Double(1 << 30)) }
        return "\(n >> 20) MiB"
    }
}

/// One line of the cluster table: a member as the nodes that answered see it.
public struct MemberReport: Codable, Sendable, Hashable {
    package init(id: String, department: String, role: String, leader: Bool, live: Bool? = nil, evicted: Bool, answered: Bool, reachableFrom: Int, reporters: Int, lagChanges: UInt64? = nil, clockOffsetMs: Int64? = nil, blocksHeld: Int? = nil, lastAntiEntropyMsAgo: Int64? = nil, schemaVersion: Int? = nil, writesRefused: Bool? = nil, diskFreeBytes: Int64? = nil) {
        self.id = id; self.department = department; self.role = role; self.leader = leader; self.live = live; self.evicted = evicted; self.answered = answered; self.reachableFrom = reachableFrom; self.reporters = reporters; self.lagChanges = lagChanges; self.clockOffsetMs = clockOffsetMs; self.blocksHeld = blocksHeld; self.lastAntiEntropyMsAgo = lastAntiEntropyMsAgo; self.schemaVersion = schemaVersion; self.writesRefused = writesRefused; self.diskFreeBytes = diskFreeBytes
    }

    public var id: String
    public var department: String
    /// voter / learner / none (not in the Raft configuration).
    public var role: String
    public var leader: Bool
    public var live: Bool?
    public var evicted: Bool
    /// Its admin API answered the admin tool.
    public var answered: Bool
    /// Peers with an open link to it, out of the peers that answered and know it.
    public var reachableFrom: Int
    public var reporters: Int
    /// Changes some answering node holds that this member lacks (from version vectors; for a
    /// member that did not answer, the largest lag its peers report). nil: unknown.
    public var lagChanges: UInt64?
    /// Its clock minus the others' (median of its peers' estimates).
    public var clockOffsetMs: Int64?
    public var blocksHeld: Int?
    /// Since its last completed version-vector exchange (anti-entropy), as fresh as anyone saw.
    public var lastAntiEntropyMsAgo: Int64?
    public var schemaVersion: Int?
    public var writesRefused: Bool?
    public var diskFreeBytes: Int64?

    package enum CodingKeys: String, CodingKey {
        case id, department, role, leader, live, evicted, answered, reachableFrom = "reachable_from", reporters
        case lagChanges = "lag_changes", clockOffsetMs = "clock_offset_ms", blocksHeld = "blocks_held"
        case lastAntiEntropyMsAgo = "last_anti_entropy_ms_ago", schemaVersion = "schema_version"
        case writesRefused = "writes_refused", diskFreeBytes = "disk_free_bytes"
    }
}

/// `clinicmesh status`: the whole cluster as the nodes that answered see it.
public struct ClusterReport: Codable, Sendable, Hashable {
    package init(clusterID: String, leader: String? = nil, term: UInt64, voters: Int, learners: Int, members: [MemberReport], alerts: [StatusAlert], attention: [String], nodes: [String: NodeStatus], unanswered: [String: String]) {
        self.clusterID = clusterID; self.leader = leader; self.term = term; self.voters = voters; self.learners = learners; self.members = members; self.alerts = alerts; self.attention = attention; self.nodes = nodes; self.unanswered = unanswered
    }

    public var clusterID: String
    public var leader: String?
    public var term: UInt64
    public var voters: Int
    public var learners: Int
    public var members: [MemberReport]
    /// Everything that needs a person, merged from every node (one item per code and member).
    public var alerts: [StatusAlert]
    public var attention: [String]
    /// Each node's own answer, as it gave it.
    public var nodes: [String: NodeStatus]
    /// Nodes that did not answer, with why.
    public var unanswered: [String: String]

    package enum CodingKeys: String, CodingKey {
        case clusterID = "cluster_id", leader, term, voters, learners, members, alerts, attention, nodes, unanswered
    }

    public static func build(clusterID: String, answers: [String: NodeStatus], unanswered: [String: String]) -> ClusterReport {
        // The freshest view of Raft: the highest term, then the highest commit index.
        let views = answers.values.compactMap(\.consensus)
        let best = views.max { ($0.term, $0.commitIndex) < ($1.term, $1.commitIndex) }
        let term = views.map(\.term).max() ?? 0
        // The leader as nodes of the latest term name it (a node that lost touch may name an old one).
        let leader = views.filter { $0.term == term }.compactMap(\.leader).first
        var ids = Set(answers.keys).union(unanswered.keys)
        for v in views { ids.formUnion(v.members.map(\.id)) }
        for s in answers.values { ids.formUnion(s.peers.map(\.id)) }

        // Per origin, the highest sequence any answering node holds.
        var newest: [String: UInt64] = [:]
        for s in answers.values { newest.merge(s.versionVector) { max($0, $1) } }

        var members: [MemberReport] = []
        for id in ids.sorted() {
            let own = answers[id]
            let m = best?.members.first { $0.id == id }
            let seenBy = answers.values.compactMap { s in s.peers.first { $0.id == id } }
            var lag: UInt64?
            if let own {
                lag = newest.reduce(UInt64(0)) { sum, e in sum + (e.value > (own.versionVector[e.key] ?? 0) ? e.value - (own.versionVector[e.key] ?? 0) : 0) }
            } else {
                lag = seenBy.compactMap(\.lagChanges).max()
            }
            let offsets = seenBy.compactMap(\.clockOffsetMs).sorted()
            let ownAntiEntropy = own?.peers.compactMap(\.lastAntiEntropyMsAgo).min()
            let peersAntiEntropy = seenBy.compactMap(\.lastAntiEntropyMsAgo).min()
            members.append(MemberReport(
                id: id, department: own?.department ?? m?.department ?? "", role: m?.role ?? "none", leader: id == leader,
                live: m?.live, evicted: m?.evicted ?? false, answered: own != nil,
                reachableFrom: seenBy.filter(\.reachable).count, reporters: seenBy.count, lagChanges: lag,
                clockOffsetMs: offsets.isEmpty ? nil : offsets[offsets.count / 2], blocksHeld: m?.blocksHeld,
                lastAntiEntropyMsAgo: [ownAntiEntropy, peersAntiEntropy].compactMap { $0 }.min(),
                schemaVersion: own?.schemaVersion, writesRefused: own?.writesRefused, diskFreeBytes: own?.disk?.freeBytes))
        }

        var alerts: [StatusAlert] = []
        for (id, why) in unanswered.sorted(by: { $0.key < $1.key }) {
            // The error is already in both languages: say it once.
            alerts.append(StatusAlert("admin.unanswered", node: id, zh: "节点 \(id) 的管理接口没有应答：\(why)",
                                      en: "node \(id) did not answer on its admin API (the reason is given just before)"))
        }
        // Merge the nodes' own alerts: one per code and member; unreachability once, with who sees it.
        var seen = Set<String>()
        var unreachable: [String: [String]] = [:]
        for id in answers.keys.sorted() {
            for a in answers[id]?.alerts ?? [] {
                if a.code == "peer.unreachable", let target = a.node {
                    unreachable[target, default: []].append(id)
                    continue
                }
                // Clocks are judged below, from every peer's estimate at once (A off from B is B off from A).
                if a.code == "clock.off" { continue }
                guard seen.insert("\(a.code)|\(a.node ?? "")").inserted else { continue }
                alerts.append(a)
            }
        }
        for (target, from) in unreachable.sorted(by: { $0.key < $1.key }) {
            alerts.append(StatusAlert("peer.unreachable", node: target,
                zh: "成员 \(target) 从 \(from.joined(separator: "、")) 连不上", en: "member \(target) is unreachable from \(from.joined(separator: ", "))"))
        }
        let bound = answers.values.compactMap(\.maxClockOffsetMs).min() ?? 500
        for m in members {
            guard let offset = m.clockOffsetMs, abs(offset) * 2 > bound else { continue }
            alerts.append(StatusAlert("clock.off", node: m.id,
                zh: "成员 \(m.id) 的时钟比其他成员\(offset > 0 ? "快" : "慢") \(abs(offset)) 毫秒（上限 \(bound) 毫秒，超过则停止写入）；请检查它的 NTP",
                en: "the clock of member \(m.id) is \(abs(offset)) ms \(offset > 0 ? "ahead of" : "behind") the others (bound \(bound) ms, past it writes stop); check its NTP"))
        }
        let current = members.filter { !$0.evicted }
        return ClusterReport(
            clusterID: clusterID, leader: leader, term: term,
            voters: current.filter { $0.role == "voter" }.count, learners: current.filter { $0.role == "learner" }.count,
            members: members, alerts: alerts, attention: alerts.map(\.text), nodes: answers, unanswered: unanswered)
    }
}

extension ClusterReport {
    /// The table for people: Chinese first, English beside it.
    public func table() -> String {
        var lines: [String] = []
        let voterIDs = members.filter { $0.role == "voter" && !$0.evicted }.map(\.id)
        lines.append("集群 / cluster: \(clusterID)   Leader: \(leader ?? "无 / none")   任期 / term: \(term)   "
            + "投票成员 / voters: \(voters)（\(voterIDs.joined(separator: ", "))）  学习者 / learners: \(learners)")
        let header = ["成员 member", "科室 department", "角色 role", "可达 reachable", "滞后 lag", "时钟 clock ms", "租约块 leases",
                      "上次反熵 anti-entropy", "数据版本 schema", "写入 writes", "磁盘剩余 disk free"]
        var rows = [header]
        for m in members {
            var role = m.role == "voter" ? "投票 voter" : m.role == "learner" ? "学习 learner" : "无 none"
            if m.leader { role += " ★leader" }
            if m.evicted { role = "已驱逐 evicted" }
            let reach = (m.answered ? "管理 admin ✓" : "管理 admin ✗") + (m.reporters > 0 ? "  对端 peers \(m.reachableFrom)/\(m.reporters)" : "")
            rows.append([
                m.id, m.department.isEmpty ? "-" : m.department, role, reach,
                m.lagChanges.map(String.init) ?? "-",
                m.clockOffsetMs.map { ($0 > 0 ? "+" : "") + String($0) } ?? "-",
                m.blocksHeld.map(String.init) ?? "-",
                m.lastAntiEntropyMsAgo.map { String(format: "%.1f s", Double($0) / 1000) } ?? "-",
                m.schemaVersion.map(String.init) ?? "-",
                m.writesRefused.map { $0 ? "暂停 REFUSED" : "正常 ok" } ?? "-",
                m.diskFreeBytes.map(NodeAlerts.bytes) ?? "-",
            ])
        }
        lines += Self.align(rows)
        if alerts.isEmpty {
            lines.append("无需处理的事项 / nothing needs attention")
        } else {
            lines.append("需要处理 / needs attention:")
            for a in alerts { lines.append("  ⚠ " + a.text) }
        }
        return lines.joined(separator: "\n")
    }

    /// Pads columns by display width (CJK characters take two cells).
    public static func align(_ rows: [[String]]) -> [String] {
        func width(_ text: String) -> Int { text.unicodeScalars.reduce(0) { $0 + ($1.value > 0x2E80 ? 2 : 1) } }
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { i in rows.map { i < $0.count ? width($0[i]) : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in cell + String(repeating: " ", count: widths[i] - width(cell)) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
    }
}

/// Free and total bytes of the file system holding a folder.
public struct DiskSpace: Codable, Sendable, Hashable {
    package init(freeBytes: Int64, sizeBytes: Int64) {
        self.freeBytes = freeBytes; self.sizeBytes = sizeBytes
    }

    public var freeBytes: Int64
    public var sizeBytes: Int64

    package enum CodingKeys: String, CodingKey { case freeBytes = "free_bytes", sizeBytes = "size_bytes" }

    public static func of(_ path: String) -> DiskSpace? {
        guard let attributes = try? FileManager.default.attributesOfFileSystem(forPath: path),
              let free = (attributes[.systemFreeSize] as? NSNumber)?.int64Value,
              let size = (attributes[.systemSize] as? NSNumber)?.int64Value, size > 0 else { return nil }
        return DiskSpace(freeBytes: free, sizeBytes: size)
    }

    /// Nearly full: under 10 % or under 1 GiB free (the node then still has room to refuse writes
    /// cleanly and to take a snapshot for a peer).
    public var nearlyFull: Bool { freeBytes < sizeBytes / 10 || freeBytes < 1 << 30 }
}
