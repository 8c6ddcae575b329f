// Replicated records beside consensus: every simulated node keeps an in-memory replica on the pure
// CRDT merge, registration desks and admins write to it (often to the same identity on two nodes at
// once), and nodes pull each other's changes by anti-entropy over the same faulty network. After the
// quiet, every replica must hold identical tables (invariant 3).
//
// Its random choices come from a generator of its own, seeded by the run's seed, so the consensus
// part of every seed runs exactly as it would without replicas.

import Consensus
import ReplicatedCore

/// Demographics and master data, over few identities so that nodes often write the same row.
let simTables: [String: [String]] = [
    "patient": ["name", "mobile", "sex"],
    "practitioner": ["name", "title", "department"],
]

enum ReplicationMessage {
    case pull(VersionVector)
    case batch(ChangeBatch)
}

extension ClusterSimulation {
    static let simPatients: UInt64 = 12
    static let simPractitioners: UInt64 = 4
    /// Changes per anti-entropy batch: small, so batches are often cut short.
    static let simBatchLimit = 64

    func startReplication() {
        for n in nodes { schedule(replicationRng.below(300_000), .antiEntropy(n.idx, life: n.life)) }
        schedule(300_000, .replicaWrite)
    }

    /// The node's wall clock as its replica reads it: true time plus a fixed offset within the HLC
    /// bound (the guard for larger offsets is the store's). Most nodes' clocks agree to the
    /// millisecond, so two writes at one instant on two nodes carry the same stamp.
    func replicaWallMs(_ n: SimNode) -> Int64 { 1_795_000_000_000 + Int64(now / 1000) + n.replicaClockOffsetMs }

    /// One write at a random node that is running: a registration (sometimes of one patient at two
    /// desks at the same instant), an edit of it, a master-data edit, or a registration deleted as
    /// entered in error. Writes stop when the faults do.
    func replicaWrite() {
        guard now < opt.faultMs * 1000 else { return }
        schedule(now + 20_000 + replicationRng.below(80_000), .replicaWrite)
        let running = nodes.filter { $0.up && !$0.paused }
        guard !running.isEmpty else { return }
        let n = running[Int(replicationRng.below(UInt64(running.count)))]
        let wall = replicaWallMs(n)
        let roll = replicationRng.below(100)
        do {
            if roll < 50 {
                let key = "patient-\(replicationRng.below(Self.simPatients))"
                try register(key, at: n)
                let others = running.filter { $0 !== n }
                if !others.isEmpty, replicationRng.chance(0.2) {
                    let m = others[Int(replicationRng.below(UInt64(others.count)))]
                    try register(key, at: m)
                    stats.replicaWrites += 1
                    hashEvent(16, m.idx, Int(roll), m.replica.lastSeq)
                }
            } else if roll < 90 {
                let key = "practitioner-\(replicationRng.below(Self.simPractitioners))"
                let titles: [ColumnValue] = ["主任医师", "副主任医师", "主治医师"]
                try n.replica.upsert("practitioner", key: key, values: [
                    "name": .text("doctor-\(key)"), "title": titles[Int(replicationRng.below(3))],
                    "department": .text("dept-\(replicationRng.below(3))"),
                ], wallMillis: wall)
            } else {
                let key = "patient-\(replicationRng.below(Self.simPatients))"
                guard n.replica.row("patient", key)?.isLive == true else { return }
                try n.replica.delete("patient", key: key, wallMillis: wall)
            }
        } catch {
            fail("replicated writes", "n\(n.idx + 1) could not write: \(error)")
            return
        }
        stats.replicaWrites += 1
        hashEvent(16, n.idx, Int(roll), n.replica.lastSeq)
    }

    /// Registers a patient, or edits the mobile number of one registered here already.
    func register(_ key: String, at n: SimNode) throws(MemoryReplica.WriteError) {
        let mobile = ColumnValue.text("1380000000\(replicationRng.below(3))")
        if n.replica.row("patient", key)?.isLive == true {
            try n.replica.update("patient", key: key, values: ["mobile": mobile], wallMillis: replicaWallMs(n))
        } else {
            let sex: ColumnValue = replicationRng.chance(0.5) ? "F" : "M"
            try n.replica.insert("patient", key: key, values: ["name": .text("name-\(key)"), "mobile": mobile, "sex": sex],
                                 wallMillis: replicaWallMs(n))
        }
    }

    /// A node asks a random peer for what its version vector lacks.
    func startAntiEntropy(_ n: SimNode) {
        let peers = nodes.indices.filter { $0 != n.idx }
        guard !peers.isEmpty else { return }
        let peer = peers[Int(replicationRng.below(UInt64(peers.count)))]
        hashEvent(17, n.idx, peer)
        sendReplication(from: n.idx, to: peer, .pull(n.replica.versionVector))
    }

    func receiveReplication(_ n: SimNode, from: Int, _ m: ReplicationMessage) {
        switch m {
        case .pull(let vector):
            let batch = n.replica.changes(since: vector, limit: Self.simBatchLimit)
            if batch.isEmpty && vector.dominates(batch.coverage) { return }
            sendReplication(from: n.idx, to: from, .batch(batch))
        case .batch(let batch):
            let report = n.replica.apply(batch, wallMillis: replicaWallMs(n))
            stats.replicaBatches += 1
            stats.reviewItems += report.reviewItems
            hashEvent(18, n.idx, from, UInt64(report.applied) << 32 | UInt64(report.superseded))
        }
    }

    /// The consensus messages' network: cut links, and while faults last, loss, delay, reordering,
    /// very late and duplicated deliveries.
    func sendReplication(from: Int, to: Int, _ m: ReplicationMessage) {
        if blockedLink[from][to] { return }
        if faultsActive {
            if replicationRng.chance(0.02) { return }
            var d = 300 + replicationRng.below(4_700)
            if replicationRng.chance(0.05) { d += replicationRng.below(100_000) }
            if replicationRng.chance(0.003) { d += 500_000 + replicationRng.below(2_500_000) }
            schedule(now + d, .replicate(to: to, from: from, m))
            if replicationRng.chance(0.01) { schedule(now + d + replicationRng.below(50_000), .replicate(to: to, from: from, m)) }
        } else {
            schedule(now + 300 + replicationRng.below(4_700), .replicate(to: to, from: from, m))
        }
    }

    /// Invariant 3: after the quiet, every replica holds identical replicated tables (every row
    /// ever seen, live or not, with its values and versions).
    func checkReplicatedTablesConverge() {
        let reference = nodes[0].replica.content
        for n in nodes.dropFirst() {
            let other = n.replica.content
            guard other != reference else { continue }
            let key = Set(reference.keys).union(other.keys).sorted().first { reference[$0] != other[$0] }!
            fail("replicas converge after the quiet",
                 "\(key.table)[\(key.key)]: n1 has \(describe(reference[key])), n\(n.idx + 1) has \(describe(other[key])), \(opt.quietMs) ms after faults stopped")
            return
        }
    }

    func describe(_ row: MergeRow?) -> String {
        guard let row else { return "no row" }
        let versions = row.clock.entries.map { "\($0.slot == RowClock.aliveSlot ? "alive" : String($0.slot))@\($0.version)" }
        return "alive \(row.alive) \(row.values) [\(versions.joined(separator: " "))]"
    }
}
