import Drills
import Foundation
import TestSupport
import Testing

/// One suite, serialized: each drill runs three node processes, and two at once on two cores
/// would measure the machine, not the cluster.
@Suite("Drills on real node processes", .serialized, .timeLimit(.minutes(8)))
struct LeaseDrillTests {
    @Test("SIGKILL the hottest holder, restart it, SIGSTOP another past its lease, SIGTERM the third: no double booking, no lost acknowledgement")
    func killAndPause() async throws {
        let binary = try clinicmeshBinary()
        let report = try await LeaseDrill(binary: binary).run()
        print("lease drill: requests \(report.requests), booked \(report.booked), refused \(report.refusedByReason), faults \(report.faults.map { "\($0.kind) \($0.node) recovery \($0.recoveryS.map { "\($0) s" } ?? "none")" })")
        #expect(report.booked > 0)
        #expect(report.doubleBookings == 0, "\(report.problems)")
        #expect(report.lostAcks == 0, "\(report.problems)")
        #expect(report.converged, "\(report.problems)")
        #expect(report.quotaBurstBooked == 1, "one patient, quota 1, six bookings at once through three nodes: \(report.problems)")
        #expect(report.quotaFreedByCancel, "\(report.problems)")
        #expect(report.faults.map(\.kind) == ["sigkill", "sigstop", "sigterm"])
        #expect(report.passed, "\(report.problems)")
        for f in report.faults { #expect(f.recoveryS != nil, "no booking in \(f.node)'s blocks after \(f.kind)") }
    }

    @Test("SIGKILL the Raft leader under load: a new leader, its blocks taken over, bookings resume, nothing lost")
    func killLeader() async throws {
        let binary = try clinicmeshBinary()
        var drill = LeaseDrill(binary: binary)
        drill.name = "kill-leader"
        drill.steps = try #require(LeaseDrill.scenarios["kill-leader"])
        let report = try await drill.run()
        print("kill-leader drill: recovery \(report.recoveryS.map { "\($0) s" } ?? "none"), booked \(report.booked)")
        #expect(report.passed, "\(report.problems)")
        #expect(report.faults.map(\.kind) == ["sigkill-leader"])
        #expect(report.doubleBookings == 0 && report.lostAcks == 0 && report.converged)
    }
}
