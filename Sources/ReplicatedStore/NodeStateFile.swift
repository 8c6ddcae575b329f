import Foundation

/// A small file beside the database, outside it, that decides when the node must start a new
/// origin incarnation. It records the incarnation, an open generation that the database records
/// too, and whether the last run shut down cleanly.
///
/// A new incarnation starts when:
/// - the database's generation differs from the file's (the database was replaced by an older copy,
///   e.g. restored from a backup: writes shipped since that copy may be gone from it);
/// - the last run did not shut down cleanly and commits were not fsynced (`synchronous=NORMAL`):
///   commits acknowledged to peers may have been lost with the power;
/// - the caller asks for one (a restore does), or the database is new but the node was known before.
struct NodeState: Codable, Equatable {
    var node: String
    var incarnation: UInt32
    var generation: UInt64
    var cleanShutdown: Bool

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
