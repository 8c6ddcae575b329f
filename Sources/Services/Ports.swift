import Consensus
import ReplicatedCore
import ReplicatedStore
import Synchronization

// What the services need of the layers below, as protocols: the node (ClinicNode) gives them its
// replica and its consensus shell; a test may give them anything that keeps these promises.

/// The node's replicated records: reads of live rows, change stamps to cache by, and local writes
/// (which the node passes on to its peers).
package protocol RecordStore: Sendable {
    func liveRow(_ table: String, key: String) throws -> [String: ColumnValue]?
    func liveRows(_ table: String) throws -> [String: [String: ColumnValue]]
    func liveRows(_ table: String, keys: Set<String>) throws -> [String: [String: ColumnValue]]
    /// Live rows matching plain column values (and a range on one column), newest first by
    /// `newestBy` (a column) then by key.
    func liveRows(_ table: String, equal: [String: ColumnValue], range: (column: String, from: ColumnValue?, to: ColumnValue?)?,
                  newestBy: String?, limit: Int) throws -> [(key: String, row: [String: ColumnValue])]
    /// Grows whenever a row of `table` changes here (written or merged).
    func changeStamp(table: String) -> UInt64
    /// Grows whenever row `key` of `table` changes here.
    func changeStamp(table: String, key: String) -> UInt64
    @discardableResult
    func write<T>(_ body: (LocalWriter) throws -> T) throws -> T
}

/// The booking protocol as the services use it: requests that wait for their outcome, and reads
/// of the derived booking state.
package protocol BookingConsensus: Sendable {
    /// Books (holds, confirms, releases) and waits for the outcome; nil if none came within
    /// `timeout` (the client retries with the same request id; a retry never books twice).
    func book(_ q: BookingRequest, quota: QuotaTag?, timeout: Duration) async -> BookingOutcome?
    /// Records a strike against a patient in their quota bucket; nil if no outcome came in time.
    func strike(_ strike: Strike, patient: String, id: String, timeout: Duration) async -> BookingOutcome?
    /// Reads the booking state as the core published it after its last step (no lock is taken).
    func lookup<T>(_ body: (BookingLookup) -> T) -> T
    /// The blocks whose records or lease changed since the last call (the read model's feed).
    func takeChangedBlocks() -> ChangedBlocks.Taken
}

/// A published session's lease block, for the node to propose to the cluster.
package struct SessionBlock: Sendable, Hashable {
    package var block: BlockID
    /// The node that holds the block (where the department's staff work).
    package var home: String
    package var slots: Int
    /// When its slots open for booking (ms since 1970).
    package var opensAtMs: Int64

    package init(block: BlockID, home: String, slots: Int, opensAtMs: Int64) {
        self.block = block; self.home = home; self.slots = slots; self.opensAtMs = opensAtMs
    }
}

/// Defining sessions' lease blocks: proposed now and again until they are committed.
package protocol SessionBlocks: Sendable {
    func defineSessions(_ sessions: [SessionBlock])
}

/// Blocks changed since they were last taken; `all` after the state was replaced (a snapshot).
package final class ChangedBlocks: Sendable {
    package enum Taken: Sendable, Equatable { case some(Set<BlockID>), all }
    private let pending = Mutex<(blocks: Set<BlockID>, all: Bool)>(([], false))

    package init() {}

    package func note(_ blocks: some Sequence<BlockID>) {
        pending.withLock { p in for b in blocks where !b.hasPrefix(quotaBucketPrefix) && !isPharmacyBlock(b) { p.blocks.insert(b) } }
    }

    package func noteAll() { pending.withLock { $0.all = true } }

    package func take() -> Taken {
        pending.withLock { p in
            defer { p = ([], false) }
            return p.all ? .all : .some(p.blocks)
        }
    }
}
