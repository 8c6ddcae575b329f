import Consensus
import Testing

/// A session's queue: check-in in 号序 order, calling, 过号 and return, closing, and the holder
/// numbering floor records so that two screens never call two patients at once.
@Suite struct SessionQueueTests {
    let rules = ReleaseRulesTests()

    /// Session "s" (4 slots) at holder n1, with the confirmed bookings of patients p0...p3 in slots 0...3.
    func bookedSession() -> (BookingNode, ClusterState) {
        let s = rules.session(opensAt: 0)
        var n1 = BookingNode(id: "n1", incarnation: 1)
        for slot in 0..<4 {
            _ = rules.book(&n1, BookingRequest(id: "h\(slot)", block: "s", slot: slot, patient: "p\(slot)", holdMs: 900_000), s, wallMs: testWallMs)
            _ = rules.book(&n1, BookingRequest(id: "c\(slot)", block: "s", slot: slot, patient: "p\(slot)", confirms: "h\(slot)"), s, wallMs: testWallMs)
        }
        return (n1, s)
    }

    func floor(_ id: String, _ command: FloorCommand) -> BookingRequest {
        BookingRequest(id: id, block: "s", slot: 0, patient: "nurse", tag: command.requestTag)
    }

    func queue(_ n: BookingNode, _ s: ClusterState) -> SessionQueue {
        SessionQueue(records: n.store.records(in: "s").filter { bookingStatus($0, in: s) == .active })
    }

    @Test func checkInsWaitIn号序OrderAndCallsTakeTheFirst() throws {
        var (n1, s) = bookedSession()
        for (i, slot) in [2, 0, 3].enumerated() {
            guard case .booked(let b)? = answer(&n1, floor("in\(i)", .checkIn("h\(slot)", behind: 3)), state: s) else { Issue.record("check-in \(slot)"); return }
            #expect(b.slot == slot && b.patient == "p\(slot)", "a floor record is filed under its patient's slot")
            #expect(b.kind.slotStatus == nil)
        }
        #expect(queue(n1, s).waiting.map(\.id) == ["h0", "h2", "h3"])
        #expect(queue(n1, s).entries["h1"]?.stage == .booked)
        // The slots stay booked: floor records take none.
        #expect(answer(&n1, BookingRequest(id: "x", block: "s", slot: 0, patient: "q"), state: s) == .refused(requestID: "x", reason: .slotTaken))

        #expect(answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s) != nil)
        #expect(queue(n1, s).current == "h0")
        #expect(answer(&n1, floor("n2", .next(expecting: "h0", missed: false)), state: s) != nil)
        let q = queue(n1, s)
        #expect(q.current == "h2" && q.entries["h0"]?.stage == .seen && q.waiting.map(\.id) == ["h3"])
        #expect(answer(&n1, floor("r1", .recall(expecting: "h2")), state: s) != nil)
        #expect(queue(n1, s).entries["h2"]?.calls == 2)
        // Checking in twice, or a booking the session does not have, is refused and recorded nowhere.
        #expect(answer(&n1, floor("in9", .checkIn("h3", behind: 3)), state: s) == .refused(requestID: "in9", reason: .alreadyArrived))
        #expect(answer(&n1, floor("in8", .checkIn("h7", behind: 3)), state: s) == .refused(requestID: "in8", reason: .noAppointment))
        #expect(n1.store.records["in9"] == nil && n1.store.records["in8"] == nil)
    }

    @Test func twoScreensPressingNextAtOnceCallOnePatient() {
        var (n1, s) = bookedSession()
        for slot in 0..<3 { _ = answer(&n1, floor("in\(slot)", .checkIn("h\(slot)", behind: 3)), state: s) }
        // The first press is still short of its quorum when the second arrives.
        let first = n1.request(floor("a", .next(expecting: nil, missed: false)), state: s, wallMs: testWallMs)
        #expect(sends(first).contains { if case .accept = $0.body { return true }; return false })
        let second = n1.request(floor("b", .next(expecting: nil, missed: false)), state: s, wallMs: testWallMs)
        #expect(second == [.refused(requestID: "b", reason: .queueChanged)])
        let q = queue(n1, s)
        #expect(q.current == "h0" && q.waiting.map(\.id) == ["h1", "h2"])
        // A retry of the first press is the same call, not another.
        _ = n1.request(floor("a", .next(expecting: nil, missed: false)), state: s, wallMs: testWallMs)
        #expect(queue(n1, s).current == "h0" && queue(n1, s).lastSeq == 4)
    }

    @Test func aMissedPatientWaitsAgainBehindTheNextN() {
        var (n1, s) = bookedSession()
        for slot in 0..<4 { _ = answer(&n1, floor("in\(slot)", .checkIn("h\(slot)", behind: 2)), state: s) }
        _ = answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s)
        // 过号: h0 did not come; h1 is called.
        _ = answer(&n1, floor("n2", .next(expecting: "h0", missed: true)), state: s)
        #expect(queue(n1, s).entries["h0"]?.stage == .missed)
        #expect(queue(n1, s).waiting.map(\.id) == ["h2", "h3"])
        // h0 comes back: behind the next two waiting.
        _ = answer(&n1, floor("back", .checkIn("h0", behind: 2)), state: s)
        #expect(queue(n1, s).waiting.map(\.id) == ["h2", "h3", "h0"])
        _ = answer(&n1, floor("n3", .next(expecting: "h1", missed: false)), state: s)
        #expect(queue(n1, s).current == "h2")
    }

    @Test func aReturnBehindOneGoesBetweenTheFirstAndTheRest() {
        var (n1, s) = bookedSession()
        for slot in 0..<4 { _ = answer(&n1, floor("in\(slot)", .checkIn("h\(slot)", behind: 1)), state: s) }
        _ = answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s)
        _ = answer(&n1, floor("n2", .next(expecting: "h0", missed: true)), state: s)
        _ = answer(&n1, floor("back", .checkIn("h0", behind: 1)), state: s)
        #expect(queue(n1, s).current == "h1")
        #expect(queue(n1, s).waiting.map(\.id) == ["h2", "h0", "h3"])
    }

    @Test func closingEndsCallsAndMakesTheAbsentNoShows() {
        var (n1, s) = bookedSession()
        _ = answer(&n1, floor("in1", .checkIn("h1", behind: 3)), state: s)
        _ = answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s)
        #expect(answer(&n1, floor("close", .close), state: s) != nil)
        let q = queue(n1, s)
        #expect(q.closed && q.current == nil && q.entries["h1"]?.stage == .seen)
        #expect(["h0", "h2", "h3"].allSatisfy { q.entries[$0]?.stage == .noShow })
        #expect(answer(&n1, floor("n2", .next(expecting: nil, missed: false)), state: s) == .refused(requestID: "n2", reason: .sessionClosed))
        #expect(answer(&n1, floor("in2", .checkIn("h2", behind: 3)), state: s) == .refused(requestID: "in2", reason: .sessionClosed))
    }

    @Test func aCancelledBookingLeavesTheQueue() {
        var (n1, s) = bookedSession()
        _ = answer(&n1, floor("in1", .checkIn("h1", behind: 3)), state: s)
        _ = answer(&n1, BookingRequest(id: "x1", block: "s", slot: 1, patient: "p1", releases: "h1"), state: s)
        #expect(queue(n1, s).waiting.isEmpty)
        #expect(answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s) == .refused(requestID: "n1", reason: .queueEmpty))
    }

    /// The holder fails over: the next holder derives the queue from the records its takeover
    /// collected, and goes on numbering after them.
    @Test func theQueueSurvivesATakeover() {
        var (n1, s) = bookedSession()
        for slot in 0..<3 { _ = answer(&n1, floor("in\(slot)", .checkIn("h\(slot)", behind: 3)), state: s) }
        _ = answer(&n1, floor("n1", .next(expecting: nil, missed: false)), state: s)
        let collected = n1.store.records(in: "s").sorted { $0.id < $1.id }
        var s2 = s
        s2.apply(.lease(LeaseChange(block: "s", fromEpoch: 1, toEpoch: 2, holder: "n2", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: collected)))
        var n2 = BookingNode(id: "n2", incarnation: 1)
        #expect(answer(&n2, floor("n2", .next(expecting: nil, missed: false)), state: s2) == .refused(requestID: "n2", reason: .queueChanged))
        guard case .booked(let call)? = answer(&n2, floor("n3", .next(expecting: "h0", missed: false)), state: s2) else { Issue.record("no call"); return }
        guard case .floor(let record) = call.kind else { Issue.record("not a floor record"); return }
        #expect(record.event == .call("h1", previousMissed: false))
        #expect(record.seq == 5, "numbered after the four records collected")
        let valid = s2.blocks["s"]!.collected + n2.store.records(in: "s")
        #expect(SessionQueue(records: valid).current == "h1")
    }

    @Test func floorRecordsTravelTheWireAndTheLogUnchanged() throws {
        let events: [FloorEvent] = [.checkIn("h1"), .call("h:2", previousMissed: true), .recall("h3"), .finish(missed: false),
                                    .returned("h4", behind: 3), .close]
        for (i, e) in events.enumerated() {
            let b = Booking(id: "f\(i)", block: "neike-dr0", slot: i - 1, patient: "p", epoch: 3, kind: .floor(FloorRecord(seq: i + 1, event: e)))
            let bytes = ConsensusWire.encode(.lease(LeaseEnvelope(from: "n1", to: "n2", body: .accept(b))))
            guard case .lease(let env) = try ConsensusWire.decode(bytes), case .accept(let back) = env.body else { Issue.record("\(e)"); continue }
            #expect(back == b)
            #expect(BookingKind(id: b.id, block: b.block, fields: b.kind.fields) == b.kind)
        }
        // In a quota bucket the same tag is no floor record; a malformed one is nothing.
        #expect(BookingKind(id: "f", block: "quota/1", fields: .init(tag: "floor:1:close")) == nil)
        #expect(BookingKind(id: "f", block: "s", fields: .init(tag: "floor:0:close")) == nil)
        #expect(FloorCommand(requestTag: "queue:checkin:99:h1") == nil, "behind at most 50")
        #expect(FloorCommand(requestTag: FloorCommand.next(expecting: "h:1", missed: true).requestTag) == .next(expecting: "h:1", missed: true))
    }
}
