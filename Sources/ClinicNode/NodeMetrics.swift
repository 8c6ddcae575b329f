import Consensus
import Services
import AdminAPI
import Foundation
import Metrics
import Prometheus
import Synchronization

/// One node's metrics: swift-metrics handles over a Prometheus registry of the node's own, so
/// several nodes in one process (the tests) never share or double-count. `clinicmesh node run`
/// also bootstraps the process-wide `MetricsSystem` with `factory`, once, so library metrics land
/// in the same registry. Every name is listed in `Cluster/CONFIG.md`, "Metrics".
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    // Raft.
    let raftTerm: Metrics.Gauge
    let raftIsLeader: Metrics.Gauge
    let raftHasLeader: Metrics.Gauge
    let raftCommitIndex: Metrics.Gauge
    let raftAppliedIndex: Metrics.Gauge
    let raftVoters: Metrics.Gauge
    let raftLearners: Metrics.Gauge
    let leaderChanges: Metrics.Counter
    let roleChanges: Metrics.Counter
    // Leases.
    let blocksHeld: Metrics.Gauge
    let blocksTotal: Metrics.Gauge
    let blocksWithoutLease: Metrics.Gauge
    let takeoversStarted: Metrics.Counter
    let evictionsApplied: Metrics.Counter
    let live: Metrics.Gauge
    // Store, disk, the node.
    let writesRefused: Metrics.Gauge
    let parkedChanges: Metrics.Gauge
    let reviewItems: Metrics.Gauge
    let diskFree: Metrics.Gauge
    let diskSize: Metrics.Gauge
    let consensusFailed: Metrics.Gauge
    let uptime: Metrics.Gauge
    let localChanges: Metrics.Gauge

    private struct Seen {
        var leader: String?
        var boundPort: Int?
    }
    private let seen = Mutex(Seen())

    /// Booking latency buckets: quorum-durable bookings take milliseconds on a LAN, takeovers and
    /// forwarding up to seconds, and the admin API's timeout caps them at 60 s.
    static let bookingBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    /// Consensus log group commits: an fsync on a healthy disk takes about a millisecond; a VM's
    /// disk stalls one for hundreds, and every booking waiting on it waits as long.
    static let diskWriteBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000),
    ]

    public init(nodeID: String, department: String, clusterID: String, schemaVersion: Int) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["clinicmesh_booking_duration_seconds"] = Self.bookingBuckets
        factory.durationHistogramBuckets["clinicmesh_consensus_disk_write_seconds"] = Self.diskWriteBuckets
        self.factory = factory
        func gauge(_ name: String) -> Metrics.Gauge { Metrics.Gauge(label: name, factory: factory) }
        func counter(_ name: String) -> Metrics.Counter { Metrics.Counter(label: name, factory: factory) }
        raftTerm = gauge("clinicmesh_raft_term")
        raftIsLeader = gauge("clinicmesh_raft_is_leader")
        raftHasLeader = gauge("clinicmesh_raft_has_leader")
        raftCommitIndex = gauge("clinicmesh_raft_commit_index")
        raftAppliedIndex = gauge("clinicmesh_raft_applied_index")
        raftVoters = gauge("clinicmesh_raft_voters")
        raftLearners = gauge("clinicmesh_raft_learners")
        leaderChanges = counter("clinicmesh_raft_leader_changes_total")
        roleChanges = counter("clinicmesh_raft_role_changes_total")
        blocksHeld = gauge("clinicmesh_lease_blocks_held")
        blocksTotal = gauge("clinicmesh_lease_blocks")
        blocksWithoutLease = gauge("clinicmesh_lease_blocks_without_valid_lease")
        takeoversStarted = counter("clinicmesh_lease_takeovers_started_total")
        evictionsApplied = counter("clinicmesh_evictions_applied_total")
        live = gauge("clinicmesh_node_live")
        writesRefused = gauge("clinicmesh_store_writes_refused")
        parkedChanges = gauge("clinicmesh_store_parked_changes")
        reviewItems = gauge("clinicmesh_store_review_items")
        diskFree = gauge("clinicmesh_disk_free_bytes")
        diskSize = gauge("clinicmesh_disk_size_bytes")
        consensusFailed = gauge("clinicmesh_consensus_failed")
        uptime = gauge("clinicmesh_uptime_seconds")
        localChanges = gauge("clinicmesh_store_local_changes")
        Metrics.Gauge(label: "clinicmesh_node_info", dimensions: [
            ("node", nodeID), ("department", department), ("cluster", clusterID), ("schema_version", "\(schemaVersion)"),
        ], factory: factory).record(1)
    }

    /// The text exposition format (version 0.0.4) of everything registered.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    /// The port the metrics endpoint bound (nil until it listens, or without `metrics` in the config).
    public var boundPort: Int? { seen.withLock { $0.boundPort } }
    func bound(port: Int?) { seen.withLock { $0.boundPort = port } }

    // MARK: Events

    /// Called after every consensus step: counts each change of the leader this node knows
    /// (a lost leader, then a new one, counts once: when the new one is known).
    func observeLeader(_ leader: String?, term: UInt64) {
        let changed = seen.withLock { s -> Bool in
            guard let leader, leader != s.leader else { return false }
            defer { s.leader = leader }
            return s.leader != nil
        }
        if changed { leaderChanges.increment() }
    }

    func roleChanged(_ role: RaftRole, term: UInt64) {
        roleChanges.increment()
        raftTerm.record(Int64(clamping: term))
        raftIsLeader.record(role == .leader ? 1 : 0)
    }

    /// A committed lease change as this node applied it. `previous` is the block's holder before.
    func leaseChanged(block: String, holder: String, previous: String?) {
        let kind = previous == nil ? "grant" : previous == holder ? "reacquire" : "takeover"
        Metrics.Counter(label: "clinicmesh_lease_changes_total", dimensions: [("kind", kind), ("scope", Self.scope(of: block))], factory: factory).increment()
    }

    func takeoverStarted() { takeoversStarted.increment() }
    func evictionApplied() { evictionsApplied.increment() }

    /// Quota buckets are leased like slot blocks; keep them apart so slot numbers stay readable.
    static func scope(of block: String) -> String { block.hasPrefix("quota/") ? "quota" : "slots" }

    /// One answer of the booking primitive and how long it took at this node.
    func booking(_ answer: BookAnswer, cancel: Bool, duration: Duration) {
        let kind = cancel ? "cancel" : "book"
        Metrics.Counter(label: "clinicmesh_bookings_total", dimensions: [("kind", kind), ("outcome", answer.outcome)], factory: factory).increment()
        Metrics.Timer(label: "clinicmesh_booking_duration_seconds", dimensions: [("kind", kind), ("outcome", answer.outcome)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(duration))
        if answer.outcome != "booked" {
            refused(reason: answer.code ?? "unknown", by: "booking")
        }
    }

    /// One group commit of a consensus log (`raft` or `bookings`): its writes and one fsync.
    func consensusDiskWrite(log: String, took: Duration) {
        Metrics.Timer(label: "clinicmesh_consensus_disk_write_seconds", dimensions: [("log", log)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(took))
    }

    /// A request this node refused or could not answer, by stable reason code.
    func refused(reason: String, by source: String) {
        Metrics.Counter(label: "clinicmesh_requests_refused_total", dimensions: [("reason", reason), ("source", source)], factory: factory).increment()
    }

    /// One admin API command: its name if this node serves it, else "unknown" (the caller's
    /// check keeps the label's values bounded).
    func adminCommand(_ name: String, failed: Bool) {
        Metrics.Counter(label: "clinicmesh_admin_requests_total", dimensions: [("command", name), ("result", failed ? "error" : "ok")], factory: factory)
            .increment()
    }

    func changesSent(to peer: String, count: Int) {
        Metrics.Counter(label: "clinicmesh_replication_changes_sent_total", dimensions: [("peer", peer)], factory: factory).increment(by: count)
    }

    func batchReceived(from peer: String, changes: Int) {
        Metrics.Counter(label: "clinicmesh_replication_batches_received_total", dimensions: [("peer", peer)], factory: factory).increment()
        Metrics.Counter(label: "clinicmesh_replication_changes_received_total", dimensions: [("peer", peer)], factory: factory).increment(by: changes)
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ attoseconds / 1_000_000_000
    }

    // MARK: Sampled on each scrape

    /// Per-peer gauges from the node's status.
    func sample(peers: [PeerStatus]) {
        for p in peers {
            let labels = [("peer", p.id)]
            Metrics.Gauge(label: "clinicmesh_peer_reachable", dimensions: labels, factory: factory).record(p.reachable ? 1 : 0)
            Metrics.Gauge(label: "clinicmesh_peer_inbound_sessions", dimensions: labels, factory: factory).record(p.inboundSessions)
            // -1: never heard back (no acknowledgement yet), so "no lag" and "unknown" stay apart.
            Metrics.Gauge(label: "clinicmesh_replication_lag_changes", dimensions: labels, factory: factory).record(p.lagChanges.map { Int64(clamping: $0) } ?? -1)
            if let offset = p.clockOffsetMs {
                Metrics.Gauge(label: "clinicmesh_peer_clock_offset_seconds", dimensions: labels, factory: factory).record(Double(offset) / 1000)
            }
            if let rtt = p.rttMs {
                Metrics.Gauge(label: "clinicmesh_peer_rtt_seconds", dimensions: labels, factory: factory).record(rtt / 1000)
            }
            if let age = p.lastAntiEntropyMsAgo {
                Metrics.Gauge(label: "clinicmesh_anti_entropy_age_seconds", dimensions: labels, factory: factory).record(Double(age) / 1000)
            }
            if let age = p.lastContactMsAgo {
                Metrics.Gauge(label: "clinicmesh_peer_last_contact_seconds", dimensions: labels, factory: factory).record(Double(age) / 1000)
            }
        }
    }

    /// Raft and lease gauges from the consensus part of the status.
    func sample(consensus c: ConsensusStatus, me: String) {
        raftTerm.record(Int64(clamping: c.term))
        raftIsLeader.record(c.role == RaftRole.leader.rawValue ? 1 : 0)
        raftHasLeader.record(c.leader == nil ? 0 : 1)
        raftCommitIndex.record(Int64(clamping: c.commitIndex))
        raftVoters.record(c.members.filter { $0.role == "voter" && !$0.evicted }.count)
        raftLearners.record(c.members.filter { $0.role == "learner" && !$0.evicted }.count)
        blocksHeld.record(c.members.first { $0.id == me }?.blocksHeld ?? 0)
        blocksTotal.record(c.blocks)
        live.record(c.members.first { $0.id == me }?.live == true ? 1 : 0)
        consensusFailed.record(c.failure == nil ? 0 : 1)
    }

    func sample(appliedIndex: UInt64, blocksWithoutLease: Int) {
        raftAppliedIndex.record(Int64(clamping: appliedIndex))
        self.blocksWithoutLease.record(blocksWithoutLease)
    }

    func sample(store s: NodeStatus, reviewItems: Int?, disk: DiskSpace?, localChanges: UInt64) {
        writesRefused.record(s.writesRefused ? 1 : 0)
        parkedChanges.record(s.parkedChanges)
        if let reviewItems { self.reviewItems.record(reviewItems) }
        if let disk {
            diskFree.record(disk.freeBytes)
            diskSize.record(disk.sizeBytes)
        }
        uptime.record(s.uptimeS)
        self.localChanges.record(Int64(clamping: localChanges))
    }
}

