import ArgumentParser
import Foundation
import PKI

/// `clinicmesh certs ...`: the cluster PKI on the admin's machine (see Certificates/README.md).
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "集群证书：创建 CA，签发节点与管理员证书 / Cluster certificates: make the CA, issue node and admin certificates",
        subcommands: [InitCA.self, Issue.self, IssueAdmin.self]
    )

    /// Runs a PKI step; a failure is printed to standard error as it is worded (Chinese first,
    /// then English, saying what to do) and the command exits with status 1.
    static func run(_ body: () throws -> Void) throws {
        let message: String
        do {
            try body()
            return
        } catch let error as PKIError {
            message = error.messageWithCause
        } catch {
            message = "证书操作失败：\(error)\nCertificate operation failed: \(error)"
        }
        FileHandle.standardError.write(Data((message + "\n").utf8))
        throw ExitCode.failure
    }

    struct InitCA: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init-ca",
            abstract: "创建新的集群 CA（ca.crt、ca.key）/ Make a new cluster CA (ca.crt, ca.key)",
            discussion: """
                ca.key 只留在管理员的机器上，任何节点都不需要它。
                ca.key stays on the admins' machine; no node ever needs it.
                """
        )

        @Option(name: .long, help: "输出文件夹 / Output folder")
        var out: String

        @Option(name: .long, help: "CA 名称（证书 CN）/ CA name (certificate CN)")
        var name: String = "ClinicMesh Cluster CA"

        @Option(name: .long, help: "有效天数 / Validity in days")
        var validityDays: Int = 3650

        @Flag(name: .long, help: "覆盖已有的 CA 文件 / Overwrite existing CA files")
        var force = false

        func run() throws {
            try CertsCommand.run {
                let ca = try ClusterCA.create(commonName: name, validity: TimeInterval(validityDays) * 86_400)
                try PKIFiles.writeCA(ca, to: out, force: force)
                print("""
                    已创建集群 CA：\(PKIFiles.path(out, PKIFiles.caCertificate))（证书）与 \(PKIFiles.path(out, PKIFiles.caKey))（私钥，权限 0600，请妥善保管，勿复制到节点）。
                    Cluster CA created: \(PKIFiles.path(out, PKIFiles.caCertificate)) (certificate) and \(PKIFiles.path(out, PKIFiles.caKey)) (private key, mode 0600: keep it safe, never copy it to a node).
                    """)
            }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "签发节点证书（node.crt、node.key、ca.crt）/ Issue a node certificate (node.crt, node.key, ca.crt)"
        )

        @Option(name: .long, help: "CA 文件夹（含 ca.crt 与 ca.key）/ CA folder (holding ca.crt and ca.key)")
        var ca: String

        @Option(name: .long, help: "节点 ID，例如 neike-1 / Node id, e.g. neike-1")
        var nodeId: String

        @Option(name: .long, help: "科室名称，例如 内科 / Department name, e.g. 内科")
        var department: String

        @Option(name: .long, help: "节点的域名或 IP，可重复 / The node's DNS name or IP; repeatable")
        var host: [String] = []

        @Option(name: .long, help: "输出文件夹 / Output folder")
        var out: String

        @Option(name: .long, help: "有效天数 / Validity in days")
        var validityDays: Int = 365

        @Flag(name: .long, help: "覆盖已有的节点证书与私钥（轮换证书时）/ Overwrite an existing node certificate and key (when rotating)")
        var force = false

        func validate() throws {
            if host.isEmpty {
                throw ValidationError("""
                    至少需要一个 --host（节点被访问时用的域名或 IP）。
                    At least one --host is required (the DNS name or IP the node is reached at).
                    """)
            }
        }

        func run() throws {
            try CertsCommand.run {
                let authority = try PKIFiles.loadCA(from: ca)
                let issued = try authority.issueNode(
                    NodeCertificateRequest(
                        nodeID: nodeId, department: department, hosts: host,
                        validity: TimeInterval(validityDays) * 86_400))
                try PKIFiles.writeIssued(issued, ca: authority, to: out, force: force)
                print("""
                    已签发节点证书：\(nodeId)（\(department)），序列号 \(issued.serial)，有效至 \(issued.certificate.notValidAfter)。
                    请把 \(out) 中的 node.crt、node.key、ca.crt 复制到该节点，并在集群成员中登记此序列号。
                    Node certificate issued: \(nodeId) (\(department)), serial \(issued.serial), valid until \(issued.certificate.notValidAfter).
                    Copy node.crt, node.key and ca.crt from \(out) to that node, and record this serial in the cluster membership.
                    """)
            }
        }
    }

    struct IssueAdmin: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-admin",
            abstract: "签发管理员证书（admin.crt、admin.key、ca.crt）/ Issue an admin certificate (admin.crt, admin.key, ca.crt)"
        )

        @Option(name: .long, help: "CA 文件夹（含 ca.crt 与 ca.key）/ CA folder (holding ca.crt and ca.key)")
        var ca: String

        @Option(name: .long, help: "管理员名称，例如 zhang.wei / Admin name, e.g. zhang.wei")
        var name: String

        @Option(name: .long, help: "输出文件夹 / Output folder")
        var out: String

        @Option(name: .long, help: "有效天数 / Validity in days")
        var validityDays: Int = 90

        @Flag(name: .long, help: "覆盖已有的管理员证书与私钥 / Overwrite an existing admin certificate and key")
        var force = false

        func run() throws {
            try CertsCommand.run {
                let authority = try PKIFiles.loadCA(from: ca)
                let issued = try authority.issueAdmin(name: name, validity: TimeInterval(validityDays) * 86_400)
                try PKIFiles.writeIssued(issued, ca: authority, to: out, force: force)
                print("""
                    已签发管理员证书：\(name)，序列号 \(issued.serial)，有效至 \(issued.certificate.notValidAfter)。admin.key 只给这位管理员本人。
                    Admin certificate issued: \(name), serial \(issued.serial), valid until \(issued.certificate.notValidAfter). Give admin.key to that admin only.
                    """)
            }
        }
    }
}
