import Foundation
import Testing
@testable import Domain

@Suite struct RotaTests {
    static let drLi = try! PractitionerID("dr-li-na")
    static let doctors: [PractitionerID: Practitioner] = [
        Fixture.drWang: try! Practitioner(id: Fixture.drWang, name: "王丽", title: .chiefPhysician, departmentID: Fixture.cardiology),
        drLi: try! Practitioner(id: drLi, name: "李娜", title: .residentPhysician, departmentID: Fixture.cardiology),
    ]

    func template(_ weekday: Weekday = .monday, _ halfDay: HalfDay = .morning, doctor: PractitionerID = Fixture.drWang, room: String = "心内科 3 诊室",
                  start: String? = nil, capacity: Int = 24, minutes: Int = 10, reserve: Int = 4) throws -> ClinicTemplate {
        try ClinicTemplate(practitionerID: doctor, weekday: weekday, halfDay: halfDay, room: room, start: start.map(Fixture.time),
                           capacity: capacity, minutesPerSlot: minutes, walkInReserve: reserve)
    }

    @Test func aTemplateLineSaysWhenItEnds() throws {
        let t = try template(start: "08:00", capacity: 24, minutes: 10)
        #expect(t.end.description == "12:00")
        #expect(try template(.monday, .evening, capacity: 18).start.description == "18:00", "an evening line starts at 18:00 unless told")
    }

    @Test func badTemplateLinesAreRefusedWithTheirField() {
        #expect(refusal { try template(capacity: 0) }?.code == "schedule.capacity")
        #expect(refusal { try template(capacity: 501) }?.code == "schedule.capacity")
        #expect(refusal { try template(minutes: 0) }?.code == "template.minutes_per_slot")
        #expect(refusal { try template(minutes: 121) }?.field == "minutesPerSlot")
        #expect(refusal { try template(capacity: 10, reserve: 11) }?.code == "template.walk_in_reserve")
        #expect(refusal { try template(reserve: -1) }?.field == "walkInReserve")
        #expect(refusal { try template(room: "  ") }?.field == "room")
        #expect(refusal { try template(room: String(repeating: "诊", count: 31)) }?.field == "room")
        #expect(refusal { try template(.monday, .afternoon, start: "09:00") }?.code == "schedule.start")
        #expect(refusal { try template(.monday, .evening, start: "20:00", capacity: 40, minutes: 10) }?.code == "template.past_midnight")
        #expect(refusal { try template(capacity: 500, minutes: 1) } == nil)
    }

    @Test func twoWeeksFromTheTemplatesWithFeesAndReleaseTimes() throws {
        let lines = [try template(.monday, .morning), try template(.wednesday, .afternoon, doctor: Self.drLi, room: "心内科 5 诊室", capacity: 20, minutes: 12, reserve: 0)]
        // Fixture.today is Friday 2025-03-14; the rota starts on Saturday.
        let sessions = try Rota.generate(templates: lines, practitioners: Self.doctors, from: Fixture.date("2025-03-15"), weeks: 2, today: Fixture.today)
        #expect(sessions.map(\.key.rawValue) == [
            "dr-wang-li/2025-03-17/morning", "dr-li-na/2025-03-19/afternoon",
            "dr-wang-li/2025-03-24/morning", "dr-li-na/2025-03-26/afternoon",
        ])
        let first = sessions[0]
        #expect(first.schedule.capacity == 24 && first.walkInReserve == 4 && first.room == "心内科 3 诊室")
        #expect(first.schedule.start.description == "08:00" && first.schedule.end.description == "12:00")
        #expect(first.schedule.feeFen == FeeTable.standard.feeFen(for: .chiefPhysician))
        #expect(sessions[1].schedule.feeFen == FeeTable.standard.feeFen(for: .residentPhysician))
        #expect(sessions[1].schedule.end.description == "17:30")
        // Seven days before, at 15:00 in Shanghai (07:00 UTC).
        #expect(first.opensAt == ISO8601DateFormatter().date(from: "2025-03-10T07:00:00Z"))
        let rule = try ReleaseRule(daysAhead: 0, time: Fixture.time("08:00"))
        let sameDay = try Rota.generate(templates: lines, practitioners: Self.doctors, from: Fixture.today, weeks: 1, today: Fixture.today, release: rule)
        #expect(sameDay[0].opensAt == ISO8601DateFormatter().date(from: "2025-03-17T00:00:00Z"))
        #expect(Rota.conflicts(sessions).isEmpty)
    }

    @Test func aRotaInThePastOrTooFarAheadOrForAnUnknownDoctorIsRefused() throws {
        let lines = [try template()]
        func make(from: String, weeks: Int = 1, doctors: [PractitionerID: Practitioner] = Self.doctors) -> ValidationError? {
            refusal { try Rota.generate(templates: lines, practitioners: doctors, from: Fixture.date(from), weeks: weeks, today: Fixture.today) }
        }
        #expect(make(from: "2025-03-13")?.code == "rota.past")
        #expect(make(from: "2025-03-14") == nil, "today is not the past")
        #expect(make(from: "2026-03-10")?.code == "rota.too_far")
        #expect(make(from: "2026-03-08") == nil, "the last date, 2026-03-14, is 365 days ahead")
        #expect(make(from: "2025-03-15", weeks: 0)?.code == "rota.weeks")
        #expect(make(from: "2025-03-15", weeks: 27)?.code == "rota.weeks")
        #expect(make(from: "2025-03-15", doctors: [:])?.code == "rota.unknown_doctor")
        #expect(refusal { try ReleaseRule(daysAhead: 61, time: Fixture.time("15:00")) }?.code == "release.days_ahead")
    }

    @Test func aDoctorOrARoomTwiceAtOnceIsAConflictAndTouchingSessionsAreNot() throws {
        let from = Fixture.date("2025-03-17")  // a Monday
        func rota(_ lines: [ClinicTemplate]) throws -> [RotaSession] {
            try Rota.generate(templates: lines, practitioners: Self.doctors, from: from, weeks: 1, today: Fixture.today)
        }
        // Dr Wang's morning runs 11:00-13:00 and his afternoon starts 12:30.
        let doctorTwice = try rota([try template(start: "11:00", capacity: 12), try template(.monday, .afternoon, room: "心内科 4 诊室", start: "12:30")])
        #expect(Rota.conflicts(doctorTwice).map(\.code) == ["rota.doctor_twice"])
        // Two lines for the same half-day: one schedule per doctor and half-day, even if the times do not overlap.
        let sameHalfDay = try rota([try template(start: "08:00", capacity: 6), try template(room: "心内科 4 诊室", start: "10:00", capacity: 6)])
        #expect(Rota.conflicts(sameHalfDay).map(\.code) == ["rota.doctor_twice"])
        // Two doctors in one room at once.
        let roomTwice = try rota([try template(start: "08:00"), try template(doctor: Self.drLi, start: "11:00", capacity: 6)])
        let conflicts = Rota.conflicts(roomTwice)
        #expect(conflicts.map(\.code) == ["rota.room_twice"])
        let conflict = try #require(conflicts.first)
        #expect(conflict.zh.contains("心内科 3 诊室") && conflict.en.contains("08:00-12:00"), "\(conflict.zh) \(conflict.en)")
        // A published session without a room (from before rooms were kept) still counts for its doctor.
        let published = SessionPlace(key: ScheduleKey(practitionerID: Fixture.drWang, date: from, halfDay: .afternoon),
                                     start: Fixture.time("13:30"), end: Fixture.time("17:30"), room: nil)
        let withPublished = Rota.conflicts(roomTwice.map(\.place) + [published])
        #expect(withPublished.map(\.code) == ["rota.room_twice"], "13:30 does not overlap a morning that ends at 12:00")
        let early = SessionPlace(key: published.key, start: Fixture.time("12:00"), end: Fixture.time("13:00"), room: nil)
        #expect(Rota.conflicts(doctorTwice.map(\.place) + [early]).map(\.code) == ["rota.doctor_twice", "rota.doctor_twice", "rota.doctor_twice"])
        // One session ends when the next starts: no conflict.
        let touching = try rota([try template(start: "08:00"), try template(.monday, .afternoon, doctor: Self.drLi, start: "12:00", capacity: 6)])
        #expect(touching.count == 2 && Rota.conflicts(touching).isEmpty)
    }
}
