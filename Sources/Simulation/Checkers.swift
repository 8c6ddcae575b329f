// The rules every simulated run is held to. Each failure names the rule and what broke it.

import Consensus

extension ClusterSimulation {
    /// A leader of term T holds every entry committed in a term before T. (A stale candidate
    /// may still win an older term late, from votes granted before the others moved on.)
    func checkLeaderCompleteness(_ n: SimNode, _ term: Term) {
        guard maxCommitted > n.raft.snapshotIndex else { return }
        for i in (n.raft.snapshotIndex + 1)...maxCommitted {
            guard let c = committed[i], let ct = commitTerm[i], ct < term else { continue }
            if n.raft.entry(at: i) != c {
                fail("leader completeness", "n\(n.idx + 1) leads term \(term) without committed entry \(i) (term \(c.term))")
                return
            }
        }
    }

    /// A committed takeover lists every acknowledged booking that was active when it read.
    func checkTakeover(_ c: LeaseChange) {
        let listed = Set(c.collected.map(\.id))
        let trimmed = trimmedAcked(in: c.block, by: QuotaTrim.latest(newestApplied?.state.blocks[c.block]?.trim, c.trim))
        for b in acked.values.sorted(by: { $0.id < $1.id }) where b.block == c.block && b.epoch <= c.fromEpoch && !listed.contains(b.id) && !trimmed.contains(b.id) {
            fail("no acknowledged booking lost", "takeover of \(c.block) to epoch \(c.toEpoch) did not collect acknowledged booking \(b.id) (slot \(b.slot), epoch \(b.epoch))")
            return
        }
    }

    /// The acknowledged records of a quota bucket that `trim` may drop, by the visit date the
    /// client asked for: a reservation, its release, and the refusal of that release, if no
    /// window of a visit still bookable (from `visitsFrom`) reaches that date.
    func trimmedAcked(in block: BlockID, by trim: QuotaTrim?) -> Set<String> {
        guard let trim else { return [] }
        let before = min(trim.reservationsBefore, trim.visitsFrom - simQuotaPolicy.longestWindowDays)
        let reservation = "quota:", release = "release:"
        var dropped: Set<String> = []
        for b in acked.values where b.block == block {
            let day: Int?
            if case .quotaReservation(let tag) = b.kind, !b.id.hasPrefix(reservation) {
                day = tag.visitDay // a probe's, made straight in the bucket
            } else {
                let reserved = b.releases ?? (b.id.hasPrefix(release) ? String(b.id.dropFirst(release.count)) : b.id)
                day = reserved.hasPrefix(reservation) ? quotaRequests[String(reserved.dropFirst(reservation.count))]?.tag.visitDay : nil
            }
            if let day, day < before { dropped.insert(b.id) }
        }
        return dropped
    }

    /// A committed closure lists every acknowledged booking of its block, and its final records
    /// hold no slot twice.
    func checkClosure(_ c: BlockClosure) {
        let listed = Set(c.records.map { "\($0.id)@\($0.epoch)" })
        for b in acked.values.sorted(by: { $0.id < $1.id }) where b.block == c.block && b.epoch <= c.fromEpoch && !listed.contains("\(b.id)@\(b.epoch)") {
            fail("no acknowledged booking lost", "closing \(c.block) at epoch \(c.fromEpoch) did not keep acknowledged booking \(b.id) (slot \(b.slot), epoch \(b.epoch))")
            return
        }
        for (slot, records) in c.finalSlots.sorted(by: { $0.key < $1.key }) where records.count > 1 {
            fail("never two active bookings for one slot", "closed \(c.block) slot \(slot) has \(records.map { "\($0.id)@e\($0.epoch)" }.sorted())")
            return
        }
    }

    func checkSafety(full: Bool) {
        let live = nodes.filter(\.up)
        if let ahead = nodes.max(by: { $0.cluster.appliedIndex < $1.cluster.appliedIndex }),
           ahead.cluster.appliedIndex >= newestApplied?.state.appliedIndex ?? 0 {
            newestApplied = (ahead.cluster, ahead.idx)
        }
        guard let (latest, latestNode) = newestApplied else { return }
        // Per replica: what this replica would show right now.
        for n in live {
            if let bad = doubleBooked(state: n.cluster, records: { n.booking.store.records(in: $0) }) {
                fail("never two active bookings for one slot", "on n\(n.idx + 1): \(bad)")
                return
            }
        }
        // After merging everything anywhere (memory or disk) under the newest history. Copies of
        // one record (same request and epoch) are not merged away: `slotViews` counts them once,
        // and a retry re-booked under a later epoch is another record.
        var byBlock: [BlockID: [Booking]] = [:]
        for block in latest.blocks.keys {
            var records: [Booking] = []
            for n in nodes {
                records += n.diskBooking.records(in: block)
                if n.up { records += n.booking.store.records(in: block) }
            }
            byBlock[block] = records
        }
        if let bad = doubleBooked(state: latest, records: { byBlock[$0] ?? [] }) {
            fail("never two active bookings for one slot", "after merging all replicas: \(bad)")
            return
        }
        // Per block, once: its slot views, the bookings valid releases name, and confirmations by hold.
        var views: [BlockID: (views: [Int: [Booking]], unknown: Bool)] = [:]
        var releasedNames: [BlockID: Set<String>] = [:]
        var confirmationsOf: [BlockID: [String: [String]]] = [:]
        func blockFacts(_ block: BlockID) {
            guard views[block] == nil else { return }
            let records = byBlock[block] ?? []
            views[block] = slotViews(block: block, bookings: records, state: latest)
            let collected = latest.blocks[block]?.collected ?? []
            var released = Set(collected.compactMap(\.releases))
            var confirmations: [String: [String]] = [:]
            for r in records {
                if let t = r.releases, bookingStatus(r, in: latest) == .active { released.insert(t) }
                if let h = r.confirms { confirmations[h, default: []].append(r.id) }
            }
            for r in collected { if let h = r.confirms { confirmations[h, default: []].append(r.id) } }
            releasedNames[block] = released
            confirmationsOf[block] = confirmations
        }
        var holdingUnderQuota: [String: [String]] = [:] // patient -> request ids
        var trimmed: [BlockID: Set<String>] = [:]
        for id in acked.keys.sorted() {
            let b = acked[id]!
            if let trim = latest.blocks[b.block]?.trim {
                if trimmed[b.block] == nil { trimmed[b.block] = trimmedAcked(in: b.block, by: trim) }
                if trimmed[b.block]!.contains(b.id) { continue }
            }
            if latest.closed.contains(b.block) {
                // Acknowledged after the closure was checked: it must be among the final records too.
                if closures[b.block]?.records.contains(where: { $0.id == b.id && $0.epoch == b.epoch }) != true {
                    let c = closures[b.block]
                    let same = c?.records.filter { $0.id == b.id }.map { "epoch \($0.epoch)" } ?? []
                    fail("no acknowledged booking lost", "booking \(b.id) (\(b.block) slot \(b.slot), epoch \(b.epoch)) is not among its closed block's final records (closed from epoch \(c?.fromEpoch ?? 0) to \(c?.toEpoch ?? 0); same id: \(same))")
                    return
                }
                continue
            }
            let s = bookingStatus(b, in: latest)
            if s != .active {
                fail("no acknowledged booking lost", "booking \(b.id) (\(b.block) slot \(b.slot), epoch \(b.epoch)) is \(s) under epoch \(latest.blocks[b.block]?.epoch ?? 0) on n\(latestNode + 1)")
                return
            }
            // A booking leaves its slot only by a valid release of it (a patient's cancellation).
            guard !b.isRelease else { continue }
            blockFacts(b.block)
            let view = views[b.block]!
            if view.unknown { continue }
            // A release names the booking, the hold a confirmation confirms, or a hold's confirmation.
            let names = [b.id, b.confirms].compactMap { $0 } + (confirmationsOf[b.block]![b.id] ?? [])
            let releasedValidly = names.contains(where: releasedNames[b.block]!.contains)
            // A hold leaves its slot to its own confirmation, too.
            let holder = holdingBooking(view.views[b.slot])
            if holder?.id != b.id, holder?.confirms != b.id || holder?.patient != b.patient, !releasedValidly {
                let now = view.views[b.slot].map { $0.map { "\($0.id)@e\($0.epoch)g\($0.generation)" } } ?? []
                fail("no acknowledged booking lost", "booking \(b.id) (\(b.block) slot \(b.slot)) no longer holds its slot (now \(now)) and was never released")
                return
            }
            if let q = quotaRequests[b.id], !releasedValidly { holdingUnderQuota[q.patient, default: []].append(b.id) }
        }
        // Per-person quotas hold across nodes and blocks: the active bookings keep every rule.
        for patient in holdingUnderQuota.keys.sorted() {
            let ids = holdingUnderQuota[patient]!.sorted()
            let tags = ids.compactMap { quotaRequests[$0]?.tag }
            if !simQuotaPolicy.holds(for: tags) {
                fail("quota never exceeded", "\(patient) holds \(zip(ids, tags).map { "\($0.0) day \($0.1.visitDay) \($0.1.department)" })")
                return
            }
        }
        if full {
            lastCheckpointLogMatch = now
            checkLogMatching()
        }
    }

    /// A slot with two valid records at its top generation, judged by `state` (`records`: a block's).
    func doubleBooked(state: ClusterState, records: (BlockID) -> [Booking]) -> String? {
        for block in state.blocks.keys.sorted() {
            let v = slotViews(block: block, bookings: records(block), state: state)
            if v.unknown { continue }
            for slot in v.views.keys.sorted() where v.views[slot]!.count > 1 {
                let ids = v.views[slot]!.map { "\($0.id)@e\($0.epoch)" }.sorted().joined(separator: ", ")
                return "\(block) slot \(slot) has \(ids) active under epoch \(state.blocks[block]!.epoch)"
            }
        }
        return nil
    }

    /// If two logs hold an entry with the same index and term, they are identical up to there.
    func checkLogMatching() {
        let live = nodes.filter(\.up)
        for a in 0..<live.count {
            for b in (a + 1)..<max(a + 1, live.count) {
                let x = live[a].raft, y = live[b].raft
                let lo = max(x.snapshotIndex, y.snapshotIndex) + 1
                let hi = min(x.lastIndex, y.lastIndex)
                guard hi >= lo else { continue }
                var i = hi
                while i >= lo, x.termAt(i) != y.termAt(i) { i -= 1 }
                guard i >= lo else { continue }
                for j in lo...i where x.entry(at: j) != y.entry(at: j) {
                    fail("log matching", "n\(live[a].idx + 1) and n\(live[b].idx + 1) agree on term at \(i) but differ at \(j)")
                    return
                }
            }
            for n in [live[a]] {
                let r = n.raft
                guard r.commitIndex > r.snapshotIndex else { continue }
                for j in (r.snapshotIndex + 1)...r.commitIndex {
                    if let c = committed[j], let e = r.entry(at: j), c != e {
                        fail("no committed entry lost or changed", "n\(n.idx + 1) holds a different entry at committed index \(j)")
                        return
                    }
                }
            }
        }
    }

    /// After faults stop with every node back: a leader with a quorum behind it, and every block
    /// held by an up node that itself knows it may book.
    func checkLiveness() {
        let leaders = nodes.filter { $0.up && $0.raft.role == .leader }.sorted { $0.raft.term > $1.raft.term }
        let deadline = opt.livenessDeadlineMs
        guard let l = leaders.first else {
            let roles = nodes.map { "n\($0.idx + 1):\($0.raft.role.rawValue)@\($0.raft.term)" }.joined(separator: " ")
            fail("liveness", "no leader \(deadline) ms after faults stopped (\(roles))")
            return
        }
        let followers = l.raft.config.voters.filter { v in
            guard let i = index[v] else { return false }
            return nodes[i].raft.term == l.raft.term && nodes[i].raft.leader == l.id
        }
        guard followers.count >= quorum(of: l.raft.config.voters.count) else {
            fail("liveness", "leader n\(l.idx + 1) of term \(l.raft.term) has no quorum behind it \(deadline) ms after faults stopped")
            return
        }
        guard l.cluster.blocks.count + l.cluster.closed.count == opt.blocks + coreOptions.quotaBuckets else {
            fail("liveness", "only \(l.cluster.blocks.count) of \(opt.blocks) blocks (\(l.cluster.closed.count) closed) and \(coreOptions.quotaBuckets) quota buckets defined \(deadline) ms after faults stopped")
            return
        }
        for b in l.cluster.blocks.keys.sorted() {
            let r = l.cluster.blocks[b]!
            guard l.cluster.leaseValid(b), let h = r.holder, let hi = index[h] else {
                fail("liveness", "block \(b) has no valid lease \(deadline) ms after faults stopped (epoch \(r.epoch), holder \(r.holder?.rawValue ?? "none"))")
                return
            }
            let hn = nodes[hi]
            guard hn.up, hn.booking.holds(b, in: hn.cluster) else {
                fail("liveness", "block \(b) holder \(h) cannot book \(deadline) ms after faults stopped (epoch \(r.epoch))")
                return
            }
        }
    }

    /// The fault model's own check: no node ticked faster than its clock (one tick chain per
    /// process; a pause once started a second one, and each pause sped the node up).
    func checkTickRates() {
        for n in nodes {
            let most = UInt64(Double(now) * n.drift / Double(opt.tickMs * 1000)) + 2
            if n.ticked > most {
                fail("simulator clock", "n\(n.idx + 1) ticked \(n.ticked) times in \(now / 1000) ms; its clock allows \(most)")
                return
            }
        }
    }

    /// At the end of the quiet (gossip has had its time), every up node derives the same view of
    /// every block from its own records and history: the same booking holds each slot, or none.
    /// A node whose history has another epoch for the block is left to `checkConvergence`, and a
    /// slot with a record first written in the last half second is still on its way.
    func checkReplicasAgree() {
        guard let latest = newestApplied?.state else { return }
        let up = nodes.filter { $0.up && !$0.paused }
        // A node that knows a block closed keeps none of its records (memory follows open sessions).
        for n in up where n.core.ticks > 0 {
            if let b = n.cluster.closed.sorted().first(where: { !n.booking.store.records(in: $0).isEmpty }) {
                fail("closed blocks are forgotten", "n\(n.idx + 1) still holds \(n.booking.store.records(in: b).count) records of closed \(b)")
                return
            }
        }
        // Nor records a quota bucket's trim made inactive for good.
        for n in up where n.core.ticks > 0 {
            for (block, r) in n.cluster.blocks.sorted(by: { $0.key < $1.key }) where r.trim != nil {
                let stale = n.booking.store.records(in: block).filter { $0.epoch < r.epoch && r.collectedEpochs[$0.id] != $0.epoch }
                if let b = stale.first {
                    fail("trimmed records are forgotten", "n\(n.idx + 1) still holds \(stale.count) inactive records of trimmed \(block), such as \(b.id)@e\(b.epoch)")
                    return
                }
            }
        }
        for block in latest.blocks.keys.sorted() {
            let epoch = latest.blocks[block]!.epoch
            var first: (node: Int, holding: [Int: String], unknown: Bool)?
            for n in up where n.cluster.blocks[block]?.epoch == epoch {
                let v = slotViews(block: block, bookings: n.booking.store.records(in: block), state: n.cluster)
                var holding: [Int: String] = [:]
                for (slot, records) in v.views { if let h = holdingBooking(records) { holding[slot] = "\(h.id)@e\(h.epoch)" } }
                guard let f = first else { first = (n.idx, holding, v.unknown); continue }
                let differ = Set(f.holding.keys).union(holding.keys).sorted().filter { f.holding[$0] != holding[$0] && !recentlyWritten(block, $0, on: up) }
                if f.unknown != v.unknown || !differ.isEmpty {
                    let what = differ.first.map { "slot \($0): n\(f.node + 1) sees \(f.holding[$0] ?? "free"), n\(n.idx + 1) sees \(holding[$0] ?? "free")" }
                        ?? "n\(f.node + 1) sees it \(f.unknown ? "unknown" : "known"), n\(n.idx + 1) \(v.unknown ? "unknown" : "known")"
                    fail("replicas agree after the quiet", "\(block) (epoch \(epoch)) \(what), \(opt.quietMs) ms after faults stopped")
                    return
                }
            }
        }
    }

    func recentlyWritten(_ block: BlockID, _ slot: Int, on up: [SimNode]) -> Bool {
        up.contains { n in
            n.booking.store.records(in: block, slot: slot).contains { (firstWrittenUs["\($0.id)@\($0.epoch)"] ?? 0) + 500_000 > now }
        }
    }

    /// Seconds after the liveness check, every node has every entry committed by then.
    func checkConvergence() {
        for n in nodes where n.cluster.appliedIndex < committedAtLiveness {
            fail("no committed entry lost", "n\(n.idx + 1) applied only up to \(n.cluster.appliedIndex) of \(committedAtLiveness) committed entries long after faults stopped")
            return
        }
    }
}
