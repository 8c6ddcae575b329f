import Crypto
import Foundation
import NIOPosix
import _CryptoExtras

/// Staff passwords hashed with scrypt (memory-hard), as `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`
/// (base64). The cost is read back from each hash, so raising it later leaves old hashes valid.
/// Hashing runs on NIO's thread pool: a sign-in must not hold an event loop for 100 ms.
package struct PasswordHasher: Sendable {
    /// log2 of scrypt's N (2^15 with r = 8: 32 MiB per hash).
    package let logRounds: Int
    package let blockSize: Int
    package let parallelism: Int

    package init(logRounds: Int = 15, blockSize: Int = 8, parallelism: Int = 1) {
        self.logRounds = logRounds; self.blockSize = blockSize; self.parallelism = parallelism
    }

    package func hash(_ password: String) async throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &rng) }
        let key = try await Self.derive(password, salt: salt, logRounds: logRounds, blockSize: blockSize, parallelism: parallelism)
        return "scrypt$\(logRounds)$\(blockSize)$\(parallelism)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// Whether `password` matches `stored`; a malformed hash matches nothing (and still costs one
    /// derivation at this hasher's cost, like a wrong password).
    package func verify(_ password: String, against stored: String) async -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              (10...20).contains(n), (1...16).contains(r), (1...4).contains(p),
              let salt = Data(base64Encoded: parts[4]), let expected = Data(base64Encoded: parts[5]), expected.count == 32 else {
            _ = try? await Self.derive(password, salt: [UInt8](repeating: 0, count: 16), logRounds: logRounds, blockSize: blockSize, parallelism: parallelism)
            return false
        }
        guard let key = try? await Self.derive(password, salt: Array(salt), logRounds: n, blockSize: r, parallelism: p) else { return false }
        return constantTimeEqual(key, expected)
    }

    /// A hash no password matches, at this hasher's cost: an unknown staff number is checked
    /// against it, so that it takes as long as a known one.
    package func decoy() -> String {
        "scrypt$\(logRounds)$\(blockSize)$\(parallelism)$\(Data(repeating: 0, count: 16).base64EncodedString())$\(Data(repeating: 0, count: 32).base64EncodedString())"
    }

    private static func derive(_ password: String, salt: [UInt8], logRounds: Int, blockSize: Int, parallelism: Int) async throws -> [UInt8] {
        try await NIOThreadPool.singleton.runIfActive {
            let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32,
                                               rounds: 1 << logRounds, blockSize: blockSize, parallelism: parallelism)
            return key.withUnsafeBytes { Array($0) }
        }
    }
}
