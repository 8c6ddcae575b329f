import AdminAPI
import ClinicNode
import Domain
import Foundation
import Services

// For `clinicmesh bench records` on the admin API: `bench-records-seed` writes made-up past
// visits with signed notes (`SyntheticNotes`); `bench-records-measure` times the record's reads
// and saves inside the node (the service layer, no HTTP); `bench-records-save` and
// `bench-records-has` let the bench time a save on one node until another node has it.

package struct BenchRecordsSeed: Codable, Sendable {
    package var first: Int
    package var count: Int
    /// Notes are spread over this many patients, `bench-p<n>`.
    package var patients: Int
    package var department: String
    package var doctors: [String]
    /// Over how many years before `today` the visits are spread.
    package var years: Int
    package var today: String
    package var seed: UInt64

    package init(first: Int, count: Int, patients: Int, department: String, doctors: [String], years: Int, today: String, seed: UInt64) {
        self.first = first; self.count = count; self.patients = patients; self.department = department; self.doctors = doctors
        self.years = years; self.today = today; self.seed = seed
    }
}

package struct BenchRecordsMeasure: Codable, Sendable {
    package var department: String
    package var patients: [String]
    package var words: [String]
    /// Visits to save a new version of, one save each.
    package var saves: [String]

    package init(department: String, patients: [String], words: [String], saves: [String]) {
        self.department = department; self.patients = patients; self.words = words; self.saves = saves
    }
}

package struct BenchRecordsTimes: Codable, Sendable {
    /// Milliseconds, one per operation.
    package var timelineMs: [Double]
    package var searchPatientMs: [Double]
    package var searchDepartmentMs: [Double]
    package var saveMs: [Double]
    /// Visits whose notes this node's search index holds.
    package var indexed: Int
    /// Results the searches found in all (so a search that finds nothing is seen).
    package var found: Int

    package enum CodingKeys: String, CodingKey {
        case timelineMs = "timeline_ms", searchPatientMs = "search_patient_ms", searchDepartmentMs = "search_department_ms", saveMs = "save_ms", indexed, found
    }
}

enum BenchRecords {
    static func install(on node: MeshNode) {
        node.addAdminCommands {
            $0.add("bench-records-seed", BenchRecordsSeed.self) { request in ["written": try seed(node, request)] }
            $0.add("bench-records-measure", BenchRecordsMeasure.self) { request in try measure(node, request) }
            $0.add("bench-records-indexed") { ["indexed": try node.recordIndex.count()] }
            $0.add("bench-records-save", [String: String].self) { request in ["version": try save(node, visit: request["visit"] ?? "", text: request["text"] ?? "")] }
            $0.add("bench-records-has", [String: String].self) { request in
                ["has": (try node.replica.liveRow("note_version", key: request["version"] ?? "")) != nil]
            }
        }
    }

    static func desk(_ node: MeshNode) throws -> RecordDesk {
        guard let desk = node.records else {
            throw NodeError(.admin, zh: "本节点没有诊断编码库，不能写病历。", en: "this node has no diagnosis catalogue, so it cannot write notes.")
        }
        return desk
    }

    static let author = RecordAuthor(staff: "BENCH", name: "压测医生", practitioner: "")

    static func visitID(_ index: Int) -> String { "bench-v" + String(index) }

    static func seed(_ node: MeshNode, _ r: BenchRecordsSeed) throws -> Int {
        guard r.count > 0, r.count <= 20_000, r.first >= 0, r.patients > 0, !r.doctors.isEmpty, (1...20).contains(r.years) else {
            throw NodeError(.admin, zh: "count 1–20000，patients > 0，doctors 非空，years 1–20。", en: "count 1–20000, patients > 0, doctors not empty, years 1–20.")
        }
        let desk = try desk(node)
        let today = try CivilDate(parsing: r.today, field: "today")
        var visits: [(encounter: Encounter, note: ClinicalNote, author: RecordAuthor)] = []
        for i in r.first..<(r.first + r.count) {
            var rng = SyntheticNotes.Random(state: r.seed ^ UInt64(i))
            let day = try today.adding(days: -Int.random(in: 1...(r.years * 365), using: &rng))
            let openedMs = Int64(ShanghaiTime.instant(date: day, time: try LocalTime(hour: 9, minute: 0)).timeIntervalSince1970 * 1000)
            let doctor = r.doctors[i % r.doctors.count]
            let e = Encounter(id: visitID(i), patient: "bench-p\(i % r.patients)", session: "", department: r.department, practitioner: doctor,
                              date: day.description, openedBy: author.staff, openedMs: openedMs)
            visits.append((e, SyntheticNotes.note(index: i, seed: r.seed, catalogue: desk.catalogue), RecordAuthor(staff: author.staff, name: author.name, practitioner: doctor)))
        }
        var written = 0
        for chunk in stride(from: 0, to: visits.count, by: 500) {
            written += try desk.importSigned(Array(visits[chunk..<min(visits.count, chunk + 500)]))
        }
        return written
    }

    static func measure(_ node: MeshNode, _ r: BenchRecordsMeasure) throws -> BenchRecordsTimes {
        let desk = try desk(node)
        func timed<E: Error>(_ body: () throws(E) -> Int) throws(E) -> (Double, Int) {
            let start = DispatchTime.now().uptimeNanoseconds
            let n = try body()
            return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, n)
        }
        var times = BenchRecordsTimes(timelineMs: [], searchPatientMs: [], searchDepartmentMs: [], saveMs: [], indexed: try node.recordIndex.count(), found: 0)
        do throws(StaffError) {
            for p in r.patients {
                times.timelineMs.append(try timed { () throws(StaffError) in try desk.timeline(patient: p).count }.0)
            }
            for (i, p) in r.patients.enumerated() {
                let (ms, n) = try timed { () throws(StaffError) in try desk.search(patient: p, words: r.words[i % r.words.count]).count }
                times.searchPatientMs.append(ms); times.found += n
            }
            for w in r.words {
                let (ms, n) = try timed { () throws(StaffError) in try desk.search(NoteQuery(department: r.department, words: w)).count }
                times.searchDepartmentMs.append(ms); times.found += n
            }
            for v in r.saves {
                times.saveMs.append(try timed { () throws(StaffError) in
                    let current = try desk.visit(v).current
                    var note = current?.note ?? ClinicalNote()
                    note.plan += "（复核）"
                    _ = try desk.save(v, note: note, base: current?.key ?? "", settles: [], action: .save, reason: "压测复核", by: author)
                    return 1
                }.0)
            }
        } catch {
            throw NodeError(.admin, zh: "\(error.code): \(error.zh)", en: "\(error.code): \(error.en)")
        }
        return times
    }

    /// One save of a visit's note, for the time until another node has it; the new version's key.
    static func save(_ node: MeshNode, visit: String, text: String) throws -> String {
        let desk = try desk(node)
        do throws(StaffError) {
            let current = try desk.visit(visit).current
            var note = current?.note ?? ClinicalNote()
            note.plan += text
            return try desk.save(visit, note: note, base: current?.key ?? "", settles: [], action: .save, reason: "压测复核", by: author).key
        } catch {
            throw NodeError(.admin, zh: "\(error.code): \(error.zh)", en: "\(error.code): \(error.en)")
        }
    }
}
