import Foundation
import Logging
import Mesh
import NIOCore
import NIOPosix
import PKI
import Testing

@Suite(.serialized, .timeLimit(.minutes(5))) struct ListenerCloseTests {
    /// NIO drops connections it accepted but had not yet handed to `run` when the listener closes;
    /// releasing such an unserved async channel used to trap the process (swift-nio issue 2813).
    @Test func closingTheListenerWhileConnectionsArriveNeitherTrapsNorHangs() async throws {
        let cluster = try TestCluster()
        let n1 = try cluster.node("n1")
        let base = try TestNode(cluster: cluster, id: "n1", issued: n1, membership: StaticMembership(["n1": [n1.serial]]))
        var configuration = base.configuration
        configuration.handshakeTimeout = .seconds(5)
        let node = TestNode(copying: base, configuration: configuration)
        let (logger, _) = makeLogger("server")
        for _ in 0..<10 {
            let server = try await MeshServer.bind(host: "127.0.0.1", port: 0, configuration: node.configuration, tls: node.tls, logger: logger)
            let port = try #require(server.localAddress?.port)
            let running = Task { try await server.run { session in for try await _ in session.inbound {} } }
            // Plain TCP connections racing the close: some are accepted and handed out, some are
            // accepted and dropped, the rest are refused.
            let clients = await withTaskGroup(of: (any Channel)?.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
                    }
                }
                group.addTask {
                    await server.close()
                    return nil
                }
                var clients: [any Channel] = []
                for await client in group { if let client { clients.append(client) } }
                return clients
            }
            for client in clients { try? await client.close() }
            // Every session the listener handed out ends with its client, so `run` returns.
            try await running.value
        }
    }
}
