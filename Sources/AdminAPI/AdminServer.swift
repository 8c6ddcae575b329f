import Foundation
import Logging
import Mesh

/// The admin API's commands by name: each decodes its JSON argument, does its work and encodes its
/// answer. The node fills one table with its commands; the `clinicmesh` tool may add its own
/// (the demo data) before the node runs.
package struct AdminCommandTable: Sendable {
    package typealias Handler = @Sendable (Data) async throws -> [UInt8]
    private var handlers: [String: Handler] = [:]

    package init() {}

    /// A command whose argument is JSON of type `In`.
    package mutating func add<In: Decodable & Sendable, Out: Encodable & Sendable>(_ name: String, _ type: In.Type, _ body: @escaping @Sendable (In) async throws -> Out) {
        handlers[name] = { argument in try AdminJSON.encode(try await body(try JSONDecoder().decode(In.self, from: argument))) }
    }

    /// A command whose JSON argument of type `In` may be left out (then nil).
    package mutating func add<In: Decodable & Sendable, Out: Encodable & Sendable>(_ name: String, optional type: In.Type, _ body: @escaping @Sendable (In?) async throws -> Out) {
        handlers[name] = { argument in
            try AdminJSON.encode(try await body(argument.isEmpty ? nil : try JSONDecoder().decode(In.self, from: argument)))
        }
    }

    /// A command without an argument.
    package mutating func add<Out: Encodable & Sendable>(_ name: String, _ body: @escaping @Sendable () async throws -> Out) {
        handlers[name] = { _ in try AdminJSON.encode(try await body()) }
    }

    /// "<command>" or "<command> <json argument>" -> the command's name and its JSON answer. Every
    /// failure is an answer (`{"error": ...}`), never the end of the admin's session.
    /// Whether `name` is a command of this table.
    package func has(_ name: String) -> Bool { handlers[name] != nil }

    package func answer(_ text: String) async -> (command: String, body: [UInt8], failed: Bool) {
        let command = String(text.prefix { $0 != " " }.prefix(64))
        let argument = Data(text.drop { $0 != " " }.dropFirst().utf8)
        let body: [UInt8]
        do {
            guard let handler = handlers[command] else {
                return (command, Self.error("未知命令 \(command) / unknown command \(command)"), true)
            }
            body = try await handler(argument)
        } catch let error as DecodingError {
            return (command, Self.error("命令 \(command) 的参数无效：\(error) / the argument of \(command) is not valid: \(error)"), true)
        } catch {
            return (command, Self.error("\(error)"), true)
        }
        return (command, body, body.starts(with: Array("{\"error\"".utf8)))
    }

    package static func error(_ text: String) -> [UInt8] { (try? AdminJSON.encode(["error": text])) ?? Array("{\"error\":\"\"}".utf8) }
}

/// One admin session (TLS with an admin certificate, verified by `MeshTLS(accepting: .admin)`):
/// each `Forward` request carries a command in UTF-8; the answer is a `Forward` with the same
/// request id and a JSON body.
package enum AdminServer {
    package static func serve(_ session: MeshSession, commands: AdminCommandTable, logger: Logger,
                               answered: @Sendable (_ command: String, _ failed: Bool) -> Void) async throws {
        logger.info("管理员已连接 / admin connected", metadata: ["admin.name": "\(session.peer.certificate.identity.name)"])
        for try await message in session.inbound {
            guard case .forward(let request) = message else { continue }
            let (command, body, failed) = await commands.answer(String(decoding: request.bytes, as: UTF8.self))
            answered(command, failed)
            try await session.send(.forward(Forward(requestID: request.requestID, bytes: body)))
        }
    }
}
