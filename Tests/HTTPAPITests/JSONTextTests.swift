@testable import Services
@testable import HTTPAPI
import Foundation
import Testing

@Suite struct JSONTextTests {
    /// The hand-written answers decode with JSONDecoder to the same values, odd strings included.
    @Test func answersDecodeToTheSameValues() throws {
        let slot = SlotResource(
            id: "s/1", schedule: "s", department: "neike", departmentName: "内科 \"总院\"", practitioner: "p\\1",
            practitionerName: "王\n医生\t\u{1}", title: nil, titleZh: nil, date: "2026-12-03", halfDay: "morning",
            start: "08:00", end: "08:10", status: "free", opensAtMs: 1_764_745_200_000)
        let slots = SlotsAnswer(slots: [slot, slot])
        #expect(try JSONDecoder().decode(SlotsAnswer.self, from: Data(JSONText.encode(slots))).slots == slots.slots)
        let appointment = AppointmentResource(
            id: "h1.2.YQ", status: "pending", statusZh: "待确认", slot: "s/3", department: nil, practitioner: "p",
            practitionerName: nil, date: nil, start: nil, end: nil, holdUntilMs: 5, payment: "insurance", node: "neike")
        let list = AppointmentsAnswer(appointments: [appointment])
        #expect(try JSONDecoder().decode(AppointmentsAnswer.self, from: Data(JSONText.encode(list))).appointments == [appointment])
        #expect(try JSONDecoder().decode(AppointmentsAnswer.self, from: Data(JSONText.encode(AppointmentsAnswer(appointments: [])))).appointments.isEmpty)
        let error = PatientError.notOnRecord
        #expect(try JSONDecoder().decode(PatientError.self, from: Data(JSONText.encode(error))) == error)
    }
}
