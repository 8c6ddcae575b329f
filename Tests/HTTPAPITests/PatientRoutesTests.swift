import Consensus
import Crypto
import Domain
import Foundation
@testable import HTTPAPI
import Hummingbird
import HummingbirdTesting
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Synchronization
import Testing

// The patient routes through Hummingbird's router test support: no sockets, no TLS, no cluster.
// The services run for real over an in-memory record store and a consensus whose outcomes the
// test decides, because what is tested here is the HTTP layer: status codes, the bilingual JSON
// shape of every refusal, headers, and which service call a route makes.

@Suite("Patient routes (router, no sockets)")
struct PatientRoutesTests {
    @Test func unknownRoutesAndMissingTokensAreBilingualJSON() async throws {
        let api = try TestAPI()
        try await api.app.test(.router) { client in
            try await client.execute(uri: "/api/v1/nothing-here", method: .get) { r in
                #expect(r.status == .notFound)
                let e = try refusal(r)
                #expect(e.code == "route.unknown" && !e.zh.isEmpty && !e.en.isEmpty)
            }
            try await client.execute(uri: "/api/v1/appointments", method: .get) { r in
                #expect(r.status == .unauthorized)
                try #expect(refusal(r).code == "auth.required")
            }
            try await client.execute(uri: "/api/v1/appointments", method: .get, headers: [.authorization: "Bearer forged.token"]) { r in
                #expect(r.status == .unauthorized)
            }
        }
    }

    @Test func malformedRequestsSayWhichFieldIsWrong() async throws {
        let api = try TestAPI()
        try await api.app.test(.router) { client in
            try await client.execute(uri: "/api/v1/codes", method: .post, body: ByteBuffer(string: "{not json")) { r in
                #expect(r.status == .badRequest)
                try #expect(refusal(r).code == "request.invalid")
            }
            try await client.execute(uri: "/api/v1/codes", method: .post, body: ByteBuffer(string: #"{"name":"张三","mobile":"13903111234"}"#)) { r in
                let e = try refusal(r)
                #expect(r.status == .badRequest && e.code == "request.invalid" && e.en.contains("resident_id"))
            }
            try await client.execute(uri: "/api/v1/slots?half_day=night", method: .get) { r in
                #expect(r.status == .badRequest)
                try #expect(refusal(r).code == "search.half_day")
            }
            try await client.execute(uri: "/api/v1/slots?date=tomorrow", method: .get) { r in
                try #expect(refusal(r).code == "search.date")
            }
        }
    }

    @Test func aHoldIsAnsweredWithTheConsensusOutcome() async throws {
        let api = try TestAPI()
        // A day, not a minute: on a loaded 2-core runner the simulation suites can hold the
        // cooperative pool long enough for a short token to expire before the first request.
        let token = api.patients.tokens.issue(patient: String(repeating: "a1", count: 32), expiresAtMs: api.clock.wallMillis() + 86_400_000)
        let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
        try await api.app.test(.router) { client in
            api.consensus.next(.refused(requestID: "", reason: .slotTaken))
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"r1","slot_id":"sch1/2"}"#)) { r in
                #expect(r.status == .conflict)
                try #expect(refusal(r).code == "lease.slot_taken")
            }
            #expect(api.consensus.requests.last?.slot == 1)
            api.consensus.next(nil)
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"r2","schedule_id":"sch1"}"#)) { r in
                #expect(r.status == .serviceUnavailable)
                try #expect(refusal(r).code == "lease.timeout")
            }
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"r3","slot_id":"nowhere/1"}"#)) { r in
                #expect(r.status == .notFound)
                try #expect(refusal(r).code == "slot.unknown")
            }
        }
    }

    @Test func walkInSlotsAreNeverBookedOnline() async throws {
        let api = try TestAPI()
        let token = api.patients.tokens.issue(patient: String(repeating: "b2", count: 32), expiresAtMs: api.clock.wallMillis() + 86_400_000)
        let auth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
        try await api.app.test(.router) { client in
            // sch2: four slots, the last two kept for the registration desk.
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"w1","slot_id":"sch2/3"}"#)) { r in
                #expect(r.status == .conflict)
                try #expect(refusal(r).code == "slot.walk_in")
            }
            #expect(api.consensus.requests.isEmpty, "a walk-in slot is refused before any booking round")
            api.consensus.next(.refused(requestID: "", reason: .slotTaken))
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"w2","schedule_id":"sch2"}"#)) { _ in }
            let asked = try #require(api.consensus.requests.last)
            #expect(([asked.slot] + asked.alternatives).sorted() == [0, 1], "any free slot of the session means any online one")
            // A session whose every slot is kept for walk-ins has none to offer online.
            try await client.execute(uri: "/api/v1/appointments", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"request_id":"w3","schedule_id":"sch3"}"#)) { r in
                #expect(r.status == .conflict)
                try #expect(refusal(r).code == "slot.walk_in")
            }
        }
    }

    @Test func slotTimesFollowTheSessionsOwnHours() throws {
        let info = SessionInfo(schedule: "s", department: "d", departmentName: "d", practitioner: "p", practitionerName: "p", title: nil,
                               date: try CivilDate(parsing: "2026-12-10"), halfDay: .afternoon, capacity: 4,
                               start: try LocalTime(parsing: "14:00"), end: try LocalTime(parsing: "15:00"), walkInReserve: 2)
        #expect(info.times(of: 1).start.description == "14:15" && info.times(of: 3).end.description == "15:00")
        #expect(info.onlineSlots == 2)
    }

    @Test func theInFlightLimitRefusesAtOnceWithRetryAfter() async throws {
        let api = try TestAPI(maxInFlight: 1)
        #expect(api.patients.inFlight.enter())
        defer { api.patients.inFlight.leave() }
        try await api.app.test(.router) { client in
            try await client.execute(uri: "/api/v1/slots", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] == "1")
                try #expect(refusal(r).code == "server.busy")
            }
        }
    }
}

private struct Refusal: Decodable {
    var code: String
    var zh: String
    var en: String
    enum CodingKeys: String, CodingKey { case code, zh = "message_zh", en = "message_en" }
}

private func refusal(_ r: TestResponse) throws -> Refusal {
    #expect(r.headers[.contentType]?.hasPrefix("application/json") == true)
    return try JSONDecoder().decode(Refusal.self, from: Data(r.body.readableBytesView))
}

/// The patient API over one session ("sch1": department d1, doctor pr1, 4 slots tomorrow).
private struct TestAPI {
    let clock = NodeClock()
    let store = MemoryStore()
    let consensus = ScriptedConsensus()
    let patients: PatientDesk
    let app: Application<RouterResponder<PatientRequestContext>>

    init(maxInFlight: Int = 64) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var config = PatientConfig()
        config.maxInFlight = maxInFlight
        patients = try PatientDesk(config: config, dataDir: dir, smsFile: dir + "/sms.jsonl", dataKey: SymmetricKey(size: .bits256),
                                   store: store, clock: clock)
        let booking = BookingDesk(consensus: consensus, store: store, clock: clock, nodeID: "n1", config: config)
        let tomorrow = try ShanghaiTime.civil(of: Date()).date.adding(days: 1)
        store.rows["department"] = ["d1": ["name": .text("内科")]]
        store.rows["practitioner"] = ["pr1": ["name": .text("李医生"), "title": .text("attendingPhysician")]]
        store.rows["schedule"] = ["sch1": ["practitioner": .text("pr1"), "department": .text("d1"), "date": .text(tomorrow.description),
                                           "half_day": .text("morning"), "capacity": .integer(4)],
                                  "sch2": ["practitioner": .text("pr1"), "department": .text("d1"), "date": .text(tomorrow.description),
                                           "half_day": .text("afternoon"), "capacity": .integer(4), "start": .text("14:00"), "end": .text("15:00"),
                                           "walk_in_reserve": .integer(2)],
                                  "sch3": ["practitioner": .text("pr1"), "department": .text("d1"), "date": .text(tomorrow.description),
                                           "half_day": .text("evening"), "capacity": .integer(2), "walk_in_reserve": .integer(2)]]
        app = Application(router: PatientAPI(patients: patients, booking: booking, logger: .init(label: "test")).router())
    }
}

/// Rows in memory; every read sees the latest, and nothing is written (no route here registers).
private final class MemoryStore: RecordStore, @unchecked Sendable {
    var rows: [String: [String: [String: ColumnValue]]] = [:]

    func liveRow(_ table: String, key: String) throws -> [String: ColumnValue]? { rows[table]?[key] }
    func liveRows(_ table: String) throws -> [String: [String: ColumnValue]] { rows[table] ?? [:] }
    func liveRows(_ table: String, keys: Set<String>) throws -> [String: [String: ColumnValue]] { (rows[table] ?? [:]).filter { keys.contains($0.key) } }
    func liveRows(_ table: String, equal: [String: ColumnValue], range: (column: String, from: ColumnValue?, to: ColumnValue?)?,
                  newestBy: String?, limit: Int) throws -> [(key: String, row: [String: ColumnValue])] {
        (rows[table] ?? [:]).filter { r in equal.allSatisfy { r.value[$0.key] == $0.value } }.sorted { $0.key > $1.key }.prefix(limit).map { ($0.key, $0.value) }
    }
    func changeStamp(table: String) -> UInt64 { 1 }
    func changeStamp(table: String, key: String) -> UInt64 { 1 }
    func write<T>(_ body: (LocalWriter) throws -> T) throws -> T { throw CocoaError(.featureUnsupported) }
}

/// Answers each booking with the outcome the test set last; reads see a node that knows no blocks.
private final class ScriptedConsensus: BookingConsensus {
    private let state = Mutex<(outcome: BookingOutcome?, requests: [BookingRequest])>((nil, []))
    private let empty = ConsensusCore(id: "n1", incarnation: 1, bootstrap: ClusterConfig(voters: ["n1"]))

    func next(_ outcome: BookingOutcome?) { state.withLock { $0.outcome = outcome } }
    var requests: [BookingRequest] { state.withLock { $0.requests } }

    func book(_ q: BookingRequest, quota: QuotaTag?, timeout: Duration) async -> BookingOutcome? {
        state.withLock { s in
            s.requests.append(q)
            return s.outcome
        }
    }

    func strike(_ strike: Strike, patient: String, id: String, timeout: Duration) async -> BookingOutcome? { nil }
    func lookup<T>(_ body: (BookingLookup) -> T) -> T { body(BookingLookup(empty.view)) }
    func takeChangedBlocks() -> ChangedBlocks.Taken { .some([]) }
}
