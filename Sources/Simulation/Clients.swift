// The simulated clients: a request with no answer is retried through another node, at once or
// after a delay long enough to overlap a takeover; an answer that says to retry is retried too.
// Every final answer a request gets, through any node, must agree with its first one. In the
// quiet, every block must take a fresh booking, and retries must get their final answer again.

import Consensus

struct ClientCall {
    var request: BookingRequest
    /// The node the latest attempt went through (the client hears only that node's answer).
    var node: Int
    var attempt: Int
    var answered = false
    /// Answered with anything but "retry": the client is done with it.
    var settled = false
    /// A quiet-phase call: its client waits `quietTimeoutMs` and retries at once.
    var quiet = false
}

extension ClusterSimulation {
    static let maxClientAttempts = 4
    static let quietTimeoutMs: UInt64 = 400

    func sendClient(_ q: BookingRequest, via node: Int, afterUs delay: UInt64, quiet: Bool = false) {
        var c = calls[q.id] ?? ClientCall(request: q, node: node, attempt: 0)
        c.node = node
        c.attempt += 1
        c.answered = false
        c.settled = false
        c.quiet = c.quiet || quiet
        calls[q.id] = c
        schedule(now + delay, .deliver(to: node, from: node, .client(q)))
        schedule(now + delay + (c.quiet ? Self.quietTimeoutMs : opt.clientTimeoutMs) * 1000, .clientTimeout(q.id, attempt: c.attempt))
    }

    func clientTimedOut(_ id: String, attempt: Int) {
        guard let c = calls[id], c.attempt == attempt, !c.answered, c.quiet || c.attempt < Self.maxClientAttempts else { return }
        // Half retry at once; the rest once the block may have been taken over (2 s liveness timeout).
        let later = !c.quiet && rng.chance(0.5)
        schedule(now + (later ? 2_000_000 + rng.below(3_000_000) : 0), .clientRetry(id))
    }

    func retryClient(_ id: String) {
        guard let c = calls[id], !c.settled else { return }
        let others = nodes.indices.filter { $0 != c.node }
        let via = others[Int(rng.below(UInt64(others.count)))]
        stats.clientRetries += 1
        hashEvent(15, via)
        sendClient(c.request, via: via, afterUs: 100 + rng.below(2_000))
    }

    /// The answers the API tells a client to retry with the same request id (HTTP 503): no holder
    /// now, not the holder, the quota bucket unreachable. Every other answer is final, from the
    /// code: a booking (quorum-durable); a refusal made durable first (a refusal record: slot
    /// taken, not open yet, over the quota, banned, nothing to release or confirm, a hold run out);
    /// one that follows from durable records (released, the id used for another request) or from
    /// the block's definition (no such slot).
    static func saysRetry(_ o: BookingOutcome) -> Bool {
        guard case .refused(_, let reason) = o else { return false }
        return reason == .noHolder || reason == .notHolder || reason == .quotaUnavailable
    }

    func describe(_ o: BookingOutcome) -> String {
        switch o {
        case .booked(let b): return "booked (\(b.block) slot \(b.slot) epoch \(b.epoch) generation \(b.generation))"
        case .refused(_, let r): return r.rawValue
        }
    }

    /// Every answer any node gives for a client's request.
    func noteOutcome(_ o: BookingOutcome, at n: SimNode) {
        let id = o.requestID
        guard var c = calls[id] else { return }
        if c.node == n.idx, !c.answered {
            c.answered = true
            c.settled = !Self.saysRetry(o)
            calls[id] = c
            if quietRetries.contains(id) || probes[id] != nil { quietAnswers[id, default: []].append(o) }
            if !c.settled, c.quiet || c.attempt < Self.maxClientAttempts {
                schedule(now + (c.quiet ? 50_000 + rng.below(150_000) : 200_000 + rng.below(800_000)), .clientRetry(id))
            }
        }
        // After a final answer, any answer but "retry" must be the same (slot taken included).
        if Self.saysRetry(o) { return }
        // A closed block answers every request so: its session is over.
        if case .refused(_, .noSuchSlot) = o, let q = calls[id]?.request, closures[q.block] != nil { return }
        // So does a quota bucket for a visit date its trim has passed, once the request's own reservation is gone.
        if case .refused(_, .noSuchSlot) = o, let day = quotaRequests[id]?.tag.visitDay, let trim = trimAsked, day < trim.visitsFrom { return }
        guard let first = finalOutcome[id] else {
            finalOutcome[id] = o
            return
        }
        if first == o { return }
        // A booking released since is answered `released`; that release must exist (checked at the end).
        if case .booked(let b) = first, case .refused(_, .released) = o {
            releasedClaims.append((id, b, n.idx, now))
            return
        }
        if case .booked = o {
            fail("a request refused for good is never booked", "request \(id) was answered \(describe(first)) and later \(describe(o)) on n\(n.idx + 1)")
        } else {
            fail("a retried request returns its first outcome", "request \(id) was answered \(describe(first)) and later \(describe(o)) on n\(n.idx + 1)")
        }
    }

    /// The quiet: a fresh booking for every block and quota bucket (a slot the workload never
    /// uses), and retries of requests that have a final answer, each through a random node.
    func startQuietChecks() {
        guard let state = newestApplied?.state else { return }
        let up = nodes.filter { $0.up && !$0.paused }.map(\.idx)
        guard !up.isEmpty else { return }
        for b in state.blocks.keys.sorted() {
            let q = b.hasPrefix(quotaBucketPrefix)
                ? BookingRequest(id: "probe:\(b)", block: b, slot: Int(Int32.max) - 1, patient: "probe:\(b)",
                                 tag: QuotaTag(visitDay: today, department: "probe").encoded)
                : BookingRequest(id: "probe:\(b)", block: b, slot: opt.slotsPerBlock, patient: "probe:\(b)")
            probes[q.id] = b
            sendClient(q, via: up[Int(rng.below(UInt64(up.count)))], afterUs: 100 + rng.below(2_000), quiet: true)
        }
        var answered = finalOutcome.keys.sorted()
        for _ in 0..<min(12, answered.count) {
            let id = answered.remove(at: Int(rng.below(UInt64(answered.count))))
            quietRetries.append(id)
            sendClient(calls[id]!.request, via: up[Int(rng.below(UInt64(up.count)))], afterUs: 100 + rng.below(2_000), quiet: true)
        }
        schedule(now + opt.quietAnswerMs * 1000, .quietDeadline)
    }

    func checkQuietAnswers() {
        for id in probes.keys.sorted() {
            if case .booked = finalOutcome[id] { continue }
            let b = probes[id]!
            let answers = (quietAnswers[id] ?? []).map(describe).joined(separator: ", ")
            fail("liveness", "block \(b) acknowledged no fresh booking within \(opt.quietAnswerMs) ms, \(opt.livenessDeadlineMs) ms after faults stopped (\(blockSummary(b)); answers: [\(answers)])")
            return
        }
        for id in quietRetries {
            let first = describe(finalOutcome[id]!)
            guard let answer = quietAnswers[id]?.first else {
                fail("a retried request returns its first outcome", "request \(id) (first answered \(first)) got no answer to a retry within \(opt.quietAnswerMs) ms in the quiet")
                return
            }
            if Self.saysRetry(answer) {
                fail("a retried request returns its first outcome", "request \(id) (first answered \(first)) was answered \(describe(answer)), which says to retry, in the quiet")
                return
            }
        }
    }

    /// Where a block stands: its lease, and the epoch each of its voters promised.
    func blockSummary(_ b: BlockID) -> String {
        guard let r = newestApplied?.state.blocks[b] else { return "undefined" }
        let promised = r.voters.compactMap { v in index[v].map { "n\($0 + 1):\(nodes[$0].booking.store.promised[b] ?? 0)" } }
        return "holder \(r.holder?.rawValue ?? "none") at epoch \(r.epoch), voters promised \(promised.joined(separator: " "))"
    }

    /// Each booking answered `released` on a retry was released by a valid release record.
    func checkReleasedClaims() {
        guard let latest = newestApplied?.state, !releasedClaims.isEmpty else { return }
        var releases: [Booking] = []
        for n in nodes {
            releases += n.diskBooking.records.values.filter(\.isRelease)
            if n.up { releases += n.booking.store.records.values.filter(\.isRelease) }
        }
        for claim in releasedClaims {
            let b = claim.booking
            let names = [b.id, b.confirms].compactMap { $0 }
            let valid = releases.contains { $0.releases.map(names.contains) == true && bookingStatus($0, in: latest) == .active }
                || latest.blocks[b.block]?.collected.contains { $0.releases.map(names.contains) == true } == true
                || closures[b.block]?.records.contains { $0.releases.map(names.contains) == true } == true
            if !valid {
                fail("a retried request returns its first outcome", "request \(claim.id) was booked (\(b.block) slot \(b.slot) epoch \(b.epoch)) and answered released on n\(claim.node + 1) at \(claim.atUs / 1000) ms, but no valid release of it exists")
                return
            }
        }
    }
}
