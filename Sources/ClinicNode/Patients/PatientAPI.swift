import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Mesh
import NIOCore
import NIOSSL

// The patient API over HTTPS (Hummingbird), on every node. JSON in and out; every refusal is
// `{"code", "message_zh", "message_en"}` with a fitting HTTP status. Routes:
//   POST /api/v1/codes                    {name, resident_id, mobile}      -> code sent by SMS
//   POST /api/v1/sessions                 {resident_id, mobile, code}      -> {token}
//   GET  /api/v1/slots?department=&date=&half_day=&practitioner=&title=&all=1&limit=
//   POST /api/v1/appointments             {request_id, slot_id | schedule_id}  (Bearer token) -> pending
//   POST /api/v1/appointments/{id}/confirm {payment}                        -> booked
//   POST /api/v1/appointments/{id}/cancel                                   -> cancelled
//   GET  /api/v1/appointments[/{id}]

struct PatientRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address without the port: rate limits count per address.
    var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}

extension MeshNode {
    /// Serves the patient API until a graceful shutdown.
    func runPatientAPI(_ desk: PatientDesk) async throws {
        let credentials = try MeshCredentials.load(directory: config.certDir, kind: .node)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: credentials.certificateChain.map { .certificate($0) }, privateKey: .privateKey(credentials.privateKey))
        tls.minimumTLSVersion = .tlsv12
        let router = Router(context: PatientRequestContext.self)
        router.add(middleware: PatientGate(node: self, desk: desk))
        addPatientRoutes(to: router, desk: desk)
        var logger = logger
        logger[metadataKey: "node.listener"] = "patients"
        logger.logLevel = max(logger.logLevel, .notice)
        // The parser's limits and the timeouts: what an idle or half-open connection may hold.
        let firstRequest = TimeAmount.seconds(Int64(desk.config.firstRequestTimeoutSeconds))
        let connections = PatientConnectionCount(limit: desk.config.maxConnections)
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [PatientConnectionGuard(firstRequestTimeout: firstRequest, connections: connections)],
            idleTimeout: .seconds(Int64(desk.config.idleTimeoutSeconds)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: PatientConnectionGuard.headLimitBytes,
                                            maxHeaderListSize: PatientConnectionGuard.headLimitBytes))
        let app = Application(
            router: router, server: try .tls(.http1(configuration: http), tlsConfiguration: tls),
            configuration: .init(address: .hostname(desk.config.host, port: desk.config.port), serverName: nil, backlog: 1024),
            onServerRunning: { channel in
                desk.boundPort.withLock { $0 = channel.localAddress?.port }
            },
            logger: logger)
        try await app.run()
    }

    private func addPatientRoutes(to router: Router<PatientRequestContext>, desk: PatientDesk) {
        let api = router.group("api/v1")
        api.post("codes") { request, context in
            await self.answer(201) {
                let r = try await Self.decode(CodeRequest.self, request)
                let ttl = try self.requestCode(r, desk: desk)
                return SentAnswer(sent: true, expiresInS: ttl, messageZh: "验证码已发送。", messageEn: "the code has been sent.")
            }
        }
        api.post("sessions") { request, context in
            await self.answer(201) { try self.signIn(try await Self.decode(SignInRequest.self, request), desk: desk) }
        }
        api.get("slots") { request, context in
            await self.answer(200) {
                let p = request.uri.queryParameters
                let q = SearchQuery(department: p.get("department"), date: p.get("date"), halfDay: p.get("half_day"),
                                    practitioner: p.get("practitioner"), title: p.get("title"), onlyFree: p.get("all") != "1",
                                    limit: min(500, max(1, p.get("limit").flatMap(Int.init) ?? 200)))
                return SlotsAnswer(slots: try self.searchSlots(q, desk: desk))
            }
        }
        api.post("appointments") { request, context in
            await self.answer(201) {
                let session = try self.session(request, desk: desk)
                return try await self.hold(try await Self.decode(HoldRequest.self, request), session: session, desk: desk)
            }
        }
        api.get("appointments") { request, context in
            await self.answer(200) { AppointmentsAnswer(appointments: self.appointments(session: try self.session(request, desk: desk), desk: desk)) }
        }
        api.get("appointments/:id") { request, context in
            await self.answer(200) {
                try self.appointment(context.parameters.get("id") ?? "", session: try self.session(request, desk: desk), desk: desk)
            }
        }
        api.post("appointments/:id/confirm") { request, context in
            await self.answer(200) {
                let session = try self.session(request, desk: desk)
                let body = try await Self.decode(ConfirmRequest.self, request, emptyIs: ConfirmRequest(payment: nil))
                return try await self.confirm(context.parameters.get("id") ?? "", body, session: session, desk: desk)
            }
        }
        api.post("appointments/:id/cancel") { request, context in
            await self.answer(200) {
                try await self.cancel(context.parameters.get("id") ?? "", session: try self.session(request, desk: desk), desk: desk)
            }
        }
    }

    /// The session behind `Authorization: Bearer <token>`.
    private func session(_ request: Request, desk: PatientDesk) throws(PatientError) -> PatientSession {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let s = desk.tokens.verify(String(header.dropFirst(7)), nowMs: nowMs) else { throw PatientError.unauthorized }
        return s
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ request: Request, emptyIs empty: T? = nil) async throws(PatientError) -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 64 * 1024) } catch let e as PatientError {
            throw e
        } catch is NIOTooManyBytesError {
            throw PatientError(413, "request.too_large", zh: "请求体过大（上限 64 KiB）。", en: "the request body is too large (64 KiB at most).")
        } catch {
            throw PatientError(400, "request.body", zh: "请求体未能完整读取，请重新发送。", en: "the request body could not be read in full; send it again.")
        }
        if buffer.readableBytes == 0, let empty { return empty }
        do { return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView)) } catch {
            throw PatientError(400, "request.invalid", zh: "请求不是有效的 JSON，或缺少字段：\(Self.describe(error))。",
                               en: "the request is not valid JSON or lacks a field: \(Self.describe(error)).")
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return key.stringValue
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
            return c.codingPath.map(\.stringValue).joined(separator: ".")
        default: return "JSON"
        }
    }

    /// Runs `body` and turns its value or refusal into a JSON response.
    private func answer<T: Encodable>(_ status: Int, _ body: () async throws -> T) async -> Response {
        do {
            return Self.json(status, try await body())
        } catch let error as PatientError {
            return Self.refusal(error)
        } catch {
            // The error's text stays in the node's log: it may name files, tables or peers.
            logger.error("患者接口内部错误 / patient API internal error", metadata: ["patients.error": "\(error)"])
            return Self.refusal(Self.internalError)
        }
    }

    static let internalError = PatientError(500, "internal", zh: "内部错误，请稍后再试。", en: "internal error; please try again shortly.")

    static func json<T: Encodable>(_ status: Int, _ value: T) -> Response {
        let bytes: [UInt8]
        if let fast = value as? any JSONWritable {
            bytes = JSONText.encode(fast)
        } else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            bytes = Array((try? encoder.encode(value)) ?? Data("{}".utf8))
        }
        return Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A refusal as its JSON, with `Retry-After` when it says when to come back.
    static func refusal(_ error: PatientError) -> Response {
        var response = json(error.status, error)
        if let seconds = error.retryAfterS { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}

/// Rate limits per client address and the node's in-flight limit before anything else runs;
/// every refusal in both languages.
struct PatientGate: RouterMiddleware {
    typealias Context = PatientRequestContext
    let node: MeshNode
    let desk: PatientDesk

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let wait = desk.perAddress.take(context.clientAddress, nowNanos: node.clock.monotonicNanos()) {
            return MeshNode.refusal(.rateLimited(retryAfterS: wait))
        }
        guard desk.inFlight.enter() else { return MeshNode.refusal(.busy) }
        defer { desk.inFlight.leave() }
        // Every answer of this port is JSON in both languages, whatever a route or the router threw.
        do {
            return try await next(request, context)
        } catch let error as PatientError {
            return MeshNode.refusal(error)
        } catch let error as HTTPError where error.status == .notFound {
            return MeshNode.refusal(PatientError(404, "route.unknown", zh: "没有这个接口。", en: "there is no such route."))
        } catch let error as any HTTPResponseError {
            let code = error.status.code
            return MeshNode.refusal(PatientError(code, "request.refused", zh: "请求无法处理（HTTP \(code)），请检查后重试。",
                                                 en: "the request cannot be handled (HTTP \(code)); check it and try again."))
        } catch {
            node.logger.error("患者接口内部错误 / patient API internal error", metadata: ["patients.error": "\(error)"])
            return MeshNode.refusal(MeshNode.internalError)
        }
    }
}

struct SentAnswer: Codable, Sendable {
    var sent: Bool
    var expiresInS: Int
    var messageZh: String
    var messageEn: String
    enum CodingKeys: String, CodingKey { case sent, expiresInS = "expires_in_s", messageZh = "message_zh", messageEn = "message_en" }
}

struct SlotsAnswer: Codable, Sendable { var slots: [SlotResource] }
struct AppointmentsAnswer: Codable, Sendable { var appointments: [AppointmentResource] }
