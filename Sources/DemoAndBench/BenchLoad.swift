import Foundation
import ClinicNode
import Services
import Synchronization
import ReplicatedCore
import ReplicatedStore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The node side of `clinicmesh bench replication`: a steady write load, the local commit time of
/// every row, and the time every row from a peer became visible here (both on the wall clock,
/// which the bench's processes share), written to a report when the node has stopped.
package final class BenchLoad: Sendable {
    static let prefix = "bench/"
    let node: MeshNode
    let load: NodeConfig.BenchLoad
    private let times = Mutex<(commits: [String: Int64], seen: [String: Int64])>(([:], [:]))

    /// Starts noting the bench rows that arrive from peers.
    package init(node: MeshNode, load: NodeConfig.BenchLoad) {
        self.node = node
        self.load = load
        node.observeAppliedBatches { [self] batch in noteArrivals(batch) }
    }

    static func wallMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// Writes the load, then stays up (a service that returns would stop the node) so that peers
    /// drain, until the node shuts down.
    package func run() async {
        await cancelWhenGracefulShutdown {
            // Start once every peer link is up (or after 30 s), so all nodes load together.
            let clock = ContinuousClock()
            let waitUntil = clock.now.advanced(by: .seconds(30))
            while clock.now < waitUntil, !Task.isCancelled {
                if self.node.allPeersLinked { break }
                try? await Task.sleep(for: .milliseconds(20))
            }
            let start = clock.now
            var written = 0
            while !Task.isCancelled {
                let elapsed = clock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if seconds >= self.load.seconds { break }
                let due = Int(seconds * self.load.rowsPerS)
                if due > written {
                    let id = self.node.config.nodeID
                    let keys = (written..<due).map { "\(Self.prefix)\(id)/\($0)" }
                    do {
                        try self.node.write { w in
                            for (offset, key) in keys.enumerated() {
                                _ = try w.insert("slot", key: key, values: [
                                    "schedule": .text(id), "sequence": .integer(Int64(written + offset)), "status": .text("free")])
                            }
                        }
                        let now = Self.wallMicros()
                        self.times.withLock { t in for key in keys { t.commits[key] = now } }
                        written = due
                    } catch {
                        self.node.logger.warning("压测写入失败 / bench write failed", metadata: ["node.error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        try? await gracefulShutdown()
    }

    private func noteArrivals(_ batch: ReplicatedCore.ChangeBatch) {
        let now = Self.wallMicros()
        let keys = batch.changes.filter { $0.table == "slot" && $0.column == ReplicaSchema.aliveColumn && $0.key.hasPrefix(Self.prefix) }.map(\.key)
        guard !keys.isEmpty else { return }
        times.withLock { t in
            for key in keys where t.seen[key] == nil { t.seen[key] = now }
        }
    }

    /// Writes the report `clinicmesh bench replication` reads (after the node stopped).
    package func writeReport() {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let report = times.withLock { t in BenchNodeReport(node: node.config.nodeID, commits: t.commits, seen: t.seen, cpuS: cpu) }
        do {
            try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: load.report))
        } catch {
            node.logger.error("无法写出压测报告 / cannot write the bench report", metadata: ["node.error": "\(error)"])
        }
    }
}

/// What `clinicmesh bench replication` reads back from each node.
public struct BenchNodeReport: Codable, Sendable {
    public var node: String
    public var commits: [String: Int64]
    public var seen: [String: Int64]
    public var cpuS: Double
}
