@testable import ClinicNode
@testable import Services
import Consensus
import Synchronization
import Testing

@Suite struct BookingWaitersTests {
    final class Box: Sendable {
        let waiters = Mutex(ConsensusShell.Waiters())
        func withLock<T>(_ body: (inout ConsensusShell.Waiters) -> T) -> T { waiters.withLock { body(&$0) } }
        var count: Int { withLock { $0.byRequest.values.map { $0.count }.reduce(0, +) } }
    }

    /// Waits in a task until `box` holds a waiter for `id`; the task's value is what it was answered.
    private static func wait(_ box: Box, id: String, deadlineMs: UInt64) -> Task<BookingOutcome?, Never> {
        Task {
            await withCheckedContinuation { c in
                if !box.withLock({ $0.add(c, for: id, deadlineMs: deadlineMs) }) { c.resume(returning: nil) }
            }
        }
    }

    /// The tick's sweep takes out only the waiters whose deadline passed; the rest stay for
    /// their outcome. After `close` (the node stopping) every waiter is answered and none added.
    @Test func sweepTakesOnlyExpiredWaitersAndCloseTakesTheRest() async throws {
        let box = Box()
        let early = Self.wait(box, id: "a", deadlineMs: 1_000)
        let late = Self.wait(box, id: "b", deadlineMs: 5_000)
        while box.count < 2 { await Task.yield() }

        #expect(box.withLock { $0.expired(nowMs: 999) }.isEmpty)
        let due = box.withLock { $0.expired(nowMs: 1_000) }
        #expect(due.count == 1)
        for c in due { c.resume(returning: nil) }
        #expect(await early.value == nil)
        #expect(box.withLock { $0.byRequest.keys.sorted() } == ["b"])
        #expect(box.withLock { $0.earliestDeadlineMs } == 5_000)

        let rest = box.withLock { $0.close() }
        #expect(rest.count == 1)
        let outcome = BookingOutcome.refused(requestID: "b", reason: .slotTaken)
        for c in rest { c.resume(returning: outcome) }
        #expect(await late.value == outcome)
        #expect(await Self.wait(box, id: "c", deadlineMs: 9_000).value == nil)
        #expect(box.count == 0)
    }
}
