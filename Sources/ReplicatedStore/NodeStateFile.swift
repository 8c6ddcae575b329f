import Foundation

/// A small file beside the database, outside it, that decides when the node must start a new
/// origin incarnation. It records the incarnation, an open generation that the database records
/// too, and whether the last run shut down cleanly.
///
/// A new incarnation starts when:
/// - the database's generation differs from the file's (the database was replaced by an older copy,
///   e.g. restored from a backup: writes shipped since that copy may be gone from it);
/// - the last run did not shut down cleanly and its commits (or this run's) were not fsynced at
///   each commit (`synchronous=NORMAL`): commits acknowledged to peers may have been lost;
/// - peers hold changes of a newer incarnation of this node than the database knows;
/// - the caller asks for one (a restore does), or the database is new but the node was known before.
struct NodeState: Codable, Equatable {
    var node: String
    var incarnation: UInt32
    var generation: UInt64
    var cleanShutdown: Bool
    /// The durability the last run used ("full" or "normal"); absent in files from before it was kept.
    var durability: String?

    static func path(forDatabase path: String) -> String { path + ".node-state" }

    static func load(databasePath: String) throws -> NodeState? {
        let path = Self.path(forDatabase: databasePath)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(NodeState.self, from: data)
        } catch {
            throw StoreError(.nodeStateFile, zh: "节点状态文件 \(path) 已损坏；若数据库完好，删除它后节点会以新的 incarnation 启动。",
                             en: "node state file \(path) is corrupt; if the database is intact, delete it and the node starts a new incarnation.")
        }
    }

    func save(databasePath: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try SecureFile.replace(path: Self.path(forDatabase: databasePath), contents: Array(try encoder.encode(self)))
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive advisory lock on a file beside the database, held while a replica is open.
final class FileLock: Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(.nodeStateFile, zh: "无法创建锁文件 \(path)；请检查目录权限。", en: "cannot create lock file \(path); check the folder's permissions.")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw StoreError(.nodeStateFile, zh: "另一个进程正在使用此数据库（\(path)）；请通过该节点的管理接口操作，不要直接打开它的数据库。",
                             en: "another process has this database open (\(path)); act through that node's admin API instead of opening its database.")
        }
    }

    func release() { flock(fd, LOCK_UN) }

    deinit { Glibc.close(fd) }
}
