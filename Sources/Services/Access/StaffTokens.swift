import Crypto
import Domain
import Foundation

/// A signed-in staff member's session as its cookie carries it. The cookie is signed with a key
/// derived from the cluster data key (kept outside the database), so every node accepts it; it
/// carries its own idle deadline, set by the node that issued or last renewed it.
package struct StaffSession: Sendable, Hashable {
    package var staff: String
    /// Random, 16 hex digits: what a sign-out revokes (`staff_session_end`).
    package var id: String
    package var issuedAtMs: Int64
    package var expiresAtMs: Int64
}

package final class StaffTokens: Sendable {
    package enum Check: Equatable, Sendable {
        case valid(StaffSession)
        case expired
        case invalid
    }

    private let key: SymmetricKey

    package init(dataKey: SymmetricKey) {
        key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data("clinicmesh staff session v1".utf8), using: dataKey))
    }

    package static func newSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(format: "%016llx", rng.next() as UInt64)
    }

    package func cookie(_ s: StaffSession) -> String {
        "cs1.\(s.staff).\(s.id).\(s.issuedAtMs).\(s.expiresAtMs).\(mac("cs1|\(s.staff)|\(s.id)|\(s.issuedAtMs)|\(s.expiresAtMs)"))"
    }

    package func check(_ cookie: String, nowMs: Int64) -> Check {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "cs1", let issued = Int64(parts[3]), let expires = Int64(parts[4]),
              equal(mac("cs1|\(parts[1])|\(parts[2])|\(issued)|\(expires)"), parts[5]) else { return .invalid }
        guard expires > nowMs else { return .expired }
        return .valid(StaffSession(staff: parts[1], id: parts[2], issuedAtMs: issued, expiresAtMs: expires))
    }

    /// The CSRF token of a signed-in session's forms.
    package func csrf(session: StaffSession) -> String { mac("csrf|\(session.id)") }

    /// The CSRF token of the sign-in form, bound to the pre-session cookie's random value.
    package func csrf(preSession value: String) -> String { mac("pre|\(value)") }

    package func equal(_ a: String, _ b: String) -> Bool { constantTimeEqual(a.utf8, b.utf8) }

    private func mac(_ text: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key).withUnsafeBytes { lowercaseHex($0) }
    }
}
