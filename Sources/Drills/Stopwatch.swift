import Foundation

/// Monotonic stopwatch.
public struct Stopwatch: Sendable {
    private let start = ContinuousClock.now
    public init() {}
    public var seconds: Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// `value` rounded to `places` decimal places, for reports.
public func rounded(_ value: Double, _ places: Int = 1) -> Double {
    let scale = pow(10, Double(places))
    return (value * scale).rounded() / scale
}
