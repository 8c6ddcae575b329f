import ClinicNode
import Domain
import Foundation
import Services

/// The demo's outpatient record: past visits of the patients this node has, each with a signed
/// note (made-up text, `SyntheticNotes`) by one of the department's demo doctors, and two
/// department templates kept by the department head. Written once: a visit or template already
/// there is left as it is.
enum DemoRecords {
    static func seed(_ node: MeshNode, department: String) throws -> (visits: Int, templates: Int) {
        guard let desk = node.records else { return (0, 0) }
        let doctors = DemoStaff.members(of: department).filter { !$0.practitioner.isEmpty }
        guard !doctors.isEmpty else { return (0, 0) }
        let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(node.clock.wallMillis()) / 1000)).date
        let patients = try node.replica.liveRows("patient").keys.sorted().prefix(20)
        var visits: [(encounter: Encounter, note: ClinicalNote, author: RecordAuthor)] = []
        for (p, patient) in patients.enumerated() {
            for v in 0..<(1 + p % 3) {
                let index = p * 3 + v
                let doctor = doctors[index % doctors.count]
                let day = try today.adding(days: -(14 + 37 * v + p))
                let openedMs = Int64(ShanghaiTime.instant(date: day, time: try LocalTime(hour: 9, minute: 30)).timeIntervalSince1970 * 1000)
                let e = Encounter(id: "demo-\(department)-\(patient.prefix(12))-\(v)", patient: patient, session: "", department: department,
                                  practitioner: doctor.practitioner, date: day.description, openedBy: doctor.number, openedMs: openedMs)
                visits.append((e, SyntheticNotes.note(index: index, seed: 2026, catalogue: desk.catalogue),
                               RecordAuthor(staff: doctor.number, name: doctor.name, practitioner: doctor.practitioner)))
            }
        }
        let written = try desk.importSigned(visits)
        var templates = 0
        let head = doctors[0]
        let library = TemplateDesk(store: desk.store, clock: node.clock)
        let existing = Set(try library.visible(to: head.number, departments: [department]).map(\.template.name))
        for (name, complaint, examination, plan) in [
            ("上呼吸道感染复诊", "【姓名】，【年龄】，咳嗽、咽痛 3 天", "咽部充血，双肺呼吸音清，未闻及干湿啰音。", "多饮水，注意休息；不适随诊。"),
            ("慢病随访", "【姓名】，【年龄】，定期随访", "神志清，精神可，双下肢无水肿。", "继续目前治疗，按时复诊。"),
        ] where !existing.contains(name) {
            var note = ClinicalNote()
            note.chiefComplaint = complaint
            note.examination = examination
            note.plan = plan
            _ = try library.save(NoteTemplate(name: name, scope: .department, department: department, owner: head.number, note: note))
            templates += 1
        }
        return (written, templates)
    }
}
