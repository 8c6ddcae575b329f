@testable import ClinicNode
@testable import DemoAndBench
@testable import AdminAPI
@testable import Services
import Domain
@testable import Drills
import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The value of one sample line (`name{labels} value`) in a Prometheus text exposition, or nil.
func sample(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        if line[..<space] == series { return Double(line[line.index(after: space)...]) }
    }
    return nil
}

@Suite("Metrics endpoint and logs", .serialized, .timeLimit(.minutes(5)))
struct MetricsTests {
    @Test("GET /metrics on a running node: raft, leases, bookings with latency and refusals, peers; each node counts only its own")
    func scrapeChangesAfterBooking() async throws {
        var files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        for id in files.ids { files.configs[id]!.metrics = .init(host: "127.0.0.1", port: 0) }
        let nodes = try await startCluster(files)
        try await stoppingAfterwards(nodes) {
            let neike = nodes["neike"]!.node
            #expect(await eventually { neike.metrics.boundPort != nil && nodes["waike"]!.node.metrics.boundPort != nil })
            let port = try #require(neike.metrics.boundPort)
            func scrape(_ node: MeshNode? = nil) async throws -> String {
                let r = try await PlainHTTP.get(port: (node ?? neike).metrics.boundPort!, path: "/metrics")
                #expect(r.status == 200)
                #expect(r.headers.lowercased().contains("content-type: text/plain; version=0.0.4"))
                return r.body
            }

            // A leader is known and the term counted; every peer has its gauges.
            var text = ""
            #expect(await eventually {
                text = try await scrape()
                return sample(text, "clinicmesh_raft_has_leader") == 1 && (sample(text, "clinicmesh_raft_term") ?? 0) >= 1
                    && sample(text, #"clinicmesh_peer_reachable{peer="waike"}"#) == 1
                    && sample(text, #"clinicmesh_replication_lag_changes{peer="erke"}"#) != nil
            }, "scrape: \(text.prefix(3000))")
            #expect(text.contains(#"clinicmesh_node_info{node="neike""#))
            #expect(sample(text, #"clinicmesh_bookings_total{kind="book",outcome="booked"}"#) == nil, "nothing booked yet")

            // A block at home on neike: granted, then booked through neike, then a refusal.
            neike.defineBlocks([BlockDefinition(block: "neike-s1", home: "neike", slots: 4)])
            var booked: BookAnswer?
            #expect(await eventually {
                booked = await neike.book(BookCommand(requestID: "m1", block: "neike-s1", slot: 1, patient: "pk-1", timeoutMs: 2_000))
                return booked?.outcome == "booked"
            })
            // A refusal is quorum-durable before it is told; on a loaded machine that can outlast the
            // request's wait, and the client retries the same request, as any client does.
            var taken = await neike.book(BookCommand(requestID: "m2", block: "neike-s1", slot: 1, patient: "pk-2"))
            for _ in 0..<5 where taken.code == "lease.timeout" {
                taken = await neike.book(BookCommand(requestID: "m2", block: "neike-s1", slot: 1, patient: "pk-2"))
            }
            #expect(taken.code == "lease.slot_taken")

            text = try await scrape()
            #expect(sample(text, #"clinicmesh_bookings_total{kind="book",outcome="booked"}"#) == 1, "\(text)")
            #expect(sample(text, #"clinicmesh_booking_duration_seconds_count{kind="book",outcome="booked"}"#) == 1)
            #expect((sample(text, #"clinicmesh_booking_duration_seconds_sum{kind="book",outcome="booked"}"#) ?? 0) > 0)
            #expect(sample(text, #"clinicmesh_requests_refused_total{reason="lease.slot_taken",source="booking"}"#) == 1)
            #expect((sample(text, #"clinicmesh_lease_changes_total{kind="grant",scope="slots"}"#) ?? 0) >= 1)
            // The holder's booking log and its Raft log were written, each commit timed (eventually:
            // two other voters may acknowledge before the holder's own disk is done).
            #expect(await eventually {
                let t = try await scrape()
                return (sample(t, #"clinicmesh_consensus_disk_write_seconds_count{log="bookings"}"#) ?? 0) >= 1
                    && (sample(t, #"clinicmesh_consensus_disk_write_seconds_sum{log="bookings"}"#) ?? 0) > 0
                    && (sample(t, #"clinicmesh_consensus_disk_write_seconds_count{log="raft"}"#) ?? 0) >= 1
            })
            // The booking bench reads this histogram: its parse of the real exposition agrees.
            let exposition = try await scrape()
            let commits = ["raft", "bookings"].compactMap { sample(exposition, #"clinicmesh_consensus_disk_write_seconds_count{log="\#($0)"}"#) }.reduce(0, +)
            let disk = DiskWrites.between([:], DiskWrites.buckets(inExposition: exposition))
            #expect(disk.commits == Int(commits) && disk.over50Ms <= disk.commits, "\(disk)")
            // Held while neike's liveness holds (a renewal race at start can move it and bring it back).
            #expect(await eventually { (sample(try await scrape(), "clinicmesh_lease_blocks_held") ?? 0) >= 1 })
            #expect((sample(text, "clinicmesh_raft_commit_index") ?? 0) >= 1)

            // The booking replicates; neike's lag towards each peer comes back to 0.
            #expect(await eventually {
                let t = try await scrape()
                return sample(t, #"clinicmesh_replication_lag_changes{peer="waike"}"#) == 0
                    && sample(t, #"clinicmesh_replication_lag_changes{peer="erke"}"#) == 0
            })

            // Each node has a registry of its own: waike booked nothing.
            let waike = try await scrape(nodes["waike"]!.node)
            #expect(waike.contains(#"clinicmesh_node_info{node="waike""#))
            #expect(sample(waike, #"clinicmesh_bookings_total{kind="book",outcome="booked"}"#) == nil)

            // Only /metrics is served.
            let missing = try await PlainHTTP.get(port: port, path: "/patients")
            #expect(missing.status == 404)
        }
    }

    @Test("metrics.port out of range is refused with a clear message")
    func badMetricsPort() throws {
        var files = try TestClusterFiles(ids: ["neike"])
        defer { files.remove() }
        files.configs["neike"]!.metrics = .init(host: "127.0.0.1", port: 70_000)
        #expect {
            try files.configs["neike"]!.validate()
        } throws: { error in
            "\(error)".contains("metrics.port")
        }
    }

    @Test("every log line names the node; none carries a patient's name, resident id or mobile in clear")
    func logsCarryNodeIDAndNoPersonalData() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "neike") { _ in handler }
        logger.logLevel = .trace
        var nodes: [String: MeshNode] = [:]
        nodes["neike"] = try await MeshNode.open(config: files.configs["neike"]!, logger: logger)
        for id in ["waike", "erke"] { nodes[id] = try await MeshNode.open(config: files.configs[id]!, logger: quietLogger(id)) }
        for (id, node) in nodes {
            for (other, otherNode) in nodes where other != id { node.setPeerAddress(other, host: "127.0.0.1", port: otherNode.meshPort) }
        }
        DemoData.install(on: nodes["neike"]!)
        let running = nodes.mapValues { RunningNode($0) }
        try await stoppingAfterwards(running) {
            let admin = try files.credentials("admin", kind: .admin)
            let neike = nodes["neike"]!
            // Demo data writes patients (names, resident ids, mobiles) on neike; then a booking.
            let seeded = String(decoding: try await AdminClient.request(
                host: "127.0.0.1", port: neike.adminPort, command: #"seed-demo {"start_date":"2026-12-01","days":1}"#,
                clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike"), as: UTF8.self)
            #expect(seeded.contains("\"patients\""), "\(seeded)")
            neike.defineBlocks([BlockDefinition(block: "neike-log", home: "neike", slots: 2)])
            #expect(await eventually {
                await neike.book(BookCommand(requestID: "l1", block: "neike-log", slot: 0, patient: "pk-log", timeoutMs: 2_000)).outcome == "booked"
            })
            #expect(await eventually { try neike.status().peers.allSatisfy { $0.lagChanges == 0 } })
        }
        let entries = handler.entries
        #expect(entries.count > 10, "the node logged at trace level")
        for entry in entries {
            #expect(entry.metadata["node.id"] == "neike", "no node id: \(entry.message)")
        }
        let text = entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        // The demo's own patients, made the way DemoData makes them.
        for (i, name) in DemoData.patientNames.enumerated() {
            let birth = try CivilDate(year: 1950 + (i * 3) % 60, month: 1 + i % 12, day: 1 + (i * 7) % 28)
            let residentID = try ResidentID.make(regionCode: "130102", birthDate: birth, sequence: 100 + i).value
            let mobile = "1390311\(1000 + i)"
            #expect(!text.contains(name), "patient \(i)'s name is in the log")
            #expect(!text.contains(residentID), "patient \(i)'s resident id is in the log")
            #expect(!text.contains(mobile), "patient \(i)'s mobile is in the log")
        }
    }
}
