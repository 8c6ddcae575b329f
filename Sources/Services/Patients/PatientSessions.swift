import Crypto
import Domain
import Foundation
import Synchronization

// Real-name sign-in: a patient gives name, resident ID and mobile, gets a 6-digit code by SMS, and
// trades it for a session token. Codes live on the node that sent them (5 minutes, 5 tries); the
// token is signed with a key derived from the cluster data key, so every node accepts it.

/// A signed-in patient: the patient key (an HMAC of the resident ID, never the ID itself).
package struct PatientSession: Sendable, Hashable {
    package var patient: String
    package var expiresAtMs: Int64
}

package final class SessionTokens: Sendable {
    private let key: SymmetricKey
    /// Tokens whose signature was checked already: every request of a patient carries the same
    /// one, and checking its HMAC on every request is CPU the rush needs. Looked up by the whole
    /// token (hashed with the process's random seed), bounded, and expiry is still checked.
    private let verified = Mutex<[String: PatientSession]>([:])
    private let verifiedLimit = 20_000

    package init(dataKey: SymmetricKey) {
        key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data("clinicmesh patient session v1".utf8), using: dataKey))
    }

    package func issue(patient: String, expiresAtMs: Int64) -> String {
        "cm1.\(patient).\(expiresAtMs).\(mac(patient, expiresAtMs))"
    }

    /// The session a token stands for, if its signature is right and it has not expired.
    package func verify(_ token: String, nowMs: Int64) -> PatientSession? {
        if let known = verified.withLock({ $0[token] }) { return known.expiresAtMs > nowMs ? known : nil }
        guard let session = check(token, nowMs: nowMs) else { return nil }
        verified.withLock { v in
            if v.count >= verifiedLimit { v.removeAll(keepingCapacity: true) }
            v[token] = session
        }
        return session
    }

    private func check(_ token: String, nowMs: Int64) -> PatientSession? {
        let parts = token.split(separator: ".").map(String.init)
        guard parts.count == 4, parts[0] == "cm1", parts[1].count == 64, let expires = Int64(parts[2]), expires > nowMs else { return nil }
        let expected = Array(mac(parts[1], expires).utf8), given = Array(parts[3].utf8)
        guard constantTimeEqual(expected, given) else { return nil }
        return PatientSession(patient: parts[1], expiresAtMs: expires)
    }

    private func mac(_ patient: String, _ expires: Int64) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("cm1|\(patient)|\(expires)".utf8), using: key).withUnsafeBytes { lowercaseHex($0) }
    }
}

/// Codes sent and not yet used, on this node.
package final class OneTimeCodes: Sendable {
    package struct Entry: Sendable {
        var code: String
        var expiresAtMs: Int64
        var triesLeft: Int
        var name: String
        var residentID: ResidentID
        var mobile: MobileNumber
    }

    package enum Check: Equatable { case ok, wrong(triesLeft: Int), expired, unknown, exhausted }

    private let entries = Mutex<[String: Entry]>([:])
    private let maxEntries = 200_000

    /// A new code for this resident ID and mobile (replacing any earlier one).
    package func issue(name: String, residentID: ResidentID, mobile: MobileNumber, nowMs: Int64, ttlMs: Int64, tries: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        let code = String(format: "%06d", Int.random(in: 0..<1_000_000, using: &rng))
        entries.withLock { e in
            if e.count >= maxEntries { e = e.filter { $0.value.expiresAtMs > nowMs } }
            e[Self.key(residentID, mobile)] = Entry(code: code, expiresAtMs: nowMs + ttlMs, triesLeft: tries, name: name, residentID: residentID, mobile: mobile)
        }
        return code
    }

    /// Checks a code; a right one is used up, a wrong one costs a try.
    package func check(residentID: ResidentID, mobile: MobileNumber, code: String, nowMs: Int64) -> (Check, Entry?) {
        entries.withLock { e in
            let k = Self.key(residentID, mobile)
            guard var entry = e[k] else { return (.unknown, nil) }
            if entry.expiresAtMs <= nowMs { e[k] = nil; return (.expired, nil) }
            if entry.triesLeft <= 0 { e[k] = nil; return (.exhausted, nil) }
            if Array(entry.code.utf8) == Array(code.utf8) { e[k] = nil; return (.ok, entry) }
            entry.triesLeft -= 1
            if entry.triesLeft == 0 { e[k] = nil; return (.exhausted, nil) }
            e[k] = entry
            return (.wrong(triesLeft: entry.triesLeft), nil)
        }
    }

    private static func key(_ id: ResidentID, _ mobile: MobileNumber) -> String { id.value + "|" + mobile.digits }
}

/// How many requests are being worked on; `enter` refuses beyond `limit` (load shedding).
package final class InFlightLimit: Sendable {
    package let limit: Int
    private let count = Atomic<Int>(0)

    package init(limit: Int) { self.limit = limit }

    /// True if the request may go on; it must then call `leave` once it is answered.
    package func enter() -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= limit { return true }
        count.subtract(1, ordering: .relaxed)
        return false
    }

    package func leave() { count.subtract(1, ordering: .relaxed) }

    package var current: Int { count.load(ordering: .relaxed) }
}

/// Token buckets by key (a client address, a mobile number): `burst` at once, then `perSecond`.
package final class RateLimiter: Sendable {
    private struct Bucket { var tokens: Double; var atNanos: UInt64 }
    private let buckets = Mutex<[String: Bucket]>([:])
    private let burst: Double
    private let perSecond: Double
    private let maxKeys = 200_000

    package init(burst: Int, perSecond: Double) {
        self.burst = Double(burst)
        self.perSecond = perSecond
    }

    /// Takes one token for `key`: nil if there was one; otherwise nothing is taken and the answer
    /// is the whole seconds until the bucket has refilled one (a `Retry-After`), at least 1.
    package func take(_ key: String, nowNanos: UInt64) -> Int? {
        buckets.withLock { b in
            if b.count >= maxKeys {
                // Forget the keys that have refilled anyway (they would start full again).
                b = b.filter { Double(nowNanos &- $0.value.atNanos) / 1e9 * perSecond + $0.value.tokens < burst }
            }
            var bucket = b[key] ?? Bucket(tokens: burst, atNanos: nowNanos)
            bucket.tokens = min(burst, bucket.tokens + Double(nowNanos &- bucket.atNanos) / 1e9 * perSecond)
            bucket.atNanos = nowNanos
            guard bucket.tokens >= 1 else {
                b[key] = bucket
                return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
            }
            bucket.tokens -= 1
            b[key] = bucket
            return nil
        }
    }
}
