@testable import Drills
import Testing

@Suite struct DiskWritesTests {
    /// The bench sums both logs' cumulative buckets and takes the difference of two scrapes.
    @Test func commitsBetweenTwoScrapesOverBothLogs() {
        func exposition(raft: [Int], bookings: [Int]) -> String {
            let bounds = ["0.001000000000000000", "0.050000000000000000", "0.250000000000000000", "+Inf"]
            var lines = ["# TYPE clinicmesh_consensus_disk_write_seconds histogram"]
            for (log, counts) in [("raft", raft), ("bookings", bookings)] {
                for (bound, n) in zip(bounds, counts) { lines.append(#"clinicmesh_consensus_disk_write_seconds_bucket{log="\#(log)",le="\#(bound)"} \#(n)"#) }
                lines.append(#"clinicmesh_consensus_disk_write_seconds_count{log="\#(log)"} \#(counts.last!)"#)
            }
            lines.append(#"clinicmesh_booking_duration_seconds_bucket{kind="book",outcome="booked",le="+Inf"} 99"#)
            return lines.joined(separator: "\n")
        }
        let before = DiskWrites.buckets(inExposition: exposition(raft: [1, 2, 2, 2], bookings: [0, 3, 3, 3]))
        // Since then: raft 4 more, all within 50 ms; bookings 6 more, 2 over 50 ms, 1 of them over 250 ms.
        let after = DiskWrites.buckets(inExposition: exposition(raft: [3, 6, 6, 6], bookings: [1, 7, 8, 9]))
        #expect(DiskWrites.between(before, after) == DiskWrites(commits: 10, over50Ms: 2, slowestAtMostMs: nil))
        let calmer = DiskWrites.buckets(inExposition: exposition(raft: [3, 6, 6, 6], bookings: [1, 7, 8, 8]))
        #expect(DiskWrites.between(before, calmer) == DiskWrites(commits: 9, over50Ms: 1, slowestAtMostMs: 250))
        #expect(DiskWrites.between(after, after) == DiskWrites(commits: 0, over50Ms: 0, slowestAtMostMs: nil))
        #expect(DiskWrites.buckets(inExposition: "").isEmpty)
    }
}
