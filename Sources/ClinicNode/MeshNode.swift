import Consensus
import Crypto
import Dispatch
import Foundation
import Logging
import Mesh
import NIOCore
import NIOPosix
import PKI
import ReplicatedCore
import ReplicatedStore
import ServiceLifecycle
import Services
import HTTPAPI
import AdminAPI
import NIOSSL
import UnixSignals
import X509
import Synchronization

#if canImport(CMalloc)
import CMalloc
#endif

/// One running node: the replica, the mesh listener, one outbound link per peer (anti-entropy,
/// heartbeats), the clock guard and the admin API, run as ordered services (`makeServiceGroup`).
///
/// Each connection carries changes one way: a node pushes its changes to a peer over its own
/// outbound link, and the peer acknowledges each batch (and answers each probe) with its version
/// vector. The protocol is documented in `Cluster/CONFIG.md`, "Replication protocol".
public final class MeshNode: Sendable {
    public let config: NodeConfig
    public let replica: Replica
    public let clock: NodeClock
    package let logger: Logger
    let meshServer: MeshServer
    let adminServer: MeshServer
    let client: MeshClient
    let runtime: Mutex<Runtime>
    let startedNanos: UInt64
    /// The peer whose snapshot this node started from, if it was new and got one.
    public let snapshotFrom: String?
    let consensus: ConsensusShell
    /// This node's own certificate serial, as it registers itself in the replicated membership.
    let ownSerial: String
    /// The patient API's state (sign-in codes, rate limits, SMS outbox), if the config enables it.
    let patients: PatientDesk?
    /// Staff accounts, sign-in, sessions and this node's audit chain.
    package let staff: StaffDesk
    /// Slot search, holds, confirmations, cancellations and staff steps over this node's consensus shell.
    let booking: BookingDesk
    /// The bookings as read tables in this node's `readmodel.sqlite`, kept up to date from the consensus records.
    package let readModel: BookingReadModel
    /// The notes as this node searches them, in `records.sqlite`, fed from the replica's change log.
    package let recordIndex: RecordIndex
    /// The departments' rotas: templates, plans, and publishing them as sessions held here.
    package var rota: RotaDesk { RotaDesk(store: store, blocks: self, node: config.nodeID, clock: clock) }
    /// The clinic floor: check-in, walk-ins, queues and calls, the waiting-room display.
    package let floor: FloorDesk
    /// Doctors' requests to change their sessions, the heads' decisions, and what they do to bookings.
    package var sessionChanges: SessionChangeDesk { SessionChangeDesk(rota: rota, booking: booking, outbox: patients?.outbox) }
    /// The outpatient record: visits, notes and their versions (nil if the diagnosis catalogue is missing).
    package var records: RecordDesk? {
        (try? DiagnosisCatalogue.shipped.get()).map { RecordDesk(store: store, clock: clock, floor: floor, index: recordIndex, node: config.nodeID, catalogue: $0) }
    }
    /// Lab and exam orders and their results (nil if the order catalogue is missing).
    package var orders: OrderDesk? {
        (try? OrderCatalogue.shipped.get()).map { OrderDesk(store: store, clock: clock, catalogue: $0) }
    }
    /// Prescriptions and their review (nil if the drug catalogue, the rule pack or the record is missing).
    package var prescriptions: PrescriptionDesk? {
        guard let records, let catalogue = try? DrugCatalogue.shipped.get(), let rules = try? RulePack.shipped.get() else { return nil }
        return PrescriptionDesk(store: store, clock: clock, node: config.nodeID, catalogue: catalogue, rules: rules,
                                policy: (config.prescribing ?? PrescribingConfig()).policy, records: records, orders: orders)
    }
    /// The pharmacies' stock, dispensing and returns (nil without prescriptions).
    package var pharmacy: PharmacyDesk? {
        prescriptions.map { PharmacyDesk(consensus: consensus, prescriptions: $0, outbox: patients?.outbox) }
    }
    /// The folder of HL7 result files this node imports, if the config names one.
    package var labInbox: LabInbox? {
        guard let lab = config.lab, let orders else { return nil }
        return LabInbox(folder: NodeConfig.resolve(lab.inbox, base: config.dataDir), orders: orders)
    }
    /// Doctors' sign-in to their sessions, and planned against worked.
    package var attendance: AttendanceDesk { AttendanceDesk(store: store, clock: clock, toleranceMinutes: (config.floor ?? FloorConfig()).lateMinutes) }
    /// The port the patient API bound, once it listens.
    let patientPortBound = Mutex<Int?>(nil)
    /// The replica as the services write it: every local write wakes the peer links.
    let store: ReplicaStore
    var signals: WriteSignals { store.signals }
    /// Told of every change batch applied from a peer (the bench load notes its rows' arrival).
    let batchObservers = Mutex<[@Sendable (ReplicatedCore.ChangeBatch) -> Void]>([])
    /// The admin API's commands (`nodeCommands`, and any the composition adds).
    let adminCommands = Mutex(AdminCommandTable())
    /// This node's metrics (a registry of its own; `GET /metrics` when the config has `metrics`).
    public let metrics: NodeMetrics

    struct PeerRuntime {
        var address: NodeConfig.Endpoint
        var outboundUp = false
        var inboundSessions = 0
        var lastContactNanos: UInt64?
        var estimator = ClockOffsetEstimator()
        var acked: ReplicatedCore.VersionVector?
        var lastVectorNanos: UInt64?
        var changesSent = 0
        var batchesReceived = 0
        var lastError: String?
    }

    struct Runtime {
        var peers: [String: PeerRuntime] = [:]
        var nextID = 0
        var channels: [Int: (kind: ChannelKind, channel: any Channel, peer: String?)] = [:]
        /// Evicted nodes: their connections are closed at once and refused from then on.
        var evictedPeers: Set<String> = []
        /// Kinds whose channels have been closed for shutdown: one registered later is closed at once.
        var closedKinds: Set<ChannelKind> = []
        var guardReason: StoreError?
        /// Set while local writes are refused because the data disk is full (AdminRecords.swift).
        var diskReason: StoreError?
        /// Block definitions and evictions proposed here and not yet seen committed.
        var pendingBlocks: [BlockDefinition] = []
        /// When blocks were last proposed (monotonic ns): a re-proposal waits for a commit to be overdue.
        var blocksProposedNanos: UInt64 = 0
        var pendingEvictions: Set<String> = []
    }

    /// Opens the store and binds the mesh and admin listeners; `makeServiceGroup` runs them.
    public static func open(config: NodeConfig, clock: NodeClock = NodeClock(), logger: Logger) async throws -> MeshNode {
        var logger = logger
        logger[metadataKey: "node.id"] = "\(config.nodeID)"
        try config.validate()
        let credentials: MeshCredentials
        do {
            credentials = try MeshCredentials.load(directory: config.certDir, kind: .node)
        } catch {
            throw NodeError(.startup, zh: "无法读取节点证书（\(config.certDir)）：\(error)", en: "cannot load the node certificate from \(config.certDir): \(error)")
        }
        let membership = LiveMembership(configured: StaticMembership(Dictionary(config.peers.map { ($0.id, $0.serials) }, uniquingKeysWith: +)))
        guard let leaf = credentials.certificateChain.first, let own = try? Certificate(derEncoded: leaf.toDERBytes()) else {
            throw NodeError(.startup, zh: "节点证书无法解析（\(config.certDir)）。", en: "the node certificate in \(config.certDir) does not parse.")
        }
        let ownSerial = SerialFormat.hex(own.serialNumber)
        let meshTLS = try MeshTLS(credentials: credentials, membership: membership, accepting: .node)
        let adminTLS = try MeshTLS(credentials: credentials, membership: membership, accepting: .admin)
        let dataKey: SymmetricKey
        do {
            dataKey = try DataKeyFile.load(from: config.dataKeyFile)
        } catch {
            throw NodeError(.startup, zh: "无法读取数据密钥 \(config.dataKeyFile)：\(error)", en: "cannot load the data key \(config.dataKeyFile): \(error)")
        }
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: dataKey)
        options.durability = config.tuning.durability == "normal" ? .normal : .full
        options.maxClockOffsetMillis = config.tuning.maxClockOffsetMillis
        options.wallClock = { clock.wallMillis() }
        options.logger = logger
        let meshConfiguration = MeshConfiguration(
            nodeID: config.nodeID, clusterID: config.clusterID, schemaVersion: UInt32(NodeSchema.schema.version))
        let client = MeshClient(configuration: meshConfiguration, tls: meshTLS, logger: logger)
        let databasePath = (config.dataDir as NSString).appendingPathComponent("replica.sqlite")
        var snapshotFrom: String?
        if config.tuning.snapshotWhenNew, !config.peers.isEmpty, !FileManager.default.fileExists(atPath: databasePath) {
            snapshotFrom = await Self.fetchSnapshot(config: config, client: client, databasePath: databasePath, logger: logger)
        }
        let replica = try Replica.open(path: databasePath, node: config.nodeID, schema: NodeSchema.schema, options: options)
        let consensus: ConsensusShell
        do {
            let (voters, learners) = config.bootstrapVoters
            consensus = try ConsensusShell(
                id: config.nodeID, directory: (config.dataDir as NSString).appendingPathComponent("consensus"),
                bootstrap: ClusterConfig(voters: voters.map { Consensus.NodeID($0) }, learners: learners.map { Consensus.NodeID($0) }),
                peers: config.peers.map(\.id), membership: membership, clock: clock, logger: logger,
                policy: config.patients?.policy ?? .standard, snapshotChunkBytes: config.tuning.snapshotChunkBytes)
        } catch {
            try? replica.close()
            throw error
        }
        let meshServer: MeshServer
        do {
            meshServer = try await MeshServer.bind(host: config.mesh.host, port: config.mesh.port, configuration: meshConfiguration, tls: meshTLS, logger: logger)
        } catch {
            try? replica.close()
            throw NodeError(.startup, zh: "无法监听网状网络端口 \(config.mesh.host):\(config.mesh.port)：\(error)", en: "cannot listen for the mesh on \(config.mesh.host):\(config.mesh.port): \(error)")
        }
        var adminLogger = logger
        adminLogger[metadataKey: "node.listener"] = "admin"
        let adminServer: MeshServer
        do {
            adminServer = try await MeshServer.bind(host: config.admin.host, port: config.admin.port, configuration: meshConfiguration, tls: adminTLS, logger: adminLogger)
        } catch {
            await meshServer.close()
            try? await meshServer.run { _ in }
            try? replica.close()
            throw NodeError(.startup, zh: "无法监听管理端口 \(config.admin.host):\(config.admin.port)：\(error)", en: "cannot listen for the admin API on \(config.admin.host):\(config.admin.port): \(error)")
        }
        let signals = WriteSignals()
        let store = ReplicaStore(replica: replica, signals: signals)
        let booking = BookingDesk(consensus: consensus, store: store, clock: clock, nodeID: config.nodeID, config: config.patients ?? PatientConfig())
        let patients: PatientDesk?, readModel: BookingReadModel, staff: StaffDesk, recordIndex: RecordIndex
        do {
            let audit = try AuditTrail(store: store, node: config.nodeID, incarnation: replica.origin.incarnation, clock: clock)
            staff = StaffDesk(store: store, clock: clock, node: config.nodeID, dataKey: dataKey, rules: try AccessRules.shipped(), audit: audit,
                              idleSeconds: config.staffSettings.sessionIdleSeconds, careWindowDays: config.staffSettings.careWindowDays, logger: logger)
            patients = try config.patients.map {
                try PatientDesk(config: $0, dataDir: config.dataDir, smsFile: NodeConfig.resolve($0.smsFile, base: config.dataDir), dataKey: dataKey,
                                store: store, clock: clock)
            }
            recordIndex = try RecordIndex(path: (config.dataDir as NSString).appendingPathComponent("records.sqlite"), store: store,
                                          changes: { [replica] marks in try replica.changedKeys("note_version", after: marks) }, logger: logger)
            readModel = try BookingReadModel(path: (config.dataDir as NSString).appendingPathComponent("readmodel.sqlite"), consensus: consensus,
                                             store: store, directory: booking.directory, logger: logger)
        } catch {
            await meshServer.close()
            try? await meshServer.run { _ in }
            await adminServer.close()
            try? await adminServer.run { _ in }
            try? replica.close()
            throw NodeError(.startup, zh: "无法打开本节点的 SQLite 文件（短信发件箱 outbox.sqlite 或读模型 readmodel.sqlite，在 \(config.dataDir)），或读取审计链与权限表：\(error)",
                            en: "cannot open this node's SQLite files (the SMS outbox outbox.sqlite or the read model readmodel.sqlite in \(config.dataDir)), or read the audit chain and the access table: \(error)")
        }
        return MeshNode(config: config, replica: replica, clock: clock, logger: logger, meshServer: meshServer, adminServer: adminServer,
                        client: client, snapshotFrom: snapshotFrom, consensus: consensus, ownSerial: ownSerial, store: store,
                        booking: booking, readModel: readModel, recordIndex: recordIndex, staff: staff, patients: patients,
                        floor: FloorDesk(booking: booking, settings: (config.floor ?? FloorConfig()).settings,
                                         patientKeySecret: PatientDesk.patientKeySecret(dataKey: dataKey)))
    }

    init(config: NodeConfig, replica: Replica, clock: NodeClock, logger: Logger, meshServer: MeshServer, adminServer: MeshServer, client: MeshClient,
         snapshotFrom: String?, consensus: ConsensusShell, ownSerial: String, store: ReplicaStore, booking: BookingDesk,
         readModel: BookingReadModel, recordIndex: RecordIndex, staff: StaffDesk, patients: PatientDesk? = nil, floor: FloorDesk) {
        self.snapshotFrom = snapshotFrom
        self.consensus = consensus
        self.ownSerial = ownSerial
        self.config = config
        self.replica = replica
        self.clock = clock
        self.logger = logger
        self.meshServer = meshServer
        self.adminServer = adminServer
        self.client = client
        var runtime = Runtime()
        for peer in config.peers { runtime.peers[peer.id] = PeerRuntime(address: .init(host: peer.host, port: peer.port)) }
        self.runtime = Mutex(runtime)
        self.startedNanos = clock.monotonicNanos()
        self.metrics = NodeMetrics(nodeID: config.nodeID, department: config.department, clusterID: config.clusterID,
                                   schemaVersion: NodeSchema.schema.version)
        consensus.report(to: metrics)
        self.store = store
        self.booking = booking
        self.readModel = readModel
        self.recordIndex = recordIndex
        self.patients = patients
        self.staff = staff
        self.floor = floor
        booking.keepHistory(in: readModel)
        adminCommands.withLock { $0 = Self.nodeCommands(self) }
        consensus.onClosure { [readModel, clock, logger] closure in
            do { try readModel.keepClosed(closure, atMs: clock.wallMillis()) } catch {
                logger.critical("无法写入已关闭时段的最终预约记录，本节点读模型缺少该时段 / cannot keep a closed session's final rows; this node's read model lacks them",
                                metadata: ["lease.block": "\(closure.block)", "node.error": "\(error)"])
            }
        }
    }

    /// Calls `observe` with every change batch applied from a peer, from then on.
    package func observeAppliedBatches(_ observe: @escaping @Sendable (ReplicatedCore.ChangeBatch) -> Void) {
        batchObservers.withLock { $0.append(observe) }
    }

    /// Whether this node's outbound link to every configured peer is up.
    package var allPeersLinked: Bool { runtime.withLock { $0.peers.values.allSatisfy(\.outboundUp) } }

    /// The port the mesh listener actually bound (useful with port 0).
    public var meshPort: Int { meshServer.localAddress?.port ?? config.mesh.port }
    public var adminPort: Int { adminServer.localAddress?.port ?? config.admin.port }
    /// The port the patient API bound, once it listens (nil without a patient API).
    public var patientPort: Int? { patientPortBound.withLock { $0 } }

    /// Changes where a peer is reached (tests bind port 0 first, then tell each node the others' ports).
    public func setPeerAddress(_ id: String, host: String, port: Int) {
        runtime.withLock { $0.peers[id]?.address = .init(host: host, port: port) }
    }

    // MARK: - Writes

    /// A local write; peers are told promptly (every link wakes, coalescing bursts).
    @discardableResult
    public func write<T>(_ body: (LocalWriter) throws -> T) throws -> T { try store.write(body) }

    func notifyLocalWrite() { signals.notify() }

    /// Who opened a connection; each service closes only its own kind when it stops.
    enum ChannelKind: Hashable, Sendable {
        case link, inbound, admin
    }

    /// Tracks an open connection so that shutdown can close it. A connection that arrives after
    /// its kind was closed (a handshake that finished after the listener stopped) is closed right
    /// here: check and insert share one lock with `closeChannels`, so none can slip between.
    func register(_ channel: any Channel, as kind: ChannelKind, peer: String? = nil) -> Int? {
        let id = runtime.withLock { r -> Int? in
            guard !r.closedKinds.contains(kind), !(peer.map(r.evictedPeers.contains) ?? false) else { return nil }
            r.nextID += 1
            r.channels[r.nextID] = (kind, channel, peer)
            return r.nextID
        }
        if id == nil { channel.close(promise: nil) }
        return id
    }

    func unregister(_ id: Int?) {
        guard let id else { return }
        _ = runtime.withLock { $0.channels.removeValue(forKey: id) }
    }

    /// Closes every connection of `kind`, now and from now on.
    func closeChannels(_ kind: ChannelKind) {
        let channels = runtime.withLock { r in
            r.closedKinds.insert(kind)
            return r.channels.values.filter { $0.kind == kind }.map(\.channel)
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// An eviction committed: close every connection to and from `peer`, now and from now on
    /// (new handshakes are refused by the membership check as well).
    func closeChannels(ofEvicted peer: String) {
        let channels = runtime.withLock { r in
            r.evictedPeers.insert(peer)
            return r.channels.values.filter { $0.peer == peer }.map(\.channel)
        }
        for channel in channels { channel.close(promise: nil) }
        if !channels.isEmpty {
            logger.notice("已驱逐节点，关闭其连接 / node evicted, its connections closed", metadata: ["mesh.peer": "\(peer)", "mesh.closed": "\(channels.count)"])
        }
    }

    func touch(_ peer: String) {
        let now = clock.monotonicNanos()
        runtime.withLock { $0.peers[peer]?.lastContactNanos = now }
    }

    // MARK: - Services

    /// The node's services in start order (mesh listener, admin API, maintenance and clock guard,
    /// peer links); a graceful shutdown (SIGTERM, SIGINT) stops them in reverse. Call `close()`
    /// after the group's `run()` returns.
    /// `extra`: parts the composition adds (the bench load), started last and stopped first.
    public func makeServiceGroup(gracefulShutdownSignals: [UnixSignal] = [], extra: [any Service] = []) -> ServiceGroup {
        // The pharmacies this node serves: their stock blocks, held here (proposed until committed).
        if let served = config.pharmacy?.serves, !served.isEmpty {
            defineSessions(served.map { SessionBlock(block: pharmacyBlockPrefix + $0, home: config.nodeID, slots: 1, opensAtMs: 0) })
        }
        var services: [any Service] = [
            NodeService(name: "mesh") { try await self.runMeshListener() },
            NodeService(name: "admin") { try await self.runAdminListener() },
            NodeService(name: "maintenance") { await self.runMaintenance() },
            NodeService(name: "links") { await self.runLinks() },
            NodeService(name: "consensus") { await self.runConsensus() },
            NodeService(name: "read-model") { await cancelWhenGracefulShutdown { await self.readModel.run() } },
            NodeService(name: "record-index") { await cancelWhenGracefulShutdown { await self.recordIndex.run() } },
            // Its own loop: closing waits on the cluster, which must not hold up the clock guard.
            NodeService(name: "floor") {
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(2))
                        await self.floor.closeSessionsDue()
                        await self.sessionChanges.carryOut()
                    }
                }
            },
        ]
        // The staff pages share the patient API's HTTPS port; without it a node has no pages.
        let staffPages: StaffPages?
        do {
            staffPages = try StaffPages(desk: staff, appointments: readModel, rota: rota, floor: floor, attendance: attendance, changes: sessionChanges,
                                        records: records, orders: orders, labInbox: labInbox, prescriptions: prescriptions, pharmacy: pharmacy, signInBurst: config.staffSettings.signInBurst,
                                        signInPerSecond: config.staffSettings.signInPerSecond, logger: logger)
        } catch {
            logger.error("员工页面模板无法读取，本节点不提供员工页面 / staff page templates unreadable, no staff pages on this node", metadata: ["pages.error": "\(error)"])
            staffPages = nil
        }
        if let inbox = labInbox {
            services.append(NodeService(name: "lab-inbox") { await cancelWhenGracefulShutdown { await self.importLabResults(inbox) } })
        }
        if let desk = patients {
            let api = PatientAPI(patients: desk, booking: booking, staffPages: staffPages, logger: logger)
            let messages = BookingMessages(booking: booking, patients: desk, logger: logger)
            services.append(NodeService(name: "patients") { try await api.run(tls: try self.patientTLS()) { port in self.patientPortBound.withLock { $0 = port } } })
            services.append(NodeService(name: "sms") { await cancelWhenGracefulShutdown { await messages.run() } })
        }
        if let endpoint = config.metrics {
            services.insert(NodeService(name: "metrics") { try await self.runMetricsEndpoint(endpoint) }, at: 2)
        }
        services += extra
        return ServiceGroup(services: services, gracefulShutdownSignals: gracefulShutdownSignals, logger: logger)
    }

    /// Imports the lab's HL7 result files every 2 s; each file is an audit event, a quarantined
    /// one a warning in the log too.
    func importLabResults(_ inbox: LabInbox) async {
        try? FileManager.default.createDirectory(atPath: inbox.folder, withIntermediateDirectories: true)
        while !Task.isCancelled {
            for outcome in inbox.sweep() {
                if let problem = outcome.problem {
                    logger.warning("HL7 结果文件已隔离 / HL7 result file quarantined", metadata: [
                        "lab.file": "\(outcome.file)", "lab.code": "\(problem.code)", "lab.reason": "\(problem.en)"])
                }
                try? staff.record(AuditEvent(staff: "hl7-inbox", action: "lab.import", resource: "file/\(outcome.file)",
                                             outcome: outcome.problem?.code ?? "imported", detail: outcome.problem?.en ?? "\(outcome.imported) reports"))
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }

    /// Closes the store (after the service group has finished).
    public func close() throws {
        try replica.close()
        logger.info("节点已停止 / node stopped")
    }

    func runMeshListener() async throws {
        let server = meshServer
        try await withGracefulShutdownHandler {
            try await server.run { session in
                try await self.serveInbound(session)
            }
        } onGracefulShutdown: {
            // Close first (stop accepting), then end the open sessions; never cancel run alone.
            // `run` waits for every session, including one whose handshake was still under way:
            // `register` closes that one when it starts.
            Task {
                await server.close()
                self.closeChannels(.inbound)
            }
        }
    }

    func runAdminListener() async throws {
        let server = adminServer
        try await withGracefulShutdownHandler {
            try await server.run { session in
                try await self.serveAdmin(session)
            }
        } onGracefulShutdown: {
            Task {
                await server.close()
                self.closeChannels(.admin)
            }
        }
    }

    func runMaintenance() async {
        await cancelWhenGracefulShutdown {
            var loops = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(min(500, self.config.tuning.heartbeatMillis)))
                if Task.isCancelled { break }
                self.evaluateClockGuard()
                self.evaluateDiskGuard()
                loops += 1
                // Every 20th round (10 s at most): a year of sessions is a long list to walk, and closing can wait.
                if loops % 20 == 0 {
                    self.closeFinishedSessions()
                    self.defineMissingSessionBlocks()
                }
                if loops % 40 == 0 { HeapTrim.returnFreePages() }
                do {
                    if try self.replica.parkedCount() > 0 {
                        let report = try await offload { try self.replica.retryParked() }
                        if report.applied + report.superseded + report.duplicates > 0 { self.notifyLocalWrite() }
                    }
                } catch {
                    self.logger.warning("重试暂存变更失败 / retrying parked changes failed", metadata: ["node.error": "\(error)"])
                }
            }
        }
    }

    func runLinks() async {
        let peers = config.peers.map(\.id)
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                await withDiscardingTaskGroup { group in
                    for peer in peers {
                        group.addTask { await self.runLink(peer) }
                    }
                    // Members that join later (cluster add-node) get a link as soon as they are recorded.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        for peer in self.adoptNewMembers() { group.addTask { await self.runLink(peer) } }
                    }
                }
            }
        } onGracefulShutdown: {
            // Only the outbound links: peers' sessions into this node end when the mesh listener
            // stops, last, so that they are not dropped and redialled during the shutdown.
            self.closeChannels(.link)
        }
    }
}

/// A long-running part of the node as a swift-service-lifecycle service.
package struct NodeService: Service, CustomStringConvertible {
    let name: String
    let body: @Sendable () async throws -> Void

    package init(name: String, _ body: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.body = body
    }

    package func run() async throws { try await body() }
    package var description: String { name }
}

/// Wakes the peer links after local writes, coalescing bursts (one pending wake per link).
package final class WriteSignals: Sendable {
    private let links = Mutex<(next: Int, streams: [Int: AsyncStream<Void>.Continuation])>((0, [:]))

    package init() {}

    func notify() {
        for signal in links.withLock({ Array($0.streams.values) }) { signal.yield() }
    }

    func register() -> (AsyncStream<Void>, Int) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = links.withLock { l in
            l.next += 1
            l.streams[l.next] = continuation
            return l.next
        }
        return (stream, id)
    }

    func unregister(_ id: Int) {
        links.withLock { $0.streams.removeValue(forKey: id) }?.finish()
    }
}

/// The replica as the services see it: a local write wakes the peer links, as `MeshNode.write` does.
package struct ReplicaStore: RecordStore {
    let replica: Replica
    let signals: WriteSignals

    package init(replica: Replica, signals: WriteSignals) { self.replica = replica; self.signals = signals }

    package func liveRow(_ table: String, key: String) throws -> [String: ColumnValue]? { try replica.liveRow(table, key: key) }
    package func liveRows(_ table: String) throws -> [String: [String: ColumnValue]] { try replica.liveRows(table) }
    package func liveRows(_ table: String, keys: Set<String>) throws -> [String: [String: ColumnValue]] { try replica.liveRows(table, keys: keys) }
    package func liveRows(_ table: String, equal: [String: ColumnValue], range: (column: String, from: ColumnValue?, to: ColumnValue?)?,
                  newestBy: String?, limit: Int) throws -> [(key: String, row: [String: ColumnValue])] {
        try replica.liveRows(table, equal: equal, range: range, newestBy: newestBy, limit: limit)
    }
    package func changeStamp(table: String) -> UInt64 { replica.rowStamps.stamp(table: table) }
    package func changeStamp(table: String, key: String) -> UInt64 { replica.rowStamps.stamp(table: table, key: key) }

    @discardableResult
    package func write<T>(_ body: (LocalWriter) throws -> T) throws -> T {
        let result = try replica.write(body)
        signals.notify()
        return result
    }
}

extension MeshNode {
    /// The patient API's TLS: this node's certificate, as the mesh serves it.
    func patientTLS() throws -> TLSConfiguration {
        let credentials = try MeshCredentials.load(directory: config.certDir, kind: .node)
        return TLSConfiguration.makeServerConfiguration(
            certificateChain: credentials.certificateChain.map { .certificate($0) }, privateKey: .privateKey(credentials.privateKey))
    }
}

extension MeshNode {
    /// On the leader: asks the consensus core to close the sessions whose date lies more than
    /// `tuning.historyRetentionDays` days back (Asia/Shanghai), and to trim the quota buckets of
    /// what no booking from then on can count. The core skips blocks already closing or trimmed;
    /// asking again after a failed attempt or a new leader is the point of repeating.
    func closeFinishedSessions() {
        guard consensus.view.isLeader else { return }
        // A trim never moves back: never from a clock the guard does not trust.
        if runtime.withLock({ $0.guardReason }) == nil {
            consensus.trimQuotaBuckets(openDaysBack: config.tuning.historyRetentionDays)
        }
        let finished: [BlockID]
        do { finished = try booking.sessionsPastRetention(retentionDays: config.tuning.historyRetentionDays) } catch {
            logger.warning("无法列出已结束的时段 / cannot list finished sessions", metadata: ["node.error": "\(error)"])
            return
        }
        guard !finished.isEmpty else { return }
        // A few at a time (`tuning.closingsPerRound`): each closure writes its final rows under the core's lock.
        consensus.close(finished, atMost: config.tuning.closingsPerRound)
    }
}

extension MeshNode {
    /// Proposes again the blocks of sessions a rota published here that the cluster does not
    /// define: the node stopped between writing the sessions and its proposal's commit.
    func defineMissingSessionBlocks() {
        let defined = consensus.view.cluster.blocks
        let pending = Set(runtime.withLock { $0.pendingBlocks.map(\.block) })
        do {
            let missing = try rota.sessionsWithoutBlocks { defined[$0] != nil || pending.contains($0) }
            guard !missing.isEmpty else { return }
            logger.notice("重新提议已发布出诊的租约块 / proposing again the blocks of published sessions", metadata: ["rota.sessions": "\(missing.count)"])
            defineSessions(missing)
        } catch {
            logger.warning("无法检查已发布出诊的租约块 / cannot check the blocks of published sessions", metadata: ["node.error": "\(error)"])
        }
    }
}

/// Gives the heap's free pages back to the system. A node's allocations come in bursts (a closing
/// round, a snapshot of a large state, a rush) from many threads, and glibc keeps what each
/// thread's arena freed: without this a node that went through a long history stays at its peak.
enum HeapTrim {
    static func returnFreePages() {
        #if canImport(CMalloc)
        _ = malloc_trim(0)
        #endif
    }
}
