import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Services
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

package struct PatientRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    package let remoteAddress: SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address without the port: rate limits count per address.
    package var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}

/// The patient API of one node: its routes over the patient and booking desks, and its server.
package struct PatientAPI: Sendable {
    package let patients: PatientDesk
    package let booking: BookingDesk
    /// The staff pages on the same port (under /staff), if the node has them.
    package let staffPages: StaffPages?
    package let logger: Logger

    package init(patients: PatientDesk, booking: BookingDesk, staffPages: StaffPages? = nil, logger: Logger) {
        self.patients = patients; self.booking = booking; self.staffPages = staffPages; self.logger = logger
    }

    /// Serves the API over HTTPS at the patient config's address until a graceful shutdown;
    /// `bound` is told the port once it listens.
    package func run(tls: TLSConfiguration, bound: @escaping @Sendable (Int?) -> Void) async throws {
        let config = patients.config
        var tls = tls
        tls.minimumTLSVersion = .tlsv12
        var logger = logger
        logger[metadataKey: "node.listener"] = "patients"
        logger.logLevel = max(logger.logLevel, .notice)
        // The parser's limits and the timeouts: what an idle or half-open connection may hold.
        let firstRequest = TimeAmount.seconds(Int64(config.firstRequestTimeoutSeconds))
        let connections = PatientConnectionCount(limit: config.maxConnections)
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [PatientConnectionGuard(firstRequestTimeout: firstRequest, connections: connections)],
            idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: PatientConnectionGuard.headLimitBytes,
                                            maxHeaderListSize: PatientConnectionGuard.headLimitBytes))
        let app = Application(
            router: router(), server: try .tls(.http1(configuration: http), tlsConfiguration: tls),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil, backlog: 1024),
            onServerRunning: { channel in bound(channel.localAddress?.port) },
            logger: logger)
        try await app.run()
    }

    /// The routes behind the gate (rate limits, in-flight limit, answers in both languages).
    package func router() -> Router<PatientRequestContext> {
        let router = Router(context: PatientRequestContext.self)
        // Added before the gate, so outside it: pages answer in HTML, with their own checks.
        staffPages?.add(to: router)
        router.add(middleware: PatientGate(desk: patients, logger: logger))
        addPatientRoutes(to: router)
        return router
    }

    private func addPatientRoutes(to router: Router<PatientRequestContext>) {
        let api = router.group("api/v1")
        api.post("codes") { request, context in
            await self.answer(201) {
                let r = try await Self.decode(CodeRequest.self, request)
                let ttl = try patients.requestCode(r)
                return SentAnswer(sent: true, expiresInS: ttl, messageZh: "验证码已发送。", messageEn: "the code has been sent.")
            }
        }
        api.post("sessions") { request, context in
            await self.answer(201) { try patients.signIn(try await Self.decode(SignInRequest.self, request)) }
        }
        api.get("slots") { request, context in
            await self.answer(200) {
                let p = request.uri.queryParameters
                let q = SearchQuery(department: p.get("department"), date: p.get("date"), halfDay: p.get("half_day"),
                                    practitioner: p.get("practitioner"), title: p.get("title"), onlyFree: p.get("all") != "1",
                                    limit: min(500, max(1, p.get("limit").flatMap(Int.init) ?? 200)))
                return SlotsAnswer(slots: try booking.searchSlots(q))
            }
        }
        api.post("appointments") { request, context in
            await self.answer(201) {
                let session = try self.session(request)
                return try await booking.hold(try await Self.decode(HoldRequest.self, request), session: session)
            }
        }
        api.get("appointments") { request, context in
            await self.answer(200) { AppointmentsAnswer(appointments: booking.appointments(session: try self.session(request))) }
        }
        api.get("appointments/:id") { request, context in
            await self.answer(200) {
                try booking.appointment(context.parameters.get("id") ?? "", session: try self.session(request))
            }
        }
        api.post("appointments/:id/confirm") { request, context in
            await self.answer(200) {
                let session = try self.session(request)
                let body = try await Self.decode(ConfirmRequest.self, request, emptyIs: ConfirmRequest(payment: nil))
                return try await booking.confirm(context.parameters.get("id") ?? "", body, session: session)
            }
        }
        api.post("appointments/:id/cancel") { request, context in
            await self.answer(200) {
                try await booking.cancel(context.parameters.get("id") ?? "", session: try self.session(request))
            }
        }
    }

    /// The session behind `Authorization: Bearer <token>`.
    private func session(_ request: Request) throws(PatientError) -> PatientSession {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let s = patients.session(token: String(header.dropFirst(7))) else { throw PatientError.unauthorized }
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

    package static let internalError = PatientError(500, "internal", zh: "内部错误，请稍后再试。", en: "internal error; please try again shortly.")

    package static func json<T: Encodable>(_ status: Int, _ value: T) -> Response {
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
    package static func refusal(_ error: PatientError) -> Response {
        var response = json(error.status, error)
        if let seconds = error.retryAfterS { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}

/// Rate limits per client address and the node's in-flight limit before anything else runs;
/// every refusal in both languages.
package struct PatientGate: RouterMiddleware {
    package typealias Context = PatientRequestContext
    package let desk: PatientDesk
    package let logger: Logger

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let wait = desk.perAddress.take(context.clientAddress, nowNanos: desk.clock.monotonicNanos()) {
            return PatientAPI.refusal(.rateLimited(retryAfterS: wait))
        }
        guard desk.inFlight.enter() else { return PatientAPI.refusal(.busy) }
        defer { desk.inFlight.leave() }
        // Every answer of this port is JSON in both languages, whatever a route or the router threw.
        do {
            return try await next(request, context)
        } catch let error as PatientError {
            return PatientAPI.refusal(error)
        } catch let error as HTTPError where error.status == .notFound {
            return PatientAPI.refusal(PatientError(404, "route.unknown", zh: "没有这个接口。", en: "there is no such route."))
        } catch let error as any HTTPResponseError {
            let code = error.status.code
            return PatientAPI.refusal(PatientError(code, "request.refused", zh: "请求无法处理（HTTP \(code)），请检查后重试。",
                                                 en: "the request cannot be handled (HTTP \(code)); check it and try again."))
        } catch {
            logger.error("患者接口内部错误 / patient API internal error", metadata: ["patients.error": "\(error)"])
            return PatientAPI.refusal(PatientAPI.internalError)
        }
    }
}

package struct SentAnswer: Codable, Sendable {
    package var sent: Bool
    package var expiresInS: Int
    package var messageZh: String
    package var messageEn: String
    package enum CodingKeys: String, CodingKey { case sent, expiresInS = "expires_in_s", messageZh = "message_zh", messageEn = "message_en" }
}

package struct SlotsAnswer: Codable, Sendable { var slots: [SlotResource] }
package struct AppointmentsAnswer: Codable, Sendable { var appointments: [AppointmentResource] }
