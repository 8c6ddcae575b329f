import Crypto
import Foundation
import ReplicatedStore
import Synchronization

/// A wall clock the test moves by hand.
final class ManualClock: Sendable {
    private let millis: Mutex<Int64>
    init(_ start: Int64 = 1_790_000_000_000) { millis = Mutex(start) }
    var now: Int64 { millis.withLock { $0 } }
    func advance(_ delta: Int64) { millis.withLock { $0 += delta } }
    func set(_ value: Int64) { millis.withLock { $0 = value } }
}

enum TestSchema {
    static let record = ReplicatedTable("record", columns: [
        .init("a", .text), .init("b", .integer), .init("c", .real), .init("d", .blob),
        .init("name", .text, encrypted: true),
    ], indexes: [["b"]])

    static let v1 = ReplicaSchema(versions: [[.createTable(record)]])
    /// Version 2 adds a column and a table, as a rolling upgrade would.
    static let v2 = ReplicaSchema(versions: [
        [.createTable(record)],
        [.addColumn(table: "record", .init("note", .text)),
         .createTable(ReplicatedTable("allergy", columns: [.init("substance", .text)]))],
    ])

    static let dataKey = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))

    static func options(clock: ManualClock, durability: Replica.Options.Durability = .full) -> Replica.Options {
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: dataKey)
        options.wallClock = { clock.now }
        options.durability = durability
        return options
    }
}

/// A fresh folder under the system temp folder, removed by `cleanup()`.
struct TemporaryFolder {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "clinicmesh-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Exchanges changes among replicas until every one has everything.
func syncAll(_ replicas: [Replica], limit: Int = 10_000) throws {
    for _ in 0..<50 {
        var moved = false
        for source in replicas {
            for target in replicas where target !== source {
                let batch = try source.changes(since: try target.versionVector(), limit: limit)
                if !batch.changes.isEmpty { moved = true }
                try target.apply(batch)
            }
        }
        if !moved { return }
    }
}

/// Runs CPU-heavy synchronous work on a thread of its own, so that it does not hold one of the
/// (two, on these machines) threads of Swift's cooperative pool that the TLS tests running beside
/// it need for their async certificate checks.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
