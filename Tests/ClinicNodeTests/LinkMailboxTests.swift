@testable import ClinicNode
@testable import Services
import Testing

@Suite struct LinkMailboxTests {
    /// A link takes everything queued in one batch, in order; past the capacity the oldest go.
    @Test func batchesInOrderAndDropsTheOldestPastCapacity() async {
        let box = LinkMailbox(capacity: 3)
        for i in 1...5 { box.post([UInt8(i)]) }
        #expect(await box.takeAll() == [[3], [4], [5]])
        box.post([6])
        #expect(await box.takeAll() == [[6]])
    }

    /// A waiting link gets the next message; after `finish` it gets nil and later posts are dropped.
    @Test func waitingLinksWakeAndFinishEnds() async {
        let box = LinkMailbox(capacity: 8)
        async let next = box.takeAll()
        // The waiter may or may not be parked yet: either way it gets exactly this message.
        box.post([7])
        #expect(await next == [[7]])
        async let last = box.takeAll()
        box.finish()
        #expect(await last == nil)
        box.post([8])
        #expect(await box.takeAll() == nil)
    }

    /// A cancelled link stops waiting (its task group is ending).
    @Test func cancellationEndsTheWait() async {
        let box = LinkMailbox(capacity: 8)
        let waiter = Task { await box.takeAll() }
        waiter.cancel()
        #expect(await waiter.value == nil)
    }
}
