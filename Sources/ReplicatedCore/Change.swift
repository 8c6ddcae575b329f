/// One column value written to one row of a replicated table. Every row write (an "operation") is a
/// group of changes that share one version; `ReplicaSchema.aliveColumn` carries the row's existence.
public struct Change: Hashable, Sendable, CustomStringConvertible {
    public let table: String
    public let key: String
    public let column: String
    public let value: ColumnValue
    public let version: ChangeVersion

    public init(table: String, key: String, column: String, value: ColumnValue, version: ChangeVersion) {
        self.table = table
        self.key = key
        self.column = column
        self.value = value
        self.version = version
    }

    public var description: String { "\(table)[\(key)].\(column)=\(value) @\(version)" }
}

/// What a replica sends in reply to "changes since this version vector".
///
/// `coverage` is what the receiver may add to its version vector once it has applied the batch:
/// for every origin listed, the sender vouches that the batch holds every change of that origin,
/// above the requested vector, that still matters. A batch cut short at its size limit is cut
/// between operations (never inside one), and its coverage says how far it got.
///
/// `base` is the version vector the batch was computed against. The receiver takes an origin's
/// coverage only if it already has that origin up to the base, so a batch that arrives late, twice,
/// or at a node it was not made for can never claim changes it does not carry.
public struct ChangeBatch: Hashable, Sendable {
    public var changes: [Change]
    public var base: VersionVector
    public var coverage: VersionVector

    public init(changes: [Change], base: VersionVector = VersionVector(), coverage: VersionVector) {
        self.changes = changes
        self.base = base
        self.coverage = coverage
    }

    public var isEmpty: Bool { changes.isEmpty }
}
