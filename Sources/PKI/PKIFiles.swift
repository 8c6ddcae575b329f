import Foundation
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The file layout of the cluster PKI (see `Certificates/README.md`).
///
/// ```
/// CA folder (admins only)    node folder (copied to the node)    admin folder (one admin)
///   ca.crt   0644              ca.crt     0644                     ca.crt     0644
///   ca.key   0600              node.crt   0644                     admin.crt  0644
///                              node.key   0600                     admin.key  0600
/// ```
/// All files are PEM. `ca.key` never leaves the CA folder; a node folder holds only the CA's
/// certificate, which is all a node needs to verify its peers.
public enum PKIFiles {
    public static let caCertificate = "ca.crt"
    public static let caKey = "ca.key"
    public static let nodeCertificate = "node.crt"
    public static let nodeKey = "node.key"
    public static let adminCertificate = "admin.crt"
    public static let adminKey = "admin.key"

    public static let privateKeyMode: mode_t = 0o600
    public static let publicFileMode: mode_t = 0o644

    // MARK: - Whole folders

    /// Writes a new CA into `directory`: `ca.crt` (0644) and `ca.key` (0600).
    public static func writeCA(_ ca: ClusterCA, to directory: String, force: Bool) throws {
        let key = try ca.privateKeyPEM()
        let certificate = try ca.certificatePEM()
        try Self.createDirectory(directory)
        try Self.refuseOverwrite([caKey, caCertificate], in: directory, force: force)
        try Self.writeFile(key, to: Self.path(directory, caKey), mode: privateKeyMode, force: force)
        try Self.writeFile(certificate, to: Self.path(directory, caCertificate), mode: publicFileMode, force: force)
    }

    /// Loads the CA (certificate and key) from a CA folder.
    public static func loadCA(from directory: String) throws -> ClusterCA {
        let certificatePath = Self.path(directory, caCertificate)
        let keyPath = Self.path(directory, caKey)
        let certificate = try Self.read(certificatePath, zh: "CA 证书", en: "CA certificate")
        let key = try Self.read(keyPath, zh: "CA 私钥", en: "CA private key")
        return try ClusterCA(certificatePEM: certificate, privateKeyPEM: key, source: directory)
    }

    /// Writes an issued node or admin certificate, its key and the CA certificate into `directory`.
    public static func writeIssued(_ issued: IssuedCertificate, ca: ClusterCA, to directory: String, force: Bool) throws {
        let (certificateName, keyName) = Self.fileNames(for: issued.identity.kind)
        let key = try issued.privateKeyPEM()
        let certificate = try issued.certificatePEM()
        let caCertificatePEM = try ca.certificatePEM()
        try Self.createDirectory(directory)
        try Self.refuseOverwrite([keyName, certificateName], in: directory, force: force)
        try Self.writeFile(key, to: Self.path(directory, keyName), mode: privateKeyMode, force: force)
        try Self.writeFile(certificate, to: Self.path(directory, certificateName), mode: publicFileMode, force: force)
        // The CA certificate is public and the same for every node: refresh it silently.
        try Self.writeFile(caCertificatePEM, to: Self.path(directory, caCertificate), mode: publicFileMode, force: true)
    }

    public static func fileNames(for kind: ClusterIdentity.Kind) -> (certificate: String, key: String) {
        switch kind {
        case .node: return (nodeCertificate, nodeKey)
        case .admin: return (adminCertificate, adminKey)
        }
    }

    // MARK: - Files

    public static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Reads a whole text file, with a bilingual error naming the file if it is missing or unreadable.
    public static func read(_ path: String, zh: String, en: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw PKIError(
                .fileMissing,
                zh: "找不到\(zh)文件 \(path)。请检查路径；CA 文件夹由“clinicmesh certs init-ca --out 文件夹”生成，节点与管理员文件夹由“clinicmesh certs issue / issue-admin”生成。",
                en: "The \(en) file \(path) does not exist: check the path; a CA folder is made by `clinicmesh certs init-ca --out DIR`, node and admin folders by `clinicmesh certs issue` / `issue-admin`.",
                subject: path)
        }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PKIError(
                .fileUnreadable,
                zh: "无法读取 \(path)。请检查文件权限（私钥只有属主可读）和文件内容。",
                en: "Cannot read \(path): check its permissions (private keys are readable by their owner only) and contents.",
                subject: path, cause: error)
        }
    }

    static func createDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw PKIError(
                .fileUnwritable,
                zh: "无法创建文件夹 \(directory)。请检查上级文件夹是否存在且可写。",
                en: "Cannot create folder \(directory): check that its parent exists and is writable.",
                subject: directory, cause: error)
        }
    }

    static func refuseOverwrite(_ names: [String], in directory: String, force: Bool) throws {
        guard !force else { return }
        for name in names {
            let path = Self.path(directory, name)
            if FileManager.default.fileExists(atPath: path) {
                throw PKIError(
                    .fileExists,
                    zh: "\(path) 已存在，未覆盖。若确实要替换（例如轮换证书），请加 --force；否则换一个 --out 文件夹。",
                    en: "\(path) already exists and was left alone: add --force if you really mean to replace it (e.g. to rotate a certificate), or choose another --out folder.",
                    subject: path)
            }
        }
    }

    /// Writes `contents` to `path`, creating the file with `mode` from the start (never a chmod
    /// afterwards, so a private key is never readable by others, not even for a moment).
    ///
    /// Without `force` the file must not exist (`O_EXCL`). With `force` the new contents go to a
    /// fresh temporary file in the same folder, created with `mode`, which then replaces `path`
    /// atomically: a crash leaves either the old file or the new one, never half of either.
    public static func writeFile(_ contents: String, to path: String, mode: mode_t, force: Bool) throws {
        let bytes = Array(contents.utf8)
        if !force {
            try Self.writeNew(bytes, to: path, mode: mode)
            return
        }
        let temporary = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        try Self.writeNew(bytes, to: temporary, mode: mode)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw PKIError(
                .fileUnwritable,
                zh: "无法替换 \(path)（\(String(cString: strerror(code)))）。请检查文件夹权限。",
                en: "Cannot replace \(path) (\(String(cString: strerror(code)))): check the folder's permissions.",
                subject: path)
        }
    }

    private static func writeNew(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw PKIError(
                    .fileExists,
                    zh: "\(path) 已存在，未覆盖。若确实要替换，请加 --force。",
                    en: "\(path) already exists and was left alone: add --force if you really mean to replace it.",
                    subject: path)
            }
            throw PKIError(
                .fileUnwritable,
                zh: "无法创建 \(path)（\(String(cString: strerror(code)))）。请检查文件夹是否存在且可写。",
                en: "Cannot create \(path) (\(String(cString: strerror(code)))): check that the folder exists and is writable.",
                subject: path)
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                unlink(path)
                throw PKIError(
                    .fileUnwritable,
                    zh: "写入 \(path) 失败（\(String(cString: strerror(code)))）。请检查磁盘空间。",
                    en: "Writing \(path) failed (\(String(cString: strerror(code)))): check the free disk space.",
                    subject: path)
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            let code = errno
            unlink(path)
            throw PKIError(
                .fileUnwritable,
                zh: "写入 \(path) 后同步到磁盘失败（\(String(cString: strerror(code)))）。",
                en: "Syncing \(path) to disk failed (\(String(cString: strerror(code)))).",
                subject: path)
        }
    }
}
