@testable import ClinicNode
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Testing

/// Doctors signing in and out of their sessions over a real replica, with the clock held still.
@Suite("Attendance desk")
struct AttendanceDeskTests {
    let replica: Replica
    let clock = NodeClock()
    let desk: AttendanceDesk
    let rota: RotaDesk
    static let monday = try! CivilDate(year: 2025, month: 3, day: 17)

    static func ms(_ date: CivilDate, _ h: Int, _ m: Int) -> Int64 {
        Int64(ShanghaiTime.instant(date: date, time: try! LocalTime(hour: h, minute: m)).timeIntervalSince1970 * 1000)
    }

    init() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("attendance-\(UUID().uuidString).sqlite").path
        replica = try Replica.open(path: path, node: "neike", schema: NodeSchema.schema, options: Replica.Options())
        let store = ReplicaStore(replica: replica, signals: WriteSignals())
        clock.frozenAtMillis = Self.ms(try Self.monday.adding(days: -3), 10, 0)
        desk = AttendanceDesk(store: store, clock: clock, toleranceMinutes: 10)
        rota = RotaDesk(store: store, blocks: RecordedSessionBlocks(), node: "neike", clock: clock)
        try replica.write { w in
            _ = try w.insert("department", key: "neike", values: ["name": .text("内科")])
            _ = try w.insert("practitioner", key: "dr-wang-li", values: ["name": .text("王丽"), "department": .text("neike"), "title": .text("chiefPhysician")])
            _ = try w.insert("practitioner", key: "dr-li-na", values: ["name": .text("李娜"), "department": .text("neike"), "title": .text("residentPhysician")])
        }
        for (doctor, day) in [("dr-wang-li", Weekday.monday), ("dr-wang-li", .tuesday), ("dr-li-na", .monday)] {
            try rota.saveTemplate(ClinicTemplate(practitionerID: PractitionerID(doctor), weekday: day, halfDay: .morning, room: doctor, capacity: 12,
                                                 minutesPerSlot: 20, walkInReserve: 0))
        }
        _ = try rota.publish(department: "neike", from: Self.monday, weeks: 1)
    }

    @Test("a doctor signs in and out of their own session; late, absent and early sessions count in the week")
    func signInAndTheWeek() throws {
        let wang = "dr-wang-li/\(Self.monday)/morning", li = "dr-li-na/\(Self.monday)/morning"
        // Not today yet.
        clock.frozenAtMillis = Self.ms(try Self.monday.adding(days: -1), 9, 0)
        #expect(throws: StaffError.self) { try desk.signIn(wang, practitioner: "dr-wang-li") }
        clock.frozenAtMillis = Self.ms(Self.monday, 8, 25)
        let refused = #expect(throws: StaffError.self) { try desk.signIn(li, practitioner: "dr-wang-li") }
        #expect(refused?.code == "attendance.not_your_session")
        #expect(throws: StaffError.self) { try desk.signOut(wang, practitioner: "dr-wang-li") }
        let signed = try desk.signIn(wang, practitioner: "dr-wang-li")
        #expect(signed.flags == [.late], "25 minutes after 08:00")
        clock.frozenAtMillis = Self.ms(Self.monday, 9, 0)
        #expect(try desk.signIn(wang, practitioner: "dr-wang-li").attendance.signedInMs == Self.ms(Self.monday, 8, 25), "a second sign-in keeps the first")
        clock.frozenAtMillis = Self.ms(Self.monday, 11, 0)
        #expect(try desk.signOut(wang, practitioner: "dr-wang-li").flags == [.late, .leftEarly])

        // Wednesday: 王丽's Tuesday and 李娜's Monday passed without a sign-in.
        clock.frozenAtMillis = Self.ms(try Self.monday.adding(days: 2), 9, 0)
        let week = try desk.weeks(department: "neike", from: Self.monday, weeks: 1)
        let wangWeek = try #require(week.first { $0.doctor.rawValue == "dr-wang-li" })
        #expect(wangWeek.planned == 2 && wangWeek.worked == 1 && wangWeek.late == 1 && wangWeek.leftEarly == 1 && wangWeek.absent == 1)
        let liWeek = try #require(week.first { $0.doctor.rawValue == "dr-li-na" })
        #expect(liWeek.planned == 1 && liWeek.worked == 0 && liWeek.absent == 1 && liWeek.flagged.map(\.session.rawValue) == [li])
        #expect(throws: StaffError.self) { try desk.signIn(li, practitioner: "dr-li-na") }
    }
}
