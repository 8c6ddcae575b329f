import Testing
@testable import Domain

@Suite struct MobileNumberTests {
    @Test(arguments: [
        "13812345678", "+8613812345678", "+86 138 1234 5678", "0086-138-1234-5678",
        "138-1234-5678", " 13812345678 ", "１３８１２３４５６７８", "+86\u{3000}13812345678",
    ])
    func normalisesToElevenDigits(_ text: String) throws {
        #expect(try MobileNumber(text).digits == "13812345678")
    }

    @Test func acceptsEveryPrefixThirteenToNineteen() throws {
        for second in 3...9 {
            #expect(try MobileNumber("1\(second)012345678").digits == "1\(second)012345678")
        }
    }

    @Test(arguments: [
        ("", "mobile.empty"),
        (" - ", "mobile.empty"),
        ("1381234567", "mobile.length"),
        ("138123456789", "mobile.length"),
        ("+861381234567", "mobile.length"),
        ("12812345678", "mobile.prefix"),
        ("03111234567", "mobile.prefix"),        // a Shijiazhuang landline
        ("23812345678", "mobile.prefix"),
        ("1381234567a", "mobile.characters"),
        ("(138)12345678", "mobile.characters"),
        ("138.1234.5678", "mobile.characters"),
        ("+1 415 555 0100", "mobile.country_code"),
        ("00852 9123 4567", "mobile.country_code"),
        ("99999999999999999999999999999999999", "mobile.length"),
    ])
    func refusals(text: String, code: String) {
        let error = refusal { try MobileNumber(text) }
        #expect(error?.code == code)
        #expect(error?.field == "mobile")
    }

    @Test func maskedForLogs() throws {
        let mobile = try MobileNumber("13812345678")
        #expect(mobile.masked == "138****5678")
        #expect("\(mobile)" == "138****5678")
    }
}
