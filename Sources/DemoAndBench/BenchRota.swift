import AdminAPI
import ClinicNode
import Domain
import Foundation
import Services

// For `clinicmesh bench floor` on the admin API: `bench-rota` makes departments and doctors up
// and saves each doctor's weekly template; `bench-rota-publish` then publishes the rota from them
// through the same desk as the rota page, timed on the node.

/// `bench-rota {"departments": [{"code": "bench-d00", "doctors": 8}], "weeks": 8, "from": "yyyy-mm-dd"}`:
/// the same request for both commands (`bench-rota` ignores `weeks` and `from`).
package struct BenchRotaRequest: Codable, Sendable, Hashable {
    package struct Department: Codable, Sendable, Hashable {
        package var code: String
        package var doctors: Int
        package init(code: String, doctors: Int) { self.code = code; self.doctors = doctors }
    }
    package var departments: [Department]
    package var weeks: Int
    package var from: String
    package init(departments: [Department], weeks: Int, from: String) { self.departments = departments; self.weeks = weeks; self.from = from }
}

package struct BenchRotaAnswer: Codable, Sendable, Hashable {
    package var sessions: Int
    package var slots: Int
    /// The rota published (schedule rows written, blocks proposed), in this node (ms).
    package var publishMs: Double
    /// The morning sessions of `from`, by department.
    package var firstMornings: [String: [String]]

    package enum CodingKeys: String, CodingKey { case sessions, slots, publishMs = "publish_ms", firstMornings = "first_mornings" }
}

enum BenchRota {
    static func install(on node: MeshNode) {
        node.addAdminCommands {
            $0.add("bench-rota", BenchRotaRequest.self) { request in try prepare(node, request) }
            $0.add("bench-rota-publish", BenchRotaRequest.self) { request in try publish(node, request) }
        }
    }

    /// Each doctor: every morning of the week, and Monday, Wednesday and Friday afternoons; 24
    /// slots of 10 minutes, 4 of them kept for walk-ins; a room of their own.
    static func templates(_ doctor: PractitionerID, room: String) throws -> [ClinicTemplate] {
        let mornings = try Weekday.allCases.map {
            try ClinicTemplate(practitionerID: doctor, weekday: $0, halfDay: .morning, room: room, capacity: 24, minutesPerSlot: 10, walkInReserve: 4)
        }
        let afternoons = try [Weekday.monday, .wednesday, .friday].map {
            try ClinicTemplate(practitionerID: doctor, weekday: $0, halfDay: .afternoon, room: room, capacity: 24, minutesPerSlot: 10, walkInReserve: 4)
        }
        return mornings + afternoons
    }

    static func validate(_ request: BenchRotaRequest) throws {
        guard (1...26).contains(request.weeks), request.departments.count <= 500, request.departments.allSatisfy({ (1...100).contains($0.doctors) }) else {
            throw NodeError(.admin, zh: "weeks 须为 1–26，科室至多 500 个，每科医生 1–100 人。", en: "weeks must be 1–26, at most 500 departments, 1–100 doctors each.")
        }
    }

    /// The departments and their doctors, then each department's weekly templates in one transaction.
    static func prepare(_ node: MeshNode, _ request: BenchRotaRequest) throws -> [String: Int] {
        try validate(request)
        let titles: [PractitionerTitle] = [.chiefPhysician, .associateChiefPhysician, .attendingPhysician, .residentPhysician]
        try node.write { w in
            for d in request.departments {
                let department = try DepartmentID(d.code)
                try w.upsert("department", key: department.rawValue, values: ["name": .text("压测科室 \(d.code)"), "code": .text(d.code)])
                for n in 0..<d.doctors {
                    try w.upsert("practitioner", key: "\(d.code)-dr\(n)", values: [
                        "name": .text("压测医生\(n)"), "department": .text(department.rawValue), "title": .text(titles[n % titles.count].rawValue)])
                }
            }
        }
        let rota = node.rota
        var lines = 0
        for d in request.departments {
            let all = try (0..<d.doctors).flatMap { n in try templates(PractitionerID("\(d.code)-dr\(n)"), room: "\(d.code)-\(n + 1)") }
            try rota.saveTemplates(all, department: d.code)
            lines += all.count
        }
        return ["template_lines": lines]
    }

    /// The rota of every department asked for, published from today's templates, timed.
    static func publish(_ node: MeshNode, _ request: BenchRotaRequest) throws -> BenchRotaAnswer {
        try validate(request)
        let from = try CivilDate(parsing: request.from, field: "from")
        let rota = node.rota
        let watch = ContinuousClock.now
        var sessions = 0, slots = 0
        var mornings: [String: [String]] = [:]
        for d in request.departments {
            let plan = try rota.publish(department: d.code, from: from, weeks: request.weeks, includingBegun: true)
            sessions += plan.sessions.count
            slots += plan.sessions.reduce(0) { $0 + $1.schedule.capacity }
            mornings[d.code] = plan.sessions.filter { $0.schedule.date == from && $0.schedule.halfDay == .morning }.map(\.key.rawValue).sorted()
        }
        let elapsed = ContinuousClock.now - watch
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return BenchRotaAnswer(sessions: sessions, slots: slots, publishMs: ms, firstMornings: mornings)
    }
}
