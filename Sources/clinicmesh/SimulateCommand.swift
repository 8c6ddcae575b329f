import ArgumentParser
import Consensus
import ConsensusStorage
import Foundation
import Simulation

/// `clinicmesh simulate`: runs the deterministic cluster simulator over many seeds.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "确定性集群模拟 / Run the deterministic cluster simulator over many seeds"
    )

    @Option(help: "Seeds to run (the target count).") var seeds: Int = 500
    @Option(help: "Run exactly this one seed (prints its trace_hash).") var seed: UInt64?
    @Option(help: "First seed of a multi-seed run.") var first: UInt64 = 1
    @Option(help: "Nodes in the simulated cluster.") var nodes: Int = 5
    @Option(name: .customLong("budget-s"), help: "Wall-time budget in seconds; stops early only after --min-seeds.") var budgetS: Double?
    @Option(name: .customLong("min-seeds"), help: "Seeds that always run, budget or not (default: min(seeds, 500)).") var minSeeds: Int?
    @Option(help: "Worker threads (default: active processors).") var threads: Int?
    @Option(name: .customLong("fault-ms"), help: "Simulated ms of faults per seed.") var faultMs: UInt64 = 12_000
    @Option(name: .customLong("quiet-ms"), help: "Simulated ms after faults stop.") var quietMs: UInt64 = 10_000
    @Option(help: ArgumentHelp("Bug switch to enable (test builds only): \(BugSwitch.allCases.map(\.rawValue).joined(separator: ", ")).")) var bug: String?
    @Option(help: "Force the rush workload (more requests on fewer slots) on or off; by default drawn per seed.") var hotspot: Bool?
    @Option(help: "Force the Raft figure-8 schedule on or off; by default drawn per seed.") var figure8: Bool?
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var o = SimOptions()
        o.nodes = nodes
        o.initialVoters = min(nodes, nodes >= 5 ? 3 : nodes)
        o.faultMs = faultMs
        o.quietMs = max(quietMs, o.livenessDeadlineMs)
        o.hotspot = hotspot
        o.figure8 = figure8
        if let b = bug {
            #if CLINICMESH_BUG_SWITCHES
            guard let s = BugSwitch(rawValue: b) else { throw ValidationError("unknown bug switch \(b)") }
            o.bug = s
            #else
            throw ValidationError("bug switch \(b): bug switches exist only in builds with -Xswiftc -DCLINICMESH_BUG_SWITCHES")
            #endif
        }
        let summary: CampaignSummary
        if let s = seed {
            summary = runSeeds(first: s, minSeeds: 1, maxSeeds: 1, budgetSeconds: nil, threads: 1, options: o)
        } else {
            let minimum = minSeeds ?? min(seeds, 500)
            summary = runSeeds(first: first, minSeeds: minimum, maxSeeds: max(seeds, minimum), budgetSeconds: budgetS,
                               threads: threads ?? ProcessInfo.processInfo.activeProcessorCount, options: o) { r in
                FileHandle.standardError.write(Data("seed \(r.seed) failed: \(r.failure!)\n".utf8))
            }
        }
        if json {
            print(summaryJSON(summary))
        } else {
            print("seeds \(summary.seeds), failures \(summary.failures), \(summary.seeds_per_s) seeds/s")
            for f in summary.failing_seeds { print("  seed \(f.seed): \(f.rule): \(f.detail)  (replay: \(f.replay))") }
            if let h = summary.trace_hash { print("trace_hash \(h)") }
        }
        if summary.failures > 0 { throw ExitCode(1) }
    }
}

/// Hidden: appends entries to a file-backed Raft log, fsyncing each, printing `acked <index>`
/// only after the fsync returned. A test SIGKILLs it and checks every acked entry survived.
struct RaftLogTortureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "raft-log-torture", shouldDisplay: false)

    @Option(help: "Directory of the log.") var dir: String
    @Option(help: "Entries to append before exiting.") var count: Int = 1_000_000

    static func payload(_ i: UInt64) -> [UInt8] {
        let n = 16 + Int(i &* 7919 % 300)
        return (0..<n).map { UInt8(truncatingIfNeeded: i &* 31 &+ UInt64($0)) }
    }

    func run() throws {
        let log = try FileRaftLog(directory: dir)
        var next = (log.state.entries.last?.index ?? log.state.snapshot?.lastIndex ?? 0) + 1
        FileHandle.standardOutput.write(Data("opened next=\(next) torn=\(log.recoveredTornBytes)\n".utf8))
        for _ in 0..<count {
            let e = LogEntry<[UInt8]>(index: next, term: 1 + next / 100, body: .command(Self.payload(next)))
            let hard = next % 100 == 0 ? HardState(term: 1 + next / 100, votedFor: "n1") : nil
            try log.write(BytePersist(seq: next, hardState: hard, snapshot: nil, truncateFrom: nil, entries: [e]))
            FileHandle.standardOutput.write(Data("acked \(next)\n".utf8))
            next += 1
        }
    }
}
