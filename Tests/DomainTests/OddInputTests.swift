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
}
