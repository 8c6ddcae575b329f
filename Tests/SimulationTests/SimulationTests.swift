import Consensus
import Foundation
import Simulation
import Testing

@Suite struct SimulationTests {
    @Test func sameSeedReplaysToTheSameTraceHash() {
        let a = runSeed(42)
        let b = runSeed(42)
        let c = runSeed(43)
        #expect(a.traceHash == b.traceHash)
        #expect(a.stats.events == b.stats.events)
        #expect(a.traceHash != c.traceHash)
        #expect(a.failure == nil, "seed 42: \(a.failure.map(String.init(describing:)) ?? "")")
    }

    /// Another process (its own hash seed, its own Dictionary order) must replay the same trace.
    @Test func replayInAnotherProcessGivesTheSameTraceHash() throws {
        let bin = try #require(clinicmeshBinary(), "build the clinicmesh executable first (swift build), or set CLINICMESH_BIN")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["simulate", "--seed", "5", "--json"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let json = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        let here = String(format: "%016llx", runSeed(5).traceHash)
        #expect(json["trace_hash"] as? String == here)
    }

    @Test func quietClusterElectsAndGrantsEveryBlock() {
        var o = SimOptions()
        o.faults = false
        o.faultMs = 3_000
        let r = runSeed(7, options: o)
        #expect(r.failure == nil, "\(r.failure.map(String.init(describing:)) ?? "")")
        #expect(r.stats.elections >= 1)
        #expect(r.stats.takeovers >= o.blocks)
        #expect(r.stats.bookingsAcked > 0)
    }

    /// CI's run: at least 500 seeds of a 5-node cluster with every fault. Prints failing seeds.
    @Test func fiveHundredSeedsWithEveryFault() async throws {
        let minimum = Int(ProcessInfo.processInfo.environment["CLINICMESH_SIM_SEEDS"] ?? "") ?? 500
        let s = try await onOwnThread {
            runSeeds(first: 1, minSeeds: max(500, minimum), maxSeeds: max(500, minimum), budgetSeconds: nil,
                     threads: ProcessInfo.processInfo.activeProcessorCount) { r in
                print("simulation seed \(r.seed) failed: \(r.failure!) (replay: clinicmesh simulate --seed \(r.seed))")
            }
        }
        print("simulation: \(summaryJSON(s))")
        #expect(s.seeds >= 500)
        #expect(s.failures == 0, "failing seeds: \(s.failing_seeds.map { "\($0.seed) \($0.rule): \($0.detail)" })")
        // The faults really happened.
        #expect(s.crashes > 100 && s.pauses > 100 && s.partitions > 100 && s.takeovers > s.seeds && s.voter_changes > 0)
    }

    /// The shape a hospital runs: three nodes, one per department. Here two nodes restarting
    /// while the third is down leaves no node with any history applied for a while, which the
    /// five-node run rarely sees.
    @Test func threeHundredSeedsOfThreeNodes() async throws {
        var o = SimOptions()
        o.nodes = 3
        let options = o
        let s = try await onOwnThread {
            runSeeds(first: 100_001, minSeeds: 300, maxSeeds: 300, budgetSeconds: nil,
                     threads: ProcessInfo.processInfo.activeProcessorCount, options: options) { r in
                print("simulation seed \(r.seed) failed: \(r.failure!) (replay: clinicmesh simulate --seed \(r.seed) --nodes 3)")
            }
        }
        print("simulation, 3 nodes: \(summaryJSON(s))")
        #expect(s.seeds >= 300)
        #expect(s.failures == 0, "failing seeds: \(s.failing_seeds.map { "\($0.seed) \($0.rule): \($0.detail)" })")
        #expect(s.crashes > 50 && s.pauses > 50 && s.partitions > 50 && s.takeovers > s.seeds)
    }

    #if CLINICMESH_BUG_SWITCHES
    @Test(arguments: BugSwitch.allCases)
    func checkersCatchEachBugSwitch(_ bug: BugSwitch) async throws {
        var o = SimOptions()
        o.bug = bug
        let options = o
        let s = try await onOwnThread {
            runSeeds(first: 1, minSeeds: 1, maxSeeds: 200, budgetSeconds: nil, threads: 1, options: options, stopAtFirstFailure: true)
        }
        #expect(s.failures > 0, "bug \(bug.rawValue) went unnoticed over \(s.seeds) seeds")
        if let f = s.failing_seeds.first { print("bug \(bug.rawValue) caught at seed \(f.seed) after \(s.seeds) seeds: \(f.rule): \(f.detail)") }
    }
    #endif
}

/// CLINICMESH_BIN, else the package's own newest debug or release build found from this file's path.
func clinicmeshBinary() -> String? {
    if let p = ProcessInfo.processInfo.environment["CLINICMESH_BIN"], FileManager.default.isExecutableFile(atPath: p) { return p }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = ["debug", "release"].map { root.appendingPathComponent(".build/\($0)/clinicmesh").path }
        .filter { FileManager.default.isExecutableFile(atPath: $0) }
    return candidates.max { a, b in
        let ma = (try? FileManager.default.attributesOfItem(atPath: a)[.modificationDate] as? Date) ?? .distantPast
        let mb = (try? FileManager.default.attributesOfItem(atPath: b)[.modificationDate] as? Date) ?? .distantPast
        return ma < mb
    }
}

/// Runs CPU-heavy synchronous work on a thread of its own, so that it does not hold one of the
/// (two, on these machines) threads of Swift's cooperative pool that the TLS tests running beside
/// it need for their async certificate checks.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
