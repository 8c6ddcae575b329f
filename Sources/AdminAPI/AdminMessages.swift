import Consensus
import Foundation
import PKI
import Services

// The admin API's commands and answers (JSON), shared by the node that serves them and the
// `clinicmesh` tool that sends them.

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

    package enum CodingKeys: String, CodingKey {
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

    package init(_ b: Booking, status: String? = nil) {
        requestID = b.id; block = b.block; slot = b.slot; patient = b.patient; epoch = b.epoch; self.status = status
    }

    package enum CodingKeys: String, CodingKey { case requestID = "request_id", block, slot, patient, epoch, status }
}

public struct BookAnswer: Codable, Sendable, Hashable {
    package init(outcome: String, booking: BookingRecord? = nil, code: String? = nil, messageZh: String? = nil, messageEn: String? = nil, node: String) {
        self.outcome = outcome; self.booking = booking; self.code = code; self.messageZh = messageZh; self.messageEn = messageEn; self.node = node
    }

    /// booked / refused / unknown (no outcome in time: retry with the same request id).
    public var outcome: String
    public var booking: BookingRecord?
    /// A stable code: `lease.no_holder`, `lease.slot_taken`, `lease.no_such_slot`, `lease.request_mismatch`, `lease.timeout`.
    public var code: String?
    public var messageZh: String?
    public var messageEn: String?
    public var node: String

    package enum CodingKeys: String, CodingKey { case outcome, booking, code, messageZh = "message_zh", messageEn = "message_en", node }

    package static func from(_ o: BookingOutcome?, node: String) -> BookAnswer {
        switch o {
        case .booked(let b)?:
            return BookAnswer(outcome: "booked", booking: BookingRecord(b, status: "active"), node: node)
        case .refused(_, let reason)?:
            let (code, zh, en) = reason.words
            return BookAnswer(outcome: "refused", code: code, messageZh: zh, messageEn: en, node: node)
        case nil:
            return BookAnswer(outcome: "unknown", code: "lease.timeout",
                              messageZh: "集群未在时限内给出结果；请用同一请求号重试，不会重复预约。",
                              messageEn: "the cluster gave no outcome in time; retry with the same request id, it never books twice.", node: node)
        }
    }

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

    package enum CodingKeys: String, CodingKey { case block, home, slots, opensAtMs = "opens_at_ms" }

    package var command: ClusterCommand {
        if let opensAtMs { return .defineSession(block, home: NodeID(home), slots: slots, opensAtMs: opensAtMs) }
        return .defineBlock(block, home: NodeID(home), slots: slots)
    }
}

public struct BlockView: Codable, Sendable, Hashable {
    package init(block: String, home: String, holder: String? = nil, epoch: UInt64, valid: Bool, collected: Int, opensAtMs: Int64) {
        self.block = block; self.home = home; self.holder = holder; self.epoch = epoch; self.valid = valid; self.collected = collected; self.opensAtMs = opensAtMs
    }

    public var block: String
    public var home: String
    public var holder: String?
    public var epoch: UInt64
    public var valid: Bool
    public var collected: Int
    /// Bookable from this wall time (ms since 1970); 0: always.
    public var opensAtMs: Int64

    package enum CodingKeys: String, CodingKey { case block, home, holder, epoch, valid, collected, opensAtMs = "opens_at_ms" }
}

/// `bookings`: everything this node knows of bookings and leases, with derived statuses.
/// `bookings` or `bookings {"quota_buckets": false}`: every record this node knows, or all but
/// the quota buckets' (every block is listed either way).
public struct BookingsQuery: Codable, Sendable, Hashable {
    public var quotaBuckets: Bool?
    public init(quotaBuckets: Bool? = nil) { self.quotaBuckets = quotaBuckets }
    package enum CodingKeys: String, CodingKey { case quotaBuckets = "quota_buckets" }
}

public struct BookingsView: Codable, Sendable, Hashable {
    package init(node: String, appliedIndex: UInt64, blocks: [BlockView], bookings: [BookingRecord]) {
        self.node = node; self.appliedIndex = appliedIndex; self.blocks = blocks; self.bookings = bookings
    }

    public var node: String
    public var appliedIndex: UInt64
    public var blocks: [BlockView]
    public var bookings: [BookingRecord]

    package enum CodingKeys: String, CodingKey { case node, appliedIndex = "applied_index", blocks, bookings }
}

public struct MemberStatus: Codable, Sendable, Hashable {
    package init(id: String, role: String, department: String, address: String, live: Bool, evicted: Bool, blocksHeld: Int) {
        self.id = id; self.role = role; self.department = department; self.address = address; self.live = live; self.evicted = evicted; self.blocksHeld = blocksHeld
    }

    public var id: String
    public var role: String
    public var department: String
    public var address: String
    public var live: Bool
    public var evicted: Bool
    public var blocksHeld: Int

    package enum CodingKeys: String, CodingKey { case id, role, department, address, live, evicted, blocksHeld = "blocks_held" }
}

public struct ConsensusStatus: Codable, Sendable, Hashable {
    package init(role: String, term: UInt64, leader: String? = nil, commitIndex: UInt64, snapshotIndex: UInt64? = nil, members: [MemberStatus],
                 blocks: Int, failure: String? = nil) {
        self.role = role; self.term = term; self.leader = leader; self.commitIndex = commitIndex; self.snapshotIndex = snapshotIndex
        self.members = members; self.blocks = blocks; self.failure = failure
    }

    public var role: String
    public var term: UInt64
    public var leader: String?
    public var commitIndex: UInt64
    /// The last index this node compacted its Raft log at (a peer further behind catches up by snapshot).
    public var snapshotIndex: UInt64?
    public var members: [MemberStatus]
    public var blocks: Int
    /// Why this node stopped taking part in consensus (its logs cannot be written), if it did.
    public var failure: String?

    package enum CodingKeys: String, CodingKey { case role, term, leader, commitIndex = "commit_index", snapshotIndex = "snapshot_index", members, blocks, failure }
}

/// `register-patient {json}`: registers a patient under their real name on this node; the key is
/// the HMAC of the resident ID (the same person registered on two nodes is one row). Acknowledged
/// once the local transaction is fsynced.
public struct RegisterPatientCommand: Codable, Sendable, Hashable {
    public var residentID: String
    public var name: String
    public var mobile: String
    public init(residentID: String, name: String, mobile: String) { self.residentID = residentID; self.name = name; self.mobile = mobile }
    package enum CodingKeys: String, CodingKey { case residentID = "resident_id", name, mobile }
}

public struct RegisterPatientAnswer: Codable, Sendable, Hashable {
    package init(outcome: String, key: String? = nil, code: String? = nil, messageZh: String? = nil, messageEn: String? = nil, node: String) {
        self.outcome = outcome; self.key = key; self.code = code; self.messageZh = messageZh; self.messageEn = messageEn; self.node = node
    }

    /// registered / exists / refused.
    public var outcome: String
    public var key: String?
    public var code: String?
    public var messageZh: String?
    public var messageEn: String?
    public var node: String
    package enum CodingKeys: String, CodingKey { case outcome, key, code, messageZh = "message_zh", messageEn = "message_en", node }
}

/// `records {"table": "patient"}`: the live keys of a replicated table on this node, and the digest
/// of every replicated table (equal digests: identical replicas).
public struct RecordsView: Codable, Sendable, Hashable {
    package init(node: String, table: String, keys: [String], digest: String) {
        self.node = node; self.table = table; self.keys = keys; self.digest = digest
    }

    public var node: String
    public var table: String
    public var keys: [String]
    public var digest: String
}

/// `add-node {json}`: a node the admin has issued a certificate for, to record and add as a learner.
public struct MemberAddRequest: Codable, Sendable, Hashable {
    public var node: String
    /// Its mesh address, `host:port`, as its config will say.
    public var address: String
    public var department: String
    /// The serial of the certificate the admin issued for it (hex).
    public var serial: String

    public init(node: String, address: String, department: String, serial: String) {
        self.node = node; self.address = address; self.department = department; self.serial = serial
    }
}

/// What the leader answers to `add-node` and `promote`. `state` is one of: `member` / `voter`
/// (done), `registering`, `adding`, `promoting`, `waiting` (another change is under way: ask
/// again), `catching_up` (the learner is behind: ask again), `not_leader` (ask `leader`),
/// `refused` (the request is wrong: read the message).
public struct MembershipAnswer: Codable, Sendable, Hashable {
    public var state: String
    public var leader: String?
    public var messageZh: String?
    public var messageEn: String?

    public init(_ state: String, leader: String? = nil, zh: String? = nil, en: String? = nil) {
        self.state = state; self.leader = leader; messageZh = zh; messageEn = en
    }

    package enum CodingKeys: String, CodingKey { case state, leader, messageZh = "message_zh", messageEn = "message_en" }
}

public struct MembershipEntry: Codable, Sendable, Hashable {
    package init(id: String, role: String, department: String, address: String, serial: String, evicted: Bool, live: Bool, matchIndex: UInt64? = nil) {
        self.id = id; self.role = role; self.department = department; self.address = address; self.serial = serial; self.evicted = evicted; self.live = live; self.matchIndex = matchIndex
    }

    public var id: String
    /// voter / learner / none (recorded, not yet in the Raft configuration).
    public var role: String
    public var department: String
    public var address: String
    public var serial: String
    public var evicted: Bool
    public var live: Bool
    /// On the leader: the last log index this member is known to hold.
    public var matchIndex: UInt64?

    package enum CodingKeys: String, CodingKey { case id, role, department, address, serial, evicted, live, matchIndex = "match_index" }
}

/// `membership`: the Raft membership as this node knows it, with catch-up progress on the leader.
public struct RaftMembership: Codable, Sendable, Hashable {
    package init(node: String, leader: String? = nil, term: UInt64, lastIndex: UInt64, commitIndex: UInt64, members: [MembershipEntry]) {
        self.node = node; self.leader = leader; self.term = term; self.lastIndex = lastIndex; self.commitIndex = commitIndex; self.members = members
    }

    public var node: String
    public var leader: String?
    public var term: UInt64
    public var lastIndex: UInt64
    public var commitIndex: UInt64
    public var members: [MembershipEntry]

    package enum CodingKeys: String, CodingKey { case node, leader, term, lastIndex = "last_index", commitIndex = "commit_index", members }
}

/// Which learners to promote, in order, so that the voters number the largest odd count the
/// cluster allows (at most 5) and come from as many departments as possible. Pure.
public enum VoterPolicy {
    public static func targetVoters(members: Int) -> Int {
        let n = min(5, members)
        return n % 2 == 0 ? max(1, n - 1) : n
    }

    /// `prefer`: the node just added, promoted first among equals.
    public static func promotions(_ members: [MembershipEntry], prefer: String? = nil) -> [String] {
        let current = members.filter { !$0.evicted && $0.role != "none" }
        var voters = current.filter { $0.role == "voter" }
        var learners = current.filter { $0.role == "learner" }
        let target = targetVoters(members: current.count)
        var out: [String] = []
        while voters.count < target, !learners.isEmpty {
            let departments = Set(voters.map(\.department))
            // A department without a voter first, then the preferred node, then by id.
            learners.sort { a, b in
                let ka = (departments.contains(a.department) ? 1 : 0, a.id == prefer ? 0 : 1, a.id)
                let kb = (departments.contains(b.department) ? 1 : 0, b.id == prefer ? 0 : 1, b.id)
                return ka < kb
            }
            let next = learners.removeFirst()
            out.append(next.id)
            voters.append(next)
        }
        return out
    }
}

/// `rotate-cert {json}`: the serial of a node's new certificate, to accept beside the old one.
public struct CertRotation: Codable, Sendable, Hashable {
    public var node: String
    public var serial: String
    public init(node: String, serial: String) { self.node = node; self.serial = serial }
}

/// A member's recorded certificate serials: one, or "NEW,OLD" while a rotation is under way
/// (`clinicmesh cluster rotate-cert` records the new one; the node, restarted with it, drops the old).
public enum MemberSerials {
    public static func list(_ recorded: String) -> [String] {
        recorded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    package static func same(_ a: String, _ b: String) -> Bool {
        guard let x = SerialFormat.normalise(a), let y = SerialFormat.normalise(b) else { return false }
        return x == y
    }

    /// Whether a node registering itself should overwrite `recorded`: yes unless a rotation names
    /// its certificate as the old one (it still runs it: wait for the restart with the new one).
    /// Restarted with the new one, it records that alone, which ends the rotation.
    package static func shouldRegister(own: MemberInfo, recorded: MemberInfo) -> Bool {
        let serials = list(recorded.certificateSerial)
        guard serials.count > 1, let newest = serials.first else { return true }
        if same(newest, own.certificateSerial) { return true }
        return !serials.dropFirst().contains { same($0, own.certificateSerial) }
    }
}

/// `seed-demo {"start_date": "yyyy-mm-dd", "days": 7}` on the admin API; optional `departments`
/// (whose doctors this node gets, default its own id), `capacity` (slots per session) and `rota`
/// (sessions from weekly templates published as the rota, instead of the fixed pattern).
public struct DemoSeedRequest: Codable, Sendable, Hashable {
    public var startDate: String
    public var days: Int
    public var departments: [String]?
    public var capacity: Int?
    public var rota: Bool?
    public init(startDate: String, days: Int, departments: [String]? = nil, capacity: Int? = nil, rota: Bool? = nil) {
        self.startDate = startDate; self.days = days; self.departments = departments; self.capacity = capacity; self.rota = rota
    }
    package enum CodingKeys: String, CodingKey { case startDate = "start_date", days, departments, capacity, rota }
}

/// `appointments {"patient": ...} | {"block": ...} | {"date": "yyyy-mm-dd", "department": ...}`:
/// rows of the node's booking read model.
public struct AppointmentsQuery: Codable, Sendable, Hashable {
    public var patient: String?
    public var block: String?
    public var date: String?
    public var department: String?
    public init(patient: String? = nil, block: String? = nil, date: String? = nil, department: String? = nil) {
        self.patient = patient; self.block = block; self.date = date; self.department = department
    }
}

/// `staff-add {json}`: a new staff account (`staff add`); `staff-disable` and
/// `staff-reset-password` name one by its staff number.
public struct StaffAccountCommand: Codable, Sendable, Hashable {
    public var staffNumber: String
    public var name: String?
    public var roles: [String]?
    public var departments: [String]?
    public var practitioner: String?
    public var password: String?
    /// A new account must change its password at first sign-in (default true).
    public var mustChangePassword: Bool?

    public init(staffNumber: String, name: String? = nil, roles: [String]? = nil, departments: [String]? = nil, practitioner: String? = nil,
                password: String? = nil, mustChangePassword: Bool? = nil) {
        self.staffNumber = staffNumber; self.name = name; self.roles = roles; self.departments = departments
        self.practitioner = practitioner; self.password = password; self.mustChangePassword = mustChangePassword
    }

    enum CodingKeys: String, CodingKey {
        case staffNumber = "staff_number", name, roles, departments, practitioner, password, mustChangePassword = "must_change_password"
    }
}

/// A staff account as the admin API shows it (never its password hash).
public struct StaffAccountView: Codable, Sendable, Hashable {
    public var staffNumber: String
    public var name: String
    public var roles: [String]
    public var departments: [String]
    public var practitioner: String
    public var active: Bool
    public var mustChangePassword: Bool

    package init(_ a: StaffAccount) {
        staffNumber = a.number; name = a.name; roles = a.sortedRoles.map(\.rawValue); departments = a.departments
        practitioner = a.practitioner; active = a.active; mustChangePassword = a.mustChangePassword
    }

    enum CodingKeys: String, CodingKey {
        case staffNumber = "staff_number", name, roles, departments, practitioner, active, mustChangePassword = "must_change_password"
    }
}

/// What a staff command did: `ok`, or `refused` with a code and the reason in both languages.
public struct StaffAnswer: Codable, Sendable, Hashable {
    public var outcome: String
    public var account: StaffAccountView?
    public var code: String?
    public var messageZh: String?
    public var messageEn: String?

    package init(account: StaffAccount?) { outcome = "ok"; self.account = account.map(StaffAccountView.init) }
    package init(refused e: StaffError) { outcome = "refused"; code = e.code; messageZh = e.zh; messageEn = e.en }

    enum CodingKeys: String, CodingKey { case outcome, account, code, messageZh = "message_zh", messageEn = "message_en" }
}

/// `audit-verify`: every audit chain this node holds, checked link by link.
public struct AuditVerifyAnswer: Codable, Sendable, Hashable {
    public struct Chain: Codable, Sendable, Hashable {
        public var chain: String
        public var events: Int64
        public var brokenAt: String?
        public var reasonZh: String?
        public var reasonEn: String?
        public init(chain: String, events: Int64, brokenAt: String?, reasonZh: String?, reasonEn: String?) {
            self.chain = chain; self.events = events; self.brokenAt = brokenAt; self.reasonZh = reasonZh; self.reasonEn = reasonEn
        }
        enum CodingKeys: String, CodingKey { case chain, events, brokenAt = "broken_at", reasonZh = "reason_zh", reasonEn = "reason_en" }
    }
    public var node: String
    public var events: Int
    public var seconds: Double
    public var intact: Bool
    public var chains: [Chain]

    public init(node: String, events: Int, seconds: Double, intact: Bool, chains: [Chain]) {
        self.node = node; self.events = events; self.seconds = seconds; self.intact = intact; self.chains = chains
    }
}
