import Consensus
import ConsensusStorage
import Foundation
import TestSupport
import Testing

func tempDir(_ name: String) -> String {
    let d = NSTemporaryDirectory() + "clinicmesh-\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Same payload the torture subcommand writes for index `i`.
func torturePayload(_ i: UInt64) -> [UInt8] {
    let n = 16 + Int(i &* 7919 % 300)
    return (0..<n).map { UInt8(truncatingIfNeeded: i &* 31 &+ UInt64($0)) }
}

func entry(_ i: LogIndex, _ t: Term, _ s: String) -> LogEntry<[UInt8]> {
    LogEntry(index: i, term: t, body: .command(Array(s.utf8)))
}

@Suite struct StorageTests {
    @Test func roundTripsEveryKindOfWrite() throws {
        let d = tempDir("roundtrip")
        defer { try? FileManager.default.removeItem(atPath: d) }
        do {
            let log = try FileRaftLog(directory: d)
            try log.write(BytePersist(seq: 1, hardState: HardState(term: 3, votedFor: "n2"), snapshot: nil, truncateFrom: nil, entries: [entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 2, "c")]))
            try log.write(BytePersist(seq: 2, hardState: nil, snapshot: nil, truncateFrom: 3, entries: [entry(3, 3, "c2"), LogEntry(index: 4, term: 3, body: .config(ConfigChange(.promote, "n4")))]))
            try log.write(BytePersist(seq: 3, hardState: nil, snapshot: Snapshot(lastIndex: 2, lastTerm: 1, config: ClusterConfig(voters: ["n1", "n2"], learners: ["n4"]), data: [9, 9]), truncateFrom: nil, entries: []))
        }
        let re = try FileRaftLog(directory: d)
        #expect(re.recoveredTornBytes == 0)
        #expect(re.state.hardState == HardState(term: 3, votedFor: "n2"))
        #expect(re.state.snapshot?.lastIndex == 2)
        #expect(re.state.snapshot?.data == [9, 9])
        #expect(re.state.snapshot?.config.learners == ["n4"])
        #expect(re.state.entries.map(\.index) == [3, 4])
        #expect(re.state.entries.first == entry(3, 3, "c2"))
        try re.rewrite()
        let again = try FileRaftLog(directory: d)
        #expect(again.state.entries == re.state.entries)
        #expect(again.state.hardState == re.state.hardState)
    }

    @Test func tornTailIsCutAndAppendsContinue() throws {
        let d = tempDir("torn")
        defer { try? FileManager.default.removeItem(atPath: d) }
        do {
            let log = try FileRaftLog(directory: d)
            for i in 1...10 { try log.write(BytePersist(seq: UInt64(i), hardState: nil, snapshot: nil, truncateFrom: nil, entries: [entry(LogIndex(i), 1, "e\(i)")])) }
        }
        // A crash in the middle of the 11th record: its header and half of its payload.
        let path = d + "/raft.log"
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data([40, 0, 0, 0, 1, 2, 3, 4, 0, 11, 0, 0]))
        h.closeFile()
        let re = try FileRaftLog(directory: d)
        #expect(re.recoveredTornBytes == 12)
        #expect(re.state.entries.count == 10)
        try re.write(BytePersist(seq: 11, hardState: nil, snapshot: nil, truncateFrom: nil, entries: [entry(11, 1, "e11")]))
        let again = try FileRaftLog(directory: d)
        #expect(again.state.entries.map(\.index) == Array(1...11))
        #expect(again.recoveredTornBytes == 0)
    }

    @Test func corruptionBeforeValidRecordsRefusesToOpen() throws {
        let d = tempDir("corrupt")
        defer { try? FileManager.default.removeItem(atPath: d) }
        do {
            let log = try FileRaftLog(directory: d)
            for i in 1...5 { try log.write(BytePersist(seq: UInt64(i), hardState: nil, snapshot: nil, truncateFrom: nil, entries: [entry(LogIndex(i), 1, "entry-\(i)")])) }
        }
        let path = d + "/raft.log"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[12] ^= 0xFF // inside the first record's payload
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.self) { _ = try FileRaftLog(directory: d) }
    }

    /// A real process appends and fsyncs, printing each acked index; we SIGKILL it mid-stream,
    /// reopen, and every acked entry must be there, intact. Three rounds, so recovery after a
    /// kill is itself killed.
    @Test func sigkilledWriterLosesNoAckedEntry() throws {
        let bin = try clinicmeshBinary()
        let d = tempDir("torture")
        defer { try? FileManager.default.removeItem(atPath: d) }
        var highestAcked: UInt64 = 0
        for round in 0..<3 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["raft-log-torture", "--dir", d]
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            try p.run()
            let target = highestAcked + 150 + UInt64(round * 37)
            var buffer = Data()
            let deadline = Date().addingTimeInterval(120)
            var acked: UInt64 = highestAcked
            while acked < target, Date() < deadline {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                let text = String(decoding: buffer, as: UTF8.self)
                for line in text.split(separator: "\n") where line.hasPrefix("acked ") {
                    if let v = UInt64(line.dropFirst(6)) { acked = max(acked, v) }
                }
            }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // Lines printed between our last read and the kill are acks too.
            buffer.append(pipe.fileHandleForReading.readDataToEndOfFile())
            for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") where line.hasPrefix("acked ") {
                if let v = UInt64(line.dropFirst(6)) { acked = max(acked, v) }
            }
            #expect(acked >= target, "round \(round): writer acked only \(acked) before the deadline")
            #expect(p.terminationReason == .uncaughtSignal)
            highestAcked = acked
            let log = try FileRaftLog(directory: d)
            let byIndex = Dictionary(uniqueKeysWithValues: log.state.entries.map { ($0.index, $0) })
            for i in 1...highestAcked {
                guard let e = byIndex[i] else { Issue.record("round \(round): acked entry \(i) missing"); break }
                #expect(e.body == .command(torturePayload(i)), "entry \(i) damaged")
            }
        }
    }
}

@Suite struct RaftOnFileTests {
    /// A single-voter node whose every persist goes through FileRaftLog comes back identical.
    @Test func nodeRestartsFromTheFileWithTermVoteAndLog() throws {
        typealias BNode = RaftNode<[UInt8], [UInt8]>
        let d = tempDir("raft-on-file")
        defer { try? FileManager.default.removeItem(atPath: d) }
        let cfg = ClusterConfig(voters: ["solo"])
        var log = try FileRaftLog(directory: d)
        var n = BNode(id: "solo", options: RaftConfig(), bootstrap: cfg, restoring: log.state)
        func run(_ acts: [RaftAction<[UInt8], [UInt8]>]) throws {
            for a in acts {
                if case .persist(let p) = a {
                    try log.write(p)
                    try run(n.persisted(upTo: p.seq))
                }
            }
        }
        for _ in 0..<100 where n.role != .leader { try run(n.tick()) }
        #expect(n.role == .leader)
        for k in 0..<3 {
            let (r, acts) = n.propose([UInt8(k)])
            try run(acts)
            if case .failure(let e) = r { Issue.record("propose: \(e)") }
        }
        #expect(n.commitIndex == n.lastIndex)
        log = try FileRaftLog(directory: d)
        let again = BNode(id: "solo", options: RaftConfig(), bootstrap: cfg, restoring: log.state)
        #expect(again.term == n.term)
        #expect(again.votedFor == "solo")
        #expect(again.entries == n.entries)
    }
}
