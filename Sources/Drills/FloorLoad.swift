import AdminAPI
import ClinicNode
import DemoAndBench
import Domain
import Foundation
import NIOPosix
import Services
import Synchronization

/// `clinicmesh bench floor`: a rota published for many departments and doctors, then a clinic
/// morning on real node processes. Each department's node publishes its departments' rota
/// (`bench-rota`, the rota page's desk); then on today's morning sessions patients check in
/// through any node, walk-ins register at any node's desk, each doctor calls the next patient at
/// their own node (the session's holder), and every department's waiting-room display is
/// followed by server-sent events on another node than its own.
public struct FloorLoad: Sendable {
    public struct Options: Sendable {
        public var binary: String
        public var nodes = 3
        public var departments = 40
        public var doctors = 300
        public var weeks = 8
        /// Seconds of the clinic morning.
        public var seconds: Double = 60
        /// Bookings made online for each of today's morning sessions before the morning.
        public var bookingsPerSession = 4
        /// Walk-ins registered at the desk per session during the morning.
        public var walkInsPerSession = 1
        /// Mean seconds between a doctor's calls (Poisson): 30 s is a clinic 20 times faster than
        /// one where a visit takes 10 minutes.
        public var callEverySeconds: Double = 30
        public init(binary: String) { self.binary = binary }
    }

    public struct Figures: Codable, Sendable {
        public var count: Int
        public var p50Ms: Double
        public var p99Ms: Double
        public var maxMs: Double
    }

    public struct Report: Codable, Sendable {
        public var nodes: Int
        public var departments: Int
        public var doctors: Int
        public var weeks: Int
        public var sessions: Int
        public var slots: Int
        /// From the first `bench-rota` call until every node has every published session's block.
        public var publishS: Double
        /// The longest node-side time to save the templates and publish (rows written, blocks proposed).
        public var publishNodeS: Double
        public var morningSessions: Int
        public var bookings: Int
        public var seconds: Double
        public var checkIns: Figures?
        public var walkIns: Figures?
        /// A doctor's `next` at their own node (the block's holder): until the call is quorum-durable.
        public var callNext: Figures?
        /// From a call's request to the display on another node showing it (its event arriving).
        public var callToDisplay: Figures?
        /// Calls the display never showed (another call of the same doctor came before it could).
        public var callsNotDisplayed: Int
        /// Refusals and failures that are not part of the floor's normal answers, by code.
        public var unexpected: [String: Int]
    }

    let options: Options
    let say: @Sendable (String) -> Void

    public init(_ options: Options, say: @escaping @Sendable (String) -> Void) { self.options = options; self.say = say }

    final class Stats: Sendable {
        private let state = Mutex<(ms: [String: [Double]], unexpected: [String: Int], sent: [String: UInt64], shown: [String: UInt64])>(([:], [:], [:], [:]))
        func record(_ what: String, ms: Double) { state.withLock { $0.ms[what, default: []].append(ms) } }
        func unexpected(_ what: String) { state.withLock { $0.unexpected[what, default: 0] += 1 } }
        func called(_ key: String, sentNanos: UInt64) { state.withLock { $0.sent[key] = sentNanos } }
        func shown(_ key: String, atNanos: UInt64) { state.withLock { if $0.shown[key] == nil { $0.shown[key] = atNanos } } }
        func figures(_ what: String) -> Figures? { state.withLock { FloorLoad.figures($0.ms[what] ?? []) } }
        var unexpectedCounts: [String: Int] { state.withLock { $0.unexpected } }
        /// Call-to-display times, and how many calls were never shown.
        func displayTimes() -> ([Double], Int) {
            state.withLock { s in
                var times: [Double] = [], missing = 0
                for (key, sent) in s.sent {
                    if let shown = s.shown[key], shown >= sent { times.append(Double(shown - sent) / 1e6) } else { missing += 1 }
                }
                return (times, missing)
            }
        }
    }

    public static func figures(_ values: [Double]) -> Figures? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func pct(_ p: Double) -> Double { rounded(sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))], 2) }
        return Figures(count: sorted.count, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: rounded(sorted.last!, 2))
    }

    static func nanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public func run() async throws -> Report {
        let cluster = try BookingRush.makeCluster(nodes: options.nodes, binary: options.binary, folderPrefix: "clinicmesh-floor-")
        defer {
            cluster.stopAll()
            cluster.removeUnlessKept()
        }
        // Today's queues stay open all day: the bench runs on today's sessions at any hour.
        for id in cluster.ids { try cluster.changeConfig(id) { $0.floor = FloorConfig(closeAfterMinutes: 720) } }
        try cluster.startAll()
        try await cluster.waitUntilLed(seconds: 120)
        let ids = cluster.ids
        let today = try ShanghaiTime.civil(of: Date()).date

        // MARK: The rota
        let codes = (0..<options.departments).map { String(format: "bench-d%02d", $0) }
        let home = Dictionary(uniqueKeysWithValues: codes.enumerated().map { ($0.element, ids[$0.offset % ids.count]) })
        var perNode: [String: [BenchRotaRequest.Department]] = [:]
        for (i, code) in codes.enumerated() {
            let doctors = options.doctors / options.departments + (i < options.doctors % options.departments ? 1 : 0)
            perNode[home[code]!, default: []].append(.init(code: code, doctors: max(1, doctors)))
        }
        say("排班：\(options.departments) 个科室、\(options.doctors) 名医生、\(options.weeks) 周，由各科室节点发布 / the rota: \(options.departments) departments, \(options.doctors) doctors, \(options.weeks) weeks, each published by its department's node")
        for (node, departments) in perNode {
            let bytes = try await cluster.call(node, "bench-rota", BenchRotaRequest(departments: departments, weeks: options.weeks, from: today.description))
            guard String(decoding: bytes, as: UTF8.self).contains("template_lines") else {
                throw DrillError("bench-rota on \(node): \(String(decoding: bytes.prefix(500), as: UTF8.self))")
            }
        }
        try await cluster.waitUntilReplicasAgree("the templates on every replica", seconds: 300)
        let watch = Stopwatch()
        let answers = try await withThrowingTaskGroup(of: BenchRotaAnswer.self) { tasks in
            for (node, departments) in perNode {
                tasks.addTask {
                    let bytes = try await cluster.call(node, "bench-rota-publish", BenchRotaRequest(departments: departments, weeks: options.weeks, from: today.description))
                    guard let answer = try? JSONDecoder().decode(BenchRotaAnswer.self, from: Data(bytes)) else {
                        throw DrillError("bench-rota-publish on \(node): \(String(decoding: bytes.prefix(500), as: UTF8.self))")
                    }
                    return answer
                }
            }
            var out: [BenchRotaAnswer] = []
            for try await a in tasks { out.append(a) }
            return out
        }
        let sessions = answers.reduce(0) { $0 + $1.sessions }
        try await waitFor("every node to have every published block", seconds: 600) {
            for id in ids where (try await cluster.status(id).consensus?.blocks ?? 0) < sessions { return false }
            return true
        }
        let publishS = watch.seconds
        let mornings = answers.reduce(into: [String: [String]]()) { $0.merge($1.firstMornings) { a, _ in a } }
        let morningSessions = mornings.values.flatMap { $0 }.sorted()
        say("排班已发布：\(sessions) 次出诊，用时 \(rounded(publishS, 2)) 秒 / rota published: \(sessions) sessions in \(rounded(publishS, 2)) s")

        // MARK: Bookings before the morning
        say("预约：今天上午 \(morningSessions.count) 次出诊各 \(options.bookingsPerSession) 个 / bookings: \(options.bookingsPerSession) for each of today's \(morningSessions.count) morning sessions")
        let stats = Stats()
        // Every node knows today's first and last morning session (the bookings view of 24,000
        // blocks is too large to ask for); a booking that finds no holder yet is tried again.
        try await waitFor("today's morning sessions known on every node", seconds: 600) {
            for id in ids {
                for s in [morningSessions.first, morningSessions.last].compactMap({ $0 }) {
                    guard (try? JSONDecoder().decode(FloorQueueView.self, from: Data(try await cluster.call(id, "floor-queue", ["session": s])))) != nil else { return false }
                }
            }
            return true
        }
        let work = morningSessions.flatMap { s in (0..<options.bookingsPerSession).map { (s, $0) } }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for worker in 0..<24 {
                tasks.addTask {
                    try await cluster.withAdminSession(ids[worker % ids.count]) { admin in
                        for (n, (session, slot)) in work.enumerated() where n % 24 == worker {
                            let command = BookCommand(requestID: "bench-\(session)-\(slot)", block: session, slot: slot, patient: "bench-p\(n)")
                            let text = "book " + String(decoding: try JSONEncoder().encode(command), as: UTF8.self)
                            var answer = try JSONDecoder().decode(BookAnswer.self, from: Data(try await admin.request(text)))
                            for _ in 0..<60 where answer.code == "lease.no_holder" || answer.outcome == "unknown" {
                                try await Task.sleep(for: .seconds(1))
                                answer = try JSONDecoder().decode(BookAnswer.self, from: Data(try await admin.request(text)))
                            }
                            if answer.outcome != "booked" { stats.unexpected("book." + (answer.code ?? answer.outcome)) }
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        try await waitFor("every node to know the bookings", seconds: 300) {
            for id in ids {
                for s in morningSessions.prefix(3) {
                    let bytes = try await cluster.call(id, "floor-queue", ["session": s])
                    guard let v = try? JSONDecoder().decode(FloorQueueView.self, from: Data(bytes)), v.lines.count >= options.bookingsPerSession else { return false }
                }
            }
            return true
        }

        // MARK: The morning
        let ports = try ids.reduce(into: [String: Int]()) { out, id in out[id] = try cluster.config(id).patients?.port }
        let ca = try String(contentsOfFile: cluster.folder + "/certs/admin/ca.crt", encoding: .utf8)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        var streams: [EventStreamClient] = []
        for code in codes where mornings[code]?.isEmpty == false {
            let other = ids[(ids.firstIndex(of: home[code]!)! + 1) % ids.count]
            streams.append(try await EventStreamClient.open(host: "127.0.0.1", port: ports[other] ?? 0, path: "/staff/display/events?dept=\(code)", caPEM: ca,
                                                            group: group) { data, at in
                guard let rows = (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])?["rows"] as? [[String: Any]] else { return }
                for row in rows {
                    if let s = row["schedule"] as? String, let called = row["called"] as? [String: Any], let number = called["number"] as? Int {
                        stats.shown("\(s)#\(number)", atNanos: at)
                    }
                }
            })
        }
        say("上午：\(options.seconds) 秒，报到、现场挂号、叫号；\(streams.count) 块候诊屏在另一节点上跟随 / the morning: \(options.seconds) s of check-ins, walk-ins and calls; \(streams.count) displays followed on another node")
        let deadline = ContinuousClock.now + .milliseconds(Int(options.seconds * 1000))
        let start = ContinuousClock.now
        // Arrivals: every booking checks in, and the walk-ins register, at random times of the first 80%.
        var arrivals: [Arrival] = []
        var walkIn = 0
        for session in morningSessions {
            for slot in 0..<options.bookingsPerSession { arrivals.append((Double.random(in: 0..<(options.seconds * 0.8)), session, "bench-\(session)-\(slot)", nil)) }
            for _ in 0..<options.walkInsPerSession {
                arrivals.append((Double.random(in: 0..<(options.seconds * 0.8)), session, nil, walkIn))
                walkIn += 1
            }
        }
        arrivals.sort { $0.at < $1.at }
        let queued = arrivals
        await withTaskGroup(of: Void.self) { tasks in
            // Desks and kiosks: 8 a node, taking the arrivals in time order.
            let desks = 8 * ids.count
            for desk in 0..<desks {
                let mine = queued.enumerated().filter { $0.offset % desks == desk }.map(\.element)
                tasks.addTask { await Self.desk(mine, at: ids[desk % ids.count], cluster, from: start, stats) }
            }
            // Doctors: each at their own node, the session's holder.
            for (code, sessions) in mornings {
                for session in sessions {
                    let node = home[code] ?? ids[0]
                    tasks.addTask { await Self.doctor(session, at: node, cluster, every: options.callEverySeconds, until: deadline, stats) }
                }
            }
        }
        // The last calls' events.
        try? await Task.sleep(for: .seconds(2))
        for s in streams { await s.close() }
        let (display, missing) = stats.displayTimes()
        return Report(
            nodes: ids.count, departments: options.departments, doctors: options.doctors, weeks: options.weeks, sessions: sessions,
            slots: answers.reduce(0) { $0 + $1.slots }, publishS: rounded(publishS, 2),
            publishNodeS: rounded((answers.map(\.publishMs).max() ?? 0) / 1000, 2), morningSessions: morningSessions.count,
            bookings: work.count, seconds: options.seconds, checkIns: stats.figures("check_in"), walkIns: stats.figures("walk_in"),
            callNext: stats.figures("next"), callToDisplay: Self.figures(display), callsNotDisplayed: missing, unexpected: stats.unexpectedCounts)
    }

    typealias Arrival = (at: Double, session: String, booking: String?, walkIn: Int?)

    /// A desk or kiosk at `node`: each arrival at its time, a check-in of its booking or a walk-in's registration.
    static func desk(_ arrivals: [Arrival], at node: String, _ cluster: LocalCluster, from start: ContinuousClock.Instant, _ stats: Stats) async {
        do {
            try await cluster.withAdminSession(node) { admin in
                for a in arrivals {
                    let wait = start + .milliseconds(Int(a.at * 1000)) - ContinuousClock.now
                    if wait > .zero { try? await Task.sleep(for: wait) }
                    let command: FloorAdminCommand
                    if let booking = a.booking {
                        command = FloorAdminCommand(session: a.session, op: "check_in", booking: booking)
                    } else {
                        let n = a.walkIn ?? 0
                        let id = try ResidentID.make(regionCode: "130102", birthDate: try CivilDate(year: 1960, month: 1, day: 1).adding(days: n), sequence: 100 + n % 800)
                        command = FloorAdminCommand(session: a.session, op: "walk_in", residentID: id.value, name: "压测患者" + ["甲", "乙", "丙", "丁", "戊"][n % 5],
                                                    mobile: "139" + String(format: "%08d", n), payment: "cash", requestID: "bench-walk-\(n)")
                    }
                    let what = a.booking == nil ? "walk_in" : "check_in"
                    let t0 = nanos()
                    let bytes = try await admin.request("floor " + String(decoding: try JSONEncoder().encode(command), as: UTF8.self))
                    let ms = Double(nanos() - t0) / 1e6
                    if (try? JSONDecoder().decode(FloorQueueView.self, from: Data(bytes))) != nil { stats.record(what, ms: ms) } else { stats.unexpected(what + ": " + code(bytes)) }
                }
            }
        } catch {
            stats.unexpected("desk at \(node): \(error)")
        }
    }

    /// A doctor at `node` calling the next patient of `session` every so often (Poisson) until `deadline`.
    static func doctor(_ session: String, at node: String, _ cluster: LocalCluster, every mean: Double, until deadline: ContinuousClock.Instant,
                       _ stats: Stats) async {
        do {
            try await cluster.withAdminSession(node) { admin in
                var current: String?
                var seen = 0
                while ContinuousClock.now < deadline {
                    let pause = -log(Double.random(in: Double.ulpOfOne..<1)) * mean
                    try? await Task.sleep(for: .milliseconds(Int(pause * 1000)))
                    if ContinuousClock.now >= deadline { break }
                    let command = FloorAdminCommand(session: session, op: "next", expecting: current, seen: seen)
                    let t0 = nanos()
                    let bytes = try await admin.request("floor " + String(decoding: try JSONEncoder().encode(command), as: UTF8.self))
                    let ms = Double(nanos() - t0) / 1e6
                    guard let view = try? JSONDecoder().decode(FloorQueueView.self, from: Data(bytes)) else {
                        let code = code(bytes)
                        if code != "floor.queue_empty" { stats.unexpected("next: " + code) }
                        continue
                    }
                    current = view.current
                    seen = view.lastSeq
                    // A press with nobody waiting ends the current visit and calls nobody.
                    guard let called = view.current, let number = view.lines.first(where: { $0.booking == called })?.number else { continue }
                    stats.record("next", ms: ms)
                    stats.called("\(session)#\(number)", sentNanos: t0)
                }
            }
        } catch {
            stats.unexpected("doctor at \(node): \(error)")
        }
    }

    /// The error code in an admin answer (`floor.queue_empty: ...`), or its first words.
    static func code(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(300), as: UTF8.self)
        if let match = text.firstMatch(of: /(floor|lease|booking|quota|resident_id|identity)\.[a-z_.]+/) { return String(match.0) }
        return String(text.prefix(80))
    }
}
