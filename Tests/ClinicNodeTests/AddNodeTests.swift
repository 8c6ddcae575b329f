@testable import ClinicNode
@testable import AdminAPI
@testable import Services
import Drills
import Foundation
import Mesh
import PKI
import ReplicatedCore
import ReplicatedStore
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

final class Lines: Sendable {
    private let lines = NIOLockedCount()
    func add(_ line: String) { lines.add(1) }
    var count: Int { lines.get() }
}

@Suite("cluster add-node from the admin's machine", .serialized, .timeLimit(.minutes(5)))
struct AddNodeTests {
    @Test("a two-node cluster warns; add-node issues the certificate, adds a learner that snapshots and catches up, then promotes to three voters across departments")
    func addNodeToTwoNodeCluster() async throws {
        var files = try TestClusterFiles(ids: ["neike", "waike"])
        defer { files.remove() }
        files.configs["waike"]!.department = "外科"
        let nodes = try await startCluster(files)
        var all = nodes
        do {
            let neike = nodes["neike"]!.node, waike = nodes["waike"]!.node
            let admin = try files.credentials("admin", kind: .admin)
            // Something to carry over: rows from both departments.
            try neike.write { w in _ = try w.insert("department", key: "neike", values: ["name": .text("内科")]) }
            try waike.write { w in _ = try w.insert("department", key: "waike", values: ["name": .text("外科")]) }
            #expect(await eventually { try neike.replica.liveRow("department", key: "waike") != nil && neike.consensusStatus().leader != nil })

            // Two nodes: status says it survives no failure.
            #expect(await eventually { try neike.status().alerts?.contains { $0.code == "raft.survives_no_failure" } == true })

            let progress = Lines()
            var cluster = ClusterAdmin(clusterID: files.clusterID, credentials: admin, nodes: [
                .init(id: "neike", host: "127.0.0.1", port: neike.adminPort), .init(id: "waike", host: "127.0.0.1", port: waike.adminPort),
            ], report: { progress.add($0) })
            // Every node has registered its own address, department and serial.
            #expect(await eventually { try await cluster.leaderView().members.allSatisfy { !$0.address.isEmpty && !$0.serial.isEmpty } })
            var view = try await cluster.leaderView()
            #expect(view.members.filter { $0.role == "voter" }.map(\.id) == ["neike"], "two nodes bootstrap with one voter")

            // The new node's files, made where the CA key is; its ports chosen up front.
            let out = files.root + "/new-erke"
            let mesh = try LocalCluster.freePort(), adminPort = try LocalCluster.freePort()
            let plan = try NewNodeFiles.make(
                nodeID: "erke", department: "儿科", clusterID: files.clusterID, mesh: .init(host: "127.0.0.1", port: mesh),
                admin: .init(host: "127.0.0.1", port: adminPort), metrics: nil, membership: view, ca: files.ca, hosts: ["127.0.0.1"], out: out)
            #expect(!FileManager.default.fileExists(atPath: out + "/certs/ca.key"), "the CA key never goes to a node")
            #expect(throws: NodeError.self) {
                _ = try NewNodeFiles.make(nodeID: "waike", department: "外科", clusterID: files.clusterID, mesh: .init(host: "127.0.0.1", port: 1),
                                          admin: .init(host: "127.0.0.1", port: 2), metrics: nil, membership: view, ca: files.ca, hosts: ["h"], out: out + "-x")
            }
            try FileManager.default.copyItem(atPath: files.root + "/data.key", toPath: out + "/data.key")

            // Recorded and added as a learner before it starts, so handshakes accept it.
            try await cluster.register(MemberAddRequest(node: "erke", address: "127.0.0.1:\(mesh)", department: "儿科", serial: plan.serial),
                                       timeout: .seconds(60))
            view = try await cluster.leaderView()
            #expect(view.members.first { $0.id == "erke" }?.role == "learner")
            let bad = neike.addNode(MemberAddRequest(node: "x y", address: "nowhere", department: "", serial: "zz"))
            #expect(bad.state == "refused" && bad.messageZh?.isEmpty == false && bad.messageEn?.isEmpty == false)

            // It starts from the config add-node wrote: snapshot, then the change stream and the log.
            var config = try NodeConfig.load(path: out + "/erke.json")
            config.tuning = files.configs["neike"]!.tuning
            let erke = RunningNode(try await MeshNode.open(config: config, logger: quietLogger("erke")))
            all["erke"] = erke
            #expect(erke.node.snapshotFrom != nil, "a new node fetches a snapshot first")
            #expect(try erke.node.replica.liveRow("department", key: "waike") != nil)
            let newNode = AdminConfig.Node(id: "erke", host: "127.0.0.1", port: adminPort, serials: [plan.serial])
            try await cluster.waitForCatchUp(newNode, maxLagChanges: 0, timeout: .seconds(120))
            cluster.nodes.append(newNode)

            // Three members: the two learners become voters (the new one is preferred).
            let promoted = try await cluster.promoteAsNeeded(prefer: "erke", timeout: .seconds(120))
            #expect(promoted == ["erke", "waike"])
            view = try await cluster.leaderView()
            #expect(view.members.filter { $0.role == "voter" }.map(\.id).sorted() == ["erke", "neike", "waike"])
            #expect(try await cluster.summary().allSatisfy { !$0.contains("⚠") }, "three voters in three departments: nothing to warn")
            #expect(progress.count > 3, "the admin saw progress")

            // waike's config never named erke: it links to it from the membership, both ways.
            try waike.write { w in _ = try w.insert("department", key: "waike-2", values: ["name": .text("外科二")]) }
            try erke.node.write { w in _ = try w.insert("department", key: "erke", values: ["name": .text("儿科")]) }
            #expect(await eventually {
                try erke.node.replica.liveRow("department", key: "waike-2") != nil && waike.replica.liveRow("department", key: "erke") != nil
            })
            #expect(await eventually { try waike.status().peers.first { $0.id == "erke" }?.reachable == true })
            // And bookings work in a block the new node holds.
            neike.defineBlocks([BlockDefinition(block: "erke-s1", home: "erke", slots: 3)])
            #expect(await eventually {
                await waike.book(BookCommand(requestID: "e1", block: "erke-s1", slot: 0, patient: "pk-e", timeoutMs: 2_000)).outcome == "booked"
            })
        } catch {
            for node in all.values { try? await node.stop() }
            throw error
        }
        for node in all.values { try await node.stop() }
    }

    @Test("rotate-cert: the new serial is accepted beside the old one, the node keeps running, and after its restart with the new certificate only the new one is recorded")
    func rotateCertificate() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        var nodes = try await startCluster(files)
        do {
            let admin = try files.credentials("admin", kind: .admin)
            let cluster = ClusterAdmin(clusterID: files.clusterID, credentials: admin, nodes: ["neike", "waike", "erke"].map {
                AdminConfig.Node(id: $0, host: "127.0.0.1", port: nodes[$0]!.node.adminPort)
            }, report: { _ in })
            let old = try #require(files.configs["neike"]!.peers.first { $0.id == "waike" }?.serials.first)
            #expect(await eventually {
                try await cluster.leaderView().members.first { $0.id == "waike" }.map { MemberSerials.same($0.serial, old) } == true
            })
            let issued = try files.ca.issueNode(.init(nodeID: "waike", department: "内科", hosts: ["127.0.0.1"], validity: 30 * 86_400))
            try PKIFiles.writeIssued(issued, ca: files.ca, to: files.root + "/rotated", force: false)
            let rotation = CertRotation(node: "waike", serial: issued.serial)
            try await cluster.recordRotation(rotation, timeout: .seconds(60))
            // Both accepted, and waike (still on the old certificate) does not undo it: once every
            // node, waike included, has applied the rotation, the leader still lists both serials.
            try await waitUntil("every node's membership to list waike's new serial, then its old one") {
                ["neike", "waike", "erke"].allSatisfy { id in
                    guard let member = nodes[id]!.node.membershipView().members.first(where: { $0.id == "waike" }) else { return false }
                    let serials = MemberSerials.list(member.serial)
                    return serials.count == 2 && MemberSerials.same(serials[0], issued.serial)
                }
            }
            let during = try #require(try await cluster.leaderView().members.first { $0.id == "waike" })
            #expect(MemberSerials.list(during.serial).count == 2 && MemberSerials.same(MemberSerials.list(during.serial)[0], issued.serial))
            #expect(await eventually { try nodes["neike"]!.node.status().peers.first { $0.id == "waike" }?.reachable == true })

            // Restart waike with the new certificate, same data and mesh port.
            let port = nodes["waike"]!.node.meshPort
            try await nodes["waike"]!.stop()
            var config = files.configs["waike"]!
            config.certDir = files.root + "/rotated"
            config.mesh.port = port
            let restarted = try await MeshNode.open(config: config, logger: quietLogger("waike"))
            for (id, n) in nodes where id != "waike" { restarted.setPeerAddress(id, host: "127.0.0.1", port: n.node.meshPort) }
            nodes["waike"] = RunningNode(restarted)
            var after = cluster
            after.nodes[1] = AdminConfig.Node(id: "waike", host: "127.0.0.1", port: restarted.adminPort, serials: [issued.serial])
            try await after.waitForRotation(rotation, timeout: .seconds(60))
            #expect(await eventually {
                try nodes["neike"]!.node.status().peers.first { $0.id == "waike" }?.reachable == true
                    && restarted.status().peers.allSatisfy(\.reachable)
            })
            // The admin tool, told the new serial only, talks to waike.
            #expect(try await after.call("waike", "health").isEmpty == false)
        } catch {
            for node in nodes.values { try? await node.stop() }
            throw error
        }
        for node in nodes.values { try await node.stop() }
    }

    @Test("rebuilding a lost department node: evict it (its department checked), add a new id in the same department, which catches up and restores three voters")
    func rebuildLostNode() async throws {
        var files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        files.configs["waike"]!.department = "外科"
        files.configs["erke"]!.department = "儿科"
        var nodes = try await startCluster(files)
        do {
            let admin = try files.credentials("admin", kind: .admin)
            let cluster = ClusterAdmin(clusterID: files.clusterID, credentials: admin, nodes: ["neike", "waike"].map {
                AdminConfig.Node(id: $0, host: "127.0.0.1", port: nodes[$0]!.node.adminPort)
            }, report: { _ in })
            // Until erke is lost the admin also knows erke's address: it may be the leader.
            let before = ClusterAdmin(clusterID: files.clusterID, credentials: admin, nodes: ["neike", "waike", "erke"].map {
                AdminConfig.Node(id: $0, host: "127.0.0.1", port: nodes[$0]!.node.adminPort)
            }, report: { _ in })
            #expect(await eventually { try await before.leaderView().members.allSatisfy { !$0.address.isEmpty } })
            try nodes["erke"]!.node.write { w in _ = try w.insert("department", key: "erke", values: ["name": .text("儿科")]) }
            #expect(await eventually { try nodes["neike"]!.node.replica.liveRow("department", key: "erke") != nil })
            // erke is lost.
            try await nodes["erke"]!.stop()
            nodes["erke"] = nil
            await #expect(throws: NodeError.self) { try await cluster.evictLost("erke", department: "内科", timeout: .seconds(10)) }
            try await cluster.evictLost("erke", department: "儿科", timeout: .seconds(60))
            // The leader takes erke out of the Raft configuration: two voters left.
            #expect(await eventually {
                let view = try await cluster.leaderView()
                return view.members.filter { $0.role == "voter" && !$0.evicted }.map(\.id).sorted() == ["neike", "waike"]
            })
            #expect(try await cluster.summary().contains { $0.contains("⚠") }, "two voters: it warns")

            // The new 儿科 node, under a new id; the old id cannot come back.
            let view = try await cluster.leaderView()
            #expect(throws: NodeError.self) {
                _ = try NewNodeFiles.make(nodeID: "erke", department: "儿科", clusterID: files.clusterID, mesh: .init(host: "127.0.0.1", port: 1),
                                          admin: .init(host: "127.0.0.1", port: 2), metrics: nil, membership: view, ca: files.ca, hosts: ["h"], out: files.root + "/x")
            }
            let out = files.root + "/erke-2"
            let mesh = try LocalCluster.freePort(), adminPort = try LocalCluster.freePort()
            let plan = try NewNodeFiles.make(nodeID: "erke-2", department: "儿科", clusterID: files.clusterID, mesh: .init(host: "127.0.0.1", port: mesh),
                                             admin: .init(host: "127.0.0.1", port: adminPort), metrics: nil, membership: view, ca: files.ca,
                                             hosts: ["127.0.0.1"], out: out)
            #expect(plan.config.peers.map(\.id) == ["neike", "waike"], "the evicted node is no peer")
            try FileManager.default.copyItem(atPath: files.root + "/data.key", toPath: out + "/data.key")
            try await cluster.register(MemberAddRequest(node: "erke-2", address: "127.0.0.1:\(mesh)", department: "儿科", serial: plan.serial), timeout: .seconds(60))
            var config = try NodeConfig.load(path: out + "/erke-2.json")
            config.tuning = files.configs["neike"]!.tuning
            nodes["erke-2"] = RunningNode(try await MeshNode.open(config: config, logger: quietLogger("erke-2")))
            #expect(try nodes["erke-2"]!.node.replica.liveRow("department", key: "erke") != nil, "the lost node's writes came back by snapshot")
            let newNode = AdminConfig.Node(id: "erke-2", host: "127.0.0.1", port: adminPort, serials: [plan.serial])
            try await cluster.waitForCatchUp(newNode, maxLagChanges: 0, timeout: .seconds(120))
            #expect(try await cluster.promoteAsNeeded(prefer: "erke-2", timeout: .seconds(120)) == ["erke-2"])
            #expect(try await cluster.leaderView().members.filter { $0.role == "voter" }.map(\.id).sorted() == ["erke-2", "neike", "waike"])
        } catch {
            for node in nodes.values { try? await node.stop() }
            throw error
        }
        for node in nodes.values { try await node.stop() }
    }
}
