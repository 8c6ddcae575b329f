import Consensus
import Domain
import Foundation
import Services

/// A node's config file (JSON). Every field is documented in `Cluster/CONFIG.md`.
public struct NodeConfig: Codable, Sendable, Hashable {
    public struct Endpoint: Codable, Sendable, Hashable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public struct Peer: Codable, Sendable, Hashable {
        public var id: String
        public var host: String
        public var port: Int
        /// Accepted certificate serials (hex, any `SerialFormat` form); more than one during a rotation.
        public var serials: [String]
        public init(id: String, host: String, port: Int, serials: [String]) {
            self.id = id
            self.host = host
            self.port = port
            self.serials = serials
        }
    }

    /// Tuning knobs with safe defaults; a config file may leave the whole object out.
    public struct Tuning: Codable, Sendable, Hashable {
        /// Heartbeat period per peer link.
        public var heartbeatMillis: Int = 1000
        /// Full version-vector exchange period (repairs anything a push missed).
        public var antiEntropyMillis: Int = 3000
        /// A link with no message from its peer for this long is dropped and redialled.
        public var peerTimeoutMillis: Int = 15000
        /// Reconnect backoff: first delay and cap (full jitter in between).
        public var reconnectInitialMillis: Int = 200
        public var reconnectMaxMillis: Int = 10000
        /// Change batches sent to one peer and not yet acknowledged, at most.
        public var maxInFlightBatches: Int = 4
        /// Changes per batch, at most (a batch never splits one write).
        public var batchChanges: Int = 2000
        /// Clock guard: the largest offset from peers before writes are refused.
        public var maxClockOffsetMillis: Int64 = 500
        /// Store durability: "full" (fsync each commit) or "normal".
        public var durability: String = "full"
        /// A node with no database yet first fetches a snapshot from a peer (then the change stream).
        public var snapshotWhenNew: Bool = true
        /// The largest snapshot this node accepts from a peer, or serves to one (bytes).
        public var maxSnapshotBytes: Int64 = 8 << 30
        /// Days after a session's date before its block is closed: its bookings stay in the read
        /// model for good and leave the consensus state, memory and logs.
        public var historyRetentionDays: Int = 2
        /// Sessions the leader asks to close per closing round (one round every 20 maintenance
        /// rounds): each closure writes its final rows under the consensus core's lock, so a small
        /// number keeps bookings quick while a backlog of past sessions drains.
        public var closingsPerRound: Int = 16
        /// State bytes per chunk when a snapshot goes to a lagging follower: each chunk is one
        /// mesh frame, under the 8 MiB frame limit.
        public var snapshotChunkBytes: Int = 4 << 20

        public init() {}

        enum CodingKeys: String, CodingKey {
            case heartbeatMillis = "heartbeat_ms", antiEntropyMillis = "anti_entropy_ms", peerTimeoutMillis = "peer_timeout_ms"
            case reconnectInitialMillis = "reconnect_initial_ms", reconnectMaxMillis = "reconnect_max_ms"
            case maxInFlightBatches = "max_in_flight_batches", batchChanges = "batch_changes"
            case maxClockOffsetMillis = "max_clock_offset_ms", durability
            case snapshotWhenNew = "snapshot_when_new", maxSnapshotBytes = "max_snapshot_bytes"
            case historyRetentionDays = "history_retention_days", closingsPerRound = "closings_per_round"
            case snapshotChunkBytes = "snapshot_chunk_bytes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Tuning()
            heartbeatMillis = try c.decodeIfPresent(Int.self, forKey: .heartbeatMillis) ?? d.heartbeatMillis
            antiEntropyMillis = try c.decodeIfPresent(Int.self, forKey: .antiEntropyMillis) ?? d.antiEntropyMillis
            peerTimeoutMillis = try c.decodeIfPresent(Int.self, forKey: .peerTimeoutMillis) ?? d.peerTimeoutMillis
            reconnectInitialMillis = try c.decodeIfPresent(Int.self, forKey: .reconnectInitialMillis) ?? d.reconnectInitialMillis
            reconnectMaxMillis = try c.decodeIfPresent(Int.self, forKey: .reconnectMaxMillis) ?? d.reconnectMaxMillis
            maxInFlightBatches = try c.decodeIfPresent(Int.self, forKey: .maxInFlightBatches) ?? d.maxInFlightBatches
            batchChanges = try c.decodeIfPresent(Int.self, forKey: .batchChanges) ?? d.batchChanges
            maxClockOffsetMillis = try c.decodeIfPresent(Int64.self, forKey: .maxClockOffsetMillis) ?? d.maxClockOffsetMillis
            durability = try c.decodeIfPresent(String.self, forKey: .durability) ?? d.durability
            snapshotWhenNew = try c.decodeIfPresent(Bool.self, forKey: .snapshotWhenNew) ?? d.snapshotWhenNew
            maxSnapshotBytes = try c.decodeIfPresent(Int64.self, forKey: .maxSnapshotBytes) ?? d.maxSnapshotBytes
            historyRetentionDays = try c.decodeIfPresent(Int.self, forKey: .historyRetentionDays) ?? d.historyRetentionDays
            closingsPerRound = try c.decodeIfPresent(Int.self, forKey: .closingsPerRound) ?? d.closingsPerRound
            snapshotChunkBytes = try c.decodeIfPresent(Int.self, forKey: .snapshotChunkBytes) ?? d.snapshotChunkBytes
        }
    }

    public var nodeID: String
    public var department: String
    public var clusterID: String
    public var mesh: Endpoint
    public var admin: Endpoint
    /// Where `GET /metrics` (Prometheus text, plain HTTP) listens; nil: no metrics endpoint.
    public var metrics: Endpoint?
    public var dataDir: String
    public var certDir: String
    public var dataKeyFile: String
    public var peers: [Peer]
    /// Raft voters at bootstrap (node ids, odd count); default: every node, at most 5, odd.
    /// Every node of a cluster must compute the same list.
    public var voters: [String]?
    public var tuning: Tuning
    /// Only for `clinicmesh bench replication`: a steady write load and a lag report.
    public var bench: BenchLoad?
    /// The patient HTTPS API and its booking rules; nil: no patient API on this node.
    public var patients: PatientConfig?
    /// Staff sign-in settings; nil: the defaults.
    public var staff: StaffConfig?
    /// `staff` as given, or its defaults when the file has no `staff` section.
    public var staffSettings: StaffConfig { staff ?? StaffConfig() }
    /// The clinic floor's rules (过号, closing queues); nil: the defaults.
    public var floor: FloorConfig?
    /// The lab interface: the folder of HL7 result files this node imports; nil: none.
    public var lab: LabConfig?
    /// The hospital's prescription lengths; nil: the defaults.
    public var prescribing: PrescribingConfig?
    /// The pharmacies whose stock this node holds; nil: none.
    public var pharmacy: PharmacyConfig?

    public struct BenchLoad: Codable, Sendable, Hashable {
        /// Rows written per second by this node (one transaction per 10 ms tick).
        public var rowsPerS: Double
        public var seconds: Double
        /// Where the node writes its report (commit and arrival times, CPU) when it stops.
        public var report: String

        public init(rowsPerS: Double, seconds: Double, report: String) {
            self.rowsPerS = rowsPerS
            self.seconds = seconds
            self.report = report
        }

        enum CodingKeys: String, CodingKey { case rowsPerS = "rows_per_s", seconds, report }
    }

    public init(nodeID: String, department: String, clusterID: String, mesh: Endpoint, admin: Endpoint,
                dataDir: String, certDir: String, dataKeyFile: String, peers: [Peer], tuning: Tuning = Tuning()) {
        self.nodeID = nodeID
        self.department = department
        self.clusterID = clusterID
        self.mesh = mesh
        self.admin = admin
        self.dataDir = dataDir
        self.certDir = certDir
        self.dataKeyFile = dataKeyFile
        self.peers = peers
        self.tuning = tuning
    }

    enum CodingKeys: String, CodingKey {
        case metrics
        case nodeID = "node_id", department, clusterID = "cluster_id", mesh, admin
        case dataDir = "data_dir", certDir = "cert_dir", dataKeyFile = "data_key_file", peers, voters, tuning, bench, patients, staff, floor, lab, prescribing, pharmacy
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nodeID = try c.decode(String.self, forKey: .nodeID)
        department = try c.decode(String.self, forKey: .department)
        clusterID = try c.decode(String.self, forKey: .clusterID)
        mesh = try c.decode(Endpoint.self, forKey: .mesh)
        admin = try c.decode(Endpoint.self, forKey: .admin)
        dataDir = try c.decode(String.self, forKey: .dataDir)
        certDir = try c.decode(String.self, forKey: .certDir)
        dataKeyFile = try c.decode(String.self, forKey: .dataKeyFile)
        peers = try c.decodeIfPresent([Peer].self, forKey: .peers) ?? []
        metrics = try c.decodeIfPresent(Endpoint.self, forKey: .metrics)
        voters = try c.decodeIfPresent([String].self, forKey: .voters)
        tuning = try c.decodeIfPresent(Tuning.self, forKey: .tuning) ?? Tuning()
        bench = try c.decodeIfPresent(BenchLoad.self, forKey: .bench)
        patients = try c.decodeIfPresent(PatientConfig.self, forKey: .patients)
        staff = try c.decodeIfPresent(StaffConfig.self, forKey: .staff)
        floor = try c.decodeIfPresent(FloorConfig.self, forKey: .floor)
        lab = try c.decodeIfPresent(LabConfig.self, forKey: .lab)
        prescribing = try c.decodeIfPresent(PrescribingConfig.self, forKey: .prescribing)
        pharmacy = try c.decodeIfPresent(PharmacyConfig.self, forKey: .pharmacy)
    }

    /// Reads and checks a config file; relative paths in it are taken from the file's folder.
    public static func load(path: String) throws -> NodeConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeError(.config, zh: "无法读取配置文件 \(path)；请检查路径与权限。", en: "cannot read the config file \(path); check the path and permissions.")
        }
        var config: NodeConfig
        do {
            config = try JSONDecoder().decode(NodeConfig.self, from: data)
        } catch {
            throw NodeError(.config, zh: "配置文件 \(path) 不是有效的 JSON 或缺少字段：\(error)；字段说明见 Cluster/CONFIG.md。",
                            en: "the config file \(path) is not valid JSON or lacks a field: \(error); see Cluster/CONFIG.md.")
        }
        let base = (path as NSString).deletingLastPathComponent
        config.dataDir = Self.resolve(config.dataDir, base: base)
        config.certDir = Self.resolve(config.certDir, base: base)
        config.dataKeyFile = Self.resolve(config.dataKeyFile, base: base)
        try config.validate()
        return config
    }

    /// The Raft configuration every node starts from (the same on every node of the cluster).
    public var bootstrapVoters: (voters: [String], learners: [String]) {
        let all = (peers.map(\.id) + [nodeID]).sorted()
        if let voters { return (voters.sorted(), all.filter { !voters.contains($0) }) }
        var count = min(5, all.count)
        if count % 2 == 0 { count -= 1 }
        return (Array(all.prefix(count)), Array(all.dropFirst(count)))
    }

    static func resolve(_ path: String, base: String) -> String {
        if path.hasPrefix("/") || base.isEmpty { return path }
        return (base as NSString).appendingPathComponent(path)
    }

    public func validate() throws {
        func fail(_ zh: String, _ en: String) -> NodeError { NodeError(.config, zh: zh, en: en) }
        guard !nodeID.isEmpty, nodeID.utf8.count <= 64 else { throw fail("node_id 不能为空且不超过 64 字节。", "node_id must be non-empty and at most 64 bytes.") }
        guard !clusterID.isEmpty else { throw fail("cluster_id 不能为空。", "cluster_id must not be empty.") }
        for (name, port) in [("mesh.port", mesh.port), ("admin.port", admin.port)] + (metrics.map { [("metrics.port", $0.port)] } ?? []) + peers.map({ ("peers[\($0.id)].port", $0.port) }) {
            guard (0...65535).contains(port) else { throw fail("\(name) 必须在 0 到 65535 之间。", "\(name) must be between 0 and 65535.") }
        }
        var seen = Set<String>()
        for peer in peers {
            guard peer.id != nodeID else { throw fail("peers 中不能包含本节点 \(nodeID)。", "peers must not list this node (\(nodeID)).") }
            guard seen.insert(peer.id).inserted else { throw fail("peers 中节点 \(peer.id) 重复。", "peer \(peer.id) is listed twice.") }
            guard !peer.serials.isEmpty else {
                throw fail("节点 \(peer.id) 没有登记证书序列号（serials）。", "peer \(peer.id) has no certificate serial (serials).")
            }
        }
        try patients?.validate()
        try staff?.validate()
        try floor?.validate()
        try prescribing?.validate()
        try pharmacy?.validate()
        if let voters {
            let known = Set(peers.map(\.id) + [nodeID])
            // A node joining as a learner (cluster add-node) lists the voters as they are, odd or not.
            guard !voters.isEmpty, voters.count % 2 == 1 || !voters.contains(nodeID), Set(voters).count == voters.count, voters.allSatisfy(known.contains) else {
                throw fail("voters 必须是奇数个（以学习者加入的节点除外）、不重复、且都在本节点或 peers 中。", "voters must be an odd number (unless this node joins as a learner) of distinct nodes, each this node or one of peers.")
            }
        }
        guard ["full", "normal"].contains(tuning.durability) else {
            throw fail("tuning.durability 只能是 full 或 normal。", "tuning.durability must be full or normal.")
        }
        guard tuning.maxInFlightBatches >= 1, tuning.batchChanges >= 1, tuning.heartbeatMillis >= 10,
              tuning.antiEntropyMillis >= 10, tuning.reconnectInitialMillis >= 1, tuning.reconnectMaxMillis >= tuning.reconnectInitialMillis,
              tuning.peerTimeoutMillis > tuning.heartbeatMillis, tuning.maxClockOffsetMillis > 0, tuning.maxSnapshotBytes > 0 else {
            throw fail("tuning 中有不合理的取值（见 Cluster/CONFIG.md）。", "tuning holds a value out of range (see Cluster/CONFIG.md).")
        }
        guard (0...3650).contains(tuning.historyRetentionDays) else {
            throw fail("tuning.history_retention_days 必须在 0 到 3650 天之间（就诊日后多少天关闭该时段）。",
                       "tuning.history_retention_days must be between 0 and 3650 (days after a session's date before it is closed).")
        }
        guard (1...4096).contains(tuning.closingsPerRound) else {
            throw fail("tuning.closings_per_round 必须在 1 到 4096 之间（领导者每轮请求关闭的时段数）。",
                       "tuning.closings_per_round must be between 1 and 4096 (sessions the leader asks to close per round).")
        }
        guard (1024...(6 << 20)).contains(tuning.snapshotChunkBytes) else {
            throw fail("tuning.snapshot_chunk_bytes 必须在 1024 到 6291456 字节之间（每个快照分块须装进一个 8 MiB 的网格帧）。",
                       "tuning.snapshot_chunk_bytes must be between 1024 and 6291456 bytes (each snapshot chunk must fit one 8 MiB mesh frame).")
        }
    }
}


/// Staff sign-in settings (`"staff"` in a node's config).
public struct StaffConfig: Codable, Sendable, Hashable {
    public static let defaultIdleSeconds = 1800
    /// How long a session lasts without use; the cookie carries the deadline this node sets.
    public var sessionIdleSeconds: Int
    /// A patient is in a staff member's care (`patient.read` in `dept` scope) with an appointment
    /// in their department this many days either side of today.
    public var careWindowDays: Int
    /// Sign-in attempts per client address on this node: a burst, then so many a second (each
    /// attempt costs one 32 MiB scrypt; the lockout guards each account, this the node).
    public var signInBurst: Int
    public var signInPerSecond: Double

    public init(sessionIdleSeconds: Int = Self.defaultIdleSeconds, careWindowDays: Int = 30, signInBurst: Int = 30, signInPerSecond: Double = 1) {
        self.sessionIdleSeconds = sessionIdleSeconds
        self.careWindowDays = careWindowDays
        self.signInBurst = signInBurst
        self.signInPerSecond = signInPerSecond
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sessionIdleSeconds = try c.decodeIfPresent(Int.self, forKey: .sessionIdleSeconds) ?? Self.defaultIdleSeconds
        careWindowDays = try c.decodeIfPresent(Int.self, forKey: .careWindowDays) ?? 30
        signInBurst = try c.decodeIfPresent(Int.self, forKey: .signInBurst) ?? 30
        signInPerSecond = try c.decodeIfPresent(Double.self, forKey: .signInPerSecond) ?? 1
    }

    func validate() throws {
        guard (10...86_400).contains(sessionIdleSeconds) else {
            throw NodeError(.config, zh: "staff.session_idle_seconds 应在 10 到 86400 之间（默认 1800，即 30 分钟）。",
                            en: "staff.session_idle_seconds must be between 10 and 86400 (default 1800, 30 minutes).")
        }
        guard (0...3650).contains(careWindowDays) else {
            throw NodeError(.config, zh: "staff.care_window_days 应在 0 到 3650 之间（默认 30）。", en: "staff.care_window_days must be between 0 and 3650 (default 30).")
        }
        guard (1...10_000).contains(signInBurst), signInPerSecond > 0, signInPerSecond <= 10_000 else {
            throw NodeError(.config, zh: "staff.sign_in_burst 应在 1 到 10000 之间（默认 30），staff.sign_in_per_second 应大于 0、不超过 10000（默认 1）。",
                            en: "staff.sign_in_burst must be between 1 and 10000 (default 30), staff.sign_in_per_second above 0 and at most 10000 (default 1).")
        }
    }

    enum CodingKeys: String, CodingKey {
        case sessionIdleSeconds = "session_idle_seconds", careWindowDays = "care_window_days", signInBurst = "sign_in_burst", signInPerSecond = "sign_in_per_second"
    }
}

/// The lab interface (`"lab"` in a node's config).
public struct LabConfig: Codable, Sendable, Hashable {
    /// The folder the lab system drops HL7 v2 ORU^R01 files in (relative: to the data folder).
    public var inbox: String

    public init(inbox: String) { self.inbox = inbox }
}

/// The hospital's prescription lengths (`"prescribing"` in a node's config). 《处方管理办法》第十九条
/// sets 7 and 3 days and lets chronic diseases have longer; which ones, and how long, the hospital
/// decides. Every node of a cluster should say the same.
public struct PrescribingConfig: Codable, Sendable, Hashable {
    public var ordinaryDays: Int
    public var emergencyDays: Int
    public var chronicDays: Int
    /// ICD-10 code prefixes of the chronic diseases allowed `chronic_days` (the hospital's list).
    public var chronicDiagnoses: [String]
    /// Special-use antibacterials in the outpatient clinic (第二十八条 says no; default false).
    public var outpatientSpecialUse: Bool

    /// The demo hospital's chronic list: hypertension, diabetes, ischaemic heart disease, lipid
    /// disorders, COPD and asthma, chronic kidney disease. Its own choice, not a published list.
    public static let demoChronicDiagnoses = ["I10", "I11", "I12", "I13", "I15", "E10", "E11", "E12", "E13", "E14", "I20", "I25", "E78", "J44", "J45", "N18"]

    public init(ordinaryDays: Int = 7, emergencyDays: Int = 3, chronicDays: Int = 30, chronicDiagnoses: [String] = Self.demoChronicDiagnoses,
                outpatientSpecialUse: Bool = false) {
        self.ordinaryDays = ordinaryDays; self.emergencyDays = emergencyDays; self.chronicDays = chronicDays
        self.chronicDiagnoses = chronicDiagnoses; self.outpatientSpecialUse = outpatientSpecialUse
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ordinaryDays = try c.decodeIfPresent(Int.self, forKey: .ordinaryDays) ?? 7
        emergencyDays = try c.decodeIfPresent(Int.self, forKey: .emergencyDays) ?? 3
        chronicDays = try c.decodeIfPresent(Int.self, forKey: .chronicDays) ?? 30
        chronicDiagnoses = try c.decodeIfPresent([String].self, forKey: .chronicDiagnoses) ?? Self.demoChronicDiagnoses
        outpatientSpecialUse = try c.decodeIfPresent(Bool.self, forKey: .outpatientSpecialUse) ?? false
    }

    func validate() throws {
        guard (1...7).contains(ordinaryDays), (1...3).contains(emergencyDays) else {
            throw NodeError(.config, zh: "prescribing.ordinary_days 应在 1 到 7 之间、emergency_days 在 1 到 3 之间（《处方管理办法》第十九条）。",
                            en: "prescribing.ordinary_days must be 1 to 7 and emergency_days 1 to 3 (Prescription Regulations, art. 19).")
        }
        guard (1...90).contains(chronicDays) else {
            throw NodeError(.config, zh: "prescribing.chronic_days 应在 1 到 90 之间（默认 30）。", en: "prescribing.chronic_days must be 1 to 90 (default 30).")
        }
    }

    public var policy: SupplyPolicy {
        var p = SupplyPolicy()
        p.ordinaryDays = ordinaryDays; p.emergencyDays = emergencyDays; p.chronicDays = chronicDays
        p.chronicDiagnoses = chronicDiagnoses; p.outpatientSpecialUse = outpatientSpecialUse
        return p
    }

    enum CodingKeys: String, CodingKey {
        case ordinaryDays = "ordinary_days", emergencyDays = "emergency_days", chronicDays = "chronic_days", chronicDiagnoses = "chronic_diagnoses"
        case outpatientSpecialUse = "outpatient_special_use"
    }
}

/// The pharmacies whose stock blocks this node holds (`"pharmacy"` in a node's config): the node
/// of the pharmacy's own staff; after a failure the block moves to another node and back.
public struct PharmacyConfig: Codable, Sendable, Hashable {
    /// Pharmacy codes: `west` (门诊西药房), `tcm` (中药房).
    public var serves: [String]

    public init(serves: [String]) { self.serves = serves }

    func validate() throws {
        for code in serves where Pharmacy(rawValue: code) == nil {
            throw NodeError(.config, zh: "pharmacy.serves 中的“\(code)”不是药房代码（west 门诊西药房、tcm 中药房）。",
                            en: "“\(code)” in pharmacy.serves is not a pharmacy code (west, tcm).")
        }
    }
}

/// The clinic floor's rules (`"floor"` in a node's config).
public struct FloorConfig: Codable, Sendable, Hashable {
    /// A patient back after missing the call (过号) waits behind this many others.
    public var backBehind: Int
    /// A session's queue closes this many minutes after the session's end; booked patients who
    /// never came are then no-shows.
    public var closeAfterMinutes: Int
    /// A doctor's sign-in to a session this many minutes after its start is late, a sign-out this
    /// many minutes before its end early (出诊签到).
    public var lateMinutes: Int

    public init(backBehind: Int = 3, closeAfterMinutes: Int = 60, lateMinutes: Int = 10) {
        self.backBehind = backBehind
        self.closeAfterMinutes = closeAfterMinutes
        self.lateMinutes = lateMinutes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backBehind = try c.decodeIfPresent(Int.self, forKey: .backBehind) ?? 3
        closeAfterMinutes = try c.decodeIfPresent(Int.self, forKey: .closeAfterMinutes) ?? 60
        lateMinutes = try c.decodeIfPresent(Int.self, forKey: .lateMinutes) ?? 10
    }

    func validate() throws {
        guard (0...SessionQueue.maxBehind).contains(backBehind) else {
            throw NodeError(.config, zh: "floor.back_behind 应在 0 到 \(SessionQueue.maxBehind) 之间（默认 3）。",
                            en: "floor.back_behind must be between 0 and \(SessionQueue.maxBehind) (default 3).")
        }
        guard (0...720).contains(closeAfterMinutes) else {
            throw NodeError(.config, zh: "floor.close_after_minutes 应在 0 到 720 之间（默认 60）。", en: "floor.close_after_minutes must be between 0 and 720 (default 60).")
        }
        guard (0...120).contains(lateMinutes) else {
            throw NodeError(.config, zh: "floor.late_minutes 应在 0 到 120 之间（默认 10）。", en: "floor.late_minutes must be between 0 and 120 (default 10).")
        }
    }

    var settings: FloorSettings { FloorSettings(backBehind: backBehind, closeAfterMinutes: closeAfterMinutes) }

    enum CodingKeys: String, CodingKey { case backBehind = "back_behind", closeAfterMinutes = "close_after_minutes", lateMinutes = "late_minutes" }
}
