import ClinicNode
import AdminAPI
import Drills
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the clinicmesh binary; returns its exit status and standard output.
private func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("Operations on real node processes", .serialized, .timeLimit(.minutes(5)))
struct OperationsTests {
    @Test("clinicmesh status (table and --json) over three node processes; each process serves /metrics and counts a booking")
    func statusAndMetrics() async throws {
        let binary = try clinicmeshBinary()
        var adminPorts: [String: Int] = [:]
        var metricsPorts: [String: Int] = [:]
        let cluster = try LocalCluster(departments: [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")], binary: binary,
                                       folderPrefix: "clinicmesh-ops-") { _, config in
            config.metrics = .init(host: "127.0.0.1", port: (try? LocalCluster.freePort()) ?? 0)
            adminPorts[config.nodeID] = config.admin.port
            metricsPorts[config.nodeID] = config.metrics?.port
        }
        defer { cluster.remove() }
        try cluster.startAll()
        do {
            let admin = AdminConfig(clusterID: cluster.clusterID, adminCertDir: cluster.folder + "/certs/admin",
                                    nodes: cluster.ids.map { .init(id: $0, host: "127.0.0.1", port: adminPorts[$0]!) })
            let adminPath = cluster.folder + "/admin.json"
            try JSONEncoder().encode(admin).write(to: URL(fileURLWithPath: adminPath))

            var report: ClusterReport?
            try await waitFor("a leader in clinicmesh status --json") {
                let r = try run(binary, ["status", "--config", adminPath, "--json"])
                report = try? JSONDecoder().decode(ClusterReport.self, from: Data(r.output.utf8))
                return r.status == 0 && report?.leader != nil
            }
            let r = try #require(report)
            #expect(r.members.map(\.id) == ["erke", "neike", "waike"])
            #expect(r.members.allSatisfy { $0.answered && $0.role == "voter" && $0.schemaVersion != nil })
            #expect(r.members.filter(\.leader).count == 1)
            let table = try run(binary, ["status", "--config", adminPath])
            #expect(table.status == 0 && table.output.contains("成员 member") && table.output.contains("★leader"), "\(table.output)")

            // A booking through neike shows in neike's metrics (its process bootstrapped swift-metrics once).
            try await cluster.defineBlocks("neike", [BlockDefinition(block: "ops-s1", home: "neike", slots: 2)])
            try await waitFor("a booking") {
                try await cluster.book("neike", BookCommand(requestID: "ops-1", block: "ops-s1", slot: 0, patient: "pk-ops", timeoutMs: 2_000)).outcome == "booked"
            }
            let scraped = try await PlainHTTP.get(port: metricsPorts["neike"]!, path: "/metrics")
            let text = scraped.body
            #expect(scraped.status == 200 && text.contains(#"clinicmesh_bookings_total{kind="book",outcome="booked"} 1"#), "\(text.prefix(2000))")
            #expect(text.contains(#"clinicmesh_node_info{node="neike""#))

            // A node down: status says so, and exits 1.
            cluster.signal("erke", SIGTERM)
            cluster.waitForExit("erke")
            var down = (status: Int32(0), output: "")
            try await waitFor("status to say erke is down") {
                down = try run(binary, ["status", "--config", adminPath])
                return down.status != 0 && down.output.contains("管理 admin ✗") && down.output.contains("unreachable")
            }
        } catch {
            cluster.stopAll()
            throw error
        }
        cluster.stopAll()
    }

    @Test("a node that was down while the log was compacted catches up by a snapshot sent in many chunks")
    func catchUpByChunkedSnapshot() async throws {
        var tuning = LocalCluster.drillTuning
        tuning.snapshotChunkBytes = 1_024
        let cluster = try LocalCluster(departments: [("neike", "内科"), ("waike", "外科"), ("erke", "儿科")], binary: try clinicmeshBinary(),
                                       tuning: tuning, folderPrefix: "clinicmesh-ops-")
        defer { cluster.removeUnlessKept() }
        do {
            try cluster.startAll()
            try await cluster.waitUntilLed()
            var reached: UInt64 = 0
            for id in cluster.ids { reached = max(reached, try await cluster.status(id).consensus?.commitIndex ?? 0) }
            // SIGKILL: a node stopped by SIGTERM goes on answering as a voter for up to 3 s, and would take the entries below.
            cluster.killHard("erke")
            // Well over the 64 entries between compactions: each block is defined, then leased.
            let blocks = (0..<80).map { BlockDefinition(block: "ops-chunk-\($0)", home: "neike", slots: 30) }
            try await cluster.defineBlocks("neike", blocks)
            try await waitFor("the 80 blocks committed without erke") { try await cluster.status("neike").consensus?.blocks ?? 0 >= 80 }
            // Both nodes compacted past anything erke may hold (a few entries in flight as it stopped): it can only catch up by snapshot.
            try await waitFor("neike and waike to compact their logs past erke's last entries") {
                for id in ["neike", "waike"] where try await cluster.status(id).consensus?.snapshotIndex ?? 0 <= reached + 16 { return false }
                return true
            }

            // Fresh processes for neike and waike: the appends they queued for erke while it was down
            // (a link keeps the newest 2,048 messages) would otherwise catch it up without a snapshot.
            for id in ["neike", "waike"] {
                cluster.signal(id, SIGTERM)
                cluster.waitForExit(id)
                try cluster.start(id)
            }
            try await waitFor("a leader again without erke") { try await cluster.status("neike").consensus?.leader != nil }
            try cluster.start("erke")
            let names = Set(blocks.map(\.block))
            try await waitFor("erke to hold every block the others hold", seconds: 120) {
                let mine = try await cluster.bookings("erke").blocks.filter { names.contains($0.block) }
                return mine.count == blocks.count
            }
            let sent = cluster.ids.flatMap { id in
                ((try? String(contentsOfFile: cluster.logPath(id), encoding: .utf8)) ?? "").split(separator: "\n")
                    .filter { $0.contains("sending a snapshot to a lagging peer") && $0.contains("mesh.peer=erke") }
            }
            let chunks = sent.compactMap { line in line.firstMatch(of: /raft\.chunks=(\d+)/).flatMap { Int($0.1) } }
            #expect(chunks.contains { $0 > 1 }, "erke caught up by a snapshot in more than one chunk: \(sent)")
        } catch {
            cluster.stopAll()
            throw error
        }
        cluster.stopAll()
    }
}
