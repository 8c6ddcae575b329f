import Foundation
import Services
import Mesh
import PKI

/// The admin's side of membership changes (`clinicmesh cluster add-node` / `promote`), over the
/// nodes' admin APIs: find the leader, record and add a node as a learner, follow its catch-up,
/// promote learners while the voter count calls for it. Shared by the CLI and the tests.
public struct ClusterAdmin: Sendable {
    public let clusterID: String
    public let credentials: MeshCredentials
    /// Admin endpoints, by node id (the admin config's nodes, plus any added on the way).
    public var nodes: [AdminConfig.Node]
    /// A line of progress for the person watching (Chinese / English).
    public var report: @Sendable (String) -> Void

    public init(clusterID: String, credentials: MeshCredentials, nodes: [AdminConfig.Node], report: @escaping @Sendable (String) -> Void) {
        self.clusterID = clusterID; self.credentials = credentials; self.nodes = nodes; self.report = report
    }

    public func call(_ id: String, _ command: String) async throws -> [UInt8] {
        guard let node = nodes.first(where: { $0.id == id }) else {
            throw NodeError(.admin, zh: "管理配置中没有节点 \(id) 的管理地址；请把它加到管理配置的 nodes 中。",
                            en: "the admin config has no admin address for node \(id); add it to the admin config's nodes.")
        }
        return try await AdminClient.request(host: node.host, port: node.port, command: command, clusterID: clusterID,
                                             credentials: credentials, expectedNodeID: node.id, serials: node.serials ?? [])
    }

    package func command(_ name: String, _ argument: some Encodable) throws -> String {
        name + " " + String(decoding: try AdminJSON.encode(argument), as: UTF8.self)
    }

    /// The membership as the leader sees it (catch-up progress is only known there).
    public func leaderView() async throws -> RaftMembership {
        var named: String?
        var failures: [String] = []
        for node in nodes {
            do {
                let view = try AdminJSON.decode(RaftMembership.self, try await call(node.id, "membership"))
                if view.leader == view.node { return view }
                if let leader = view.leader { named = leader; break }
            } catch {
                failures.append("\(node.id): \(error)")
            }
        }
        // A leader named by a node may be one just lost (the others have not elected yet) or one
        // this admin config does not list: "no leader found" then, which a caller may wait out.
        if let named {
            do {
                let view = try AdminJSON.decode(RaftMembership.self, try await call(named, "membership"))
                if view.leader == view.node { return view }
            } catch {
                failures.append("\(named): \(error)")
            }
        }
        throw NodeError(.admin, zh: "找不到 Leader（\(failures.joined(separator: "；"))）；请检查集群状态（clinicmesh status）后重试。",
                        en: "no leader found (\(failures.joined(separator: "; "))); check the cluster (clinicmesh status) and try again.")
    }

    /// `leaderView()`, asked again until `deadline` while no leader can be found (an election
    /// under way after the lost node led).
    func leaderView(until deadline: ContinuousClock.Instant) async throws -> RaftMembership {
        while true {
            do { return try await leaderView() } catch where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Sends `command` to the leader until it answers one of `done`; `waiting`, `catching_up`,
    /// `not_leader` and unreachable nodes are retried until `deadline`.
    package func untilDone(_ command: String, done: Set<String>, deadline: ContinuousClock.Instant, what: String) async throws -> MembershipAnswer {
        var last = ""
        while ContinuousClock.now < deadline {
            do {
                let leader = try await leaderView()
                let answer = try AdminJSON.decode(MembershipAnswer.self, try await call(leader.node, command))
                if done.contains(answer.state) { return answer }
                if answer.state == "refused" {
                    throw NodeError(.admin, zh: "\(what)被拒绝：\(answer.messageZh ?? "")", en: "\(what) refused: \(answer.messageEn ?? "")")
                }
                last = answer.state
            } catch let error as NodeError where error.zh.contains("被拒绝") {
                throw error
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw NodeError(.admin, zh: "\(what)在时限内未完成（最后状态：\(last)）；可以重新运行同一命令继续。",
                        en: "\(what) did not finish in time (last state: \(last)); run the same command again to continue.")
    }

    /// Records the node (its certificate serial is accepted from then on) and adds it as a learner.
    public func register(_ request: MemberAddRequest, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        report("登记新节点 \(request.node)（\(request.department)，\(request.address)）为学习者… / recording \(request.node) (\(request.department), \(request.address)) as a learner…")
        _ = try await untilDone(try command("add-node", request), done: ["member"], deadline: deadline, what: "add-node")
        report("已加入 Raft 成员表（学习者）/ in the Raft membership (learner)")
    }

    /// Follows the new node until it holds (nearly) everything the leader holds: the snapshot it
    /// started from, the change stream, the Raft log. `newNode` is its admin endpoint.
    public func waitForCatchUp(_ newNode: AdminConfig.Node, maxLagChanges: UInt64, timeout: Duration) async throws {
        var admin = self
        admin.nodes.append(newNode)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var lastLine = ""
        while ContinuousClock.now < deadline {
            var line = "等待新节点启动 / waiting for the new node to start"
            if let view = try? await leaderView(),
               let leaderStatus = try? AdminJSON.decode(NodeStatus.self, try await admin.call(view.node, "status")),
               let own = try? AdminJSON.decode(NodeStatus.self, try await admin.call(newNode.id, "status")) {
                let total = leaderStatus.versionVector.values.reduce(0, +)
                let lag = leaderStatus.versionVector.reduce(UInt64(0)) { sum, e in
                    sum + (e.value > (own.versionVector[e.key] ?? 0) ? e.value - (own.versionVector[e.key] ?? 0) : 0)
                }
                let match = view.members.first { $0.id == newNode.id }?.matchIndex ?? 0
                let percent = total == 0 ? 100 : Double(total - min(lag, total)) * 100 / Double(total)
                let snapshot = own.snapshotFrom.map { "快照来自 / snapshot from \($0)" } ?? "无快照 / no snapshot"
                line = "追赶中 / catching up: \(snapshot)；变更 / changes \(total - min(lag, total))/\(total) ("
                    + String(format: "%.1f", percent) + "%)；Raft 日志 / log \(match)/\(view.lastIndex)"
                if lag <= maxLagChanges, match + 16 >= view.lastIndex {
                    report(line)
                    report("新节点已追上 / the new node has caught up")
                    return
                }
            }
            if line != lastLine { report(line); lastLine = line }
            try await Task.sleep(for: .seconds(1))
        }
        throw NodeError(.admin, zh: "新节点 \(newNode.id) 在时限内没有追上（是否已启动？地址 \(newNode.host):\(newNode.port)）；启动后用 clinicmesh cluster promote 继续。",
                        en: "the new node \(newNode.id) did not catch up in time (is it running? admin address \(newNode.host):\(newNode.port)); once it runs, continue with clinicmesh cluster promote.")
    }

    /// Promotes learners, one committed change at a time, while the voter count calls for it
    /// (odd, at most 5, across departments). Returns the nodes promoted.
    @discardableResult
    public func promoteAsNeeded(prefer: String?, timeout: Duration) async throws -> [String] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let plan = VoterPolicy.promotions(try await leaderView().members, prefer: prefer)
        if plan.isEmpty { report("投票成员数已合适，无需提升 / the voter count is right, nobody to promote") }
        for id in plan {
            report("提升 \(id) 为投票成员… / promoting \(id) to voter…")
            _ = try await untilDone(try command("promote", ["node": id]), done: ["voter"], deadline: deadline, what: "promote \(id)")
            report("\(id) 已是投票成员 / \(id) is a voter")
        }
        return plan
    }

    /// Records a node's new certificate serial beside the one it runs (both accepted until it
    /// restarts with the new one). Returns once the leader has committed it.
    public func recordRotation(_ rotation: CertRotation, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        report("登记 \(rotation.node) 的新证书序列号 \(rotation.serial)… / recording the new certificate serial \(rotation.serial) of \(rotation.node)…")
        _ = try await untilDone(try command("rotate-cert", rotation), done: ["recorded"], deadline: deadline, what: "rotate-cert")
        report("新旧证书现在都被接受 / both the new and the old certificate are accepted now")
    }

    /// Waits until the node runs its new certificate (it recorded that serial alone).
    public func waitForRotation(_ rotation: CertRotation, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let view = try? await leaderView(), let m = view.members.first(where: { $0.id == rotation.node }),
               MemberSerials.list(m.serial).count == 1, MemberSerials.same(m.serial, rotation.serial) {
                report("\(rotation.node) 已使用新证书，旧证书不再登记 / \(rotation.node) runs the new certificate; the old one is no longer recorded")
                return
            }
            try await Task.sleep(for: .seconds(1))
        }
        throw NodeError(.admin, zh: "\(rotation.node) 在时限内没有以新证书重启；新旧证书仍都被接受，重启后自动完成。",
                        en: "\(rotation.node) did not restart with the new certificate in time; both stay accepted, and the rotation completes when it restarts.")
    }

    /// Evicts a lost node (rebuilding it under a new id): it must belong to `department`. Returns
    /// once the eviction has committed; from then on every node refuses it and its leases move.
    public func evictLost(_ node: String, department: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let view = try await leaderView(until: deadline)
        guard let member = view.members.first(where: { $0.id == node }) else {
            throw NodeError(.admin, zh: "集群中没有要替换的节点 \(node)。", en: "the cluster has no node \(node) to replace.")
        }
        if member.evicted { report("\(node) 已被驱逐 / \(node) is already evicted"); return }
        guard member.department == department else {
            throw NodeError(.admin, zh: "\(node) 属于 \(member.department)，不是 \(department)；重建请用原科室。",
                            en: "\(node) belongs to \(member.department), not \(department); rebuild it in its own department.")
        }
        report("驱逐丢失的节点 \(node)… / evicting the lost node \(node)…")
        _ = try await call(view.node, try command("evict", ["node": node]))
        while ContinuousClock.now < deadline {
            if try await leaderView().members.first(where: { $0.id == node })?.evicted == true {
                report("已驱逐 \(node) / \(node) evicted")
                return
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw NodeError(.admin, zh: "时限内未见驱逐 \(node) 生效（是否有 Leader？）。", en: "the eviction of \(node) did not commit in time (is there a leader?).")
    }

    /// What the membership looks like now, and its warnings, in words.
    public func summary() async throws -> [String] {
        let view = try await leaderView()
        let current = view.members.filter { !$0.evicted && $0.role != "none" }
        let voters = current.filter { $0.role == "voter" }
        var lines = ["成员 / members: " + current.map { "\($0.id)[\($0.role), \($0.department)]" }.joined(separator: " "),
                     "投票成员 / voters: \(voters.count)，Leader: \(view.leader ?? "-")"]
        let asStatus = current.map { MemberStatus(id: $0.id, role: $0.role, department: $0.department, address: $0.address, live: $0.live, evicted: false, blocksHeld: 0) }
        for alert in NodeAlerts.membershipAlerts(asStatus) { lines.append("⚠ " + alert.text) }
        return lines
    }
}

