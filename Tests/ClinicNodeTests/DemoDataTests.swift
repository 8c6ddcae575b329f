@testable import ClinicNode
@testable import DemoAndBench
@testable import AdminAPI
@testable import Services
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
import TestSupport
import Testing

@Suite("Demo data", .serialized, .timeLimit(.minutes(5)))
struct DemoDataTests {
    @Test("each department node writes its own doctors, sessions and slots; they reach the others and become lease blocks")
    func seedsEveryDepartment() async throws {
        // From tomorrow: sessions more than `history_retention_days` back would be closed meanwhile.
        let start = try ShanghaiTime.civil(of: Date()).date.adding(days: 1).description
        try await withRunningCluster(["neike", "waike", "erke"]) { nodes in
            var sessions = 0
            for id in ["neike", "waike", "erke"] {
                let summary = try DemoData.seed(nodes[id]!.node, DemoSeedRequest(startDate: start, days: 7))
                #expect(summary.practitioners == 4)
                #expect(summary.schedules > 0 && summary.slots > summary.schedules)
                #expect(summary.patients == (id == "neike" ? 20 : 0))
                sessions += summary.schedules
                // Seeding again writes nothing new.
                #expect(try DemoData.seed(nodes[id]!.node, DemoSeedRequest(startDate: start, days: 7)).schedules == 0)
            }
            let erke = nodes["erke"]!.node
            #expect(await eventually { try erke.replica.liveRows("schedule").count == sessions })
            #expect(await eventually {
                erke.bookingsView().blocks.filter { !$0.block.hasPrefix("quota/") && $0.valid }.count == sessions
            }, "every session leased once a leader has committed the definitions")
            #expect(await eventually { try erke.replica.liveRows("patient").count == 20 })
            #expect(throws: (any Error).self) { try DemoData.seed(erke, DemoSeedRequest(startDate: "2026-13-01", days: 7)) }
        }
    }
}
