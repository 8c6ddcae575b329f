import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A patient's HTTPS connection to a node's patient API (tests, drills and `bench booking`): one
/// keep-alive TLS connection, optionally from a chosen loopback source address (127.0.0.x), that
/// trusts the cluster CA and checks the node's IP address against its certificate. Requests may
/// overlap: they are pipelined and answered in order.
public final class PatientClient: Sendable {
    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var headers: HTTPHeaders = [:]
        /// The value a `Set-Cookie` header of the answer gives `name`, if any.
        public func cookie(_ name: String) -> String? {
            for value in headers["Set-Cookie"] where value.hasPrefix(name + "=") {
                return String(value.dropFirst(name.count + 1).prefix { $0 != ";" })
            }
            return nil
        }
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
        /// A string field of a flat JSON object (`"key":"value"`, the nodes' compact encoding),
        /// found without parsing the whole answer: the bench reads one field of thousands of
        /// answers a second on the machine it measures. Anything unusual goes to `json`.
        public func string(_ key: String) -> String? {
            let needle = Array("\"\(key)\":\"".utf8)
            guard body.count > needle.count else { return nil }
            var i = 0
            while i + needle.count <= body.count {
                if body[i] == needle[0], body[i..<(i + needle.count)].elementsEqual(needle) {
                    let start = i + needle.count
                    guard let end = body[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                    if body[start..<end].contains(UInt8(ascii: "\\")) { return json?[key] as? String }
                    return String(decoding: body[start..<end], as: UTF8.self)
                }
                i += 1
            }
            return json?[key] as? String
        }
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Closed: Error, CustomStringConvertible {
        public var description: String { "连接已关闭 / the connection is closed" }
    }

    let channel: any Channel
    let host: String
    /// The connection's event loop: `request` made on it writes at once, and answers complete on it.
    public var eventLoop: any EventLoop { channel.eventLoop }

    init(channel: any Channel, host: String) {
        self.channel = channel
        self.host = host
    }

    /// Connects to `host:port` over TLS, trusting the CA in `caPEM`, from `localAddress` if given.
    public static func connect(host: String, port: Int, caPEM: String, localAddress: String? = nil,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> PatientClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        let context = try NIOSSLContext(configuration: tls)
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(PipelinedResponses())
                }
            }
        if let localAddress { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: localAddress, port: 0)) }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        return PatientClient(channel: channel, host: host)
    }

    /// Sends one request (JSON body if given, `Authorization: Bearer` if a token is given).
    public func send(_ method: HTTPMethod, _ path: String, json: (any Encodable & Sendable)? = nil, token: String? = nil) async throws -> Answer {
        try await request(method, path, json: json, token: token).get()
    }

    /// `send` for code on the connection's event loop (the bench's generator): the answer
    /// completes there, and a request made there is written at once, without a hop.
    public func request(_ method: HTTPMethod, _ path: String, json: (any Encodable & Sendable)? = nil, token: String? = nil) -> EventLoopFuture<Answer> {
        var body: ByteBuffer?
        var headers: HTTPHeaders = [:]
        if let json {
            do { body = ByteBuffer(bytes: try JSONEncoder().encode(json)) } catch { return channel.eventLoop.makeFailedFuture(error) }
            headers.add(name: "Content-Type", value: "application/json")
        }
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request(method, path, body: body, headers: headers)
    }

    /// A page request as a browser sends it: `cookies` in a `Cookie` header, and `form`, if given,
    /// as an `application/x-www-form-urlencoded` body.
    public func page(_ method: HTTPMethod, _ path: String, cookies: [String: String], form: [(String, String)]? = nil) -> EventLoopFuture<Answer> {
        var headers: HTTPHeaders = [:]
        if !cookies.isEmpty { headers.add(name: "Cookie", value: cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        var body: ByteBuffer?
        if let form {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            body = ByteBuffer(string: form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&"))
            headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        }
        return request(method, path, body: body, headers: headers)
    }

    func request(_ method: HTTPMethod, _ path: String, body: ByteBuffer?, headers: HTTPHeaders) -> EventLoopFuture<Answer> {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(contentsOf: headers)
        head.headers.add(name: "Content-Length", value: "\(body?.readableBytes ?? 0)")
        let promise = channel.eventLoop.makePromise(of: Answer.self)
        let request = Outgoing(head: head, body: body, answer: promise)
        let channel = self.channel
        // On the channel's loop, so a request is either queued in the handler or failed here, once.
        if channel.eventLoop.inEventLoop {
            Self.write(request, on: channel)
        } else {
            channel.eventLoop.execute { Self.write(request, on: channel) }
        }
        return promise.futureResult
    }

    private static func write(_ request: Outgoing, on channel: any Channel) {
        if channel.isActive { channel.writeAndFlush(request, promise: nil) } else { request.answer.fail(Closed()) }
    }

    public func close() async {
        try? await channel.close()
    }
}

struct Outgoing: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var answer: EventLoopPromise<PatientClient.Answer>
}

/// Writes requests and hands each response to the oldest request still waiting.
final class PipelinedResponses: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Outgoing
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting = CircularBuffer<EventLoopPromise<PatientClient.Answer>>()
    private var status = 0
    private var headers: HTTPHeaders = [:]
    private var body: [UInt8] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.answer)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let b = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            headers = head.headers
            body = []
        case .body(let buffer):
            body += buffer.readableBytesView
        case .end:
            if let next = waiting.popFirst() { next.succeed(PatientClient.Answer(status: status, body: body, headers: headers)) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        while let next = waiting.popFirst() { next.fail(PatientClient.Closed()) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        while let next = waiting.popFirst() { next.fail(error) }
        context.close(promise: nil)
    }
}
