import Consensus
import ReplicatedStore

// What the services need of the layers below, as protocols: the node (ClinicNode) gives them its
// replica and its consensus shell; a test may give them anything that keeps these promises.

/// The node's replicated records: reads of live rows, change stamps to cache by, and local writes
/// (which the node passes on to its peers).
public protocol RecordStore: Sendable {
    func liveRow(_ table: String, key: String) throws -> [String: ColumnValue]?
    func liveRows(_ table: String) throws -> [String: [String: ColumnValue]]
    func liveRows(_ table: String, keys: Set<String>) throws -> [String: [String: ColumnValue]]
    /// Grows whenever a row of `table` changes here (written or merged).
    func changeStamp(table: String) -> UInt64
    /// Grows whenever row `key` of `table` changes here.
    func changeStamp(table: String, key: String) -> UInt64
    @discardableResult
    func write<T>(_ body: (LocalWriter) throws -> T) throws -> T
}

/// The booking protocol as the services use it: requests that wait for their outcome, and reads
/// of the derived booking state.
public protocol BookingConsensus: Sendable {
    /// Books (holds, confirms, releases) and waits for the outcome; nil if none came within
    /// `timeout` (the client retries with the same request id; a retry never books twice).
    func book(_ q: BookingRequest, quota: QuotaTag?, timeout: Duration) async -> BookingOutcome?
    /// Records a strike against a patient in their quota bucket; nil if no outcome came in time.
    func strike(_ strike: Strike, patient: String, id: String, timeout: Duration) async -> BookingOutcome?
    /// Reads the booking state; keep `body` short (every booking waits for it).
    func lookup<T>(_ body: (BookingLookup) -> T) -> T
}
