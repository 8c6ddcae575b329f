import Domain

/// The differences between two versions of a note, section by section, line by line: what the
/// versions page shows. Sections that did not change are left out.
package enum NoteDiff {
    package enum Kind: String, Sendable {
        case same, removed, added
    }

    package struct Line: Sendable, Equatable {
        package var text: String
        package var kind: Kind
    }

    package struct Section: Sendable {
        package var zh: String
        package var en: String
        package var lines: [Line]
    }

    package static func sections(_ a: ClinicalNote, _ b: ClinicalNote) -> [Section] {
        var out: [Section] = []
        for s in ClinicalNote.sections where a[keyPath: s.path] != b[keyPath: s.path] {
            out.append(Section(zh: s.zh, en: s.en, lines: lines(a[keyPath: s.path], b[keyPath: s.path])))
        }
        func vitals(_ v: VitalSigns) -> String {
            let values = v.values
            return VitalSigns.bounds.compactMap { b in values[b.field].map { "\(b.zh) \($0) \(b.unit)" } }.joined(separator: "\n")
        }
        if a.vitals != b.vitals { out.append(Section(zh: "生命体征", en: "Vital signs", lines: lines(vitals(a.vitals), vitals(b.vitals)))) }
        if a.diagnoses != b.diagnoses {
            func text(_ d: [Diagnosis]) -> String { d.map { "\($0.code) \($0.name)" }.joined(separator: "\n") }
            out.append(Section(zh: "诊断", en: "Diagnoses", lines: lines(text(a.diagnoses), text(b.diagnoses))))
        }
        if a.allergyCodes != b.allergyCodes || a.noKnownAllergies != b.noKnownAllergies {
            func text(_ n: ClinicalNote) -> String { n.noKnownAllergies ? "无已知过敏 / no known allergies" : n.allergyCodes.joined(separator: "\n") }
            out.append(Section(zh: "过敏（编码）", en: "Coded allergies", lines: lines(text(a), text(b))))
        }
        return out
    }

    /// A line diff by the longest common subsequence. Notes are at most 200 KB, but a table of
    /// every line pair could still be large: past 2,000 lines a side, the whole text is shown as
    /// removed and added.
    package static func lines(_ a: String, _ b: String) -> [Line] {
        let x = a.isEmpty ? [] : a.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let y = b.isEmpty ? [] : b.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard x.count <= 2_000, y.count <= 2_000 else {
            return x.map { Line(text: $0, kind: .removed) } + y.map { Line(text: $0, kind: .added) }
        }
        let n = x.count, m = y.count
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var out: [Line] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, j < m, x[i] == y[j] {
                out.append(Line(text: x[i], kind: .same)); i += 1; j += 1
            } else if j < m, i == n || lcs[i][j + 1] >= lcs[i + 1][j] {
                out.append(Line(text: y[j], kind: .added)); j += 1
            } else {
                out.append(Line(text: x[i], kind: .removed)); i += 1
            }
        }
        return out
    }
}
