@testable import ClinicNode
@testable import Services
import Consensus
import Domain
import Foundation
import TestSupport
import Testing

/// Bounded history over real nodes: a session past `history_retention_days` closes on every
/// node; its appointments stay in each read model and in the patient's list, and nothing of it
/// stays in the consensus state or the booking store.
@Suite("Closing sessions", .serialized, .timeLimit(.minutes(5)))
struct SessionClosingTests {
    @Test("a finished session closes everywhere, keeps its rows, and the patient still sees the visit")
    func aFinishedSessionCloses() async throws {
        try await PatientCluster.start(days: 2, now: PatientAPITests.afterRelease).run { c in
            let neike = try await c.client("neike")
            let token = try await c.signIn(PatientCluster.person(1), via: "neike", client: neike)
            let past = try c.schedule("neike", day: 0), kept = try c.schedule("neike", day: 1)
            let id = try #require(try await neike.hold(past, request: "r1", token: token).id)
            let confirmed = try await neike.call(.POST, "/api/v1/appointments/\(id)/confirm", json: ["payment": "insurance"], token: token)
            #expect(confirmed.status_ == "booked")
            #expect(try await neike.hold(kept, request: "r2", token: token).id != nil)

            // Day 3: day 0 lies more than the default two days back; day 1 does not.
            try c.setClock(c.day(3), 9, 0)
            for node in c.ids {
                #expect(await eventually {
                    let n = c.node(node)
                    let closed = try n.readModel.closedBlocks()
                    let rows = try n.readModel.appointments(block: past)
                    let view = n.consensus.view
                    let forgotten = view.cluster.closed.contains(past) && view.cluster.blocks[past] == nil && !view.records.contains { $0.block == past }
                    return forgotten && closed.contains(past) && !closed.contains(kept)
                        && rows.count == 1 && rows[0].status == "booked" && rows[0].payment == "insurance" && rows[0].date == c.day(0).description
                }, "\(node) closed day 0's session and kept its final rows")
            }
            // The final rows outlive a rebuild of the read model from the consensus state.
            try c.node("erke").readModel.rebuild()
            #expect(try c.node("erke").readModel.appointments(block: past).first?.status == "booked")
            // The patient's list and the appointment itself still show the visit, from any node.
            let erke = try await c.client("erke")
            let later = try await c.signIn(PatientCluster.person(1), via: "erke", client: erke) // a day later: a new session
            let list = try await erke.send(.GET, "/api/v1/appointments", token: later)
            let listed = (list.json?["appointments"] as? [[String: Any]]) ?? []
            #expect(listed.contains { $0["id"] as? String == id && $0["status"] as? String == "booked" }, "\(list.text)")
            #expect(listed.count == 2)
            #expect(try await erke.send(.GET, "/api/v1/appointments/\(id)", token: later).status_ == "booked")
            // Nothing more is booked or cancelled in it: the session is over.
            #expect(try await erke.call(.POST, "/api/v1/appointments/\(id)/cancel", token: later).status == 404)
        }
    }

    @Test("closings per round: 16 by default, 1 to 4096 in a config")
    func closingsPerRoundIsValidated() throws {
        let base = """
            {"node_id": "neike", "department": "内科", "cluster_id": "c", "mesh": {"host": "127.0.0.1", "port": 1},
             "admin": {"host": "127.0.0.1", "port": 2}, "data_dir": "d", "cert_dir": "c", "data_key_file": "k", "peers": [],
             "tuning": {"closings_per_round": VALUE}}
            """
        func config(_ value: Int) throws -> NodeConfig {
            try JSONDecoder().decode(NodeConfig.self, from: Data(base.replacingOccurrences(of: "VALUE", with: "\(value)").utf8))
        }
        #expect(NodeConfig.Tuning().closingsPerRound == 16)
        #expect(try config(1000).tuning.closingsPerRound == 1000)
        try config(4096).validate()
        #expect(throws: NodeError.self) { try config(0).validate() }
        #expect(throws: NodeError.self) { try config(4097).validate() }
    }
}
