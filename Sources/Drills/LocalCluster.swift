import ClinicNode
import AdminAPI
import Consensus
import Foundation
import Mesh
import PKI
import ReplicatedCore
import ReplicatedStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A cluster of real `clinicmesh node run` processes on loopback, for drills and benches: a
/// throw-away CA, node and admin certificates, a data key and one config per node in a temporary
/// folder; start, SIGKILL, SIGSTOP/SIGCONT and restart nodes; ask them over the admin API.
public final class LocalCluster: @unchecked Sendable {
    public let folder: String
    public let ids: [String]
    public let clusterID = "drill"
    public let binary: String
    let admin: MeshCredentials
    /// The nodes' log level (their logs go to `logPath(id)`).
    public let logLevel: String
    var ports: [String: (mesh: Int, admin: Int)] = [:]
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    /// With `proxied: true`, every node reaches its peers' mesh ports through this proxy.
    public let proxy: FaultProxy?
    private var mounts: [String] = []

    /// - Parameters:
    ///   - departments: node id to its department (Chinese name).
    ///   - configure: last changes to each node's config, given the cluster's folder.
    public init(departments: [(id: String, department: String)], binary: String, tuning: NodeConfig.Tuning = LocalCluster.drillTuning,
                logLevel: String = "info", folderPrefix: String = "clinicmesh-drill-", proxied: Bool = false,
                configure: (String, inout NodeConfig) -> Void = { _, _ in }) throws {
        folder = NSTemporaryDirectory() + folderPrefix + UUID().uuidString
        self.logLevel = logLevel
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        ids = departments.map(\.id)
        self.binary = binary
        let ca = try ClusterCA.create(commonName: "Drill CA")
        _ = try DataKeyFile.create(at: folder + "/data.key")
        var serials: [String: String] = [:]
        for (id, department) in departments {
            let issued = try ca.issueNode(.init(nodeID: id, department: department, hosts: ["127.0.0.1"], validity: 86_400))
            try PKIFiles.writeIssued(issued, ca: ca, to: folder + "/certs/" + id, force: true)
            serials[id] = issued.serial
        }
        try PKIFiles.writeIssued(try ca.issueAdmin(name: "drill.admin"), ca: ca, to: folder + "/certs/admin", force: true)
        admin = try MeshCredentials.load(directory: folder + "/certs/admin", kind: .admin)
        for id in ids { ports[id] = (try Self.freePort(), try Self.freePort()) }
        // Proxied: peers[] of `from` name the proxy's port for each `to`, not `to`'s own port.
        var peerPorts: [String: [String: Int]] = [:]
        let proxy = proxied ? FaultProxy() : nil
        self.proxy = proxy
        for from in ids { for to in ids where to != from {
            peerPorts[from, default: [:]][to] = try proxy?.add(from: from, to: to, targetPort: ports[to]!.mesh) ?? ports[to]!.mesh
        } }
        for (id, department) in departments {
            var config = NodeConfig(
                nodeID: id, department: department, clusterID: clusterID,
                mesh: .init(host: "127.0.0.1", port: ports[id]!.mesh), admin: .init(host: "127.0.0.1", port: ports[id]!.admin),
                dataDir: folder + "/data/" + id, certDir: folder + "/certs/" + id, dataKeyFile: folder + "/data.key",
                peers: ids.filter { $0 != id }.map { .init(id: $0, host: "127.0.0.1", port: peerPorts[id]![$0]!, serials: [serials[$0]!]) },
                tuning: tuning)
            configure(folder, &config)
            try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: configPath(id)))
        }
    }

    /// Quick reconnects; full durability (drills check that acknowledged means fsynced).
    public static var drillTuning: NodeConfig.Tuning {
        var t = NodeConfig.Tuning()
        t.heartbeatMillis = 250
        t.antiEntropyMillis = 1000
        t.peerTimeoutMillis = 3000
        t.reconnectInitialMillis = 50
        t.reconnectMaxMillis = 500
        t.snapshotWhenNew = false
        return t
    }

    func configPath(_ id: String) -> String { folder + "/\(id).json" }

    /// The node's config as written (`start` reads it afresh).
    public func config(_ id: String) throws -> NodeConfig {
        try JSONDecoder().decode(NodeConfig.self, from: Data(contentsOf: URL(fileURLWithPath: configPath(id))))
    }

    /// Changes the node's config; it takes effect when the node next starts.
    public func changeConfig(_ id: String, _ change: (inout NodeConfig) -> Void) throws {
        var config = try config(id)
        change(&config)
        try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: configPath(id)))
    }
    public func logPath(_ id: String) -> String { folder + "/\(id).log" }

    /// Starts (or restarts) the node's process; its log is appended to `logPath(id)`.
    public func start(_ id: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["node", "run", "--config", configPath(id), "--log-level", logLevel]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        if !FileManager.default.fileExists(atPath: logPath(id)) { _ = FileManager.default.createFile(atPath: logPath(id), contents: nil) }
        let log = FileHandle(forWritingAtPath: logPath(id))
        log?.seekToEndOfFile()
        process.standardError = log
        try process.run()
        lock.withLock { processes[id] = process }
    }

    public func startAll() throws { for id in ids { try start(id) } }

    /// Starts every node, waits for a leader with every node live, then defines `perNode` blocks
    /// of `slots` slots homed on each node (`<node>-dr<i>`) and waits until each is leased at home.
    public func startWithBlocks(perNode: Int, slots: Int) async throws -> [BlockDefinition] {
        try startAll()
        try await waitUntilLed()
        let blocks = ids.flatMap { id in (0..<perNode).map { BlockDefinition(block: "\(id)-dr\($0)", home: id, slots: slots) } }
        try await defineBlocks(ids[0], blocks)
        // The leader defines the per-person quota buckets on its own, about a second after every
        // node registered; a booking under a quota before they are leased is refused as unavailable.
        let buckets = ConsensusCoreOptions().quotaBuckets
        let names = Set(blocks.map(\.block))
        var unmet: [String] = []
        do {
            try await waitFor("every block and quota bucket leased to its home node") {
                let v = try await self.bookings(self.ids[0])
                unmet = v.blocks.filter { !($0.valid && $0.holder == $0.home) }.map { "\($0.block) held by \($0.holder ?? "-") (home \($0.home), valid \($0.valid))" }
                let defined = v.blocks.filter { names.contains($0.block) }.count, bucketCount = v.blocks.filter { $0.block.hasPrefix(quotaBucketPrefix) }.count
                if defined != blocks.count || bucketCount != buckets { unmet.append("\(defined) of \(blocks.count) blocks, \(bucketCount) of \(buckets) buckets") }
                return unmet.isEmpty
            }
        } catch {
            throw DrillError("\(error); \(unmet.joined(separator: "; "))")
        }
        return blocks
    }

    /// Waits until `ids[0]` knows a leader and sees every node registered and live.
    public func waitUntilLed(seconds: Double = 60) async throws {
        try await waitFor("a leader and every node registered and live", seconds: seconds) {
            let s = try await self.status(self.ids[0])
            guard let c = s.consensus, c.leader != nil else { return false }
            return self.ids.allSatisfy { id in c.members.contains { $0.id == id && $0.live } }
        }
    }

    /// Waits until every node holds every record any node holds (their version vectors agree).
    public func waitUntilReplicasAgree(_ what: String, seconds: Double = 120) async throws {
        try await waitFor(what, seconds: seconds) {
            var vectors: [[String: UInt64]] = []
            for id in self.ids { vectors.append(try await self.status(id).versionVector) }
            let newest = vectors.reduce(into: [String: UInt64]()) { $0.merge($1) { max($0, $1) } }
            return vectors.allSatisfy { $0 == newest }
        }
    }

    /// The node's resident memory (VmRSS in `/proc/<pid>/status`, MiB); nil if not running.
    public func residentMiB(_ id: String) -> Double? {
        guard let p = pid(id), let text = try? String(contentsOfFile: "/proc/\(p)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return nil }
        return kib / 1024
    }

    /// The size of each file in the node's consensus folder (`raft.log`, with its snapshots, and
    /// `bookings.log`), in bytes.
    public func consensusLogBytes(_ id: String) -> [String: Int64] {
        let folder = dataDir(id) + "/consensus"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.reduce(into: [:]) { out, name in
            if let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name))?[.size] as? Int64 { out[name] = size }
        }
    }

    public func pid(_ id: String) -> Int32? { lock.withLock { processes[id].map(\.processIdentifier) } }

    public func signal(_ id: String, _ sig: Int32) {
        if let p = pid(id) { kill(p, sig) }
    }

    /// SIGKILL and wait for the process to be gone.
    public func killHard(_ id: String) {
        guard let p = lock.withLock({ processes[id] }) else { return }
        kill(p.processIdentifier, SIGCONT)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Waits until the node's process has exited (after a signal).
    public func waitForExit(_ id: String) {
        lock.withLock { processes[id] }?.waitUntilExit()
    }

    /// SIGTERM (a clean stop: leases handed over), then SIGKILL if it takes too long.
    public func stopAll(graceSeconds: Double = 15) {
        let all = lock.withLock { Array(processes.values) }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(graceSeconds)
        for p in all {
            while p.isRunning, Date() < deadline { usleep(50_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
    }

    /// Stops the proxy and unmounts what `mountTmpfs` mounted (after `stopAll`).
    public func release() {
        proxy?.stop()
        for path in lock.withLock({ mounts }) { _ = umount2(path, Int32(MNT_DETACH)) }
        lock.withLock { mounts = [] }
    }

    /// `release`, then deletes the folder.
    public func remove() {
        release()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A bench's end: the folder goes unless `CLINICMESH_BENCH_KEEP` is set (to look at logs and data).
    public func removeUnlessKept() {
        if ProcessInfo.processInfo.environment["CLINICMESH_BENCH_KEEP"] == nil { remove() }
    }

    public func isRunning(_ id: String) -> Bool { lock.withLock { processes[id]?.isRunning ?? false } }

    public func dataDir(_ id: String) -> String { folder + "/data/" + id }

    /// Puts the node's data folder on a tmpfs of `bytes` (before it starts): a real disk that
    /// fills. Needs root (CAP_SYS_ADMIN).
    public func mountTmpfs(_ id: String, bytes: Int) throws {
        let path = dataDir(id)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(bytes),mode=0700") == 0 else {
            throw DrillError("无法挂载 tmpfs 到 \(path)（需要 root 权限）：\(String(cString: strerror(errno))) / cannot mount a tmpfs on \(path) (needs root): \(String(cString: strerror(errno)))")
        }
        lock.withLock { mounts.append(path) }
    }

    /// Whether this process may mount a tmpfs (tries a tiny one).
    public static func canMountTmpfs() -> Bool {
        let path = NSTemporaryDirectory() + "clinicmesh-mount-probe-" + UUID().uuidString
        guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil else { return false }
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard mount("tmpfs", path, "tmpfs", 0, "size=65536") == 0 else { return false }
        _ = umount2(path, Int32(MNT_DETACH))
        return true
    }

    // MARK: Admin API

    public func status(_ id: String) async throws -> NodeStatus {
        try await AdminClient.status(host: "127.0.0.1", port: ports[id]!.admin, clusterID: clusterID, credentials: admin, expectedNodeID: id)
    }

    public func book(_ id: String, _ command: BookCommand) async throws -> BookAnswer {
        try await AdminClient.book(host: "127.0.0.1", port: ports[id]!.admin, clusterID: clusterID, credentials: admin, expectedNodeID: id, command)
    }

    public func defineBlocks(_ id: String, _ blocks: [BlockDefinition]) async throws {
        try await AdminClient.defineBlocks(host: "127.0.0.1", port: ports[id]!.admin, clusterID: clusterID, credentials: admin, expectedNodeID: id, blocks)
    }

    /// Any admin command (`seed-demo {...}`, ...); the answer's bytes.
    public func call(_ id: String, _ command: String) async throws -> [UInt8] {
        try await AdminClient.request(host: "127.0.0.1", port: ports[id]!.admin, command: command, clusterID: clusterID, credentials: admin,
                                      expectedNodeID: id)
    }

    /// `quotaBucketRecords: false`: without the quota buckets' records, which never close.
    public func bookings(_ id: String, quotaBucketRecords: Bool = true) async throws -> BookingsView {
        try await AdminClient.bookings(host: "127.0.0.1", port: ports[id]!.admin, clusterID: clusterID, credentials: admin, expectedNodeID: id,
                                       quotaBucketRecords: quotaBucketRecords)
    }

    /// One admin session with the node for many commands (`AdminClient.withSession`).
    public func withAdminSession<Result: Sendable>(_ id: String, _ body: (AdminSession) async throws -> Result) async throws -> Result {
        try await AdminClient.withSession(host: "127.0.0.1", port: ports[id]!.admin, clusterID: clusterID, credentials: admin,
                                          expectedNodeID: id, body)
    }

    public func registerPatient(_ id: String, _ command: RegisterPatientCommand) async throws -> RegisterPatientAnswer {
        try JSONDecoder().decode(RegisterPatientAnswer.self, from: Data(try await call(id, "register-patient", command)))
    }

    public func records(_ id: String, table: String = "patient") async throws -> RecordsView {
        try JSONDecoder().decode(RecordsView.self, from: Data(try await call(id, "records", ["table": table])))
    }

    /// Proposes evicting `node` through `id`; answers what the node said.
    public func evict(_ id: String, node: String) async throws -> String {
        String(decoding: try await call(id, "evict", ["node": node]), as: UTF8.self)
    }

    /// Test-only (nodes built with -DCLINICMESH_BUG_SWITCHES): shifts the node's wall clock.
    public func setClockOffset(_ id: String, ms: Int64) async throws -> String {
        String(decoding: try await call(id, "clock-offset", ["offset_ms": ms]), as: UTF8.self)
    }

    /// One admin command with a JSON argument.
    public func call(_ id: String, _ command: String, _ argument: some Encodable) async throws -> [UInt8] {
        let text = command + " " + String(decoding: try JSONEncoder().encode(argument), as: UTF8.self)
        return try await AdminClient.request(host: "127.0.0.1", port: ports[id]!.admin, command: text, clusterID: clusterID,
                                             credentials: admin, expectedNodeID: id)
    }

    /// The last lines of a node's log (for failure reports).
    public func logTail(_ id: String, bytes: Int = 3000) -> String {
        String(((try? String(contentsOfFile: logPath(id), encoding: .utf8)) ?? "").suffix(bytes))
    }

    /// A loopback port for a node to listen on, free a moment ago and never handed out before by
    /// this process. Taken below the kernel's ephemeral range: a port from that range (what binding
    /// port 0 gives) can become some outgoing connection's source port before the node binds it,
    /// and the node then fails to start (`Address already in use`; seen in a drill).
    public static func freePort() throws -> Int {
        let low = ephemeralRangeStart()
        let range = low > 11_000 ? 10_000..<low : 1_024..<low
        for _ in 0..<500 {
            let port = Int.random(in: range)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if canBind(port) { return port }
        }
        throw DrillError("no free loopback port in \(range)")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    /// The first port of the kernel's ephemeral range (Linux default 32768).
    private static func ephemeralRangeStart() -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } } == 0
    }
}

public struct DrillError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or the deadline passes; never asserts a duration.
public func waitFor(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    var lastError: (any Error)?
    while Date() < deadline {
        do { if try await condition() { return } } catch { lastError = error }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw DrillError("超时：\(what) / timed out waiting for: \(what)\(lastError.map { " (last error: \($0))" } ?? "")")
}
