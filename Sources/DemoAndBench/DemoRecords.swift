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
        try seedResults(node, visits: visits)
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

    /// A blood count ordered at every other past visit; where the catalogue has published ranges
    /// for the patient's sex and age, the lab's report (made-up values, some outside the range)
    /// an hour later; otherwise the order still waits on the lab's worklist.
    static func seedResults(_ node: MeshNode, visits: [(encounter: Encounter, note: ClinicalNote, author: RecordAuthor)]) throws {
        guard let orders = node.orders, let records = node.records, let cbc = orders.catalogue.item("L001") else { return }
        let technician = DemoStaff.members(of: "neike").first { $0.roles.contains(.labTechnician) }
        let lab = RecordAuthor(staff: technician?.number ?? "LAB01", name: technician?.name ?? "", practitioner: "")
        for (i, v) in visits.enumerated() where i % 2 == 0 {
            let id = "ord-\(v.encounter.id)"
            guard try orders.order(id) == nil else { continue }
            let visit = try records.visit(v.encounter.id)
            _ = try orders.place(visit, item: cbc.code, clinical: "", by: v.author, id: id, atMs: v.encounter.openedMs + 600_000)
            let patient = try node.replica.liveRow("patient", key: v.encounter.patient) ?? [:]
            let sex = patient["sex"]?.textValue ?? ""
            let age = CivilDate.age(birthDate: patient["birth_date"]?.textValue, on: v.encounter.date)
            let observations = cbc.analytes.enumerated().compactMap { n, a -> Observation? in
                guard let range = ReferenceRange(a.range(sex: sex, age: age)), let low = range.low, let high = range.high else { return nil }
                // A spread of -10 % to 110 % of the range: now and then a value outside it.
                let fraction = Double((i * 7 + n * 13) % 13) / 10 - 0.1
                let value = low + (high - low) * fraction
                return Observation(code: a.code, name: a.zh, value: String(format: high >= 100 ? "%.0f" : "%.1f", value), unit: a.unit, range: a.range(sex: sex, age: age))
            }
            guard !observations.isEmpty else { continue }
            try orders.report([ReportDraft(order: id, observations: observations, source: "page")], by: lab, atMs: v.encounter.openedMs + 3_600_000)
        }
    }
}
