@testable import ClinicNode
import Consensus
import Crypto
import Domain
import Foundation
@testable import Services
import TestSupport
import Testing

/// The clinic floor on three running nodes: check-in through a node that does not hold the
/// session, calls at the holder, two nodes calling at once, 过号 and return, a walk-in, and the
/// queue closing after the session with its no-shows. The nodes' clocks read 09:30 of a day a
/// week ahead, so the test never depends on the time of day it runs at.
@Suite("The clinic floor on running nodes", .serialized, .timeLimit(.minutes(5)))
struct FloorTests {
    struct Person {
        var key: String
        var residentID: String
        var name: String
    }

    static func person(_ n: Int, _ name: String, secret: SymmetricKey) throws -> Person {
        let id = try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1980, month: 1, day: 1 + n), sequence: 200 + n)
        return Person(key: try PatientKey(residentID: id, clusterSecret: secret).hex, residentID: id.value, name: name)
    }

    static func attempt(_ body: () async throws(StaffError) -> FloorSession) async -> Result<FloorSession, StaffError> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    @Test("patients check in anywhere, the holder calls them in 号序 once each, and the closed session's absentees are no-shows")
    func aMorningOnTheFloor() async throws {
        let day = try ShanghaiTime.civil(of: Date()).date.adding(days: 7)
        let nineThirty = Int64(ShanghaiTime.instant(date: day, time: try LocalTime(hour: 9, minute: 30)).timeIntervalSince1970 * 1000)
        let offset = nineThirty - Int64(Date().timeIntervalSince1970 * 1000)
        let clocks = Dictionary(uniqueKeysWithValues: ["neike", "waike", "erke"].map { ($0, NodeClock(offsetMillis: offset)) })
        let files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        let nodes = try await startCluster(files, clocks: clocks)
        try await stoppingAfterwards(nodes) {
            let neike = nodes["neike"]!.node, waike = nodes["waike"]!.node, erke = nodes["erke"]!.node
            try neike.write { w in
                _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("Internal Medicine")])
                _ = try w.insert("practitioner", key: "neike-qian", values: ["name": .text("钱进"), "department": .text("neike"), "title": .text("attendingPhysician")])
            }
            // An evening session today (by the nodes' clocks): 4 slots online, 2 for walk-ins.
            let session = try neike.rota.addSession(department: "neike", ClinicTemplate(
                practitionerID: PractitionerID("neike-qian"), weekday: day.weekday, halfDay: .evening, room: "内科3诊室",
                capacity: 6, minutesPerSlot: 30, walkInReserve: 2), on: day)
            let block = session.key.rawValue
            #expect(await eventually { neike.booking.consensus.lookup { $0.holds(block) } && erke.booking.consensus.lookup { $0.block(block) != nil } })
            #expect(await eventually { (try? erke.floor.sessionToday(block)) != nil })
            // The walk-in below reserves a quota place: its bucket must have a holder first (at start-up it may not yet).
            #expect(await eventually { erke.bookingsView().blocks.filter { $0.block.hasPrefix("quota/") && $0.valid }.count == 16 })

            // Four patients book online (hold, then confirm), the way the patient API does.
            let secret = neike.floor.patientKeySecret
            let people = try ["张三明", "李四", "王五", "赵六"].enumerated().map { try Self.person($0.offset, $0.element, secret: secret) }
            try neike.write { w in
                for p in people { _ = try w.insert("patient", key: p.key, values: ["name": .text(p.name), "resident_id": .text(p.residentID)]) }
            }
            var refs: [AppointmentRef] = []
            for (slot, p) in people.enumerated() {
                let holdID = AppointmentRef.holdID(patient: p.key, requestID: "online-\(slot)")
                let hold = await neike.booking.consensus.book(BookingRequest(id: holdID, block: block, slot: slot, patient: p.key, holdMs: 900_000), quota: nil, timeout: .seconds(10))
                guard case .booked? = hold else { Issue.record("hold \(slot): \(String(describing: hold))"); return }
                let ref = AppointmentRef(holdID: holdID, block: block, slot: slot)
                let confirmed = await neike.booking.consensus.book(BookingRequest(id: ref.confirmationID, block: block, slot: slot, patient: p.key, confirms: holdID, tag: "payment:card"),
                                                                   quota: nil, timeout: .seconds(10))
                guard case .booked? = confirmed else { Issue.record("confirm \(slot)"); return }
                refs.append(ref)
            }
            #expect(await eventually { try erke.floor.sessionToday(block).lines.count == 4 })

            // Check-ins through erke, which forwards them to neike, the holder: by booking number, and by resident ID (the kiosk).
            let second = try await erke.floor.checkIn(appointment: refs[1].encoded)
            #expect(second.stage == .waiting && second.number == 2)
            let byID = try await erke.floor.checkIn(residentID: people[0].residentID, department: "neike")
            #expect(byID.map(\.1.number) == [1])
            _ = try await waike.floor.checkIn(appointment: refs[2].encoded)
            #expect(try await erke.floor.checkIn(appointment: refs[1].encoded).number == 2, "the same check-in again is answered, not done twice")
            await #expect(throws: StaffError.self) { _ = try await erke.floor.checkIn(appointment: "not-a-booking") }
            var floor = try neike.floor.sessionToday(block)
            #expect(floor.waiting.map(\.number) == [1, 2, 3], "waiting in 号序 order, whatever order they came in")
            #expect(floor.queue?.lastSeq == 3)

            // The doctor calls: number 1. The display on erke shows it, masked.
            floor = try await neike.floor.next(session: block, expecting: nil, missed: false, seen: floor.queue!.lastSeq)
            #expect(floor.called?.number == 1)
            #expect(await eventually { try erke.floor.sessionToday(block).called?.maskedName == "张*明" })

            // Two screens, on two nodes, press "next" at once having seen number 1 called: one call.
            let seen = floor.queue!.lastSeq, first = refs[0].holdID
            async let a = Self.attempt { () async throws(StaffError) in try await neike.floor.next(session: block, expecting: first, missed: false, seen: seen) }
            async let b = Self.attempt { () async throws(StaffError) in try await waike.floor.next(session: block, expecting: first, missed: false, seen: seen + 1) }
            let outcomes = await [a, b]
            #expect(outcomes.contains { (try? $0.get()) != nil }, "one press calls")
            for case .failure(let e) in outcomes { #expect(e.code == "floor.queue_changed") }
            floor = try neike.floor.sessionToday(block)
            #expect(floor.called?.number == 2 && floor.waiting.map(\.number) == [3], "number 2 called, number 3 still waiting")

            // A walk-in at the desk on erke: the reserve, never an online slot, and checked in at once.
            let walkIn = try await erke.floor.walkIn(session: block, residentID: try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1990, month: 5, day: 5), sequence: 300).value,
                                                     name: "孙七", mobile: "13803110007", payment: "cash", requestID: "desk-1")
            #expect(walkIn.walkIn && walkIn.number == 5 && walkIn.stage == .waiting)
            let again = try await erke.floor.walkIn(session: block, residentID: try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1990, month: 5, day: 5), sequence: 300).value,
                                                    name: "孙七", mobile: "13803110007", payment: "cash", requestID: "desk-1")
            #expect(again.number == 5, "the same form sent twice books once")

            // 过号: number 2 does not come; 3 is called. Back again, 2 waits behind the next ones.
            floor = try await neike.floor.next(session: block, expecting: refs[1].holdID, missed: true, seen: try neike.floor.sessionToday(block).queue!.lastSeq)
            #expect(floor.called?.number == 3 && floor.lines.first { $0.number == 2 }?.stage == .missed)
            _ = try await neike.floor.checkIn(appointment: refs[1].encoded)
            #expect(try neike.floor.sessionToday(block).waiting.map(\.number) == [5, 2])

            // The evening ends: every node's clock passes the session's end by the grace; the holder
            // closes the queue, and number 4, who never came, is a no-show.
            let later = Int64(ShanghaiTime.instant(date: day, time: try LocalTime(hour: 23, minute: 30)).timeIntervalSince1970 * 1000) - Int64(Date().timeIntervalSince1970 * 1000)
            for c in clocks.values { c.offsetMillis = later }
            #expect(await eventually { try neike.floor.sessionToday(block).closed })
            floor = try neike.floor.sessionToday(block)
            #expect(floor.lines.first { $0.number == 4 }?.stage == .noShow)
            #expect(await eventually { neike.booking.staffStatuses.status(of: refs[3].holdID, in: neike.store) == "noshow" }, "the no-show is recorded (and struck)")
            await #expect(throws: StaffError.self) {
                _ = try await neike.floor.next(session: block, expecting: floor.queue?.current, missed: false, seen: floor.queue!.lastSeq)
            }
        }
    }
}
