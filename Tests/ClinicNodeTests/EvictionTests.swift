@testable import ClinicNode
@testable import Services
import Consensus
import Foundation
import TestSupport
import Testing

@Suite("Eviction", .serialized, .timeLimit(.minutes(5)))
struct EvictionTests {
    @Test("once an eviction commits, every node closes the evicted node's connections and refuses it; it leaves the Raft configuration")
    func evictedNodeIsCutOff() async throws {
        try await withRunningCluster(["neike", "waike", "erke"]) { nodes in
            let neike = nodes["neike"]!.node
            #expect(await eventually {
                let c = neike.consensusStatus()
                return c.leader != nil && c.members.filter(\.live).count == 3
            }, "a leader and three live members")
            neike.evict("erke")
            for id in ["neike", "waike"] {
                let node = nodes[id]!.node
                #expect(await eventually {
                    let s = try node.status()
                    let erke = s.peers.first { $0.id == "erke" }
                    return s.consensus?.members.first { $0.id == "erke" }?.evicted == true
                        && erke?.inboundSessions == 0 && erke?.reachable == false
                }, "\(id) closed erke's connections")
                #expect(node.consensus.membership.admits(nodeID: "erke", serial: "00") == false)
            }
            #expect(await eventually { !neike.consensus.view.cluster.raftConfig.isMember("erke") }, "erke left the Raft configuration")
            // erke itself can no longer reach anyone (it may never hear of the eviction: it is cut
            // off as the entry commits), and its status says so in words.
            let erke = nodes["erke"]!.node
            #expect(await eventually {
                let s = try erke.status()
                return s.peers.allSatisfy { !$0.reachable } && (s.attention ?? []).contains { $0.contains("unreachable") }
            })
        }
    }
}
