@testable import ClinicNode
@testable import Services
import Consensus
import Mesh
import Testing

@Suite struct LiveMembershipTests {
    @Test func raftMembershipReplacesTheConfigOnceItNamesANodeAndEvictionIsFinal() {
        let live = LiveMembership(configured: StaticMembership(["waike": ["0a1b"], "erke": ["0c0d"]]))
        // Before the Raft membership names anyone, the config file decides.
        #expect(live.admits(nodeID: "waike", serial: "0a1b"))
        #expect(!live.admits(nodeID: "waike", serial: "ffff"))
        #expect(!live.admits(nodeID: "stranger", serial: "0a1b"))

        var state = ClusterState(config: ClusterConfig(voters: ["neike", "waike", "erke"]))
        state.apply(.upsertMember(MemberInfo(node: "waike", address: "127.0.0.1:1", department: "外科", certificateSerial: "0e0f")))
        state.apply(.upsertMember(MemberInfo(node: "guke", address: "127.0.0.1:2", department: "骨科", certificateSerial: "1234")))
        live.update(state)
        #expect(live.admits(nodeID: "waike", serial: "0e0f"), "the serial the node registered")
        #expect(live.admits(nodeID: "guke", serial: "12:34"), "a member the config file never listed")
        #expect(!live.admits(nodeID: "guke", serial: "9999"))

        state.apply(.evict("waike"))
        live.update(state)
        #expect(!live.admits(nodeID: "waike", serial: "0e0f"))
        #expect(!live.admits(nodeID: "waike", serial: "0a1b"), "eviction overrides the config file")
        #expect(live.admits(nodeID: "erke", serial: "0c0d"), "not named by Raft yet: the config still decides")
    }
}
