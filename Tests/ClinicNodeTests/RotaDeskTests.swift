@testable import ClinicNode
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Synchronization
import Testing

/// Block definitions as a node would propose them, kept for the test to read.
final class RecordedSessionBlocks: SessionBlocks {
    let defined = Mutex<[SessionBlock]>([])
    func defineSessions(_ sessions: [SessionBlock]) { defined.withLock { $0 += sessions } }
}

/// The rota desk over a real replica: templates saved and read back, a plan, publishing it as
/// schedule rows with their blocks, and what it refuses.
@Suite("Rota desk")
struct RotaDeskTests {
    let replica: Replica
    let blocks = RecordedSessionBlocks()
    let desk: RotaDesk
    /// Friday 2025-03-14, 10:00 in Shanghai.
    static let now: Int64 = 1_741_917_600_000

    init() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rota-\(UUID().uuidString).sqlite").path
        replica = try Replica.open(path: path, node: "neike", schema: NodeSchema.schema, options: Replica.Options())
        let store = ReplicaStore(replica: replica, signals: WriteSignals())
        let clock = NodeClock()
        clock.frozenAtMillis = Self.now
        desk = RotaDesk(store: store, blocks: blocks, node: "neike", clock: clock)
        try replica.write { w in
            _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("Internal Medicine")])
            _ = try w.insert("practitioner", key: "dr-wang-li", values: ["name": .text("王丽"), "department": .text("neike"), "title": .text("chiefPhysician")])
            _ = try w.insert("practitioner", key: "dr-li-na", values: ["name": .text("李娜"), "department": .text("neike"), "title": .text("residentPhysician")])
            _ = try w.insert("practitioner", key: "dr-zhao", values: ["name": .text("赵强"), "department": .text("waike"), "title": .text("attendingPhysician")])
        }
    }

    func line(_ doctor: String, _ weekday: Weekday, _ halfDay: HalfDay = .morning, room: String = "内科 1 诊室", start: String? = nil,
              capacity: Int = 12, minutes: Int = 20, reserve: Int = 2) throws -> ClinicTemplate {
        try ClinicTemplate(practitionerID: PractitionerID(doctor), weekday: weekday, halfDay: halfDay, room: room,
                           start: start.map { try LocalTime(parsing: $0) }, capacity: capacity, minutesPerSlot: minutes, walkInReserve: reserve)
    }

    static func date(_ text: String) throws -> CivilDate { try CivilDate(parsing: text) }

    @Test("templates are saved per doctor, weekday and half-day, and read back by department")
    func templates() throws {
        #expect(try desk.saveTemplate(line("dr-wang-li", .monday)) == "neike")
        try desk.saveTemplate(line("dr-li-na", .wednesday, .afternoon, room: "内科 2 诊室"))
        try desk.saveTemplate(line("dr-wang-li", .monday, capacity: 10))  // replaces the Monday morning line
        try desk.saveTemplate(line("dr-zhao", .friday))
        let mine = try desk.templates(department: "neike")
        #expect(mine.map { "\($0.practitionerID)/\($0.weekday.rawValue)/\($0.halfDay.rawValue)" } == ["dr-li-na/3/afternoon", "dr-wang-li/1/morning"])
        #expect(mine.last?.capacity == 10 && mine.last?.walkInReserve == 2 && mine.first?.room == "内科 2 诊室")
        #expect(try desk.templates(department: "waike").count == 1)

        #expect(throws: StaffError.self) { try desk.saveTemplate(line("dr-nobody", .monday)) }
        try desk.deleteTemplate(PractitionerID("dr-li-na"), .wednesday, .afternoon)
        #expect(try desk.templates(department: "neike").count == 1)
        let again = #expect(throws: StaffError.self) { try desk.deleteTemplate(PractitionerID("dr-li-na"), .wednesday, .afternoon) }
        #expect(again?.code == "template.not_found" && again?.status == 404)
    }

    @Test("publishing writes the sessions every node reads, no row per slot, and defines their blocks here")
    func publish() throws {
        try desk.saveTemplate(line("dr-wang-li", .monday))
        try desk.saveTemplate(line("dr-li-na", .wednesday, .afternoon, room: "内科 2 诊室", capacity: 8, minutes: 30, reserve: 0))
        let from = try Self.date("2025-03-17")
        let plan = try desk.publish(department: "neike", from: from, weeks: 2)
        #expect(plan.sessions.count == 4 && plan.conflicts.isEmpty && plan.published.isEmpty)

        let schedule = try #require(try replica.liveRow("schedule", key: "dr-wang-li/2025-03-17/morning"))
        #expect(schedule["room"]?.textValue == "内科 1 诊室" && schedule["capacity"]?.integerValue == 12)
        #expect(schedule["start"]?.textValue == "08:00" && schedule["end"]?.textValue == "12:00")
        #expect(schedule["walk_in_reserve"]?.integerValue == 2 && schedule["fee_fen"]?.integerValue == 5000 && schedule["home"]?.textValue == "neike")
        #expect(schedule["opens_at_ms"]?.integerValue == 1_741_590_000_000, "2025-03-10 15:00 in Shanghai")
        #expect(try replica.liveRows("slot").isEmpty, "a slot's state is the booking records', never a replicated row")

        let defined = blocks.defined.withLock { $0 }
        #expect(defined.map(\.block).sorted() == ["dr-li-na/2025-03-19/afternoon", "dr-li-na/2025-03-26/afternoon",
                                                   "dr-wang-li/2025-03-17/morning", "dr-wang-li/2025-03-24/morning"])
        #expect(defined.allSatisfy { $0.home == "neike" && $0.slots == RotaDesk.blockSlots }, "room for extra slots (加号): the capacity is the row's")

        // A span that ends on a published session's date counts it as published.
        let endingOnWednesday = try desk.plan(department: "neike", from: Self.date("2025-03-20"), weeks: 1)
        #expect(endingOnWednesday.sessions.isEmpty && endingOnWednesday.published.map(\.rawValue).sorted() == ["dr-li-na/2025-03-26/afternoon", "dr-wang-li/2025-03-24/morning"])

        // Had the node stopped before its proposals were committed, the rows say which blocks to propose again.
        let unproposed = try desk.sessionsWithoutBlocks { $0.hasPrefix("dr-wang-li/") }
        #expect(unproposed.map(\.block) == ["dr-li-na/2025-03-19/afternoon", "dr-li-na/2025-03-26/afternoon"])
        #expect(unproposed.allSatisfy { $0.home == "neike" && $0.slots == RotaDesk.blockSlots } && unproposed.first?.opensAtMs == 1_741_762_800_000)
        #expect(try desk.sessionsWithoutBlocks { _ in true }.isEmpty)

        // Published again, and one week further: only the new week's sessions are new.
        let next = try desk.publish(department: "neike", from: from, weeks: 3)
        #expect(next.published.count == 4 && next.sessions.map(\.key.rawValue) == ["dr-wang-li/2025-03-31/morning", "dr-li-na/2025-04-02/afternoon"])
        #expect(blocks.defined.withLock { $0.count } == 6)
    }

    @Test("a plan that conflicts with itself or with what is published publishes nothing and says why")
    func conflicts() throws {
        // Dr Wang's Monday morning runs 09:00-13:00 in room 1; Dr Li's Monday in the same room from 11:00.
        try desk.saveTemplate(line("dr-wang-li", .monday, start: "09:00"))
        try desk.saveTemplate(line("dr-li-na", .monday, start: "11:00", capacity: 3))
        let from = try Self.date("2025-03-17")
        let refused = #expect(throws: StaffError.self) { try desk.publish(department: "neike", from: from, weeks: 1) }
        #expect(refused?.status == 409 && refused?.code == "rota.room_twice")
        #expect(refused?.zh.contains("排班未发布") == true && refused?.en.contains("Nothing was published") == true)
        #expect(try replica.liveRow("schedule", key: "dr-wang-li/2025-03-17/morning") == nil)
        #expect(blocks.defined.withLock { $0.isEmpty })

        // In another room it publishes. Then an afternoon for Dr Wang from 12:30 meets his published morning.
        try desk.saveTemplate(line("dr-li-na", .monday, room: "内科 2 诊室", start: "11:00", capacity: 3))
        _ = try desk.publish(department: "neike", from: from, weeks: 1)
        try desk.saveTemplate(line("dr-wang-li", .monday, .afternoon, room: "内科 3 诊室", start: "12:30"))
        let plan = try desk.plan(department: "neike", from: from, weeks: 1)
        #expect(plan.published.count == 2 && plan.sessions.map(\.key.rawValue) == ["dr-wang-li/2025-03-17/afternoon"])
        #expect(plan.conflicts.map(\.code) == ["rota.doctor_twice"])
        // From 13:00 it only touches the morning.
        try desk.saveTemplate(line("dr-wang-li", .monday, .afternoon, room: "内科 3 诊室", start: "13:00"))
        #expect(try desk.plan(department: "neike", from: from, weeks: 1).conflicts.isEmpty)
    }

    @Test("an extra session is published at once, unless the doctor has that half-day already or it conflicts")
    func extraSession() throws {
        try desk.saveTemplate(line("dr-wang-li", .monday))
        let monday = try Self.date("2025-03-17")
        _ = try desk.publish(department: "neike", from: monday, weeks: 1)
        // Saturday 2025-03-22, a peak day: Dr Li in the evening.
        let saturday = try Self.date("2025-03-22")
        let added = try desk.addSession(department: "neike", line("dr-li-na", .saturday, .evening, room: "内科 2 诊室", capacity: 9, reserve: 1), on: saturday)
        #expect(added.key.rawValue == "dr-li-na/2025-03-22/evening" && added.schedule.feeFen == FeeTable.standard.feeFen(for: .residentPhysician))
        #expect(try replica.liveRow("schedule", key: added.key.rawValue)?["walk_in_reserve"]?.integerValue == 1)
        #expect(blocks.defined.withLock { $0.last?.block } == added.key.rawValue)

        func refusal(_ body: () throws -> Void) -> StaffError? {
            do { try body(); return nil } catch let e as StaffError { return e } catch { return nil }
        }
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-wang-li", .monday, room: "内科 9 诊室"), on: monday) }?.code == "rota.exists")
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-wang-li", .monday, .afternoon, room: "内科 9 诊室", start: "12:00"), on: monday) } == nil,
                "12:00 only touches his morning")
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-li-na", .monday, room: "内科 1 诊室", start: "09:00", capacity: 3), on: monday) }?.code == "rota.room_twice")
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-li-na", .tuesday), on: monday) }?.code == "rota.weekday")
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-zhao", .monday), on: monday) }?.code == "rota.other_department")
        #expect(refusal { _ = try desk.addSession(department: "neike", line("dr-li-na", .friday), on: Self.date("2025-03-14")) }?.code == "rota.past",
                "Friday's morning began at 08:00; it is 10:00")
        #expect(try replica.liveRows("schedule").count == 3, "Monday's morning, Saturday's evening and Monday's afternoon")
    }

    @Test("a session of today that has begun is not planned; a later one today is")
    func sessionsOfToday() throws {
        // Friday 2025-03-14 at 10:00: the morning has begun, the afternoon has not.
        try desk.saveTemplate(line("dr-wang-li", .friday))
        try desk.saveTemplate(line("dr-wang-li", .friday, .afternoon, room: "内科 2 诊室"))
        let plan = try desk.plan(department: "neike", from: Self.date("2025-03-14"), weeks: 1)
        #expect(plan.sessions.map(\.key.rawValue) == ["dr-wang-li/2025-03-14/afternoon"])
    }

    @Test("bad dates and unknown doctors are refused with a reason and write nothing")
    func badInput() throws {
        try desk.saveTemplate(line("dr-wang-li", .monday))
        let past = #expect(throws: StaffError.self) { try desk.publish(department: "neike", from: Self.date("2025-03-10"), weeks: 1) }
        #expect(past?.code == "rota.past" && past?.status == 400)
        let far = #expect(throws: StaffError.self) { try desk.publish(department: "neike", from: Self.date("2026-03-10"), weeks: 1) }
        #expect(far?.code == "rota.too_far")
        let weeks = #expect(throws: StaffError.self) { try desk.plan(department: "neike", from: Self.date("2025-03-17"), weeks: 0) }
        #expect(weeks?.code == "rota.weeks")
        #expect(try replica.liveRows("schedule").isEmpty && blocks.defined.withLock { $0.isEmpty })
    }
}
