import ClinicNode
import AdminAPI
import Consensus
import Crypto
import Foundation

// The storm drill's checks as pure functions of what the clients saw and what the nodes show,
// so tests can feed them made-up answers and views (a check that cannot fail, or that fails on
// correct behaviour, is a defect of the drill).

/// One attempt at a patient request, as the drill saw it.
struct StormAttempt: Codable, Sendable, Hashable {
    /// Seconds since the load began.
    var t: Double
    var via: String
    /// nil: no answer (connection refused or closed, or no answer in time).
    var status: Int?
    var code: String?
    /// The appointment id a hold's 201 names.
    var appointment: String?
    /// Sent again although an earlier attempt already had a final answer (a client that lost
    /// that answer), or in the quiet re-ask after the load.
    var resend = false
    var quiet = false
    var error: String?

    /// What the answer states for good, or nil: a 503 (busy, timeout, no holder, quota
    /// unavailable), a 5xx, 429, 401, "look again" 404, or no answer at all is not an outcome.
    var outcome: String? {
        guard let s = status else { return nil }
        switch s {
        case 200..<300:
            if let a = appointment, let ref = StormAppointment(a) { return "\(s) \(ref.holdID)#\(ref.slot)" }
            return "\(s)"
        case 401, 429: return nil
        case 404 where code == "appointment.not_found": return nil
        case 400..<500: return "\(s) \(code ?? "-")"
        default: return nil
        }
    }

    /// "201 via waike at 12.3 s" (for reports).
    var text: String {
        let answer = status.map { "\($0)\(code.map { " " + $0 } ?? "")" } ?? "no answer (\(error ?? "-"))"
        return "\(answer) via \(via) at \(String(format: "%.1f", t)) s\(quiet ? " (quiet re-ask)" : resend ? " (re-send)" : "")"
    }
}

/// An appointment id as the patient API makes it: `<hold id>.<slot>.<block, base64url>`.
struct StormAppointment: Hashable, Sendable {
    var holdID: String
    var slot: Int
    var block: String

    init?(_ id: String) {
        let parts = id.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, let slot = Int(parts[1]) else { return nil }
        var b64 = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let block = String(data: data, encoding: .utf8) else { return nil }
        holdID = parts[0]; self.slot = slot; self.block = block
    }

    /// The hold's record id for a patient's request id, as the nodes derive it (per patient, so
    /// two patients' request ids never clash): "h" and 12 bytes of SHA-256 in hex.
    static func holdID(patient: String, requestID: String) -> String {
        "h" + SHA256.hash(data: Array("\(patient)|\(requestID)".utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
    }
}

/// One patient request and every attempt made under its request id.
struct StormRequest: Sendable {
    enum Kind: String, Codable, Sendable { case hold, confirm, cancel }
    var kind: Kind
    var patient: Int
    /// A hold: the client's request id; a confirmation or cancellation: the appointment id.
    var requestID: String
    var holdID: String
    var path: String
    var body: [String: String]?
    /// The rush wave (1...4) a hold belongs to.
    var wave: Int?
    var attempts: [StormAttempt] = []

    /// The booking record this request makes on the nodes.
    var recordID: String {
        switch kind {
        case .hold: holdID
        case .confirm: "c:" + holdID
        case .cancel: "x:" + holdID
        }
    }

    /// The block (session) the request books in.
    var block: String? {
        guard kind == .hold else { return StormAppointment(requestID)?.block }
        return body?["schedule_id"] ?? body?["slot_id"].map { String($0[..<($0.lastIndex(of: "/") ?? $0.endIndex)]) }
    }

    /// "hold p17 w2-p17 (h3fa…) in waike-chen-zhiqiang/2026-12-10/morning".
    var name: String {
        "\(kind.rawValue) p\(patient) \(kind == .hold ? requestID : String(requestID.prefix(40)) + "…") (\(recordID))\(block.map { " in \($0)" } ?? "")"
    }

    /// The first 2xx during the load (the quiet re-ask comes after the views the checks read).
    var acknowledged: StormAttempt? { attempts.first { ($0.status ?? 0) / 100 == 2 && !$0.quiet } }
    var outcomes: [(StormAttempt, String)] { attempts.compactMap { a in a.outcome.map { (a, $0) } } }
    var history: String { attempts.map(\.text).joined(separator: "; ") }
}

/// What the nodes' bookings views say of the requests' records.
struct StormTruth: Sendable {
    /// Statuses that mean the record counts (it was acknowledged, or a takeover collected it).
    static let valid: Set<String> = ["active", "released", "superseded", "release"]
    /// Record id to the slot of its valid record, on any node.
    var validSlot: [String: Int] = [:]
    /// Hold ids whose hold a valid release ended, on any node.
    var cancelled: Set<String> = []

    init(_ views: [BookingsView]) {
        for v in views {
            for b in v.bookings where Self.valid.contains(b.status ?? "") && b.slot >= 0 {
                validSlot[b.requestID] = b.slot
                if b.status == "released" { cancelled.insert(b.requestID) }
                if b.status == "release", b.requestID.hasPrefix("x:") { cancelled.insert(String(b.requestID.dropFirst(2))) }
            }
        }
    }
}

enum StormChecks {
    /// The request's first final outcome: what the nodes' records say it did, else the first
    /// final answer a client got.
    static func canonical(_ r: StormRequest, _ truth: StormTruth) -> (outcome: String, source: String)? {
        if let slot = truth.validSlot[r.recordID] {
            return (r.kind == .hold ? "201 \(r.holdID)#\(slot)" : "200", "the nodes' records")
        }
        return r.outcomes.first.map { ($0.1, "its first final answer") }
    }

    /// A later final answer agrees with the first outcome: the same, or "cancelled since" (409
    /// lease.released) once the appointment was cancelled.
    static func consistent(_ first: String, _ later: String, cancelled: Bool) -> Bool {
        first == later || (first.hasPrefix("2") && later == "409 lease.released" && cancelled)
    }

    /// Requests answered with something other than their first outcome (through any node, at any
    /// time), each with its kind and the request's history. Kinds: `booked_then_refused`,
    /// `refused_then_booked`, `another_booking` (two 2xx naming different slots), `reason_changed`
    /// (two refusals for different reasons: still a different final answer).
    static func retryMismatches(_ requests: [StormRequest], _ truth: StormTruth) -> [(kind: String, text: String)] {
        var out: [(kind: String, text: String)] = []
        for r in requests {
            guard let (first, source) = canonical(r, truth) else { continue }
            let cancelled = truth.cancelled.contains(r.holdID)
            if let (a, o) = r.outcomes.first(where: { !consistent(first, $0.1, cancelled: cancelled) }) {
                let kind = switch (first.hasPrefix("2"), o.hasPrefix("2")) {
                case (true, false): "booked_then_refused"
                case (false, true): "refused_then_booked"
                case (true, true): "another_booking"
                case (false, false): "reason_changed"
                }
                out.append((kind, "[\(kind)] \(r.name): first outcome \(first) (\(source)), then \(o) via \(a.via) at \(String(format: "%.1f", a.t)) s; attempts: \(r.history)"))
            }
        }
        return out
    }

    /// Rank of an appointment status: a later step never shows as an earlier one.
    static func rank(_ status: String) -> Int { ["pending": 0, "booked": 1, "cancelled": 2][status] ?? -1 }

    /// Acknowledged holds, confirmations and cancellations not reflected on every node (its
    /// bookings view and the patient's list through it), and acknowledged probe bookings not
    /// active on every node.
    static func lostAcks(_ requests: [StormRequest], views: [String: BookingsView], lists: [Int: [String: [String: String]]],
                         probes: [BookingRecord]) -> [String] {
        var out: [String] = []
        var records: [String: [String: [BookingRecord]]] = [:]
        for (node, v) in views { for b in v.bookings { records[node, default: [:]][b.requestID, default: []].append(b) } }
        for r in requests {
            guard let ack = r.acknowledged else { continue }
            let want: Set<String> = r.kind == .hold ? ["active", "superseded", "released"] : r.kind == .confirm ? ["active", "superseded"] : ["release"]
            let step = r.kind == .hold ? 0 : r.kind == .confirm ? 1 : 2
            let ackSlot = ack.appointment.flatMap(StormAppointment.init)?.slot
            var missing: [String] = []
            for node in views.keys.sorted() {
                let found = records[node]?[r.recordID] ?? []
                if !found.contains(where: { want.contains($0.status ?? "") && (ackSlot == nil || $0.slot == ackSlot) }) {
                    missing.append("\(node) bookings: \(found.isEmpty ? "missing" : found.map { "\($0.status ?? "-")@\($0.epoch) slot \($0.slot)" }.joined(separator: ","))")
                }
                guard let list = lists[r.patient]?[node] else { missing.append("\(node): no list"); continue }
                let shown = list.first { $0.key.hasPrefix(r.holdID + ".") }?.value
                if shown.map({ rank($0) < step }) ?? true { missing.append("\(node) list: \(shown ?? "missing")") }
            }
            if !missing.isEmpty { out.append("\(r.name) acknowledged (\(ack.text)): \(missing.joined(separator: "; "))") }
        }
        for b in probes {
            let lacking = views.keys.sorted().filter { node in
                !(records[node]?[b.requestID] ?? []).contains { $0.epoch == b.epoch && $0.status == "active" }
            }
            if !lacking.isEmpty { out.append("probe \(b.requestID) (\(b.block) slot \(b.slot), epoch \(b.epoch)) acknowledged, not active on \(lacking.joined(separator: ", "))") }
        }
        return out
    }

    /// Appointments in a patient's list that no request explains: a hold the patient never sent,
    /// booked without a confirmation sent, cancelled without a cancellation sent.
    static func phantoms(_ requests: [StormRequest], lists: [Int: [String: [String: String]]]) -> [String] {
        var sent: [Int: [String: Set<StormRequest.Kind>]] = [:]
        for r in requests { sent[r.patient, default: [:]][r.holdID, default: []].insert(r.kind) }
        var out: [String] = []
        for (patient, byNode) in lists.sorted(by: { $0.key < $1.key }) {
            for (node, list) in byNode.sorted(by: { $0.key < $1.key }) {
                for (id, status) in list.sorted(by: { $0.key < $1.key }) {
                    let hold = String(id.prefix { $0 != "." })
                    let kinds = sent[patient]?[hold] ?? []
                    let explained = kinds.contains(.hold) && (status == "pending" || (status == "booked" && kinds.contains(.confirm))
                                                              || (status == "cancelled" && kinds.contains(.cancel)))
                    if !explained { out.append("p\(patient) through \(node): \(id.prefix(40))… is \(status), requests sent: \(kinds.map(\.rawValue).sorted())") }
                }
            }
        }
        return out
    }

    /// Slots with two active bookings on one node (a confirmation counts as its hold).
    static func doubleBookings(_ view: BookingsView) -> [String: Set<String>] {
        holders([view]).filter { $0.value.count > 1 }
    }

    /// The same across nodes: two different appointments active on one slot anywhere. Sound at
    /// the end of the drill only: a cancelled slot goes back on offer 5 to 30 minutes later, so
    /// no slot legitimately passes to a second appointment within a drill.
    static func doubleBookingsAcross(_ views: [BookingsView]) -> [String: Set<String>] {
        holders(views).filter { $0.value.count > 1 }
    }

    private static func holders(_ views: [BookingsView]) -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        for v in views {
            for b in v.bookings where b.status == "active" && b.slot >= 0 && !b.block.hasPrefix(quotaBucketPrefix) {
                out["\(b.block)#\(b.slot)", default: []].insert(b.requestID.hasPrefix("c:") ? String(b.requestID.dropFirst(2)) : b.requestID)
            }
        }
        return out
    }

    /// How the nodes' bookings views differ (records by id and epoch, leases by block); empty when
    /// they agree. The applied index may differ: it is where each node is, not what it holds.
    /// Inactive records are left out: no takeover collects them again, so they count nowhere, and
    /// gossip no longer spreads them (a node may keep one that the others never heard of).
    static func viewDifferences(_ views: [String: BookingsView]) -> [String] {
        let nodes = views.keys.sorted()
        var records: [String: [String: String]] = [:]
        var leases: [String: [String: String]] = [:]
        for node in nodes {
            for b in views[node]!.bookings where b.status != "inactive" {
                records["\(b.requestID)@\(b.epoch)", default: [:]][node] = "\(b.block)#\(b.slot) \(b.status ?? "-")"
            }
            for l in views[node]!.blocks { leases[l.block, default: [:]][node] = "holder \(l.holder ?? "-") epoch \(l.epoch)\(l.valid ? "" : " invalid")" }
        }
        func differing(_ table: [String: [String: String]], _ what: String) -> [String] {
            table.keys.sorted().compactMap { key in
                let byNode = table[key]!
                guard byNode.count != nodes.count || Set(byNode.values).count > 1 else { return nil }
                return "\(what) \(key): " + nodes.map { "\($0) \(byNode[$0] ?? "absent")" }.joined(separator: ", ")
            }
        }
        return differing(records, "record") + differing(leases, "lease")
    }

    /// Patients whose lists differ between nodes.
    static func listDifferences(_ lists: [Int: [String: [String: String]]], nodes: [String]) -> [String] {
        var out: [String] = []
        for (patient, byNode) in lists.sorted(by: { $0.key < $1.key }) {
            let ids = Set(byNode.values.flatMap(\.keys))
            for id in ids.sorted() {
                let shown = nodes.map { byNode[$0]?[id] ?? "absent" }
                if Set(shown).count > 1 { out.append("p\(patient) \(id.prefix(40))…: " + zip(nodes, shown).map { "\($0) \($1)" }.joined(separator: ", ")) }
            }
            for node in nodes where byNode[node] == nil { out.append("p\(patient): no list through \(node)") }
        }
        return out
    }
}
