import Domain
import Testing

@Suite("Session change requests checked by themselves")
struct SessionChangeRequestTests {
    let today = try! CivilDate(parsing: "2027-03-01")
    var key: ScheduleKey { ScheduleKey(practitionerID: try! PractitionerID("dr-qian"), date: try! CivilDate(parsing: "2027-03-03"), halfDay: .morning) }

    func code(_ body: () throws(ValidationError) -> SessionChange) -> String? {
        do { _ = try body(); return nil } catch { return error.code }
    }

    @Test("each kind asks for what it needs, and only that is kept")
    func kinds() throws {
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .stop, session: key, reason: "  ", today: today) } == "reason.empty")
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .substitute, session: key, reason: "出差", today: today) } == "change.substitute_missing")
        #expect(code { () throws(ValidationError) in
            try SessionChange(kind: .substitute, session: key, reason: "出差", substitute: PractitionerID("dr-qian"), today: today)
        } == "change.substitute_self")
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .addSlots, session: key, reason: "患者多", extraSlots: 0, today: today) } == "change.extra_slots")
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .addSlots, session: key, reason: "患者多", extraSlots: 101, today: today) } == "change.extra_slots")
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .move, session: key, reason: "调整", today: today) } == "change.move_missing")
        let stop = try SessionChange(kind: .stop, session: key, reason: "外出会诊", substitute: PractitionerID("dr-sun"), extraSlots: 5, today: today)
        #expect(stop.substitute == nil && stop.extraSlots == 0 && stop.moveTo == nil, "a stop keeps nothing the other kinds ask for")
    }

    @Test("no change to a past session, no move into the past, to the same half-day, or beyond a year")
    func dates() throws {
        let past = ScheduleKey(practitionerID: try PractitionerID("dr-qian"), date: try CivilDate(parsing: "2027-02-28"), halfDay: .morning)
        #expect(code { () throws(ValidationError) in try SessionChange(kind: .stop, session: past, reason: "外出", today: today) } == "change.past")
        func move(_ date: String, _ half: HalfDay) throws -> String? {
            let to = SessionMove(date: try CivilDate(parsing: date), halfDay: half, start: nil)
            return code { () throws(ValidationError) in try SessionChange(kind: .move, session: key, reason: "调整", moveTo: to, bookings: .move, today: today) }
        }
        #expect(try move("2027-02-27", .morning) == "rota.past")
        #expect(try move("2028-03-05", .morning) == "rota.too_far")
        #expect(try move("2027-03-03", .morning) == "change.move_same_half_day")
        #expect(try move("2027-03-03", .afternoon) == nil)
    }
}
