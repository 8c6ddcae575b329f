import Foundation
import InMemoryLogging
import Logging
import Mesh
import NIOCore
import PKI
import X509

let day: TimeInterval = 86_400

/// A cluster's certificates made in memory by PKI, as the admin would with `clinicmesh certs`.
struct TestCluster {
    let ca: ClusterCA
    let clusterID = "test-cluster"

    init() throws {
        self.ca = try ClusterCA.create(commonName: "Test Cluster CA")
    }

    func node(_ id: String, validity: TimeInterval = 30 * day, now: Date = Date()) throws -> IssuedCertificate {
        try self.ca.issueNode(.init(nodeID: id, department: "内科", hosts: ["localhost", "127.0.0.1"], validity: validity), now: now)
    }

    func credentials(_ issued: IssuedCertificate, ca: ClusterCA? = nil) throws -> MeshCredentials {
        try MeshCredentials(
            certificateChainPEM: issued.certificatePEM(),
            privateKeyPEM: issued.privateKeyPEM(),
            caCertificatePEM: (ca ?? self.ca).certificatePEM())
    }
}

/// A logger that keeps its entries for the test to look at, plus the handler to read them.
func makeLogger(_ label: String) -> (Logger, InMemoryLogHandler) {
    var handler = InMemoryLogHandler()
    handler.logLevel = .debug
    let logger = Logger(label: label) { _ in handler }
    return (logger, handler)
}

extension InMemoryLogHandler {
    /// Everything logged so far, message and metadata flattened into one searchable text per entry.
    var texts: [String] {
        self.entries.map { entry in
            "\(entry.message) " + entry.metadata.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        }
    }

    func contains(_ needle: String) -> Bool { self.texts.contains { $0.contains(needle) } }
}

/// One of every message type, with contents chosen by `rng` (short and long, empty and full,
/// ASCII and Chinese strings, compressible and random bytes).
func sampleMessages<G: RandomNumberGenerator>(using rng: inout G) -> [MeshMessage] {
    func string() -> String {
        let choices = ["", "n1", "neike-1", "内科门诊", String(repeating: "x", count: Int.random(in: 0...300, using: &rng))]
        return choices[Int.random(in: 0..<choices.count, using: &rng)]
    }
    func bytes() -> [UInt8] {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return []
        case 1: return (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 2: return [UInt8](repeating: UInt8.random(in: 0...255, using: &rng), count: Int.random(in: 1000...4000, using: &rng))
        default: return (0..<Int.random(in: 500...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
    }
    func entries() -> [VersionEntry] {
        (0..<Int.random(in: 0...5, using: &rng)).map { _ in
            VersionEntry(nodeID: string(), incarnation: UInt32.random(in: 0...UInt32.max, using: &rng), seq: rng.next())
        }
    }
    let heartbeat = Heartbeat(hlc: rng.next(), wallMillis: Int64(bitPattern: rng.next()), sentMonotonicNanos: rng.next())
    let messages: [MeshMessage] = [
        .hello(Hello(protocolVersion: UInt16.random(in: 0...UInt16.max, using: &rng), schemaVersion: UInt32.random(in: 0...9, using: &rng), nodeID: string(), clusterID: string())),
        .heartbeat(heartbeat),
        .heartbeatAck(HeartbeatAck(echo: heartbeat, hlc: rng.next(), wallMillis: Int64(bitPattern: rng.next()))),
        .versionVector(VersionVector(entries: entries())),
        .changeBatch(ChangeBatch(coverage: entries(), batch: bytes())),
        .snapshotRequest(SnapshotRequest(snapshotID: rng.next(), resumeOffset: rng.next())),
        .snapshotChunk(SnapshotChunk(snapshotID: rng.next(), offset: rng.next(), isFinal: Bool.random(using: &rng), bytes: bytes())),
        .raft(bytes()),
        .forward(Forward(requestID: rng.next(), bytes: bytes())),
        .error(MeshErrorMessage(code: .init(rawValue: UInt16.random(in: 0...UInt16.max, using: &rng)), message: string())),
    ]
    precondition(Set(messages.map(\.type)) == Set(MeshMessageType.allCases), "sampleMessages must cover every type")
    return messages
}
