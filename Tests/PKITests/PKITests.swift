import Crypto
import Foundation
import PKI
import TestSupport
import Testing
import X509

/// A fresh temporary folder per test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = try makeTemporaryDirectory("pki-tests")
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

func permissions(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

let day: TimeInterval = 86_400

@Suite struct CertificateIssuingTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func clusterCAIsAP256CertificateAuthority() throws {
        let ca = try ClusterCA.create(commonName: "Test CA", validity: 10 * 365 * day, now: now)
        let certificate = ca.certificate
        #expect(certificate.issuer == certificate.subject)
        #expect(try certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(try certificate.extensions.keyUsage?.keyCertSign == true)
        #expect(certificate.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(certificate.notValidAfter > now.addingTimeInterval(9 * 365 * day))
        let reloaded = try ClusterCA(certificatePEM: ca.certificatePEM(), privateKeyPEM: ca.privateKeyPEM())
        #expect(reloaded.certificate == ca.certificate)
    }

    @Test func nodeCertificateCarriesIdentityDepartmentHostsAndUsages() throws {
        let ca = try ClusterCA.create(now: now)
        let issued = try ca.issueNode(
            NodeCertificateRequest(
                nodeID: "neike-1", department: "内科", hosts: ["neike.hospital.local", "10.1.2.3", "::1"],
                validity: 30 * day),
            now: now)
        let certificate = issued.certificate
        #expect(issued.identity == .node(id: "neike-1"))
        #expect(certificate.issuer == ca.certificate.subject)
        #expect("\(certificate.subject)".contains("CN=neike-1"))
        #expect("\(certificate.subject)".contains("OU=内科"))
        let sans = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(sans.contains(.uniformResourceIdentifier("clinicmesh://node/neike-1")))
        #expect(sans.contains(.dnsName("neike.hospital.local")))
        #expect(sans.contains(.ipAddress(.init(contentBytes: [10, 1, 2, 3]))))
        #expect(sans.contains(.ipAddress(.init(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))))
        let usages = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        #expect(try certificate.extensions.keyUsage?.digitalSignature == true)
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        // 128-bit positive serial: 16 bytes, top bit clear.
        #expect(certificate.serialNumber.bytes.count == 16)
        #expect(certificate.serialNumber.bytes.first.map { $0 & 0x80 == 0 } == true)
        #expect(issued.serial.count == 32)
        #expect(certificate.notValidAfter == now.addingTimeInterval(30 * day))
        #expect(certificate.notValidBefore < now)
    }

    @Test func serialsAreRandom() throws {
        let ca = try ClusterCA.create(now: now)
        let serials = try (0..<20).map { _ in
            try ca.issueNode(.init(nodeID: "n1", department: "内科", hosts: ["localhost"]), now: now).serial
        }
        #expect(Set(serials).count == 20)
    }

    @Test func adminCertificateIsClientOnlyAndMarkedAdmin() throws {
        let ca = try ClusterCA.create(now: now)
        let issued = try ca.issueAdmin(name: "zhang.wei", now: now)
        let sans = try #require(try issued.certificate.extensions.subjectAlternativeNames)
        #expect(Array(sans) == [.uniformResourceIdentifier("clinicmesh://admin/zhang.wei")])
        let usages = try #require(try issued.certificate.extensions.extendedKeyUsage)
        #expect(Array(usages) == [.clientAuth])
        #expect(issued.identity == .admin(name: "zhang.wei"))
    }

    @Test(arguments: ["", "-lead", "has space", "slash/id", "中文", String(repeating: "a", count: 65), "clinicmesh://x"])
    func invalidNodeIDsAreRefusedInBothLanguages(_ id: String) throws {
        let ca = try ClusterCA.create(now: now)
        let error = #expect(throws: PKIError.self) {
            try ca.issueNode(.init(nodeID: id, department: "内科", hosts: ["localhost"]), now: now)
        }
        #expect(error?.code == .invalidName)
        #expect(error?.message.contains("节点 ID") == true)
        #expect(error?.message.contains("Invalid node id") == true)
    }

    @Test func invalidHostsAndDepartmentsAreRefused() throws {
        let ca = try ClusterCA.create(now: now)
        let host = #expect(throws: PKIError.self) {
            try ca.issueNode(.init(nodeID: "n1", department: "内科", hosts: ["bad host!"]), now: now)
        }
        #expect(host?.code == .invalidHost)
        #expect(host?.message.contains("主机") == true && host?.message.contains("neither an IP") == true)
        let department = #expect(throws: PKIError.self) {
            try ca.issueNode(.init(nodeID: "n1", department: " ", hosts: ["localhost"]), now: now)
        }
        #expect(department?.code == .invalidName)
    }

    @Test func serialFormatsNormaliseToOneForm() {
        #expect(SerialFormat.normalise("serial=0A1B2C") == "0a1b2c")
        #expect(SerialFormat.normalise("0a:1b:2c") == "0a1b2c")
        #expect(SerialFormat.normalise("0x00A1B2") == "a1b2")
        #expect(SerialFormat.normalise("A1B") == "0a1b")
        #expect(SerialFormat.normalise("xyz") == nil)
        #expect(SerialFormat.hex(bytes: [0x00, 0x80, 0x01]) == "8001")
    }
}

@Suite struct PKIFileTests {
    @Test func caFilesHaveTheRightModesAndAreNotOverwritten() throws {
        try withTemporaryDirectory { directory in
            let ca = try ClusterCA.create()
            try PKIFiles.writeCA(ca, to: directory, force: false)
            #expect(try permissions(directory + "/ca.key") == 0o600)
            #expect(try permissions(directory + "/ca.crt") == 0o644)

            let second = try ClusterCA.create()
            let error = #expect(throws: PKIError.self) { try PKIFiles.writeCA(second, to: directory, force: false) }
            #expect(error?.code == .fileExists)
            #expect(error?.message.contains("--force") == true)
            #expect(try PKIFiles.loadCA(from: directory).certificate == ca.certificate)

            try PKIFiles.writeCA(second, to: directory, force: true)
            #expect(try permissions(directory + "/ca.key") == 0o600)
            #expect(try PKIFiles.loadCA(from: directory).certificate == second.certificate)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp") }
            #expect(leftovers.isEmpty)
        }
    }

    @Test func nodeFolderHoldsNoCAKey() throws {
        try withTemporaryDirectory { directory in
            let ca = try ClusterCA.create()
            let issued = try ca.issueNode(.init(nodeID: "waike-2", department: "外科", hosts: ["127.0.0.1"]))
            let nodeDirectory = directory + "/waike-2"
            try PKIFiles.writeIssued(issued, ca: ca, to: nodeDirectory, force: false)
            let files = Set(try FileManager.default.contentsOfDirectory(atPath: nodeDirectory))
            #expect(files == ["ca.crt", "node.crt", "node.key"])
            #expect(try permissions(nodeDirectory + "/node.key") == 0o600)
            #expect(try permissions(nodeDirectory + "/node.crt") == 0o644)
            #expect(throws: PKIError.self) { try PKIFiles.writeIssued(issued, ca: ca, to: nodeDirectory, force: false) }
        }
    }

    @Test func missingCAFolderSaysWhatToDo() throws {
        let error = #expect(throws: PKIError.self) { try PKIFiles.loadCA(from: "/nonexistent/ca") }
        #expect(error?.code == .fileMissing)
        #expect(error?.message.contains("找不到") == true)
        #expect(error?.message.contains("init-ca") == true)
    }

    @Test func mismatchedCAKeyIsRefused() throws {
        let one = try ClusterCA.create()
        let other = try ClusterCA.create()
        let error = #expect(throws: PKIError.self) {
            try ClusterCA(certificatePEM: one.certificatePEM(), privateKeyPEM: other.privateKeyPEM())
        }
        #expect(error?.code == .keyDoesNotMatchCertificate)
    }
}

@Suite struct ClusterTrustTests {
    let now = Date()

    func trust(_ ca: ClusterCA) throws -> ClusterTrust { try ClusterTrust(roots: [ca.certificate]) }

    @Test func nodeCertificateIsAcceptedAsClientAndServer() async throws {
        let ca = try ClusterCA.create()
        let issued = try ca.issueNode(.init(nodeID: "erke-3", department: "儿科", hosts: ["localhost"]))
        for role in [TLSRole.client, .server] {
            let peer = try await trust(ca).verify(chain: [issued.certificate], expecting: .node, role: role, at: now)
            #expect(peer.identity == .node(id: "erke-3"))
            #expect(peer.serial == issued.serial)
            #expect(peer.department == "儿科")
            #expect(peer.validatedChain.last == ca.certificate)
        }
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        let ca = try ClusterCA.create()
        let rogue = try ClusterCA.create()
        let issued = try rogue.issueNode(.init(nodeID: "neike-1", department: "内科", hosts: ["localhost"]))
        let refusal = await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [issued.certificate], expecting: .node, role: .client, at: now)
        }
        #expect(refusal?.description.contains("cluster CA") == true)
    }

    @Test func validityIsCheckedAgainstTheInjectedTime() async throws {
        let ca = try ClusterCA.create(now: now.addingTimeInterval(-400 * day))
        let issued = try ca.issueNode(.init(nodeID: "n1", department: "内科", hosts: ["localhost"], validity: 30 * day), now: now)
        _ = try await trust(ca).verify(chain: [issued.certificate], expecting: .node, role: .client, at: now)
        await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [issued.certificate], expecting: .node, role: .client, at: now.addingTimeInterval(31 * day))
        }
        await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [issued.certificate], expecting: .node, role: .client, at: now.addingTimeInterval(-1 * day))
        }
    }

    @Test func adminCertificateIsNoNodeAndNodeCertificateIsNoAdmin() async throws {
        let ca = try ClusterCA.create()
        let admin = try ca.issueAdmin(name: "li.na")
        let node = try ca.issueNode(.init(nodeID: "n1", department: "内科", hosts: ["localhost"]))
        let asNode = await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [admin.certificate], expecting: .node, role: .client, at: now)
        }
        #expect(asNode?.description.contains("clinicmesh://admin/li.na") == true)
        let asServer = await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [admin.certificate], expecting: .admin, role: .server, at: now)
        }
        #expect(asServer?.description.contains("serverAuth") == true)
        await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [node.certificate], expecting: .admin, role: .client, at: now)
        }
        let peer = try await trust(ca).verify(chain: [admin.certificate], expecting: .admin, role: .client, at: now)
        #expect(peer.identity == .admin(name: "li.na"))
    }

    @Test func theCAItselfIsNoPeer() async throws {
        let ca = try ClusterCA.create()
        await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [ca.certificate], expecting: .node, role: .client, at: now)
        }
    }

    @Test func certificateWithoutClusterIdentityIsRefused() async throws {
        let ca = try ClusterCA.create()
        let subject = try DistinguishedName { CommonName("n1") }
        let plain = try ca.issue(
            identity: .node(id: "n1"), subject: subject, sans: [.dnsName("localhost")],
            usages: [.serverAuth, .clientAuth], validity: day, now: now)
        let refusal = await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [plain.certificate], expecting: .node, role: .client, at: now)
        }
        #expect(refusal?.description.contains("clinicmesh://") == true)

        let mismatched = try ca.issue(
            identity: .node(id: "n1"), subject: try DistinguishedName { CommonName("n2") },
            sans: [.uniformResourceIdentifier("clinicmesh://node/n1")],
            usages: [.serverAuth, .clientAuth], validity: day, now: now)
        await #expect(throws: PeerRefusal.self) {
            try await trust(ca).verify(chain: [mismatched.certificate], expecting: .node, role: .client, at: now)
        }
    }
}
