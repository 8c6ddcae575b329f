import Domain
import Foundation

/// The diagnosis codes a note may carry: ICD-10 医保版 2.0 with its Chinese names, shipped as
/// `icd10-yibao-2.0.tsv` (its header names the source). Searchable by code, by words of the name,
/// and by the pinyin initials of the name (`jxshxdgr`, or any run of them such as `shxdgr`, finds
/// 急性上呼吸道感染).
package struct DiagnosisCatalogue: Sendable {
    package struct Entry: Sendable, Hashable {
        package var code: String
        package var name: String
        /// The name's pinyin initials, lowercase; letters and digits of the name kept as they are.
        package var initials: String
    }

    package let entries: [Entry]
    private let byCode: [String: Int]

    /// The shipped catalogue, read once on first use.
    package static let shipped: Result<DiagnosisCatalogue, ValidationError> = {
        guard let url = Bundle.module.url(forResource: "icd10-yibao-2.0", withExtension: "tsv"),
              let data = try? Data(contentsOf: url) else {
            return .failure(ValidationError(field: "icd10-yibao-2.0.tsv", code: "catalogue.missing",
                                            zh: "找不到诊断编码库 icd10-yibao-2.0.tsv（安装不完整）。",
                                            en: "the diagnosis catalogue icd10-yibao-2.0.tsv is missing (an incomplete install)."))
        }
        return .success(DiagnosisCatalogue(tsv: String(decoding: data, as: UTF8.self)))
    }()

    /// Reads `code<TAB>name` lines; `#` lines and the header are skipped.
    package init(tsv: String) {
        var initialsOf: [Character: String] = [:]
        var entries: [Entry] = []
        for line in tsv.split(separator: "\n") where !line.hasPrefix("#") && line != "code\tname" {
            let parts = line.split(separator: "\t", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = String(parts[1]).trimmingCharacters(in: .whitespaces)
            entries.append(Entry(code: String(parts[0]), name: name, initials: Self.initials(name, cache: &initialsOf)))
        }
        self.entries = entries
        byCode = Dictionary(entries.enumerated().map { ($0.element.code.uppercased(), $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    package func entry(code: String) -> Entry? {
        byCode[code.trimmingCharacters(in: .whitespaces).uppercased()].map { entries[$0] }
    }

    /// The entries a query finds, best first: a code (or its beginning), pinyin initials, or
    /// words of the name; at most `limit`.
    package func search(_ text: String, limit: Int = 20) -> [Entry] {
        let typed = text.trimmingCharacters(in: .whitespaces)
        guard !typed.isEmpty, typed.count <= 40 else { return [] }
        let lower = typed.lowercased(), upper = typed.uppercased()
        let looksLikeCode = lower.first.map { $0.isASCII && $0.isLetter } == true && lower.dropFirst().first.map { $0.isNumber } == true
        let initialsOnly = lower.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
        var ranked: [(rank: Int, index: Int)] = []
        for (i, e) in entries.enumerated() {
            var rank: Int?
            if looksLikeCode {
                if e.code.hasPrefix(upper) { rank = e.code.count }
            } else if initialsOnly {
                if let r = e.initials.range(of: lower) { rank = (r.lowerBound == e.initials.startIndex ? 0 : 50) + e.name.count }
            } else if let r = e.name.range(of: typed) {
                rank = (r.lowerBound == e.name.startIndex ? 0 : 50) + e.name.count
            }
            if let rank { ranked.append((rank, i)) }
        }
        return ranked.sorted { $0.rank != $1.rank ? $0.rank < $1.rank : $0.index < $1.index }.prefix(limit).map { entries[$0.index] }
    }

    /// Pinyin initials by ICU's Han-Latin transform, one character at a time (cached).
    static func initials(_ name: String, cache: inout [Character: String]) -> String {
        var out = ""
        for ch in name {
            if ch.isASCII {
                if ch.isLetter || ch.isNumber { out += ch.lowercased() }
                continue
            }
            if let known = cache[ch] { out += known; continue }
            var initial = ""
            if ch.unicodeScalars.first?.properties.isIdeographic == true,
               let latin = String(ch).applyingTransform(.toLatin, reverse: false)?.applyingTransform(.stripDiacritics, reverse: false),
               let first = latin.lowercased().first, first.isASCII, first.isLetter {
                initial = String(first)
            }
            cache[ch] = initial
            out += initial
        }
        return out
    }
}
