import AdminAPI
import ClinicNode
import Domain
import Drills
import Foundation
@testable import Services
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The clinic floor across a failover, on real node processes: the node holding a busy session's
/// block is killed mid-morning, and the queue goes on at the new holder with every patient called
/// exactly once, in 号序 order.
@Suite("Floor failover drill", .serialized, .timeLimit(.minutes(8)))
struct FloorDrillTests {
    static func queue(_ cluster: LocalCluster, _ id: String, _ session: String) async throws -> FloorQueueView {
        let bytes = try await cluster.call(id, "floor-queue", ["session": session])
        guard let view = try? JSONDecoder().decode(FloorQueueView.self, from: Data(bytes)) else {
            throw DrillError("floor-queue on \(id): \(String(decoding: bytes, as: UTF8.self))")
        }
        return view
    }

    /// A floor command through `id`, retried (with the same command) while no holder can answer.
    static func floor(_ cluster: LocalCluster, _ id: String, _ c: FloorAdminCommand) async throws -> FloorQueueView {
        var view: FloorQueueView?
        try await waitFor("floor \(c.op) on \(id)", seconds: 90) {
            let bytes = try await cluster.call(id, "floor", c)
            if let v = try? JSONDecoder().decode(FloorQueueView.self, from: Data(bytes)) { view = v; return true }
            let text = String(decoding: bytes, as: UTF8.self)
            // A failover under way: the block has no holder yet, or the cluster answered too late.
            guard text.contains("lease.no_holder") || text.contains("floor.timeout") || text.contains("floor.no_block") else { throw DrillError("floor \(c.op) on \(id): \(text)") }
            return false
        }
        return view!
    }

    @Test("killing the holder mid-morning: the queue continues at the new holder, nobody lost or called twice")
    func queueSurvivesTheHoldersDeath() async throws {
        let cluster = try LocalCluster(departments: [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")], binary: try clinicmeshBinary(),
                                       folderPrefix: "clinicmesh-floor-")
        defer { cluster.removeUnlessKept() }
        do {
            // Today's queues stay open all day: the drill may run at any hour.
            for id in cluster.ids { try cluster.changeConfig(id) { $0.floor = FloorConfig(closeAfterMinutes: 720) } }
            try cluster.startAll()
            try await cluster.waitUntilLed()
            let today = try ShanghaiTime.civil(of: Date()).date
            let seed = String(decoding: try JSONEncoder().encode(DemoSeedRequest(startDate: today.description, days: 1, capacity: 16)), as: UTF8.self)
            try await waitFor("seed-demo on neike") { String(decoding: try await cluster.call("neike", "seed-demo " + seed), as: UTF8.self).contains("\"schedules\"") }
            // 刘洋, the resident physician, has an afternoon session every day in the demo's fixed pattern.
            let session = "neike-liu-yang/\(today)/afternoon"
            try await waitFor("the session held by neike and known on erke") {
                let held = try await cluster.bookings("neike", quotaBucketRecords: false).blocks.contains { $0.block == session && $0.holder == "neike" && $0.valid }
                guard held else { return false }
                _ = try await Self.queue(cluster, "erke", session)
                return true
            }

            // Twelve patients booked (through waike, forwarded to neike) and checked in (through erke).
            let bookings = (0..<12).map { "floor-drill-\($0)" }
            for (slot, id) in bookings.enumerated() {
                try await waitFor("booking \(id)") {
                    let answer = try await cluster.book("waike", BookCommand(requestID: id, block: session, slot: slot, patient: "drill-patient-\(slot)"))
                    if answer.outcome == "refused", answer.code != "lease.no_holder" { throw DrillError("booking \(id): \(answer)") }
                    return answer.outcome == "booked"
                }
            }
            try await waitFor("erke to know the twelve bookings") { try await Self.queue(cluster, "erke", session).lines.count == 12 }
            for id in bookings { _ = try await Self.floor(cluster, "erke", FloorAdminCommand(session: session, op: "check_in", booking: id)) }

            // The doctor calls four at neike.
            var called: [String] = []
            var view = try await Self.queue(cluster, "neike", session)
            for _ in 0..<4 {
                view = try await Self.floor(cluster, "neike", FloorAdminCommand(session: session, op: "next", expecting: view.current, seen: view.lastSeq))
                called.append(try #require(view.current))
            }
            #expect(called == Array(bookings.prefix(4)))

            // Mid-morning neike dies. Another node takes the block over and the calling goes on there.
            cluster.killHard("neike")
            try await waitFor("another node to hold the session", seconds: 120) {
                try await cluster.bookings("erke", quotaBucketRecords: false).blocks.contains { $0.block == session && $0.valid && $0.holder != nil && $0.holder != "neike" }
            }
            try await waitFor("erke's queue to show the fourth call") { try await Self.queue(cluster, "erke", session).current == called.last }
            view = try await Self.queue(cluster, "erke", session)
            while !view.waiting.isEmpty {
                view = try await Self.floor(cluster, "erke", FloorAdminCommand(session: session, op: "next", expecting: view.current, seen: view.lastSeq))
                called.append(try #require(view.current))
            }
            #expect(called == bookings, "every patient called once, in 号序 order, across the failover")
            #expect(view.lines.allSatisfy { $0.calls == 1 }, "nobody called twice: \(view.lines)")
            #expect(view.lines.filter { $0.stage == "seen" }.count == 11 && view.current == bookings.last)

            // neike comes back and reads the same queue from the records.
            try cluster.start("neike")
            try await waitFor("neike to show the queue as erke does", seconds: 120) {
                let mine = try await Self.queue(cluster, "neike", session)
                return mine.current == view.current && mine.lines == view.lines
            }
        } catch {
            cluster.stopAll()
            throw error
        }
        cluster.stopAll()
    }
}
