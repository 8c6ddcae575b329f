@testable import ClinicNode
@testable import DemoAndBench
@testable import AdminAPI
@testable import Services
@testable import HTTPAPI
import Consensus
import Domain
import Drills
import Foundation
import Hummingbird
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

/// The patient API over real HTTPS against three in-process department nodes: the booking flow,
/// every anti-scalping rule at its edge, and SMS. Visits start on day 0 (`firstVisit`); unless a
/// test moves it, the clock stands at day 2, 15:00:01 Asia/Shanghai, so days 0 to 9 are open.
@Suite("Patient API", .serialized, .timeLimit(.minutes(10)))
struct PatientAPITests {
    static func afterRelease(_ first: CivilDate) throws -> Date {
        Date(timeIntervalSince1970: Double(PatientCluster.shanghaiMs(try first.adding(days: 2), 15, 0, 1)) / 1000)
    }

    @Test("sign in, search, hold, confirm through another node, retry, cancel; every step in the status table; SMS from the holder")
    func bookingFlow() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike"), waike = try await c.client("waike")
            // Bad input: a clear code and both languages, nothing registered.
            let bad = try await neike.send(.POST, "/api/v1/codes", json: ["name": "张三", "resident_id": "130102199001011234", "mobile": "13800000000"])
            #expect(bad.status == 400 && bad.code?.hasPrefix("resident_id") == true)
            #expect((bad.json?["message_zh"] as? String)?.isEmpty == false && (bad.json?["message_en"] as? String)?.isEmpty == false)
            let notJSON = try await neike.send(.POST, "/api/v1/sessions", json: ["resident_id": "x"])
            #expect(notJSON.status == 400 && notJSON.code == "request.invalid")
            #expect(try await neike.send(.GET, "/api/v1/appointments").status == 401)

            let p = PatientCluster.person(1)
            let token = try await c.signIn(p, via: "neike", client: neike)
            // Search with every filter; the demo's resident physician works every half-day.
            let date = c.day(3).description
            let found = try await neike.send(.GET, "/api/v1/slots?department=neike&date=\(date)&half_day=morning&title=residentPhysician")
            let slots = try #require(found.json?["slots"] as? [[String: Any]])
            #expect(slots.count == 24 && slots.allSatisfy { $0["status"] as? String == "free" && $0["date"] as? String == date })
            let slotID = try #require(slots.first?["id"] as? String)

            let held = try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "r1", "slot_id": slotID], token: token)
            #expect(held.status == 201 && held.status_ == "pending" && held.json?["hold_until_ms"] != nil)
            let id = try #require(held.id)
            // The same request again (any node) is the same appointment, never a second one.
            let again = try await waike.call(.POST, "/api/v1/appointments", json: ["request_id": "r1", "slot_id": slotID], token: token)
            #expect(again.status == 201 && again.id == id)
            // Also through the node that sees the slot held (by this very hold): not refused as taken.
            let againHere = try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "r1", "slot_id": slotID], token: token)
            #expect(againHere.status == 201 && againHere.id == id)
            // Every node shows it held (busy-tentative) once the record reaches it.
            #expect(await eventually {
                let v = try await waike.send(.GET, "/api/v1/slots?department=neike&date=\(date)&half_day=morning&title=residentPhysician&all=1")
                return (v.json?["slots"] as? [[String: Any]])?.first { $0["id"] as? String == slotID }?["status"] as? String == "busy-tentative"
            })

            // Another patient cannot see or touch it.
            let other = try await c.signIn(PatientCluster.person(2), via: "waike", client: waike)
            #expect(try await waike.call(.POST, "/api/v1/appointments/\(id)/cancel", token: other).status == 404)

            let confirmed = try await waike.call(.POST, "/api/v1/appointments/\(id)/confirm", json: ["payment": "insurance"], token: token)
            #expect(confirmed.status == 200 && confirmed.status_ == "booked" && confirmed.json?["payment"] as? String == "insurance")
            #expect(try await waike.call(.POST, "/api/v1/appointments/\(id)/confirm", json: ["payment": "insurance"], token: token).status_ == "booked")
            #expect(try await neike.call(.POST, "/api/v1/appointments/\(id)/confirm", json: ["payment": "cash"], token: token).code == "payment.method")
            #expect(await eventually { c.sms("neike").contains { $0.id.hasPrefix("confirm:") && $0.mobile == p.mobile } }, "the holder (neike) sends the confirmation")
            #expect(!c.sms("waike").contains { $0.id.hasPrefix("confirm:") }, "only the holder sends")

            let erke = try await c.client("erke")
            #expect(await eventually {
                let l = try await erke.send(.GET, "/api/v1/appointments", token: token)
                return (l.json?["appointments"] as? [[String: Any]])?.first?["status"] as? String == "booked"
            })

            // Staff: arrived, then fulfilled; a no-show after arrival is not in the table.
            let arrived = try await c.node("neike").booking.stepAppointment(AppointmentStepCommand(id: id, status: "arrived"))
            #expect(arrived.from == "booked" && arrived.to == "arrived")
            await #expect(throws: (any Error).self) { try await c.node("neike").booking.stepAppointment(AppointmentStepCommand(id: id, status: "noshow")) }
            #expect(try await neike.send(.GET, "/api/v1/appointments/\(id)", token: token).status_ == "arrived")
            _ = try await c.node("neike").booking.stepAppointment(AppointmentStepCommand(id: id, status: "fulfilled"))

            // A second booking, cancelled: the cancellation SMS comes from the holder too.
            let h2 = try await neike.hold(try c.schedule("waike", day: 4), request: "r2", token: token)
            let id2 = try #require(h2.id)
            // Neike is outside the first quorum of waike's blocks (waike, erke) and may not have the
            // confirmation yet when its answer comes: the answer still says booked.
            let confirmed2 = try await neike.call(.POST, "/api/v1/appointments/\(id2)/confirm", json: ["payment": "card"], token: token)
            #expect(confirmed2.status_ == "booked", "\(confirmed2.status) \(confirmed2.text)")
            let cancelled = try await erkeCancel(c, id2, token)
            #expect(cancelled.status == 200 && cancelled.status_ == "cancelled")
            #expect(await eventually { c.sms("waike").contains { $0.id == "cancel:" + String(id2.prefix(25)) } })
            // Cancelling again is a retry of the same cancellation: the same answer, nothing more.
            #expect(try await neike.call(.POST, "/api/v1/appointments/\(id2)/cancel", token: token).status_ == "cancelled")

            // Every node's read model says what the records say, once they reach it.
            let block1 = String(slotID[..<slotID.lastIndex(of: "/")!]), block2 = try c.schedule("waike", day: 4)
            for node in ["neike", "waike", "erke"] {
                #expect(await eventually {
                    let rows = try c.node(node).readModel.appointments(block: block1), slots = try c.node(node).readModel.slots(block: block1)
                    return rows.count == 1 && rows[0].holdID == String(id.prefix(25)) && rows[0].status == "booked" && rows[0].payment == "insurance"
                        && rows[0].department == "neike" && rows[0].date == date && rows[0].start != nil
                        // One row, for the slot records touched: the other 23 are free without a row.
                        && slots.count == 1 && slots[0].slot == 0 && slots[0].status == "busy" && slots[0].holdID == rows[0].holdID
                }, "read model of \(node), first appointment")
                #expect(await eventually {
                    let row = try c.node(node).readModel.appointments(block: block2).first { $0.holdID == String(id2.prefix(25)) }
                    let patientRows = try c.node(node).readModel.appointments(patient: row?.patient ?? "")
                    return row?.status == "cancelled" && row?.reofferAtMs != nil && row?.payment == "card" && patientRows.count == 2
                }, "read model of \(node), cancelled appointment")
            }
        }
    }

    private func erkeCancel(_ c: PatientCluster, _ id: String, _ token: String) async throws -> PatientClient.Answer {
        try await c.client("erke").call(.POST, "/api/v1/appointments/\(id)/cancel", token: token)
    }

    @Test("an unpaid hold is released by its holder on time; a late confirmation is refused")
    func holdExpires() async throws {
        try await PatientCluster.start(now: Self.afterRelease, configure: { $0.holdMinutes = 1 }).run { c in
            let neike = try await c.client("neike")
            let token = try await c.signIn(PatientCluster.person(3), via: "neike", client: neike)
            let held = try await neike.hold(try c.schedule("neike", day: 5), request: "h", token: token)
            let id = try #require(held.id)
            let until = try #require(held.json?["hold_until_ms"] as? Int64)
            c.setClock(ms: until + 1_000)
            #expect(await eventually { try await neike.send(.GET, "/api/v1/appointments/\(id)", token: token).status_ == "cancelled" })
            let late = try await neike.call(.POST, "/api/v1/appointments/\(id)/confirm", token: token)
            #expect(late.status == 410 && late.code == "booking.hold_expired")
        }
    }

    @Test("sessions open at 15:00:00 seven days ahead by the holder's clock: refused at 14:59:59, booked at 15:00:00")
    func releaseWindow() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike")
            // Day 10 opens on day 3 at 15:00.
            _ = try DemoData.seed(c.node("neike"), DemoSeedRequest(startDate: c.day(10).description, days: 1))
            let schedule = try c.schedule("neike", day: 10)
            #expect(await eventually { c.node("neike").bookingsView().blocks.contains { $0.block == schedule && $0.valid } })
            try c.setClock(c.day(3), 14, 59, 30)
            let token = try await c.signIn(PatientCluster.person(4), via: "neike", client: neike)
            // Frozen at each edge: the holder judges the request there, however long it takes.
            c.freezeClock(c.day(3), 14, 59, 59)
            let early = try await neike.hold(schedule, request: "w1", token: token)
            #expect(early.status == 403 && early.code == "booking.not_open", "\(early.status) \(early.text)")
            c.freezeClock(c.day(3), 15, 0, 0)
            let onTime = try await neike.hold(schedule, request: "w2", token: token)
            #expect(onTime.status == 201 && onTime.status_ == "pending", "\(onTime.status) \(onTime.text)")
        }
    }

    @Test("a cancelled slot goes back on offer only after a random 5 to 30 minutes")
    func reReleaseDelay() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike")
            let a = try await c.signIn(PatientCluster.person(5), via: "neike", client: neike)
            let b = try await c.signIn(PatientCluster.person(6), via: "neike", client: neike)
            let slot = "\(try c.schedule("neike", day: 6))/1"
            let held = try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "a1", "slot_id": slot], token: a)
            #expect(try await neike.call(.POST, "/api/v1/appointments/\(held.id!)/cancel", token: a).status_ == "cancelled")
            // The hand-off: right after the cancellation the slot is not free for anyone.
            let grab = try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "b1", "slot_id": slot], token: b)
            #expect(grab.status == 409 && grab.code == "lease.slot_taken")
            try c.setClock(c.day(2), 15, 4, 50)
            #expect(try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "b2", "slot_id": slot], token: b).code == "lease.slot_taken",
                    "still off offer before 5 minutes")
            try c.setClock(c.day(2), 15, 31, 2)
            let later = try await neike.call(.POST, "/api/v1/appointments", json: ["request_id": "b3", "slot_id": slot], token: b)
            #expect(later.status == 201)
        }
    }

    @Test("quotas at their edges: 1 per department per date, 2 per date, 3 in any 7 dates, 5 in any 90; cancelled ones do not count")
    func quotaEdges() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike"), erke = try await c.client("erke")
            let p = try await c.signIn(PatientCluster.person(7), via: "neike", client: neike)
            #expect(try await neike.hold(try c.schedule("neike", day: 0), request: "d1", token: p).status == 201)
            let sameDept = try await erke.hold(try c.schedule("neike", day: 0, "afternoon"), request: "d2", token: p)
            #expect(sameDept.status == 409 && sameDept.code == "quota.exceeded")
            #expect(try await erke.hold(try c.schedule("waike", day: 0), request: "d3", token: p).status == 201)
            #expect(try await erke.hold(try c.schedule("erke", day: 0), request: "d4", token: p).code == "quota.exceeded", "a third on one date")

            let q = try await c.signIn(PatientCluster.person(8), via: "erke", client: erke)
            for (n, day) in [0, 1, 2].enumerated() {
                #expect(try await erke.hold(try c.schedule("neike", day: day), request: "s\(n)", token: q).status == 201)
            }
            #expect(try await neike.hold(try c.schedule("neike", day: 3), request: "s3", token: q).code == "quota.exceeded", "a fourth in 7 dates")
            #expect(try await neike.hold(try c.schedule("neike", day: 7), request: "s4", token: q).status == 201)
            let fifth = try await neike.hold(try c.schedule("neike", day: 8), request: "s5", token: q)
            #expect(fifth.status == 201)
            #expect(try await neike.hold(try c.schedule("neike", day: 9), request: "s6", token: q).code == "quota.exceeded", "a sixth in 90 dates")
            // Cancelling one gives its place back (once the cancellation is acknowledged).
            #expect(try await neike.call(.POST, "/api/v1/appointments/\(fifth.id!)/cancel", token: q).status_ == "cancelled")
            #expect(await eventually { try await neike.hold(try c.schedule("neike", day: 9), request: "s7", token: q).status == 201 })
        }
    }

    @Test("one patient booking through every node at once never exceeds a quota")
    func concurrentThroughTwoNodes() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            for n in 0..<4 {
                let person = PatientCluster.person(20 + n)
                let token = try await c.signIn(person, via: c.ids[n % 3], client: try await c.client(c.ids[n % 3]))
                let day = 1 + n
                let targets = [("neike", "morning"), ("neike", "afternoon"), ("waike", "morning"), ("erke", "morning"), ("erke", "afternoon")]
                let answers = try await withThrowingTaskGroup(of: (String, PatientClient.Answer).self) { group in
                    for (i, t) in targets.enumerated() {
                        let schedule = try c.schedule(t.0, day: day, t.1)
                        let via = c.ids[i % 3]
                        group.addTask { (t.0, try await c.client(via).hold(schedule, request: "c\(i)", token: token)) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let booked = answers.filter { $0.1.status == 201 }
                #expect(booked.count == 2, "two per date: \(answers.map { "\($0.0) \($0.1.status) \($0.1.code ?? "")" })")
                #expect(Set(booked.map(\.0)).count == booked.count, "one per department")
                #expect(answers.filter { $0.1.status != 201 }.allSatisfy { $0.1.code == "quota.exceeded" },
                        "the others are refused over the quota: \(answers.map { "\($0.0) \($0.1.status) \($0.1.code ?? "") \($0.1.text)" })")
            }
        }
    }

    @Test("a retry of a hold refused over its quota is refused so again through every node, even once its slot is taken")
    func aQuotaRefusalIsTheRetrysAnswer() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike"), waike = try await c.client("waike")
            let p = try await c.signIn(PatientCluster.person(9), via: "neike", client: neike)
            let other = try await c.signIn(PatientCluster.person(10), via: "waike", client: waike)
            #expect(try await neike.hold(try c.schedule("neike", day: 0), request: "first", token: p).status == 201)
            let afternoon = try c.schedule("neike", day: 0, "afternoon")
            let body = ["request_id": "over", "slot_id": afternoon + "/1"]
            let refused = try await neike.call(.POST, "/api/v1/appointments", json: body, token: p)
            #expect(refused.status == 409 && refused.code == "quota.exceeded", "one per department per date")
            // The slot goes to someone else, and every node has seen both that and the refusal:
            // each would now refuse a new request for the slot before asking anyone.
            let theirs = try await waike.call(.POST, "/api/v1/appointments", json: ["request_id": "theirs", "slot_id": afternoon + "/1"], token: other)
            #expect(theirs.status == 201)
            let seen = await eventually {
                c.ids.allSatisfy { id in
                    let records = c.node(id).consensus.view.records
                    return records.contains { $0.refusal == RefuseReason.quotaExceeded.rawValue }
                        && records.contains { $0.block == afternoon && $0.slot == 0 && $0.refusal == nil }
                }
            }
            #expect(seen, "the refusal and the other patient's hold reached every node")
            for via in c.ids {
                let retry = try await c.client(via).call(.POST, "/api/v1/appointments", json: body, token: p)
                #expect(retry.status == 409 && retry.code == "quota.exceeded", "the first outcome again through \(via): \(retry.status) \(retry.code ?? "")")
            }
        }
    }

    @Test("three no-shows within 12 months ban booking; so do three cancellations within 24 hours of the visit")
    func banLadder() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let waike = try await c.client("waike")
            let p = try await c.signIn(PatientCluster.person(30), via: "waike", client: waike)
            for day in [0, 1, 2] {
                let h = try await waike.hold(try c.schedule("waike", day: day), request: "n\(day)", token: p)
                let id = try #require(h.id, "hold: \(h.status) \(h.text)")
                let confirmed = try await waike.call(.POST, "/api/v1/appointments/\(id)/confirm", token: p)
                #expect(confirmed.status_ == "booked", "confirm: \(confirmed.status) \(confirmed.text)")
                // The command is idempotent: staff repeat it until the strike is recorded.
                #expect(await eventually {
                    try await c.node("erke").booking.stepAppointment(AppointmentStepCommand(id: id, status: "noshow", staff: "前台")).strikeRecorded == true
                })
            }
            let banned = try await waike.hold(try c.schedule("erke", day: 8), request: "n9", token: p)
            #expect(banned.status == 403 && banned.code == "booking.banned")
            // The ban holds on every node.
            #expect(try await c.client("neike").hold(try c.schedule("neike", day: 9), request: "n10", token: p).code == "booking.banned")

            // Late cancellations: visits on day 3, cancelled on day 2 after 15:00 (within 24 hours).
            let q = try await c.signIn(PatientCluster.person(31), via: "waike", client: waike)
            for round in 0..<3 {
                var held: PatientClient.Answer?
                #expect(await eventually {
                    held = try await waike.hold(try c.schedule("neike", day: 3), request: "l\(round)", token: q)
                    return held?.status == 201
                })
                let cancelled = try await waike.call(.POST, "/api/v1/appointments/\(try #require(held?.id))/cancel", token: q)
                #expect(cancelled.status_ == "cancelled", "cancel: \(cancelled.status) \(cancelled.text)")
            }
            var last: PatientClient.Answer?
            #expect(await eventually {
                last = try await waike.hold(try c.schedule("erke", day: 7), request: "l9", token: q)
                return last?.code == "booking.banned"
            }, "\(last?.text ?? "")")
            // A cancellation days ahead is no strike: another patient cancels three times and may book.
            let r = try await c.signIn(PatientCluster.person(32), via: "waike", client: waike)
            for round in 0..<3 {
                var held: PatientClient.Answer?
                #expect(await eventually {
                    held = try await waike.hold(try c.schedule("waike", day: 9), request: "e\(round)", token: r)
                    return held?.status == 201
                })
                _ = try await waike.call(.POST, "/api/v1/appointments/\(held!.id!)/cancel", token: r)
            }
            #expect(await eventually { try await waike.hold(try c.schedule("erke", day: 8), request: "e9", token: r).status == 201 })
        }
    }

    @Test("codes: 6 digits, 5 tries, 5 minutes; rate limits per mobile and per client address")
    func codesAndRateLimits() async throws {
        try await PatientCluster.start(now: Self.afterRelease).run { c in
            let neike = try await c.client("neike", from: "127.0.0.2")
            let p = PatientCluster.person(40)
            let body = ["name": p.name, "resident_id": p.residentID, "mobile": p.mobile]
            #expect(try await neike.send(.POST, "/api/v1/codes", json: body).status == 201)
            let signIn = ["resident_id": p.residentID, "mobile": p.mobile, "code": "000000"]
            var codes: [String] = []
            for _ in 0..<5 { codes.append(try await neike.send(.POST, "/api/v1/sessions", json: signIn).code ?? "") }
            #expect(codes.last == "otp.exhausted" && codes.dropLast().allSatisfy { $0 == "otp.wrong" }, "\(codes)")
            // Expiry: a fresh code, five minutes later.
            #expect(try await neike.send(.POST, "/api/v1/codes", json: body).status == 201)
            #expect(await eventually { c.sms("neike").filter { $0.mobile == p.mobile }.count >= 2 })
            let code = PatientCluster.code(in: c.sms("neike").last { $0.mobile == p.mobile }!.text)!
            c.setClock(ms: c.node("neike").clock.wallMillis() + 301_000)
            let expired = try await neike.send(.POST, "/api/v1/sessions", json: ["resident_id": p.residentID, "mobile": p.mobile, "code": String(code)])
            #expect(expired.code == "otp.expired")
            // Per mobile: a burst of 3, then one a minute (two are used above).
            #expect(try await neike.send(.POST, "/api/v1/codes", json: body).status == 201)
            let limited = try await neike.send(.POST, "/api/v1/codes", json: body)
            #expect(limited.status == 429 && limited.code == "otp.rate_limited")
            // Per client address: a burst of 40, then 20 a second; another address is not affected.
            let flood = try await c.client("waike", from: "127.0.0.3")
            var statuses: [Int] = []
            for _ in 0..<60 { statuses.append(try await flood.send(.GET, "/api/v1/slots?department=erke&date=\(c.day(4))").status) }
            #expect(statuses.contains(429) && statuses.prefix(40).allSatisfy { $0 == 200 })
            #expect(try await c.client("waike", from: "127.0.0.4").send(.GET, "/api/v1/slots?department=erke").status == 200)
        }
    }

    @Test("reminders the day before from the holder; a webhook gateway gets each message at least once, with its id")
    func remindersAndWebhook() async throws {
        let gateway = try await TestGateway.start()
        defer { gateway.stop() }
        try await PatientCluster.start(now: Self.afterRelease, configure: {
            $0.smsSender = "webhook"
            $0.smsWebhookURL = "http://127.0.0.1:\(gateway.port)/sms"
        }).run { c in
            let erke = try await c.client("erke")
            let p = PatientCluster.person(50)
            let sent = try await erke.send(.POST, "/api/v1/codes", json: ["name": p.name, "resident_id": p.residentID, "mobile": p.mobile])
            #expect(sent.status == 201)
            // The gateway refuses the first delivery; the retry carries the same id.
            #expect(await eventually { gateway.received.withLock { $0.count >= 2 } })
            let first = gateway.received.withLock { $0 }
            #expect(first[0].key == first[1].key && first[0].key.hasPrefix("code:"))
            let code = PatientCluster.code(in: first[1].message.text)!
            let session = try await erke.send(.POST, "/api/v1/sessions", json: ["resident_id": p.residentID, "mobile": p.mobile, "code": String(code)])
            let token = try #require(session.json?["token"] as? String)
            let h = try await erke.hold(try c.schedule("erke", day: 4), request: "m1", token: token)
            _ = try await erke.call(.POST, "/api/v1/appointments/\(h.id!)/confirm", token: token)
            #expect(await eventually { gateway.received.withLock { $0.contains { $0.key.hasPrefix("confirm:") } } })
            // Day 3 at 18:00: tomorrow's visit gets its reminder.
            try c.setClock(c.day(3), 18, 0, 1)
            #expect(await eventually { gateway.received.withLock { $0.contains { $0.key.hasPrefix("remind:") && $0.message.mobile == p.mobile } } })
        }
    }
}

/// An SMS gateway on loopback: answers 500 to the first request, 200 to the rest; records all.
final class TestGateway: Sendable {
    struct Received: Sendable { var key: String; var message: SMSMessage }
    let received = Mutex<[Received]>([])
    private let boundPort = Mutex<Int?>(nil)
    private let task = Mutex<Task<Void, any Error>?>(nil)

    var port: Int { boundPort.withLock { $0 } ?? 0 }

    static func start() async throws -> TestGateway {
        let gateway = TestGateway()
        let router = Router()
        router.post("sms") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 65_536)
            let message = try JSONDecoder().decode(SMSMessage.self, from: Data(body.readableBytesView))
            let key = request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value ?? ""
            let first = gateway.received.withLock { r in
                r.append(Received(key: key, message: message))
                return r.count == 1
            }
            return Response(status: first ? .internalServerError : .ok)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in gateway.boundPort.withLock { $0 = channel.localAddress?.port } },
                              logger: quietLogger("gateway"))
        gateway.task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        guard await eventually(timeout: .seconds(30), { gateway.port != 0 }) else {
            gateway.stop()
            throw TestFailure("the test gateway did not start")
        }
        return gateway
    }

    func stop() { task.withLock { $0?.cancel() } }
}
