import Consensus
import Services
import AdminAPI
import Foundation
import Hummingbird
import Logging
import NIOCore

extension MeshNode {
    /// Serves `GET /metrics` (Prometheus text format) over plain HTTP on `metrics.host:metrics.port`.
    /// Plain HTTP because Prometheus scrapes it on the department's management network: it
    /// carries counts and states only, never personal data. Runs until the graceful shutdown.
    func runMetricsEndpoint(_ endpoint: NodeConfig.Endpoint) async throws {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let body = await self.scrapeMetrics()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        var listenerLogger = logger
        listenerLogger[metadataKey: "node.listener"] = "metrics"
        let httpLogger = listenerLogger
        let metrics = self.metrics
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(endpoint.host, port: endpoint.port), serverName: "clinicmesh-metrics"),
            onServerRunning: { channel in
                metrics.bound(port: channel.localAddress?.port)
                httpLogger.info("指标端点监听中 / metrics endpoint listening", metadata: ["node.metrics.port": "\(channel.localAddress?.port ?? -1)"])
            },
            logger: httpLogger)
        do {
            try await app.run()
        } catch {
            throw NodeError(.startup, zh: "无法在 \(endpoint.host):\(endpoint.port) 提供指标端点：\(error)；请检查 metrics.host/metrics.port 是否被占用。",
                            en: "cannot serve metrics on \(endpoint.host):\(endpoint.port): \(error); check that metrics.host/metrics.port is free.")
        }
    }

    /// Refreshes the sampled gauges, then renders every metric. The store reads run off the
    /// cooperative pool; a failing read leaves its gauge at the last value rather than failing the scrape.
    func scrapeMetrics() async -> [UInt8] {
        if let status = try? await offload({ try self.status() }) {
            metrics.sample(peers: status.peers)
            if let c = status.consensus { metrics.sample(consensus: c, me: config.nodeID) }
            let reviewItems = try? await offload { try self.replica.reviewItems().count }
            let own = status.versionVector.filter { $0.key.hasPrefix(config.nodeID + "#") }.values.reduce(0, +)
            metrics.sample(store: status, reviewItems: reviewItems, disk: DiskSpace.of(config.dataDir), localChanges: own)
        }
        let cluster = consensus.view.cluster
        let (applied, unleased) = (cluster.appliedIndex, cluster.blocks.keys.filter { !cluster.leaseValid($0) }.count)
        metrics.sample(appliedIndex: applied, blocksWithoutLease: unleased)
        return metrics.exposition()
    }
}

extension MeshNode {
    /// The booking primitive (`bookUnmeasured`), counted and timed: outcome, refusal reason, latency.
    public func book(_ command: BookCommand) async -> BookAnswer {
        let started = ContinuousClock.now
        let answer = await bookUnmeasured(command)
        metrics.booking(answer, cancel: command.releases != nil, duration: ContinuousClock.now - started)
        return answer
    }
}
