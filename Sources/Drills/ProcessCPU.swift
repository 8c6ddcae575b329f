import Foundation

/// CPU time a process has used (user + system), from `/proc/<pid>/stat` (Linux). Benchmarks on a
/// shared, noisy 2-core machine compare CPU per request more reliably than tail latency.
enum ProcessCPU {
    /// Seconds of CPU used so far by `pid`; nil if it cannot be read (gone, or not Linux).
    static func seconds(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ticks > 0 ? (user + system) / ticks : nil
    }

    /// CPU used by a set of processes (by name) from its start to `used()`.
    struct Meter {
        let pids: [String: Int32]
        let start: [String: Double]

        init(_ pids: [String: Int32]) {
            self.pids = pids
            start = pids.compactMapValues { ProcessCPU.seconds(pid: $0) }
        }

        /// Seconds of CPU each process used since `init`; nil unless every process could be read
        /// both times (a partial sum would pass for a lower figure).
        func used() -> [String: Double]? {
            let now = pids.compactMapValues { ProcessCPU.seconds(pid: $0) }
            guard start.count == pids.count, now.count == pids.count else { return nil }
            return now.reduce(into: [:]) { out, e in out[e.key] = e.value - start[e.key]! }
        }
    }
}
