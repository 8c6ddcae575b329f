import Domain
import Foundation
import ReplicatedCore

/// A template as stored, with its id.
package struct StoredTemplate: Sendable {
    package var id: String
    package var template: NoteTemplate
    package var updatedMs: Int64
}

/// The template library: the department's templates and each doctor's own. A doctor keeps their
/// personal ones; the department's are kept by whoever the access table lets (`template.manage`
/// with `dept`: the department head).
package struct TemplateDesk: Sendable {
    package let store: any RecordStore
    package let clock: NodeClock

    package init(store: any RecordStore, clock: NodeClock) { self.store = store; self.clock = clock }

    /// What `staff` sees: their department's templates and their own, by name.
    package func visible(to staff: String, departments: [String]) throws(StaffError) -> [StoredTemplate] {
        var rows: [(key: String, row: [String: ColumnValue])] = []
        do {
            for d in departments { rows += try store.liveRows("note_template", equal: ["department": .text(d)], range: nil, newestBy: nil, limit: 1_000) }
            rows += try store.liveRows("note_template", equal: ["owner": .text(staff)], range: nil, newestBy: nil, limit: 1_000)
        } catch { throw .storeUnavailable }
        var seen = Set<String>()
        return rows.compactMap { r -> StoredTemplate? in
            guard seen.insert(r.key).inserted, (r.row["retired"]?.integerValue ?? 0) == 0, let t = Self.template(r.row) else { return nil }
            guard t.scope == .department || t.owner == staff else { return nil }
            return StoredTemplate(id: r.key, template: t, updatedMs: r.row["updated_ms"]?.integerValue ?? 0)
        }.sorted { ($0.template.scope.rawValue, $0.template.name) < ($1.template.scope.rawValue, $1.template.name) }
    }

    package func template(_ id: String) throws(StaffError) -> StoredTemplate? {
        let row: [String: ColumnValue]?
        do { row = try store.liveRow("note_template", key: id) } catch { throw .storeUnavailable }
        guard let row, (row["retired"]?.integerValue ?? 0) == 0, let t = Self.template(row) else { return nil }
        return StoredTemplate(id: id, template: t, updatedMs: row["updated_ms"]?.integerValue ?? 0)
    }

    static func template(_ row: [String: ColumnValue]) -> NoteTemplate? {
        guard let scope = row["scope"]?.textValue.flatMap(NoteTemplate.Scope.init(rawValue:)), let body = row["body"]?.textValue,
              let note = try? JSONDecoder().decode(ClinicalNote.self, from: Data(body.utf8)) else { return nil }
        return NoteTemplate(name: row["name"]?.textValue ?? "", scope: scope, department: row["department"]?.textValue ?? "",
                            owner: row["owner"]?.textValue ?? "", note: note)
    }

    /// Files a new template (or replaces `id`'s, which must be one the author may keep).
    package func save(_ draft: NoteTemplate, id: String? = nil) throws(StaffError) -> StoredTemplate {
        let t: NoteTemplate
        do { t = try draft.validated() } catch { throw .invalid(error) }
        let key = id ?? UUID().uuidString.lowercased()
        let body: String
        do { body = String(decoding: try JSONEncoder().encode(t.note), as: UTF8.self) } catch { throw .storeUnavailable }
        let values: [String: ColumnValue] = ["name": .text(t.name), "scope": .text(t.scope.rawValue), "department": .text(t.department),
                                             "owner": .text(t.owner), "body": .text(body), "retired": .integer(0), "updated_ms": .integer(clock.wallMillis())]
        do {
            try store.write { w in
                if try store.liveRow("note_template", key: key) == nil { _ = try w.insert("note_template", key: key, values: values) }
                else { _ = try w.update("note_template", key: key, values: values) }
            }
        } catch { throw .storeUnavailable }
        return StoredTemplate(id: key, template: t, updatedMs: values["updated_ms"]?.integerValue ?? 0)
    }

    /// Takes a template out of the library (kept, marked retired).
    package func retire(_ id: String) throws(StaffError) {
        do { try store.write { w in _ = try w.update("note_template", key: id, values: ["retired": .integer(1), "updated_ms": .integer(clock.wallMillis())]) } }
        catch { throw .storeUnavailable }
    }

    // MARK: Saved phrases

    /// The most phrases one doctor keeps (each has a shortcut, Alt+1 to Alt+9, then the list).
    package static let maxPhrases = 30

    /// A doctor's saved phrases (常用语) in the order they were saved: the first nine have shortcut keys.
    package func phrases(of staff: String) throws(StaffError) -> [(id: String, text: String)] {
        try allPhrases(of: staff).filter { ($0.row["retired"]?.integerValue ?? 0) == 0 }.map { ($0.key, $0.row["text"]?.textValue ?? "") }
    }

    /// Retired ones too, in their order (two saved at once on two nodes: by key).
    func allPhrases(of staff: String) throws(StaffError) -> [(key: String, row: [String: ColumnValue])] {
        do {
            return try store.liveRows("note_phrase", equal: ["owner": .text(staff)], range: nil, newestBy: nil, limit: 1_000)
                .sorted { ($0.row["position"]?.integerValue ?? 0, $0.key) < ($1.row["position"]?.integerValue ?? 0, $1.key) }
        } catch { throw .storeUnavailable }
    }

    package func savePhrase(_ text: String, owner: String) throws(StaffError) -> String {
        let t: String
        do { t = try Observation.line(text, field: "phrase", limit: 200, lines: true) } catch { throw .invalid(error) }
        guard !t.isEmpty else { throw StaffError(400, "phrase.empty", zh: "常用语不能为空。", en: "a phrase cannot be empty.") }
        let mine = try phrases(of: owner)
        guard mine.count < Self.maxPhrases else {
            throw StaffError(409, "phrase.too_many", zh: "常用语最多 \(Self.maxPhrases) 条，请先停用不用的。", en: "at most \(Self.maxPhrases) phrases; retire one you no longer use first.")
        }
        guard !mine.contains(where: { $0.text == t }) else { throw StaffError(409, "phrase.exists", zh: "已有这条常用语。", en: "that phrase is already saved.") }
        let key = UUID().uuidString.lowercased()
        let position = (try allPhrases(of: owner).compactMap { $0.row["position"]?.integerValue }.max() ?? 0) + 1
        do {
            try store.write { w in
                _ = try w.insert("note_phrase", key: key, values: ["owner": .text(owner), "text": .text(t), "position": .integer(position),
                                                                   "retired": .integer(0), "updated_ms": .integer(clock.wallMillis())])
            }
        } catch { throw .storeUnavailable }
        return key
    }

    /// Retires one of `owner`'s phrases (another's is not found).
    package func retirePhrase(_ id: String, owner: String) throws(StaffError) {
        guard try phrases(of: owner).contains(where: { $0.id == id }) else {
            throw StaffError(404, "phrase.not_found", zh: "没有这条常用语。", en: "there is no such phrase.")
        }
        do { try store.write { w in _ = try w.update("note_phrase", key: id, values: ["retired": .integer(1), "updated_ms": .integer(clock.wallMillis())]) } }
        catch { throw .storeUnavailable }
    }
}
