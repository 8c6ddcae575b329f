import Testing
@testable import Domain

/// Odd text must be refused with an error, never trap: every parser gets every string.
@Suite struct OddInputTests {
    static let oddStrings: [String] = [
        "", " ", "\0", "\u{3000}", "\n\t", "-", "+", "+86", "0086", "x", "X", "/", "//", "///",
        "👨‍👩‍👧‍👦", "🇨🇳", "\u{202E}1234", "e\u{0301}", "\u{FEFF}13812345678",
        String(repeating: "9", count: 10_000), String(repeating: "张", count: 10_000),
        "99999999999999999999-99-99", "9999999999:99", "-1", "0000-00-00", "00:60",
        "１３８１２３４５６７８", "１１０１０５１９４９１２３１００２ｘ", "\u{FF10}\u{FF10}:\u{FF10}\u{FF10}",
        "11010519491231002X\0", "a/2025-03-07/morning/", "a/2025-03-07/morning/-01",
    ]

    @Test(arguments: oddStrings)
    func parsersRefuseWithoutTrapping(_ text: String) {
        let strict: [(String, ValidationError?)] = [
            ("ResidentID", refusal { try ResidentID(text, today: Fixture.today) }),
            ("MobileNumber", refusal { try MobileNumber(text) }),
            ("CivilDate", refusal { try CivilDate(parsing: text) }),
            ("LocalTime", refusal { try LocalTime(parsing: text) }),
            ("ScheduleKey", refusal { try ScheduleKey(rawValue: text) }),
            ("SlotKey", refusal { try SlotKey(rawValue: text) }),
            ("PatientKey", refusal { try PatientKey(hex: text) }),
        ]
        // Only the full-width mobile and the full-width resident ID are valid, each for its own parser.
        let acceptedBy = Set(strict.filter { $0.1 == nil }.map(\.0))
        switch text {
        case "１３８１２３４５６７８": #expect(acceptedBy == ["MobileNumber"])
        case "１１０１０５１９４９１２３１００２ｘ": #expect(acceptedBy == ["ResidentID"])
        default: #expect(acceptedBy.isEmpty)
        }
        // Slugs and names accept some of these ("x" is a fine slug); whatever they refuse is well-formed.
        let lenient = [
            refusal { try DepartmentID(text) },
            refusal { try Department(id: Fixture.cardiology, nameZh: text, nameEn: text) },
        ]
        for case let error? in strict.map(\.1) + lenient {
            #expect(!error.zh.isEmpty && !error.en.isEmpty && !error.code.isEmpty && !error.field.isEmpty)
        }
    }

    /// Names are bounded in Unicode scalars (one "character" can carry any number of combining
    /// marks) and refuse what is invisible or turns text around; names as ID cards print them pass.
    @Test(arguments: [
        ("a" + String(repeating: "\u{0301}", count: 20_000), "name.length"),
        ("张" + String(repeating: "\u{0300}", count: 50), "name.length"),
        (String(repeating: "张", count: 10_000), "name.length"),
        ("张\u{202E}三", "name.invisible"), ("张\u{202A}三", "name.invisible"), ("张\u{2067}三", "name.invisible"),
        ("张\u{200E}三", "name.invisible"), ("张\u{200F}三", "name.invisible"), ("张\u{061C}三", "name.invisible"),
        ("张\u{200B}三", "name.invisible"), ("张\u{200C}三", "name.invisible"), ("张\u{200D}三", "name.invisible"),
        ("张\u{2060}三", "name.invisible"), ("\u{FEFF}张三", "name.invisible"), ("张\u{00AD}三", "name.invisible"),
        ("张\u{3164}三", "name.invisible"), ("张\u{E0041}三", "name.invisible"),
        ("张\u{0085}三", "name.characters"), ("张\u{2028}三", "name.characters"), ("张\u{0000}三", "name.characters"),
    ])
    func namesRefuseHiddenAndUnboundedText(name: String, code: String) throws {
        let id = Fixture.residentID("11010519491231002X")
        let error = refusal { try Patient(name: name, sex: id.sex, birthDate: id.birthDate, residentID: id, mobile: try MobileNumber("13812345678")) }
        #expect(error?.code == code && error?.field == "name")
        #expect(error.map { !$0.zh.isEmpty && !$0.en.isEmpty } == true)
        // Messages name the character by its code point, never by the name itself.
        #expect(error.map { !$0.zh.contains(name) && !$0.en.contains(name) } == true)
    }

    @Test func minorityNamesKeepTheIDCardsMiddleDot() throws {
        let id = Fixture.residentID("11010519491231002X")
        func name(_ text: String) throws -> String {
            try Patient(name: text, sex: id.sex, birthDate: id.birthDate, residentID: id, mobile: try MobileNumber("13812345678")).name
        }
        #expect(try name("阿依古丽·买买提") == "阿依古丽\u{00B7}买买提")
        for lookAlike in ["\u{2022}", "\u{2027}", "\u{2219}", "\u{22C5}", "\u{30FB}", "\u{FF65}"] {
            #expect(try name("阿依古丽" + lookAlike + "买买提") == "阿依古丽\u{00B7}买买提")
        }
        #expect(try name("e\u{0301}" + String(repeating: "张", count: 49)).unicodeScalars.count == 50, "composed before counting")
        #expect(try name("Zhang Wei") == "Zhang Wei")
    }
}
