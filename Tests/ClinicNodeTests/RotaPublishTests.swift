@testable import ClinicNode
import Domain
import Foundation
@testable import Services
import TestSupport
import Testing

@Suite("Rota publishing on running nodes", .serialized, .timeLimit(.minutes(5)))
struct RotaPublishTests {
    @Test("a published rota becomes sessions every node reads and blocks held by the publishing node, opening at their release time")
    func publishedSessionsBecomeBlocks() async throws {
        try await withRunningCluster(["neike", "waike", "erke"]) { nodes in
            let neike = nodes["neike"]!.node, erke = nodes["erke"]!.node
            try neike.write { w in
                _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("Internal Medicine")])
                _ = try w.insert("practitioner", key: "neike-qian", values: ["name": .text("钱进"), "department": .text("neike"), "title": .text("attendingPhysician")])
            }
            let rota = neike.rota
            try rota.saveTemplate(ClinicTemplate(practitionerID: PractitionerID("neike-qian"), weekday: .monday, halfDay: .evening, room: "内科夜诊",
                                                 capacity: 6, minutesPerSlot: 20, walkInReserve: 1))
            // A Monday at least a week ahead: nothing of the span has begun, and nothing closes meanwhile.
            let today = try rota.today()
            let from = try today.adding(days: 7 + (8 - today.weekday.rawValue) % 7)
            let plan = try rota.publish(department: "neike", from: from, weeks: 2)
            let keys = plan.sessions.map(\.key.rawValue)
            #expect(keys == ["neike-qian/\(from)/evening", "neike-qian/\(try from.adding(days: 7))/evening"])
            let opens = Dictionary(uniqueKeysWithValues: plan.sessions.map { ($0.key.rawValue, RotaDesk.ms($0.opensAt)) })

            #expect(await eventually { try Set(erke.replica.liveRows("schedule").keys).isSuperset(of: keys) }, "the sessions reach every node")
            #expect(await eventually {
                let blocks = erke.bookingsView().blocks.filter { keys.contains($0.block) }
                return blocks.count == 2 && blocks.allSatisfy { $0.valid && $0.holder == "neike" && $0.home == "neike" && $0.opensAtMs == opens[$0.block] }
            }, "each session is a block leased to the publishing node, opening at its release time")
            #expect(try rota.sessionsWithoutBlocks { neike.bookingsView().blocks.map(\.block).contains($0) }.isEmpty)
        }
    }
}
