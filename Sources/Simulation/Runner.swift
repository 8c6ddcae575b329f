// Runs many seeds (in parallel, each one deterministic on its own) and summarises them.

import Consensus
import Foundation

public func runSeed(_ seed: UInt64, options: SimOptions = .init()) -> SeedResult {
    ClusterSimulation(seed: seed, options: options).run()
}

public struct Distribution: Sendable, Codable {
    public var count: Int
    public var min: UInt64
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var max: UInt64
    public init(_ xs: [UInt64]) {
        let s = xs.sorted()
        count = s.count
        func q(_ f: Double) -> UInt64 { s.isEmpty ? 0 : s[Swift.min(s.count - 1, Int(Double(s.count) * f))] }
        min = s.first ?? 0; p50 = q(0.5); p90 = q(0.9); p99 = q(0.99); max = s.last ?? 0
    }
}

public struct FailingSeed: Sendable, Codable {
    public var seed: UInt64
    public var rule: String
    public var detail: String
    public var at_ms: UInt64
    public var replay: String
}

public struct CampaignSummary: Sendable, Codable {
    public var seeds = 0
    public var failures = 0
    public var failing_seeds: [FailingSeed] = []
    public var wall_s = 0.0
    public var seeds_per_s = 0.0
    public var nodes = 0
    public var simulated_ms_per_seed: UInt64 = 0
    public var events = 0
    public var elections = 0
    public var takeovers = 0
    public var quota_trims = 0
    public var records_trimmed = 0
    public var pauses = 0
    public var pauses_longer_than_lease = 0
    public var crashes = 0
    public var partitions = 0
    public var voter_changes = 0
    public var snapshots_installed = 0
    public var bookings_acked = 0
    public var bookings_refused = 0
    public var crashes_losing_unsynced_writes = 0
    public var protocol_point_crashes = 0
    public var disk_stalls = 0
    public var figure8_histories = 0
    public var hotspot_seeds = 0
    public var client_retries = 0
    public var replica_writes = 0
    public var replica_batches = 0
    public var review_items = 0
    public var election_ms: Distribution = Distribution([])
    public var failover_ms: Distribution = Distribution([])
    public var takeover_ms: Distribution = Distribution([])
    public var trace_hash: String?
    public var bug_switch: String?
}

/// Runs seeds `first`, `first+1`, ... on `threads` workers. Stops at `maxSeeds`, or once the
/// wall-time budget is spent, but never before `minSeeds` have run.
public func runSeeds(first: UInt64, minSeeds: Int, maxSeeds: Int, budgetSeconds: Double?, threads: Int,
                     options: SimOptions = .init(), stopAtFirstFailure: Bool = false, onFailure: (@Sendable (SeedResult) -> Void)? = nil) -> CampaignSummary {
    final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var results: [SeedResult] = []
        var failed = false
    }
    let shared = Shared()
    let start = Date()
    DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
        while true {
            shared.lock.lock()
            let i = shared.next
            let elapsed = Date().timeIntervalSince(start)
            let stop = i >= maxSeeds || (stopAtFirstFailure && shared.failed) || (i >= minSeeds && budgetSeconds.map { elapsed >= $0 } == true)
            if !stop { shared.next += 1 }
            shared.lock.unlock()
            if stop { return }
            let r = runSeed(first &+ UInt64(i), options: options)
            if r.failure != nil { onFailure?(r) }
            shared.lock.lock()
            shared.results.append(r)
            if r.failure != nil { shared.failed = true }
            shared.lock.unlock()
        }
    }
    let wall = Date().timeIntervalSince(start)
    var s = summarize(shared.results.sorted { $0.seed < $1.seed }, options: options)
    s.wall_s = (wall * 1000).rounded() / 1000
    s.seeds_per_s = wall > 0 ? (Double(s.seeds) / wall * 100).rounded() / 100 : 0
    return s
}

public func summarize(_ rs: [SeedResult], options: SimOptions) -> CampaignSummary {
    var s = CampaignSummary()
    s.seeds = rs.count
    s.nodes = options.nodes
    s.simulated_ms_per_seed = options.faultMs + options.quietMs
    s.bug_switch = options.bug?.rawValue
    var el: [UInt64] = [], fo: [UInt64] = [], to: [UInt64] = []
    for r in rs {
        let t = r.stats
        s.events += t.events
        s.elections += t.elections
        s.takeovers += t.takeovers
        s.quota_trims += t.quotaTrims
        s.records_trimmed += t.recordsTrimmed
        s.pauses += t.pauses
        s.pauses_longer_than_lease += t.pausesLongerThanLease
        s.crashes += t.crashes
        s.partitions += t.partitions
        s.voter_changes += t.voterChanges
        s.snapshots_installed += t.snapshotsInstalled
        s.bookings_acked += t.bookingsAcked
        s.bookings_refused += t.bookingsRefused
        s.crashes_losing_unsynced_writes += t.lostUnsyncedWrites
        s.protocol_point_crashes += t.protocolCrashes
        s.disk_stalls += t.diskStalls
        s.figure8_histories += t.figure8Histories
        s.hotspot_seeds += t.hotspot ? 1 : 0
        s.client_retries += t.clientRetries
        s.replica_writes += t.replicaWrites
        s.replica_batches += t.replicaBatches
        s.review_items += t.reviewItems
        el += t.electionMs; fo += t.failoverMs; to += t.takeoverMs
        if let f = r.failure {
            s.failures += 1
            var replay = "clinicmesh simulate --seed \(r.seed) --nodes \(options.nodes) --json"
            if let b = options.bug { replay += " --bug \(b.rawValue)" }
            if let h = options.hotspot { replay += " --hotspot \(h)" }
            if let f = options.figure8 { replay += " --figure8 \(f)" }
            s.failing_seeds.append(FailingSeed(seed: r.seed, rule: f.rule, detail: f.detail, at_ms: f.atMs, replay: replay))
        }
    }
    s.election_ms = Distribution(el)
    s.failover_ms = Distribution(fo)
    s.takeover_ms = Distribution(to)
    if rs.count == 1 { s.trace_hash = String(format: "%016llx", rs[0].traceHash) }
    return s
}

public func summaryJSON(_ s: CampaignSummary) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return (try? e.encode(s)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}
