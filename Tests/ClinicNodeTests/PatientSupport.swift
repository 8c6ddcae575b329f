@testable import ClinicNode
@testable import DemoAndBench
@testable import AdminAPI
@testable import Services
import Consensus
import Domain
import Drills
import Foundation
import NIOHTTP1
import TestSupport
import Testing

/// Three department nodes in this process with the patient API on, the demo's doctors and
/// sessions from `firstVisit` on, and one shared wall clock the test moves (the nodes agree on it,
/// so the clock guard stays quiet; leases run on the monotonic clock and do not notice).
struct PatientCluster {
    let files: TestClusterFiles
    let nodes: [String: RunningNode]
    let clock: NodeClock
    let firstVisit: CivilDate
    static let ids = ["erke", "neike", "waike"]

    /// Starts the nodes with `now` as their wall clock and seeds `days` days of sessions; returns
    /// once every block and quota bucket is leased to its home node (the tests name the holder
    /// that sends an SMS, and a lease still moving home would only add 503s to retry).
    static func start(firstVisit: String = "2027-03-01", days: Int = 10, now: (CivilDate) throws -> Date,
                      configure: (inout PatientConfig) -> Void = { _ in }) async throws -> PatientCluster {
        var files = try TestClusterFiles(ids: ids)
        for id in ids {
            var p = PatientConfig()
            p.port = 0
            configure(&p)
            files.configs[id]!.patients = p
        }
        let first = try CivilDate(parsing: firstVisit)
        let clock = NodeClock()
        clock.offsetMillis = Int64((try now(first).timeIntervalSince1970 - Date().timeIntervalSince1970) * 1000)
        let nodes = try await startCluster(files, clocks: Dictionary(uniqueKeysWithValues: ids.map { ($0, clock) }))
        let cluster = PatientCluster(files: files, nodes: nodes, clock: clock, firstVisit: first)
        var sessions = 0
        for id in ids { sessions += try DemoData.seed(nodes[id]!.node, DemoSeedRequest(startDate: firstVisit, days: days)).schedules }
        let expected = sessions
        let ready = await eventually {
            cluster.ids.allSatisfy { id in
                let atHome = nodes[id]!.node.bookingsView().blocks.filter { $0.valid && $0.holder == $0.home }
                // Every node has every session's row too: a hold through any node finds its session.
                return atHome.filter { !$0.block.hasPrefix("quota/") }.count == expected
                    && atHome.filter { $0.block.hasPrefix("quota/") }.count == 16
                    && (try? nodes[id]!.node.replica.liveRows("schedule").count) == expected
                    && nodes[id]!.node.patientPort != nil
            }
        }
        guard ready else {
            try? await cluster.stop()
            throw TestFailure("the cluster did not get its leases at home and its patient listeners in time")
        }
        return cluster
    }

    var ids: [String] { Self.ids }
    func node(_ id: String) -> MeshNode { nodes[id]!.node }

    func stop() async throws {
        for n in nodes.values { try? await n.stop() }
        files.remove()
    }

    /// Runs `body` and stops the cluster afterwards, whether it threw or not.
    func run(_ body: (PatientCluster) async throws -> Void) async throws {
        do { try await body(self) } catch {
            try? await stop()
            throw error
        }
        try await stop()
    }

    /// Sets the shared wall clock to `date` at `hour:minute:second` Asia/Shanghai (plus `ms`).
    func setClock(_ date: CivilDate, _ hour: Int, _ minute: Int, _ second: Int = 0, ms: Int64 = 0) throws {
        clock.frozenAtMillis = nil
        clock.offsetMillis = Self.shanghaiMs(date, hour, minute, second) + ms - Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// Stops the shared wall clock at this instant (an edge judged there, however long a request takes).
    func freezeClock(_ date: CivilDate, _ hour: Int, _ minute: Int, _ second: Int = 0) {
        clock.frozenAtMillis = Self.shanghaiMs(date, hour, minute, second)
    }

    /// Sets the shared wall clock to `ms` since 1970.
    func setClock(ms: Int64) {
        clock.frozenAtMillis = nil
        clock.offsetMillis = ms - Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    static func shanghaiMs(_ date: CivilDate, _ hour: Int, _ minute: Int, _ second: Int = 0) -> Int64 {
        let base = ShanghaiTime.instant(date: date, time: (try? LocalTime(hour: hour, minute: minute)) ?? (try! LocalTime(hour: 0, minute: 0)))
        return Int64((base.timeIntervalSince1970 * 1000).rounded()) + Int64(second) * 1000
    }

    func day(_ n: Int) -> CivilDate { (try? firstVisit.adding(days: n)) ?? firstVisit }

    func client(_ id: String, from address: String? = nil) async throws -> PatientClient {
        try await PatientClient.connect(host: "127.0.0.1", port: node(id).patientPort!, caPEM: try files.ca.certificatePEM(), localAddress: address)
    }

    /// The SMS a node's file sender wrote.
    func sms(_ id: String) -> [SMSMessage] {
        let path = files.configs[id]!.dataDir + "/sms-sent.jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(SMSMessage.self, from: Data($0.utf8)) }
    }

    /// The 6-digit code in an SMS text.
    static func code(in text: String) -> String? {
        text.split(whereSeparator: { !$0.isASCII || !$0.isNumber }).first { $0.count == 6 }.map(String.init)
    }

    /// A test patient: a valid resident ID, a mobile and a name.
    struct Person: Sendable {
        var name: String
        var residentID: String
        var mobile: String
    }

    static func person(_ n: Int) -> Person {
        let birth = (try? CivilDate(year: 1970 + n % 40, month: 1 + n % 12, day: 1 + n % 28)) ?? (try! CivilDate(year: 1980, month: 1, day: 1))
        let id = try! ResidentID.make(regionCode: "130102", birthDate: birth, sequence: 100 + n % 800)
        return Person(name: "测试" + ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛"][n % 8], residentID: id.value, mobile: "1380311" + String(format: "%04d", n))
    }

    /// Signs `person` in through node `id` with the code from that node's SMS file; the token.
    func signIn(_ person: Person, via id: String, client: PatientClient) async throws -> String {
        let before = sms(id).count
        let sent = try await client.send(.POST, "/api/v1/codes", json: ["name": person.name, "resident_id": person.residentID, "mobile": person.mobile])
        guard sent.status == 201 else { throw TestFailure("code request: \(sent.status) \(sent.text)") }
        var code: String?
        _ = await eventually(timeout: .seconds(30)) {
            code = sms(id).dropFirst(before).last { $0.mobile == person.mobile && $0.kind == "code" }.flatMap { m in
                PatientCluster.code(in: m.text)
            }
            return code != nil
        }
        guard let code else { throw TestFailure("no code reached the SMS file of \(id)") }
        let session = try await client.send(.POST, "/api/v1/sessions", json: ["resident_id": person.residentID, "mobile": person.mobile, "code": code])
        guard session.status == 201, let token = session.json?["token"] as? String else { throw TestFailure("sign-in: \(session.status) \(session.text)") }
        return token
    }

    /// The first session of department `dept` on day `n` (`half`: morning or afternoon).
    func schedule(_ dept: String, day n: Int, _ half: String = "morning", title: String = "residentPhysician") throws -> String {
        let sessions = try SessionDirectory().sessions(node(dept).booking.store)
        guard let s = sessions.values.filter({ $0.department == dept && $0.date == day(n) && $0.halfDay.rawValue == half && $0.title?.rawValue == title })
            .map(\.schedule).sorted().first else { throw TestFailure("no \(title) session of \(dept) on day \(n) \(half)") }
        return s
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension PatientClient {
    /// Holds any free slot of `schedule`; the answer. Like a real client, it retries a 503 (no
    /// outcome in time, a failover) with the same request id, which never books twice.
    func hold(_ schedule: String, request: String, token: String) async throws -> Answer {
        try await call(.POST, "/api/v1/appointments", json: ["request_id": request, "schedule_id": schedule], token: token)
    }

    /// Sends, and like a real client repeats a 503 (no outcome in time, a failover) unchanged until
    /// a definite answer comes: bookings, confirmations and cancellations are idempotent by their
    /// ids. A lease that moves on a loaded machine (a node's liveness expired) can take seconds to
    /// settle, so the deadline is a generous 60 s, and running out of it fails with the last answer.
    /// An error from `send` itself (the connection failed) is not retried.
    func call(_ method: HTTPMethod, _ path: String, json: [String: String]? = nil, token: String? = nil) async throws -> Answer {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while true {
            let answer = try await send(method, path, json: json, token: token)
            guard answer.status == 503 else { return answer }
            guard clock.now < deadline else {
                throw TestFailure("timed out after 60 s waiting for an answer other than 503 to \(method) \(path); last: \(answer.text)")
            }
            try await Task.sleep(for: .milliseconds(200))  // a client's pace, not a poll of local state
        }
    }
}

extension PatientClient.Answer {
    var code: String? { json?["code"] as? String }
    var id: String? { json?["id"] as? String }
    var status_: String? { json?["status"] as? String }
}
