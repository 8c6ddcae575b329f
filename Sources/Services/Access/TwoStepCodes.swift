import Foundation
import HummingbirdOTP

/// Two-step sign-in codes: RFC 6238 time-based one-time passwords (6 digits, 30 s steps,
/// HMAC-SHA1), the kind every authenticator app reads, computed by hummingbird-auth's `TOTP`.
package enum TwoStepCodes {
    static let stepSeconds: Int64 = 30
    /// Steps either side of now that are still accepted: a phone's clock may be a little off.
    static let driftSteps: Int64 = 1
    static let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    static let secretLength = 32

    /// A new shared secret: 32 characters of the base32 alphabet (160 random bits). The HMAC key
    /// is the secret's bytes, so an app is given their base32 form (`setupKey`).
    package static func newSecret() -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<secretLength).map { _ in secretAlphabet[Int.random(in: 0..<secretAlphabet.count, using: &rng)] })
    }

    /// Whether `secret` is one `newSecret` could have made (a form sends it back).
    package static func isWellFormed(_ secret: String) -> Bool {
        secret.count == secretLength && secret.allSatisfy { secretAlphabet.contains($0) }
    }

    /// The `otpauth://` address an authenticator app scans or opens.
    package static func authenticatorURL(secret: String, staffNumber: String) -> String {
        TOTP(secret: secret).createAuthenticatorURL(label: "ClinicMesh:\(staffNumber)", issuer: "ClinicMesh")
    }

    /// The key typed into an app by hand: the secret's bytes in base32, in groups of four.
    package static func setupKey(secret: String) -> String {
        let url = authenticatorURL(secret: secret, staffNumber: "-")
        let key = URLComponents(string: url)?.queryItems?.first { $0.name == "secret" }?.value ?? ""
        return stride(from: 0, to: key.count, by: 4).map { start in
            let from = key.index(key.startIndex, offsetBy: start)
            return String(key[from..<(key.index(from, offsetBy: 4, limitedBy: key.endIndex) ?? key.endIndex)])
        }.joined(separator: " ")
    }

    /// The time step `code` is valid for, within `driftSteps` of now; nil if it matches none.
    package static func matchingStep(code: String, secret: String, nowMs: Int64) -> Int64? {
        let digits = code.filter { !$0.isWhitespace }
        guard digits.count == 6, digits.allSatisfy(\.isASCII), let value = Int(digits) else { return nil }
        let totp = TOTP(secret: secret)
        let now = nowMs / 1000 / stepSeconds
        for step in (now - driftSteps)...(now + driftSteps)
        where totp.compute(date: Date(timeIntervalSince1970: TimeInterval(step * stepSeconds))) == value {
            return step
        }
        return nil
    }

    /// The code for the step holding `nowMs`, as an app shows it (the tests sign in with it).
    package static func code(secret: String, nowMs: Int64) -> String {
        let value = TOTP(secret: secret).compute(date: Date(timeIntervalSince1970: TimeInterval(nowMs / 1000 / stepSeconds * stepSeconds)))
        let text = String(value)
        return String(repeating: "0", count: max(0, 6 - text.count)) + text
    }
}
