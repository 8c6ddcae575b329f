import Consensus
import Domain
import Testing

/// A pharmacy's stock block: receipts, dispensings and returns decided by the holder from the
/// block's records, so stock never goes below zero, an expired batch is never dispensed and a
/// prescription is dispensed once, even when two windows ask at once.
@Suite struct StockLedgerTests {
    static let block = "pharmacy/west"
    let today = ShanghaiTime.unixDay(wallMs: testWallMs)

    func pharmacy() -> ClusterState {
        var s = ClusterState(config: ClusterConfig(voters: ["n1", "n2", "n3"]))
        for n in ["n1", "n2", "n3"] as [NodeID] {
            s.apply(.upsertMember(MemberInfo(node: n, address: "x", department: "d", certificateSerial: "1")))
            s.apply(.renewLiveness(node: n, incarnation: 1))
        }
        s.apply(.defineSession(Self.block, home: "n1", slots: 1, opensAtMs: 0))
        s.apply(.lease(LeaseChange(block: Self.block, fromEpoch: 0, toEpoch: 1, holder: "n1", holderLiveness: 1, voters: ["n1", "n2", "n3"], collected: [])))
        return s
    }

    func ask(_ id: String, _ event: StockEvent) -> BookingRequest {
        BookingRequest(id: id, block: Self.block, slot: 0, patient: "pharmacy", tag: StockCommand(event).requestTag)
    }

    func ledger(_ n: BookingNode, _ s: ClusterState) -> StockLedger {
        StockLedger(records: n.store.records(in: Self.block).filter { bookingStatus($0, in: s) == .active })
    }

    func item(_ batch: String, _ n: Int, drug: String = "X0001") -> StockItem { StockItem(drug: drug, batch: batch, quantity: n) }

    @Test func stockMovesOnlyAsTheLedgerAllows() {
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        guard case .booked(let b)? = answer(&n1, ask("in1", .receive(item("B1", 5), expiryDay: today + 30)), state: s), case .stock(let r) = b.kind else {
            Issue.record("receipt"); return
        }
        #expect(r.seq == 1 && b.slot == -1 && b.kind.slotStatus == nil)
        #expect(answer(&n1, ask("in2", .receive(item("OLD", 3), expiryDay: today - 1)), state: s) == .refused(requestID: "in2", reason: .batchExpired))
        #expect(answer(&n1, ask("in3", .receive(item("B1", 3), expiryDay: today + 60)), state: s) == .refused(requestID: "in3", reason: .batchMismatch))
        #expect(booked(answer(&n1, ask("d1", .dispense(rx: "rx-1", items: [item("B1", 4)])), state: s)))
        #expect(answer(&n1, ask("d2", .dispense(rx: "rx-2", items: [item("B1", 2)])), state: s) == .refused(requestID: "d2", reason: .stockShort))
        #expect(answer(&n1, ask("d3", .dispense(rx: "rx-1", items: [item("B1", 1)])), state: s) == .refused(requestID: "d3", reason: .alreadyDispensed),
                "a second dispense of one prescription, under another request id, is refused")
        #expect(answer(&n1, ask("d4", .dispense(rx: "rx-3", items: [item("B9", 1)])), state: s) == .refused(requestID: "d4", reason: .unknownBatch))
        #expect(answer(&n1, ask("r1", .returned(rx: "rx-1", items: [item("B1", 5)])), state: s) == .refused(requestID: "r1", reason: .returnTooMuch))
        #expect(answer(&n1, ask("r2", .returned(rx: "rx-9", items: [item("B1", 1)])), state: s) == .refused(requestID: "r2", reason: .notDispensed))
        #expect(booked(answer(&n1, ask("r3", .returned(rx: "rx-1", items: [item("B1", 1)])), state: s)))
        let l = ledger(n1, s)
        #expect(l.available("X0001", today: today) == 2 && l.dispensed["rx-1"] == [item("B1", 4)] && l.returned["rx-1"]?["X0001/B1"] == 1)
        #expect(l.lastSeq == 3, "refusals write no record")
        // A retry of an answered request is the same request: nothing moves twice.
        #expect(booked(answer(&n1, ask("d1", .dispense(rx: "rx-1", items: [item("B1", 4)])), state: s)))
        #expect(ledger(n1, s).available("X0001", today: today) == 2)
        // The same id with another movement is not the same request.
        #expect(answer(&n1, ask("d1", .dispense(rx: "rx-1", items: [item("B1", 3)])), state: s) == .refused(requestID: "d1", reason: .requestMismatch))
    }

    @Test func twoWindowsDispensingTheLastPackagesAtOnceTakeThemOnce() {
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = answer(&n1, ask("in", .receive(item("B1", 2), expiryDay: today + 30)), state: s)
        // The first window's dispense is still short of its quorum when the second one's arrives.
        let first = n1.request(ask("w1", .dispense(rx: "rx-a", items: [item("B1", 2)])), state: s, wallMs: testWallMs)
        #expect(sends(first).contains { if case .accept = $0.body { return true }; return false })
        #expect(n1.request(ask("w2", .dispense(rx: "rx-b", items: [item("B1", 1)])), state: s, wallMs: testWallMs) == [.refused(requestID: "w2", reason: .stockShort)])
        #expect(n1.request(ask("w3", .dispense(rx: "rx-a", items: [item("B1", 2)])), state: s, wallMs: testWallMs) == [.refused(requestID: "w3", reason: .alreadyDispensed)])
    }

    func booked(_ outcome: BookingOutcome?) -> Bool {
        if case .booked? = outcome { return true }
        return false
    }

    @Test func noDecisionRestsOnAReceiptOrADispensingShortOfItsQuorum() {
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        // The receipt is still short of its quorum (a takeover now could lose it).
        let receipt = n1.request(ask("in", .receive(item("B1", 5), expiryDay: today + 30)), state: s, wallMs: testWallMs)
        #expect(sends(receipt).contains { if case .accept = $0.body { return true }; return false })
        #expect(n1.request(ask("d1", .dispense(rx: "rx-1", items: [item("B1", 2)])), state: s, wallMs: testWallMs) == [.refused(requestID: "d1", reason: .noHolder)],
                "a dispensing that only the unsettled receipt allows waits")
        // Once the receipt has its quorum the same request is decided.
        var m = BookingNode(id: "n1", incarnation: 1)
        _ = answer(&m, ask("in", .receive(item("B1", 5), expiryDay: today + 30)), state: s)
        let first = m.request(ask("d1", .dispense(rx: "rx-1", items: [item("B1", 2)])), state: s, wallMs: testWallMs)
        #expect(sends(first).contains { if case .accept = $0.body { return true }; return false })
        // A return of a dispensing still short of its quorum waits too.
        #expect(m.request(ask("r1", .returned(rx: "rx-1", items: [item("B1", 1)])), state: s, wallMs: testWallMs) == [.refused(requestID: "r1", reason: .noHolder)])
    }

    @Test func anExpiredBatchIsNotDispensed() {
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = answer(&n1, ask("in", .receive(item("B1", 5), expiryDay: today)), state: s)
        #expect(booked(answer(&n1, ask("d0", .dispense(rx: "rx-0", items: [item("B1", 1)])), state: s)), "usable through its expiry day")
        #expect(answer(&n1, ask("d1", .dispense(rx: "rx-1", items: [item("B1", 1)])), state: s, wallMs: testWallMs + 86_400_000)
                == .refused(requestID: "d1", reason: .batchExpired))
        #expect(ledger(n1, s).available("X0001", today: today + 1) == 0)
    }

    @Test func stockRecordsTravelUnchangedAndStayInPharmacyBlocks() {
        let movements: [StockEvent] = [
            .receive(item("B-2027-01", 120), expiryDay: today + 400),
            .dispense(rx: "rx-0c1d3b5e", items: [item("B1", 2), item("B2", 1, drug: "Z0003")]),
            .returned(rx: "rx-0c1d3b5e", items: [item("B2", 1, drug: "Z0003")]),
        ]
        for (i, e) in movements.enumerated() {
            let kind = BookingKind.stock(StockRecord(seq: i + 1, atMs: testWallMs, event: e))
            #expect(BookingKind(id: "m\(i)", block: Self.block, fields: kind.fields) == kind)
            #expect(BookingKind(id: "m\(i)", block: "s", fields: kind.fields).map { if case .stock = $0 { return true }; return false } != true,
                    "a stock tag in a session block is no stock record")
        }
        // Bad tokens never make a command: a colon or slash in a batch, a zero quantity.
        #expect(StockCommand(requestTag: "stockcmd:out:rx-1:X0001/B:1/2") == nil)
        #expect(StockCommand(requestTag: "stockcmd:out:rx-1:X0001/B1/0") == nil)
        // A pharmacy block takes nothing but stock commands.
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        #expect(answer(&n1, BookingRequest(id: "b", block: Self.block, slot: 0, patient: "p"), state: s) == .refused(requestID: "b", reason: .noSuchSlot))
    }

    @Test func theLedgerIsTheSameInAnyOrderOfItsRecords() {
        let s = pharmacy()
        var n1 = BookingNode(id: "n1", incarnation: 1)
        _ = answer(&n1, ask("in", .receive(item("B1", 9), expiryDay: today + 30)), state: s)
        for i in 0..<4 { _ = answer(&n1, ask("d\(i)", .dispense(rx: "rx-\(i)", items: [item("B1", 2)])), state: s) }
        let records = n1.store.records(in: Self.block)
        let forward = StockLedger(records: records), backward = StockLedger(records: records.reversed())
        #expect(forward.batches == backward.batches && forward.available("X0001", today: today) == 1)
    }
}
