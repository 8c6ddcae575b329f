import ArgumentParser
import ClinicNode
import Foundation
import Logging
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
            let level = Logger.Level(rawValue: logLevel) ?? .info
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "clinicmesh.node")
            let node: MeshNode
            do {
                let nodeConfig = try NodeConfig.load(path: config)
                node = try await MeshNode.open(config: nodeConfig, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("节点启动失败 / node failed to start: \(error)\n".utf8))
                throw ExitCode.failure
            }
            logger.info("节点已启动 / node started", metadata: [
                "node.mesh.port": "\(node.meshPort)", "node.admin.port": "\(node.adminPort)"])
            let group = node.makeServiceGroup(gracefulShutdownSignals: [.sigterm, .sigint])
            do {
                try await group.run()
            } catch {
                logger.error("节点服务出错 / node service failed", metadata: ["node.error": "\(error)"])
                try? node.close()
                throw ExitCode.failure
            }
            try node.close()
        }
    }
}
