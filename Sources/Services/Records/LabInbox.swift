import Domain
import Foundation

/// The folder a lab system drops its HL7 v2 result files in (`*.hl7`, written under another name
/// and renamed when complete). Each file is imported whole, then moved to `done/`; a file that
/// cannot be (malformed, an unknown order or patient) is moved to `quarantine/` with a
/// `<file>.reason.txt` beside it, and nothing of it is written.
package struct LabInbox: Sendable {
    package struct Outcome: Sendable, Equatable {
        package var file: String
        /// Reports written (0: all were there already).
        package var imported: Int
        /// Why it was quarantined; nil: imported.
        package var problem: HL7Problem?
    }

    /// A quarantined file, as the lab page lists it.
    package struct Quarantined: Sendable {
        package var file: String
        package var reason: String
        package var atMs: Int64
    }

    package let folder: String
    package let orders: OrderDesk
    /// A file is taken only once it has not changed for this long (a writer that does not rename).
    package let settleSeconds: Double

    package init(folder: String, orders: OrderDesk, settleSeconds: Double = 2) {
        self.folder = folder; self.orders = orders; self.settleSeconds = settleSeconds
    }

    static let author = RecordAuthor(staff: "hl7-inbox", name: "检验系统接口 HL7 / lab interface", practitioner: "")

    var done: String { (folder as NSString).appendingPathComponent("done") }
    var quarantine: String { (folder as NSString).appendingPathComponent("quarantine") }

    /// Imports every ready file, oldest name first.
    package func sweep() -> [Outcome] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: folder) else { return [] }
        var outcomes: [Outcome] = []
        for name in names.sorted() where name.lowercased().hasSuffix(".hl7") {
            let path = (folder as NSString).appendingPathComponent(name)
            guard let attributes = try? fm.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            if let modified = attributes[.modificationDate] as? Date, Date().timeIntervalSince(modified) < settleSeconds { continue }
            if let outcome = importFile(name) { outcomes.append(outcome) }
        }
        return outcomes
    }

    /// nil: left for the next sweep (the store could not be written; not the file's fault).
    func importFile(_ name: String) -> Outcome? {
        let path = (folder as NSString).appendingPathComponent(name)
        do {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw HL7Problem(code: "hl7.unreadable", zh: "文件无法读取。", en: "the file cannot be read.")
            }
            let drafts = try HL7Results.parse(data).map { d -> ReportDraft in
                var d = d
                d.source = "hl7:\(name)"
                return d
            }
            let written: [LabReport]
            do { written = try orders.report(drafts, by: Self.author) } catch {
                if error == .storeUnavailable { return nil }
                throw HL7Problem(code: error.code, zh: error.zh, en: error.en)
            }
            move(name, to: done)
            return Outcome(file: name, imported: written.count, problem: nil)
        } catch let problem as HL7Problem {
            let moved = move(name, to: quarantine)
            let when = ISO8601DateFormatter().string(from: Date())
            let reason = "\(problem.code)\n\(problem.zh)\n\(problem.en)\n\(when)\n"
            FileManager.default.createFile(atPath: (quarantine as NSString).appendingPathComponent(moved + ".reason.txt"), contents: Data(reason.utf8))
            return Outcome(file: name, imported: 0, problem: problem)
        } catch {
            return nil
        }
    }

    /// Moves a file into `done/` or `quarantine/`, never over one of the same name; returns the name it took.
    @discardableResult
    func move(_ name: String, to folder: String) -> String {
        let fm = FileManager.default
        try? fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var target = (folder as NSString).appendingPathComponent(name)
        var n = 1
        while fm.fileExists(atPath: target) {
            n += 1
            target = (folder as NSString).appendingPathComponent("\((name as NSString).deletingPathExtension).\(n).hl7")
        }
        try? fm.moveItem(atPath: (self.folder as NSString).appendingPathComponent(name), toPath: target)
        return (target as NSString).lastPathComponent
    }

    /// The quarantined files with their reasons (in the page's language), newest first.
    package func quarantined(zh: Bool) -> [Quarantined] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: quarantine) else { return [] }
        return names.filter { $0.lowercased().hasSuffix(".hl7") }.map { name -> Quarantined in
            let path = (quarantine as NSString).appendingPathComponent(name)
            let lines = (try? String(contentsOfFile: path + ".reason.txt", encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
            let at = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            return Quarantined(file: name, reason: lines.count > 2 ? (zh ? lines[1] : lines[2]) : "", atMs: Int64((at?.timeIntervalSince1970 ?? 0) * 1000))
        }.sorted { $0.atMs != $1.atMs ? $0.atMs > $1.atMs : $0.file < $1.file }
    }
}
