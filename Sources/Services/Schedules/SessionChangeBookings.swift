import Consensus
import Domain
import Foundation
import ReplicatedCore

// What an approved change does to a session's bookings, done by the holder of the session's
// block: a stop cancels them; a move books each confirmed patient into the new session (the same
// number where it is free) before cancelling the old booking, or cancels them if the doctor said
// so; a substitution keeps them. Each patient touched gets one SMS, under an id made from the
// change and the booking. Every step is named by the change and the booking, so a repeat (the
// next round, or a new holder after a failover) does nothing twice.

extension SessionChangeDesk {
    /// Carries out the approved changes of today's and later sessions whose blocks this node
    /// holds. Run now and then: a booking that reached the holder after the approval is caught by
    /// the next round.
    package func carryOut() async {
        guard let today = try? rota.today() else { return }
        let rows = (try? store.liveRows("session_change", equal: ["status": .text(SessionChangeStatus.approved.rawValue)],
                                        range: (column: "date", from: .text(today.description), to: nil), newestBy: nil, limit: 10_000)) ?? []
        for (id, row) in rows {
            guard let record = Self.record(id, row), record.change.kind != .addSlots,
                  booking.consensus.lookup({ $0.holds(record.change.session.rawValue) }) else { continue }
            await carryOut(record)
        }
    }

    /// What happened to one booking, for its SMS.
    enum Notice: Equatable {
        case cancelled
        /// Moved into the new session's slot (0-based).
        case moved(slot: Int)
        case substituted
    }

    private func carryOut(_ record: SessionChangeRecord) async {
        let c = record.change, block = c.session.rawValue
        let quota = QuotaTag(visitDay: c.session.date.unixDay, department: record.department)
        let target = record.movedTo.flatMap { try? sessionInfo($0) }
        // Bookings that move wait until the new session has reached this node: never cancelled for want of it.
        if c.kind == .move, c.bookings == .move, target == nil { return }
        var movedSlots: [String: Int] = [:]
        // The bookings' steps first, each named by the change and the booking.
        for (hold, r) in booking.consensus.lookup({ $0.appointments(in: block) }).sorted(by: { $0.key < $1.key }) {
            guard let held = r.hold, r.status == .pending || r.status == .booked, c.kind == .stop || c.kind == .move else { continue }
            if c.kind == .move, c.bookings == .move, r.status == .booked, let target {
                switch await rebook(held, label: r.confirmation?.tag ?? PaymentTag.encode("card"), into: target, change: record.id) {
                case .moved(let slot): movedSlots[hold] = slot
                case .full: break // no room left: cancelled, and told so
                case .notYet: continue // the next round
                }
            }
            let cancel = BookingRequest(id: Self.cancellationID(change: record.id, hold: hold), block: block, slot: held.slot,
                                        patient: held.patient, releases: hold)
            _ = await booking.consensus.book(cancel, quota: quota, timeout: .seconds(5))
        }
        // Then what each patient is owed, from the records as they are now.
        var notices: [(hold: Booking, notice: Notice)] = []
        var left = 0
        for (hold, r) in booking.consensus.lookup({ $0.appointments(in: block) }).sorted(by: { $0.key < $1.key }) {
            guard let held = r.hold else { continue }
            let active = r.status == .pending || r.status == .booked
            if c.kind == .substitute {
                // Those who booked after the decision saw the doctor who stands in: nothing to tell them.
                if active, bookedBefore(held, decidedMs: record.decidedMs) { notices.append((held, .substituted)) }
            } else if r.release?.id == Self.cancellationID(change: record.id, hold: hold) {
                if let slot = movedSlots[hold] ?? movedSlot(of: held, change: record.id, target: target) {
                    notices.append((held, .moved(slot: slot)))
                } else {
                    notices.append((held, .cancelled))
                }
            } else if active {
                left += 1
            }
        }
        await inform(record, notices, target: target)
        let moved = notices.filter { if case .moved = $0.notice { true } else { false } }.count
        let cancelled = notices.filter { $0.notice == .cancelled }.count
        let outcome = "cancelled:\(cancelled),moved:\(moved),kept:\(notices.count - moved - cancelled),left:\(left)"
        if outcome != record.outcome {
            _ = try? store.write { w in try w.upsert("session_change", key: record.id, values: ["outcome": .text(outcome)]) }
        }
    }

    /// Whether hold `held` was taken before `decidedMs`: a hold runs `hold_minutes` from when it was taken.
    private func bookedBefore(_ held: Booking, decidedMs: Int64?) -> Bool {
        guard let decidedMs, case .hold(let until, _) = held.kind else { return true }
        return until - Int64(booking.config.holdMinutes) * 60_000 < decidedMs
    }

    enum Rebooked { case moved(Int), full, notYet }

    /// Books the patient of `old` into the new session (its number if free, else the nearest free
    /// one) and confirms it with the same payment label.
    private func rebook(_ old: Booking, label: String, into target: SessionInfo, change: String) async -> Rebooked {
        let holdID = Self.movedHoldID(of: old, change: change)
        let slots = (0..<target.capacity).sorted { (abs($0 - old.slot), $0) < (abs($1 - old.slot), $1) }
        guard let first = slots.first else { return .full }
        let hold = BookingRequest(id: holdID, block: target.schedule, slot: first, patient: old.patient, alternatives: Array(slots.dropFirst().prefix(64)),
                                  holdMs: Int64(booking.config.holdMinutes) * 60_000)
        let slot: Int
        switch await booking.consensus.book(hold, quota: nil, timeout: .seconds(5)) {
        case .booked(let b)?: slot = b.slot
        case .refused(_, .slotTaken)?: return .full
        default: return .notYet
        }
        let ref = AppointmentRef(holdID: holdID, block: target.schedule, slot: slot)
        let confirm = BookingRequest(id: ref.confirmationID, block: target.schedule, slot: slot, patient: old.patient, confirms: holdID, tag: label)
        if case .booked? = await booking.consensus.book(confirm, quota: nil, timeout: .seconds(5)) { return .moved(slot) }
        return .notYet
    }

    static func movedHoldID(of old: Booking, change: String) -> String {
        AppointmentRef.holdID(patient: old.patient, requestID: "move:\(change):\(old.id)")
    }

    /// The slot the patient of `old` was moved into, as this node's records say (a holder after
    /// a failover, telling patients moved before it).
    private func movedSlot(of old: Booking, change: String, target: SessionInfo?) -> Int? {
        guard let target else { return nil }
        let id = Self.movedHoldID(of: old, change: change)
        let moved = booking.consensus.lookup { $0.appointments(in: target.schedule)[id] }
        guard let moved, moved.status == .booked, let hold = moved.hold else { return nil }
        return hold.slot
    }

    /// Queues the SMS each patient is owed and has not been sent from this node.
    private func inform(_ record: SessionChangeRecord, _ notices: [(hold: Booking, notice: Notice)], target: SessionInfo?) async {
        guard let outbox else { return }
        // Every round finds the same notices: the rows are read only for those not yet queued here.
        let due = notices.filter { !outbox.known(Self.messageID(change: record.id, hold: $0.hold.id)) }
        guard !due.isEmpty, let session = try? sessionInfo(record.change.session),
              let patients = try? store.liveRows("patient", keys: Set(due.map(\.hold.patient))) else { return }
        func name(_ doctor: PractitionerID) -> String { (try? store.liveRow("practitioner", key: doctor.rawValue)?["name"]?.textValue) ?? doctor.rawValue }
        let planned = name(record.change.session.practitionerID), substitute = record.change.substitute.map(name) ?? ""
        let messages = due.compactMap { n -> SMSMessage? in
            guard let mobile = patients[n.hold.patient]?["mobile"]?.textValue else { return nil }
            let text = Self.text(n.notice, session: session, slot: n.hold.slot, target: target, planned: planned, substitute: substitute, kind: record.change.kind)
            return SMSMessage(id: Self.messageID(change: record.id, hold: n.hold.id), kind: "session_change", mobile: mobile, text: text)
        }
        _ = try? outbox.enqueue(messages, nowMs: nowMs)
    }

    /// - Parameters:
    ///   - planned: the name of the doctor the session was published for.
    ///   - substitute: the name of the doctor who stands in (替诊).
    static func text(_ notice: Notice, session s: SessionInfo, slot: Int, target: SessionInfo?, planned: String, substitute: String,
                     kind: SessionChangeKind) -> String {
        let when = "\(s.date) \(s.times(of: slot).start)"
        let whoZh = "\(s.departmentName) \(s.practitionerName)", whoEn = "\(s.department) \(s.practitioner)"
        switch notice {
        case .substituted:
            return "【ClinicMesh】替诊通知：\(when) \(s.departmentName) \(planned) 的门诊改由 \(substitute) 医生接诊，您的第\(slot + 1)号预约不变；如需退号可在预约中取消。"
                + "Substitute: on \(when) \(s.department) \(planned)'s patients are seen by \(substitute); your booking no. \(slot + 1) stands (you may cancel it)."
        case .moved(let newSlot):
            let newWhen = target.map { "\($0.date) \($0.times(of: newSlot).start)" } ?? ""
            return "【ClinicMesh】改期通知：\(whoZh) \(s.date) 的门诊改到 \(target?.date.description ?? "")，您的预约改为 \(newWhen) 第\(newSlot + 1)号；如不便前往可在预约中退号。"
                + "Moved: \(whoEn)'s session of \(s.date) moves to \(target?.date.description ?? ""); your booking is now \(newWhen), no. \(newSlot + 1) (you may cancel it)."
        case .cancelled:
            let zhWhy = kind == .move ? "因出诊改期" : "因医生停诊", enWhy = kind == .move ? "the session was moved" : "the session was cancelled"
            return "【ClinicMesh】退号通知：\(when) \(whoZh) 第\(slot + 1)号\(zhWhy)已取消，如已缴费请到收费处办理退费，欢迎另行预约。"
                + "Cancelled: your booking no. \(slot + 1) on \(when) with \(whoEn) is cancelled because \(enWhy); any fee paid is refunded at the cashier's. You may book again."
        }
    }

    /// A session as patients see it, from its schedule row whatever its state (a stopped or
    /// moved session is no longer in the session directory).
    func sessionInfo(_ key: ScheduleKey) throws -> SessionInfo? {
        guard let row = try store.liveRow("schedule", key: key.rawValue) else { return nil }
        return SessionInfo(schedule: key.rawValue, row: row, department: { try? store.liveRow("department", key: $0) },
                           practitioner: { try? store.liveRow("practitioner", key: $0) })
    }
}
