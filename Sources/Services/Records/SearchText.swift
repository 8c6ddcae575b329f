import Foundation

/// How notes are cut into search tokens: Chinese text into overlapping pairs of characters (a
/// phrase of two or more characters is then the phrase of its pairs), runs of Latin letters and
/// digits into lowercase words. SQLite's trigram tokenizer cannot find a two-character phrase
/// through its index, and most Chinese medical words are two characters (咳嗽, 发热).
package enum SearchText {
    enum Run: Equatable {
        case han(String)
        case word(String)
    }

    static func runs(_ text: String) -> [Run] {
        var out: [Run] = []
        var han = "", word = ""
        func flush() {
            if !han.isEmpty { out.append(.han(han)); han = "" }
            if !word.isEmpty { out.append(.word(word.lowercased())); word = "" }
        }
        for ch in text {
            if ch.isASCII, ch.isLetter || ch.isNumber {
                if !han.isEmpty { flush() }
                word.append(ch)
            } else if !ch.isASCII, ch.isLetter || ch.isNumber {
                if !word.isEmpty { flush() }
                han.append(ch)
            } else {
                flush()
            }
        }
        flush()
        return out
    }

    static func pairs(_ run: String) -> [String] {
        let chars = Array(run)
        guard chars.count > 1 else { return chars.map(String.init) }
        return (0..<(chars.count - 1)).map { String(chars[$0]) + String(chars[$0 + 1]) }
    }

    /// The tokens a note is indexed under, space-separated.
    package static func indexTokens(_ text: String) -> String {
        runs(text).flatMap { run -> [String] in
            switch run {
            case .han(let s): return pairs(s)
            case .word(let w): return [w]
            }
        }.joined(separator: " ")
    }

    /// An FTS5 query for words typed (every part must be found), nil if nothing searchable was
    /// typed. One Chinese character matches the pairs it begins; a Latin word matches words it begins.
    package static func matchQuery(_ typed: String) -> String? {
        let parts = runs(typed).map { run -> String in
            switch run {
            case .han(let s) where s.count == 1: return "\"\(s)\"*"
            case .han(let s): return "\"" + pairs(s).joined(separator: " ") + "\""
            case .word(let w): return "\"\(w)\"*"
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: " AND ")
    }

    /// The typed words as they are looked for in a note's text (for the snippet).
    package static func terms(_ typed: String) -> [String] {
        runs(typed).map { run in
            switch run {
            case .han(let s): return s
            case .word(let w): return w
            }
        }
    }

    /// A scope token: a value spelled in letters and digits only (the tokenizer splits at anything else).
    package static func scopeToken(_ prefix: String, _ value: String) -> String {
        prefix + value.utf8.map { String(format: "%02x", $0) }.joined()
    }

    /// Where the text matches: about `width` characters around the first match, cut into pieces
    /// marked found or not (the page shows found ones highlighted, all of them escaped).
    package static func snippet(_ text: String, terms: [String], width: Int = 60) -> [(text: String, found: Bool)] {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        let lower = flat.lowercased()
        let wanted = terms.map { $0.lowercased() }.filter { !$0.isEmpty }
        guard let first = wanted.compactMap({ lower.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) else {
            return [(String(flat.prefix(width)), false)]
        }
        let startOffset = max(0, lower.distance(from: lower.startIndex, to: first.lowerBound) - width / 3)
        let window = String(Array(flat).dropFirst(startOffset).prefix(width))
        let windowLower = window.lowercased()
        var pieces: [(String, Bool)] = []
        var rest = Substring(window), restLower = Substring(windowLower)
        while !rest.isEmpty {
            let next = wanted.compactMap { restLower.range(of: $0) }.min { $0.lowerBound < $1.lowerBound }
            guard let hit = next, window.count == windowLower.count else { pieces.append((String(rest), false)); break }
            let before = restLower.distance(from: restLower.startIndex, to: hit.lowerBound)
            let length = restLower.distance(from: hit.lowerBound, to: hit.upperBound)
            if before > 0 { pieces.append((String(rest.prefix(before)), false)) }
            pieces.append((String(rest.dropFirst(before).prefix(length)), true))
            rest = rest.dropFirst(before + length)
            restLower = restLower.dropFirst(before + length)
        }
        if startOffset > 0 { pieces.insert(("…", false), at: 0) }
        if startOffset + window.count < flat.count { pieces.append(("…", false)) }
        return pieces
    }
}
