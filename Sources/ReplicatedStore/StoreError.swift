/// An error from the replicated store, in Simplified Chinese first and English second, saying what
/// failed, on which input, and what to do.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case unknownTable = "store.unknown_table"
        case unknownColumn = "store.unknown_column"
        case rowExists = "store.row_exists"
        case rowMissing = "store.row_missing"
        case invalidKey = "store.invalid_key"
        case wrongNode = "store.wrong_node"
        case encryption = "store.encryption"
        case writesRefused = "store.writes_refused"
        case corruptMetadata = "store.corrupt_metadata"
        case nodeStateFile = "store.node_state_file"
    }

    public let code: Code
    public let zh: String
    public let en: String

    public init(_ code: Code, zh: String, en: String) {
        self.code = code
        self.zh = zh
        self.en = en
    }

    public var description: String { "\(zh) / \(en) [\(code.rawValue)]" }

    static func unknownTable(_ table: String) -> StoreError {
        StoreError(.unknownTable, zh: "没有名为 \(table) 的同步表；请检查表名或先升级本节点的数据库结构。",
                   en: "there is no replicated table named \(table); check the name or upgrade this node's schema first.")
    }

    static func unknownColumn(_ column: String, table: String) -> StoreError {
        StoreError(.unknownColumn, zh: "表 \(table) 没有列 \(column)；请检查列名。",
                   en: "table \(table) has no column \(column); check the column name.")
    }
}
