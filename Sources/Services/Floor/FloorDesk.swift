import Consensus
import Crypto
import Domain
import Foundation
import ReplicatedCore

// The clinic floor on one node: check-in (报到) at the nurse's desk or the kiosk, walk-ins (现场挂号)
// into the walk-in reserve, the doctor's calls (叫号, 过号, 重呼), the waiting-room display, and each
// session's queue closing after its end (no-shows then feed the ban ladder). Every change of a
// queue is a floor command to the session block's holder (`FloorCommand`); this desk only reads
// the queues that the block's records give (`SessionQueue`) and names the people in them.

/// The floor's rules on this node (the node config's `floor` section).
package struct FloorSettings: Sendable, Hashable {
    /// A patient back after missing the call (过号) waits behind this many others.
    package var backBehind = 3
    /// A session's queue closes this many minutes after its end: a late patient may still check
    /// in and the doctor finish the queue meanwhile.
    package var closeAfterMinutes = 60

    package init(backBehind: Int = 3, closeAfterMinutes: Int = 60) {
        self.backBehind = backBehind; self.closeAfterMinutes = closeAfterMinutes
    }
}

/// One patient in a session's queue, as staff pages show them.
package struct FloorLine: Sendable, Hashable {
    /// The appointment id patients and staff see (`AppointmentRef.encoded`).
    package var appointment: String
    package var holdID: String
    /// 号序, from 1.
    package var number: Int
    package var patient: String
    package var name: String
    package var stage: SessionQueue.Stage
    package var calls: Int
    /// In the walk-in reserve (现场号).
    package var walkIn: Bool
    /// The floor record that last changed it: a command naming it is the same command again.
    package var seq: Int

    package var maskedName: String { Patient.masked(name) }
}

/// One of today's sessions on the floor.
package struct FloorSession: Sendable {
    package var info: SessionInfo
    /// Nil while this node knows no lease block for the session.
    package var queue: SessionQueue?
    /// By 号序.
    package var lines: [FloorLine]

    package var called: FloorLine? { lines.first { $0.holdID == queue?.current } }
    /// Those waiting, first to be called first.
    package var waiting: [FloorLine] {
        let order = (queue?.waiting ?? []).map(\.id)
        let byHold = Dictionary(uniqueKeysWithValues: lines.map { ($0.holdID, $0) })
        return order.compactMap { byHold[$0] }
    }
    package var closed: Bool { queue?.closed ?? false }
}

package final class FloorDesk: Sendable {
    package let booking: BookingDesk
    package let settings: FloorSettings
    package let patientKeySecret: SymmetricKey

    package init(booking: BookingDesk, settings: FloorSettings, patientKeySecret: SymmetricKey) {
        self.booking = booking; self.settings = settings; self.patientKeySecret = patientKeySecret
    }

    var store: any RecordStore { booking.store }
    var nowMs: Int64 { booking.nowMs }

    package func today() throws(StaffError) -> CivilDate { try booking.clock.today() }

    // MARK: Reading the floor

    /// Today's sessions of `department` (every department: nil), optionally one doctor's, from the
    /// session directory alone (no queue derived, no patient read).
    package func infosToday(department: String?, practitioner: String? = nil) throws(StaffError) -> [SessionInfo] {
        let today = try today()
        let infos: [SessionInfo]
        do { infos = try booking.directory.ordered(store) } catch { throw .storeUnavailable }
        return infos.filter { $0.date == today && (department == nil || $0.department == department) && (practitioner == nil || $0.practitioner == practitioner) }
    }

    /// Today's sessions of `department` (every department: nil), optionally one doctor's, with their queues.
    package func sessionsToday(department: String?, practitioner: String? = nil) throws(StaffError) -> [FloorSession] {
        let mine = try infosToday(department: department, practitioner: practitioner)
        let queues = booking.consensus.lookup { lookup in mine.map { lookup.queue(of: $0.schedule) } }
        var sessions = zip(mine, queues).map { FloorSession(info: $0, queue: $1, lines: []) }
        let patients = Set(sessions.flatMap { $0.queue?.entries.values.map(\.patient) ?? [] })
        let rows: [String: [String: ColumnValue]]
        do { rows = patients.isEmpty ? [:] : try store.liveRows("patient", keys: patients) } catch { throw .storeUnavailable }
        for i in sessions.indices {
            guard let q = sessions[i].queue else { continue }
            let info = sessions[i].info
            sessions[i].lines = q.entries.values.map { e in
                FloorLine(appointment: AppointmentRef(holdID: e.id, block: info.schedule, slot: e.slot).encoded, holdID: e.id, number: e.slot + 1,
                          patient: e.patient, name: rows[e.patient]?["name"]?.textValue ?? "", stage: e.stage, calls: e.calls,
                          walkIn: e.slot >= info.onlineSlots, seq: e.seq)
            }.sorted { $0.number < $1.number }
        }
        return sessions
    }

    /// One of today's sessions, or why it cannot be worked on now.
    package func sessionToday(_ schedule: String) throws(StaffError) -> FloorSession {
        let info: SessionInfo?
        do { info = try booking.directory.session(schedule, in: store) } catch { throw .storeUnavailable }
        guard let info else { throw StaffError(404, "floor.no_session", zh: "没有这个出诊时段。", en: "there is no such session.") }
        guard info.date == (try today()) else {
            throw StaffError(409, "floor.not_today", zh: "该出诊时段不在今天（\(info.date)），只能为今天的就诊报到和叫号。",
                             en: "this session is not today (\(info.date)); check-in and calling are for today's visits only.")
        }
        guard let found = try sessionsToday(department: info.department, practitioner: info.practitioner).first(where: { $0.info.schedule == schedule }),
              found.queue != nil else {
            throw StaffError(503, "floor.no_block", zh: "本节点还不知道该时段的号源租约，请稍后再试。", en: "this node does not know the session's lease block yet; try again shortly.")
        }
        return found
    }

    // MARK: Changing it

    /// Checks in appointment `id` (报到); a patient who missed the call waits again behind the next
    /// few. The holder decides from its records: this node's may not have the booking yet.
    package func checkIn(appointment id: String) async throws(StaffError) -> FloorLine {
        guard let ref = AppointmentRef(encoded: id.trimmingCharacters(in: .whitespaces)) else {
            throw StaffError(400, "floor.appointment_id", zh: "预约号格式不正确，请核对后重新输入。", en: "the booking number is malformed; check it and enter it again.")
        }
        return try await checkIn(ref)
    }

    /// Checks in booking `id` of today's session `schedule` (the admin API's form: any booking's
    /// request id, a staff booking's too), as this node's records know it.
    package func checkIn(session schedule: String, booking id: String) async throws(StaffError) -> FloorLine {
        guard let line = try sessionToday(schedule).lines.first(where: { $0.holdID == id }) else { throw refusal(.noAppointment) }
        return try await checkIn(AppointmentRef(holdID: id, block: schedule, slot: line.number - 1))
    }

    private func checkIn(_ ref: AppointmentRef) async throws(StaffError) -> FloorLine {
        let session = try sessionToday(ref.block)
        let known = session.lines.first { $0.holdID == ref.holdID }
        let command = FloorCommand.checkIn(ref.holdID, behind: settings.backBehind)
        let record: Booking
        do throws(StaffError) {
            record = try await send(command, id: "floor:\(ref.block):in:\(ref.holdID):\(known?.seq ?? 0)", block: ref.block)
        } catch where error.code == RefuseReason.alreadyArrived.words.code {
            // Checked in already (a second click, the same form again, a view behind the holder's): so be it.
            if let known, known.stage != .booked, known.stage != .missed { return known }
            var line = known ?? FloorLine(appointment: ref.encoded, holdID: ref.holdID, number: ref.slot + 1, patient: "", name: "", stage: .waiting,
                                          calls: 0, walkIn: ref.slot >= session.info.onlineSlots, seq: 0)
            line.stage = .waiting
            return line
        }
        guard case .floor(let floor) = record.kind, ref.slot == record.slot else { throw refusal(.requestMismatch) }
        if case .checkIn = floor.event {
            // The appointment's staff status, for the pages and reports that read it; the queue already stands.
            _ = try? await booking.stepAppointment(AppointmentStepCommand(id: ref.encoded, status: AppointmentStatus.arrived.rawValue, staff: "floor"))
        }
        let name = known?.name ?? (((try? store.liveRow("patient", key: record.patient)) ?? nil)?["name"]?.textValue ?? "")
        return FloorLine(appointment: ref.encoded, holdID: ref.holdID, number: record.slot + 1, patient: record.patient, name: name, stage: .waiting,
                         calls: 0, walkIn: record.slot >= session.info.onlineSlots, seq: floor.seq)
    }

    /// Checks in every booking the patient with this resident ID has today (the kiosk).
    package func checkIn(residentID text: String, department: String?) async throws(StaffError) -> [(FloorSession, FloorLine)] {
        let key = try patientKey(text)
        let today = try sessionsToday(department: department)
        let theirs = today.flatMap { s in s.lines.filter { $0.patient == key }.map { (s, $0) } }
        guard !theirs.isEmpty else {
            throw StaffError(404, "floor.no_booking_today", zh: "今天没有您在本科室的有效预约；如未预约，请到挂号窗口现场挂号。",
                             en: "you have no booking here today; if you did not book, please register at the desk.")
        }
        var done: [(FloorSession, FloorLine)] = []
        var lastError: StaffError?
        for (s, line) in theirs where [.booked, .missed].contains(line.stage) {
            do throws(StaffError) { done.append((s, try await checkIn(appointment: line.appointment))) } catch { lastError = error }
        }
        if done.isEmpty {
            if let lastError { throw lastError }
            throw refusal(.alreadyArrived)
        }
        return done
    }

    /// Calls the first patient waiting (叫号). `expecting`: who the screen shows called now;
    /// `missed`: that patient did not come (过号). `seen`: the newest floor record the screen
    /// showed, so the same press sent twice is one call.
    package func next(session schedule: String, expecting: String?, missed: Bool, seen: Int) async throws(StaffError) -> FloorSession {
        _ = try sessionToday(schedule)
        try await send(.next(expecting: expecting, missed: missed), id: "floor:\(schedule):next:\(seen):\(expecting ?? "-"):\(missed ? 1 : 0)", block: schedule)
        return try sessionToday(schedule)
    }

    /// Calls the patient called now again (重呼).
    package func recall(session schedule: String, expecting: String, seen: Int) async throws(StaffError) -> FloorSession {
        _ = try sessionToday(schedule)
        try await send(.recall(expecting: expecting), id: "floor:\(schedule):recall:\(seen)", block: schedule)
        return try sessionToday(schedule)
    }

    /// Registers a walk-in (现场挂号) into the session's walk-in reserve, through the same booking
    /// protocol as online booking, and checks them in. `requestID`: the form's, so a second
    /// submission of the same form books nothing more.
    package func walkIn(session schedule: String, residentID: String, name: String, mobile: String, payment: String,
                        requestID: String) async throws(StaffError) -> FloorLine {
        let session = try sessionToday(schedule)
        guard !session.closed else { throw refusal(.sessionClosed) }
        guard ["insurance", "card", "cash"].contains(payment) else {
            throw StaffError(400, "floor.payment", zh: "请选择医保、银行卡或现金。", en: "choose insurance, card or cash.")
        }
        guard !requestID.isEmpty, requestID.utf8.count <= 128 else {
            throw StaffError(400, "floor.request_id", zh: "表单已失效，请刷新页面后重试。", en: "the form is stale; reload the page and try again.")
        }
        let info = session.info
        guard info.walkInReserve > 0 else {
            throw StaffError(409, "floor.no_reserve", zh: "该时段没有预留现场号。", en: "this session keeps no walk-in slots.")
        }
        let key = try register(residentID: residentID, name: name, mobile: mobile)
        let holdID = AppointmentRef.holdID(patient: key, requestID: "walk-in:" + requestID)
        let reserve = Array(info.onlineSlots..<info.capacity)
        let hold = BookingRequest(id: holdID, block: schedule, slot: reserve[0], patient: key, alternatives: Array(reserve.dropFirst().prefix(64)),
                                  holdMs: Int64(booking.config.holdMinutes) * 60_000)
        let slot: Int
        do throws(StaffError) {
            slot = try await book(hold, quota: info.quotaTag).slot
        } catch where error.code == refusal(.slotTaken).code {
            throw StaffError(409, "floor.reserve_full", zh: "该时段的现场号已挂满。", en: "this session's walk-in slots are all taken.")
        }
        let ref = AppointmentRef(holdID: holdID, block: schedule, slot: slot)
        let confirm = BookingRequest(id: ref.confirmationID, block: schedule, slot: slot, patient: key, confirms: holdID, tag: PaymentTag.encode(payment))
        try await book(confirm, quota: nil)
        return try await checkIn(appointment: ref.encoded)
    }

    /// Closes the session's queue now (the admin API's; the node does it on its own after the session).
    package func close(session schedule: String) async throws(StaffError) -> FloorSession {
        _ = try sessionToday(schedule)
        try await send(.close, id: "floor:\(schedule):close", block: schedule)
        return try sessionToday(schedule)
    }

    // MARK: Closing

    /// Closes the queues of the sessions this node holds once they are over, and records their
    /// no-shows (a strike each, which the ban ladder counts). Run now and then; repeats do nothing.
    package func closeSessionsDue() async {
        guard let today = try? today(), let infos = try? booking.directory.ordered(store) else { return }
        let earliest = (try? today.adding(days: -2)) ?? today
        for info in infos where info.date >= earliest && info.date <= today {
            let (held, queue) = booking.consensus.lookup { ($0.holds(info.schedule), $0.queue(of: info.schedule)) }
            guard held, let queue else { continue }
            if !queue.closed {
                let endMs = Int64(ShanghaiTime.instant(date: info.date, time: info.end).timeIntervalSince1970 * 1000)
                guard nowMs >= endMs + Int64(settings.closeAfterMinutes) * 60_000 else { continue }
                try? await send(.close, id: "floor:\(info.schedule):close", block: info.schedule)
                continue // the no-shows on a later round, from the queue as closed
            }
            for e in queue.entries.values where e.stage == .noShow {
                let ref = AppointmentRef(holdID: e.id, block: info.schedule, slot: e.slot)
                if booking.staffStatuses.status(of: e.id, in: store) == AppointmentStatus.noshow.rawValue { continue }
                _ = try? await booking.stepAppointment(AppointmentStepCommand(id: ref.encoded, status: AppointmentStatus.noshow.rawValue, staff: "floor"))
            }
        }
    }

    // MARK: Helpers

    /// Sends a floor command to the block's holder; the floor record it made.
    @discardableResult
    private func send(_ command: FloorCommand, id: String, block: String) async throws(StaffError) -> Booking {
        try await book(BookingRequest(id: id, block: block, slot: 0, patient: "floor", tag: command.requestTag), quota: nil)
    }

    /// Books through the block's holder. A retry with the same id is the same request, so a slow
    /// round, or a holder or quota bucket that is changing hands, is waited out: never doubled.
    @discardableResult
    private func book(_ q: BookingRequest, quota: QuotaTag?) async throws(StaffError) -> Booking {
        for attempt in 0..<3 {
            switch await booking.consensus.book(q, quota: quota, timeout: .seconds(5)) {
            case .booked(let record)?: return record
            case .refused(_, let reason)? where Self.passing.contains(reason) && attempt < 2:
                try? await Task.sleep(for: .milliseconds(500))
            case .refused(_, let reason)?: throw refusal(reason)
            case nil: continue
            }
        }
        throw timeout
    }

    /// Refusals that say only that nobody can decide right now.
    private static let passing: Set<RefuseReason> = [.noHolder, .notHolder, .quotaUnavailable]

    private var timeout: StaffError {
        StaffError(503, "floor.timeout", zh: "集群未在时限内给出结果，请稍后重试（不会重复操作）。",
                   en: "the cluster gave no answer in time; try again shortly (nothing is done twice).")
    }

    private func refusal(_ reason: RefuseReason) -> StaffError {
        let p = PatientError.refused(reason)
        return StaffError(p.status, p.code, zh: p.zh, en: p.en)
    }

    private func patientKey(_ text: String) throws(StaffError) -> String {
        do {
            let id = try ResidentID(text.trimmingCharacters(in: .whitespaces), today: try today(), field: "resident_id")
            return try PatientKey(residentID: id, clusterSecret: patientKeySecret).hex
        } catch let e as ValidationError { throw .invalid(e) } catch { throw .storeUnavailable }
    }

    /// The walk-in's patient key; registers them on their first visit. A resident ID already
    /// registered under another name is refused: the card in hand decides, not the form.
    private func register(residentID: String, name: String, mobile: String) throws(StaffError) -> String {
        let id: ResidentID, number: MobileNumber, cleanName: String
        do {
            id = try ResidentID(residentID.trimmingCharacters(in: .whitespaces), today: try today(), field: "resident_id")
            number = try MobileNumber(mobile, field: "mobile")
            cleanName = try Patient.normalizedName(name)
        } catch let e as ValidationError { throw .invalid(e) } catch { throw .storeUnavailable }
        let key: String
        do { key = try PatientKey(residentID: id, clusterSecret: patientKeySecret).hex } catch { throw .invalid(error) }
        do {
            if let row = try store.liveRow("patient", key: key) {
                let stored = row["name"]?.textValue ?? ""
                guard ((try? Patient.normalizedName(stored)) ?? stored) == cleanName else {
                    throw StaffError(409, "identity.mismatch", zh: "姓名与该身份证号登记的姓名不一致，请核对身份证。",
                                     en: "the name differs from the one registered for this resident ID; check the ID card.")
                }
                return key
            }
            try store.write { w in
                try w.insert("patient", key: key, values: [
                    "name": .text(cleanName), "resident_id": .text(id.value), "mobile": .text(number.digits),
                    "sex": .text(id.sex.rawValue), "birth_date": .text(id.birthDate.description)])
            }
            return key
        } catch let e as StaffError { throw e } catch { throw .storeUnavailable }
    }
}
