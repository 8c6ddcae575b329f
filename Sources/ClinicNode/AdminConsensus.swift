import Consensus
import Services
import Domain
import Foundation
import Mesh

// The admin API's consensus commands: the booking primitive (`book`), block definitions, this
// node's view of bookings and leases, and the consensus part of `status`. JSON field names are
// snake_case, as everywhere on the admin API.

/// `book {json}`: book slot `slot` (or the first free of `slot` and `alternatives`) of `block`
/// for `patient` under request id `request_id`; with `releases`, cancel that booking instead.
/// With `quota` (the visit date and department), the per-person quotas apply across every node.
/// A retry with the same request id, through any node, returns the first outcome.
public struct BookCommand: Codable, Sendable, Hashable {
    public struct Quota: Codable, Sendable, Hashable {
        /// yyyy-mm-dd, Asia/Shanghai.
        public var visitDate: String
        public var department: String
        public init(visitDate: String, department: String) { self.visitDate = visitDate; self.department = department }
        enum CodingKeys: String, CodingKey { case visitDate = "visit_date", department }
    }

    public var requestID: String
    public var block: String
    public var slot: Int
    public var alternatives: [Int]?
    /// The patient's key (an HMAC of the resident ID, never the ID itself).
    public var patient: String
    /// The request id of the booking to cancel.
    public var releases: String?
    public var quota: Quota?
    public var timeoutMs: Int?

    public init(requestID: String, block: String, slot: Int, patient: String, alternatives: [Int]? = nil, releases: String? = nil,
                quota: Quota? = nil, timeoutMs: Int? = nil) {
        self.requestID = requestID; self.block = block; self.slot = slot; self.patient = patient
        self.alternatives = alternatives; self.releases = releases; self.quota = quota; self.timeoutMs = timeoutMs
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", block, slot, alternatives, patient, releases, quota, timeoutMs = "timeout_ms"
    }
}

public struct BookingRecord: Codable, Sendable, Hashable {
    public var requestID: String
    public var block: String
    public var slot: Int
    public var patient: String
    public var epoch: UInt64
    /// Derived from the lease history this node knows, never stored: active (holds its slot),
    /// released (cancelled), release (a cancellation record), refused (a refusal record: the
    /// request was refused for good; it takes no slot), superseded, inactive (never acknowledged
    /// under an epoch since taken over), unknown (newer than this node's history).
    public var status: String?

    init(_ b: Booking, status: String? = nil) {
        requestID = b.id; block = b.block; slot = b.slot; patient = b.patient; epoch = b.epoch; self.status = status
    }

    enum CodingKeys: String, CodingKey { case requestID = "request_id", block, slot, patient, epoch, status }
}

public struct BookAnswer: Codable, Sendable, Hashable {
    /// booked / refused / unknown (no outcome in time: retry with the same request id).
    public var outcome: String
    public var booking: BookingRecord?
    /// A stable code: `lease.no_holder`, `lease.slot_taken`, `lease.no_such_slot`, `lease.request_mismatch`, `lease.timeout`.
    public var code: String?
    public var messageZh: String?
    public var messageEn: String?
    public var node: String

    enum CodingKeys: String, CodingKey { case outcome, booking, code, messageZh = "message_zh", messageEn = "message_en", node }

    static func from(_ o: BookingOutcome?, node: String) -> BookAnswer {
        switch o {
        case .booked(let b)?:
            return BookAnswer(outcome: "booked", booking: BookingRecord(b, status: "active"), node: node)
        case .refused(_, let reason)?:
            let (code, zh, en) = Self.words(reason)
            return BookAnswer(outcome: "refused", code: code, messageZh: zh, messageEn: en, node: node)
        case nil:
            return BookAnswer(outcome: "unknown", code: "lease.timeout",
                              messageZh: "集群未在时限内给出结果；请用同一请求号重试，不会重复预约。",
                              messageEn: "the cluster gave no outcome in time; retry with the same request id, it never books twice.", node: node)
        }
    }

    static func words(_ r: RefuseReason) -> (String, String, String) { r.words }
}

/// `define-blocks {json}`: doctors' sessions as lease blocks (proposed through the leader).
public struct BlockDefinition: Codable, Sendable, Hashable {
    public var block: String
    /// The node that normally holds the block (the doctor's department node).
    public var home: String
    public var slots: Int
    /// Bookable from this wall time (ms since 1970, by the holder's clock); nil: at once.
    public var opensAtMs: Int64?

    public init(block: String, home: String, slots: Int, opensAtMs: Int64? = nil) {
        self.block = block; self.home = home; self.slots = slots; self.opensAtMs = opensAtMs
    }

    enum CodingKeys: String, CodingKey { case block, home, slots, opensAtMs = "opens_at_ms" }

    var command: ClusterCommand {
        if let opensAtMs { return .defineSession(block, home: NodeID(home), slots: slots, opensAtMs: opensAtMs) }
        return .defineBlock(block, home: NodeID(home), slots: slots)
    }
}

public struct BlockView: Codable, Sendable, Hashable {
    public var block: String
    public var home: String
    public var holder: String?
    public var epoch: UInt64
    public var valid: Bool
    public var collected: Int
    /// Bookable from this wall time (ms since 1970); 0: always.
    public var opensAtMs: Int64

    enum CodingKeys: String, CodingKey { case block, home, holder, epoch, valid, collected, opensAtMs = "opens_at_ms" }
}

/// `bookings`: everything this node knows of bookings and leases, with derived statuses.
public struct BookingsView: Codable, Sendable, Hashable {
    public var node: String
    public var appliedIndex: UInt64
    public var blocks: [BlockView]
    public var bookings: [BookingRecord]

    enum CodingKeys: String, CodingKey { case node, appliedIndex = "applied_index", blocks, bookings }
}

public struct MemberStatus: Codable, Sendable, Hashable {
    public var id: String
    public var role: String
    public var department: String
    public var address: String
    public var live: Bool
    public var evicted: Bool
    public var blocksHeld: Int

    enum CodingKeys: String, CodingKey { case id, role, department, address, live, evicted, blocksHeld = "blocks_held" }
}

public struct ConsensusStatus: Codable, Sendable, Hashable {
    public var role: String
    public var term: UInt64
    public var leader: String?
    public var commitIndex: UInt64
    public var members: [MemberStatus]
    public var blocks: Int
    /// Why this node stopped taking part in consensus (its logs cannot be written), if it did.
    public var failure: String?

    enum CodingKeys: String, CodingKey { case role, term, leader, commitIndex = "commit_index", members, blocks, failure }
}

extension MeshNode {
    func consensusStatus() -> ConsensusStatus {
        let failure = consensus.failure
        return consensus.inspect { c in
            let held = Dictionary(grouping: c.cluster.blocks.values.filter { c.cluster.leaseValid($0.block) }, by: { $0.holder })
            let ids = Set(c.cluster.members.keys).union(c.cluster.raftConfig.members).sorted()
            let members = ids.map { n in
                let m = c.cluster.members[n]
                return MemberStatus(id: n.rawValue, role: c.cluster.role(of: n).rawValue, department: m?.department ?? "",
                                    address: m?.address ?? "", live: c.cluster.isLive(n), evicted: m?.evicted ?? false,
                                    blocksHeld: held[n]?.count ?? 0)
            }
            return ConsensusStatus(role: c.raft.role.rawValue, term: c.raft.term, leader: c.raft.leader?.rawValue,
                                   commitIndex: c.raft.commitIndex, members: members, blocks: c.cluster.blocks.count, failure: failure)
        }
    }

    /// The booking primitive: acknowledged only once quorum-durable under the current epoch.
    /// (`book`, in MetricsEndpoint.swift, calls this and counts the answer.)
    func bookUnmeasured(_ command: BookCommand) async -> BookAnswer {
        // Reservations and their releases are the nodes' own: clients may not name or free them.
        let reserved = ["quota:", "release:", "strike:", holdExpiryPrefix]
        if reserved.contains(where: { command.requestID.hasPrefix($0) || (command.releases?.hasPrefix($0) ?? false) })
            || command.requestID.isEmpty || command.requestID.utf8.count > 128 || (command.alternatives?.count ?? 0) > 64 {
            return BookAnswer(outcome: "refused", code: "request.invalid",
                              messageZh: "请求号须为 1 到 128 字节且不以 quota:、release:、strike: 或 expire: 开头，候选号不超过 64 个。",
                              messageEn: "request ids must be 1 to 128 bytes and not start with quota:, release:, strike: or expire:; at most 64 alternative slots.",
                              node: config.nodeID)
        }
        let timeout = Duration.milliseconds(min(max(command.timeoutMs ?? 5_000, 100), 60_000))
        let q = BookingRequest(id: command.requestID, block: command.block, slot: command.slot, patient: command.patient,
                               alternatives: command.alternatives ?? [], releases: command.releases)
        var quota: QuotaTag?
        if let given = command.quota {
            guard let date = try? CivilDate(parsing: given.visitDate, field: "quota.visit_date"), !given.department.isEmpty else {
                return BookAnswer(outcome: "refused", code: "request.invalid",
                                  messageZh: "quota.visit_date 须为 yyyy-mm-dd 的日期，quota.department 不能为空。",
                                  messageEn: "quota.visit_date must be a yyyy-mm-dd date and quota.department must not be empty.", node: config.nodeID)
            }
            quota = QuotaTag(visitDay: dayNumber(date), department: given.department)
        }
        return BookAnswer.from(await consensus.book(q, quota: quota, timeout: timeout), node: config.nodeID)
    }

    /// Proposes the definitions now, and again every second until they are committed (there may
    /// be no leader yet, or it may change on the way).
    public func defineBlocks(_ blocks: [BlockDefinition]) {
        runtime.withLock { $0.pendingBlocks += blocks }
        for b in blocks { consensus.propose(b.command) }
    }

    /// Evicts `node` from the cluster (admin): committed through the leader, retried until it is.
    /// From then on every node closes its connections and refuses its certificate, its leases
    /// move, and it leaves the Raft configuration.
    public func evict(_ node: String) {
        runtime.withLock { _ = $0.pendingEvictions.insert(node) }
        consensus.propose(.evict(NodeID(node)))
    }

    func reproposeBlocks() {
        let evictions = runtime.withLock { $0.pendingEvictions }
        if !evictions.isEmpty {
            let left = consensus.inspect { c in evictions.filter { c.cluster.members[NodeID($0)]?.evicted != true } }
            runtime.withLock { $0.pendingEvictions = left }
            for n in left { consensus.propose(.evict(NodeID(n))) }
        }
        let pending = runtime.withLock { $0.pendingBlocks }
        guard !pending.isEmpty else { return }
        let missing = consensus.inspect { c in pending.filter { c.cluster.blocks[$0.block] == nil } }
        runtime.withLock { $0.pendingBlocks = missing }
        for b in missing { consensus.propose(b.command) }
    }

    public func bookingsView() -> BookingsView {
        consensus.inspect { c in
            var all: [String: Booking] = [:]
            for b in c.booking.store.records.values { all["\(b.id)@\(b.epoch)"] = b }
            for r in c.cluster.blocks.values { for b in r.collected { all["\(b.id)@\(b.epoch)"] = b } }
            let byBlock = Dictionary(grouping: all.values, by: \.block)
            let views = byBlock.mapValues { slotViews(block: $0[0].block, bookings: $0, state: c.cluster).views }
            let releasedIDs = Set(all.values.filter { $0.isRelease && bookingStatus($0, in: c.cluster) == .active }.compactMap(\.releases))
            let bookings = all.values.sorted { ($0.id, $0.epoch) < ($1.id, $1.epoch) }.map { b -> BookingRecord in
                let s: String
                switch bookingStatus(b, in: c.cluster) {
                case .inactive: s = "inactive"
                case .unknown: s = "unknown"
                case .active where b.isRelease: s = "release"
                case .active where b.isRefusal: s = "refused"
                case .active:
                    // Valid: it holds its slot if it is the slot's newest record, else a release ended it.
                    if views[b.block]?[b.slot]?.contains(where: { $0.id == b.id && $0.epoch == b.epoch }) == true { s = "active" }
                    else { s = releasedIDs.contains(b.id) ? "released" : "superseded" }
                }
                return BookingRecord(b, status: s)
            }
            let blocks = c.cluster.blocks.values.sorted { $0.block < $1.block }.map {
                BlockView(block: $0.block, home: $0.home.rawValue, holder: $0.holder?.rawValue, epoch: $0.epoch,
                          valid: c.cluster.leaseValid($0.block), collected: $0.collected.count, opensAtMs: $0.opensAtMs)
            }
            return BookingsView(node: config.nodeID, appliedIndex: c.cluster.appliedIndex, blocks: blocks, bookings: bookings)
        }
    }
}

extension AdminClient {
    public static func book(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String,
                            _ command: BookCommand) async throws -> BookAnswer {
        let body = String(decoding: try AdminJSON.encode(command), as: UTF8.self)
        return try AdminJSON.decode(BookAnswer.self, try await request(
            host: host, port: port, command: "book " + body, clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID))
    }

    public static func defineBlocks(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String,
                                    _ blocks: [BlockDefinition]) async throws {
        let body = String(decoding: try AdminJSON.encode(blocks), as: UTF8.self)
        _ = try await request(host: host, port: port, command: "define-blocks " + body, clusterID: clusterID, credentials: credentials,
                              expectedNodeID: expectedNodeID)
    }

    public static func bookings(host: String, port: Int, clusterID: String, credentials: MeshCredentials, expectedNodeID: String) async throws -> BookingsView {
        try AdminJSON.decode(BookingsView.self, try await request(
            host: host, port: port, command: "bookings", clusterID: clusterID, credentials: credentials, expectedNodeID: expectedNodeID))
    }
}
