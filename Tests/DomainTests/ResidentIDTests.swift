import Foundation
import Testing
@testable import Domain

@Suite struct ResidentIDTests {
    // Check characters computed independently (Python, ISO 7064 MOD 11-2).
    @Test(arguments: [
        ("11010519491231002X", "110105", "1949-12-31", Sex.female),   // the example in GB 11643-1999
        ("130102199003071233", "130102", "1990-03-07", Sex.male),
        ("130104200002290029", "130104", "2000-02-29", Sex.female),   // leap day
        ("130105198506150018", "130105", "1985-06-15", Sex.male),
        ("650102197201010039", "650102", "1972-01-01", Sex.male),
        ("130102200808080001", "130102", "2008-08-08", Sex.female),  // sequence 000: even
    ])
    func acceptsValidIDs(text: String, region: String, birth: String, sex: Sex) throws {
        let id = try ResidentID(text, today: Fixture.today)
        #expect(id.value == text)
        #expect(id.regionCode == region)
        #expect(id.birthDate == Fixture.date(birth))
        #expect(id.sex == sex)
    }

    @Test func checkCharacterMatchesTheStandard() {
        #expect(ResidentID.checkCharacter(forFirst17: "11010519491231002") == "X")
        #expect(ResidentID.checkCharacter(forFirst17: "44052418800101001") == "4")
        #expect(ResidentID.checkCharacter(forFirst17: "13010219900307123") == "3")
        #expect(ResidentID.checkCharacter(forFirst17: "1301021990030712") == nil)
        #expect(ResidentID.checkCharacter(forFirst17: "1301021990030712a") == nil)
    }

    @Test func lowercaseXAndFullWidthAndSpacesAreNormalised() throws {
        #expect(try ResidentID("11010519491231002x", today: Fixture.today).value == "11010519491231002X")
        #expect(try ResidentID("  11010519491231002X\n", today: Fixture.today).value == "11010519491231002X")
        #expect(try ResidentID("１３０１０２１９９００３０７１２３３", today: Fixture.today).value == "130102199003071233")
    }

    @Test(arguments: [
        ("", "resident_id.empty"),
        ("   ", "resident_id.empty"),
        ("13010219900307123", "resident_id.length"),
        ("1301021990030712333", "resident_id.length"),
        ("130102900307123", "resident_id.length"),                 // old 15-digit number
        ("13010219900307123Y", "resident_id.characters"),
        ("1301021990-3071233", "resident_id.characters"),
        ("X30102199003071233", "resident_id.characters"),
        ("13010219900307123\u{0301}3", "resident_id.characters"),    // combining mark
        ("130102199003071234", "resident_id.check_digit"),
        ("130102199003071323", "resident_id.check_digit"),         // two digits swapped
        ("11010519491231002", "resident_id.length"),
    ])
    func refusesMalformedIDs(text: String, code: String) {
        let error = refusal { try ResidentID(text, today: Fixture.today) }
        #expect(error?.code == code)
        #expect(error?.field == "residentID")
    }

    /// Builds an ID with a correct check character around any 17 digits, to reach the rules
    /// that come after the check.
    private func withCheck(_ first17: String) -> String {
        first17 + String(ResidentID.checkCharacter(forFirst17: first17) ?? "?")
    }

    @Test func refusesRegionCodesOutsideOneToEight() {
        for first in ["0", "9"] {
            let error = refusal { try ResidentID(withCheck(first + "30102199003071" + "23"), today: Fixture.today) }
            #expect(error?.code == "resident_id.region")
        }
    }

    @Test func refusesBirthDatesThatAreNotRealPastDates() {
        let cases = [
            ("13010219900230123", "resident_id.birth_date.invalid"),   // 30 February
            ("13010219000229123", "resident_id.birth_date.invalid"),   // 1900 was not a leap year
            ("13010219901301123", "resident_id.birth_date.invalid"),   // month 13
            ("13010219900100123", "resident_id.birth_date.invalid"),   // day 0
            ("13010218991231123", "resident_id.birth_date.before_1900"),
            ("44052418800101001", "resident_id.birth_date.before_1900"), // GB 11643 example, born 1880
            ("13010220250315123", "resident_id.birth_date.future"),    // the day after `today`
        ]
        for (first17, code) in cases {
            let error = refusal { try ResidentID(withCheck(first17), today: Fixture.today) }
            #expect(error?.code == code, "\(first17)")
            #expect(error?.field == "residentID")
        }
        // Born today is fine; 2024-02-29 is a real leap day.
        #expect(refusal { try ResidentID(withCheck("13010220250314123"), today: Fixture.today) } == nil)
        #expect(refusal { try ResidentID(withCheck("13010220240229123"), today: Fixture.today) } == nil)
    }

    @Test func errorsAreBilingualAndDoNotEchoTheNumber() throws {
        let error = try #require(refusal { try ResidentID("130102199003071234", today: Fixture.today) })
        #expect(error.zh.contains("校验位"))
        #expect(error.en.contains("check character"))
        #expect(!error.description.contains("130102199003071234"))
        #expect(error.description.hasPrefix(error.zh))
    }

    @Test func makeComputesTheCheckCharacter() throws {
        let id = try ResidentID.make(regionCode: "110105", birthDate: Fixture.date("1949-12-31"), sequence: 2)
        #expect(id.value == "11010519491231002X")
        #expect(id.sex == .female)
        let male = try ResidentID.make(regionCode: "130102", birthDate: Fixture.date("1990-03-07"), sequence: 123)
        #expect(male.value == "130102199003071233")
        #expect(male.sex == .male)
        #expect(refusal { try ResidentID.make(regionCode: "13010", birthDate: Fixture.today, sequence: 1) }?.code == "resident_id.region")
        #expect(refusal { try ResidentID.make(regionCode: "930102", birthDate: Fixture.today, sequence: 1) }?.code == "resident_id.region")
        #expect(refusal { try ResidentID.make(regionCode: "130102", birthDate: Fixture.today, sequence: 1000) }?.code == "resident_id.sequence")
        #expect(refusal { try ResidentID.make(regionCode: "130102", birthDate: Fixture.date("1899-01-01"), sequence: 1) }?.code == "resident_id.birth_date.before_1900")
    }

    @Test func maskedInLogs() {
        let id = Fixture.residentID("130102199003071233")
        #expect(id.masked == "1301**********1233")
        #expect("\(id)" == id.masked)
    }

    @Test func codableKeepsTheNumberAndRechecksIt() throws {
        let id = Fixture.residentID("11010519491231002X")
        let data = try JSONEncoder().encode([id])
        #expect(String(decoding: data, as: UTF8.self) == #"["11010519491231002X"]"#)
        #expect(try JSONDecoder().decode([ResidentID].self, from: data) == [id])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([ResidentID].self, from: Data(#"["110105194912310021"]"#.utf8))
        }
    }
}
