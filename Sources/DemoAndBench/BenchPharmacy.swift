import AdminAPI
import ClinicNode
import Consensus
import Domain
import Foundation
import Services

// For `clinicmesh bench prescribing` and `chaos/run pharmacy` on the admin API: `bench-stock` sends
// one stock command (a receipt, a dispensing, a return) through this node to the pharmacy block's
// holder and answers its outcome, timed on the node; `bench-stock-ledger` answers the ledger as
// this node's records give it, with every dispensing record per prescription (to count doubles).

/// `bench-stock {"id": "...", "pharmacy": "west", "tag": "stockcmd:out:rx-1:X0001/B1/1", "timeout_ms": 5000}`.
package struct BenchStockRequest: Codable, Sendable, Hashable {
    package var id: String
    package var pharmacy: String
    /// The command as a request tag (`StockCommand.requestTag`).
    package var tag: String
    package var timeoutMs: Int
    package init(id: String, pharmacy: String, tag: String, timeoutMs: Int) { self.id = id; self.pharmacy = pharmacy; self.tag = tag; self.timeoutMs = timeoutMs }
    package enum CodingKeys: String, CodingKey { case id, pharmacy, tag, timeoutMs = "timeout_ms" }
}

package struct BenchStockAnswer: Codable, Sendable, Hashable {
    /// `ok`, `refused` or `unknown` (no outcome in time: retry with the same id).
    package var outcome: String
    package var reason: String?
    package var seq: Int?
    /// From the command's arrival on this node to its outcome (ms).
    package var ms: Double
}

/// A ledger as one node derives it.
package struct BenchLedgerAnswer: Codable, Sendable, Hashable {
    package struct Batch: Codable, Sendable, Hashable {
        package var drug: String
        package var batch: String
        package var quantity: Int
    }
    package var known: Bool
    package var batches: [Batch]
    /// Dispensing records per prescription among the block's valid records (more than 1: a double).
    package var dispensings: [String: Int]
    /// Record ids of every valid stock record.
    package var movements: [String]
}

package struct BenchLedgerRequest: Codable, Sendable, Hashable {
    package var pharmacy: String
    package init(pharmacy: String) { self.pharmacy = pharmacy }
}

enum BenchPharmacy {
    static func install(on node: MeshNode) {
        node.addAdminCommands {
            $0.add("bench-stock", BenchStockRequest.self) { request in try await command(node, request) }
            $0.add("bench-stock-ledger", BenchLedgerRequest.self) { request in try ledger(node, request) }
        }
    }

    static func command(_ node: MeshNode, _ request: BenchStockRequest) async throws -> BenchStockAnswer {
        guard let desk = node.pharmacy, let pharmacy = Pharmacy(rawValue: request.pharmacy), let command = StockCommand(requestTag: request.tag),
              (1...60_000).contains(request.timeoutMs) else {
            throw NodeError(.admin, zh: "bench-stock：药房代码、命令或超时无效。", en: "bench-stock: the pharmacy code, the command or the timeout is not valid.")
        }
        let started = node.clock.monotonicNanos()
        let outcome = await desk.command(command.event, pharmacy, id: request.id, timeout: .milliseconds(request.timeoutMs))
        let ms = Double(node.clock.monotonicNanos() - started) / 1_000_000
        switch outcome {
        case .booked(let b)?:
            guard case .stock(let r) = b.kind else { return BenchStockAnswer(outcome: "refused", reason: "request_mismatch", seq: nil, ms: ms) }
            return BenchStockAnswer(outcome: "ok", reason: nil, seq: r.seq, ms: ms)
        case .refused(_, let reason)?: return BenchStockAnswer(outcome: "refused", reason: reason.rawValue, seq: nil, ms: ms)
        case nil: return BenchStockAnswer(outcome: "unknown", reason: nil, seq: nil, ms: ms)
        }
    }

    static func ledger(_ node: MeshNode, _ request: BenchLedgerRequest) throws -> BenchLedgerAnswer {
        guard let desk = node.pharmacy, let pharmacy = Pharmacy(rawValue: request.pharmacy) else {
            throw NodeError(.admin, zh: "未知药房代码，或本节点没有处方功能。", en: "unknown pharmacy code, or no prescribing on this node.")
        }
        let block = PharmacyDesk.block(pharmacy)
        return desk.consensus.lookup { lookup in
            guard let ledger = lookup.stock(of: block) else { return BenchLedgerAnswer(known: false, batches: [], dispensings: [:], movements: []) }
            var dispensings: [String: Int] = [:]
            var movements: [String] = []
            for b in lookup.validRecords(of: block) {
                guard case .stock(let r) = b.kind else { continue }
                movements.append(b.id)
                if case .dispense(let rx, _) = r.event { dispensings[rx, default: 0] += 1 }
            }
            return BenchLedgerAnswer(known: true, batches: ledger.batches.values.map { .init(drug: $0.drug, batch: $0.batch, quantity: $0.quantity) }
                .sorted { ($0.drug, $0.batch) < ($1.drug, $1.batch) }, dispensings: dispensings, movements: movements.sorted())
        }
    }
}
