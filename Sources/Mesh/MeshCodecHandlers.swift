import Logging
import NIOCore

/// Bytes to `MeshMessage`s: a thin shell around `MeshWire.parseFrame` / `decodeMessage`.
///
/// Install it as `ByteToMessageHandler(MeshMessageDecoder(...), maximumBufferSize: ...)` (see
/// `MeshMessageDecoder.handler`): the decoder refuses an oversized length as soon as it sees the
/// header, and the buffer bound is the second fence.
public struct MeshMessageDecoder: ByteToMessageDecoder {
    public typealias InboundOut = MeshMessage

    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int = MeshWire.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// The decoder wrapped in a `ByteToMessageHandler` whose buffer can hold at most one frame
    /// (after the decoder has taken every whole frame off, less than one frame can remain).
    public static func handler(maximumFrameSize: Int) -> ByteToMessageHandler<MeshMessageDecoder> {
        ByteToMessageHandler(
            MeshMessageDecoder(maximumFrameSize: maximumFrameSize),
            maximumBufferSize: maximumFrameSize + MeshWire.headerSize)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = try MeshWire.decode(&buffer, maximumFrameSize: self.maximumFrameSize) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let left = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: left)
            throw MeshProtocolError(
                .truncatedStream, zh: "连接在帧中途结束，剩余 \(left) 字节", en: "the stream ended inside a frame with \(left) bytes left over")
        }
        return .needMoreData
    }
}

/// `MeshMessage`s to bytes.
public struct MeshMessageEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MeshMessage

    public let options: MeshWire.EncodingOptions

    public init(options: MeshWire.EncodingOptions = .init()) {
        self.options = options
    }

    public func encode(data: MeshMessage, out: inout ByteBuffer) throws {
        try MeshWire.encode(data, into: &out, options: self.options)
    }
}

/// Sits after the codec: any error on the connection (a malformed, truncated, oversized or
/// unknown frame; a TLS failure) is logged with its reason and closes *this* connection.
/// The error is passed on, so whoever reads the inbound stream sees it too.
public final class MeshConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = MeshMessage
    public typealias InboundOut = MeshMessage

    private let logger: Logger
    private var closing = false

    public init(logger: Logger) {
        self.logger = logger
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.closing {
            self.closing = true
            var metadata: Logger.Metadata = ["mesh.error": "\(error)"]
            if let protocolError = error as? MeshProtocolError {
                metadata["mesh.error.code"] = "\(protocolError.code)"
            }
            if let remote = context.channel.remoteAddress {
                metadata["mesh.peer.address"] = "\(remote)"
            }
            self.logger.warning("关闭连接 / closing connection", metadata: metadata)
            context.close(promise: nil)
        }
        context.fireErrorCaught(error)
    }
}

/// `MeshMessage`s to frames on a live connection.
///
/// `MeshSession.send` checks the size first (`MeshWire.checkFits`), so encoding cannot fail here in
/// practice. If it ever does, the write fails and the error goes down the pipeline, which closes
/// the connection: writes from the async channel carry no promise, and a message must never be
/// dropped silently.
public final class MeshMessageEncoderHandler: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = MeshMessage
    public typealias OutboundOut = ByteBuffer

    private let options: MeshWire.EncodingOptions

    public init(options: MeshWire.EncodingOptions = .init()) {
        self.options = options
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var out = context.channel.allocator.buffer(capacity: 256)
        do {
            try MeshWire.encode(self.unwrapOutboundIn(data), into: &out, options: self.options)
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
            return
        }
        context.write(self.wrapOutboundOut(out), promise: promise)
    }
}
