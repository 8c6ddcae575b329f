import ClinicNode
import Foundation
import Logging
@testable import Mesh
import NIOCore
import NIOPosix
import PKI
import Synchronization
import TestSupport
import Testing

@Suite("Node shutdown", .serialized, .timeLimit(.minutes(5)))
struct ShutdownTests {
    /// Every message a raw test client received.
    final class Received: Sendable {
        let messages = Mutex<[MeshMessage]>([])
        var count: Int { messages.withLock { $0.count } }
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = MeshMessage
        let received: Received
        init(_ received: Received) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let message = unwrapInboundIn(data)
            received.messages.withLock { $0.append(message) }
        }
    }

    /// The race behind the once-in-a-while hang of the cluster tests: a peer's connection that the
    /// listener accepted before it closed, but that became a session only after the listener had
    /// closed the open sessions. Such a session was never closed, so the listener (and the whole
    /// node's shutdown) waited for it forever while the peer kept it alive with heartbeats.
    @Test("a peer session that completes its Hello after the listener closed is closed too, and the node stops")
    func lateSessionDoesNotHoldShutdown() async throws {
        let files = try TestClusterFiles(ids: ["neike", "waike"])
        defer { files.remove() }
        let nodes = try await startCluster(files, only: ["neike"])
        let neike = nodes["neike"]!
        let stopped = Mutex(false)
        let waiter = Task {
            let result = await neike.task.result
            stopped.withLock { $0 = true }
            return result
        }

        // A peer (waike's certificate) that completes TLS now and sends its Hello only later.
        let neikeSerial = try #require(files.configs["waike"]!.peers.first { $0.id == "neike" }?.serials.first)
        let tls = try MeshTLS(credentials: files.credentials("waike", kind: .node), membership: StaticMembership(["neike": [neikeSerial]]))
        let received = Received()
        let logger = quietLogger("late-peer")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(try tls.makeClientHandler(expectedNodeID: "neike", record: PeerRecord(), logger: logger))
                    try sync.addHandler(MeshMessageDecoder.handler(maximumFrameSize: MeshWire.defaultMaximumFrameSize))
                    try sync.addHandler(MeshMessageEncoderHandler())
                    try sync.addHandler(Collector(received))
                }
            }
            .connect(host: "127.0.0.1", port: neike.node.meshPort).get()
        defer { channel.close(promise: nil) }
        // The node's Hello arrives once TLS is done: the listener has accepted this connection.
        #expect(await eventually { received.count >= 1 })

        await neike.group.triggerGracefulShutdown()
        // Wait until the listener no longer accepts (it closed, and with it the open sessions).
        #expect(await eventually {
            do {
                let probe = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: neike.node.meshPort).get()
                try? await probe.close()
                return false
            } catch {
                return true
            }
        })

        // Only now does the connection become a session on the node. On a loaded machine the node
        // may already have closed it (a peer that sends no Hello in time is cut off): the write
        // then fails, and what follows must hold all the same.
        try? await channel.writeAndFlush(MeshMessage.hello(Hello(schemaVersion: 1, nodeID: "waike", clusterID: files.clusterID))).get()
        #expect(await eventually(timeout: .seconds(30)) { !channel.isActive }, "the node must close a session that starts while it shuts down")
        #expect(await eventually(timeout: .seconds(30)) { stopped.withLock { $0 } }, "the node's services must all stop")

        // Let a node that did hang finish, so that the test ends either way.
        try? await channel.close()
        _ = try? await waiter.value.get()
        try neike.node.close()
    }
}
