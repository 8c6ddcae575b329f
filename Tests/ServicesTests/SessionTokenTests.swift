@testable import Services
import Crypto
import Testing

@Suite struct SessionTokenTests {
    /// A token verifies until it expires (checked again when it is known already); a changed one never does.
    @Test func tokensVerifyUntilExpiryAndNeverWhenAltered() {
        let tokens = SessionTokens(dataKey: SymmetricKey(size: .bits256))
        let patient = String(repeating: "ab", count: 32)
        let token = tokens.issue(patient: patient, expiresAtMs: 1_000)
        #expect(tokens.verify(token, nowMs: 10) == PatientSession(patient: patient, expiresAtMs: 1_000))
        #expect(tokens.verify(token, nowMs: 999) == PatientSession(patient: patient, expiresAtMs: 1_000), "known, still valid")
        #expect(tokens.verify(token, nowMs: 1_000) == nil, "known, but expired")
        var altered = Array(token.utf8)
        altered[altered.count - 1] = altered.last == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        #expect(tokens.verify(String(decoding: altered, as: UTF8.self), nowMs: 10) == nil)
        #expect(tokens.verify(token.replacingOccurrences(of: ".1000.", with: ".9000."), nowMs: 10) == nil, "a later expiry is not signed")
        let other = SessionTokens(dataKey: SymmetricKey(size: .bits256))
        #expect(other.verify(token, nowMs: 10) == nil, "another cluster's key")
    }
}
