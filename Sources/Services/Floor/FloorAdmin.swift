import Consensus
import Foundation

// The floor on the admin API (`floor-queue`, `floor`): what drills, benches and ops scripts use
// where the staff pages need a person signed in.

/// `floor {"session": "<schedule>", "op": "check_in" | "next" | "recall" | "close" | "walk_in", ...}`.
package struct FloorAdminCommand: Codable, Sendable, Hashable {
    package var session: String
    package var op: String
    /// check_in: the booking's request id (a hold's, or a staff booking's).
    package var booking: String?
    /// next, recall: the booking called now as the caller saw it (absent: nobody).
    package var expecting: String?
    /// next: the one called now did not come (过号).
    package var missed: Bool?
    /// next, recall: the newest floor record the caller saw (`last_seq`).
    package var seen: Int?
    /// walk_in: the patient's resident ID, name and mobile, the payment method, and the desk's
    /// request id (the same id again registers nobody more).
    package var residentID: String?
    package var name: String?
    package var mobile: String?
    package var payment: String?
    package var requestID: String?

    package init(session: String, op: String, booking: String? = nil, expecting: String? = nil, missed: Bool? = nil, seen: Int? = nil,
                 residentID: String? = nil, name: String? = nil, mobile: String? = nil, payment: String? = nil, requestID: String? = nil) {
        self.session = session; self.op = op; self.booking = booking; self.expecting = expecting; self.missed = missed; self.seen = seen
        self.residentID = residentID; self.name = name; self.mobile = mobile; self.payment = payment; self.requestID = requestID
    }

    package enum CodingKeys: String, CodingKey {
        case session, op, booking, expecting, missed, seen, residentID = "resident_id", name, mobile, payment, requestID = "request_id"
    }
}

/// A session's queue as one node's records say it.
package struct FloorQueueView: Codable, Sendable, Hashable {
    package struct Line: Codable, Sendable, Hashable {
        package var booking: String
        package var number: Int
        package var stage: String
        package var calls: Int
    }
    package var session: String
    package var closed: Bool
    package var lastSeq: Int
    /// The booking called now.
    package var current: String?
    /// Those waiting, first to be called first (their bookings).
    package var waiting: [String]
    /// By 号序.
    package var lines: [Line]

    package init(_ s: FloorSession) {
        session = s.info.schedule
        closed = s.closed
        lastSeq = s.queue?.lastSeq ?? 0
        current = s.queue?.current
        waiting = s.waiting.map(\.holdID)
        lines = s.lines.map { Line(booking: $0.holdID, number: $0.number, stage: $0.stage.rawValue, calls: $0.calls) }
    }

    package enum CodingKeys: String, CodingKey { case session, closed, lastSeq = "last_seq", current, waiting, lines }
}

extension FloorDesk {
    package func queueView(_ schedule: String) throws(StaffError) -> FloorQueueView { FloorQueueView(try sessionToday(schedule)) }

    package func run(_ c: FloorAdminCommand) async throws(StaffError) -> FloorQueueView {
        switch c.op {
        case "check_in":
            guard let booking = c.booking, !booking.isEmpty else {
                throw StaffError(400, "floor.booking", zh: "check_in 需要 booking（预约的请求号）。", en: "check_in needs booking (the booking's request id).")
            }
            _ = try await checkIn(session: c.session, booking: booking)
            return try queueView(c.session)
        case "next":
            return FloorQueueView(try await next(session: c.session, expecting: c.expecting, missed: c.missed ?? false, seen: c.seen ?? 0))
        case "recall":
            guard let expecting = c.expecting else {
                throw StaffError(400, "floor.expecting", zh: "recall 需要 expecting（正在就诊的预约）。", en: "recall needs expecting (the booking called now).")
            }
            return FloorQueueView(try await recall(session: c.session, expecting: expecting, seen: c.seen ?? 0))
        case "close":
            return FloorQueueView(try await close(session: c.session))
        case "walk_in":
            _ = try await walkIn(session: c.session, residentID: c.residentID ?? "", name: c.name ?? "", mobile: c.mobile ?? "",
                                 payment: c.payment ?? "cash", requestID: c.requestID ?? "")
            return try queueView(c.session)
        default:
            throw StaffError(400, "floor.op", zh: "op 只能是 check_in、next、recall、close 或 walk_in。", en: "op must be check_in, next, recall, close or walk_in.")
        }
    }
}
