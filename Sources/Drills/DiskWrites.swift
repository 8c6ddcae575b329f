/// How one node's consensus disk kept up during a bench run, from two scrapes of its `/metrics`
/// (`clinicmesh_consensus_disk_write_seconds`, both logs): a booking waits on these group
/// commits, so a tail latency with slow commits at its node is the disk, not the protocol.
public struct DiskWrites: Codable, Sendable, Equatable {
    public var commits: Int
    public var over50Ms: Int
    /// The slowest commit took at most this long (ms): the smallest histogram bound holding
    /// them all. nil: no commit, or one beyond the last bound.
    public var slowestAtMostMs: Double?

    enum CodingKeys: String, CodingKey { case commits, over50Ms = "over_50_ms", slowestAtMostMs = "slowest_at_most_ms" }

    /// Cumulative bucket counts by upper bound in seconds (`+Inf`: infinity), both logs summed.
    typealias Buckets = [Double: Double]

    static func buckets(inExposition text: String) -> Buckets {
        var out: Buckets = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("clinicmesh_consensus_disk_write_seconds_bucket{") {
            guard let le = line.range(of: "le=\""), let close = line[le.upperBound...].firstIndex(of: "\""),
                  let space = line.lastIndex(of: " "), let count = Double(line[line.index(after: space)...]) else { continue }
            let bound = line[le.upperBound..<close]
            guard let seconds = bound == "+Inf" ? Double.infinity : Double(bound) else { continue }
            out[seconds, default: 0] += count
        }
        return out
    }

    /// The commits between two scrapes of one node.
    static func between(_ before: Buckets, _ after: Buckets) -> DiskWrites {
        let delta = after.reduce(into: Buckets()) { $0[$1.key] = $1.value - (before[$1.key] ?? 0) }
        let total = delta[.infinity] ?? 0
        let within50 = delta.first { abs($0.key - 0.05) < 1e-9 }?.value ?? 0
        let slowest = delta.filter { $0.key.isFinite && $0.value >= total }.keys.min()
        return DiskWrites(commits: Int(total), over50Ms: Int(total - within50), slowestAtMostMs: total > 0 ? slowest.map { $0 * 1000 } : nil)
    }
}
