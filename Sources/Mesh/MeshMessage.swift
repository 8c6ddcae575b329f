/// The messages nodes exchange on a mesh connection. Layout on the wire: `WIRE.md` beside this file.
public enum MeshMessage: Sendable, Hashable {
    case hello(Hello)
    case heartbeat(Heartbeat)
    case heartbeatAck(HeartbeatAck)
    case versionVector(VersionVector)
    case changeBatch(ChangeBatch)
    case snapshotRequest(SnapshotRequest)
    case snapshotChunk(SnapshotChunk)
    /// An opaque Raft message, encoded by the consensus layer.
    case raft([UInt8])
    case forward(Forward)
    case error(MeshErrorMessage)

    public var type: MeshMessageType {
        switch self {
        case .hello: return .hello
        case .heartbeat: return .heartbeat
        case .heartbeatAck: return .heartbeatAck
        case .versionVector: return .versionVector
        case .changeBatch: return .changeBatch
        case .snapshotRequest: return .snapshotRequest
        case .snapshotChunk: return .snapshotChunk
        case .raft: return .raft
        case .forward: return .forward
        case .error: return .error
        }
    }
}

/// The frame `type` byte.
public enum MeshMessageType: UInt8, Sendable, Hashable, CaseIterable {
    case hello = 1
    case heartbeat = 2
    case heartbeatAck = 3
    case versionVector = 4
    case changeBatch = 5
    case snapshotRequest = 6
    case snapshotChunk = 7
    case raft = 8
    case forward = 9
    case error = 10
}

/// The first message each side sends on a new connection, right after the TLS handshake.
public struct Hello: Sendable, Hashable {
    public var protocolVersion: UInt16
    public var schemaVersion: UInt32
    public var nodeID: String
    public var clusterID: String

    public init(protocolVersion: UInt16 = MeshWire.protocolVersion, schemaVersion: UInt32, nodeID: String, clusterID: String) {
        self.protocolVersion = protocolVersion
        self.schemaVersion = schemaVersion
        self.nodeID = nodeID
        self.clusterID = clusterID
    }
}

/// A liveness probe that also carries the sender's clocks, so the receiver can estimate offsets.
public struct Heartbeat: Sendable, Hashable {
    /// The sender's hybrid logical clock, packed as the store packs it.
    public var hlc: UInt64
    /// The sender's wall clock, milliseconds since 1970.
    public var wallMillis: Int64
    /// The sender's monotonic clock when it sent this; only the sender interprets it (round-trip time).
    public var sentMonotonicNanos: UInt64

    public init(hlc: UInt64, wallMillis: Int64, sentMonotonicNanos: UInt64) {
        self.hlc = hlc
        self.wallMillis = wallMillis
        self.sentMonotonicNanos = sentMonotonicNanos
    }
}

/// The answer to a heartbeat: the heartbeat echoed back, plus the responder's own clocks.
public struct HeartbeatAck: Sendable, Hashable {
    public var echo: Heartbeat
    public var hlc: UInt64
    public var wallMillis: Int64

    public init(echo: Heartbeat, hlc: UInt64, wallMillis: Int64) {
        self.echo = echo
        self.hlc = hlc
        self.wallMillis = wallMillis
    }
}

/// One origin's position: the highest change sequence seen from `nodeID` in its `incarnation`.
public struct VersionEntry: Sendable, Hashable {
    public var nodeID: String
    public var incarnation: UInt32
    public var seq: UInt64

    public init(nodeID: String, incarnation: UInt32, seq: UInt64) {
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.seq = seq
    }
}

/// What a node has seen from every origin, for anti-entropy.
public struct VersionVector: Sendable, Hashable {
    public var entries: [VersionEntry]
    public init(entries: [VersionEntry]) { self.entries = entries }
}

/// A batch of changes in the store's own encoding, and the positions it covers.
public struct ChangeBatch: Sendable, Hashable {
    public var coverage: [VersionEntry]
    /// Opaque to the mesh: the replicated store's encoded batch.
    public var batch: [UInt8]

    public init(coverage: [VersionEntry], batch: [UInt8]) {
        self.coverage = coverage
        self.batch = batch
    }
}

/// Asks the peer for a full snapshot, or to resume one from `resumeOffset`.
public struct SnapshotRequest: Sendable, Hashable {
    /// Chosen by the requester; every chunk of the answer carries it.
    public var snapshotID: UInt64
    public var resumeOffset: UInt64

    public init(snapshotID: UInt64, resumeOffset: UInt64 = 0) {
        self.snapshotID = snapshotID
        self.resumeOffset = resumeOffset
    }
}

/// One piece of a snapshot; the last one has `isFinal` set.
public struct SnapshotChunk: Sendable, Hashable {
    public var snapshotID: UInt64
    public var offset: UInt64
    public var isFinal: Bool
    public var bytes: [UInt8]

    public init(snapshotID: UInt64, offset: UInt64, isFinal: Bool, bytes: [UInt8]) {
        self.snapshotID = snapshotID
        self.offset = offset
        self.isFinal = isFinal
        self.bytes = bytes
    }
}

/// A request forwarded to another node (for example a booking to the lease holder); opaque bytes.
public struct Forward: Sendable, Hashable {
    public var requestID: UInt64
    public var bytes: [UInt8]

    public init(requestID: UInt64, bytes: [UInt8]) {
        self.requestID = requestID
        self.bytes = bytes
    }
}

/// Sent just before closing a connection on purpose, so the peer can log why.
public struct MeshErrorMessage: Sendable, Hashable {
    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// Error codes; unknown values are kept as they are (a newer peer may send more).
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        public static let protocolViolation = Code(rawValue: 1)
        public static let identityMismatch = Code(rawValue: 2)
        public static let clusterMismatch = Code(rawValue: 3)
        public static let unsupportedProtocolVersion = Code(rawValue: 4)
        public static let frameTooLarge = Code(rawValue: 5)
        public static let shuttingDown = Code(rawValue: 6)
        public static let overloaded = Code(rawValue: 7)
        /// A snapshot larger than the serving node's `max_snapshot_bytes`.
        public static let snapshotTooLarge = Code(rawValue: 8)

        public var description: String {
            switch self {
            case .protocolViolation: return "protocolViolation"
            case .identityMismatch: return "identityMismatch"
            case .clusterMismatch: return "clusterMismatch"
            case .unsupportedProtocolVersion: return "unsupportedProtocolVersion"
            case .frameTooLarge: return "frameTooLarge"
            case .shuttingDown: return "shuttingDown"
            case .overloaded: return "overloaded"
            case .snapshotTooLarge: return "snapshotTooLarge"
            default: return "code\(self.rawValue)"
            }
        }
    }
}
