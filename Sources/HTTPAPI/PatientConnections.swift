import Services
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// One per patient connection, right after the HTTP/1 codec. It closes a connection whose first
/// request head has not arrived `firstRequestTimeout` after it opened (the TLS handshake counts:
/// the timer starts when the connection is accepted), and it answers a request the HTTP parser
/// refuses (an oversized request line or header, bytes that are not HTTP) with the bilingual JSON
/// refusal every other answer uses, then closes: Hummingbird's own answer is an empty 400.
/// Keep-alive connections idle between requests are closed by Hummingbird's `idleTimeout`.
/// A connection beyond `PatientConnectionCount`'s limit is closed as soon as it is accepted.
package final class PatientConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart
    package typealias OutboundIn = HTTPResponsePart
    package typealias OutboundOut = HTTPResponsePart

    /// The request line and headers together may not exceed this (the parser's limits).
    package static let headLimitBytes = 16 * 1024

    private let firstRequestTimeout: TimeAmount
    private var firstRequestTimer: Scheduled<Void>?
    private var sawRequest = false
    /// Requests read whose response has not ended.
    private var open = 0
    /// A request's head was read and its end not yet.
    private var reading = false
    /// After a refusal nothing more is read: the connection closes once the answers owed are out.
    private var refused = false
    /// The refusal to send once the responses still owed to earlier requests are out.
    private var owed: PatientError?

    private let connections: PatientConnectionCount
    /// This connection holds one of `connections`' places (taken once it is active).
    private var counted = false

    package init(firstRequestTimeout: TimeAmount, connections: PatientConnectionCount) {
        self.firstRequestTimeout = firstRequestTimeout
        self.connections = connections
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened(context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        opened(context)
        context.fireChannelActive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) { closed() }

    package func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    private func opened(_ context: ChannelHandlerContext) {
        if !counted {
            guard connections.take() else {
                // Nothing can be said over a connection whose TLS handshake has not happened yet.
                context.close(promise: nil)
                return
            }
            counted = true
        }
        startTimer(context)
    }

    private func closed() {
        stopTimer()
        if counted {
            counted = false
            connections.give()
        }
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        guard firstRequestTimer == nil, !sawRequest else { return }
        let channel = context.channel
        firstRequestTimer = context.eventLoop.scheduleTask(in: firstRequestTimeout) { channel.close(promise: nil) }
    }

    private func stopTimer() {
        firstRequestTimer?.cancel()
        firstRequestTimer = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head:
            sawRequest = true
            stopTimer()
            open += 1
            reading = true
        case .body: break
        case .end: reading = false
        }
        context.fireChannelRead(data)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if refused { return }
        guard let refusal = Self.refusal(for: error) else {
            context.fireErrorCaught(error)
            return
        }
        refused = true
        stopTimer()
        if reading {
            // The route reading this request's body gets the refusal as its error and answers with it.
            context.fireErrorCaught(refusal)
        } else if open > 0 {
            owed = refusal
        } else {
            send(refusal, context: context)
        }
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        open -= 1
        guard refused, open == 0 else {
            context.write(data, promise: promise)
            return
        }
        if let owed {
            self.owed = nil
            context.write(data, promise: promise)
            send(owed, context: context)
        } else {
            context.writeAndFlush(data, promise: closing(context, then: promise))
        }
    }

    private func send(_ refusal: PatientError, context: ChannelHandlerContext) {
        let body = ByteBuffer(bytes: JSONText.encode(refusal))
        var fields: HTTPFields = [.contentType: "application/json; charset=utf-8", .connection: "close"]
        fields[.contentLength] = String(body.readableBytes)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: refusal.status), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: closing(context, then: nil))
    }

    /// A promise for the last write: once it is out, the node stops sending and closes a moment
    /// later. Closing at once, with the rest of an oversized request still unread, would reset
    /// the connection, and the client could lose the answer; meanwhile what arrives is dropped.
    private func closing(_ context: ChannelHandlerContext, then promise: EventLoopPromise<Void>?) -> EventLoopPromise<Void> {
        let written = context.eventLoop.makePromise(of: Void.self)
        let channel = context.channel
        written.futureResult.whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: Self.linger) { channel.close(promise: nil) }
        }
        if let promise { written.futureResult.cascade(to: promise) }
        return written
    }

    package static let linger = TimeAmount.seconds(2)

    /// The answer to an error the HTTP decoder raised; nil for any other error (TLS, I/O).
    package static func refusal(for error: any Error) -> PatientError? {
        switch error {
        case HTTPParserError.headerOverflow:
            return PatientError(
                431, "request.head_too_large",
                zh: "请求行（含查询参数）或请求头过长：两者合计不得超过 \(headLimitBytes / 1024) KiB。请缩短查询参数或请求头后重试。",
                en: "the request line (query included) or the headers are too long: together at most \(headLimitBytes / 1024) KiB. Shorten the query or the headers and try again.")
        case is HTTPParserError, is HTTP1TypeConversionError:
            return PatientError(
                400, "request.malformed",
                zh: "请求不是有效的 HTTP/1.1 请求，无法解析，连接将关闭。请检查客户端发出的请求。",
                en: "the request is not valid HTTP/1.1 and cannot be parsed; the connection will close. Check what the client sends.")
        default:
            return nil
        }
    }
}

/// The patient connections open on a node, against `PatientConfig.maxConnections`.
package final class PatientConnectionCount: Sendable {
    package let limit: Int
    private let open = Atomic<Int>(0)

    package init(limit: Int) { self.limit = limit }

    /// Takes a place; false (and nothing taken) if all `limit` are in use.
    package func take() -> Bool {
        let now = open.add(1, ordering: .relaxed).newValue
        guard now > limit else { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    package func give() { open.subtract(1, ordering: .relaxed) }
}
