@testable import ClinicNode
import Crypto
import Domain
import Foundation
import Logging
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Testing

/// The outpatient note over two real replicas synced by hand, so a network partition is exact:
/// versions, signing, amendments, two saves at once on two nodes, entered-in-error.
@Suite("Outpatient notes")
struct RecordDeskTests {
    let a: Replica, b: Replica
    let deskA: RecordDesk, deskB: RecordDesk
    let clock = NodeClock()
    static let visit = "h000000000000000000000001"
    static let doctor = RecordAuthor(staff: "D001", name: "王丽", practitioner: "dr-wang-li")

    init() throws {
        let catalogue = try DiagnosisCatalogue.shipped.get()
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: SymmetricKey(size: .bits256))
        func open(_ node: String) throws -> Replica {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("record-\(node)-\(UUID().uuidString).sqlite").path
            return try Replica.open(path: path, node: node, schema: NodeSchema.schema, options: options)
        }
        a = try open("neike")
        b = try open("waike")
        deskA = RecordDesk(store: ReplicaStore(replica: a, signals: WriteSignals()), clock: clock, floor: nil, node: "neike", catalogue: catalogue)
        deskB = RecordDesk(store: ReplicaStore(replica: b, signals: WriteSignals()), clock: clock, floor: nil, node: "waike", catalogue: catalogue)
        try a.write { w in
            _ = try w.insert("encounter", key: Self.visit, values: [
                "patient": .text("p1"), "session": .text("dr-wang-li/2027-03-01/morning"), "department": .text("neike"),
                "practitioner": .text("dr-wang-li"), "date": .text("2027-03-01"), "opened_by": .text("D001"), "opened_ms": .integer(1),
            ])
        }
        try sync()
    }

    func sync() throws {
        for (from, to) in [(a, b), (b, a)] { try to.apply(try from.changes(since: try to.versionVector(), limit: 10_000)) }
    }

    static func note(_ complaint: String, diagnoses: [String] = []) -> ClinicalNote {
        var n = ClinicalNote()
        n.chiefComplaint = complaint
        n.diagnoses = diagnoses.map { Diagnosis(code: $0, name: "") }
        return n
    }

    func refusal(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as StaffError { return e.code } catch { return "\(error)" }
    }

    @Test("every save is a new version; a signed note changes only by an amendment with a reason; bad input saves nothing")
    func versionsAndSigning() throws {
        let v1 = try deskA.save(Self.visit, note: Self.note("咳嗽 3 天"), base: "", settles: [], action: .save, reason: "", by: Self.doctor)
        #expect(v1.kind == .draft && v1.node == "neike" && v1.hlc > 0 && v1.parent == "")
        #expect(refusal { _ = try deskA.save(Self.visit, note: Self.note("again"), base: "", settles: [], action: .save, reason: "", by: Self.doctor) } == "record.stale")
        #expect(refusal { _ = try deskA.save(Self.visit, note: Self.note("x", diagnoses: ["Q99.999x999"]), base: v1.key, settles: [], action: .save, reason: "", by: Self.doctor) }
            == "record.unknown_diagnosis")
        var hot = Self.note("发热")
        hot.vitals.temperature = 60
        #expect(refusal { _ = try deskA.save(Self.visit, note: hot, base: v1.key, settles: [], action: .save, reason: "", by: Self.doctor) } == "vitals.out_of_range")
        #expect(refusal { _ = try deskA.save(Self.visit, note: Self.note("咳嗽"), base: v1.key, settles: [], action: .sign, reason: "", by: Self.doctor) } == "record.no_diagnosis")
        #expect(try deskA.versions(of: Self.visit).count == 1, "nothing refused was saved")

        let signed = try deskA.save(Self.visit, note: Self.note("咳嗽 3 天 <script>alert(1)</script>", diagnoses: ["j06.900"]), base: v1.key, settles: [],
                                    action: .sign, reason: "", by: Self.doctor)
        #expect(signed.kind == .signed && signed.parent == v1.key)
        #expect(signed.note.diagnoses == [Diagnosis(code: "J06.900", name: "急性上呼吸道感染")], "the code as the catalogue spells it, with its name")
        #expect(signed.note.chiefComplaint.contains("<script>"), "markup is kept as text; pages escape it")
        #expect(refusal { _ = try deskA.save(Self.visit, note: Self.note("改"), base: signed.key, settles: [], action: .save, reason: "", by: Self.doctor) } == "record.reason")
        let amended = try deskA.save(Self.visit, note: Self.note("咳嗽 5 天", diagnoses: ["J06.900"]), base: signed.key, settles: [], action: .save,
                                     reason: "病程天数笔误", by: Self.doctor)
        #expect(amended.kind == .amendment && amended.reason == "病程天数笔误")

        try sync()
        let there = try deskB.visit(Self.visit)
        #expect(there.versions.map(\.key) == [v1.key, signed.key, amended.key] && there.locked && there.concurrentLeaves.isEmpty)

        var huge = Self.note(String(repeating: "咳", count: 70_000))
        huge.diagnoses = [Diagnosis(code: "J06.900", name: "")]
        #expect(refusal { _ = try deskA.save(Self.visit, note: huge, base: amended.key, settles: [], action: .save, reason: "超长测试", by: Self.doctor) } == "note.too_large")
    }

    @Test("two saves at once on two cut-off nodes are both kept and flagged until the author saves over them; entered-in-error keeps everything")
    func concurrentSavesAndEnteredInError() throws {
        let v1 = try deskA.save(Self.visit, note: Self.note("头痛"), base: "", settles: [], action: .save, reason: "", by: Self.doctor)
        try sync()
        // Cut off from each other, both save over v1.
        let onA = try deskA.save(Self.visit, note: Self.note("头痛 2 天"), base: v1.key, settles: [], action: .save, reason: "", by: Self.doctor)
        let onB = try deskB.save(Self.visit, note: Self.note("头痛伴发热"), base: v1.key, settles: [], action: .save, reason: "", by: Self.doctor)
        try sync()
        let seenA = try deskA.visit(Self.visit), seenB = try deskB.visit(Self.visit)
        #expect(Set(seenA.concurrentLeaves.map(\.key)) == [onA.key, onB.key] && Set(seenB.concurrentLeaves.map(\.key)) == [onA.key, onB.key])
        #expect(seenA.current?.key == seenB.current?.key, "both nodes show the same version as current")
        #expect(seenA.versions.count == 3, "nothing merged, nothing dropped")

        // The author looks at both and saves one version over them.
        let current = try #require(seenB.current)
        let settled = try deskB.save(Self.visit, note: Self.note("头痛 2 天伴发热"), base: current.key, settles: seenB.concurrentLeaves.map(\.key),
                                     action: .save, reason: "", by: Self.doctor)
        try sync()
        #expect(try deskA.visit(Self.visit).concurrentLeaves.isEmpty && settled.settles.count == 1)

        #expect(refusal { _ = try deskA.enterInError(Self.visit, reason: "", by: Self.doctor) } == "record.reason")
        let void = try deskA.enterInError(Self.visit, reason: "写错了患者", by: Self.doctor)
        #expect(void.kind == .enteredInError && void.note == settled.note)
        #expect(refusal { _ = try deskA.save(Self.visit, note: Self.note("再改"), base: void.key, settles: [], action: .save, reason: "再改一下", by: Self.doctor) }
            == "record.entered_in_error")
        #expect(try deskA.versions(of: Self.visit).count == 5)
    }

    @Test("saved phrases: a doctor's own, oldest first, each once; empty or invisible characters refused; another's cannot be retired")
    func phrases() throws {
        let library = TemplateDesk(store: deskA.store, clock: clock)
        let first = try library.savePhrase("多饮水，注意休息", owner: "D001")
        _ = try library.savePhrase("1 周后复诊", owner: "D001")
        #expect(refusal { _ = try library.savePhrase("  ", owner: "D001") } == "phrase.empty")
        #expect(refusal { _ = try library.savePhrase("多饮水，注意休息", owner: "D001") } == "phrase.exists")
        #expect(refusal { _ = try library.savePhrase("复\u{200B}诊", owner: "D001") } == "result.characters")
        #expect(try library.phrases(of: "D001").map(\.text) == ["多饮水，注意休息", "1 周后复诊"])
        #expect(refusal { try library.retirePhrase(first, owner: "D002") } == "phrase.not_found")
        try library.retirePhrase(first, owner: "D001")
        #expect(try library.phrases(of: "D001").map(\.text) == ["1 周后复诊"] && library.phrases(of: "D002").isEmpty)
    }

    @Test("the timeline lists visits newest first; a new note starts with the last note's history, allergies and diagnoses")
    func carriedForward() throws {
        var first = Self.note("腹痛", diagnoses: ["K29.700"])
        first.allergies = "青霉素过敏"
        first.pastHistory = "高血压 5 年"
        first.allergyCodes = ["j01c", "F05"]
        first.noKnownAllergies = true
        #expect(refusal { _ = try deskA.save(Self.visit, note: first, base: "", settles: [], action: .sign, reason: "", by: Self.doctor) } == "note.allergy_conflict")
        first.noKnownAllergies = false
        first.allergyCodes.append("X99")
        #expect(refusal { _ = try deskA.save(Self.visit, note: first, base: "", settles: [], action: .sign, reason: "", by: Self.doctor) } == "record.unknown_allergen")
        first.allergyCodes.removeLast()
        let saved = try deskA.save(Self.visit, note: first, base: "", settles: [], action: .sign, reason: "", by: Self.doctor)
        try a.write { w in
            _ = try w.insert("encounter", key: "h000000000000000000000002", values: [
                "patient": .text("p1"), "department": .text("neike"), "practitioner": .text("dr-wang-li"), "date": .text("2027-03-08"), "opened_ms": .integer(2),
            ])
        }
        let carried = try deskA.carriedForward(patient: "p1", before: "h000000000000000000000002")
        #expect(carried.note.allergies == "青霉素过敏" && carried.note.pastHistory == "高血压 5 年" && carried.note.chiefComplaint.isEmpty)
        #expect(carried.note.allergyCodes == ["J01C", "F05"], "coded allergies carried forward, as the list spells them")
        #expect(carried.lastDiagnoses == saved.note.diagnoses && carried.lastDate == "2027-03-01")
        #expect(try deskA.timeline(patient: "p1").map(\.encounter.id) == ["h000000000000000000000002", Self.visit])
    }

    @Test("the department search finds current notes by two to four characters, diagnosis, doctor and dates, merged ones too; one patient's search scans their notes")
    func search() throws {
        let index = try RecordIndex(path: FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString).sqlite").path,
                                    store: ReplicaStore(replica: a, signals: WriteSignals()),
                                    changes: { [a] marks in try a.changedKeys("note_version", after: marks, limit: 7) }, logger: Logger(label: "test"))
        let desk = RecordDesk(store: ReplicaStore(replica: a, signals: WriteSignals()), clock: clock, floor: nil, index: index, node: "neike", catalogue: deskA.catalogue)
        func visit(_ n: Int, patient: String, doctor: String, date: String) throws -> String {
            let id = "h" + String(format: "%024d", 100 + n)
            try a.write { w in
                _ = try w.insert("encounter", key: id, values: ["patient": .text(patient), "department": .text("neike"), "practitioner": .text(doctor),
                                                              "date": .text(date), "opened_ms": .integer(Int64(n))])
            }
            return id
        }
        let cough = try visit(1, patient: "p1", doctor: "dr-wang-li", date: "2027-03-01")
        let fever = try visit(2, patient: "p2", doctor: "dr-li-na", date: "2027-03-05")
        let both = try visit(3, patient: "p1", doctor: "dr-li-na", date: "2027-04-01")
        _ = try deskA.save(cough, note: Self.note("咳嗽三天，咽痛", diagnoses: ["J06.900"]), base: "", settles: [], action: .sign, reason: "", by: Self.doctor)
        _ = try deskA.save(fever, note: Self.note("发热一天", diagnoses: ["J20.900"]), base: "", settles: [], action: .sign, reason: "", by: Self.doctor)
        try sync()
        // Written on the other node, merged here: searchable the same.
        _ = try deskB.save(both, note: Self.note("咳嗽伴发热 COVID 检测阴性", diagnoses: ["J20.900"]), base: "", settles: [], action: .save, reason: "", by: Self.doctor)
        try sync()
        try index.catchUp()
        #expect(try index.count() == 3)

        func found(_ q: NoteQuery) throws -> Set<String> { Set(try desk.search(q).map(\.encounter.id)) }
        #expect(try found(NoteQuery(department: "neike", words: "咳嗽")) == [cough, both], "a two-character word")
        #expect(try found(NoteQuery(department: "neike", words: "咳嗽三天")) == [cough], "a four-character phrase, in order")
        #expect(try found(NoteQuery(department: "neike", words: "三天咳嗽")).isEmpty, "the same characters in another order are another phrase")
        #expect(try found(NoteQuery(department: "neike", words: "发热", diagnosis: "j20.900")) == [fever, both])
        #expect(try found(NoteQuery(department: "neike", words: "covid")) == [both], "a Latin word, any case")
        #expect(try found(NoteQuery(department: "neike", words: "发热", practitioner: "dr-li-na", from: "2027-04-01")) == [both])
        #expect(try found(NoteQuery(department: "waike", words: "咳嗽")).isEmpty, "another department's search sees none of them")
        let snippet = try #require(try desk.search(NoteQuery(department: "neike", words: "咽痛")).first?.snippet)
        #expect(snippet.contains { $0.found && $0.text == "咽痛" })

        // An amendment replaces the indexed note; entered-in-error takes it out.
        let current = try #require(try deskA.visit(cough).current)
        _ = try deskA.save(cough, note: Self.note("干咳一周", diagnoses: ["J06.900"]), base: current.key, settles: [], action: .save, reason: "更正病程", by: Self.doctor)
        _ = try deskA.enterInError(fever, reason: "录错患者", by: Self.doctor)
        try index.catchUp()
        #expect(try found(NoteQuery(department: "neike", words: "咳嗽")) == [both])
        #expect(try found(NoteQuery(department: "neike", words: "干咳")) == [cough])
        #expect(try found(NoteQuery(department: "neike", words: "发热")) == [both])
        #expect(refusal { _ = try desk.search(NoteQuery(department: "neike")) } == "record.search_empty")
        #expect(refusal { _ = try desk.search(NoteQuery(department: "neike", diagnosis: "X00.000x000")) } == "record.unknown_diagnosis")

        #expect(try desk.search(patient: "p1", words: "发热").map(\.encounter.id) == [both])
        // Rebuilt from the change log, it says the same.
        try index.rebuild()
        #expect(try index.count() == 2 && found(NoteQuery(department: "neike", words: "干咳")) == [cough])
    }

    @Test("the FHIR export: Patient first, then each visit's Encounter, Composition, Conditions and vital-sign Observations")
    func export() throws {
        var note = Self.note("咳嗽 <b>3</b> 天", diagnoses: ["J06.900"])
        note.vitals = VitalSigns(temperature: 37.8, systolic: 130, diastolic: 85)
        _ = try deskA.save(Self.visit, note: note, base: "", settles: [], action: .sign, reason: "", by: Self.doctor)
        let bundle = RecordExport.bundle(patientKey: "p1", patient: ["name": .text("张三"), "sex": .text("male"), "birth_date": .text("1980-01-02")],
                                         visits: try deskA.timeline(patient: "p1"), departmentNames: ["neike": "内科"], doctorNames: [:], generatedMs: 0)
        let entries = try #require(bundle["entry"] as? [[String: Any]])
        let resources = entries.compactMap { $0["resource"] as? [String: Any] }
        #expect(resources.map { $0["resourceType"] as? String ?? "" } == ["Patient", "Encounter", "Composition", "Condition", "Observation", "Observation"])
        #expect((resources[0]["gender"] as? String) == "male" && resources[0]["identifier"] == nil, "no resident ID in the export")
        let json = String(decoding: try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        #expect(json.contains("\"8310-5\"") && json.contains("\"85354-9\"") && json.contains("\"8480-6\"") && json.contains("J06.900"))
        #expect(json.contains("&lt;b&gt;3&lt;/b&gt;") && !json.contains("<b>3"), "note text is escaped in the XHTML narrative")
        #expect((resources[2]["status"] as? String) == "final")
    }
}
