import Foundation
import Services
import AdminAPI

// What `clinicmesh status` shows: each node's own alerts (`withAlerts`), and one cluster view
// built from the answers of every node the admin asked (`ClusterReport.build`, a pure function).

extension MeshNode {
    /// Fills in what needs a person (alerts and their sentences), the disk, the review queue.
    func withAlerts(_ status: NodeStatus) -> NodeStatus {
        var s = status
        s.disk = DiskSpace.of(config.dataDir)
        s.reviewItems = try? replica.reviewItems().count
        s.maxClockOffsetMs = config.tuning.maxClockOffsetMillis
        s.metricsAddress = config.metrics.map { "\($0.host):\(metrics.boundPort ?? $0.port)" }
        let alerts = NodeAlerts.of(s, me: config.nodeID)
        s.alerts = alerts
        s.attention = alerts.map(\.text)
        return s
    }
}

