import Crypto
import Domain
import Foundation
import ReplicatedCore
import Synchronization

/// One audit event: who did what to which patient's data, and how it ended.
package struct AuditEvent: Sendable, Hashable {
    package var staff: String
    package var role: String
    package var action: String
    /// The patient key (an HMAC, never a resident ID), or "".
    package var patient: String
    package var resource: String
    package var outcome: String
    package var detail: String

    package init(staff: String, role: String = "", action: String, patient: String = "", resource: String = "", outcome: String, detail: String = "") {
        self.staff = staff; self.role = role; self.action = action; self.patient = patient
        self.resource = resource; self.outcome = outcome; self.detail = detail
    }
}

/// This node's audit chain: every event is a replicated insert-only row carrying the hash of the
/// event before it, so a changed, removed or reordered row breaks the chain at that point
/// (`AuditChainCheck`). One chain per node incarnation: a node restored from a backup starts a new
/// one rather than reuse sequence numbers its peers already hold.
package final class AuditTrail: Sendable {
    package static let table = "audit_event"

    private let store: any RecordStore
    private let node: String
    package let chain: String
    private let clock: NodeClock
    private let tail = Mutex<(sequence: Int64, hash: String)>((0, ""))

    package init(store: any RecordStore, node: String, incarnation: UInt32, clock: NodeClock) throws {
        self.store = store; self.node = node; self.clock = clock
        chain = "\(node).\(incarnation)"
        if let last = try store.liveRows(Self.table, equal: ["chain": .text(chain)], range: nil, newestBy: nil, limit: 1).first {
            tail.withLock { $0 = (last.row["sequence"]?.integerValue ?? 0, last.row["hash"]?.textValue ?? "") }
        }
    }

    package static func key(chain: String, sequence: Int64) -> String {
        let digits = String(sequence)
        return chain + "/" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// Appends `event`; throws if the write failed (the caller refuses what it was doing: an
    /// access that cannot be audited does not happen).
    package func record(_ event: AuditEvent) throws {
        try record(contentsOf: CollectionOfOne(event))
    }

    /// Appends `events` in order, in one transaction: all of them, or (if the write fails) none.
    package func record(contentsOf events: some Collection<AuditEvent>) throws {
        let at = clock.wallMillis()
        try tail.withLock { t in
            var next = t
            try store.write { w in
                for event in events {
                    let sequence = next.sequence + 1
                    let hash = Self.hash(chain: chain, sequence: sequence, atMs: at, node: node, event: event, previous: next.hash)
                    let values: [String: ColumnValue] = [
                        "chain": .text(chain), "sequence": .integer(sequence), "at_ms": .integer(at), "node": .text(node),
                        "staff": .text(event.staff), "role": .text(event.role), "action": .text(event.action), "patient": .text(event.patient),
                        "resource": .text(event.resource), "outcome": .text(event.outcome), "detail": .text(event.detail),
                        "previous_hash": .text(next.hash), "hash": .text(hash),
                    ]
                    _ = try w.insert(Self.table, key: Self.key(chain: chain, sequence: sequence), values: values)
                    next = (sequence, hash)
                }
            }
            t = next
        }
    }

    /// SHA-256 over every field, each length-prefixed (no separator a field could contain).
    package static func hash(chain: String, sequence: Int64, atMs: Int64, node: String, event e: AuditEvent, previous: String) -> String {
        var h = SHA256()
        for var field in [chain, String(sequence), String(atMs), node, e.staff, e.role, e.action, e.patient, e.resource, e.outcome, e.detail, previous] {
            field.withUTF8 { bytes in
                var length = String(bytes.count) + ":"
                length.withUTF8 { h.update(bufferPointer: UnsafeRawBufferPointer($0)) }
                h.update(bufferPointer: UnsafeRawBufferPointer(bytes))
            }
        }
        return h.finalize().withUnsafeBytes { lowercaseHex($0) }
    }
}

/// Checks chains row by row, in key order (each chain's rows in sequence order): the first
/// broken link of each chain, if any.
package struct AuditChainCheck: Sendable {
    package struct Broken: Sendable, Hashable, Codable {
        package var chain: String
        package var key: String
        package var sequence: Int64
        package var reasonZh: String
        package var reasonEn: String
    }

    package private(set) var checked = 0
    package private(set) var chains: [String: (sequence: Int64, hash: String)] = [:]
    package private(set) var broken: [String: Broken] = [:]

    package init() {}

    package mutating func check(key: String, row: [String: ColumnValue]) {
        checked += 1
        let chain = row["chain"]?.textValue ?? ""
        guard broken[chain] == nil else { return }
        let sequence = row["sequence"]?.integerValue ?? 0
        let before = chains[chain] ?? (0, "")
        func fail(_ zh: String, _ en: String) { broken[chain] = Broken(chain: chain, key: key, sequence: sequence, reasonZh: zh, reasonEn: en) }
        guard key == AuditTrail.key(chain: chain, sequence: sequence) else {
            return fail("行键与链、序号不符。", "the row's key does not match its chain and sequence.")
        }
        guard sequence == before.sequence + 1 else {
            return fail("缺少序号 \(before.sequence + 1) 到 \(sequence - 1) 的事件（被删除，或尚未同步到本节点）。",
                        "events \(before.sequence + 1) to \(sequence - 1) are missing (deleted, or not yet replicated to this node).")
        }
        let previous = row["previous_hash"]?.textValue ?? ""
        guard previous == before.hash else {
            return fail("记录的前一事件哈希与前一事件不符。", "the recorded hash of the event before does not match that event.")
        }
        let event = AuditEvent(staff: row["staff"]?.textValue ?? "", role: row["role"]?.textValue ?? "", action: row["action"]?.textValue ?? "",
                               patient: row["patient"]?.textValue ?? "", resource: row["resource"]?.textValue ?? "",
                               outcome: row["outcome"]?.textValue ?? "", detail: row["detail"]?.textValue ?? "")
        let hash = AuditTrail.hash(chain: chain, sequence: sequence, atMs: row["at_ms"]?.integerValue ?? 0, node: row["node"]?.textValue ?? "",
                                   event: event, previous: previous)
        guard hash == row["hash"]?.textValue else {
            return fail("事件内容与其哈希不符（被改动过）。", "the event's content does not match its hash (it was changed).")
        }
        chains[chain] = (sequence, hash)
    }
}
