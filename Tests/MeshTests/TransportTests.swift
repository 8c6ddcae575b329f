import Foundation
import InMemoryLogging
import Logging
import Mesh
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import PKI
import TestSupport
import Testing
import X509

/// What the test server saw.
actor ServerRecord {
    private(set) var sessions: [String] = []
    private(set) var received: [MeshMessage] = []
    func connected(_ nodeID: String) { self.sessions.append(nodeID) }
    func got(_ message: MeshMessage) { self.received.append(message) }
}

/// A node for the tests: its certificate, configuration and TLS setup.
struct TestNode {
    let id: String
    let configuration: MeshConfiguration
    let tls: MeshTLS

    init(
        cluster: TestCluster, id: String, issued: IssuedCertificate? = nil, credentials: MeshCredentials? = nil,
        membership: any MembershipView, maximumFrameSize: Int = MeshWire.defaultMaximumFrameSize,
        compressionThreshold: Int? = 1024
    ) throws {
        self.id = id
        self.configuration = MeshConfiguration(
            nodeID: id, clusterID: cluster.clusterID, maximumFrameSize: maximumFrameSize,
            compressionThreshold: compressionThreshold, handshakeTimeout: .seconds(20))
        self.tls = try MeshTLS(credentials: credentials ?? cluster.credentials(issued ?? cluster.node(id)), membership: membership)
    }

    func client(_ logger: Logger) -> MeshClient {
        MeshClient(configuration: self.configuration, tls: self.tls, logger: logger)
    }
}

/// Binds `node` on loopback port 0, runs an echo-ish session handler, runs `body` with the port,
/// then closes the server and waits for it.
func withEchoServer(
    _ node: TestNode, logger: Logger, record: ServerRecord,
    _ body: (Int) async throws -> Void
) async throws {
    let server = try await MeshServer.bind(host: "127.0.0.1", port: 0, configuration: node.configuration, tls: node.tls, logger: logger)
    let port = try #require(server.localAddress?.port)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await server.run { session in
                await record.connected(session.peer.nodeID)
                // Speak first, so the client receives without asking.
                try await session.send(.versionVector(VersionVector(entries: [VersionEntry(nodeID: node.id, incarnation: 1, seq: 42)])))
                for try await message in session.inbound {
                    await record.got(message)
                    switch message {
                    case .heartbeat(let beat):
                        try await session.send(.heartbeatAck(HeartbeatAck(echo: beat, hlc: 7, wallMillis: 8)))
                    default:
                        try await session.send(message)
                    }
                }
            }
        }
        do {
            try await body(port)
        } catch {
            await server.close()
            group.cancelAll()
            throw error
        }
        await server.close()
        group.cancelAll()
        try await group.waitForAll()
    }
}

/// Sends a heartbeat and a large compressible batch and checks the answers.
func exchange(_ session: MeshSession, _ iterator: inout NIOAsyncChannelInboundStream<MeshMessage>.AsyncIterator) async throws {
    let beat = Heartbeat(hlc: 123, wallMillis: 1_700_000_000_000, sentMonotonicNanos: 555)
    try await session.send(.heartbeat(beat))
    #expect(try await iterator.next() == .heartbeatAck(HeartbeatAck(echo: beat, hlc: 7, wallMillis: 8)))
    let batch = MeshMessage.changeBatch(
        ChangeBatch(coverage: [VersionEntry(nodeID: "n2", incarnation: 3, seq: 9)], batch: Array(String(repeating: "挂号 booking ", count: 5_000).utf8)))
    try await session.send(batch)
    #expect(try await iterator.next() == batch)
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct TransportTests {
    @Test func goodPairExchangesMessagesBothWays() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [n2.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: membership)
        let (serverLogger, _) = makeLogger("server")
        let (clientLogger, _) = makeLogger("client")
        let record = ServerRecord()

        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            try await client.client(clientLogger).withSession(host: "127.0.0.1", port: port, expectedNodeID: "n1") { session in
                #expect(session.peer.nodeID == "n1")
                #expect(session.peer.certificate.serial == n1.serial)
                #expect(session.peer.certificate.department == "内科")
                var iterator = session.inbound.makeAsyncIterator()
                // Server to client, unasked.
                #expect(try await iterator.next() == .versionVector(VersionVector(entries: [VersionEntry(nodeID: "n1", incarnation: 1, seq: 42)])))
                // Client to server and back.
                try await exchange(session, &iterator)
                // A message too big for one frame fails its own send; the connection stays usable.
                let tooBig = MeshMessage.raft([UInt8](repeating: 0, count: MeshWire.defaultMaximumFrameSize))
                let error = await #expect(throws: MeshProtocolError.self) { try await session.send(tooBig) }
                #expect(error?.code == .messageTooLarge)
                try await exchange(session, &iterator)
            }
        }
        #expect(await record.sessions == ["n2"])
        #expect(await record.received.count == 4)
    }

    /// Connects `client` to a server run by `server` and expects the connection to be refused
    /// before any session; returns the server's log.
    func expectRefused(
        server: TestNode, client: TestNode, expectedNodeID: String? = nil, serverLogNeedle: String? = nil,
        clientLogNeedle: String? = nil
    ) async throws {
        let (serverLogger, serverLogs) = makeLogger("server")
        let (clientLogger, clientLogs) = makeLogger("client")
        let record = ServerRecord()
        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            await #expect(throws: (any Error).self) {
                try await client.client(clientLogger).withSession(host: "127.0.0.1", port: port, expectedNodeID: expectedNodeID) { session in
                    Issue.record("a session was established with \(session.peer)")
                }
            }
            if let serverLogNeedle {
                let found = await eventually { serverLogs.contains(serverLogNeedle) }
                #expect(found, "server log should mention \(serverLogNeedle): \(serverLogs.texts)")
            }
            if let clientLogNeedle {
                let found = await eventually { clientLogs.contains(clientLogNeedle) }
                #expect(found, "client log should mention \(clientLogNeedle): \(clientLogs.texts)")
            }
        }
        #expect(await record.sessions.isEmpty)
    }

    @Test func peerWithCertificateFromAnotherCAIsRefused() async throws {
        let cluster = try TestCluster()
        let rogue = try TestCluster()
        let n1 = try cluster.node("n1")
        let forged = try rogue.node("n2")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [forged.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        // The client trusts the real CA but presents a certificate from another CA.
        let client = try TestNode(
            cluster: cluster, id: "n2", issued: forged, credentials: try cluster.credentials(forged, ca: cluster.ca), membership: membership)
        try await expectRefused(server: server, client: client, serverLogNeedle: "no chain to the cluster CA")
    }

    @Test func serverWithCertificateFromAnotherCAIsRefusedByTheClient() async throws {
        let cluster = try TestCluster()
        let rogue = try TestCluster()
        let forged = try rogue.node("n1")
        let n2 = try cluster.node("n2")
        let membership = StaticMembership(["n1": [forged.serial], "n2": [n2.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: forged, credentials: try cluster.credentials(forged, ca: cluster.ca), membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: membership)
        try await expectRefused(server: server, client: client, clientLogNeedle: "no chain to the cluster CA")
    }

    @Test func unknownNodeIDIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let stranger = try cluster.node("n9")
        let membership = StaticMembership(["n1": [n1.serial], "n2": ["0abc"]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n9", issued: stranger, membership: StaticMembership(["n1": [n1.serial]]))
        try await expectRefused(server: server, client: client, serverLogNeedle: "node n9 with certificate serial \(stranger.serial) is not in the membership")
    }

    @Test func unknownServerIsRefusedByTheClient() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: StaticMembership(["n1": [n1.serial], "n2": [n2.serial]]))
        // The client's membership does not know n1.
        let client = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: StaticMembership(["n2": [n2.serial]]))
        try await expectRefused(server: server, client: client, clientLogNeedle: "node n1 with certificate serial")
    }

    @Test func wrongSerialIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let oldN2 = try cluster.node("n2")
        let newN2 = try cluster.node("n2")
        // Membership records the new serial; the client still presents the old certificate.
        let membership = StaticMembership(["n1": [n1.serial], "n2": [newN2.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: oldN2, membership: membership)
        try await expectRefused(server: server, client: client, serverLogNeedle: "serial \(oldN2.serial) is not in the membership")
    }

    @Test func expiredCertificateIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let expired = try cluster.node("n2", validity: day, now: Date().addingTimeInterval(-10 * day))
        let membership = StaticMembership(["n1": [n1.serial], "n2": [expired.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: expired, membership: membership)
        try await expectRefused(server: server, client: client, serverLogNeedle: "expired")
    }

    @Test func adminCertificatePresentedAsNodeIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let admin = try cluster.ca.issueAdmin(name: "n2")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [admin.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: admin, membership: membership)
        try await expectRefused(server: server, client: client, serverLogNeedle: "only node certificates are accepted here")
    }

    @Test func clientWithoutCertificateIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: StaticMembership(["n1": [n1.serial]]))
        let (serverLogger, serverLogs) = makeLogger("server")
        let record = ServerRecord()
        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            // A raw TLS 1.3 client that trusts the cluster CA but has no certificate of its own.
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv13
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(cluster.ca.certificatePEM().utf8)))
            tls.certificateVerification = .noHostnameVerification
            let context = try NIOSSLContext(configuration: tls)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            // Try to speak: a Hello frame. The server must close the connection.
            let hello = try MeshWire.encode(.hello(Hello(schemaVersion: 1, nodeID: "n2", clusterID: cluster.clusterID)))
            try? await channel.writeAndFlush(hello)
            let closed = await eventually { !channel.isActive }
            #expect(closed, "the server must close a connection without a client certificate")
            try? await channel.close()
            let logged = await eventually { serverLogs.contains("connection ended") }
            #expect(logged, "\(serverLogs.texts)")
        }
        #expect(await record.sessions.isEmpty)
    }

    @Test func serverThatIsNotTheExpectedNodeIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [n2.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let client = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: membership)
        try await expectRefused(server: server, client: client, expectedNodeID: "n5", clientLogNeedle: "not the expected node n5")
    }

    @Test func tls12ClientIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: StaticMembership(["n1": [n1.serial], "n2": [n2.serial]]))
        let (serverLogger, serverLogs) = makeLogger("server")
        let record = ServerRecord()
        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            // A member's valid certificate, but TLS 1.2 at most.
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.maximumTLSVersion = .tlsv12
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(cluster.ca.certificatePEM().utf8)))
            tls.certificateVerification = .noHostnameVerification
            tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(n2.certificatePEM().utf8), format: .pem))]
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(n2.privateKeyPEM().utf8), format: .pem))
            let context = try NIOSSLContext(configuration: tls)
            let handshake = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: handshake))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            await #expect(throws: (any Error).self) { try await handshake.futureResult.get() }
            let closed = await eventually { !channel.isActive }
            #expect(closed)
            try? await channel.close()
            let logged = await eventually { serverLogs.contains("connection ended") }
            #expect(logged, "\(serverLogs.texts)")
        }
        #expect(await record.sessions.isEmpty)
    }

    @Test func silentConnectionIsDroppedAfterTheHandshakeTimeout() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let base = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: StaticMembership(["n1": [n1.serial]]))
        var configuration = base.configuration
        configuration.handshakeTimeout = .milliseconds(500)
        let server = TestNode(copying: base, configuration: configuration)
        let (serverLogger, serverLogs) = makeLogger("server")
        let record = ServerRecord()
        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            // Plain TCP that never says anything: no TLS, no Hello.
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            let closed = await eventually { !channel.isActive }
            #expect(closed, "the server must drop a connection that never completes TLS and Hello")
            try? await channel.close()
            let logged = await eventually { serverLogs.contains("no TLS handshake and Hello within") }
            #expect(logged, "\(serverLogs.texts)")
        }
        #expect(await record.sessions.isEmpty)
    }

    @Test func helloFromAnotherClusterIsRefused() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [n2.serial]])
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership)
        let base = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: membership)
        var configuration = base.configuration
        configuration.clusterID = "another-cluster"
        let client = TestNode(copying: base, configuration: configuration)
        try await expectRefused(server: server, client: client, serverLogNeedle: "another-cluster")
    }

    @Test func oversizedFrameClosesOnlyThatConnection() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let n2 = try cluster.node("n2")
        let n3 = try cluster.node("n3")
        let membership = StaticMembership(["n1": [n1.serial], "n2": [n2.serial], "n3": [n3.serial]])
        // The server accepts frames up to 256 KiB; n3 is configured to send up to 4 MiB, uncompressed.
        let server = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: membership, maximumFrameSize: 256 * 1024)
        let steady = try TestNode(cluster: cluster, id: "n2", issued: n2, membership: membership)
        let loud = try TestNode(
            cluster: cluster, id: "n3", issued: n3, membership: membership, maximumFrameSize: 4 << 20, compressionThreshold: nil)
        let (serverLogger, serverLogs) = makeLogger("server")
        let (clientLogger, _) = makeLogger("client")
        let record = ServerRecord()

        try await withEchoServer(server, logger: serverLogger, record: record) { port in
            try await steady.client(clientLogger).withSession(host: "127.0.0.1", port: port) { good in
                var goodInbound = good.inbound.makeAsyncIterator()
                _ = try await goodInbound.next()  // the server's greeting
                try await exchange(good, &goodInbound)

                try await loud.client(clientLogger).withSession(host: "127.0.0.1", port: port) { bad in
                    var badInbound = bad.inbound.makeAsyncIterator()
                    _ = try await badInbound.next()
                    try await exchange(bad, &badInbound)
                    var random = SeededRandom(seed: 1)
                    try await bad.send(.raft((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &random) }))
                    // The server closes this connection: its inbound stream ends or fails.
                    do {
                        while try await badInbound.next() != nil {}
                    } catch {}
                }

                let logged = await eventually { serverLogs.contains("frameTooLarge") }
                #expect(logged, "\(serverLogs.texts)")
                // The other connection to the same server still works.
                try await exchange(good, &goodInbound)
            }
        }
        #expect(await record.sessions.sorted() == ["n2", "n3"])
    }
}

extension TestNode {
    /// A copy of a test node with another configuration (same certificate and TLS).
    init(copying node: TestNode, configuration: MeshConfiguration) {
        self.id = node.id
        self.configuration = configuration
        self.tls = node.tls
    }
}

/// Completes its promise when TLS finishes, or fails it if the connection errs or closes first.
final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>
    private var done = false
    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    private func complete(_ result: Result<Void, any Error>) {
        guard !self.done else { return }
        self.done = true
        self.promise.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.handshakeCompleted) = event as? TLSUserEvent { self.complete(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.complete(.failure(error))
        context.fireErrorCaught(error)
    }
    func channelInactive(context: ChannelHandlerContext) {
        self.complete(.failure(ChannelError.alreadyClosed))
        context.fireChannelInactive()
    }
}
