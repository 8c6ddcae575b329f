import Consensus
import Domain
import Foundation

// Staff steps after booking (admin API `appointment-status`): the patient checked in (arrived),
// was seen (fulfilled) or did not come (noshow), or the record was wrong (entered-in-error). Each
// step is checked against the written status table; a no-show is also a strike in the patient's
// quota bucket, where the ban ladder counts it.

/// `appointment-status {"id": "<appointment id>", "status": "arrived", "staff": "<who>"}`.
public struct AppointmentStepCommand: Codable, Sendable, Hashable {
    public var id: String
    public var status: String
    public var staff: String?
    public init(id: String, status: String, staff: String? = nil) { self.id = id; self.status = status; self.staff = staff }
}

public struct AppointmentStepAnswer: Codable, Sendable, Hashable {
    public var id: String
    public var from: String
    public var to: String
    /// For a no-show: whether the strike was recorded (false: retry the same command later).
    public var strikeRecorded: Bool?

    package enum CodingKeys: String, CodingKey { case id, from, to, strikeRecorded = "strike_recorded" }
}

extension BookingDesk {
    package func stepAppointment(_ c: AppointmentStepCommand) async throws -> AppointmentStepAnswer {
        guard let ref = AppointmentRef(encoded: c.id) else {
            throw NodeError(.admin, zh: "预约号格式不正确。", en: "the appointment id is malformed.")
        }
        guard let next = AppointmentStatus(rawValue: c.status), [.arrived, .fulfilled, .noshow, .enteredInError].contains(next) else {
            throw NodeError(.admin, zh: "status 只能是 arrived、fulfilled、noshow 或 entered-in-error。",
                            en: "status must be arrived, fulfilled, noshow or entered-in-error.")
        }
        let records = consensus.lookup { $0.appointment(holdID: ref.holdID, block: ref.block, slot: ref.slot) }
        guard var current = records.status, let hold = records.hold else {
            throw NodeError(.admin, zh: "本节点还不知道该预约（刚预约的请稍后再试）。", en: "this node does not know that appointment yet (if it was just booked, try again shortly).")
        }
        let row = try store.liveRow("appointment", key: ref.holdID)
        if current == .booked, let staff = row?["status"]?.text, let s = AppointmentStatus(rawValue: staff) { current = s }
        // A repeated command is answered, not refused: the step is already there.
        if current != next {
            do { _ = try current.transition(to: next) } catch {
                throw NodeError(.admin, zh: error.zh, en: error.en)
            }
            try store.write { w in
                try w.upsert("appointment", key: ref.holdID, values: [
                    "patient": .text(hold.patient), "status": .text(next.rawValue), "updated_by": .text(c.staff ?? "admin")])
            }
        }
        var recorded: Bool?
        if next == .noshow {
            // The visit date is the session's; the schedule row is there wherever the hold is.
            let visit = try store.liveRow("schedule", key: ref.block)?["date"]?.text.flatMap { try? CivilDate(parsing: $0) }
            let visitDay = visit?.unixDay ?? ShanghaiTime.unixDay(wallMs: nowMs)
            let outcome = await consensus.strike(Strike(kind: .noShow, day: visitDay), patient: hold.patient, id: "noshow:" + ref.holdID, timeout: .seconds(5))
            if case .booked? = outcome { recorded = true } else { recorded = false }
        }
        return AppointmentStepAnswer(id: c.id, from: current.rawValue, to: next.rawValue, strikeRecorded: recorded)
    }
}
