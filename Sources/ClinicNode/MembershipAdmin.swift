import Consensus
import Services
import AdminAPI
import Foundation
import Mesh
import PKI

// Membership changes run from the admin's machine (`clinicmesh cluster add-node`, `promote`):
// the admin API commands the leader carries out, the view the admin tool follows a new node's
// catch-up with, and the links every node opens to members that joined after it started.

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
    public func membershipView() -> RaftMembership {
        let c = consensus.view
        let ids = Set(c.cluster.members.keys).union(c.cluster.raftConfig.members).sorted()
        let members = ids.map { n in
            let m = c.cluster.members[n]
            return MembershipEntry(id: n.rawValue, role: c.cluster.role(of: n).rawValue, department: m?.department ?? "",
                                   address: m?.address ?? "", serial: m?.certificateSerial ?? "", evicted: m?.evicted ?? false,
                                   live: c.cluster.isLive(n), matchIndex: n == c.id ? c.lastIndex : c.matchIndex(of: n))
        }
        return RaftMembership(node: config.nodeID, leader: c.leader?.rawValue, term: c.term, lastIndex: c.lastIndex,
                              commitIndex: c.commitIndex, members: members)
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
        let c = consensus.view
        let (leader, existing, inConfig) = (c.isLeader ? nil : (c.leader?.rawValue ?? "") as String?, c.cluster.members[me], c.cluster.raftConfig.isMember(me))
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
        let c = consensus.view
        let (leader, role) = (c.isLeader ? nil : (c.leader?.rawValue ?? "") as String?, c.cluster.role(of: id))
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
        let c = consensus.view
        let members = c.cluster.members.values.filter { !$0.evicted && $0.node != c.id }.map { ($0.node.rawValue, $0.address) }
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

extension MeshNode {
    /// Records `serial` as the node's new certificate, keeping the one in use accepted until the
    /// node restarts with the new one (then it records the new one alone). Leader only.
    public func rotateCert(_ r: CertRotation) -> MembershipAnswer {
        guard let newSerial = SerialFormat.normalise(r.serial) else {
            return MembershipAnswer("refused", zh: "证书序列号 \(r.serial) 不是十六进制。", en: "the certificate serial \(r.serial) is not hex.")
        }
        let id = NodeID(r.node)
        let c = consensus.view
        let (leader, existing) = (c.isLeader ? nil : (c.leader?.rawValue ?? "") as String?, c.cluster.members[id])
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
