import ClinicErrors
import Foundation

// The consensus messages' binary form (inside a mesh `raft` frame), and the bridge between the
// typed Raft state and `FileRaftLog`'s bytes (`ConsensusStorage`). Layout: `Consensus.docc/PROTOCOL.md`, "On the wire".
// Everything is length-checked: a bad message from a peer is an error, never a trap.

/// A consensus message (or a Raft log record) that does not decode.
public typealias ConsensusWireError = ClinicError<ConsensusWireErrorCode>

public enum ConsensusWireErrorCode: String, ClinicErrorCode { case malformed = "consensus.malformed" }

extension ClinicError where Code == ConsensusWireErrorCode {
    init(_ detail: String) {
        self.init(.malformed, zh: "共识消息无法解码：\(detail)", en: "a consensus message does not decode: \(detail)")
    }
}

public enum ConsensusWire {
    /// Bumped on any incompatible change of the layout below.
    public static let version: UInt8 = 2
    static let maxItems: UInt32 = 100_000

    /// `entryBytes` encodes one log entry, `stateBytes` a snapshot's state (a cache may answer:
    /// neither an entry nor the state at a snapshot's index ever changes).
    public static func encode(_ m: ConsensusMessage, entryBytes: (LogEntry<ClusterCommand>) -> LogEntry<[UInt8]> = bytes,
                              stateBytes: (Snapshot<ClusterState>) -> [UInt8] = stateBytes) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        switch m {
        case .raft(let r):
            w.u8(0); w.str(r.from.rawValue); w.str(r.to.rawValue); w.u64(r.term)
            switch r.body {
            case .requestVote(let li, let lt, let pre, let transfer):
                w.u8(0); w.u64(li); w.u64(lt); w.u8((pre ? 1 : 0) | (transfer ? 2 : 0))
            case .requestVoteResponse(let granted, let pre):
                w.u8(1); w.u8((granted ? 1 : 0) | (pre ? 2 : 0))
            case .appendEntries(let pi, let pt, let es, let commit):
                w.u8(2); w.u64(pi); w.u64(pt); w.u32(UInt32(es.count))
                for e in es { w.entry(entryBytes(e)) }
                w.u64(commit)
            case .appendEntriesResponse(let ok, let pi, let match, let ct, let ci):
                w.u8(3); w.u8(ok ? 1 : 0); w.u64(pi); w.u64(match)
                if let ct { w.u8(1); w.u64(ct) } else { w.u8(0) }
                w.u64(ci)
            case .installSnapshot(let s):
                w.u8(4); w.u64(s.lastIndex); w.u64(s.lastTerm); w.config(s.config); w.blob(stateBytes(s))
            case .installSnapshotResponse(let match):
                w.u8(5); w.u64(match)
            case .timeoutNow:
                w.u8(6)
            }
        case .lease(let e):
            w.u8(1); w.str(e.from.rawValue); w.str(e.to.rawValue)
            switch e.body {
            case .accept(let b): w.u8(0); w.booking(b)
            case .acceptReply(let id, let block, let epoch, let ok): w.u8(1); w.str(id); w.str(block); w.u64(epoch); w.u8(ok ? 1 : 0)
            case .prepare(let block, let epoch): w.u8(2); w.str(block); w.u64(epoch)
            case .promise(let block, let epoch, let ok, let bs):
                w.u8(3); w.str(block); w.u64(epoch); w.u8(ok ? 1 : 0); w.bookings(bs)
            case .renew(let inc): w.u8(4); w.u64(inc)
            case .gossip(let bs): w.u8(5); w.bookings(bs)
            case .resign(let inc): w.u8(6); w.u64(inc)
            case .epochRefused(let block, let epoch): w.u8(7); w.str(block); w.u64(epoch)
            case .confirm(let block, let epoch, let round): w.u8(8); w.str(block); w.u64(epoch); w.u64(round)
            case .confirmReply(let block, let epoch, let round, let ok): w.u8(9); w.str(block); w.u64(epoch); w.u64(round); w.u8(ok ? 1 : 0)
            }
        case .request(let q):
            w.u8(2); w.str(q.id); w.str(q.block); w.u64(UInt64(bitPattern: Int64(q.slot))); w.str(q.patient); w.u8(q.hops)
            w.u32(UInt32(q.alternatives.count)); for a in q.alternatives { w.u64(UInt64(bitPattern: Int64(a))) }
            w.optionalStr(q.releases); w.str(q.tag); w.optionalStr(q.confirms); w.u64(UInt64(bitPattern: q.holdMs))
            // Flags only when set: a request without them is the same bytes as before they came.
            if q.onlyIfKnown { w.u8(1) }
        case .outcome(.booked(let b)):
            w.u8(3); w.u8(0); w.booking(b)
        case .outcome(.refused(let id, let reason)):
            w.u8(3); w.u8(1); w.str(id); w.str(reason.rawValue)
        case .proposal(let c):
            w.u8(4); w.blob(json(c))
        }
        return w.bytes
    }

    /// An append as several appends, each with entries of at most `maxBytes` encoded (but at least
    /// one entry), chained by their previous index and term. A follower takes them in order on
    /// the link as it would take the whole; each gets its own answer.
    public static func appendParts(_ m: ClusterRaftMessage, entryBytes: (LogEntry<ClusterCommand>) -> LogEntry<[UInt8]> = bytes,
                                   maxBytes: Int) -> [ClusterRaftMessage] {
        guard case .appendEntries(let prev, let prevTerm, let es, let commit) = m.body, es.count > 1 else { return [m] }
        var parts: [ClusterRaftMessage] = []
        var start = 0, size = 0, partPrev = prev, partPrevTerm = prevTerm
        func close(_ end: Int) {
            parts.append(ClusterRaftMessage(from: m.from, to: m.to, term: m.term,
                                            body: .appendEntries(prevLogIndex: partPrev, prevLogTerm: partPrevTerm, entries: Array(es[start..<end]), leaderCommit: commit)))
            partPrev = es[end - 1].index
            partPrevTerm = es[end - 1].term
            start = end
            size = 0
        }
        for (i, e) in es.enumerated() {
            let n = encodedSize(entryBytes(e))
            if i > start, size + n > maxBytes { close(i) }
            size += n
        }
        close(es.count)
        return parts
    }

    /// What `ByteWriter.entry` writes: index, term and kind (17 bytes), then a blob (u32 length and
    /// bytes) or a config change (op, and the node as a string).
    static func encodedSize(_ e: LogEntry<[UInt8]>) -> Int {
        switch e.body {
        case .noop: return 17
        case .command(let c): return 21 + c.count
        case .config(let c): return 22 + c.node.rawValue.utf8.count
        }
    }

    public static func decode(_ bytes: [UInt8]) throws -> ConsensusMessage {
        var r = ByteReader(bytes)
        func bad(_ what: String) -> ConsensusWireError { ConsensusWireError(what) }
        guard let v = r.u8() else { throw bad("empty") }
        guard v == version else { throw bad("unknown version \(v)") }
        guard let kind = r.u8() else { throw bad("truncated") }
        let m: ConsensusMessage
        switch kind {
        case 0:
            guard let from = r.str(), let to = r.str(), let term = r.u64(), let body = r.u8() else { throw bad("truncated raft header") }
            let b: ClusterRaftMessage.Body
            switch body {
            case 0:
                guard let li = r.u64(), let lt = r.u64(), let f = r.u8() else { throw bad("truncated vote request") }
                b = .requestVote(lastLogIndex: li, lastLogTerm: lt, preVote: f & 1 != 0, transfer: f & 2 != 0)
            case 1:
                guard let f = r.u8() else { throw bad("truncated vote response") }
                b = .requestVoteResponse(granted: f & 1 != 0, preVote: f & 2 != 0)
            case 2:
                guard let pi = r.u64(), let pt = r.u64(), let n = r.u32(), n <= maxItems else { throw bad("truncated append") }
                var es: [LogEntry<ClusterCommand>] = []
                for _ in 0..<n {
                    guard let e = r.entry() else { throw bad("truncated entry") }
                    es.append(try typed(e))
                }
                guard let commit = r.u64() else { throw bad("truncated append") }
                b = .appendEntries(prevLogIndex: pi, prevLogTerm: pt, entries: es, leaderCommit: commit)
            case 3:
                guard let ok = r.u8(), let pi = r.u64(), let match = r.u64(), let has = r.u8() else { throw bad("truncated append response") }
                var ct: Term?
                if has == 1 { guard let t = r.u64() else { throw bad("truncated append response") }; ct = t }
                guard let ci = r.u64() else { throw bad("truncated append response") }
                b = .appendEntriesResponse(success: ok == 1, prevLogIndex: pi, matchIndex: match, conflictTerm: ct, conflictIndex: ci)
            case 4:
                guard let li = r.u64(), let lt = r.u64(), let c = r.config(), let d = r.blob() else { throw bad("truncated snapshot") }
                b = .installSnapshot(Snapshot(lastIndex: li, lastTerm: lt, config: c, data: try state(from: d)))
            case 5:
                guard let match = r.u64() else { throw bad("truncated snapshot response") }
                b = .installSnapshotResponse(matchIndex: match)
            case 6:
                b = .timeoutNow
            default:
                throw bad("unknown raft body \(body)")
            }
            m = .raft(ClusterRaftMessage(from: NodeID(from), to: NodeID(to), term: term, body: b))
        case 1:
            guard let from = r.str(), let to = r.str(), let body = r.u8() else { throw bad("truncated lease header") }
            let l: LeaseMessage
            switch body {
            case 0:
                guard let b = r.booking() else { throw bad("truncated accept") }
                l = .accept(b)
            case 1:
                guard let id = r.str(), let block = r.str(), let epoch = r.u64(), let ok = r.u8() else { throw bad("truncated accept reply") }
                l = .acceptReply(bookingID: id, block: block, epoch: epoch, ok: ok == 1)
            case 2:
                guard let block = r.str(), let epoch = r.u64() else { throw bad("truncated prepare") }
                l = .prepare(block: block, epoch: epoch)
            case 3:
                guard let block = r.str(), let epoch = r.u64(), let ok = r.u8(), let bs = r.bookings() else { throw bad("truncated promise") }
                l = .promise(block: block, epoch: epoch, ok: ok == 1, bookings: bs)
            case 4:
                guard let inc = r.u64() else { throw bad("truncated renew") }
                l = .renew(incarnation: inc)
            case 5:
                guard let bs = r.bookings() else { throw bad("truncated gossip") }
                l = .gossip(bs)
            case 6:
                guard let inc = r.u64() else { throw bad("truncated resign") }
                l = .resign(incarnation: inc)
            case 7:
                guard let block = r.str(), let epoch = r.u64() else { throw bad("truncated epoch refusal") }
                l = .epochRefused(block: block, epoch: epoch)
            case 8:
                guard let block = r.str(), let epoch = r.u64(), let round = r.u64() else { throw bad("truncated confirm") }
                l = .confirm(block: block, epoch: epoch, round: round)
            case 9:
                guard let block = r.str(), let epoch = r.u64(), let round = r.u64(), let ok = r.u8(), ok <= 1 else { throw bad("truncated confirm reply") }
                l = .confirmReply(block: block, epoch: epoch, round: round, ok: ok == 1)
            default:
                throw bad("unknown lease body \(body)")
            }
            m = .lease(LeaseEnvelope(from: NodeID(from), to: NodeID(to), body: l))
        case 2:
            guard let id = r.str(), let block = r.str(), let slot = r.u64(), let patient = r.str(), let hops = r.u8(),
                  let n = r.u32(), n <= 64 else { throw bad("truncated request") }
            var alternatives: [Int] = []
            for _ in 0..<n {
                guard let a = r.u64() else { throw bad("truncated request") }
                alternatives.append(Int(truncatingIfNeeded: Int64(bitPattern: a)))
            }
            guard let releases = r.optionalStr(), let tag = r.str(), let confirms = r.optionalStr(), let holdMs = r.u64() else {
                throw bad("truncated request")
            }
            var flags: UInt8 = 0
            if r.o < bytes.count {
                guard let f = r.u8(), f == 1 else { throw bad("unknown request flags") }
                flags = f
            }
            m = .request(BookingRequest(id: id, block: block, slot: Int(truncatingIfNeeded: Int64(bitPattern: slot)), patient: patient,
                                        alternatives: alternatives, releases: releases, confirms: confirms,
                                        holdMs: Int64(bitPattern: holdMs), tag: tag, hops: hops, onlyIfKnown: flags & 1 != 0))
        case 3:
            guard let k = r.u8() else { throw bad("truncated outcome") }
            if k == 0 {
                guard let b = r.booking() else { throw bad("truncated outcome") }
                m = .outcome(.booked(b))
            } else {
                guard let id = r.str(), let reason = r.str().flatMap(RefuseReason.init(rawValue:)) else { throw bad("bad refusal") }
                m = .outcome(.refused(requestID: id, reason: reason))
            }
        case 4:
            guard let d = r.blob() else { throw bad("truncated proposal") }
            m = .proposal(try unjson(ClusterCommand.self, d))
        default:
            throw bad("unknown kind \(kind)")
        }
        guard r.o == bytes.count else { throw bad("\(bytes.count - r.o) trailing bytes") }
        return m
    }

    // MARK: Raft state <-> bytes (FileRaftLog)

    public static func bytes(_ p: ClusterPersist, entryBytes: (LogEntry<ClusterCommand>) -> LogEntry<[UInt8]> = bytes,
                             stateBytes: (Snapshot<ClusterState>) -> [UInt8] = stateBytes) -> BytePersist {
        BytePersist(seq: p.seq, hardState: p.hardState,
                    snapshot: p.snapshot.map { Snapshot(lastIndex: $0.lastIndex, lastTerm: $0.lastTerm, config: $0.config, data: stateBytes($0)) },
                    truncateFrom: p.truncateFrom, entries: p.entries.map(entryBytes))
    }

    public static func typed(_ s: ByteRaftState) throws -> DurableRaftState<ClusterCommand, ClusterState> {
        let snap = try s.snapshot.map { Snapshot(lastIndex: $0.lastIndex, lastTerm: $0.lastTerm, config: $0.config, data: try state(from: $0.data)) }
        return DurableRaftState(hardState: s.hardState, snapshot: snap, entries: try s.entries.map(typed))
    }

    public static func bytes(_ e: LogEntry<ClusterCommand>) -> LogEntry<[UInt8]> {
        switch e.body {
        case .noop: return LogEntry(index: e.index, term: e.term, body: .noop)
        case .config(let c): return LogEntry(index: e.index, term: e.term, body: .config(c))
        case .command(let c): return LogEntry(index: e.index, term: e.term, body: .command(json(c)))
        }
    }

    static func typed(_ e: LogEntry<[UInt8]>) throws -> LogEntry<ClusterCommand> {
        switch e.body {
        case .noop: return LogEntry(index: e.index, term: e.term, body: .noop)
        case .config(let c): return LogEntry(index: e.index, term: e.term, body: .config(c))
        case .command(let c): return LogEntry(index: e.index, term: e.term, body: .command(try unjson(ClusterCommand.self, c)))
        }
    }

    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        // Encoding these plain value types cannot fail.
        return (try? Array(e.encode(value))) ?? []
    }

    static func unjson<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw ConsensusWireError("undecodable \(type): \(error)")
        }
    }
}

extension ByteWriter {
    /// The record in the first layout: its kind as `BookingKind.Fields`.
    package mutating func booking(_ b: Booking) {
        let f = b.kind.fields
        str(b.id); str(b.block); u64(UInt64(bitPattern: Int64(b.slot))); str(b.patient); u64(b.epoch); u32(b.generation)
        optionalStr(f.releases); str(f.tag); u64(UInt64(bitPattern: b.reofferAtMs))
        optionalStr(f.confirms); u64(UInt64(bitPattern: f.holdUntilMs)); optionalStr(f.refusal)
    }
    package mutating func optionalStr(_ s: String?) { if let s { u8(1); str(s) } else { u8(0) } }
    package mutating func bookings(_ bs: [Booking]) { u32(UInt32(bs.count)); for b in bs { booking(b) } }
}

extension ByteReader {
    /// `legacy`: the layout before holds (booking logs written by version 1 keep it). Nil also
    /// for fields that say no kind (`BookingKind.init?(id:block:fields:)`).
    package mutating func booking(legacy: Bool = false) -> Booking? {
        guard let id = str(), let block = str(), let slot = u64(), let patient = str(), let epoch = u64(), let generation = u32(),
              let releases = optionalStr(), let tag = str(), let reoffer = u64() else { return nil }
        var fields = BookingKind.Fields(releases: releases, tag: tag)
        if !legacy {
            guard let confirms = optionalStr(), let holdUntil = u64(), let refusal = optionalStr() else { return nil }
            fields.confirms = confirms
            fields.holdUntilMs = Int64(bitPattern: holdUntil)
            fields.refusal = refusal
        }
        guard let kind = BookingKind(id: id, block: block, fields: fields) else { return nil }
        return Booking(id: id, block: block, slot: Int(truncatingIfNeeded: Int64(bitPattern: slot)), patient: patient, epoch: epoch,
                       generation: generation, kind: kind, reofferAtMs: Int64(bitPattern: reoffer))
    }
    /// nil: malformed; .some(nil): absent.
    package mutating func optionalStr() -> String?? {
        guard let has = u8() else { return nil }
        if has == 0 { return .some(nil) }
        guard has == 1, let s = str() else { return nil }
        return .some(s)
    }
    /// `most`: a message from a peer carries at most `maxItems`; a node's own checksummed log may
    /// carry more (a rewrite before it was written in chunks put a whole long bucket in one record).
    package mutating func bookings(legacy: Bool = false, most: UInt32 = ConsensusWire.maxItems) -> [Booking]? {
        guard let n = u32(), n <= most else { return nil }
        var out: [Booking] = []
        for _ in 0..<n { guard let b = booking(legacy: legacy) else { return nil }; out.append(b) }
        return out
    }
}
