// Helpers shared by the test targets (SwiftPM test targets cannot import each other). Only test
// targets depend on this module.
import Foundation
import Testing

/// The built `clinicmesh` executable, for tests that start real node processes; fails the test with
/// the reason if `CLINICMESH_BIN` is not set.
public func clinicmeshBinary(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(
        ProcessInfo.processInfo.environment["CLINICMESH_BIN"],
        "set CLINICMESH_BIN to the built clinicmesh (Cluster/test does)",
        sourceLocation: sourceLocation)
}

/// Polls `condition` every 50 ms until it holds or a generous deadline passes; never asserts a
/// duration. A condition that throws counts as not yet.
public func eventually(timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return (try? await condition()) == true
}

/// Why `waitUntil` gave up: what it waited for, for how long, and the last error the condition
/// threw, if any.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let what: String
    public let timeout: Duration
    public let lastError: (any Error)?
    public var description: String {
        "timed out after \(self.timeout) waiting for: \(self.what)" + (self.lastError.map { " (last error: \($0))" } ?? "")
    }
}

/// Polls `condition` every 50 ms until it holds, and throws `WaitTimedOut` naming `what` if it
/// still does not after `timeout` (60 s unless told). For a test that would otherwise sleep a
/// fixed time and hope: the wait ends as soon as the condition holds, and a slow machine gets the
/// whole deadline. A condition that throws counts as not yet; the last error is reported.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var lastError: (any Error)?
    while true {
        do {
            if try await condition() { return }
            lastError = nil
        } catch {
            lastError = error
        }
        guard clock.now < deadline else { throw WaitTimedOut(what: what, timeout: timeout, lastError: lastError) }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// Like `waitUntil`, for a condition that yields a value once it is ready.
public func valueWhenReady<T>(
    _ what: String, timeout: Duration = .seconds(60), _ attempt: () async throws -> T?
) async throws -> T {
    var value: T?
    try await waitUntil(what, timeout: timeout) {
        value = try await attempt()
        return value != nil
    }
    return value!
}

/// A fresh folder under the system's temporary folder, named `prefix-UUID`.
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + prefix + "-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// SplitMix64: seeded, small, and the same sequence on every machine, so every failure replays
/// from its seed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { self.state = seed }
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in `0..<bound`.
    public mutating func below(_ bound: UInt64) -> UInt64 { self.next() % bound }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(self.next() >> 11) / Double(1 << 53) < p }
}
