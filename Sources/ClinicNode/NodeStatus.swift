import Foundation
import Services

/// What `status` on the admin API answers (JSON, the property names as keys).
public struct NodeStatus: Codable, Sendable, Hashable {
    public var nodeID: String
    public var department: String
    public var clusterID: String
    public var meshAddress: String
    public var incarnation: UInt32
    public var writesRefused: Bool
    /// Why writes are refused, Chinese first then English; nil when they are accepted.
    public var writesRefusedReason: String?
    /// "node#incarnation" to the highest sequence held.
    public var versionVector: [String: UInt64]
    public var parkedChanges: Int
    public var peers: [PeerStatus]
    public var uptimeS: Double
    /// The peer this node's database came from by snapshot, if it started that way.
    public var snapshotFrom: String?
    /// Raft and leases as this node sees them (nil from nodes older than the consensus layer).
    public var consensus: ConsensusStatus?
    /// The replicated schema version this node runs.
    public var schemaVersion: Int?
    /// Whatever needs a person, one sentence each, Chinese then English (empty: nothing).
    public var attention: [String]?
    /// The same items with a stable code each (`clock.off`, `disk.nearly_full`, ...), for scripts
    /// and for `clinicmesh status` to merge the nodes' items into one cluster list.
    public var alerts: [StatusAlert]?
    /// Free and total bytes of the file system holding the data folder.
    public var disk: DiskSpace?
    /// Record conflicts waiting for a person to review.
    public var reviewItems: Int?
    /// The clock-guard bound this node applies (`tuning.max_clock_offset_ms`).
    public var maxClockOffsetMs: Int64?
    /// Where `GET /metrics` listens, if the node serves metrics.
    public var metricsAddress: String?
}

/// One thing in a status that needs a person: a stable code and a sentence in both languages.
public struct StatusAlert: Codable, Sendable, Hashable {
    public var code: String
    /// The member it is about (nil: the node reporting it, or the whole cluster).
    public var node: String?
    public var zh: String
    public var en: String

    public init(_ code: String, node: String? = nil, zh: String, en: String) {
        self.code = code; self.node = node; self.zh = zh; self.en = en
    }

    public var text: String { "\(zh) / \(en)" }
}

public struct PeerStatus: Codable, Sendable, Hashable {
    public var id: String
    public var address: String
    /// This node's outbound link to the peer is up (TLS and Hello done).
    public var reachable: Bool
    /// Inbound sessions from the peer currently open.
    public var inboundSessions: Int
    /// Writes (origin sequence numbers, any origin) this node holds that the peer has not
    /// acknowledged (nil: never heard back).
    public var lagChanges: UInt64?
    /// Peer clock minus this node's clock, from heartbeats (NTP style, RTT/2).
    public var clockOffsetMs: Int64?
    public var rttMs: Double?
    public var lastContactMsAgo: Int64?
    /// Since the peer last answered with its version vector (anti-entropy).
    public var lastAntiEntropyMsAgo: Int64?
    public var changesSent: Int
    public var batchesReceived: Int
    public var lastError: String?
}

/// What `health` answers.
public struct NodeHealth: Codable, Sendable, Hashable {
    public var nodeID: String
    public var ok: Bool
    public var writesRefused: Bool
    public var reachablePeers: Int
    public var peers: Int
}

enum AdminJSON {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        return try decoder.decode(type, from: Data(bytes))
    }
}
