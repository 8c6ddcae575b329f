import ClinicNode
import Foundation
import Logging
import Mesh
import PKI
import ReplicatedCore
import ReplicatedStore
import Synchronization
import TestSupport
import Testing

@Suite("Back-pressure towards a stuck peer", .serialized, .timeLimit(.minutes(5)))
struct BackPressureTests {
    /// What the stuck peer received.
    final class Seen: Sendable {
        let batches = Mutex(0)
        let probes = Mutex(0)
        let heartbeats = Mutex(0)
    }

    @Test("a peer that never acknowledges gets at most max_in_flight_batches batches, however much is written")
    func stuckPeer() async throws {
        var files = try TestClusterFiles(ids: ["neike", "stuck"])
        defer { files.remove() }
        files.configs["neike"]!.tuning.maxInFlightBatches = 2
        files.configs["neike"]!.tuning.batchChanges = 4  // one slot row per batch
        files.configs["neike"]!.tuning.peerTimeoutMillis = 60_000

        // The stuck peer: a real mesh endpoint with its own certificate that answers the first
        // probe and heartbeats, and never acknowledges a batch.
        let neikeSerial = files.configs["stuck"]!.peers[0].serials[0]
        let tls = try MeshTLS(credentials: files.credentials("stuck", kind: .node), membership: StaticMembership(["neike": [neikeSerial]]))
        let server = try await MeshServer.bind(
            host: "127.0.0.1", port: 0, configuration: MeshConfiguration(nodeID: "stuck", clusterID: files.clusterID),
            tls: tls, logger: quietLogger("stuck"))
        let seen = Seen()
        let serverTask = Task {
            try await server.run { session in
                for try await message in session.inbound {
                    switch message {
                    case .versionVector:
                        let first = seen.probes.withLock { p in p += 1; return p == 1 }
                        if first { try await session.send(.versionVector(Mesh.VersionVector(entries: []))) }
                    case .changeBatch:
                        seen.batches.withLock { $0 += 1 }
                    case .heartbeat(let beat):
                        seen.heartbeats.withLock { $0 += 1 }
                        try await session.send(.heartbeatAck(HeartbeatAck(echo: beat, hlc: 0, wallMillis: Int64(Date().timeIntervalSince1970 * 1000))))
                    default:
                        break
                    }
                }
            }
        }
        let neike = try await MeshNode.open(config: files.configs["neike"]!, logger: quietLogger("neike"))
        neike.setPeerAddress("stuck", host: "127.0.0.1", port: try #require(server.localAddress?.port))
        let running = RunningNode(neike)
        #expect(await eventually { try neike.status().peers.first?.reachable == true })
        for i in 0..<200 {
            try neike.write { w in
                _ = try w.insert("slot", key: "dr-li/2026-01-05/morning/\(String(format: "%03d", i))", values: ["sequence": .integer(Int64(i))])
            }
        }
        #expect(await eventually { seen.batches.withLock { $0 } == 2 })
        // The link keeps running: every tick sends a heartbeat and tries to send more. After
        // several more ticks, still nothing more has been sent.
        let beatsAtSecondBatch = seen.heartbeats.withLock { $0 }
        try await waitUntil("five more heartbeats from neike after its second batch") {
            seen.heartbeats.withLock { $0 } >= beatsAtSecondBatch + 5
        }
        #expect(seen.batches.withLock { $0 } == 2)
        let status = try neike.status()
        #expect(status.peers.first?.lagChanges == 200)  // in writes (sequence numbers)

        try await running.stop()
        await server.close()
        serverTask.cancel()
        _ = try? await serverTask.value
    }
}
