import Domain
@testable import Services
import Testing

@Suite("Diagnosis catalogue and note differences")
struct DiagnosisCatalogueTests {
    @Test("the shipped ICD-10 catalogue is found by code, by Chinese name and by pinyin initials")
    func search() throws {
        let c = try DiagnosisCatalogue.shipped.get()
        #expect(c.entries.count >= 2_000)
        #expect(c.entry(code: "j06.900")?.name == "急性上呼吸道感染")
        #expect(c.entry(code: "X99.999x999") == nil)
        #expect(c.search("J06.9").first?.code == "J06.900", "a code's beginning, shortest first")
        #expect(c.search("上呼吸道感染").contains { $0.code == "J06.900" })
        #expect(c.search("shxdgr").contains { $0.code == "J06.900" }, "pinyin initials of 上呼吸道感染 inside 急性上呼吸道感染")
        #expect(c.search("jxzqgy").first?.name.hasPrefix("急性支气管炎") == true)
        #expect(c.search("").isEmpty && c.search(String(repeating: "a", count: 41)).isEmpty)
    }

    @Test("a line diff keeps common lines and shows what was removed and added")
    func diff() {
        let lines = NoteDiff.lines("咳嗽 3 天\n无发热\n食欲可", "咳嗽 5 天\n无发热\n食欲可\n睡眠差")
        #expect(lines.map(\.kind) == [.added, .removed, .same, .same, .added] || lines.map(\.kind) == [.removed, .added, .same, .same, .added])
        #expect(lines.filter { $0.kind == .same }.map(\.text) == ["无发热", "食欲可"])
        var a = ClinicalNote(), b = ClinicalNote()
        a.plan = "多饮水"
        b.plan = "多饮水"
        b.vitals.temperature = 38.5
        let sections = NoteDiff.sections(a, b)
        #expect(sections.map(\.zh) == ["生命体征"])
    }

    @Test("search text: Chinese in pairs, Latin words whole; a query is the phrase of its pairs")
    func searchText() {
        #expect(SearchText.indexTokens("咳嗽3天，COVID-19阴性") == "咳嗽 3 天 covid 19 阴性")
        #expect(SearchText.matchQuery("咳嗽三天") == "\"咳嗽 嗽三 三天\"")
        #expect(SearchText.matchQuery("咳 covid") == "\"咳\"* AND \"covid\"*")
        #expect(SearchText.matchQuery("\"*()") == nil, "FTS syntax typed is no query")
        let pieces = SearchText.snippet("患者三天前受凉后咳嗽，伴咽痛", terms: ["咳嗽"])
        #expect(pieces.map(\.text).joined() == "患者三天前受凉后咳嗽，伴咽痛" && pieces.filter(\.found).map(\.text) == ["咳嗽"])
    }
}
