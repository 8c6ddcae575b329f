import LZ4

// A snapshot's state in its compressed form, and its transfer in chunks: after a few weeks of a
// large hospital, the quota buckets alone make the state larger than one mesh frame, and a
// follower that lags behind the log's compaction can only catch up by snapshot.
// Layout: `Consensus.docc/PROTOCOL.md`, "On the wire".

extension ConsensusWire {
    /// The first byte of a state in the compressed form (the JSON form starts with `{`).
    static let compressedStateForm: UInt8 = 1
    /// Uncompressed bytes per LZ4 piece of a compressed state.
    static let statePieceBytes = 4 << 20
    /// The largest state this node inflates, whoever sent it.
    public static let maximumStateBytes = 2 << 30

    /// A snapshot's state as it is persisted and sent: its JSON in LZ4 pieces.
    public static func stateBytes(_ s: Snapshot<ClusterState>) -> [UInt8] {
        let plain = json(s.data)
        var w = ByteWriter()
        w.u8(compressedStateForm)
        var start = 0
        while start < plain.count {
            let end = min(start + statePieceBytes, plain.count)
            // A piece is at most 4 MiB, far below `LZ4Block`'s limit: compressing it cannot fail.
            w.blob((try? LZ4Block.compress(Array(plain[start..<end]))) ?? [])
            start = end
        }
        return w.bytes
    }

    /// The state in either form: compressed, or the plain JSON that logs and peers of the
    /// previous version hold.
    public static func state(from bytes: [UInt8]) throws -> ClusterState {
        guard bytes.first == compressedStateForm else { return try unjson(ClusterState.self, bytes) }
        var r = ByteReader(bytes)
        r.o = 1
        var plain: [UInt8] = []
        while r.o < bytes.count {
            guard let piece = r.blob(), piece.count >= 4 else { throw ConsensusWireError("truncated state piece") }
            let declared = Int(piece[0]) | Int(piece[1]) << 8 | Int(piece[2]) << 16 | Int(piece[3]) << 24
            guard declared <= statePieceBytes, plain.count + declared <= maximumStateBytes else {
                throw ConsensusWireError("a state piece declares \(declared) bytes, over the limits")
            }
            do { plain.append(contentsOf: try LZ4Block.decompress(piece)) } catch {
                throw ConsensusWireError("a state piece does not inflate: \(error)")
            }
        }
        return try unjson(ClusterState.self, plain)
    }
}

/// One part of an `installSnapshot` message: the state's bytes from `offset`, with everything
/// else the message carries repeated in each part.
public struct SnapshotChunk: Sendable, Hashable {
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var lastIndex: LogIndex
    public var lastTerm: Term
    public var config: ClusterConfig
    /// The length of the whole state, in its compressed form.
    public var total: UInt64
    public var offset: UInt64
    public var bytes: [UInt8]
}

extension ConsensusWire {
    /// The largest state a chunked transfer may announce (compressed bytes).
    public static let maximumTransferBytes: UInt64 = 1 << 30

    /// `message` (an `installSnapshot`) as encoded chunks of at most `chunkBytes` state bytes each.
    public static func snapshotChunks(_ message: ClusterRaftMessage, state: [UInt8], chunkBytes: Int) -> [[UInt8]] {
        guard case .installSnapshot(let s) = message.body else { return [] }
        var out: [[UInt8]] = []
        var offset = 0
        repeat {
            let end = min(offset + max(1, chunkBytes), state.count)
            var w = ByteWriter()
            w.u8(version); w.u8(5)
            w.str(message.from.rawValue); w.str(message.to.rawValue); w.u64(message.term)
            w.u64(s.lastIndex); w.u64(s.lastTerm); w.config(s.config)
            w.u64(UInt64(state.count)); w.u64(UInt64(offset)); w.blob(Array(state[offset..<end]))
            out.append(w.bytes)
            offset = end
        } while offset < state.count
        return out
    }

    /// What a peer sent: a whole message, or one chunk of a snapshot.
    public enum Inbound: Sendable {
        case message(ConsensusMessage)
        case snapshotChunk(SnapshotChunk)
    }

    /// The `installSnapshot` message a complete chunk (`SnapshotAssembly.add`) carries.
    public static func installSnapshot(_ whole: SnapshotChunk) throws -> ClusterRaftMessage {
        guard whole.offset == 0, UInt64(whole.bytes.count) == whole.total else {
            throw ConsensusWireError("a snapshot with \(whole.bytes.count) of \(whole.total) bytes is not complete")
        }
        let state = try state(from: whole.bytes)
        return ClusterRaftMessage(from: whole.from, to: whole.to, term: whole.term,
                                  body: .installSnapshot(Snapshot(lastIndex: whole.lastIndex, lastTerm: whole.lastTerm, config: whole.config, data: state)))
    }

    public static func decodeInbound(_ bytes: [UInt8]) throws -> Inbound {
        guard bytes.count >= 2, bytes[0] == version, bytes[1] == 5 else { return .message(try decode(bytes)) }
        var r = ByteReader(bytes)
        r.o = 2
        guard let from = r.str(), let to = r.str(), let term = r.u64(), let li = r.u64(), let lt = r.u64(), let c = r.config(),
              let total = r.u64(), let offset = r.u64(), let part = r.blob() else { throw ConsensusWireError("truncated snapshot chunk") }
        guard r.o == bytes.count else { throw ConsensusWireError("\(bytes.count - r.o) trailing bytes") }
        guard total <= maximumTransferBytes, offset <= total, UInt64(part.count) <= total - offset, !part.isEmpty else {
            throw ConsensusWireError("a snapshot chunk at \(offset) of \(part.count) bytes does not fit a state of \(total) bytes")
        }
        return .snapshotChunk(SnapshotChunk(from: NodeID(from), to: NodeID(to), term: term, lastIndex: li, lastTerm: lt, config: c,
                                            total: total, offset: offset, bytes: part))
    }
}

/// Puts chunks back together, one snapshot under way per sender. Chunks come in order on a
/// link; one that does not continue the snapshot under way (a gap after a reconnect, or another
/// snapshot) drops it, and the leader sends the whole snapshot again.
public struct SnapshotAssembly: Sendable {
    private struct Partial: Sendable {
        var first: SnapshotChunk
        var bytes: [UInt8]
    }
    private var partials: [NodeID: Partial] = [:]

    public init() {}

    /// The whole state, as one chunk at offset 0, once `chunk` completes it; nil while parts are missing.
    public mutating func add(_ chunk: SnapshotChunk) -> SnapshotChunk? {
        var p: Partial
        if chunk.offset == 0 {
            p = Partial(first: chunk, bytes: [])
            p.bytes.reserveCapacity(Int(chunk.total))
        } else if let q = partials[chunk.from], q.first.term == chunk.term, q.first.lastIndex == chunk.lastIndex,
                  q.first.lastTerm == chunk.lastTerm, q.first.total == chunk.total, UInt64(q.bytes.count) == chunk.offset {
            p = q
        } else {
            partials[chunk.from] = nil
            return nil
        }
        partials[chunk.from] = nil  // the buffer is uniquely held while it grows
        p.bytes.append(contentsOf: chunk.bytes)
        guard UInt64(p.bytes.count) == chunk.total else {
            partials[chunk.from] = p
            return nil
        }
        var whole = p.first
        whole.bytes = p.bytes
        return whole
    }

    /// Bytes held for snapshots under way.
    public var heldBytes: Int { partials.values.reduce(0) { $0 + $1.bytes.count } }
}
