import Dispatch
import Foundation
import NIOPosix
import Synchronization

/// This node's clocks. The wall clock may carry an injected offset (tests of the clock guard).
public final class NodeClock: Sendable {
    private struct Setting {
        var offsetMillis: Int64
        /// Tests only: the wall clock stands still at this instant (an edge such as 14:59:59 is
        /// then judged there however long the request takes).
        var frozenAtMillis: Int64?
    }
    /// One lock for both: every request and tick reads the wall clock.
    private let setting: Mutex<Setting>

    public init(offsetMillis: Int64 = 0) { setting = Mutex(Setting(offsetMillis: offsetMillis)) }

    public var offsetMillis: Int64 {
        get { setting.withLock { $0.offsetMillis } }
        set { setting.withLock { $0.offsetMillis = newValue } }
    }

    public var frozenAtMillis: Int64? {
        get { setting.withLock { $0.frozenAtMillis } }
        set { setting.withLock { $0.frozenAtMillis = newValue } }
    }

    public func wallMillis() -> Int64 {
        let s = setting.withLock { $0 }
        if let at = s.frozenAtMillis { return at }
        return Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) &+ s.offsetMillis
    }

    public func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// Threads for blocking store work (SQLite commits, fsyncs). Swift's tasks run on a pool as wide
/// as the cores, and on Linux `DispatchQueue.global()` runs on that same pool: an fsync there
/// would hold one of the few threads that serve every request.
private let blockingThreads: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 8)
    pool.start()
    return pool
}()

/// Runs blocking store work on `blockingThreads`, off the threads that run tasks. It always runs
/// (the pool is never stopped), whether or not the waiting task is cancelled.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        blockingThreads.submit { _ in continuation.resume(with: Result { try body() }) }
    }
}
