import ClinicErrors

/// An error from the replicated store, in Simplified Chinese first and English second, saying what
/// failed, on which input, and what to do.
public typealias StoreError = ClinicError<StoreErrorCode>

public enum StoreErrorCode: String, ClinicErrorCode {
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

extension ClinicError where Code == StoreErrorCode {
    static func unknownTable(_ table: String, file: String = #fileID, line: Int = #line) -> StoreError {
        StoreError(.unknownTable, zh: "没有名为 \(table) 的同步表；请检查表名或先升级本节点的数据库结构。",
                   en: "there is no replicated table named \(table); check the name or upgrade this node's schema first.",
                   file: file, line: line)
    }

    static func unknownColumn(_ column: String, table: String, file: String = #fileID, line: Int = #line) -> StoreError {
        StoreError(.unknownColumn, zh: "表 \(table) 没有列 \(column)；请检查列名。",
                   en: "table \(table) has no column \(column); check the column name.",
                   file: file, line: line)
    }
}
