import Consensus
import Services
import AdminAPI
import Foundation
import Logging
import Mesh
import ServiceLifecycle

extension MeshNode {
    /// The consensus service: the shell's threads, one consensus link per peer (apart from the
    /// replication links, so a large change batch never delays a heartbeat or a vote), and this
    /// node's own entry in the replicated membership. On a graceful shutdown the node resigns
    /// its liveness first, so its blocks move to other nodes at once rather than after a timeout.
    func runConsensus() async {
        consensus.start()
        await withDiscardingTaskGroup { group in
            // The links end when the shell stops (their streams finish), so they carry the
            // resignation below before they go.
            for peer in self.config.peers.map(\.id) {
                group.addTask { await self.runConsensusLink(peer) }
            }
            group.addTask { await cancelWhenGracefulShutdown { await self.keepRegistered() } }
            group.addTask { for await evicted in self.consensus.evictions { self.closeChannels(ofEvicted: evicted) } }
            group.addTask {
                do {
                    try await gracefulShutdown()
                    await self.resign(for: .seconds(3))
                } catch {
                    // Cancelled rather than shut down gracefully: stop at once.
                }
                self.consensus.stop()
            }
            // A consensus link for each member that joins later (its replication link adopts it).
            while !self.consensus.isStopped, !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let peers = self.runtime.withLock { Array($0.peers.keys) }
                for peer in peers where self.consensus.addPeer(peer) {
                    group.addTask { await self.runConsensusLink(peer) }
                }
            }
        }
    }

    /// Hands this node's blocks on: resign (repeated), until the committed history shows this
    /// node no longer live, or `limit` passes (then the leader's timeout does it).
    func resign(for limit: Duration) async {
        logger.notice("正常关闭：交出租约 / clean shutdown: handing leases over")
        let me = NodeID(config.nodeID)
        let deadline = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < deadline {
            consensus.resign()
            if !consensus.view.cluster.isLive(me) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// One outbound consensus link to `peer`: whatever is queued goes out in one write; when the
    /// link is down messages wait in a bounded mailbox (the oldest are dropped: Raft and the lease
    /// protocol retransmit what matters).
    func runConsensusLink(_ peerID: String) async {
        guard let mailbox = consensus.outbound(for: peerID) else { return }
        var rng = SystemRandomNumberGenerator()
        let backoff = Backoff(initialMillis: config.tuning.reconnectInitialMillis, capMillis: config.tuning.reconnectMaxMillis)
        var attempt = 0
        var tooLargeLoggedAt: ContinuousClock.Instant?
        while !Task.isCancelled, !consensus.isStopped {
            guard let address = runtime.withLock({ $0.peers[peerID]?.address }) else { return }
            mailbox.linkDown(nowMs: consensus.nowMs())
            do {
                try await client.withSession(host: address.host, port: address.port, expectedNodeID: peerID) { session in
                    attempt = 0
                    mailbox.linkUp()
                    let channelID = self.register(session.channel, as: .link, peer: peerID)
                    defer { self.unregister(channelID) }
                    while let batch = await mailbox.takeAll() {
                        try await session.send(contentsOf: batch.map { .raft($0) })
                    }
                }
                return // the shell stopped: the mailbox finished
            } catch let error as MeshProtocolError where error.code == .messageTooLarge {
                // Raft retransmits it, and it will never fit: the peer cannot catch up this way.
                let now = ContinuousClock.now
                if tooLargeLoggedAt.map({ now >= $0 + .seconds(60) }) ?? true {
                    tooLargeLoggedAt = now
                    logger.error("共识消息超过帧上限，对端无法追上（多为过大的快照）/ a consensus message is over the frame limit and the peer cannot catch up (most likely a snapshot too large)",
                                 metadata: ["mesh.peer": "\(peerID)", "node.error": "\(error)"])
                }
            } catch {
                // The batch being written when the link failed is lost with it (retransmitted).
            }
            if Task.isCancelled || consensus.isStopped { return }
            attempt += 1
            try? await Task.sleep(for: .milliseconds(backoff.delayMillis(attempt: attempt, using: &rng)))
        }
    }

    /// Keeps this node's entry (address, department, certificate serial) in the replicated
    /// membership (the leader takes such a proposal only from the node it describes), and block
    /// definitions proposed here until they are committed.
    func keepRegistered() async {
        let me = MemberInfo(node: NodeID(config.nodeID), address: "\(config.mesh.host):\(meshPort)",
                            department: config.department, certificateSerial: ownSerial)
        while !Task.isCancelled {
            let recorded = consensus.view.cluster.members[me.node]
            if let recorded, recorded != me, !MemberSerials.shouldRegister(own: me, recorded: recorded) {
                // A rotation recorded a newer certificate: this process keeps the old one until it restarts.
            } else if recorded != me {
                consensus.propose(.upsertMember(me))
            }
            reproposeBlocks()
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
