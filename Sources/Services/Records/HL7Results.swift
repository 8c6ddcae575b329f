import Domain
import Foundation

/// Why an HL7 file was not imported: where (message, segment, field) and what, in both languages.
package struct HL7Problem: Error, Sendable, Equatable {
    package var code: String
    package var zh: String
    package var en: String
}

/// Result messages in HL7 v2 (ORU^R01, versions 2.x) as a lab system sends them: one or more
/// messages per file, each with a PID and one OBR per order (OBR-2 is this system's order id, the
/// placer order number), the OBX results under it and NTE comments. Anything malformed refuses
/// the whole file, so a file is imported whole or not at all.
package enum HL7Results {
    package static let maxBytes = 5 << 20

    package static func parse(_ data: Data) throws(HL7Problem) -> [ReportDraft] {
        guard data.count <= maxBytes else {
            throw HL7Problem(code: "hl7.too_large", zh: "文件过大（超过 5 MB）。", en: "the file is larger than 5 MB.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw HL7Problem(code: "hl7.encoding", zh: "文件不是 UTF-8 编码（MSH-18 应为 UNICODE UTF-8）。", en: "the file is not UTF-8 (MSH-18 should be UNICODE UTF-8).")
        }
        let lines = text.split(whereSeparator: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }).map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        // Batch envelopes (FHS, BHS, BTS, FTS) carry nothing a report needs.
        let segments = lines.filter { !["FHS", "BHS", "BTS", "FTS"].contains(String($0.prefix(3))) }
        guard let first = segments.first, first.hasPrefix("MSH") else {
            throw HL7Problem(code: "hl7.no_msh", zh: "文件不以 MSH 段开头，不是 HL7 v2 消息。", en: "the file does not begin with an MSH segment; it is not an HL7 v2 message.")
        }
        var messages: [[(number: Int, text: String)]] = []
        for (i, s) in segments.enumerated() {
            if s.hasPrefix("MSH") { messages.append([]) }
            messages[messages.count - 1].append((i + 1, s))
        }
        var drafts: [ReportDraft] = []
        for (m, message) in messages.enumerated() {
            drafts += try parseMessage(message, number: m + 1)
        }
        return drafts
    }

    struct Separators {
        var field: Character = "|", component: Character = "^", repetition: Character = "~", escape: Character = "\\", subcomponent: Character = "&"
    }

    static func parseMessage(_ segments: [(number: Int, text: String)], number m: Int) throws(HL7Problem) -> [ReportDraft] {
        func problem(_ seg: Int, _ field: String, _ zh: String, _ en: String) -> HL7Problem {
            HL7Problem(code: "hl7.malformed", zh: "第 \(m) 条消息第 \(seg) 段 \(field)：\(zh)", en: "message \(m), segment \(seg), \(field): \(en)")
        }
        let head = segments[0]
        let chars = Array(head.text)
        guard chars.count > 8 else { throw problem(head.number, "MSH", "MSH 段不完整。", "the MSH segment is incomplete.") }
        var sep = Separators()
        sep.field = chars[3]
        let encoding = Array(chars[4...].prefix { $0 != sep.field })
        guard encoding.count >= 4, Set(encoding + [sep.field]).count == encoding.count + 1 else {
            throw problem(head.number, "MSH-2", "编码字符应为 4 个不同的字符（如 ^~\\&）。", "the encoding characters must be 4 distinct characters (such as ^~\\&).")
        }
        sep.component = encoding[0]; sep.repetition = encoding[1]; sep.escape = encoding[2]; sep.subcomponent = encoding[3]
        // MSH-1 is the separator itself, so MSH-n is at index n - 1.
        let header = head.text.split(separator: sep.field, omittingEmptySubsequences: false).map(String.init)
        func msh(_ n: Int) -> String { header.count > n - 1 ? header[n - 1] : "" }
        let type = msh(9).split(separator: sep.component, omittingEmptySubsequences: false).map(String.init)
        guard type.count >= 2, type[0] == "ORU", type[1] == "R01" else {
            throw HL7Problem(code: "hl7.message_type", zh: "第 \(m) 条消息的类型（MSH-9）是 \(String(msh(9).prefix(20)))，只接收检验结果 ORU^R01。",
                             en: "message \(m) is of type (MSH-9) \(String(msh(9).prefix(20))); only result messages ORU^R01 are taken.")
        }
        let control = msh(10)
        guard !control.isEmpty, control.count <= 50 else {
            throw problem(head.number, "MSH-10", "缺少消息控制号（或超过 50 字符）。", "the message control id is missing (or longer than 50 characters).")
        }
        guard msh(12).hasPrefix("2.") else {
            throw problem(head.number, "MSH-12", "版本应为 HL7 2.x。", "the version must be HL7 2.x.")
        }
        let sender = first(msh(4), sep).isEmpty ? first(msh(3), sep) : first(msh(4), sep)

        var patient: String?
        var drafts: [ReportDraft] = []
        for seg in segments.dropFirst() {
            let f = seg.text.split(separator: sep.field, omittingEmptySubsequences: false).map(String.init)
            func field(_ n: Int) -> String { f.count > n ? f[n] : "" }
            switch f[0] {
            case "PID":
                guard patient == nil else { throw problem(seg.number, "PID", "一条消息只能有一个 PID 段。", "a message has one PID segment.") }
                let id = unescape(first(field(3).split(separator: sep.repetition, omittingEmptySubsequences: false).first.map(String.init) ?? "", sep), sep)
                guard !id.isEmpty, id.count <= 80 else { throw problem(seg.number, "PID-3", "缺少患者标识。", "the patient identifier is missing.") }
                patient = id
            case "OBR":
                guard let patient else { throw problem(seg.number, "OBR", "OBR 段之前缺少 PID 段。", "an OBR segment comes before any PID segment.") }
                let order = unescape(first(field(2), sep), sep)
                guard !order.isEmpty, order.count <= 80 else {
                    throw problem(seg.number, "OBR-2", "缺少申请单号（placer order number）。", "the placer order number is missing.")
                }
                let item = unescape(first(field(4), sep), sep)
                guard !item.isEmpty else { throw problem(seg.number, "OBR-4", "缺少检验项目编码。", "the universal service identifier is missing.") }
                let named = [sender, control, String(drafts.count + 1)].joined(separator: ".")
                let key = "hl7." + String(named.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "-_.".contains($0) ? $0 : "_" })
                drafts.append(ReportDraft(order: order, patient: patient, item: item, observations: [], key: String(key.prefix(120)), source: "hl7"))
            case "OBX":
                guard !drafts.isEmpty else { throw problem(seg.number, "OBX", "OBX 段之前缺少 OBR 段。", "an OBX segment comes before any OBR segment.") }
                let valueType = field(2)
                guard ["NM", "ST", "TX", "FT"].contains(valueType) else {
                    throw problem(seg.number, "OBX-2", "不支持的值类型 \(String(valueType.prefix(5)))（接收 NM、ST、TX、FT）。",
                                  "value type \(String(valueType.prefix(5))) is not taken (NM, ST, TX and FT are).")
                }
                let id = field(3).split(separator: sep.component, omittingEmptySubsequences: false).map { unescape(String($0), sep) }
                guard let code = id.first, !code.isEmpty else { throw problem(seg.number, "OBX-3", "缺少结果项目编码。", "the observation identifier is missing.") }
                let value = unescape(field(5), sep)
                if valueType == "NM", Double(value.trimmingCharacters(in: .whitespaces)) == nil {
                    throw problem(seg.number, "OBX-5", "NM 类型的结果值不是数字。", "an NM value is not a number.")
                }
                let flag: AbnormalFlag?
                switch field(8) {
                case "", "N": flag = nil
                case "L", "LL": flag = .low
                case "H", "HH": flag = .high
                case "A", "AA": flag = .abnormal
                default: throw problem(seg.number, "OBX-8", "不认识的异常标志 \(String(field(8).prefix(5)))（接收 N、L、LL、H、HH、A、AA）。",
                                       "abnormal flag \(String(field(8).prefix(5))) is not known (N, L, LL, H, HH, A and AA are).")
                }
                switch field(11) {
                case "F", "C": break
                case "P": throw problem(seg.number, "OBX-11", "初步结果（P）不导入，请发送审核后的最终结果。", "preliminary results (P) are not imported; send the verified final result.")
                default: throw problem(seg.number, "OBX-11", "结果状态应为 F（最终）或 C（更正）。", "the result status must be F (final) or C (corrected).")
                }
                let range = unescape(field(7), sep)
                let observation = Observation(code: code, name: id.count > 1 ? id[1] : code, value: value, unit: unescape(first(field(6), sep), sep), range: range,
                                              flag: flag ?? (valueType == "NM" ? nil : .normal))
                drafts[drafts.count - 1].observations.append(observation)
            case "NTE":
                guard !drafts.isEmpty else { continue }
                let comment = unescape(field(3), sep)
                let c = drafts[drafts.count - 1].conclusion
                drafts[drafts.count - 1].conclusion = c.isEmpty ? comment : c + "\n" + comment
            default:
                continue
            }
        }
        guard patient != nil else { throw problem(segments[0].number, "PID", "消息中没有 PID 段。", "the message has no PID segment.") }
        guard !drafts.isEmpty else { throw problem(segments[0].number, "OBR", "消息中没有 OBR 段（没有结果）。", "the message has no OBR segment (no results).") }
        for d in drafts where d.observations.isEmpty {
            throw HL7Problem(code: "hl7.malformed", zh: "第 \(m) 条消息中申请单 \(String(d.order.prefix(40))) 没有 OBX 结果。",
                             en: "message \(m): order \(String(d.order.prefix(40))) has no OBX results.")
        }
        return drafts
    }

    static func first(_ field: String, _ sep: Separators) -> String {
        String(field.split(separator: sep.component, omittingEmptySubsequences: false).first ?? "")
    }

    /// HL7 escape sequences: \F\ \S\ \T\ \R\ \E\ and \.br\ (a line break); others are kept as written.
    static func unescape(_ text: String, _ sep: Separators) -> String {
        guard text.contains(sep.escape) else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.firstIndex(of: sep.escape) {
            out += rest[..<start]
            let after = rest.index(after: start)
            guard let end = rest[after...].firstIndex(of: sep.escape) else { out += rest[start...]; return out }
            switch rest[after..<end] {
            case "F": out.append(sep.field)
            case "S": out.append(sep.component)
            case "T": out.append(sep.subcomponent)
            case "R": out.append(sep.repetition)
            case "E": out.append(sep.escape)
            case ".br": out += "\n"
            default: out += rest[start...end]
            }
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }
}
