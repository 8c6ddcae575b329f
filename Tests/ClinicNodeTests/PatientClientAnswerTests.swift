@testable import Drills
import Testing

@Suite struct PatientClientAnswerTests {
    /// The bench reads one string field without parsing the answer; it must agree with a full parse.
    @Test func stringFieldAgreesWithTheParsedAnswer() {
        func answer(_ text: String) -> PatientClient.Answer { PatientClient.Answer(status: 200, body: Array(text.utf8)) }
        let error = answer(#"{"code":"lease.slot_taken","message_en":"taken","message_zh":"该号已被预约"}"#)
        #expect(error.string("code") == "lease.slot_taken")
        #expect(error.string("message_zh") == "该号已被预约")
        // An escaped value, a key that is not there, a value that is not a string: as a full parse says.
        let odd = answer(#"{"id":"a\"b","n":3}"#)
        #expect(odd.string("id") == #"a"b"#)
        #expect(odd.string("n") == nil && odd.string("missing") == nil)
        #expect(answer("").string("id") == nil)
    }
}
