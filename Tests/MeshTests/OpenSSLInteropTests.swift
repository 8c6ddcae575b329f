import Foundation
import Mesh
import PKI
import TestSupport
import Testing
import X509

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@discardableResult
func runScript(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [repositoryRoot + "/Certificates/" + name] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A hospital with its own CA made by openssl: a node certificate made by the openssl script is
/// accepted by the verifier and in a real mutual-TLS handshake with a node whose certificate
/// `clinicmesh` issued from the same openssl CA.
@Suite(.serialized, .timeLimit(.minutes(5))) struct OpenSSLInteropTests {
    @Test func opensslNodeCertificateIsAcceptedByVerifierAndHandshake() async throws {
        let directory = try makeTemporaryDirectory("mesh-openssl")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let caDirectory = directory + "/hospital-ca"
        let opensslNode = directory + "/neike-1"

        let ca = try runScript("openssl-ca.sh", ["--out", caDirectory, "--name", "某市第一医院 CA"])
        try #require(ca.status == 0, "\(ca.output)")
        let issued = try runScript(
            "openssl-node-cert.sh",
            [
                "--ca-cert", caDirectory + "/ca.crt", "--ca-key", caDirectory + "/ca.key",
                "--node-id", "neike-1", "--department", "内科", "--host", "localhost", "--host", "127.0.0.1",
                "--out", opensslNode,
            ])
        try #require(issued.status == 0, "\(issued.output)")
        #expect(try permissions(opensslNode + "/node.key") == 0o600)
        #expect(try permissions(caDirectory + "/ca.key") == 0o600)
        let printedSerial = try #require(issued.output.split(separator: "\n").last { $0.hasPrefix("serial=") })

        // The verifier accepts it as a node, as client and as server.
        let trust = try ClusterTrust.load(caCertificateFile: opensslNode + "/ca.crt")
        let certificate = try Certificate(pemEncoded: String(contentsOfFile: opensslNode + "/node.crt", encoding: .utf8))
        for role in [TLSRole.client, .server] {
            let peer = try await trust.verify(chain: [certificate], expecting: .node, role: role, at: Date())
            #expect(peer.identity == .node(id: "neike-1"))
            #expect(peer.department == "内科")
            #expect(SerialFormat.normalise(String(printedSerial)) == peer.serial)
        }

        // clinicmesh issues the other node from the same openssl-made CA.
        let hospitalCA = try PKIFiles.loadCA(from: caDirectory)
        let waike = try hospitalCA.issueNode(.init(nodeID: "waike-2", department: "外科", hosts: ["127.0.0.1"]))
        try PKIFiles.writeIssued(waike, ca: hospitalCA, to: directory + "/waike-2", force: false)

        let membership = StaticMembership(["neike-1": [String(printedSerial)], "waike-2": [waike.serial]])
        let cluster = try TestCluster()
        let serverNode = try TestNode(
            cluster: cluster, id: "neike-1",
            credentials: try MeshCredentials.load(directory: opensslNode), membership: membership)
        let clientNode = try TestNode(
            cluster: cluster, id: "waike-2",
            credentials: try MeshCredentials.load(directory: directory + "/waike-2"), membership: membership)
        let (serverLogger, _) = makeLogger("server")
        let (clientLogger, _) = makeLogger("client")
        let record = ServerRecord()
        try await withEchoServer(serverNode, logger: serverLogger, record: record) { port in
            try await clientNode.client(clientLogger).withSession(host: "127.0.0.1", port: port, expectedNodeID: "neike-1") { session in
                #expect(session.peer.nodeID == "neike-1")
                #expect(session.peer.certificate.serial == SerialFormat.normalise(String(printedSerial)))
                var iterator = session.inbound.makeAsyncIterator()
                _ = try await iterator.next()
                try await exchange(session, &iterator)
            }
        }
        #expect(await record.sessions == ["waike-2"])
    }

    @Test func opensslScriptRefusesBadInputInBothLanguages() throws {
        let directory = try makeTemporaryDirectory("mesh-openssl")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #require(try runScript("openssl-ca.sh", ["--out", directory + "/ca"]).status == 0)
        let bad = try runScript(
            "openssl-node-cert.sh",
            ["--ca-cert", directory + "/ca/ca.crt", "--ca-key", directory + "/ca/ca.key", "--node-id", "bad id", "--department", "内科",
             "--host", "localhost", "--out", directory + "/n"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("节点 ID") && bad.output.contains("Invalid node id"))
        let again = try runScript("openssl-ca.sh", ["--out", directory + "/ca"])
        #expect(again.status != 0)
        #expect(again.output.contains("--force"))
    }
}

func permissions(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}
