@testable import Services
import Foundation
import Testing

@Suite struct SMSOutboxTests {
    let folder = NSTemporaryDirectory() + "clinicmesh-sms-" + UUID().uuidString

    init() throws { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }

    private func message(_ n: Int) -> SMSMessage {
        SMSMessage(id: "confirm:h\(n)", kind: "confirmation", mobile: "1390000000\(n)", text: "预约成功 \(n)")
    }

    /// A batch is queued in one go, each id once (again or not); delivered ones leave the due list
    /// and are never queued again, also after the outbox is opened anew.
    @Test func batchesQueueEachIdOnceAndDeliveredOnesStayKnown() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/outbox.sqlite"
        let outbox = try SMSOutbox(path: path)
        #expect(try outbox.enqueue([message(1), message(2), message(1)], nowMs: 1_000) == 2)
        #expect(try outbox.enqueue([message(2), message(3)], nowMs: 1_000) == 1)
        #expect(try outbox.due(nowMs: 1_000).map(\.0.id).sorted() == ["confirm:h1", "confirm:h2", "confirm:h3"])
        try outbox.sent(["confirm:h1", "confirm:h3"], nowMs: 2_000)
        #expect(try outbox.due(nowMs: 2_000).map(\.0.id) == ["confirm:h2"])

        let reopened = try SMSOutbox(path: path)
        #expect(try reopened.enqueue([message(1), message(4)], nowMs: 3_000) == 1)
        #expect(try reopened.counts() == (pending: 2, sent: 2))
    }

    /// The file sender writes a batch as one line per message, in order, and reports each delivered.
    @Test func fileSenderAppendsTheWholeBatch() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let sender = FileSMSSender(path: folder + "/sms.jsonl")
        try await sender.send(message(0))
        let results = await sender.sendAll([message(1), message(2)])
        #expect(results.map(\.0.id) == ["confirm:h1", "confirm:h2"] && results.allSatisfy { $0.1 == nil })
        let lines = try String(contentsOfFile: folder + "/sms.jsonl", encoding: .utf8).split(separator: "\n")
        let ids = try lines.map { try JSONDecoder().decode(SMSMessage.self, from: Data($0.utf8)).id }
        #expect(ids == ["confirm:h0", "confirm:h1", "confirm:h2"])

        let broken = FileSMSSender(path: folder + "/no-such-folder/sms.jsonl")
        #expect(await broken.sendAll([message(3)]).allSatisfy { $0.1 != nil })
    }
}
