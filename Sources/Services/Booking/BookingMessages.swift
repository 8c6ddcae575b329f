import Consensus
import Domain
import Foundation
import Logging

// Which SMS a booking's holder owes its patient, and their delivery. Only the holder of a block
// writes messages about its bookings (confirmation, cancellation, the day-before reminder), from
// the acknowledged records it holds; after a takeover the new holder owes the same messages under
// the same ids, so nothing is lost, and a gateway deduplicates the rare second copy.

/// An SMS the holder owes a patient about one of its bookings (`queueOwedMessages`).
package struct OwedMessage {
    package var id: String
    package var kind: String
    package var patient: String
    package var block: String
    package var slot: Int
}

/// Queues the SMS this node owes as holder and delivers the outbox.
package struct BookingMessages: Sendable {
    package let booking: BookingDesk
    package let patients: PatientDesk
    package let logger: Logger

    package init(booking: BookingDesk, patients: PatientDesk, logger: Logger) {
        self.booking = booking; self.patients = patients; self.logger = logger
    }

    package var nowMs: Int64 { booking.clock.wallMillis() }

    /// Queues what the holder owes every few seconds and delivers the outbox, until cancelled.
    /// The outbox's SQLite writes and the file sender's fsyncs run on `offload` threads: on the
    /// cooperative threads (as many as the cores) they would stall every patient request behind them.
    package func run() async {
        var rng = SystemRandomNumberGenerator()
        var lastScan: UInt64 = 0
        while !Task.isCancelled {
            let now = booking.clock.monotonicNanos()
            if now &- lastScan >= 2_000_000_000 {
                lastScan = now
                _ = try? await offload { self.queueOwed() }
            }
            await deliverDue(rng: &rng)
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The messages this node owes as holder, for bookings of the last two days and tomorrow's visits.
    package func queueOwed() {
        let now = nowMs
        let recent = now - 2 * 86_400_000
        let owed: [OwedMessage] = booking.consensus.lookup { lookup in
            var out: [OwedMessage] = []
            for (block, active) in lookup.recordsOfHeldBlocks() {
                let confirmed = Set(active.compactMap(\.confirms))
                let released = Set(active.compactMap(\.releases))
                let holdUntil = Dictionary(active.map { ($0.id, $0.holdUntilMs) }, uniquingKeysWith: max)
                for b in active {
                    if let hold = b.confirms, b.generation > 0 {
                        if !released.contains(hold), holdUntil[hold] ?? now >= recent {
                            out.append(OwedMessage(id: "confirm:" + hold, kind: "confirmation", patient: b.patient, block: block, slot: b.slot))
                        }
                        if !released.contains(hold) { out.append(OwedMessage(id: "remind:" + hold, kind: "reminder", patient: b.patient, block: block, slot: b.slot)) }
                    } else if case .cancellation(let hold) = b.kind, confirmed.contains(hold), b.reofferAtMs >= recent,
                              // A session change's cancellations are told by the change desk, which says why.
                              !b.id.hasPrefix(SessionChangeDesk.cancellationPrefix) {
                        out.append(OwedMessage(id: "cancel:" + hold, kind: "cancellation", patient: b.patient, block: block, slot: b.slot))
                    }
                }
            }
            return out
        }
        guard !owed.isEmpty, let sessions = try? booking.directory.sessions(booking.store) else { return }
        let shanghai = (try? ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(now) / 1000)))
        let due = owed.compactMap { m -> (message: OwedMessage, info: SessionInfo)? in
            guard let info = sessions[m.block], !patients.outbox.known(m.id) else { return nil }
            guard m.kind == "reminder" else { return (m, info) }
            // The day before the visit, from the reminder hour on.
            guard let shanghai, let tomorrow = try? shanghai.date.adding(days: 1),
                  info.date == tomorrow, shanghai.time.hour >= patients.config.reminderHour else { return nil }
            return (m, info)
        }
        // The patients' rows in one read (at the rush a scan owes hundreds of confirmations).
        guard !due.isEmpty, let rows = try? booking.store.liveRows("patient", keys: Set(due.map(\.message.patient))) else { return }
        var queued: [SMSMessage] = []
        for (m, info) in due {
            guard let mobile = rows[m.patient]?["mobile"]?.text else { continue }
            let t = info.times(of: m.slot)
            let when = "\(info.date) \(t.start)"
            let whoZh = "\(info.departmentName) \(info.practitionerName) 第\(m.slot + 1)号", whoEn = "\(info.department) \(info.practitioner) no. \(m.slot + 1)"
            let text: String
            switch m.kind {
            case "confirmation": text = "【ClinicMesh】预约成功：\(when) \(whoZh)。Booked: \(when) \(whoEn)."
            case "cancellation": text = "【ClinicMesh】已退号：\(when) \(whoZh)。Cancelled: \(when) \(whoEn)."
            default: text = "【ClinicMesh】就诊提醒：明天 \(when) \(whoZh)，请按时报到。Reminder: tomorrow \(when) \(whoEn); please check in on time."
            }
            queued.append(SMSMessage(id: m.id, kind: m.kind, mobile: mobile, text: text))
        }
        // One transaction for the lot (a confirmation storm at the rush is hundreds).
        _ = try? patients.outbox.enqueue(queued, nowMs: now)
    }

    /// Sends what is due, as one batch to the sender; what is delivered is marked in one
    /// transaction, and a failure is retried with exponential backoff (1 s up to 5 minutes).
    package func deliverDue(rng: inout SystemRandomNumberGenerator) async {
        let now = nowMs
        guard let due = try? await offload({ try patients.outbox.due(nowMs: now) }), !due.isEmpty else { return }
        let attempts = Dictionary(due.map { ($0.0.id, $0.attempts) }, uniquingKeysWith: max)
        let results = await patients.sender.sendAll(due.map(\.0))
        let delivered = results.filter { $0.1 == nil }.map(\.0.id), sentAt = nowMs
        if !delivered.isEmpty { _ = try? await offload { try patients.outbox.sent(delivered, nowMs: sentAt) } }
        for case let (message, error?) in results {
            let tries = attempts[message.id] ?? 0
            let delay = min(300_000, 1_000 << min(tries, 9)) + Int.random(in: 0...500, using: &rng)
            let next = nowMs + Int64(delay), text = "\(error)"
            _ = try? await offload { try patients.outbox.failed(message.id, attempts: tries + 1, nextMs: next, error: text) }
            logger.warning("短信发送失败，稍后重试 / SMS delivery failed, will retry",
                           metadata: ["sms.id_kind": "\(message.kind)", "sms.attempts": "\(tries + 1)"])
        }
    }
}
