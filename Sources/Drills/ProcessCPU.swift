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

    /// CPU seconds of each process, by name.
    static func snapshot(_ pids: [String: Int32]) -> [String: Double] {
        pids.compactMapValues { seconds(pid: $0) }
    }
}
