import Foundation
import Testing
@testable import Domain

@Suite struct ScheduleTests {
    func practitioner(_ title: PractitionerTitle) throws -> Practitioner {
        try Practitioner(id: Fixture.drWang, name: "王丽", title: title, departmentID: Fixture.cardiology)
    }

    @Test func halfDayDefaultHours() {
        #expect(HalfDay.morning.defaultStart.description == "08:00")
        #expect(HalfDay.morning.defaultEnd.description == "12:00")
        #expect(HalfDay.afternoon.defaultStart.description == "13:30")
        #expect(HalfDay.afternoon.defaultEnd.description == "17:30")
        #expect(HalfDay.morning.zh == "上午" && HalfDay.afternoon.zh == "下午" && HalfDay.evening.zh == "晚间")
        #expect(HalfDay.evening.defaultStart.description == "18:00" && HalfDay.evening.defaultEnd.description == "21:00")
        #expect(HalfDay.allCases.sorted { $0.order < $1.order } == [.morning, .afternoon, .evening])
    }

    @Test func slotsSplitTheMorningEvenly() throws {
        let schedule = try Schedule(practitioner: practitioner(.attendingPhysician), date: Fixture.today, halfDay: .morning, capacity: 8)
        let slots = schedule.slots()
        #expect(slots.map(\.sequence) == Array(1...8))
        #expect(slots.map(\.start.description) == ["08:00", "08:30", "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"])
        #expect(slots.map(\.end.description) == ["08:30", "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00"])
        #expect(slots.allSatisfy { $0.status == .free && $0.scheduleKey == schedule.key })
        #expect(slots[6].key.rawValue == "dr-wang-li/2025-03-14/morning/007")
    }

    @Test func unevenSplitsStayContiguousAndEndOnTime() throws {
        let schedule = try Schedule(practitionerID: Fixture.drWang, departmentID: Fixture.cardiology,
                                    date: Fixture.today, halfDay: .afternoon, capacity: 7, feeFen: 1000)
        let slots = schedule.slots()
        // 240 minutes / 7: boundaries at floor(240 * n / 7) minutes after 13:30.
        #expect(slots.map(\.start.description) == ["13:30", "14:04", "14:38", "15:12", "15:47", "16:21", "16:55"])
        #expect(slots.last?.end.description == "17:30")
        for (previous, next) in zip(slots, slots.dropFirst()) {
            #expect(previous.end == next.start)
        }
    }

    @Test func fullCapacityAndSingleSlot() throws {
        let full = try Schedule(practitioner: practitioner(.residentPhysician), date: Fixture.today, halfDay: .morning, capacity: 200)
        let slots = full.slots()
        #expect(slots.count == 200)
        #expect(slots.allSatisfy { $0.start < $0.end })
        #expect(Set(slots.map(\.key)).count == 200)
        let single = try Schedule(practitioner: practitioner(.residentPhysician), date: Fixture.today, halfDay: .afternoon, capacity: 1)
        #expect(single.slots().map { "\($0.start)-\($0.end)" } == ["13:30-17:30"])
    }

    @Test func feesByTitleAndOverrides() throws {
        #expect(try Schedule(practitioner: practitioner(.chiefPhysician), date: Fixture.today, halfDay: .morning, capacity: 10).feeFen == 5000)
        #expect(try Schedule(practitioner: practitioner(.associateChiefPhysician), date: Fixture.today, halfDay: .morning, capacity: 10).feeFen == 3000)
        #expect(try Schedule(practitioner: practitioner(.attendingPhysician), date: Fixture.today, halfDay: .morning, capacity: 10).feeFen == 2000)
        #expect(try Schedule(practitioner: practitioner(.residentPhysician), date: Fixture.today, halfDay: .morning, capacity: 10).feeFen == 1000)
        // A session can set its own fee, and a hospital its own table.
        #expect(try Schedule(practitioner: practitioner(.chiefPhysician), date: Fixture.today, halfDay: .morning, capacity: 10, feeFen: 10000).feeFen == 10000)
        let table = try FeeTable.standard.setting(8000, for: .chiefPhysician)
        #expect(try Schedule(practitioner: practitioner(.chiefPhysician), date: Fixture.today, halfDay: .morning, capacity: 10, fees: table).feeFen == 8000)
        #expect(table.feeFen(for: .residentPhysician) == 1000)
        #expect(refusal { try FeeTable.standard.setting(-1, for: .chiefPhysician) }?.code == "fee.out_of_range")
        #expect(refusal { try FeeTable(fenByTitle: [.chiefPhysician: 100]) }?.code == "fee_table.missing_title")
    }

    @Test func refusesBadSessions() throws {
        func make(capacity: Int = 10, feeFen: Int = 0, halfDay: HalfDay = .morning, start: String? = nil, end: String? = nil) -> ValidationError? {
            refusal {
                try Schedule(practitionerID: Fixture.drWang, departmentID: Fixture.cardiology, date: Fixture.today,
                             halfDay: halfDay, capacity: capacity, feeFen: feeFen,
                             start: start.map(Fixture.time), end: end.map(Fixture.time))
            }
        }
        #expect(make(capacity: 0)?.code == "schedule.capacity")
        #expect(make(capacity: 501)?.field == "capacity")
        #expect(make(capacity: 500, start: "08:00", end: "17:00") == nil)
        #expect(make(capacity: Int.min)?.code == "schedule.capacity")
        #expect(make(feeFen: -1)?.field == "feeFen")
        #expect(make(feeFen: Int.max)?.code == "fee.out_of_range")
        #expect(make(halfDay: .morning, start: "13:00", end: "14:00")?.code == "schedule.start")
        #expect(make(halfDay: .afternoon, start: "09:00", end: "11:00")?.field == "start")
        #expect(make(halfDay: .afternoon, start: "18:00", end: "20:00")?.code == "schedule.start", "18:00 on is the evening's")
        #expect(make(halfDay: .evening, start: "17:59", end: "20:00")?.code == "schedule.start")
        #expect(make(halfDay: .evening, start: "18:00", end: "21:00") == nil)
        #expect(make(start: "10:00", end: "10:00")?.code == "schedule.end")
        #expect(make(capacity: 61, start: "08:00", end: "09:00")?.code == "schedule.capacity.exceeds_minutes")
        #expect(make(capacity: 60, start: "08:00", end: "09:00") == nil)
    }

    @Test func slotInitValidates() {
        let key = ScheduleKey(practitionerID: Fixture.drWang, date: Fixture.today, halfDay: .morning)
        #expect(refusal { try Slot(scheduleKey: key, sequence: 0, start: Fixture.time("08:00"), end: Fixture.time("08:10")) }?.code == "slot.sequence")
        #expect(refusal { try Slot(scheduleKey: key, sequence: 1, start: Fixture.time("08:10"), end: Fixture.time("08:10")) }?.field == "end")
    }

    @Test func codableRoundTripsAndRevalidates() throws {
        let schedule = try Schedule(practitioner: practitioner(.chiefPhysician), date: Fixture.today, halfDay: .afternoon, capacity: 3)
        let data = try JSONEncoder().encode(schedule)
        #expect(try JSONDecoder().decode(Schedule.self, from: data) == schedule)
        let slot = try #require(schedule.slots().last)
        #expect(try JSONDecoder().decode(Slot.self, from: JSONEncoder().encode(slot)) == slot)
        let tampered = String(decoding: data, as: UTF8.self).replacingOccurrences(of: #""capacity":3"#, with: #""capacity":0"#)
        #expect(throws: ValidationError.self) { try JSONDecoder().decode(Schedule.self, from: Data(tampered.utf8)) }
    }
}
