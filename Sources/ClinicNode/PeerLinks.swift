import Foundation
import Services
import Logging
import Mesh
import NIOCore
import ReplicatedCore
import ReplicatedStore
import Synchronization

/// Conversions between the store's version vector and the mesh's wire entries.
enum WireVector {
    static func entries(_ vector: ReplicatedCore.VersionVector) -> [VersionEntry] {
        vector.sortedEntries.map { VersionEntry(nodeID: $0.origin.node, incarnation: $0.origin.incarnation, seq: $0.seq) }
    }

    /// A peer's entries as a store vector; repeated origins keep their highest sequence.
    static func vector(_ entries: [VersionEntry]) -> ReplicatedCore.VersionVector {
        var vector = ReplicatedCore.VersionVector()
        for entry in entries where !entry.nodeID.isEmpty && entry.seq <= UInt64(Int64.max) {
            let origin = OriginID(node: entry.nodeID, incarnation: entry.incarnation)
            vector[origin] = max(vector[origin], entry.seq)
        }
        return vector
    }
}

enum LinkEvent: Sendable {
    case message(MeshMessage)
    case inboundEnded
    case localWrite
    case tick
}

/// At most one pending local-write wake-up and one tick per link, whatever the write rate.
final class LinkFlags: Sendable {
    private let state = Mutex<(write: Bool, tick: Bool)>((false, false))
    func raiseWrite() -> Bool { state.withLock { s in defer { s.write = true }; return !s.write } }
    func raiseTick() -> Bool { state.withLock { s in defer { s.tick = true }; return !s.tick } }
    func clearWrite() { state.withLock { $0.write = false } }
    func clearTick() { state.withLock { $0.tick = false } }
}

/// The pushing side of one link: what the peer has acknowledged, what was sent past that, and the
/// requests still waiting for their version-vector answer (answers come back in order).
struct LinkSender {
    enum Pending { case batch, probe }

    var pending: [Pending] = []
    var inFlightBatches = 0
    /// What the peer has, as far as this side knows (acknowledged, plus batches sent since).
    var sent: ReplicatedCore.VersionVector?
    var lastProbeNanos: UInt64 = 0
}

extension MeshNode {
    /// Keeps one outbound session to `peer` up: connect, push, reconnect with backoff and jitter.
    func runLink(_ peerID: String) async {
        var rng = SystemRandomNumberGenerator()
        let backoff = Backoff(initialMillis: config.tuning.reconnectInitialMillis, capMillis: config.tuning.reconnectMaxMillis)
        var attempt = 0
        var logger = self.logger
        logger[metadataKey: "mesh.peer"] = "\(peerID)"
        while !Task.isCancelled {
            guard let address = runtime.withLock({ $0.peers[peerID]?.address }) else { return }
            do {
                try await client.withSession(host: address.host, port: address.port, expectedNodeID: peerID) { session in
                    attempt = 0
                    let channelID = self.register(session.channel, as: .link, peer: peerID)
                    self.runtime.withLock {
                        $0.peers[peerID]?.outboundUp = true
                        $0.peers[peerID]?.lastError = nil
                    }
                    defer {
                        self.unregister(channelID)
                        self.runtime.withLock { $0.peers[peerID]?.outboundUp = false }
                    }
                    self.touch(peerID)
                    logger.info("已连接对端 / link to peer up")
                    try await self.driveLink(session: session, peerID: peerID, logger: logger)
                }
            } catch {
                let text = "\(error)"
                let changed = runtime.withLock { r in
                    defer { r.peers[peerID]?.lastError = text }
                    return r.peers[peerID]?.lastError != text
                }
                // Log each new failure once, not every retry.
                if changed { logger.notice("对端连接失败，将重试 / link to peer failed, retrying", metadata: ["mesh.error": "\(text)"]) }
            }
            if Task.isCancelled { return }
            attempt += 1
            let delay = backoff.delayMillis(attempt: attempt, using: &rng)
            try? await Task.sleep(for: .milliseconds(delay))
        }
    }

    /// Runs one established outbound session until it ends, fails or the node shuts down.
    func driveLink(session: MeshSession, peerID: String, logger: Logger) async throws {
        let (events, sink) = AsyncStream.makeStream(of: LinkEvent.self, bufferingPolicy: .bufferingOldest(1024))
        let flags = LinkFlags()
        let (signals, signalID) = self.signals.register()
        defer { self.signals.unregister(signalID) }
        let tuning = config.tuning
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The peer only ever answers what this side asked (bounded by the in-flight
                // limit); a peer that floods the buffer is misbehaving, and the link is dropped.
                do {
                    for try await message in session.inbound {
                        if case .dropped = sink.yield(.message(message)) {
                            logger.warning("对端发送过多未请求的消息，断开 / peer sent too many unrequested messages, dropping the link")
                            session.channel.close(promise: nil)
                            break
                        }
                    }
                } catch {
                    logger.notice("对端会话读取结束 / link read ended", metadata: ["mesh.error": "\(error)"])
                }
                sink.yield(.inboundEnded)
                sink.finish()
            }
            group.addTask {
                for await _ in signals where flags.raiseWrite() { sink.yield(.localWrite) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(tuning.heartbeatMillis))
                    if self.silentFor(peerID) > UInt64(tuning.peerTimeoutMillis) * 1_000_000 {
                        // Also unblocks a send stuck on a peer that stopped reading.
                        logger.warning("对端无响应，断开重连 / peer silent too long, dropping the link")
                        session.channel.close(promise: nil)
                        sink.finish()
                        return
                    }
                    if flags.raiseTick() { sink.yield(.tick) }
                }
            }
            var sender = LinkSender()
            try await self.probe(&sender, session: session)
            try await self.heartbeat(session: session)
            loop: for await event in events {
                switch event {
                case .message(let message):
                    self.touch(peerID)
                    switch message {
                    case .versionVector(let wire):
                        guard !sender.pending.isEmpty else {
                            logger.warning("对端发送了未请求的版本向量，断开 / peer sent an unrequested version vector, dropping the link")
                            break loop
                        }
                        if sender.pending.removeFirst() == .batch { sender.inFlightBatches -= 1 }
                        let vector = WireVector.vector(wire.entries)
                        if sender.pending.isEmpty {
                            // Nothing outstanding: the peer's own word is the truth (repairs losses).
                            sender.sent = vector
                        } else {
                            sender.sent?.formMax(vector)
                            if sender.sent == nil { sender.sent = vector }
                        }
                        let at = clock.monotonicNanos()
                        runtime.withLock {
                            $0.peers[peerID]?.acked = vector
                            $0.peers[peerID]?.lastVectorNanos = at
                        }
                        try await self.pump(&sender, session: session, peerID: peerID)
                    case .heartbeatAck(let ack):
                        let now = clock.monotonicNanos()
                        let rtt = now &- ack.echo.sentMonotonicNanos
                        if rtt < 60_000_000_000 {
                            runtime.withLock {
                                $0.peers[peerID]?.estimator.add(
                                    sentWallMillis: ack.echo.wallMillis, peerWallMillis: ack.wallMillis, rttNanos: rtt, nowMonotonicNanos: now)
                            }
                        }
                    case .error(let error):
                        logger.notice("对端报告错误并关闭 / peer reported an error", metadata: ["mesh.code": "\(error.code)", "mesh.message": "\(error.message)"])
                        break loop
                    default:
                        logger.debug("忽略对端消息 / ignoring peer message", metadata: ["mesh.type": "\(message.type)"])
                    }
                case .inboundEnded:
                    break loop
                case .localWrite:
                    flags.clearWrite()
                    try await self.pump(&sender, session: session, peerID: peerID)
                case .tick:
                    flags.clearTick()
                    try await self.heartbeat(session: session)
                    let now = clock.monotonicNanos()
                    if now &- sender.lastProbeNanos >= UInt64(tuning.antiEntropyMillis) * 1_000_000, sender.pending.count <= tuning.maxInFlightBatches {
                        try await self.probe(&sender, session: session)
                    }
                    try await self.pump(&sender, session: session, peerID: peerID)
                }
            }
            group.cancelAll()
        }
    }

    func silentFor(_ peerID: String) -> UInt64 {
        let now = clock.monotonicNanos()
        guard let last = runtime.withLock({ $0.peers[peerID]?.lastContactNanos }) else { return 0 }
        return now &- last
    }

    func heartbeat(session: MeshSession) async throws {
        try await session.send(.heartbeat(Heartbeat(
            hlc: replica.currentHLC().rawValue, wallMillis: clock.wallMillis(), sentMonotonicNanos: clock.monotonicNanos())))
    }

    /// Asks the peer for its version vector (anti-entropy: the answer resets what to send).
    func probe(_ sender: inout LinkSender, session: MeshSession) async throws {
        let own = try await offload { try self.replica.versionVector() }
        try await session.send(.versionVector(Mesh.VersionVector(entries: WireVector.entries(own))))
        sender.pending.append(.probe)
        sender.lastProbeNanos = clock.monotonicNanos()
    }

    /// Sends what the peer lacks, as long as fewer than `maxInFlightBatches` batches are unacknowledged.
    func pump(_ sender: inout LinkSender, session: MeshSession, peerID: String) async throws {
        guard var base = sender.sent else { return }
        var limit = config.tuning.batchChanges
        while sender.inFlightBatches < config.tuning.maxInFlightBatches {
            let since = base
            let batchLimit = limit
            let batch = try await offload { try self.replica.changes(since: since, limit: batchLimit) }
            if base.dominates(batch.coverage) { break }
            let bytes = try ChangeBatchCodec.encodeCompressed(batch)
            let message = MeshMessage.changeBatch(Mesh.ChangeBatch(coverage: WireVector.entries(batch.coverage), batch: bytes))
            do {
                try await session.send(message)
            } catch let error as MeshProtocolError where error.code == .messageTooLarge && limit > 1 {
                limit = max(1, limit / 4)
                continue
            }
            sender.pending.append(.batch)
            sender.inFlightBatches += 1
            base.formMax(batch.coverage)
            sender.sent = base
            let count = batch.changes.count
            runtime.withLock { $0.peers[peerID]?.changesSent += count }
            metrics.changesSent(to: peerID, count: count)
        }
    }

    /// The receiving side of a peer's outbound link: merge its batches, acknowledge each with this
    /// node's version vector, answer probes and heartbeats.
    func serveInbound(_ session: MeshSession) async throws {
        let peerID = session.peer.nodeID
        let channelID = register(session.channel, as: .inbound, peer: peerID)
        runtime.withLock { $0.peers[peerID]?.inboundSessions += 1 }
        defer {
            unregister(channelID)
            runtime.withLock { $0.peers[peerID]?.inboundSessions -= 1 }
        }
        var logger = self.logger
        logger[metadataKey: "mesh.peer"] = "\(peerID)"
        for try await message in session.inbound {
            touch(peerID)
            switch message {
            case .heartbeat(let beat):
                try await session.send(.heartbeatAck(HeartbeatAck(echo: beat, hlc: replica.currentHLC().rawValue, wallMillis: clock.wallMillis())))
            case .versionVector:
                try await sendOwnVector(session)
            case .changeBatch(let wire):
                let batch: ReplicatedCore.ChangeBatch
                do {
                    batch = try ChangeBatchCodec.decodeCompressed(wire.batch)
                } catch {
                    logger.warning("无法解码变更批次，断开 / undecodable change batch, closing", metadata: ["mesh.error": "\(error)"])
                    try? await session.send(.error(MeshErrorMessage(code: .protocolViolation, message: "undecodable change batch")))
                    return
                }
                let report = try await offload { try self.replica.apply(batch) }
                for observe in batchObservers.withLock({ $0 }) { observe(batch) }
                if report.rejected > 0 {
                    logger.warning("拒绝了畸形变更 / rejected malformed changes", metadata: ["store.rejected": "\(report.rejected)"])
                }
                runtime.withLock { $0.peers[peerID]?.batchesReceived += 1 }
                metrics.batchReceived(from: peerID, changes: batch.changes.count)
                try await sendOwnVector(session)
            case .error(let error):
                logger.notice("对端报告错误 / peer reported an error", metadata: ["mesh.code": "\(error.code)", "mesh.message": "\(error.message)"])
                return
            case .snapshotRequest(let request):
                try await serveSnapshot(request, session: session, logger: logger)
            case .raft(let bytes):
                consensus.received(bytes, from: peerID)
            default:
                logger.debug("忽略对端消息 / ignoring peer message", metadata: ["mesh.type": "\(message.type)"])
            }
        }
    }

    func sendOwnVector(_ session: MeshSession) async throws {
        let own = try await offload { try self.replica.versionVector() }
        try await session.send(.versionVector(Mesh.VersionVector(entries: WireVector.entries(own))))
    }

    /// Serves a snapshot: `VACUUM INTO` a temporary file (writes go on meanwhile), then the file in
    /// chunks from `resumeOffset`; `send` waits while the socket is full, so memory stays bounded.
    func serveSnapshot(_ request: SnapshotRequest, session: MeshSession, logger: Logger) async throws {
        let path = (config.dataDir as NSString).appendingPathComponent("snapshot-\(UUID().uuidString).sqlite")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await offload { try self.replica.writeSnapshot(to: path) }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
        let cap = config.tuning.maxSnapshotBytes
        if size > UInt64(cap) {
            // Say so before sending anything: the requester starts empty instead of fetching in vain.
            let error = MeshNode.snapshotTooLarge(size: size, cap: cap, peer: config.nodeID)
            logger.warning("快照超过上限，拒绝发送 / snapshot over the cap, not sent", metadata: ["node.snapshot.bytes": "\(size)", "node.snapshot.cap": "\(cap)"])
            try await session.send(.error(MeshErrorMessage(code: .snapshotTooLarge, message: "\(error.zh) / \(error.en)")))
            return
        }
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var offset = min(request.resumeOffset, size)
        try handle.seek(toOffset: offset)
        let chunk = MeshNode.snapshotChunkBytes
        while true {
            let data = try handle.read(upToCount: chunk) ?? Data()
            let next = offset + UInt64(data.count)
            let isFinal = data.count < chunk || next >= size
            try await session.send(.snapshotChunk(SnapshotChunk(snapshotID: request.snapshotID, offset: offset, isFinal: isFinal, bytes: Array(data))))
            offset = next
            if isFinal { break }
        }
        logger.info("已发送快照 / snapshot sent", metadata: ["node.snapshot.bytes": "\(size)"])
    }
}

extension MeshNode {
    static let snapshotChunkBytes = 1 << 20

    /// Why a snapshot of `size` bytes (or more, if not known yet) from `peer` is refused.
    static func snapshotTooLarge(size: UInt64?, cap: Int64, peer: String) -> NodeError {
        let sizeZh = size.map { "\($0) 字节" } ?? "超过 \(cap) 字节"
        let sizeEn = size.map { "\($0) bytes" } ?? "more than \(cap) bytes"
        return NodeError(
            .snapshot,
            zh: "节点 \(peer) 的快照（\(sizeZh)）超过上限 tuning.max_snapshot_bytes = \(cap) 字节，已拒绝；如需按快照追赶，请在双方配置中调大该值，否则新节点以空库启动并通过变更流追赶。",
            en: "the snapshot of node \(peer) (\(sizeEn)) exceeds tuning.max_snapshot_bytes = \(cap) bytes and was refused; raise it on both nodes to catch up by snapshot, otherwise the new node starts empty and catches up through the change stream.")
    }

    /// A new node (no database yet) asks its peers, in config order, for a snapshot; the first one
    /// that arrives whole and checks out becomes its database. Returns the peer it came from, or
    /// nil (then the node starts empty and catches up through the change stream alone).
    static func fetchSnapshot(config: NodeConfig, client: MeshClient, databasePath: String, logger: Logger) async -> String? {
        for peer in config.peers {
            let temporary = databasePath + ".incoming-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: temporary) }
            do {
                let snapshotID = UInt64.random(in: 1...UInt64.max)
                try await client.withSession(host: peer.host, port: peer.port, expectedNodeID: peer.id) { session in
                    guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
                          let handle = FileHandle(forWritingAtPath: temporary) else {
                        throw NodeError(.snapshot, zh: "无法创建临时文件 \(temporary)。", en: "cannot create the temporary file \(temporary).")
                    }
                    defer { try? handle.close() }
                    try await session.send(.snapshotRequest(SnapshotRequest(snapshotID: snapshotID)))
                    var offset: UInt64 = 0
                    for try await message in session.inbound {
                        switch message {
                        case .snapshotChunk(let chunk) where chunk.snapshotID == snapshotID:
                            guard chunk.offset == offset else {
                                throw NodeError(.snapshot, zh: "快照分块偏移不连续。", en: "snapshot chunk offsets are not contiguous.")
                            }
                            // Checked before writing: an over-size snapshot never fills the disk.
                            guard offset + UInt64(chunk.bytes.count) <= UInt64(config.tuning.maxSnapshotBytes) else {
                                throw MeshNode.snapshotTooLarge(size: nil, cap: config.tuning.maxSnapshotBytes, peer: peer.id)
                            }
                            try handle.write(contentsOf: chunk.bytes)
                            offset += UInt64(chunk.bytes.count)
                            if chunk.isFinal {
                                try handle.synchronize()
                                return
                            }
                        case .error(let error):
                            throw NodeError(.snapshot, zh: "对端拒绝提供快照：\(error.message)", en: "the peer refused the snapshot: \(error.message)")
                        default:
                            continue
                        }
                    }
                    throw NodeError(.snapshot, zh: "快照未传完连接就断了。", en: "the connection ended before the snapshot was complete.")
                }
                let vector = try Replica.adoptSnapshot(at: temporary, as: config.nodeID, databasePath: databasePath)
                logger.notice("新节点已采用快照 / new node adopted a snapshot", metadata: ["node.snapshot.peer": "\(peer.id)", "node.snapshot.vector": "\(vector)"])
                return peer.id
            } catch {
                logger.notice("从对端获取快照失败 / fetching a snapshot from peer failed", metadata: ["mesh.peer": "\(peer.id)", "node.error": "\(error)"])
            }
        }
        logger.notice("没有取得快照，以空库启动并通过变更流追赶 / no snapshot, starting empty and catching up by the change stream")
        return nil
    }
}
