import ClinicNode
import Consensus
import DemoAndBench
import Domain
import Foundation
import Services

/// Two pharmacy windows dispensing the last packages of several drugs on real node processes,
/// through two nodes that are not the pharmacy block's holder, both trying every prescription (in
/// different orders, so many requests race). `chaos/run pharmacy` kills the holder with SIGKILL a
/// third of the way through; `clinicmesh bench prescribing` runs it without the kill and with
/// enough stock, for the dispensing latency. At the end (the killed node restarted) every node's
/// ledger is read and checked: no batch below zero, no prescription dispensed twice, every
/// acknowledged movement on every node.
public struct PharmacyDrill: Sendable {
    public var binary: String
    public var killHolder: Bool
    public var drugs = 6
    public var packagesPerDrug = 10
    public var prescriptions = 60
    /// Seconds a window keeps retrying one request (same id) before it counts it unknown.
    public var retrySeconds: Double = 45

    public init(binary: String, killHolder: Bool) { self.binary = binary; self.killHolder = killHolder }

    public struct Report: Codable, Sendable {
        public var scenario: String
        public var passed: Bool
        public var injection: String
        public var nodes: [String]
        public var windows: Int
        public var requests: Int
        public var dispensed: Int
        public var refusedByReason: [String: Int]
        public var unknownOutcomes: Int
        /// Batches below zero on any node (summed over nodes), and acknowledged dispensings
        /// beyond what was received (per drug).
        public var stockBelowZero: Int
        /// Prescriptions dispensed more than once: by records on any node, or acknowledged to both windows.
        public var doubleDispensed: Int
        /// Acknowledged movements missing from a node's records at the end (summed over nodes).
        public var lostMovements: Int
        public var converged: Bool
        /// From the kill until the first dispensing acknowledged after it.
        public var recoveryS: Double?
        /// Node-timed, from a dispensing command's arrival to its quorum-durable acknowledgement.
        public var dispense: FloorLoad.Figures?
        public var summaryZh: String
        public var summaryEn: String
        public var problems: [String]
        enum CodingKeys: String, CodingKey {
            case scenario, passed, injection, nodes, windows, requests, dispensed, refusedByReason = "refused_by_reason", unknownOutcomes = "unknown_outcomes"
            case stockBelowZero = "stock_below_zero", doubleDispensed = "double_dispensed", lostMovements = "lost_movements", converged
            case recoveryS = "recovery_s", dispense, summaryZh = "summary_zh", summaryEn = "summary_en", problems
        }
    }

    /// What the windows saw.
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var requests = 0
        var acked: [String: (rx: String, window: Int)] = [:]
        var refused: [String: Int] = [:]
        var unknown = 0
        var dispenseMs: [Double] = []
        var firstAckAfterKill: Date?
        var killedAt: Date?
        func with<T>(_ body: (Seen) -> T) -> T { lock.withLock { body(self) } }
    }

    static let holder = "neike"
    static let windowNodes = ["waike", "erke"]

    public func run() async throws -> Report {
        let cluster = try LocalCluster(departments: [(id: "neike", department: "内科"), (id: "waike", department: "外科"), (id: "erke", department: "儿科")],
                                       binary: binary, logLevel: "warning", folderPrefix: "clinicmesh-pharmacy-")
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        try cluster.changeConfig(Self.holder) { $0.pharmacy = PharmacyConfig(serves: ["west"]) }
        try cluster.startAll()
        try await cluster.waitUntilLed(seconds: 120)
        try await waitFor("the pharmacy's stock block on every node", seconds: 120) {
            for id in cluster.ids where !(try await Self.ledger(cluster, id).known) { return false }
            return true
        }
        let codes = (1...drugs).map { String(format: "X%04d", $0) }
        let expiry = ShanghaiTime.unixDay(wallMs: Int64(Date().timeIntervalSince1970 * 1000)) + 100
        for code in codes {
            let item = StockItem(drug: code, batch: "DRILL1", quantity: packagesPerDrug)
            let answer = try await command(cluster, Self.holder, id: "in-\(code)", .receive(item, expiryDay: expiry), seen: nil)
            guard answer?.outcome == "ok" else { throw DrillError("receipt of \(code): \(answer.map { "\($0.outcome) \($0.reason ?? "")" } ?? "no answer")") }
        }
        // Prescription i takes 1 to 3 packages of drug i mod n: together about twice the stock.
        let wanted = (0..<prescriptions).map { i in (rx: "rx-drill-\(i)", item: StockItem(drug: codes[i % codes.count], batch: "DRILL1", quantity: 1 + i % 3)) }
        let seen = Seen()
        let killAfter = killHolder ? wanted.count / 3 : Int.max
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (w, node) in Self.windowNodes.enumerated() {
                let order = w == 0 ? wanted : wanted.reversed()
                group.addTask {
                    for (n, p) in order.enumerated() {
                        if w == 0, n == killAfter {
                            seen.with { $0.killedAt = Date() }
                            cluster.killHard(Self.holder)
                        }
                        _ = try await self.command(cluster, node, id: "w\(w)-\(p.rx)", .dispense(rx: p.rx, items: [p.item]), seen: seen, window: w)
                    }
                }
            }
            try await group.waitForAll()
        }
        if killHolder { try cluster.start(Self.holder) }

        // Every acknowledged movement on every node, or the deadline.
        let acked = Set(seen.with { Array($0.acked.keys) } + codes.map { "in-\($0)" })
        var ledgers: [String: BenchLedgerAnswer] = [:]
        var converged = true
        do {
            try await waitFor("every acknowledged movement on every node", seconds: 120) {
                for id in cluster.ids { ledgers[id] = try await Self.ledger(cluster, id) }
                return cluster.ids.allSatisfy { acked.isSubset(of: Set(ledgers[$0]?.movements ?? [])) }
            }
        } catch { converged = false }
        for id in cluster.ids { ledgers[id] = try await Self.ledger(cluster, id) }
        converged = converged && Set(ledgers.values.map(\.movements)).count == 1 && Set(ledgers.values.map(\.batches)).count == 1

        var problems: [String] = []
        var belowZero = ledgers.values.reduce(0) { $0 + $1.batches.filter { $0.quantity < 0 }.count }
        let ackedRx = seen.with { s in Dictionary(grouping: s.acked.values, by: \.rx) }
        for code in codes {
            let given = wanted.filter { $0.item.drug == code && ackedRx[$0.rx] != nil }.reduce(0) { $0 + $1.item.quantity }
            if given > packagesPerDrug { belowZero += 1; problems.append("\(code): \(given) packages acknowledged, \(packagesPerDrug) received") }
        }
        var doubles = ackedRx.values.filter { $0.count > 1 }.count
        doubles += ledgers.values.reduce(0) { $0 + $1.dispensings.values.filter { $0 > 1 }.count }
        let lost = cluster.ids.reduce(0) { sum, id in sum + acked.subtracting(ledgers[id]?.movements ?? []).count }
        if lost > 0 { problems.append("\(lost) acknowledged movements missing from a node") }
        let (requests, refused, unknown, ms, killedAt, firstAck) = seen.with { ($0.requests, $0.refused, $0.unknown, $0.dispenseMs, $0.killedAt, $0.firstAckAfterKill) }
        let recovery = killedAt.flatMap { k in firstAck.map { (($0.timeIntervalSince(k)) * 100).rounded() / 100 } }
        if killHolder, recovery == nil { problems.append("no dispensing was acknowledged after the kill") }
        let passed = belowZero == 0 && doubles == 0 && lost == 0 && converged && problems.isEmpty
        let dispensed = ackedRx.count
        return Report(scenario: "pharmacy", passed: passed,
                      injection: killHolder ? "SIGKILL \(Self.holder) (the pharmacy block's holder) after \(killAfter) of window 1's \(wanted.count) requests, restarted at the end" : "none",
                      nodes: cluster.ids, windows: Self.windowNodes.count, requests: requests, dispensed: dispensed, refusedByReason: refused,
                      unknownOutcomes: unknown, stockBelowZero: belowZero, doubleDispensed: doubles, lostMovements: lost, converged: converged,
                      recoveryS: recovery, dispense: FloorLoad.figures(ms),
                      summaryZh: "两个窗口经 \(Self.windowNodes.joined(separator: "、")) 对 \(wanted.count) 张处方发药：发出 \(dispensed) 张；库存为负 \(belowZero)，重复发药 \(doubles)，丢失的已确认变动 \(lost)。",
                      summaryEn: "two windows through \(Self.windowNodes.joined(separator: " and ")) dispensing \(wanted.count) prescriptions: \(dispensed) dispensed; stock below zero \(belowZero), dispensed twice \(doubles), acknowledged movements lost \(lost).",
                      problems: problems)
    }

    /// One command through `node`, retried with the same id while nobody can decide (a failover).
    func command(_ cluster: LocalCluster, _ node: String, id: String, _ event: StockEvent, seen: Seen?, window: Int = 0) async throws -> BenchStockAnswer? {
        let request = BenchStockRequest(id: id, pharmacy: "west", tag: StockCommand(event).requestTag, timeoutMs: 3000)
        let deadline = Date().addingTimeInterval(retrySeconds)
        seen?.with { $0.requests += 1 }
        while Date() < deadline {
            let answer: BenchStockAnswer
            do {
                let bytes = try await cluster.call(node, "bench-stock", request)
                guard let a = try? JSONDecoder().decode(BenchStockAnswer.self, from: Data(bytes)) else {
                    throw DrillError("bench-stock on \(node): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
                }
                answer = a
            } catch let error as DrillError {
                throw error
            } catch {
                try await Task.sleep(for: .milliseconds(200)) // the node is unreachable for a moment
                continue
            }
            switch answer.outcome {
            case "ok":
                if case .dispense(let rx, _) = event {
                    seen?.with { s in
                        s.acked[id] = (rx, window)
                        s.dispenseMs.append(answer.ms)
                        if s.killedAt != nil, s.firstAckAfterKill == nil { s.firstAckAfterKill = Date() }
                    }
                }
                return answer
            case "refused" where !["noHolder", "notHolder"].contains(answer.reason ?? ""):
                seen?.with { $0.refused[answer.reason ?? "?", default: 0] += 1 }
                return answer
            default:
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        seen?.with { $0.unknown += 1 }
        return nil
    }

    static func ledger(_ cluster: LocalCluster, _ id: String) async throws -> BenchLedgerAnswer {
        let bytes = try await cluster.call(id, "bench-stock-ledger", BenchLedgerRequest(pharmacy: "west"))
        guard let answer = try? JSONDecoder().decode(BenchLedgerAnswer.self, from: Data(bytes)) else {
            throw DrillError("bench-stock-ledger on \(id): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        return answer
    }
}
