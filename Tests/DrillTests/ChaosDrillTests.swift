import ClinicNode
import Drills
import Foundation
import TestSupport
import Testing

/// Short runs of the operations drills, in the lease drills' serialized suite (one cluster at a
/// time). Each waits for conditions with generous deadlines and never asserts a duration.
extension LeaseDrillTests {
    func chaos(_ kind: ChaosDrill.Kind) async throws -> ChaosDrill.Report {
        let binary = try clinicmeshBinary()
        var drill = ChaosDrill(kind: kind, binary: binary)
        drill.clients = 8
        drill.recordClients = 2
        drill.settleSeconds = 2
        drill.faultSeconds = 3
        let report = try await drill.run()
        print("\(kind.rawValue): \(report.summaryZh)\n\(report.summaryEn)")
        for c in report.checks { if let d = c.detail { print("  \(c.passed ? "✓" : "✗") \(c.en): \(d)") } }
        #expect(report.scenario == kind.rawValue)
        #expect(report.booked > 0 && report.recordsAcked > 0)
        #expect(report.doubleBookings == 0, "\(report.problems)")
        #expect(report.lostAcks == 0, "\(report.problems)")
        #expect(report.recordsLost == 0, "\(report.problems)")
        #expect(report.converged, "\(report.problems)")
        for c in report.checks { #expect(c.passed, "\(c.en): \(c.detail ?? "")") }
        for f in report.faults { #expect(f.recoveryS != nil, "no recovery after \(f.kind) on \(f.node)") }
        #expect(report.passed, "\(report.problems)")
        return report
    }

    @Test("Partition: one follower cut off through the fault proxy; the majority books on, the lone node acknowledges nothing, all converge after healing")
    func partitionMinority() async throws {
        let report = try await chaos(.partitionMinority)
        #expect(report.injection.contains("proxy"))
        #expect(report.checks.count == 4)
    }

    @Test("Partition: the leader cut off from the majority; a new leader, its blocks taken over, the old leader steps down, all converge")
    func partitionMajority() async throws {
        let report = try await chaos(.partitionMajority)
        #expect(report.checks.count == 5)
    }

    @Test("Evict a node under load: its leases move, its handshakes are refused, nothing it writes afterwards reaches the others (invariant 7)")
    func evictUnderLoad() async throws {
        let report = try await chaos(.evictUnderLoad)
        #expect(report.checks.count == 6)
    }

    @Test("Clock skew past the bound: the skewed node refuses writes and says why, the others go on, it resumes once fixed")
    func clockSkew() async throws {
        let report = try await chaos(.clockSkew)
        #expect(report.checks.count == 3)
    }

    @Test("Full disk (tmpfs): the node refuses writes and says why, never crashes or loses an acknowledgement, resumes once space is freed",
          .enabled(if: LocalCluster.canMountTmpfs(), "needs root to mount a tmpfs"))
    func diskFull() async throws {
        let report = try await chaos(.diskFull)
        #expect(report.faults.map(\.kind) == ["disk-full", "disk-freed"])
        #expect(report.checks.count == 5)
    }
}

/// The pharmacy drill, in the same serialized suite: the holder of the pharmacy's stock block is
/// killed while two windows on the other nodes dispense the last packages of six drugs.
extension LeaseDrillTests {
    @Test("Pharmacy: the stock block's holder killed mid-dispensing; stock never below zero, no prescription dispensed twice, every acknowledged movement on every node")
    func pharmacyHolderKilled() async throws {
        let report = try await PharmacyDrill(binary: try clinicmeshBinary(), killHolder: true).run()
        print("pharmacy: \(report.summaryZh)\n\(report.summaryEn)")
        #expect(report.scenario == "pharmacy")
        #expect(report.dispensed > 0, "some prescriptions were dispensed")
        #expect((report.refusedByReason["stockShort"] ?? 0) > 0, "the windows ran into the last packages")
        #expect(report.stockBelowZero == 0, "\(report.problems)")
        #expect(report.doubleDispensed == 0, "\(report.problems)")
        #expect(report.lostMovements == 0, "\(report.problems)")
        #expect(report.converged)
        #expect(report.recoveryS != nil, "dispensing resumed after the kill")
        #expect(report.passed, "\(report.problems)")
    }
}
