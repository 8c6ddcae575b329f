import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Follows one server-sent event stream over HTTPS (the waiting-room display's), as a browser's
/// EventSource does: each event's `data` is handed to `onEvent` the moment its blank line
/// arrives, with the monotonic time it arrived.
public final class EventStreamClient: Sendable {
    let channel: any Channel

    init(channel: any Channel) { self.channel = channel }

    public static func open(host: String, port: Int, path: String, caPEM: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            onEvent: @escaping @Sendable (_ data: String, _ atNanos: UInt64) -> Void) async throws -> EventStreamClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(EventStreamHandler(onEvent: onEvent))
                }
            }
            .connect(host: host, port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Accept", value: "text/event-stream")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return EventStreamClient(channel: channel)
    }

    public func close() async { try? await channel.close() }
}

/// Splits the response body into events (blank-line separated) and passes on their data lines.
final class EventStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let onEvent: @Sendable (String, UInt64) -> Void
    private var pending: [UInt8] = []

    init(onEvent: @escaping @Sendable (String, UInt64) -> Void) { self.onEvent = onEvent }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .body(let buffer) = unwrapInboundIn(data) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        pending += buffer.readableBytesView
        while let end = Self.blankLine(in: pending) {
            let event = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
            pending.removeSubrange(..<end.upperBound)
            let data = event.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { $0.dropFirst(6) }.joined(separator: "\n")
            if !data.isEmpty { onEvent(data, now) }
        }
    }

    static func blankLine(in bytes: [UInt8]) -> Range<Int>? {
        guard bytes.count >= 2 else { return nil }
        for i in 0..<(bytes.count - 1) where bytes[i] == 10 && bytes[i + 1] == 10 { return i..<(i + 2) }
        return nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
