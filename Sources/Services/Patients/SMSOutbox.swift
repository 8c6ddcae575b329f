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

    package enum CodingKeys: String, CodingKey { case id = "message_id", kind, mobile, text }
}

public protocol SMSSender: Sendable {
    func send(_ message: SMSMessage) async throws
    /// Delivers several; each message with the error that kept it back, nil if delivered.
    func sendAll(_ messages: [SMSMessage]) async -> [(SMSMessage, (any Error)?)]
}

extension SMSSender {
    /// One at a time: a failure keeps back only its own message.
    public func sendAll(_ messages: [SMSMessage]) async -> [(SMSMessage, (any Error)?)] {
        var out: [(SMSMessage, (any Error)?)] = []
        for m in messages {
            do { try await send(m); out.append((m, nil)) } catch { out.append((m, error)) }
        }
        return out
    }
}

/// Appends each message as one JSON line to a file and fsyncs it (development and drills; an
/// operator's gateway script can tail it).
public struct FileSMSSender: SMSSender {
    public let path: String
    public init(path: String) { self.path = path }

    public func send(_ message: SMSMessage) async throws {
        try await append([message])
    }

    /// All in one write and one fsync: a confirmation storm at the rush costs one fsync per round.
    public func sendAll(_ messages: [SMSMessage]) async -> [(SMSMessage, (any Error)?)] {
        do {
            try await append(messages)
            return messages.map { ($0, nil) }
        } catch {
            return messages.map { ($0, error) }
        }
    }

    private func append(_ messages: [SMSMessage]) async throws {
        let path = self.path
        try await offload { try Self.append(messages, to: path) } // a write and an fsync: off the cooperative threads
    }

    private static func append(_ messages: [SMSMessage], to path: String) throws {
        guard !messages.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for m in messages {
            lines.append(try encoder.encode(m))
            lines.append(0x0A)
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw NodeError(.admin, zh: "无法打开短信文件 \(path)。", en: "cannot open the SMS file \(path).") }
        defer { close(fd) }
        let written = lines.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == lines.count, fsync(fd) == 0 else { throw NodeError(.admin, zh: "写短信文件 \(path) 失败。", en: "writing the SMS file \(path) failed.") }
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

package final class SMSOutbox: Sendable {
    private let db: DatabaseQueue
    /// Every message id in the outbox (only this node writes it): the holder's scan every few
    /// seconds asks about every booking it owes a message for, and must not query SQLite for each.
    private let ids: Mutex<Set<String>>

    /// WAL with synchronous=NORMAL: a commit is one WAL append, no journal file made, synced and
    /// deleted. A power cut may lose the last commits, which costs nothing here: the holder queues
    /// every booking message again from the acknowledged records on its next scan, a lost "sent"
    /// mark means a second copy the gateway deduplicates by id, and a lost code is asked again.
    package init(path: String) throws {
        var config = Configuration()
        config.journalMode = .wal
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        db = try DatabaseQueue(path: path, configuration: config)
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
    package func enqueue(_ m: SMSMessage, nowMs: Int64) throws -> Bool {
        try enqueue([m], nowMs: nowMs) == 1
    }

    /// Queues several in one transaction, each once; answers how many were new.
    @discardableResult
    package func enqueue(_ messages: [SMSMessage], nowMs: Int64) throws -> Int {
        let fresh = messages.filter { !known($0.id) }
        guard !fresh.isEmpty else { return 0 }
        let inserted = try db.write { db in
            var n = 0
            let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO outbox (message_id, kind, mobile, body, created_ms, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?)")
            for m in fresh {
                try insert.execute(arguments: [m.id, m.kind, m.mobile, m.text, nowMs, nowMs])
                n += db.changesCount
            }
            return n
        }
        ids.withLock { for m in fresh { $0.insert(m.id) } }
        return inserted
    }

    package func known(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }

    package func due(nowMs: Int64, limit: Int = 100) throws -> [(SMSMessage, attempts: Int)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE sent_ms IS NULL AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?",
                             arguments: [nowMs, limit]).map {
                (SMSMessage(id: $0["message_id"], kind: $0["kind"], mobile: $0["mobile"], text: $0["body"]), attempts: $0["attempts"])
            }
        }
    }

    /// Delivered: the personal data goes, the ids stay (so they are never queued again).
    package func sent(_ ids: [String], nowMs: Int64) throws {
        guard !ids.isEmpty else { return }
        try db.write { db in
            let update = try db.cachedStatement(sql: "UPDATE outbox SET sent_ms = ?, mobile = '', body = '', last_error = NULL WHERE message_id = ?")
            for id in ids { try update.execute(arguments: [nowMs, id]) }
        }
    }

    package func failed(_ id: String, attempts: Int, nextMs: Int64, error: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE outbox SET attempts = ?, next_attempt_ms = ?, last_error = ? WHERE message_id = ?",
                           arguments: [attempts, nextMs, String(error.prefix(500)), id])
        }
    }

    package func counts() throws -> (pending: Int, sent: Int) {
        try db.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE sent_ms IS NULL") ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE sent_ms IS NOT NULL") ?? 0)
        }
    }
}
