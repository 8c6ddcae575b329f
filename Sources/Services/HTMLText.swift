/// Text for HTML and XHTML: the five characters that could end a text or an attribute escaped.
package enum HTMLText {
    /// `lineBreaks`: each line break becomes `<br/>` (XHTML narrative keeps a note's lines).
    package static func escaped(_ text: String, lineBreaks: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n" where lineBreaks: out += "<br/>"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
