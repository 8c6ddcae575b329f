import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PKI
import Synchronization

/// How this node speaks on the mesh.
public struct MeshConfiguration: Sendable {
    public var nodeID: String
    public var clusterID: String
    /// The replicated store's schema version, announced in Hello; the session layer decides what
    /// to do with a peer on another schema.
    public var schemaVersion: UInt32
    /// The largest frame (value of the length field) this node accepts and writes.
    public var maximumFrameSize: Int
    /// Payloads at least this long are LZ4-compressed when that helps; `nil` never compresses.
    public var compressionThreshold: Int?
    /// How long TLS plus the Hello exchange may take before the connection is dropped.
    public var handshakeTimeout: TimeAmount
    public var connectTimeout: TimeAmount
    /// Inbound messages buffered per connection before reading from the socket pauses.
    public var inboundBufferHighWatermark: Int

    public init(
        nodeID: String,
        clusterID: String,
        schemaVersion: UInt32 = 1,
        maximumFrameSize: Int = MeshWire.defaultMaximumFrameSize,
        compressionThreshold: Int? = 1024,
        handshakeTimeout: TimeAmount = .seconds(10),
        connectTimeout: TimeAmount = .seconds(5),
        inboundBufferHighWatermark: Int = 64
    ) {
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.schemaVersion = schemaVersion
        self.maximumFrameSize = maximumFrameSize
        self.compressionThreshold = compressionThreshold
        self.handshakeTimeout = handshakeTimeout
        self.connectTimeout = connectTimeout
        self.inboundBufferHighWatermark = inboundBufferHighWatermark
    }

    var encodingOptions: MeshWire.EncodingOptions {
        .init(maximumFrameSize: self.maximumFrameSize, compressionThreshold: self.compressionThreshold)
    }

    var hello: Hello {
        Hello(schemaVersion: self.schemaVersion, nodeID: self.nodeID, clusterID: self.clusterID)
    }
}

/// One established mesh connection: a verified peer, a typed inbound stream and outbound writer.
///
/// Valid only inside the closure it is handed to; the connection closes when that returns.
/// Inbound is back-pressured (reading pauses when `inboundBufferHighWatermark` messages wait);
/// `send` suspends while the socket is not writable, so a slow peer slows its sender rather than
/// filling memory.
public struct MeshSession: Sendable {
    public let peer: MeshPeer
    public let inbound: NIOAsyncChannelInboundStream<MeshMessage>
    public let outbound: NIOAsyncChannelOutboundWriter<MeshMessage>
    /// The underlying channel, for closing from elsewhere and for diagnostics.
    public let channel: any Channel

    /// The frame limit this side writes under (this node's `maximumFrameSize`).
    public let maximumFrameSize: Int

    /// Sends one message. Throws `MeshProtocolError.messageTooLarge` (and sends nothing, the
    /// connection stays up) if it does not fit in one frame; split it and send the parts.
    public func send(_ message: MeshMessage) async throws {
        try MeshWire.checkFits(message, maximumFrameSize: self.maximumFrameSize)
        try await self.outbound.write(message)
    }

    public func send(contentsOf messages: [MeshMessage]) async throws {
        for message in messages { try MeshWire.checkFits(message, maximumFrameSize: self.maximumFrameSize) }
        try await self.outbound.write(contentsOf: messages)
    }
}

/// A connection that finished TCP setup; TLS and Hello are still under way.
///
/// A class for its `deinit`: when the listener closes while a connection is being accepted, NIO
/// drops the accepted connection without handing it out, and releasing an async channel that was
/// never run through `executeThenClose` traps (swift-nio issue 2813). One dropped unserved is
/// closed through `executeThenClose` here, which also keeps it alive until its writer is finished.
final class PendingConnection: Sendable {
    let channel: NIOAsyncChannel<MeshMessage, MeshMessage>
    let peer: EventLoopFuture<MeshPeer>
    private let served = Mutex(false)

    init(channel: NIOAsyncChannel<MeshMessage, MeshMessage>, peer: EventLoopFuture<MeshPeer>) {
        self.channel = channel
        self.peer = peer
    }

    /// `MeshPipeline.run` takes it over (and always closes it through `executeThenClose`).
    func markServed() { served.withLock { $0 = true } }

    deinit {
        guard !served.withLock({ $0 }) else { return }
        let channel = self.channel
        Task { try? await channel.executeThenClose { _, _ in } }
    }
}

enum MeshPipeline {
    /// Adds TLS, the frame codec, the Hello exchange and the connection guard, then wraps the
    /// channel for async use. Must run on the channel's event loop.
    static func configure(
        channel: any Channel,
        tlsHandler: any ChannelHandler,
        record: PeerRecord,
        configuration: MeshConfiguration,
        logger: Logger
    ) throws -> PendingConnection {
        let peerPromise = channel.eventLoop.makePromise(of: MeshPeer.self)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(tlsHandler)
        try sync.addHandler(MeshMessageDecoder.handler(maximumFrameSize: configuration.maximumFrameSize))
        try sync.addHandler(MeshMessageEncoderHandler(options: configuration.encodingOptions))
        try sync.addHandler(
            MeshHelloHandler(
                ownHello: configuration.hello, record: record, peerPromise: peerPromise,
                timeout: configuration.handshakeTimeout, logger: logger))
        try sync.addHandler(MeshConnectionGuard(logger: logger))
        let asyncChannel = try NIOAsyncChannel<MeshMessage, MeshMessage>(
            wrappingChannelSynchronously: channel,
            configuration: .init(
                backPressureStrategy: .init(
                    lowWatermark: max(1, configuration.inboundBufferHighWatermark / 2),
                    highWatermark: max(2, configuration.inboundBufferHighWatermark)),
                isOutboundHalfClosureEnabled: false,
                inboundType: MeshMessage.self,
                outboundType: MeshMessage.self))
        return PendingConnection(channel: asyncChannel, peer: peerPromise.futureResult)
    }

    /// Waits for TLS and Hello, then runs `body` with the session; closes the connection after.
    static func run<Result: Sendable>(
        _ pending: PendingConnection,
        maximumFrameSize: Int,
        logger: Logger,
        _ body: (MeshSession) async throws -> Result
    ) async throws -> Result {
        pending.markServed()
        let peer: MeshPeer
        do {
            peer = try await pending.peer.get()
        } catch {
            // Whatever failed (refused certificate, bad Hello, timeout), this connection is done.
            // Close it through executeThenClose: that also finishes the async writer, which NIO
            // requires before the channel wrapper may be released.
            try? await pending.channel.executeThenClose { _, _ in }
            throw error
        }
        var logger = logger
        logger[metadataKey: "mesh.peer"] = "\(peer.nodeID)"
        return try await pending.channel.executeThenClose { inbound, outbound in
            try await body(MeshSession(
                    peer: peer, inbound: inbound, outbound: outbound, channel: pending.channel.channel,
                    maximumFrameSize: maximumFrameSize))
        }
    }
}

/// The mesh's listening side: accepts mutual-TLS connections from member nodes.
///
/// ```swift
/// let server = try await MeshServer.bind(host: "0.0.0.0", port: 7400, configuration: config,
///                                        tls: tls, logger: logger)
/// try await server.run { session in
///     for try await message in session.inbound { ... }
/// }
/// ```
public struct MeshServer: Sendable {
    let serverChannel: NIOAsyncChannel<PendingConnection, Never>
    public let configuration: MeshConfiguration
    let logger: Logger

    /// The address actually bound (useful with port 0).
    public var localAddress: SocketAddress? { self.serverChannel.channel.localAddress }

    public static func bind(
        host: String,
        port: Int,
        configuration: MeshConfiguration,
        tls: MeshTLS,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MeshServer {
        var logger = logger
        logger[metadataKey: "mesh.node"] = "\(configuration.nodeID)"
        let connectionLogger = logger
        let serverChannel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    var logger = connectionLogger
                    if let remote = channel.remoteAddress { logger[metadataKey: "mesh.peer.address"] = "\(remote)" }
                    let record = PeerRecord()
                    return try MeshPipeline.configure(
                        channel: channel,
                        tlsHandler: tls.makeServerHandler(record: record, logger: logger),
                        record: record, configuration: configuration, logger: logger)
                }
            }
        logger.info("网状网络监听中 / mesh listening", metadata: ["mesh.address": "\(serverChannel.channel.localAddress.map { "\($0)" } ?? "?")"])
        return MeshServer(serverChannel: serverChannel, configuration: configuration, logger: logger)
    }

    /// Accepts connections until cancelled or `close()`d, running `handler` for each established
    /// session in its own child task (structured: `run` returns only after they have all ended).
    /// A connection's failure, refusal or error is logged and ends only that connection.
    ///
    /// To stop, call `close()` first and cancel afterwards: closing lets connections that were
    /// accepted but not yet handed out drain through the normal path. (Cancelling alone makes the
    /// accept stream drop such queued connections, and NIO traps when an unfinished async channel
    /// is released; the node's service wrapper in the next step must keep this order.)
    public func run(_ handler: @escaping @Sendable (MeshSession) async throws -> Void) async throws {
        let logger = self.logger
        try await withThrowingDiscardingTaskGroup { group in
            try await self.serverChannel.executeThenClose { inbound in
                for try await pending in inbound {
                    group.addTask {
                        do {
                            try await MeshPipeline.run(pending, maximumFrameSize: self.configuration.maximumFrameSize, logger: logger) { session in
                                logger.info("节点已连接 / peer connected", metadata: ["mesh.peer": "\(session.peer)"])
                                try await handler(session)
                            }
                        } catch {
                            logger.notice("连接结束 / connection ended", metadata: ["mesh.error": "\(error)"])
                        }
                    }
                }
            }
        }
    }

    /// Stops accepting; `run` then waits for the open sessions to end.
    public func close() async {
        try? await self.serverChannel.channel.close()
    }
}

/// The mesh's connecting side.
public struct MeshClient: Sendable {
    public let configuration: MeshConfiguration
    let tls: MeshTLS
    let logger: Logger
    let eventLoopGroup: any EventLoopGroup

    public init(
        configuration: MeshConfiguration,
        tls: MeshTLS,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        var logger = logger
        logger[metadataKey: "mesh.node"] = "\(configuration.nodeID)"
        self.configuration = configuration
        self.tls = tls
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }

    /// Connects, runs TLS (checking the server against the cluster CA, the cluster policy,
    /// `expectedNodeID` if given, and membership) and Hello, then runs `body` with the session.
    /// Throws if any of that fails; the connection closes when `body` returns.
    public func withSession<Result: Sendable>(
        host: String,
        port: Int,
        expectedNodeID: String? = nil,
        _ body: (MeshSession) async throws -> Result
    ) async throws -> Result {
        var logger = self.logger
        logger[metadataKey: "mesh.peer.address"] = "\(host):\(port)"
        let connectionLogger = logger
        let configuration = self.configuration
        let tls = self.tls
        let pending = try await ClientBootstrap(group: self.eventLoopGroup)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let record = PeerRecord()
                    return try MeshPipeline.configure(
                        channel: channel,
                        tlsHandler: try tls.makeClientHandler(expectedNodeID: expectedNodeID, record: record, logger: connectionLogger),
                        record: record, configuration: configuration, logger: connectionLogger)
                }
            }
        return try await MeshPipeline.run(pending, maximumFrameSize: configuration.maximumFrameSize, logger: logger, body)
    }
}
