import Foundation
import Domain
import Testing

@Suite("Clinical note input")
struct ClinicalNoteTests {
    func code(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as ValidationError { return e.code } catch { return "\(error)" }
    }

    @Test("a note saved before coded allergies existed still reads; the codes are kept once each, upper case")
    func olderNotesAndCodedAllergies() throws {
        let old = #"{"chiefComplaint":"咳嗽","presentIllness":"","pastHistory":"","personalHistory":"","allergies":"无","examination":"","vitals":{},"investigations":"","diagnoses":[],"plan":""}"#
        let note = try JSONDecoder().decode(ClinicalNote.self, from: Data(old.utf8))
        #expect(note.chiefComplaint == "咳嗽" && note.allergyCodes.isEmpty && !note.noKnownAllergies)
        var n = ClinicalNote()
        n.allergyCodes = ["j01c", " J01C", "F05"]
        #expect(try n.validated().allergyCodes == ["J01C", "F05"])
    }

    @Test("vital signs outside what can be measured are refused with the bounds; both pressures or neither")
    func vitals() throws {
        #expect(code { _ = try VitalSigns(temperature: 60).validated() } == "vitals.out_of_range")
        #expect(code { _ = try VitalSigns(systolic: 400, diastolic: 90).validated() } == "vitals.out_of_range")
        #expect(code { _ = try VitalSigns(systolic: 80, diastolic: 120).validated() } == "vitals.pressure_order")
        #expect(code { _ = try VitalSigns(systolic: 120).validated() } == "vitals.pressure_pair")
        #expect(code { _ = try VitalSigns(temperature: .nan).validated() } == "vitals.out_of_range")
        #expect(try VitalSigns(temperature: 36.8, pulse: 72, respiration: 18, systolic: 120, diastolic: 80, height: 170, weight: 65).validated().pulse == 72)
        do {
            _ = try VitalSigns(temperature: 60).validated()
        } catch {
            #expect(error.zh.contains("25–45") && error.en.contains("25–45"))
        }
        #expect(code { _ = try VitalSigns.parse("abc", field: "pulse") } == "vitals.not_a_number")
        #expect(try VitalSigns.parse("３６.５", field: "temperature") == 36.5, "full-width digits from a Chinese keyboard")
        #expect(try VitalSigns.parse("  ", field: "temperature") == nil)
    }

    @Test("sections are trimmed; control and invisible characters are refused; markup stays text; 200 KB at most")
    func sections() throws {
        var n = ClinicalNote()
        n.chiefComplaint = "  咳嗽 3 天<b>\r\n"
        n.presentIllness = "第一行\n\t第二行"
        let ok = try n.validated()
        #expect(ok.chiefComplaint == "咳嗽 3 天<b>" && ok.presentIllness == "第一行\n\t第二行")
        n.plan = "多饮水\u{202E}"
        #expect(code { _ = try n.validated() } == "note.characters")
        n.plan = "多饮水\u{0007}"
        #expect(code { _ = try n.validated() } == "note.characters")
        n.plan = String(repeating: "字", count: 70_000)
        #expect(code { _ = try n.validated() } == "note.too_large")
        n.plan = ""
        n.diagnoses = [Diagnosis(code: "J06.900", name: ""), Diagnosis(code: "J06.900", name: "")]
        #expect(code { _ = try n.validated() } == "note.diagnosis_twice")
    }

    @Test("a template fills empty sections, adds below written ones, fills its placeholders; it needs a name and some text")
    func templates() throws {
        var body = ClinicalNote()
        body.chiefComplaint = "【姓名】，【年龄】，咳嗽 3 天"
        body.plan = "多饮水"
        body.diagnoses = [Diagnosis(code: "J06.900", name: "")]
        let t = try NoteTemplate(name: " 上感 ", scope: .personal, department: "neike", owner: "D1", note: body).validated()
        #expect(t.name == "上感" && t.note.diagnoses.isEmpty, "a template carries no diagnoses")
        var note = ClinicalNote()
        note.plan = "休息"
        let applied = t.applied(to: note, values: ["【姓名】": "张三", "【年龄】": "30岁"])
        #expect(applied.chiefComplaint == "张三，30岁，咳嗽 3 天" && applied.plan == "休息\n多饮水")
        #expect(code { _ = try NoteTemplate(name: "", scope: .personal, department: "", owner: "D1", note: body).validated() } == "template_name.empty")
        #expect(code { _ = try NoteTemplate(name: "空", scope: .personal, department: "", owner: "D1", note: ClinicalNote()).validated() } == "template.empty")
    }
}
