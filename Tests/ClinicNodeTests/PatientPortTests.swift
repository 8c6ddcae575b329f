@testable import ClinicNode
@testable import Services
@testable import HTTPAPI
import Domain
import Drills
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import ReplicatedCore
import ReplicatedStore
import Synchronization
import TestSupport
import Testing

/// What a stranger can do to the patient port: sign in as someone whose name and resident ID they
/// know, feed odd names, name appointments in blocks that do not exist, send what the HTTP parser
/// refuses, and open connections that never ask for anything. Over real HTTPS, as in
/// `PatientAPITests` (same cluster, same clock).
@Suite("Patient port", .serialized, .timeLimit(.minutes(10)))
struct PatientPortTests {
    @Test("a registered patient's code goes only to the mobile on record; sign-in never changes the mobile; odd names are refused")
    func signInCannotTakeOverAnAccount() async throws {
        try await PatientCluster.start(days: 1, now: PatientAPITests.afterRelease).run { c in
            let neike = try await c.client("neike")
            var a = PatientCluster.person(60)
            let token = try await c.signIn(a, via: "neike", client: neike)
            let key = try #require(token.split(separator: ".").dropFirst().first.map(String.init))
            let onRecord = a.mobile
            let desk = try #require(c.node("neike").patients)
            let queued = try desk.outbox.counts()

            // A stranger with A's name and resident ID and another mobile: refused, nothing sent.
            let stranger = "13903119999"
            let refused = try await neike.send(.POST, "/api/v1/codes", json: ["name": a.name, "resident_id": a.residentID, "mobile": stranger])
            #expect(refused.status == 403 && refused.code == "identity.not_on_record", "\(refused.status) \(refused.text)")
            #expect((refused.json?["message_zh"] as? String)?.isEmpty == false && (refused.json?["message_en"] as? String)?.isEmpty == false)
            #expect(!refused.text.contains(onRecord.suffix(4)) && !refused.text.contains(onRecord.prefix(3)), "nothing of the number on record")
            // The same answer for a wrong name with the right mobile: the answer does not confirm a name.
            let wrongName = try await neike.send(.POST, "/api/v1/codes", json: ["name": "测试王", "resident_id": a.residentID, "mobile": onRecord])
            #expect(wrongName.status == 403 && wrongName.code == "identity.not_on_record" && wrongName.text == refused.text)
            let afterRefusals = try desk.outbox.counts()
            #expect(afterRefusals.pending + afterRefusals.sent == queued.pending + queued.sent, "no SMS queued for a refusal")
            let signIn = try await neike.send(.POST, "/api/v1/sessions", json: ["resident_id": a.residentID, "mobile": stranger, "code": "123456"])
            #expect(signIn.status == 401 && signIn.code == "otp.unknown")
            for id in c.ids {
                #expect(try c.node(id).replica.liveRow("patient", key: key)?["mobile"]?.text ?? onRecord == onRecord, "\(id) keeps the mobile on record")
            }

            // A, with the number on record written as people write it, signs in again.
            a.mobile = "+86 " + onRecord.prefix(3) + " " + onRecord.dropFirst(3)
            #expect(try await neike.send(.POST, "/api/v1/codes", json: ["name": a.name, "resident_id": a.residentID, "mobile": a.mobile]).status == 201)
            #expect(try c.node("neike").replica.liveRow("patient", key: key)?["mobile"]?.text == onRecord)

            // Names: bounded in Unicode scalars, nothing invisible; the ID card's middle dot passes,
            // and a look-alike dot is the same name.
            let odd: [(String, String)] = [
                ("张\u{202E}三", "name.invisible"), ("张\u{200B}三", "name.invisible"), ("\u{FEFF}张三", "name.invisible"),
                ("张\u{2066}三", "name.invisible"), ("张\u{061C}三", "name.invisible"), ("张\u{3164}三", "name.invisible"),
                ("a" + String(repeating: "\u{0301}", count: 20_000), "name.length"), ("张\u{2028}三", "name.characters"),
            ]
            for (n, (name, code)) in odd.enumerated() {
                let b = PatientCluster.person(70 + n)
                let answer = try await neike.send(.POST, "/api/v1/codes", json: ["name": name, "resident_id": b.residentID, "mobile": b.mobile])
                #expect(answer.status == 400 && answer.code == code, "\(name.unicodeScalars.prefix(4).map(\.value)): \(answer.status) \(answer.text.prefix(300))")
                #expect((answer.json?["message_zh"] as? String)?.isEmpty == false && (answer.json?["message_en"] as? String)?.isEmpty == false)
            }
            var minority = PatientCluster.person(80)
            minority.name = "阿依古丽•买买提"
            _ = try await c.signIn(minority, via: "neike", client: neike)
            minority.name = "阿依古丽·买买提"
            #expect(try await neike.send(.POST, "/api/v1/codes", json: ["name": minority.name, "resident_id": minority.residentID, "mobile": minority.mobile]).status == 201)
            // A row written before names were kept normalised (spaces around, a look-alike dot) still matches.
            let earlier = PatientCluster.person(81)
            let earlierID = try ResidentID(earlier.residentID, today: c.day(2))
            let earlierKey = try PatientKey(residentID: earlierID, clusterSecret: desk.patientKeySecret).hex
            try c.node("neike").write { w in
                try w.insert("patient", key: earlierKey, values: [
                    "name": .text(" 热依拉•艾买提 "), "resident_id": .text(earlierID.value), "mobile": .text(earlier.mobile),
                    "sex": .text(earlierID.sex.rawValue), "birth_date": .text(earlierID.birthDate.description)])
            }
            let again = try await neike.send(.POST, "/api/v1/codes", json: ["name": "热依拉·艾买提", "resident_id": earlier.residentID, "mobile": earlier.mobile])
            #expect(again.status == 201, "\(again.status) \(again.text)")
        }
    }

    @Test("an appointment in a block the cluster does not define is not found (404), never 'retry'; parser refusals and 429 are bilingual JSON, 429 with Retry-After")
    func refusalsAreJSON() async throws {
        try await PatientCluster.start(days: 1, now: PatientAPITests.afterRelease, configure: {
            $0.perAddressBurst = 3
            $0.perAddressPerSecond = 0.05
        }).run { c in
            let neike = try await c.client("neike", from: "127.0.0.5")
            let token = try await c.signIn(PatientCluster.person(90), via: "neike", client: neike)
            // (Each request from its own address: this cluster allows an address 3 requests at once.)
            for (b, block) in ["nosuch/2027-03-01/morning", "quota/3"].enumerated() {
                let id = AppointmentRef(holdID: "h" + String(repeating: "0", count: 24), block: block, slot: 0).encoded
                for (s, step) in ["cancel", "confirm"].enumerated() {
                    let answer = try await c.client("waike", from: "127.0.1.\(2 + b * 2 + s)").send(.POST, "/api/v1/appointments/\(id)/\(step)", token: token)
                    #expect(answer.status == 404 && answer.code == "appointment.not_found", "\(block) \(step): \(answer.status) \(answer.text)")
                }
            }

            // A 100 KB query string, a 20 KB header, bytes that are not HTTP: JSON, then the connection closes.
            let erke = try await c.client("erke", from: "127.0.0.7")
            let long = try await erke.send(.GET, "/api/v1/slots?department=" + String(repeating: "x", count: 100_000))
            #expect(long.status == 431 && long.code == "request.head_too_large", "\(long.status) \(long.text)")
            #expect((long.json?["message_zh"] as? String)?.isEmpty == false && (long.json?["message_en"] as? String)?.isEmpty == false)
            let header = try await c.client("erke", from: "127.0.0.8").send(.GET, "/api/v1/appointments", token: String(repeating: "t", count: 20_000))
            #expect(header.status == 431 && header.code == "request.head_too_large")
            let port = try #require(c.node("erke").patientPort)
            let garbage = try await RawConnection.open(port: port, caPEM: try c.files.ca.certificatePEM(), from: "127.0.0.9")
            garbage.send("NOT HTTP AT ALL\r\n\r\n")
            #expect(await eventually(timeout: .seconds(30)) { garbage.isClosed })
            let refusal = RawConnection.responses(garbage.received)
            #expect(refusal.count == 1 && refusal.first?.status == 400 && refusal.first?.json?["code"] as? String == "request.malformed", "\(refusal)")
            // Pipelined: the good request's answer first, then the refusal of the bad one.
            let pipelined = try await RawConnection.open(port: port, caPEM: try c.files.ca.certificatePEM(), from: "127.0.0.10")
            pipelined.send("GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /" + String(repeating: "y", count: 20_000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await eventually(timeout: .seconds(30)) { pipelined.isClosed })
            let both = RawConnection.responses(pipelined.received)
            #expect(both.map { $0.status } == [404, 431] && both.map { $0.json?["code"] as? String } == ["route.unknown", "request.head_too_large"], "\(both)")

            // Per address: 3 at once, then one every 20 s; the 429 says when.
            let flood = try await RawConnection.open(port: port, caPEM: try c.files.ca.certificatePEM(), from: "127.0.0.11")
            flood.send(String(repeating: "GET /api/v1/slots?department=erke&limit=1 HTTP/1.1\r\nHost: x\r\n\r\n", count: 5))
            #expect(await eventually(timeout: .seconds(30)) { RawConnection.responses(flood.received).count == 5 })
            let limited = RawConnection.responses(flood.received).filter { $0.status == 429 }
            #expect(!limited.isEmpty && limited.allSatisfy { r in
                r.json?["code"] as? String == "rate.limited" && (r.headers["retry-after"].flatMap(Int.init) ?? 0) >= 1
                    && (r.headers["retry-after"].flatMap(Int.init) ?? 99) <= 20
            }, "\(RawConnection.responses(flood.received))")
            await flood.close()

            // Per mobile: the fourth code in a row waits for the bucket's refill (one a minute).
            let p = PatientCluster.person(91)
            let body = #"{"name":"\#(p.name)","resident_id":"\#(p.residentID)","mobile":"\#(p.mobile)"}"#
            let post = "POST /api/v1/codes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            var answers: [RawConnection.Response] = []
            for n in 1...4 {
                let codes = try await RawConnection.open(port: port, caPEM: try c.files.ca.certificatePEM(), from: "127.0.1.\(10 + n)")
                codes.send(post)
                #expect(await eventually(timeout: .seconds(30)) { RawConnection.responses(codes.received).count == 1 })
                answers += RawConnection.responses(codes.received)
                await codes.close()
            }
            #expect(answers.map { $0.status } == [201, 201, 201, 429], "\(answers)")
            let fourth = try #require(answers.last)
            #expect(fourth.json?["code"] as? String == "otp.rate_limited" && (fourth.json?["message_zh"] as? String)?.isEmpty == false)
            #expect((1...60).contains(fourth.headers["retry-after"].flatMap(Int.init) ?? 0), "\(fourth.headers)")
        }
    }

    @Test("connections that never ask, and keep-alive connections left idle, are closed by the node")
    func idleConnectionsAreClosed() async throws {
        try await PatientCluster.start(days: 1, now: PatientAPITests.afterRelease, configure: {
            $0.firstRequestTimeoutSeconds = 1
            $0.idleTimeoutSeconds = 2
        }).run { c in
            let port = try #require(c.node("neike").patientPort)
            let ca = try c.files.ca.certificatePEM()
            // Bare TCP: not even a TLS handshake.
            let bare = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            // TLS, handshake done, no request.
            let silent = try await RawConnection.open(port: port, caPEM: ca)
            #expect(await eventually(timeout: .seconds(30)) { silent.handshakeDone })
            // One request answered, then nothing.
            let idle = try await RawConnection.open(port: port, caPEM: ca)
            idle.send(RawConnection.slotsRequest)
            #expect(await eventually(timeout: .seconds(30)) { RawConnection.responses(idle.received).first?.status == 200 })

            #expect(await eventually(timeout: .seconds(60)) { !bare.isActive }, "a bare TCP connection is closed")
            #expect(await eventually(timeout: .seconds(60)) { silent.isClosed }, "a TLS connection without a request is closed")
            #expect(await eventually(timeout: .seconds(60)) { idle.isClosed }, "an idle keep-alive connection is closed")
            // The port still serves.
            #expect(try await c.client("neike").send(.GET, "/api/v1/slots?department=neike&limit=1").status == 200)
        }
    }

    /// Connections alone cannot use up a node's file descriptors: one beyond `max_connections` is
    /// closed as soon as it is accepted, and its place comes back when a connection closes.
    @Test("a patient port keeps at most max_connections open, and serves again once one closes")
    func connectionsAreCapped() async throws {
        try await PatientCluster.start(days: 1, now: PatientAPITests.afterRelease, configure: {
            $0.maxConnections = 2
            $0.firstRequestTimeoutSeconds = 3600
        }).run { c in
            let port = try #require(c.node("neike").patientPort)
            let ca = try c.files.ca.certificatePEM()
            let first = try await RawConnection.open(port: port, caPEM: ca)
            let second = try await RawConnection.open(port: port, caPEM: ca)
            #expect(await eventually(timeout: .seconds(30)) { first.handshakeDone && second.handshakeDone })
            let third = try await RawConnection.open(port: port, caPEM: ca)
            #expect(await eventually(timeout: .seconds(30)) { third.isClosed }, "the third connection is closed at once")
            #expect(!third.handshakeDone)
            #expect(!first.isClosed && !second.isClosed, "the two open ones are left alone")

            await first.close()
            // The node sees the close a moment later; until then a new connection is refused too.
            var next: RawConnection?
            #expect(await eventually(timeout: .seconds(30)) {
                let attempt = try await RawConnection.open(port: port, caPEM: ca)
                _ = await eventually(timeout: .seconds(10)) { attempt.handshakeDone || attempt.isClosed }
                next = attempt.handshakeDone ? attempt : nil
                return next != nil
            }, "a place comes back when a connection closes")
            let served = try #require(next)
            served.send(RawConnection.slotsRequest)
            #expect(await eventually(timeout: .seconds(30)) { RawConnection.responses(served.received).first?.status == 200 })
            await second.close()
            await served.close()
        }
    }
}

/// A TLS connection to a patient port that sends raw bytes and keeps everything it receives:
/// for what `PatientClient` cannot send (bytes that are not HTTP, pipelined requests) or read (headers).
final class RawConnection: Sendable {
    private let channel: any Channel
    private let state: Collector

    private init(channel: any Channel, state: Collector) {
        self.channel = channel
        self.state = state
    }

    var received: [UInt8] { state.bytes.withLock { $0 } }
    var handshakeDone: Bool { state.handshake.withLock { $0 } }
    var isClosed: Bool { !channel.isActive }

    static func open(port: Int, caPEM: String, from address: String? = nil) async throws -> RawConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        let context = try NIOSSLContext(configuration: tls)
        let state = Collector()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                try channel.pipeline.syncOperations.addHandler(CollectHandler(state: state))
            }
        }
        if let address { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: address, port: 0)) }
        return RawConnection(channel: try await bootstrap.connect(host: "127.0.0.1", port: port).get(), state: state)
    }

    /// A request any patient port answers with 200: one of neike's slots.
    static let slotsRequest = "GET /api/v1/slots?department=neike&limit=1 HTTP/1.1\r\nHost: x\r\n\r\n"

    func send(_ text: String) {
        channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
    }

    func close() async { try? await channel.close() }

    struct Response: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
        var description: String { "\(status) \(headers) \(String(decoding: body, as: UTF8.self))" }
    }

    /// The complete responses in `bytes` (each with a Content-Length, as the node sends them).
    static func responses(_ bytes: [UInt8]) -> [Response] {
        var out: [Response] = []
        var rest = bytes[...]
        let separator = Array("\r\n\r\n".utf8)
        while let end = rest.firstRange(of: separator) {
            let head = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { break }
            var headers: [String: String] = [:]
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            guard rest.distance(from: end.upperBound, to: rest.endIndex) >= length else { break }
            let bodyEnd = rest.index(end.upperBound, offsetBy: length)
            out.append(Response(status: status, headers: headers, body: Array(rest[end.upperBound..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        return out
    }

    final class Collector: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let handshake = Mutex(false)
    }

    final class CollectHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state: Collector
        init(state: Collector) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.bytes.withLock { $0 += buffer.readableBytesView }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { state.handshake.withLock { $0 = true } }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
