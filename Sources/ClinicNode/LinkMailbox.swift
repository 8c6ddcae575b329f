import Synchronization

/// The encoded consensus messages waiting for one peer's link. The link takes everything queued
/// at once and writes it with one flush, so under load a batch of accepts and replies costs one
/// socket write rather than one each. Bounded: past `capacity` the oldest are dropped (Raft and
/// the lease protocol retransmit what matters), as when the link is down. It also keeps since
/// when its link has been down, for the shell's set of unreachable peers.
final class LinkMailbox: Sendable {
    private struct State {
        var queue: [[UInt8]] = []
        var waiter: CheckedContinuation<[[UInt8]]?, Never>?
        var finished = false
        var downSinceMs: UInt64?
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func post(_ bytes: [UInt8]) {
        let waiter = state.withLock { s -> CheckedContinuation<[[UInt8]]?, Never>? in
            guard !s.finished else { return nil }
            // A waiting link has an empty queue: hand the message over directly.
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.queue.append(bytes)
            if s.queue.count > capacity { s.queue.removeFirst(s.queue.count - capacity) }
            return nil
        }
        waiter?.resume(returning: [bytes])
    }

    /// Everything queued, in order, once there is at least one message; nil once finished or
    /// when the waiting task is cancelled.
    func takeAll() async -> [[UInt8]]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<[[UInt8]]?, Never>) in
                let ready = state.withLock { s -> [[UInt8]]?? in
                    if !s.queue.isEmpty {
                        defer { s.queue = [] }
                        return .some(s.queue)
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return .none
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { s in defer { s.waiter = nil }; return s.waiter }
            waiter?.resume(returning: nil)
        }
    }

    /// The link is connecting or reconnecting (from `nowMs`, unless it was down already).
    func linkDown(nowMs: UInt64) { state.withLock { if $0.downSinceMs == nil { $0.downSinceMs = nowMs } } }
    func linkUp() { state.withLock { $0.downSinceMs = nil } }
    /// Since when the link has been down (monotonic ms); nil while it is up.
    var downSinceMs: UInt64? { state.withLock { $0.downSinceMs } }

    /// No more messages: a waiting link gets nil, later posts are dropped.
    func finish() {
        let waiter = state.withLock { s in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }
}
