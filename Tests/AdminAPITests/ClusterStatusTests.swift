@testable import AdminAPI
@testable import Services
import Foundation
import Testing

/// A node's status as the admin API would answer it, in a few words.
private func status(_ id: String, department: String, vector: [String: UInt64], peers: [PeerStatus], leader: String? = "a",
                    members: [MemberStatus], disk: DiskSpace? = nil, reviewItems: Int = 0) -> NodeStatus {
    var s = NodeStatus(
        nodeID: id, department: department, clusterID: "c", meshAddress: "127.0.0.1:1", incarnation: 1, writesRefused: false,
        writesRefusedReason: nil, versionVector: vector, parkedChanges: 0, peers: peers, uptimeS: 10, snapshotFrom: nil,
        consensus: ConsensusStatus(role: id == leader ? "leader" : "follower", term: 4, leader: leader, commitIndex: 30, members: members, blocks: 3, failure: nil),
        schemaVersion: 2)
    s.disk = disk
    s.reviewItems = reviewItems
    s.maxClockOffsetMs = 500
    s.alerts = NodeAlerts.of(s, me: id)
    return s
}

private func peer(_ id: String, reachable: Bool = true, lag: UInt64? = 0, offset: Int64? = 0, antiEntropy: Int64? = 1200) -> PeerStatus {
    PeerStatus(id: id, address: "127.0.0.1:2", reachable: reachable, inboundSessions: 1, lagChanges: lag, clockOffsetMs: offset, rttMs: 0.3,
               lastContactMsAgo: 100, lastAntiEntropyMsAgo: antiEntropy, changesSent: 0, batchesReceived: 0, lastError: reachable ? nil : "refused")
}

private func member(_ id: String, _ role: String, _ department: String, blocks: Int = 1, live: Bool = true) -> MemberStatus {
    MemberStatus(id: id, role: role, department: department, address: "127.0.0.1:1", live: live, evicted: false, blocksHeld: blocks)
}

@Suite("clinicmesh status: the cluster report")
struct ClusterStatusTests {
    let members = [member("a", "voter", "内科", blocks: 5), member("b", "voter", "外科", blocks: 4), member("c", "voter", "儿科", blocks: 0, live: false)]

    @Test("leader, term, lag from version vectors, clock offset as the median of the peers' estimates, leases and schema per member")
    func memberRows() {
        let a = status("a", department: "内科", vector: ["a#1": 10, "b#1": 7], peers: [peer("b"), peer("c", reachable: false, lag: 12, offset: 900)], members: members)
        let b = status("b", department: "外科", vector: ["a#1": 8, "b#1": 7], peers: [peer("a", lag: 0), peer("c", reachable: false, lag: 9, offset: 700)], members: members)
        let report = ClusterReport.build(clusterID: "c", answers: ["a": a, "b": b], unanswered: ["c": "connection refused"])
        #expect(report.leader == "a" && report.term == 4 && report.voters == 3)
        let byID = Dictionary(uniqueKeysWithValues: report.members.map { ($0.id, $0) })
        #expect(byID["a"]?.lagChanges == 0)
        #expect(byID["b"]?.lagChanges == 2, "b lacks two of a's changes")
        #expect(byID["c"]?.lagChanges == 12, "a member that did not answer: the largest lag its peers report")
        #expect(byID["c"]?.clockOffsetMs == 900 && byID["c"]?.answered == false && byID["c"]?.reachableFrom == 0)
        #expect(byID["a"]?.blocksHeld == 5 && byID["a"]?.schemaVersion == 2 && byID["a"]?.leader == true)
        #expect(byID["b"]?.lastAntiEntropyMsAgo == 1200)

        let codes = report.alerts.map(\.code)
        #expect(codes.contains("admin.unanswered"))
        #expect(report.alerts.filter { $0.code == "peer.unreachable" }.count == 1, "one item for c, naming who cannot reach it")
        #expect(report.alerts.contains { $0.code == "clock.off" && $0.node == "c" })
        #expect(!report.alerts.contains { $0.code == "clock.off" && $0.node != "c" }, "only the member whose clock is off")
        #expect(codes.contains("node.not_live") == false, "c did not answer, so only its peers' words count")
        // Chinese first, English too, in every item and in the table.
        for a in report.alerts { #expect(!a.zh.isEmpty && !a.en.isEmpty) }
        let table = report.table()
        #expect(table.contains("成员 member") && table.contains("时钟 clock ms") && table.contains("需要处理 / needs attention"))
        #expect(table.contains("★leader"))
    }

    @Test("disk nearly full, review items waiting, a two-node cluster and even or bunched voters are said in words")
    func attention() {
        let two = [member("a", "voter", "内科"), member("b", "learner", "外科")]
        let a = status("a", department: "内科", vector: [:], peers: [peer("b")], members: two,
                       disk: DiskSpace(freeBytes: 200 << 20, sizeBytes: 100 << 30), reviewItems: 3)
        let codes = Set(ClusterReport.build(clusterID: "c", answers: ["a": a], unanswered: [:]).alerts.map(\.code))
        #expect(codes.isSuperset(of: ["disk.nearly_full", "review.waiting", "raft.survives_no_failure"]))

        let four = [member("a", "voter", "内科"), member("b", "voter", "内科"), member("c", "voter", "外科"), member("d", "voter", "儿科")]
        #expect(NodeAlerts.membershipAlerts(four).map(\.code) == ["raft.even_voters"])
        let bunched = [member("a", "voter", "内科"), member("b", "voter", "内科"), member("c", "voter", "内科"), member("d", "learner", "儿科")]
        #expect(NodeAlerts.membershipAlerts(bunched).map(\.code) == ["raft.voters_not_spread"])
        let fine = [member("a", "voter", "内科"), member("b", "voter", "外科"), member("c", "voter", "儿科")]
        #expect(NodeAlerts.membershipAlerts(fine).isEmpty)
    }

    @Test("the voter policy keeps voters odd, at most five, and spread across departments")
    func voterPolicy() {
        func entry(_ id: String, _ role: String, _ department: String) -> MembershipEntry {
            MembershipEntry(id: id, role: role, department: department, address: "h:1", serial: "01", evicted: false, live: true, matchIndex: nil)
        }
        #expect(VoterPolicy.promotions([entry("a", "voter", "内科"), entry("b", "learner", "外科")]).isEmpty, "two members: one voter")
        #expect(VoterPolicy.promotions([entry("a", "voter", "内科"), entry("b", "learner", "内科"), entry("c", "learner", "儿科")], prefer: "b")
                == ["c", "b"], "a department without a voter first")
        #expect(VoterPolicy.promotions([entry("a", "voter", "内科"), entry("b", "voter", "外科"), entry("c", "voter", "儿科"), entry("d", "learner", "眼科")]).isEmpty,
                "four members: three voters")
        let six = ["a", "b", "c"].map { entry($0, "voter", "内科") } + [entry("d", "learner", "外科"), entry("e", "learner", "外科"), entry("f", "learner", "儿科")]
        #expect(VoterPolicy.promotions(six) == ["d", "f"], "five voters at most, one per missing department first")
    }
}
