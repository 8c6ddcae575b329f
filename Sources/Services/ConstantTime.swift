/// Whether two byte strings are equal, in a time that does not depend on where they differ (for
/// MACs and password hashes: an early exit would tell an attacker how much of a guess was right).
package func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    a.count == b.count && zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
}
