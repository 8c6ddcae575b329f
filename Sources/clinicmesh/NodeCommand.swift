import ArgumentParser
import ClinicNode
import DemoAndBench
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// `clinicmesh node run --config FILE`: runs one node until SIGTERM or SIGINT.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "运行节点 / Run a node",
        subcommands: [Run.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "按配置文件启动节点（存储、网状网络、管理接口），SIGTERM/SIGINT 时有序停止 / Start a node from its config file (store, mesh, admin API); SIGTERM/SIGINT stop it in order",
            discussion: "配置格式见 Cluster/CONFIG.md / The config format is in Cluster/CONFIG.md."
        )

        @Option(name: .long, help: "节点配置文件（JSON）/ Node config file (JSON)")
        var config: String

        @Option(name: .long, help: "日志级别 / Log level (trace, debug, info, notice, warning, error)")
        var logLevel: String = "info"

        func run() async throws {
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw ValidationError("--log-level 只能是 trace、debug、info、notice、warning、error、critical 之一。\n--log-level must be one of trace, debug, info, notice, warning, error, critical.")
            }
            let nodeConfig: NodeConfig
            do {
                nodeConfig = try NodeConfig.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("节点启动失败 / node failed to start: \(error)\n".utf8))
                throw ExitCode.failure
            }
            // Every log line of the process, libraries' included, names the node.
            let nodeID = nodeConfig.nodeID
            LoggingSystem.bootstrap({ label, provider in
                LazyMetadataLogHandler(label: label, level: level, provider: provider)
            }, metadataProvider: Logger.MetadataProvider { ["node.id": "\(nodeID)"] })
            let logger = Logger(label: "clinicmesh.node")
            let node: MeshNode
            do {
                node = try await MeshNode.open(config: nodeConfig, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("节点启动失败 / node failed to start: \(error)\n".utf8))
                throw ExitCode.failure
            }
            // One node per process here: the process-wide metrics system is this node's registry.
            MetricsSystem.bootstrap(node.metrics.factory)
            logger.info("节点已启动 / node started", metadata: [
                "node.mesh.port": "\(node.meshPort)", "node.admin.port": "\(node.adminPort)"])
            // The tool's own parts: the demo data's admin command, the bench load if configured.
            DemoData.install(on: node)
            let bench = nodeConfig.bench.map { BenchLoad(node: node, load: $0) }
            let extra = bench.map { load in [NodeService(name: "bench") { await load.run() }] } ?? []
            let group = node.makeServiceGroup(gracefulShutdownSignals: [.sigterm, .sigint], extra: extra)
            do {
                try await group.run()
            } catch {
                logger.error("节点服务出错 / node service failed", metadata: ["node.error": "\(error)"])
                try? node.close()
                throw ExitCode.failure
            }
            try node.close()
            bench?.writeReport()
        }
    }
}
