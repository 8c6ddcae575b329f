#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Small durable-file helpers: files are created with their final mode (never chmod-ed after the
/// secret is in them) and replaced atomically with fsync of the file and its folder.
enum SecureFile {
    static func writeNew(path: String, contents: [UInt8], mode: mode_t) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw StoreError(.nodeStateFile, zh: "无法创建文件 \(path)（\(String(cString: strerror(errno)))）；文件已存在时请勿覆盖，先移走旧文件。",
                             en: "cannot create \(path) (\(String(cString: strerror(errno)))); if it exists, move the old file away first.")
        }
        defer { close(fd) }
        try writeAll(fd, contents, path: path)
        guard fsync(fd) == 0 else { throw ioError("fsync", path) }
        try syncDirectory(of: path)
    }

    /// Writes `contents` to a temporary file, fsyncs it, renames it over `path`, fsyncs the folder.
    static func replace(path: String, contents: [UInt8], mode: mode_t = 0o600) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ioError("open", temporary) }
        do {
            try writeAll(fd, contents, path: temporary)
            guard fsync(fd) == 0 else { throw ioError("fsync", temporary) }
            close(fd)
        } catch {
            close(fd)
            throw error
        }
        guard rename(temporary, path) == 0 else { throw ioError("rename", path) }
        try syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let fd = Glibc.open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open folder", folder) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ioError("fsync folder", folder) }
    }

    private static func writeAll(_ fd: Int32, _ contents: [UInt8], path: String) throws {
        var offset = 0
        while offset < contents.count {
            let n = contents[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write", path)
            }
            offset += n
        }
    }

    private static func ioError(_ operation: String, _ path: String) -> StoreError {
        let reason = String(cString: strerror(errno))
        return StoreError(.nodeStateFile, zh: "\(operation) \(path) 失败：\(reason)；请检查磁盘空间和权限。",
                          en: "\(operation) \(path) failed: \(reason); check disk space and permissions.")
    }
}
