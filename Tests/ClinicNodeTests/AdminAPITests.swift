import ClinicNode
import Foundation
import Mesh
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PKI
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
