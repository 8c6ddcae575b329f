@testable import ClinicNode
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReplicatedCore
@testable import Services
import Testing

/// The rota page through the router (no sockets): a department head edits the weekly template,
/// sees the weeks it makes and their conflicts, and publishes; others are kept out.
@Suite("Rota page")
struct RotaPageTests {
    static func form(_ fields: [(String, String)]) -> ByteBuffer {
        ByteBuffer(string: fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&"))
    }

    static func count(_ needle: String, in html: String) -> Int { html.components(separatedBy: needle).count - 1 }

    @Test func aDepartmentHeadPlansChecksAndPublishesTheRota() async throws {
        let f = try StaffFixture()
        try f.replica.write { w in
            _ = try w.insert("department", key: "waike", values: ["name": .text("外科"), "code": .text("Surgery")])
            _ = try w.insert("practitioner", key: "neike-wang", values: ["name": .text("王建国"), "department": .text("neike"), "title": .text("chiefPhysician")])
            _ = try w.insert("practitioner", key: "neike-li", values: ["name": .text("李娜"), "department": .text("neike"), "title": .text("residentPhysician")])
            _ = try w.insert("practitioner", key: "waike-zhao", values: ["name": .text("赵强"), "department": .text("waike"), "title": .text("attendingPhysician")])
        }
        try await f.add("H001", roles: ["department_head"], departments: ["neike"])
        try await f.add("H002", roles: ["department_head"], departments: ["waike"])
        try await f.add("N101", roles: ["nurse"], departments: ["neike"])
        try await f.add("A001", roles: ["hospital_admin"], departments: [])
        try await f.app.test(.router) { client in
            // A Monday at least a week ahead, so that no session of the span has begun whenever this runs.
            let today = try f.rota.today()
            let from = try today.adding(days: 7 + (8 - today.weekday.rawValue) % 7).description
            let head = try #require(try await f.signIn(client, "H001", StaffFixture.password).session)
            let csrf = f.desk.tokens.csrf(session: try f.desk.session(cookie: head).session)
            func get(_ uri: String, as cookie: String = head) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(uri: uri, method: .get, headers: [.cookie: "cm_staff=\(cookie)"]) { ($0.status, String(buffer: $0.body)) }
            }
            func post(_ uri: String, _ fields: [(String, String)]) async throws -> (HTTPResponse.Status, String, String?) {
                try await client.execute(uri: uri, method: .post, headers: [.cookie: "cm_staff=\(head)", .contentType: "application/x-www-form-urlencoded"],
                                         body: Self.form([("csrf", csrf), ("dept", "neike"), ("from", from), ("weeks", "2")] + fields)) { ($0.status, String(buffer: $0.body), $0.headers[.location]) }
            }
            func line(_ doctor: String, room: String = "内科 1 诊室", start: String = "", capacity: String = "12") -> [(String, String)] {
                [("practitioner", doctor), ("weekday", "1"), ("half_day", "morning"), ("room", room), ("start", start),
                 ("capacity", capacity), ("minutes_per_slot", "20"), ("walk_in_reserve", "2")]
            }

            // The home page links the rota; two weeks, nothing yet.
            #expect(try await get("/staff/").1.contains("data-action=\"rota.manage\""))
            let (status, empty) = try await get("/staff/rota?from=\(from)")
            #expect(status == .ok && Self.count("<tr data-date=", in: empty) == 14 && empty.contains("id=\"nothing-to-publish\""))

            // A template line: Dr Wang on Monday mornings.
            let saved = try await post("/staff/rota/templates", line("neike-wang"))
            #expect(saved.0 == .seeOther && saved.2 == "/staff/rota?dept=neike&from=\(from)&weeks=2", "\(saved.0) \(saved.1.prefix(300))")
            let planned = try await get("/staff/rota?from=\(from)")
            #expect(planned.1.contains("data-line=\"neike-wang/1/morning\"") && Self.count("data-state=\"new\"", in: planned.1) == 2)
            #expect(planned.1.contains("id=\"publish-submit\""))

            // Bad lines change nothing and say what was wrong.
            let zero = try await post("/staff/rota/templates", line("neike-li", capacity: "0"))
            #expect(zero.0 == .badRequest && zero.1.contains("data-code=\"schedule.capacity\""))
            let words = try await post("/staff/rota/templates", line("neike-li", capacity: "twelve"))
            #expect(words.0 == .badRequest && words.1.contains("data-code=\"rota.form.capacity\""))
            let other = try await post("/staff/rota/templates", line("waike-zhao"))
            #expect(other.0 == .badRequest && other.1.contains("data-code=\"rota.other_department\""))
            #expect(try f.rota.templates(department: "neike").count == 1 && f.rota.templates(department: "waike").isEmpty)

            // Dr Li in the same room from 11:00: the grid shows the conflict and publishing is refused.
            _ = try await post("/staff/rota/templates", line("neike-li", start: "11:00", capacity: "3"))
            let clash = try await get("/staff/rota?from=\(from)")
            #expect(clash.1.contains("id=\"conflicts\"") && clash.1.contains("data-code=\"rota.room_twice\"") && !clash.1.contains("id=\"publish-submit\""))
            let refused = try await post("/staff/rota/publish", [])
            #expect(refused.0 == .conflict && refused.1.contains("data-code=\"rota.room_twice\""))
            #expect(try f.replica.liveRows("schedule").isEmpty && f.blocks.defined.withLock { $0.isEmpty })

            // Without Dr Li's line it publishes: rows every node reads, blocks held here.
            let deleted = try await post("/staff/rota/templates/delete", [("practitioner", "neike-li"), ("weekday", "1"), ("half_day", "morning")])
            #expect(deleted.0 == .seeOther)
            let published = try await post("/staff/rota/publish", [])
            #expect(published.0 == .seeOther && published.2?.hasSuffix("&published=2") == true)
            let rows = try f.replica.liveRows("schedule")
            #expect(rows.count == 2 && rows.values.allSatisfy { $0["home"]?.textValue == "n1" && $0["room"]?.textValue == "内科 1 诊室" })
            #expect(f.blocks.defined.withLock { $0.count } == 2)
            let after = try await get(try #require(published.2))
            #expect(Self.count("data-state=\"published\"", in: after.1) == 2 && after.1.contains("id=\"published\""))
            let audited = try f.replica.liveRows("audit_event", equal: ["action": .text("rota.publish"), "staff": .text("H001")], range: nil, newestBy: nil, limit: 10)
            #expect(audited.count == 1)

            // An approved stop leaves the session on the grid as stopped; a substitute is named with the doctor it stands in for.
            let wang = try #require(rows.keys.sorted().first { $0.hasPrefix("neike-wang/") })
            let stopped = try #require(rows.keys.first { $0 != wang })
            try f.replica.write { w in
                _ = try w.upsert("schedule", key: stopped, values: ["status": .text("stopped")])
                _ = try w.upsert("schedule", key: wang, values: ["practitioner": .text("neike-li")])
            }
            let changed = try await get(try #require(published.2))
            #expect(Self.count("data-state=\"stopped\"", in: changed.1) == 1 && Self.count("data-state=\"published\"", in: changed.1) == 1)
            #expect(changed.1.contains("李娜（替诊，原医生 王建国）"))

            // An extra session on the span's Saturday evening, published at once; the same again is refused.
            let saturday = try CivilDate(parsing: from).adding(days: 5).description
            let extra = [("practitioner", "neike-li"), ("date", saturday), ("half_day", "evening"), ("room", "内科 2 诊室"), ("start", ""),
                         ("capacity", "6"), ("minutes_per_slot", "20"), ("walk_in_reserve", "0")]
            let added = try await post("/staff/rota/sessions", extra)
            #expect(added.0 == .seeOther && added.2?.contains("&added=neike-li") == true, "\(added.0) \(added.1.prefix(300))")
            #expect(try f.replica.liveRow("schedule", key: "neike-li/\(saturday)/evening") != nil && f.blocks.defined.withLock { $0.count } == 3)
            let again = try await post("/staff/rota/sessions", extra)
            #expect(again.0 == .conflict && again.1.contains("data-code=\"rota.exists\""))

            // Another department's head, a nurse: refused. The hospital administrator: every department.
            let waikeHead = try #require(try await f.signIn(client, "H002", StaffFixture.password).session)
            #expect(try await get("/staff/rota?dept=neike", as: waikeHead).0 == .forbidden)
            #expect(try await get("/staff/rota", as: waikeHead).0 == .ok)
            let nurse = try #require(try await f.signIn(client, "N101", StaffFixture.password).session)
            #expect(try await get("/staff/rota", as: nurse).0 == .forbidden)
            let admin = try #require(try await f.signIn(client, "A001", StaffFixture.password).session)
            #expect(try await get("/staff/rota?dept=neike", as: admin).0 == .ok)
            let firstDepartment = try await get("/staff/rota", as: admin)
            #expect(firstDepartment.0 == .ok && firstDepartment.1.contains("(neike)"), "an administrator without departments starts at the first")
            #expect(try await get("/staff/rota?dept=neike&weeks=27", as: admin).1.contains("data-code=\"rota.weeks\""))
        }
    }
}
