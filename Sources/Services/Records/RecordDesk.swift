import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore

/// Who writes a version: the staff member as their account says.
package struct RecordAuthor: Sendable {
    package var staff: String
    package var name: String
    package var practitioner: String

    package init(staff: String, name: String, practitioner: String) {
        self.staff = staff; self.name = name; self.practitioner = practitioner
    }
}

/// A visit (就诊, FHIR Encounter): one per appointment, opened from the queue.
package struct Encounter: Sendable, Hashable {
    /// The appointment's hold id: a visit is opened once per appointment, on any node.
    package var id: String
    package var patient: String
    package var session: String
    package var department: String
    package var practitioner: String
    package var date: String
    package var openedBy: String
    package var openedMs: Int64

    package init(id: String, patient: String, session: String, department: String, practitioner: String, date: String, openedBy: String, openedMs: Int64) {
        self.id = id; self.patient = patient; self.session = session; self.department = department; self.practitioner = practitioner
        self.date = date; self.openedBy = openedBy; self.openedMs = openedMs
    }

    init(id: String, row: [String: ColumnValue]) {
        self.id = id
        patient = row["patient"]?.textValue ?? ""
        session = row["session"]?.textValue ?? ""
        department = row["department"]?.textValue ?? ""
        practitioner = row["practitioner"]?.textValue ?? ""
        date = row["date"]?.textValue ?? ""
        openedBy = row["opened_by"]?.textValue ?? ""
        openedMs = row["opened_ms"]?.integerValue ?? 0
    }
}

/// One immutable version of a visit's note.
package struct NoteVersion: Sendable {
    package var key: String
    package var encounter: String
    /// The version it was saved over ("" for the first).
    package var parent: String
    /// Other versions the author had in view when saving (a concurrent save they settled).
    package var settles: [String]
    package var kind: NoteVersionKind
    package var reason: String
    package var author: String
    package var authorName: String
    package var node: String
    package var atMs: Int64
    /// The hybrid logical clock of the save: orders versions across nodes.
    package var hlc: Int64
    package var note: ClinicalNote

    /// Newest last: by HLC, then key (two saves never share both).
    static func order(_ a: NoteVersion, _ b: NoteVersion) -> Bool { a.hlc != b.hlc ? a.hlc < b.hlc : a.key < b.key }
}

/// A visit with its versions as this node has them.
package struct VisitRecord: Sendable {
    package var encounter: Encounter
    /// Oldest first.
    package var versions: [NoteVersion]

    /// The newest version: the note as it stands.
    package var current: NoteVersion? { versions.last }
    /// Signed (or amended, or entered in error): a change needs a reason.
    package var locked: Bool { versions.contains { $0.kind.locks } }
    package var enteredInError: Bool { versions.contains { $0.kind == .enteredInError } }

    /// Versions no later version was saved over nor settled: more than one means two saves were
    /// made at once (on two nodes cut off from each other) and the author has to look.
    package var concurrentLeaves: [NoteVersion] {
        let covered = Set(versions.flatMap { [$0.parent] + $0.settles })
        let leaves = versions.filter { !covered.contains($0.key) }
        return leaves.count > 1 ? leaves : []
    }
}

/// The outpatient record: visits opened from the queue, notes saved as immutable versions,
/// signing, amendments with a reason, and entered-in-error; a patient's timeline.
package struct RecordDesk: Sendable {
    package let store: any RecordStore
    package let clock: NodeClock
    /// Today's queues, which a visit is opened from (nil: no visit can be opened here).
    package let floor: FloorDesk?
    /// The department search's index (nil: only one patient's notes can be searched here).
    package let index: RecordIndex?
    package let node: String
    package let catalogue: DiagnosisCatalogue

    package init(store: any RecordStore, clock: NodeClock, floor: FloorDesk?, index: RecordIndex? = nil, node: String, catalogue: DiagnosisCatalogue) {
        self.store = store; self.clock = clock; self.floor = floor; self.index = index; self.node = node; self.catalogue = catalogue
    }

    var nowMs: Int64 { clock.wallMillis() }

    // MARK: Visits

    /// Opens the visit of a booking of one of today's sessions whose patient has checked in (a
    /// walk-in registered at the desk too); the same booking again is the same visit.
    package func open(appointment encoded: String, by author: RecordAuthor) throws(StaffError) -> Encounter {
        guard let ref = AppointmentRef(encoded: encoded) else {
            throw StaffError(400, "record.appointment_id", zh: "预约号格式不正确。", en: "the booking number is malformed.")
        }
        if let known = try encounter(ref.holdID) { return known }
        guard let floor else { throw StaffError(503, "floor.unavailable", zh: "本节点未提供门诊现场功能。", en: "this node does not offer the clinic floor.") }
        let session = try floor.sessionToday(ref.block)
        guard let line = session.lines.first(where: { $0.holdID == ref.holdID }) else {
            throw StaffError(404, "record.no_appointment", zh: "该时段没有这个预约或现场挂号，不能开始就诊。",
                             en: "this session has no such booking or walk-in registration; a visit cannot be opened.")
        }
        guard [.waiting, .called, .seen].contains(line.stage) else {
            throw StaffError(409, "record.not_arrived", zh: "患者尚未报到（或已过号、爽约），请先报到再接诊。",
                             en: "the patient has not checked in (or missed the call, or never came); check them in first.")
        }
        let values: [String: ColumnValue] = [
            "patient": .text(line.patient), "session": .text(session.info.schedule), "department": .text(session.info.department),
            "practitioner": .text(session.info.practitioner), "date": .text(session.info.date.description),
            "opened_by": .text(author.staff), "opened_ms": .integer(nowMs),
        ]
        do {
            try store.write { w in
                if try store.liveRow("encounter", key: ref.holdID) == nil { _ = try w.insert("encounter", key: ref.holdID, values: values) }
            }
        } catch { throw .storeUnavailable }
        guard let opened = try encounter(ref.holdID) else { throw .storeUnavailable }
        return opened
    }

    package func encounter(_ id: String) throws(StaffError) -> Encounter? {
        do { return try store.liveRow("encounter", key: id).map { Encounter(id: id, row: $0) } } catch { throw .storeUnavailable }
    }

    /// A visit and its note's versions, or 404.
    package func visit(_ id: String) throws(StaffError) -> VisitRecord {
        guard let e = try encounter(id) else { throw Self.noVisit }
        return VisitRecord(encounter: e, versions: try versions(of: id))
    }

    package func versions(of encounter: String) throws(StaffError) -> [NoteVersion] {
        let rows: [(key: String, row: [String: ColumnValue])]
        do { rows = try store.liveRows("note_version", equal: ["encounter": .text(encounter)], range: nil, newestBy: nil, limit: 10_000) } catch { throw .storeUnavailable }
        return rows.compactMap { Self.version($0.key, $0.row) }.sorted(by: NoteVersion.order)
    }

    static func version(_ key: String, _ row: [String: ColumnValue]) -> NoteVersion? {
        guard let kind = row["kind"]?.textValue.flatMap(NoteVersionKind.init(rawValue:)),
              let body = row["body"]?.textValue, let note = try? JSONDecoder().decode(ClinicalNote.self, from: Data(body.utf8)) else { return nil }
        return NoteVersion(key: key, encounter: row["encounter"]?.textValue ?? "", parent: row["parent"]?.textValue ?? "",
                           settles: (row["settles"]?.textValue ?? "").split(separator: ",").map(String.init), kind: kind,
                           reason: row["reason"]?.textValue ?? "", author: row["author"]?.textValue ?? "", authorName: row["author_name"]?.textValue ?? "",
                           node: row["node"]?.textValue ?? "", atMs: row["at_ms"]?.integerValue ?? 0, hlc: row["hlc"]?.integerValue ?? 0, note: note)
    }

    // MARK: Saving

    package enum SaveAction: String, Sendable {
        case save, sign
    }

    /// Saves a new version over `base` (the version the author was looking at; "" for none yet).
    /// A note that is signed changes only by an amendment with a reason. If another version was
    /// saved here since `base`, nothing is saved: the author looks first. `settles` names the
    /// concurrent versions the author had in view.
    package func save(_ id: String, note draft: ClinicalNote, base: String, settles: [String], action: SaveAction, reason: String,
                      by author: RecordAuthor) throws(StaffError) -> NoteVersion {
        let visit = try visit(id)
        guard !visit.enteredInError else {
            throw StaffError(409, "record.entered_in_error", zh: "该病历已作废（录入错误），不能再修改。", en: "this note was marked entered in error; it cannot be changed.")
        }
        guard (visit.current?.key ?? "") == base else {
            throw StaffError(409, "record.stale", zh: "您打开病历之后，已有新的版本保存（见版本记录）。您的内容没有保存：请复制后刷新页面，核对最新版本再保存。",
                             en: "a newer version was saved after you opened the note (see the versions). Yours was not saved: copy it, reload, check the newest version and save again.")
        }
        let note: ClinicalNote
        do { note = try checkedDiagnoses(try draft.validated()) } catch let e as ValidationError { throw .invalid(e) } catch let e as StaffError { throw e } catch { throw .storeUnavailable }
        var kind: NoteVersionKind = action == .sign ? .signed : .draft
        var why = ""
        if visit.locked {
            why = try Self.reason(reason)
            kind = .amendment
        }
        if action == .sign, note.diagnoses.isEmpty {
            throw StaffError(400, "record.no_diagnosis", zh: "签名前请至少填写一个诊断。", en: "enter at least one diagnosis before signing.")
        }
        return try write(id, visit: visit, note: note, kind: kind, reason: why, settles: settles, author: author)
    }

    /// Marks the note entered in error (written for the wrong patient or visit): a version of its
    /// own with the reason; the note stays readable and is never deleted.
    package func enterInError(_ id: String, reason: String, by author: RecordAuthor) throws(StaffError) -> NoteVersion {
        let visit = try visit(id)
        guard let current = visit.current, !visit.enteredInError else {
            throw StaffError(409, "record.nothing_to_void", zh: "没有可作废的病历。", en: "there is no note to mark entered in error.")
        }
        return try write(id, visit: visit, note: current.note, kind: .enteredInError, reason: try Self.reason(reason), settles: [], author: author)
    }

    private func write(_ id: String, visit: VisitRecord, note: ClinicalNote, kind: NoteVersionKind, reason: String, settles: [String],
                       author: RecordAuthor) throws(StaffError) -> NoteVersion {
        let known = Set(visit.versions.map(\.key))
        let settled = settles.filter { known.contains($0) && $0 != visit.current?.key }
        let key = Self.newVersionKey(id)
        do {
            try store.write { w in
                try insertVersion(w, key: key, encounter: visit.encounter, note: note, kind: kind, parent: visit.current?.key ?? "", settles: settled,
                                  reason: reason, author: author, atMs: nowMs)
            }
        } catch { throw .storeUnavailable }
        guard let saved = try versions(of: id).first(where: { $0.key == key }) else { throw .storeUnavailable }
        return saved
    }

    static func newVersionKey(_ encounter: String) -> String { "\(encounter)/\(UUID().uuidString.lowercased())" }

    /// One version row, with the HLC its insert was stamped with (set in the same transaction).
    func insertVersion(_ w: LocalWriter, key: String, encounter e: Encounter, note: ClinicalNote, kind: NoteVersionKind, parent: String,
                       settles: [String], reason: String, author: RecordAuthor, atMs: Int64) throws {
        let body = String(decoding: try JSONEncoder().encode(note), as: UTF8.self)
        let version = try w.insert("note_version", key: key, values: [
            "encounter": .text(e.id), "patient": .text(e.patient), "department": .text(e.department),
            "practitioner": .text(e.practitioner), "date": .text(e.date),
            "parent": .text(parent), "settles": .text(settles.joined(separator: ",")), "kind": .text(kind.rawValue),
            "reason": .text(reason), "author": .text(author.staff), "author_name": .text(author.name), "node": .text(node),
            "at_ms": .integer(atMs), "body": .text(body), "diagnoses": .text(note.diagnoses.map(\.code).joined(separator: ",")),
        ])
        _ = try w.update("note_version", key: key, values: ["hlc": .integer(Int64(bitPattern: version.hlc.rawValue))])
    }

    /// Past visits with their signed notes, in one transaction: the demo's history and the bench's
    /// load. Each note is checked as a doctor's save would be; a visit already there is skipped.
    package func importSigned(_ visits: [(encounter: Encounter, note: ClinicalNote, author: RecordAuthor)]) throws -> Int {
        let checked = try visits.map { v in (v.encounter, try checkedDiagnoses(try v.note.validated()), v.author) }
        return try store.write { w in
            var written = 0
            for (e, note, author) in checked where try store.liveRow("encounter", key: e.id) == nil {
                _ = try w.insert("encounter", key: e.id, values: [
                    "patient": .text(e.patient), "session": .text(e.session), "department": .text(e.department), "practitioner": .text(e.practitioner),
                    "date": .text(e.date), "opened_by": .text(e.openedBy), "opened_ms": .integer(e.openedMs),
                ])
                try insertVersion(w, key: Self.newVersionKey(e.id), encounter: e, note: note, kind: .signed, parent: "", settles: [], reason: "",
                                  author: author, atMs: e.openedMs)
                written += 1
            }
            return written
        }
    }

    /// Every diagnosis is a code of the catalogue, named as the catalogue names it; every coded
    /// allergy is one of the allergen list.
    func checkedDiagnoses(_ note: ClinicalNote) throws(StaffError) -> ClinicalNote {
        var note = note
        note.diagnoses = try note.diagnoses.map { d throws(StaffError) in
            guard let e = catalogue.entry(code: d.code) else {
                throw StaffError(400, "record.unknown_diagnosis", zh: "诊断编码 \(String(d.code.prefix(20))) 不在 ICD-10 医保版 2.0 编码库中，请从诊断搜索中选择。",
                                 en: "diagnosis code \(String(d.code.prefix(20))) is not in the ICD-10 (NHSA 2.0) catalogue; pick one from the diagnosis search.")
            }
            return Diagnosis(code: e.code, name: e.name)
        }
        if !note.allergyCodes.isEmpty {
            let allergens = try? AllergenCatalogue.shipped.get()
            for code in note.allergyCodes where allergens?.entry(code) == nil {
                throw StaffError(400, "record.unknown_allergen", zh: "过敏编码 \(String(code.prefix(20))) 不在过敏原表中，请从列表中选择。",
                                 en: "allergy code \(String(code.prefix(20))) is not in the allergen list; pick one from the list.")
            }
        }
        return note
    }

    static func reason(_ text: String) throws(StaffError) -> String {
        let r = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (4...500).contains(r.count), !r.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StaffError(400, "record.reason", zh: "已签名的病历只能修改并写明理由（4 至 500 字，不含控制字符）。",
                             en: "a signed note changes only by an amendment with a reason (4 to 500 characters, no control characters).")
        }
        return r
    }

    static let noVisit = StaffError(404, "record.no_visit", zh: "没有这次就诊的记录。", en: "there is no such visit.")

    // MARK: What the page fills in

    /// A patient's visits, newest first, each with its note as it stands (none yet: nil).
    /// Two reads, the visits and every version of the patient's notes, whatever the number of visits.
    package func timeline(patient: String, limit: Int = 200) throws(StaffError) -> [VisitRecord] {
        let encounters: [(key: String, row: [String: ColumnValue])]
        let versions: [(key: String, row: [String: ColumnValue])]
        do {
            encounters = try store.liveRows("encounter", equal: ["patient": .text(patient)], range: nil, newestBy: "opened_ms", limit: limit)
            versions = try store.liveRows("note_version", equal: ["patient": .text(patient)], range: nil, newestBy: nil, limit: 100_000)
        } catch { throw .storeUnavailable }
        let byVisit = Dictionary(grouping: versions.compactMap { Self.version($0.key, $0.row) }, by: \.encounter)
        return encounters.map { VisitRecord(encounter: Encounter(id: $0.key, row: $0.row), versions: (byVisit[$0.key] ?? []).sorted(by: NoteVersion.order)) }
    }

    /// What a new note starts with: the past history and allergies of the patient's last note,
    /// and that visit's diagnoses (shown, not copied into the new diagnoses).
    package func carriedForward(patient: String, before id: String) throws(StaffError) -> (note: ClinicalNote, lastDiagnoses: [Diagnosis], lastDate: String?) {
        let earlier = try timeline(patient: patient, limit: 50).filter { $0.encounter.id != id && !$0.enteredInError }
        guard let last = earlier.first(where: { $0.current != nil }), let current = last.current else { return (ClinicalNote(), [], nil) }
        var note = ClinicalNote()
        note.pastHistory = current.note.pastHistory
        note.allergies = current.note.allergies
        note.allergyCodes = current.note.allergyCodes
        note.noKnownAllergies = current.note.noKnownAllergies
        return (note, current.note.diagnoses, last.encounter.date)
    }
}

/// A note a search found, with where it matched.
package struct FoundNote: Sendable {
    package var encounter: Encounter
    package var version: NoteVersion
    package var snippet: [(text: String, found: Bool)]
}

extension RecordDesk {
    /// One patient's visits whose current note has every word typed (entered-in-error ones left out), newest first.
    package func search(patient: String, words: String) throws(StaffError) -> [FoundNote] {
        let terms = SearchText.terms(words)
        return try timeline(patient: patient).compactMap { v -> FoundNote? in
            guard let current = v.current, !v.enteredInError else { return nil }
            let text = current.note.searchableText.lowercased()
            guard terms.allSatisfy({ text.contains($0.lowercased()) }) else { return nil }
            return FoundNote(encounter: v.encounter, version: current, snippet: SearchText.snippet(current.note.searchableText, terms: terms))
        }
    }

    /// A department's notes by words, diagnosis, doctor and dates, from this node's index.
    package func search(_ q: NoteQuery) throws(StaffError) -> [FoundNote] {
        guard let index else { throw StaffError(503, "record.no_index", zh: "本节点没有病历检索索引。", en: "this node has no note search index.") }
        var q = q
        q.words = String(q.words.trimmingCharacters(in: .whitespaces).prefix(40))
        if !q.diagnosis.isEmpty {
            guard let entry = catalogue.entry(code: q.diagnosis) else {
                throw StaffError(400, "record.unknown_diagnosis", zh: "诊断编码 \(String(q.diagnosis.prefix(20))) 不在编码库中。",
                                 en: "diagnosis code \(String(q.diagnosis.prefix(20))) is not in the catalogue.")
            }
            q.diagnosis = entry.code
        }
        for (day, name) in [(q.from, "from"), (q.to, "to")] where !day.isEmpty && (try? CivilDate(parsing: day)) == nil {
            throw StaffError(400, "record.date", zh: "日期格式应为 YYYY-MM-DD（\(name)）。", en: "dates are YYYY-MM-DD (\(name)).")
        }
        guard !q.words.isEmpty || !q.diagnosis.isEmpty else {
            throw StaffError(400, "record.search_empty", zh: "请输入要查找的词语或诊断编码。", en: "enter words or a diagnosis code to search for.")
        }
        let hits: [NoteHit]
        do { hits = try index.search(q) } catch { throw .storeUnavailable }
        let rows: [String: [String: ColumnValue]]
        do { rows = try store.liveRows("note_version", keys: Set(hits.map(\.version))) } catch { throw .storeUnavailable }
        let terms = SearchText.terms(q.words)
        return hits.compactMap { hit in
            guard let row = rows[hit.version], let version = Self.version(hit.version, row) else { return nil }
            let encounter = Encounter(id: hit.encounter, patient: hit.patient, session: "", department: hit.department, practitioner: hit.practitioner,
                                      date: hit.date, openedBy: "", openedMs: 0)
            return FoundNote(encounter: encounter, version: version, snippet: SearchText.snippet(version.note.searchableText, terms: terms))
        }
    }
}
