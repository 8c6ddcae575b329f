import ArgumentParser
import ClinicNode
import Drills
import Foundation
import ReplicatedCore
import ReplicatedStore
import Services

/// `clinicmesh bench pages`: staff sign in and browse on real node processes (`StaffPagesLoad`);
/// then, in this process, what one audit event costs in CPU and how fast `audit verify` checks a
/// million events, both on real SQLite replicas with the node schema.
struct PagesBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pages",
        abstract: "员工页面：登录与浏览的延迟、审计的开销与校验速度 / Staff pages: sign-in and page latency, audit cost and verify speed")

    @Option(help: "节点进程数（1 到 3）/ Node processes (1 to 3).")
    var nodes = 3

    @Option(help: "员工人数 / Staff members.")
    var staff = 100

    @Option(help: "其中审计员人数（另浏览审计页）/ Of them auditors (they also open the auditor's page).")
    var auditors = 10

    @Option(help: "浏览秒数 / Seconds of browsing.")
    var seconds: Double = 30

    @Option(help: "页面间平均思考时间（毫秒，泊松）/ Mean think time between pages (ms, Poisson).")
    var thinkMs: Double = 1000

    @Option(help: "登录分布在多少秒内 / Sign-ins spread over this many seconds.")
    var signInSeconds: Double = 10

    @Option(help: "逐个写入以测 CPU 的审计事件数 / Audit events written one by one to measure their CPU.")
    var auditEvents = 2000

    @Option(help: "供 audit verify 校验的审计事件数 / Audit events for the verify measurement.")
    var verifyEvents = 1_000_000

    @Flag(help: "输出 JSON / Print one JSON object.")
    var json = false

    struct AuditCost: Encodable {
        /// CPU of recording one event (hash and fsynced insert) on its node.
        let recordCPUMs: Double
        /// CPU of merging one event into one peer's replica.
        let mergeCPUMs: Double
        /// Per event, cluster-wide: the record plus a merge on every other node.
        let clusterCPUMs: Double
    }

    struct Output: Encodable {
        let bench = "pages"
        let environment: BenchEnvironment
        let run: StaffPagesLoad.Report
        let pageP99Ms: Double
        let signinP99Ms: Double
        let audit: AuditCost
        /// What the audit event adds to the page that records one (the auditor's page): the
        /// event's cluster CPU against the rest of that page's CPU.
        let auditCPUOverheadRatio: Double?
        /// The audit events' share of the whole browsing mix's CPU (most pages record none).
        let auditCPUShareOfBrowsing: Double?
        let auditVerifyEvents: Int
        let auditVerifyS: Double
        let auditVerifySPerMillion: Double
        let method = "page CPU: (all nodes' CPU while browsing - their idle CPU for as long) / pages served; the auditor's page (the one page of the mix that records an audit event) is also measured alone; audit_cpu_overhead_ratio: the cluster-wide CPU of one audit event (recorded with fsync and merged into the other nodes' replicas, measured in this process on real SQLite replicas) / (the auditor's page CPU - that); audit verify: this process, a replica of verify_events events"
        let goal = "page_p99_ms <= 20, signin_p99_ms <= 300, audit_cpu_overhead_ratio <= 0.10, audit_verify_s_per_million <= 10"
    }

    func validate() throws {
        guard (1...3).contains(nodes), (1...10_000).contains(staff), (0...staff).contains(auditors), seconds > 0, thinkMs >= 0, signInSeconds >= 0,
              auditEvents >= 10, verifyEvents >= 1000 else {
            throw ValidationError("--nodes 1…3，--staff 1…10000，--auditors 0…staff，--seconds > 0，--audit-events ≥ 10，--verify-events ≥ 1000 / --nodes 1...3, --staff 1...10000, --auditors 0...staff, --seconds > 0, --audit-events >= 10, --verify-events >= 1000")
        }
    }

    func run() async throws {
        let environment = BenchEnvironment.current()
        let say: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("==> \(line)\n".utf8)) }
        var options = StaffPagesLoad.Options(binary: ClinicMesh.nodeExecutable)
        options.nodes = nodes
        options.staff = staff
        options.auditors = auditors
        options.seconds = seconds
        options.thinkMs = thinkMs
        options.signInSpreadSeconds = signInSeconds
        let report = try await StaffPagesLoad(options, say: say).run()

        say("审计：本进程内逐个写入 \(auditEvents) 个事件并合并到对端副本 / audit: \(auditEvents) events recorded one by one here, and merged into a peer replica")
        let cost = try Self.auditCost(events: auditEvents, nodes: nodes)
        say("审计：写入 \(verifyEvents) 个事件后 audit verify / audit: verify over \(verifyEvents) events")
        let verify = try Self.verifySeconds(events: verifyEvents)

        let pageP99 = report.pages.values.map(\.p99Ms).max() ?? 0
        let output = Output(
            environment: environment, run: report, pageP99Ms: pageP99, signinP99Ms: report.signIn.p99Ms, audit: cost,
            auditCPUOverheadRatio: report.nodeCPUMsPerAuditPage.flatMap { $0 > cost.clusterCPUMs ? rounded(cost.clusterCPUMs / ($0 - cost.clusterCPUMs), 3) : nil },
            auditCPUShareOfBrowsing: report.nodeCPUMsPerPage.flatMap { $0 > 0 ? rounded(report.auditEventsPerPage * cost.clusterCPUMs / $0, 3) : nil },
            auditVerifyEvents: verifyEvents, auditVerifyS: rounded(verify, 3), auditVerifySPerMillion: rounded(verify * 1_000_000 / Double(verifyEvents), 3))
        if json {
            try printJSON(output)
        } else {
            let pages = report.pages.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count) 次 / pages, p50 \($0.value.p50Ms) ms, p99 \($0.value.p99Ms) ms" }
            print("""
                命令 / command: \(environment.command)
                机器 / machine: \(environment.cpu), \(environment.cores) 核 / cores, \(environment.build)
                \(report.nodes) 个节点 / nodes, \(report.staff) 名员工 / staff (\(report.auditors) 审计员 / auditors), 思考 / think \(report.thinkMs) ms, \(report.seconds) s
                页面 / pages: \(pages.joined(separator: "; "))
                登录 / sign-in: \(report.signIn.count), p50 \(report.signIn.p50Ms) ms, p99 \(report.signIn.p99Ms) ms
                每页节点 CPU / node CPU per page: \(report.nodeCPUMsPerPage.map { "\($0) ms" } ?? "-")，每页审计事件 / audit events per page \(report.auditEventsPerPage)
                每个审计事件 CPU / CPU per audit event: 写入 / record \(cost.recordCPUMs) ms，合并 / merge \(cost.mergeCPUMs) ms，全集群 / cluster \(cost.clusterCPUMs) ms
                审计页节点 CPU（单独）/ node CPU per auditor's page (alone): \(report.nodeCPUMsPerAuditPage.map { "\($0) ms" } ?? "-")
                audit_cpu_overhead_ratio（审计页）/ (the auditor's page): \(output.auditCPUOverheadRatio.map { "\($0)" } ?? "-")；占浏览总 CPU / share of the browsing's CPU: \(output.auditCPUShareOfBrowsing.map { "\($0)" } ?? "-")
                audit verify: \(verifyEvents) 个事件 / events in \(output.auditVerifyS) s（每百万 / per million \(output.auditVerifySPerMillion) s）
                意外应答 / unexpected: \(report.unexpected.isEmpty ? "0" : report.unexpected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                """)
        }
        if !report.unexpected.isEmpty || !report.nodeVerifyIntact { throw ExitCode.failure }
    }

    /// CPU seconds this thread has used (the measured loops are synchronous, on one thread).
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func replica(_ folder: String, _ name: String, durability: Replica.Options.Durability) throws -> Replica {
        var options = Replica.Options()
        options.durability = durability
        return try Replica.open(path: folder + "/\(name).sqlite", node: name, schema: NodeSchema.schema, options: options)
    }

    static func event(_ n: Int) -> AuditEvent {
        AuditEvent(staff: "B\(String(format: "%04d", n % 100))", role: "auditor", action: "audit.read", resource: "audit", outcome: "ok", detail: "staff=&action=")
    }

    /// One event at a time, as pages record them: on a replica with the nodes' durability (full),
    /// then merged into a peer replica in one batch, the way a peer link delivers them.
    static func auditCost(events: Int, nodes: Int) throws -> AuditCost {
        let folder = NSTemporaryDirectory() + "clinicmesh-bench-audit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let origin = try replica(folder, "origin", durability: .full)
        let peer = try replica(folder, "peer", durability: .full)
        let trail = try AuditTrail(store: ReplicaStore(replica: origin, signals: WriteSignals()), node: "origin", incarnation: origin.origin.incarnation, clock: NodeClock())
        let recordStart = threadCPUSeconds()
        for n in 0..<events { try trail.record(event(n)) }
        let recordCPU = threadCPUSeconds() - recordStart
        let mergeStart = threadCPUSeconds()
        while true {
            let batch = try origin.changes(since: try peer.versionVector(), limit: 10_000)
            if batch.changes.isEmpty { break }
            _ = try peer.apply(batch)
        }
        let mergeCPU = threadCPUSeconds() - mergeStart
        try origin.close()
        try peer.close()
        let record = recordCPU * 1000 / Double(events), merge = mergeCPU * 1000 / Double(events)
        return AuditCost(recordCPUMs: rounded(record, 3), mergeCPUMs: rounded(merge, 3), clusterCPUMs: rounded(record + merge * Double(max(0, nodes - 1)), 3))
    }

    /// Seconds `audit verify` takes over `events` events (written in batches first, not timed).
    static func verifySeconds(events: Int) throws -> Double {
        let folder = NSTemporaryDirectory() + "clinicmesh-bench-verify-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let replica = try replica(folder, "verify", durability: .normal)
        let trail = try AuditTrail(store: ReplicaStore(replica: replica, signals: WriteSignals()), node: "verify", incarnation: replica.origin.incarnation, clock: NodeClock())
        for start in stride(from: 0, to: events, by: 10_000) {
            try trail.record(contentsOf: (start..<min(events, start + 10_000)).map(event))
        }
        let answer = try AuditVerification.verify(replica, node: "verify")
        try replica.close()
        guard answer.intact, answer.events == events else {
            throw ValidationError("audit verify 只检查了 \(answer.events)/\(events) 个事件或链已断 / audit verify checked \(answer.events) of \(events) events, or found a break")
        }
        return answer.seconds
    }
}
