import Foundation
import GRDB
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// SMS to patients: one-time codes, confirmations, cancellations and the day-before reminders. Each
// message goes into this node's outbox (SQLite, `outbox.sqlite` in the data folder) under a
// message id that names what it is about (`confirm:<hold>`), then a sender delivers it, retrying
// with backoff until the gateway takes it: at least once. A gateway deduplicates by the id, which
// also covers the one case where two nodes send the same message (a takeover between the old
// holder's send and its record of it). Mobile and text are wiped once delivered.

public struct SMSMessage: Codable, Sendable, Hashable {
    public var id: String
    /// code, confirmation, cancellation, reminder
    public var kind: String
    public var mobile: String
    public var text: String

    public init(id: String, kind: String, mobile: String, text: String) {
        self.id = id; self.kind = kind; self.mobile = mobile; self.text = text
    }

    enum CodingKeys: String, CodingKey { case id = "message_id", kind, mobile, text }
}

public protocol SMSSender: Sendable {
    func send(_ message: SMSMessage) async throws
}

/// Appends each message as one JSON line to a file and fsyncs it (development and drills; an
/// operator's gateway script can tail it).
public struct FileSMSSender: SMSSender {
    public let path: String
    public init(path: String) { self.path = path }

    public func send(_ message: SMSMessage) async throws {
        let path = self.path
        try await offload { try Self.append(message, to: path) } // a write and an fsync: off the cooperative threads
    }

    private static func append(_ message: SMSMessage, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line = try encoder.encode(message)
        line.append(0x0A)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw NodeError(.admin, zh: "无法打开短信文件 \(path)。", en: "cannot open the SMS file \(path).") }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else { throw NodeError(.admin, zh: "写短信文件 \(path) 失败。", en: "writing the SMS file \(path) failed.") }
    }
}

/// POSTs each message as JSON to a gateway; the header `Idempotency-Key` carries the message id.
public struct WebhookSMSSender: SMSSender {
    public let url: URL
    public init(url: URL) { self.url = url }

    public func send(_ message: SMSMessage) async throws {
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.setValue("application/json; charset=utf-8", forHTTPHeaderField: "Content-Type")
        request.setValue(message.id, forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = try JSONEncoder().encode(message)
        let (_, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse, (200..<300).contains(http.statusCode) else {
            let code = (response as? HTTPURLResponse)?.statusCode ?? 0
            throw NodeError(.admin, zh: "短信网关返回 \(code)。", en: "the SMS gateway answered \(code).")
        }
    }
}

final class SMSOutbox: Sendable {
    private let db: DatabaseQueue
    /// Every message id in the outbox (only this node writes it): the holder's scan every few
    /// seconds asks about every booking it owes a message for, and must not query SQLite for each.
    private let ids: Mutex<Set<String>>

    init(path: String) throws {
        db = try DatabaseQueue(path: path)
        try db.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS outbox (
                    message_id TEXT PRIMARY KEY, kind TEXT NOT NULL, mobile TEXT NOT NULL, body TEXT NOT NULL,
                    created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
                    sent_ms INTEGER, last_error TEXT);
                CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_ms) WHERE sent_ms IS NULL;
                """)
        }
        ids = Mutex(Set(try db.read { db in try String.fetchAll(db, sql: "SELECT message_id FROM outbox") }))
    }

    /// Queues a message once: false if this id was queued before (sent or not).
    @discardableResult
    func enqueue(_ m: SMSMessage, nowMs: Int64) throws -> Bool {
        if known(m.id) { return false }
        let inserted = try db.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO outbox (message_id, kind, mobile, body, created_ms, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [m.id, m.kind, m.mobile, m.text, nowMs, nowMs])
            return db.changesCount > 0
        }
        ids.withLock { _ = $0.insert(m.id) }
        return inserted
    }

    func known(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }

    func due(nowMs: Int64, limit: Int = 100) throws -> [(SMSMessage, attempts: Int)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE sent_ms IS NULL AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?",
                             arguments: [nowMs, limit]).map {
                (SMSMessage(id: $0["message_id"], kind: $0["kind"], mobile: $0["mobile"], text: $0["body"]), attempts: $0["attempts"])
            }
        }
    }

    /// Delivered: the personal data goes, the id stays (so it is never queued again).
    func sent(_ id: String, nowMs: Int64) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE outbox SET sent_ms = ?, mobile = '', body = '', last_error = NULL WHERE message_id = ?", arguments: [nowMs, id])
        }
    }

    func failed(_ id: String, attempts: Int, nextMs: Int64, error: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE outbox SET attempts = ?, next_attempt_ms = ?, last_error = ? WHERE message_id = ?",
                           arguments: [attempts, nextMs, String(error.prefix(500)), id])
        }
    }

    func counts() throws -> (pending: Int, sent: Int) {
        try db.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE sent_ms IS NULL") ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE sent_ms IS NOT NULL") ?? 0)
        }
    }
}
