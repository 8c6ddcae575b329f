import ClinicNode
import AdminAPI
import Services
import Foundation
import Mesh
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PKI
import TestSupport
import Testing

@Suite("Admin API over TLS", .serialized, .timeLimit(.minutes(5)))
struct AdminAPITests {
    @Test("an admin certificate gets status and health; a node certificate and no certificate are refused")
    func adminOnly() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike"])
        defer { files.remove() }
        let nodes = try await startCluster(files)
        let neike = nodes["neike"]!.node
        let admin = try files.credentials("admin", kind: .admin)
        let neikeSerial = try #require(files.configs["waike"]!.peers.first { $0.id == "neike" }?.serials.first)

        #expect(await eventually {
            let status = try await AdminClient.status(
                host: "127.0.0.1", port: neike.adminPort, clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike", serials: [neikeSerial])
            return status.nodeID == "neike" && status.peers.first?.reachable == true
        })
        let health = try await AdminClient.health(host: "127.0.0.1", port: neike.adminPort, clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike")
        #expect(health.ok && health.peers == 1)

        // A node's own certificate is not an admin certificate.
        let nodeCredentials = try files.credentials("waike", kind: .node)
        await #expect(throws: (any Error).self) {
            _ = try await AdminClient.request(
                host: "127.0.0.1", port: neike.adminPort, command: "status", clusterID: files.clusterID, credentials: nodeCredentials, expectedNodeID: "neike")
        }
        // And the node's mesh port does not answer admin requests either.
        await #expect(throws: (any Error).self) {
            _ = try await AdminClient.request(
                host: "127.0.0.1", port: neike.meshPort, command: "status", clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike")
        }

        // TLS without a client certificate: the handshake fails, nothing is answered.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(files.ca.certificatePEM().utf8)))
        tls.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: tls)
        let received = NIOLockedValueBoxSendable()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(ReadRecorder(received))
                }
            }
            .connect(host: "127.0.0.1", port: neike.adminPort).get()
        var request = ByteBuffer()
        request.writeBytes([0, 0, 0, 3, 1, 9, 0])
        channel.writeAndFlush(request, promise: nil)
        #expect(await eventually { !channel.isActive })
        #expect(received.count == 0)

        for node in nodes.values { try await node.stop() }
    }

    @Test("the admin tool talks only to the node it expects: node id and, if given, serial")
    func adminChecksTheNode() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike"])
        defer { files.remove() }
        let nodes = try await startCluster(files)
        let neike = nodes["neike"]!.node
        let admin = try files.credentials("admin", kind: .admin)
        let neikeSerial = try #require(files.configs["waike"]!.peers.first { $0.id == "neike" }?.serials.first)
        let waikeSerial = try #require(files.configs["neike"]!.peers.first { $0.id == "waike" }?.serials.first)

        // The right node, with or without its serial.
        #expect(try await AdminClient.health(
            host: "127.0.0.1", port: neike.adminPort, clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike").nodeID == "neike")
        #expect(try await AdminClient.health(
            host: "127.0.0.1", port: neike.adminPort, clusterID: files.clusterID, credentials: admin, expectedNodeID: "neike",
            serials: [neikeSerial]).nodeID == "neike")
        // Another node at that address (a mixed-up config), or the right id with a serial that is not its own.
        for (id, serials) in [("waike", [String]()), ("neike", [waikeSerial])] {
            do {
                _ = try await AdminClient.health(
                    host: "127.0.0.1", port: neike.adminPort, clusterID: files.clusterID, credentials: admin, expectedNodeID: id, serials: serials)
                Issue.record("expected \(id) \(serials) to be refused")
            } catch let error as NodeError {
                #expect(error.code == .admin)
                #expect(error.zh.contains("节点 \(id)"))
                #expect(error.en.contains("node \(id)"))
            }
        }

        for node in nodes.values { try await node.stop() }
    }
}

final class NIOLockedValueBoxSendable: Sendable {
    private let value = NIOLockedCount()
    var count: Int { value.get() }
    func add(_ n: Int) { value.add(n) }
}

final class NIOLockedCount: Sendable {
    private let lock = NIOLock()
    nonisolated(unsafe) private var n = 0
    func get() -> Int { lock.withLock { n } }
    func add(_ k: Int) { lock.withLock { n += k } }
}

final class ReadRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let box: NIOLockedValueBoxSendable
    init(_ box: NIOLockedValueBoxSendable) { self.box = box }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        box.add(unwrapInboundIn(data).readableBytes)
    }
}

@Suite("Booking over the admin API", .serialized, .timeLimit(.minutes(5)))
struct AdminBookingTests {
    @Test("bad input gets a clear answer and the session goes on; the primitive books, retries and cancels through any node")
    func bookThroughTheAdminAPI() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        let nodes = try await startCluster(files)
        try await stoppingAfterwards(nodes) {
            let admin = try files.credentials("admin", kind: .admin)
            func call(_ id: String, _ command: String) async throws -> String {
                String(decoding: try await AdminClient.request(host: "127.0.0.1", port: nodes[id]!.node.adminPort, command: command,
                                                               clusterID: files.clusterID, credentials: admin, expectedNodeID: id), as: UTF8.self)
            }
            func book(_ id: String, _ c: BookCommand) async throws -> BookAnswer {
                try await AdminClient.book(host: "127.0.0.1", port: nodes[id]!.node.adminPort, clusterID: files.clusterID, credentials: admin,
                                           expectedNodeID: id, c)
            }
            // Bad input: an answer saying what was wrong, in Chinese and English; nothing crashes.
            #expect(try await call("neike", "book {not json").contains("参数无效"))
            #expect(try await call("neike", "book {not json").contains("not valid"))
            #expect(try await call("neike", "no-such-command").contains("unknown command"))
            #expect(try await call("neike", "evict {}").contains("evict"))
            let reserved = try await book("neike", BookCommand(requestID: "quota:x", block: "b", slot: 0, patient: "p"))
            #expect(reserved.outcome == "refused" && reserved.code == "request.invalid")
            let badDate = try await book("neike", BookCommand(requestID: "r0", block: "b", slot: 0, patient: "p", quota: .init(visitDate: "2026-02-30", department: "neike")))
            #expect(badDate.code == "request.invalid" && badDate.messageEn?.contains("visit_date") == true)

            // A session held by waike, booked through erke (forwarded), retried through neike.
            nodes["neike"]!.node.defineBlocks([BlockDefinition(block: "waike-s1", home: "waike", slots: 10)])
            var first: BookAnswer?
            #expect(await eventually {
                first = try await book("erke", BookCommand(requestID: "r1", block: "waike-s1", slot: 3, patient: "p1", timeoutMs: 2_000))
                return first?.outcome == "booked"
            })
            // An unknown outcome (no answer in time: on a loaded machine a lease may be moving) is
            // retried with the same request id, as any client does; the first definite one counts.
            func definite(_ id: String, _ c: BookCommand) async -> BookAnswer? {
                var answer: BookAnswer?
                _ = await eventually {
                    answer = try await book(id, c)
                    return answer?.outcome != "unknown"
                }
                return answer
            }
            let retry = await definite("neike", BookCommand(requestID: "r1", block: "waike-s1", slot: 3, patient: "p1", timeoutMs: 2_000))
            #expect(retry?.outcome == "booked" && retry?.booking == first?.booking, "a retry through another node returns the first outcome; \(String(describing: retry))")
            let taken = await definite("neike", BookCommand(requestID: "r2", block: "waike-s1", slot: 3, patient: "p2", timeoutMs: 2_000))
            #expect(taken?.code == "lease.slot_taken" && taken?.messageZh?.isEmpty == false, "\(String(describing: taken))")
            func leases() -> String {
                ["neike", "waike", "erke"].map { id in "\(id): \(nodes[id]!.node.bookingsView().blocks.filter { $0.block == "waike-s1" })" }.joined(separator: "; ")
            }
            let cancel = await definite("erke", BookCommand(requestID: "c1", block: "waike-s1", slot: 3, patient: "p1", releases: "r1", timeoutMs: 2_000))
            #expect(cancel?.outcome == "booked", "\(leases())")
            let stale = await definite("erke", BookCommand(requestID: "r1", block: "waike-s1", slot: 3, patient: "p1", timeoutMs: 2_000))
            #expect(stale?.code == "lease.released", "a retry after the cancellation says so; \(leases())")
            // Every node sees the same history.
            #expect(await eventually {
                ["neike", "waike", "erke"].allSatisfy { id in
                    let statuses = nodes[id]!.node.bookingsView().bookings.filter { $0.block == "waike-s1" }.map { "\($0.requestID):\($0.status ?? "")" }
                    return Set(statuses) == ["r1:released", "c1:release", "r2:refused"]
                }
            })
        }
    }
}
