import Foundation
import ReplicatedCore
import ReplicatedStore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The node side of `clinicmesh bench replication`: a steady write load, the local commit time of
/// every row, and the time every row from a peer became visible here (both on the wall clock,
/// which the bench's processes share), written to a report when the node stops.
extension MeshNode {
    static let benchPrefix = "bench/"

    static func wallMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    func runBenchLoad(_ load: NodeConfig.BenchLoad) async {
        await cancelWhenGracefulShutdown {
            // Start once every peer link is up (or after 30 s), so all nodes load together.
            let clock = ContinuousClock()
            let waitUntil = clock.now.advanced(by: .seconds(30))
            while clock.now < waitUntil, !Task.isCancelled {
                if self.runtime.withLock({ $0.peers.values.allSatisfy(\.outboundUp) }) { break }
                try? await Task.sleep(for: .milliseconds(20))
            }
            let start = clock.now
            var written = 0
            while !Task.isCancelled {
                let elapsed = clock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if seconds >= load.seconds { break }
                let due = Int(seconds * load.rowsPerS)
                if due > written {
                    let keys = (written..<due).map { "\(Self.benchPrefix)\(self.config.nodeID)/\($0)" }
                    let node = self.config.nodeID
                    do {
                        try self.write { w in
                            for (offset, key) in keys.enumerated() {
                                _ = try w.insert("slot", key: key, values: [
                                    "schedule": .text(node), "sequence": .integer(Int64(written + offset)), "status": .text("free")])
                            }
                        }
                        let now = Self.wallMicros()
                        self.runtime.withLock { r in for key in keys { r.benchCommits[key] = now } }
                        written = due
                    } catch {
                        self.logger.warning("压测写入失败 / bench write failed", metadata: ["node.error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        // The load is over; stay up (a service that returns would stop the node) so that peers
        // drain, until the bench stops the node.
        try? await gracefulShutdown()
    }

    func noteBenchArrivals(_ batch: ReplicatedCore.ChangeBatch) {
        let now = Self.wallMicros()
        let keys = batch.changes.filter { $0.table == "slot" && $0.column == ReplicaSchema.aliveColumn && $0.key.hasPrefix(Self.benchPrefix) }.map(\.key)
        guard !keys.isEmpty else { return }
        runtime.withLock { r in
            for key in keys where r.benchSeen[key] == nil { r.benchSeen[key] = now }
        }
    }

    func writeBenchReport(_ load: NodeConfig.BenchLoad) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let report = runtime.withLock { r in BenchNodeReport(node: config.nodeID, commits: r.benchCommits, seen: r.benchSeen, cpuS: cpu) }
        do {
            try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: load.report))
        } catch {
            logger.error("无法写出压测报告 / cannot write the bench report", metadata: ["node.error": "\(error)"])
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
