@testable import ClinicNode
import Consensus
import Crypto
import Domain
import Foundation
@testable import Services
import TestSupport
import Testing

/// Doctors' session changes on three running nodes: a doctor asks through one node, the head
/// approves through another, and the holder of the session's block (a third) cancels or moves
/// the bookings and texts each patient. The nodes' clocks read 09:30 of a day a week ahead.
@Suite("Session changes on running nodes", .serialized, .timeLimit(.minutes(5)))
struct SessionChangeTests {
    struct Ward {
        let files: TestClusterFiles
        let nodes: [String: RunningNode]
        let day: CivilDate
        var neike: MeshNode { nodes["neike"]!.node }
        var waike: MeshNode { nodes["waike"]!.node }
        var erke: MeshNode { nodes["erke"]!.node }

        /// The SMS the node's file sender wrote.
        func sms(_ id: String) -> [SMSMessage] {
            let text = (try? String(contentsOfFile: files.configs[id]!.dataDir + "/sms-sent.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(SMSMessage.self, from: Data($0.utf8)) }
        }

        /// A session of `doctor` on `date`, published on neike (which holds its block), once every node knows it.
        func session(_ doctor: String, on date: CivilDate, _ halfDay: HalfDay, room: String, capacity: Int = 6) async throws -> ScheduleKey {
            let s = try neike.rota.addSession(department: "neike", ClinicTemplate(
                practitionerID: PractitionerID(doctor), weekday: date.weekday, halfDay: halfDay, room: room,
                capacity: capacity, minutesPerSlot: 30, walkInReserve: 1), on: date)
            let block = s.key.rawValue
            let known = await eventually {
                neike.booking.consensus.lookup { $0.holds(block) }
                    && [waike, erke].allSatisfy { (try? $0.booking.directory.session(block, in: $0.store)) != nil }
            }
            guard known else { throw TestFailure("session \(block) did not reach every node") }
            return s.key
        }

        /// Patient `n` holds and confirms slot `slot` of `block` through neike.
        func book(_ n: Int, _ block: String, slot: Int) async throws -> AppointmentRef {
            let key = try patient(n)
            let holdID = AppointmentRef.holdID(patient: key, requestID: "online-\(n)-\(block)")
            guard case .booked? = await neike.booking.consensus.book(BookingRequest(id: holdID, block: block, slot: slot, patient: key, holdMs: 900_000),
                                                                     quota: nil, timeout: .seconds(10)) else { throw TestFailure("hold \(n)") }
            let ref = AppointmentRef(holdID: holdID, block: block, slot: slot)
            guard case .booked? = await neike.booking.consensus.book(BookingRequest(id: ref.confirmationID, block: block, slot: slot, patient: key,
                                                                                    confirms: holdID, tag: "payment:card"),
                                                                     quota: nil, timeout: .seconds(10)) else { throw TestFailure("confirm \(n)") }
            return ref
        }

        func patient(_ n: Int) throws -> String {
            let id = try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1980, month: 1, day: 1 + n), sequence: 200 + n)
            return try PatientKey(residentID: id, clusterSecret: neike.floor.patientKeySecret).hex
        }

        func status(_ ref: AppointmentRef, on node: MeshNode) -> AppointmentStatus? {
            node.booking.consensus.lookup { $0.appointment(holdID: ref.holdID, block: ref.block, slot: ref.slot) }.status
        }
    }

    static func ward(_ body: (Ward) async throws -> Void) async throws {
        let day = try ShanghaiTime.civil(of: Date()).date.adding(days: 7)
        let nineThirty = Int64(ShanghaiTime.instant(date: day, time: try LocalTime(hour: 9, minute: 30)).timeIntervalSince1970 * 1000)
        let offset = nineThirty - Int64(Date().timeIntervalSince1970 * 1000)
        var files = try TestClusterFiles(ids: ["neike", "waike", "erke"])
        defer { files.remove() }
        for id in files.ids {
            var p = PatientConfig()
            p.port = 0
            files.configs[id]!.patients = p
        }
        let nodes = try await startCluster(files, clocks: Dictionary(uniqueKeysWithValues: files.ids.map { ($0, NodeClock(offsetMillis: offset)) }))
        try await stoppingAfterwards(nodes) {
            let ward = Ward(files: files, nodes: nodes, day: day)
            try ward.neike.write { w in
                _ = try w.insert("department", key: "neike", values: ["name": .text("内科"), "code": .text("Internal Medicine")])
                for (id, name) in [("neike-qian", "钱进"), ("neike-sun", "孙立"), ("neike-zhou", "周平")] {
                    _ = try w.insert("practitioner", key: id, values: ["name": .text(name), "department": .text("neike"), "title": .text("attendingPhysician")])
                }
                for n in 0..<4 {
                    _ = try w.insert("patient", key: try ward.patient(n), values: ["name": .text("患者\(n)"), "mobile": .text("1380311000\(n)")])
                }
            }
            try await body(ward)
        }
    }

    static func refusal(_ body: () throws(StaffError) -> SessionChangeRecord) -> String? {
        do { _ = try body(); return nil } catch { return error.code }
    }

    @Test("a stop asked on one node and approved on another: the holder cancels every booking and texts each patient once")
    func stop() async throws {
        try await Self.ward { ward in
            let tomorrow = try ward.day.adding(days: 1)
            let key = try await ward.session("neike-qian", on: tomorrow, .morning, room: "内科1诊室")
            var refs: [AppointmentRef] = []
            for n in 0..<3 { refs.append(try await ward.book(n, key.rawValue, slot: n)) }
            #expect(await eventually { refs.allSatisfy { ward.status($0, on: ward.erke) == .booked } })

            let stop = try SessionChange(kind: .stop, session: key, reason: "外出会诊", today: ward.day)
            #expect(Self.refusal { () throws(StaffError) in try ward.waike.sessionChanges.request(stop, doctor: "neike-sun", staff: "D002") } == "change.not_yours")
            let record = try ward.waike.sessionChanges.request(stop, doctor: "neike-qian", staff: "D001")
            #expect(Self.refusal { () throws(StaffError) in try ward.waike.sessionChanges.request(stop, doctor: "neike-qian", staff: "D001") } == "change.pending")
            #expect(await eventually { (try? ward.erke.sessionChanges.change(record.id)) != nil })

            let approved = try ward.erke.sessionChanges.approve(record.id, by: "H001", note: "")
            #expect(approved.status == .approved)
            #expect(Self.refusal { () throws(StaffError) in try ward.erke.sessionChanges.approve(record.id, by: "H001", note: "") } == "change.decided")
            #expect(try ward.erke.booking.directory.session(key.rawValue, in: ward.erke.store) == nil, "a stopped session is no longer offered")

            // neike holds the block: it cancels the three bookings and texts each patient, once.
            #expect(await eventually { refs.allSatisfy { ward.status($0, on: ward.neike) == .cancelled } })
            #expect(await eventually { ward.sms("neike").filter { $0.kind == "session_change" }.count == 3 })
            let texts = ward.sms("neike").filter { $0.kind == "session_change" }
            #expect(Set(texts.map(\.id)).count == 3 && texts.allSatisfy { $0.text.contains("停诊") })
            #expect(!ward.sms("neike").contains { $0.kind == "cancellation" }, "no second, generic message for the same cancellations")
            #expect(await eventually { (try? ward.waike.sessionChanges.change(record.id).outcome) == "cancelled:3,moved:0,kept:0,left:0" })

            // Publishing the week again leaves the stopped session stopped.
            _ = try ward.neike.rota.publish(department: "neike", from: ward.day, weeks: 1)
            #expect(try ward.neike.store.liveRow("schedule", key: key.rawValue)?["status"]?.textValue == "stopped")
        }
    }

    @Test("a move takes its bookings along, a substitute keeps them, extra slots are bookable, and conflicts are refused")
    func moveSubstituteAndExtraSlots() async throws {
        try await Self.ward { ward in
            let tomorrow = try ward.day.adding(days: 1), later = try ward.day.adding(days: 2)
            let key = try await ward.session("neike-qian", on: tomorrow, .morning, room: "内科1诊室")
            // Sun sees patients on the afternoon Qian's session moves to.
            _ = try await ward.session("neike-sun", on: later, .afternoon, room: "内科2诊室")
            let refs = [try await ward.book(0, key.rawValue, slot: 0), try await ward.book(1, key.rawValue, slot: 2)]
            #expect(await eventually { refs.allSatisfy { ward.status($0, on: ward.waike) == .booked } })

            // A move must say what happens to the bookings; and it cannot take Sun's room at Sun's time.
            let unsaid = try SessionChange(kind: .move, session: key, reason: "调整", moveTo: SessionMove(date: later, halfDay: .afternoon, start: nil), today: ward.day)
            #expect(Self.refusal { () throws(StaffError) in try ward.waike.sessionChanges.request(unsaid, doctor: "neike-qian", staff: "D001") } == "change.bookings_unsaid")
            let move = try SessionChange(kind: .move, session: key, reason: "调整", moveTo: SessionMove(date: later, halfDay: .afternoon, start: nil),
                                         bookings: .move, today: ward.day)
            let record = try ward.waike.sessionChanges.request(move, doctor: "neike-qian", staff: "D001")
            let moved = try ward.waike.sessionChanges.approve(record.id, by: "H001", note: "同意")
            let target = try #require(moved.movedTo)
            #expect(target.date == later && target.halfDay == .afternoon)

            // The holder of the old session books both patients into the new one, same numbers, then cancels the old bookings.
            let movedRefs = try refs.map { ref -> AppointmentRef in
                let old = try #require(ward.neike.booking.consensus.lookup { $0.appointment(holdID: ref.holdID, block: ref.block, slot: ref.slot) }.hold)
                return AppointmentRef(holdID: SessionChangeDesk.movedHoldID(of: old, change: record.id), block: target.rawValue, slot: ref.slot)
            }
            #expect(await eventually { movedRefs.allSatisfy { ward.status($0, on: ward.neike) == .booked } })
            #expect(await eventually { refs.allSatisfy { ward.status($0, on: ward.neike) == .cancelled } })
            #expect(await eventually { ward.sms("neike").filter { $0.kind == "session_change" && $0.text.contains("改期") }.count == 2 })
            #expect(await eventually { (try? ward.erke.sessionChanges.change(record.id).outcome) == "cancelled:0,moved:2,kept:0,left:0" })
            #expect(try ward.neike.store.liveRow("schedule", key: key.rawValue)?["status"]?.textValue == "moved")

            // Sun cannot stand in for Qian's moved session: Sun sees patients that afternoon already.
            let sunTwice = try SessionChange(kind: .substitute, session: target, reason: "出差", substitute: PractitionerID("neike-sun"), today: ward.day)
            #expect(Self.refusal { () throws(StaffError) in try ward.neike.sessionChanges.request(sunTwice, doctor: "neike-qian", staff: "D001") } == "rota.doctor_twice")
            let zhou = try SessionChange(kind: .substitute, session: target, reason: "出差", substitute: PractitionerID("neike-zhou"), today: ward.day)
            let substitution = try ward.neike.sessionChanges.request(zhou, doctor: "neike-qian", staff: "D001")
            #expect(await eventually { (try? ward.erke.sessionChanges.change(substitution.id)) != nil })
            _ = try ward.erke.sessionChanges.approve(substitution.id, by: "H001", note: "")
            #expect(await eventually { (try? ward.waike.booking.directory.session(target.rawValue, in: ward.waike.store))?.practitioner == "neike-zhou" })
            #expect(await eventually { ward.sms("waike").filter { $0.kind == "session_change" && $0.text.contains("替诊") }.count == 2 },
                    "waike approved the move, so it published the new session and holds its block: it texts the two patients")
            #expect(await eventually { movedRefs.allSatisfy { ward.status($0, on: ward.erke) == .booked } }, "a substitution keeps the bookings")

            // Now Zhou's session: Qian can no longer change it; Zhou adds two slots for walk-ins, and the desk can take the eighth.
            let extra = try SessionChange(kind: .addSlots, session: target, reason: "患者多", extraSlots: 2, extraForWalkIns: true, today: ward.day)
            #expect(Self.refusal { () throws(StaffError) in try ward.erke.sessionChanges.request(extra, doctor: "neike-qian", staff: "D001") } == "change.not_yours")
            let added = try ward.erke.sessionChanges.request(extra, doctor: "neike-zhou", staff: "D003")
            #expect(await eventually { (try? ward.neike.sessionChanges.change(added.id)) != nil && (try? ward.neike.store.liveRow("schedule", key: target.rawValue)?["practitioner"]?.textValue) == "neike-zhou" })
            _ = try ward.neike.sessionChanges.approve(added.id, by: "H001", note: "")
            #expect(await eventually {
                let info = try? ward.erke.booking.directory.session(target.rawValue, in: ward.erke.store)
                return info?.capacity == 8 && info?.walkInReserve == 3 && info?.onlineSlots == 5
            })
            let walkIn = try await ward.book(3, target.rawValue, slot: 7)
            #expect(ward.status(walkIn, on: ward.erke) == .booked)
        }
    }
}
