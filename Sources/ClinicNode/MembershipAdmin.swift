import Consensus
import Services
import Foundation
import Mesh
import PKI

// Membership changes run from the admin's machine (`clinicmesh cluster add-node`, `promote`):
// the admin API commands the leader carries out, the view the admin tool follows a new node's
// catch-up with, and the links every node opens to members that joined after it started.

/// `add-node {json}`: a node the admin has issued a certificate for, to record and add as a learner.
public struct MemberAddRequest: Codable, Sendable, Hashable {
    public var node: String
    /// Its mesh address, `host:port`, as its config will say.
    public var address: String
    public var department: String
    /// The serial of the certificate the admin issued for it (hex).
    public var serial: String

    public init(node: String, address: String, department: String, serial: String) {
        self.node = node; self.address = address; self.department = department; self.serial = serial
    }
}

/// What the leader answers to `add-node` and `promote`. `state` is one of: `member` / `voter`
/// (done), `registering`, `adding`, `promoting`, `waiting` (another change is under way: ask
/// again), `catching_up` (the learner is behind: ask again), `not_leader` (ask `leader`),
/// `refused` (the request is wrong: read the message).
public struct MembershipAnswer: Codable, Sendable, Hashable {
    public var state: String
    public var leader: String?
    public var messageZh: String?
    public var messageEn: String?

    public init(_ state: String, leader: String? = nil, zh: String? = nil, en: String? = nil) {
        self.state = state; self.leader = leader; messageZh = zh; messageEn = en
    }

    enum CodingKeys: String, CodingKey { case state, leader, messageZh = "message_zh", messageEn = "message_en" }
}

public struct MembershipEntry: Codable, Sendable, Hashable {
    public var id: String
    /// voter / learner / none (recorded, not yet in the Raft configuration).
    public var role: String
    public var department: String
    public var address: String
    public var serial: String
    public var evicted: Bool
    public var live: Bool
    /// On the leader: the last log index this member is known to hold.
    public var matchIndex: UInt64?

    enum CodingKeys: String, CodingKey { case id, role, department, address, serial, evicted, live, matchIndex = "match_index" }
}

/// `membership`: the Raft membership as this node knows it, with catch-up progress on the leader.
public struct RaftMembership: Codable, Sendable, Hashable {
    public var node: String
    public var leader: String?
    public var term: UInt64
    public var lastIndex: UInt64
    public var commitIndex: UInt64
    public var members: [MembershipEntry]

    enum CodingKeys: String, CodingKey { case node, leader, term, lastIndex = "last_index", commitIndex = "commit_index", members }
}

/// Which learners to promote, in order, so that the voters number the largest odd count the
/// cluster allows (at most 5) and come from as many departments as possible. Pure.
public enum VoterPolicy {
    public static func targetVoters(members: Int) -> Int {
        let n = min(5, members)
        return n % 2 == 0 ? max(1, n - 1) : n
    }

    /// `prefer`: the node just added, promoted first among equals.
    public static func promotions(_ members: [MembershipEntry], prefer: String? = nil) -> [String] {
        let current = members.filter { !$0.evicted && $0.role != "none" }
        var voters = current.filter { $0.role == "voter" }
        var learners = current.filter { $0.role == "learner" }
        let target = targetVoters(members: current.count)
        var out: [String] = []
        while voters.count < target, !learners.isEmpty {
            let departments = Set(voters.map(\.department))
            // A department without a voter first, then the preferred node, then by id.
            learners.sort { a, b in
                let ka = (departments.contains(a.department) ? 1 : 0, a.id == prefer ? 0 : 1, a.id)
                let kb = (departments.contains(b.department) ? 1 : 0, b.id == prefer ? 0 : 1, b.id)
                return ka < kb
            }
            let next = learners.removeFirst()
            out.append(next.id)
            voters.append(next)
        }
        return out
    }
}

extension NodeConfig.Endpoint {
    /// `host:port` (the last colon splits, so a bare IPv6 address works too); nil if it does not parse.
    public static func parse(_ text: String) -> NodeConfig.Endpoint? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { return nil }
        return .init(host: host, port: port)
    }
}

extension MeshNode {
    /// The membership admin commands; nil for any other command.
    func membershipCommand(_ command: String, _ argument: Data) throws -> [UInt8]? {
        switch command {
        case "membership":
            return try AdminJSON.encode(membershipView())
        case "add-node":
            return try AdminJSON.encode(addNode(try JSONDecoder().decode(MemberAddRequest.self, from: argument)))
        case "rotate-cert":
            return try AdminJSON.encode(rotateCert(try JSONDecoder().decode(CertRotation.self, from: argument)))
        case "promote":
            let request = try JSONDecoder().decode([String: String].self, from: argument)
            guard let node = request["node"], !node.isEmpty else {
                return try AdminJSON.encode(MembershipAnswer("refused", zh: "promote 需要 {\"node\": \"<节点 ID>\"}", en: "promote needs {\"node\": \"<node id>\"}"))
            }
            return try AdminJSON.encode(promote(node))
        default:
            return nil
        }
    }

    public func membershipView() -> RaftMembership {
        consensus.inspect { c in
            let ids = Set(c.cluster.members.keys).union(c.cluster.raftConfig.members).sorted()
            let members = ids.map { n in
                let m = c.cluster.members[n]
                return MembershipEntry(id: n.rawValue, role: c.cluster.role(of: n).rawValue, department: m?.department ?? "",
                                       address: m?.address ?? "", serial: m?.certificateSerial ?? "", evicted: m?.evicted ?? false,
                                       live: c.cluster.isLive(n), matchIndex: n == c.id ? c.raft.lastIndex : c.raft.matchIndex(of: n))
            }
            return RaftMembership(node: config.nodeID, leader: c.raft.leader?.rawValue, term: c.raft.term, lastIndex: c.raft.lastIndex,
                                  commitIndex: c.raft.commitIndex, members: members)
        }
    }

    /// Records the new node (address, department, certificate serial: handshakes accept it from
    /// then on), then adds it as a learner. One step per call; the admin tool calls again until `member`.
    public func addNode(_ r: MemberAddRequest) -> MembershipAnswer {
        guard !r.node.isEmpty, r.node.utf8.count <= 64, !r.node.contains(where: { $0.isWhitespace || $0 == "\"" }) else {
            return MembershipAnswer("refused", zh: "节点 ID 须为 1 到 64 字节且不含空白。", en: "the node id must be 1 to 64 bytes without spaces.")
        }
        guard NodeConfig.Endpoint.parse(r.address) != nil else {
            return MembershipAnswer("refused", zh: "地址 \(r.address) 不是 host:port。", en: "the address \(r.address) is not host:port.")
        }
        guard !r.department.isEmpty, SerialFormat.normalise(r.serial) != nil else {
            return MembershipAnswer("refused", zh: "需要科室与十六进制的证书序列号。", en: "a department and a hex certificate serial are required.")
        }
        let me = NodeID(r.node)
        let (leader, existing, inConfig) = consensus.inspect { c in
            (c.isLeader ? nil : (c.raft.leader?.rawValue ?? "") as String?, c.cluster.members[me], c.cluster.raftConfig.isMember(me))
        }
        if let leader { return notLeader(leader) }
        if existing?.evicted == true {
            return MembershipAnswer("refused", zh: "节点 ID \(r.node) 已被驱逐，不能再用；请换一个新的节点 ID。",
                                    en: "the node id \(r.node) was evicted and is never reused; choose a new node id.")
        }
        let info = MemberInfo(node: me, address: r.address, department: r.department, certificateSerial: r.serial)
        if existing != info && !inConfig {
            return answer(consensus.proposeHere(.upsertMember(info)), doing: "registering")
        }
        if inConfig { return MembershipAnswer("member") }
        return answer(consensus.proposeConfigChange(ConfigChange(.addLearner, me)), doing: "adding")
    }

    /// Promotes a learner to voter once the leader sees it caught up.
    public func promote(_ node: String) -> MembershipAnswer {
        let id = NodeID(node)
        let (leader, role) = consensus.inspect { c in (c.isLeader ? nil : (c.raft.leader?.rawValue ?? "") as String?, c.cluster.role(of: id)) }
        if let leader { return notLeader(leader) }
        switch role {
        case .voter: return MembershipAnswer("voter")
        case .none:
            return MembershipAnswer("refused", zh: "\(node) 不是学习者，先用 add-node 加入。", en: "\(node) is not a learner; add it with add-node first.")
        case .learner: return answer(consensus.proposeConfigChange(ConfigChange(.promote, id)), doing: "promoting")
        }
    }

    private func notLeader(_ leader: String) -> MembershipAnswer {
        MembershipAnswer("not_leader", leader: leader.isEmpty ? nil : leader,
                         zh: leader.isEmpty ? "现在没有 Leader，请稍后再试。" : "请向 Leader \(leader) 发送。",
                         en: leader.isEmpty ? "there is no leader right now; try again shortly." : "send it to the leader, \(leader).")
    }

    private func answer(_ r: Result<LogIndex, ProposeError>, doing state: String) -> MembershipAnswer {
        switch r {
        case .success: return MembershipAnswer(state)
        case .failure(.notLeader(let l)): return notLeader(l?.rawValue ?? "")
        case .failure(.learnerNotCaughtUp): return MembershipAnswer("catching_up")
        case .failure(.configChangePending), .failure(.transferInProgress): return MembershipAnswer("waiting")
        case .failure(.invalidConfigChange):
            return MembershipAnswer("refused", zh: "这一成员变更无效（可能已经生效）。", en: "this membership change is not valid (it may have happened already).")
        }
    }

    // MARK: Links to members that joined later

    /// Members the replicated membership names that this node has no link to yet: it dials them
    /// like the peers of its config, at the address each registered.
    func adoptNewMembers() -> [String] {
        let members = consensus.inspect { c in
            c.cluster.members.values.filter { !$0.evicted && $0.node != c.id }.map { ($0.node.rawValue, $0.address) }
        }
        return runtime.withLock { r in
            var added: [String] = []
            for (id, address) in members where r.peers[id] == nil {
                guard let endpoint = NodeConfig.Endpoint.parse(address) else { continue }
                r.peers[id] = PeerRuntime(address: endpoint)
                added.append(id)
            }
            return added
        }.map { id in
            logger.notice("新成员，开始连接 / new member, linking to it", metadata: ["mesh.peer": "\(id)"])
            return id
        }
    }
}

/// A member's recorded certificate serials: one, or "NEW,OLD" while a rotation is under way
/// (`clinicmesh cluster rotate-cert` records the new one; the node, restarted with it, drops the old).
public enum MemberSerials {
    public static func list(_ recorded: String) -> [String] {
        recorded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func same(_ a: String, _ b: String) -> Bool {
        guard let x = SerialFormat.normalise(a), let y = SerialFormat.normalise(b) else { return false }
        return x == y
    }

    /// Whether a node registering itself should overwrite `recorded`: yes unless a rotation names
    /// its certificate as the old one (it still runs it: wait for the restart with the new one).
    /// Restarted with the new one, it records that alone, which ends the rotation.
    static func shouldRegister(own: MemberInfo, recorded: MemberInfo) -> Bool {
        let serials = list(recorded.certificateSerial)
        guard serials.count > 1, let newest = serials.first else { return true }
        if same(newest, own.certificateSerial) { return true }
        return !serials.dropFirst().contains { same($0, own.certificateSerial) }
    }
}

/// `rotate-cert {json}`: the serial of a node's new certificate, to accept beside the old one.
public struct CertRotation: Codable, Sendable, Hashable {
    public var node: String
    public var serial: String
    public init(node: String, serial: String) { self.node = node; self.serial = serial }
}

extension MeshNode {
    /// Records `serial` as the node's new certificate, keeping the one in use accepted until the
    /// node restarts with the new one (then it records the new one alone). Leader only.
    public func rotateCert(_ r: CertRotation) -> MembershipAnswer {
        guard let newSerial = SerialFormat.normalise(r.serial) else {
            return MembershipAnswer("refused", zh: "证书序列号 \(r.serial) 不是十六进制。", en: "the certificate serial \(r.serial) is not hex.")
        }
        let id = NodeID(r.node)
        let (leader, existing) = consensus.inspect { c in (c.isLeader ? nil : (c.raft.leader?.rawValue ?? "") as String?, c.cluster.members[id]) }
        if let leader {
            return MembershipAnswer("not_leader", leader: leader.isEmpty ? nil : leader,
                                    zh: leader.isEmpty ? "现在没有 Leader，请稍后再试。" : "请向 Leader \(leader) 发送。",
                                    en: leader.isEmpty ? "there is no leader right now; try again shortly." : "send it to the leader, \(leader).")
        }
        guard var member = existing, !member.evicted else {
            return MembershipAnswer("refused", zh: "集群中没有（未被驱逐的）节点 \(r.node)。", en: "the cluster has no (unevicted) node \(r.node).")
        }
        let serials = MemberSerials.list(member.certificateSerial)
        if let first = serials.first, MemberSerials.same(first, newSerial) { return MembershipAnswer("recorded") }
        // The one in use is the newest recorded; an older pending one is replaced.
        let inUse = serials.count > 1 ? serials[1] : (serials.first ?? "")
        member.certificateSerial = [newSerial, inUse].filter { !$0.isEmpty }.joined(separator: ",")
        switch consensus.proposeHere(.upsertMember(member)) {
        case .success: return MembershipAnswer("recording")
        case .failure: return MembershipAnswer("waiting")
        }
    }
}
