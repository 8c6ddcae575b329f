// The patient API's hot answers (slot lists, appointments) written straight to bytes, because
// Foundation's JSONEncoder boxes every value and sorts every object's keys, which costs too much
// on the busiest path of the release rush (`clinicmesh bench booking` shows it). Key names still
// come from each type's `CodingKeys`, so the Codable decoding that tests and clients use reads the
// same names.
import Services


/// A value that writes itself as JSON.
package protocol JSONWritable {
    func write(to json: inout JSONText)
}

/// A JSON text under construction. One flag is enough for commas: an opener sets it, a finished
/// value clears it, and a key or array element after a finished value is preceded by a comma.
package struct JSONText {
    private(set) var bytes: [UInt8] = []
    private var first = true

    package init(capacity: Int = 512) { bytes.reserveCapacity(capacity) }

    package static func encode(_ value: some JSONWritable) -> [UInt8] {
        var json = JSONText()
        value.write(to: &json)
        return json.bytes
    }

    package mutating func object(_ body: (inout JSONText) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        first = true
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    /// A key's array of values.
    package mutating func array<K: CodingKey, S: Sequence>(_ key: K, _ values: S) where S.Element: JSONWritable {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        first = true
        for v in values {
            if !first { bytes.append(UInt8(ascii: ",")) }
            v.write(to: &self)
            first = false
        }
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    package mutating func field<K: CodingKey>(_ key: K, _ value: String?) {
        guard let value else { return } // as JSONEncoder: an absent optional is left out
        self.key(key)
        string(value)
        first = false
    }

    package mutating func field<K: CodingKey>(_ key: K, _ value: Int64?) {
        guard let value else { return }
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
        first = false
    }

    private mutating func key<K: CodingKey>(_ key: K) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        string(key.stringValue)
        bytes.append(UInt8(ascii: ":"))
    }

    /// A quoted string: quote, backslash and control characters escaped; other UTF-8 as it is.
    private mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        // The UTF-8 bytes in one buffer (iterating the view byte by byte cost more than the rest).
        s.withUTF8 { utf8 in
            // Almost every string needs no escape: copy it whole.
            guard utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                bytes.append(contentsOf: utf8)
                return
            }
            for b in utf8 {
                switch b {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: Array("\\u00".utf8))
                    bytes.append(hex[Int(b >> 4)])
                    bytes.append(hex[Int(b & 0x0F)])
                default: bytes.append(b)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension PatientError: JSONWritable {
    package func write(to json: inout JSONText) {
        json.object { j in
            j.field(CodingKeys.status, Int64(status))
            j.field(CodingKeys.code, code)
            j.field(CodingKeys.zh, zh)
            j.field(CodingKeys.en, en)
        }
    }
}

extension SlotResource: JSONWritable {
    package func write(to json: inout JSONText) {
        json.object { j in
            j.field(CodingKeys.resourceType, resourceType)
            j.field(CodingKeys.id, id)
            j.field(CodingKeys.schedule, schedule)
            j.field(CodingKeys.department, department)
            j.field(CodingKeys.departmentName, departmentName)
            j.field(CodingKeys.practitioner, practitioner)
            j.field(CodingKeys.practitionerName, practitionerName)
            j.field(CodingKeys.title, title)
            j.field(CodingKeys.titleZh, titleZh)
            j.field(CodingKeys.date, date)
            j.field(CodingKeys.halfDay, halfDay)
            j.field(CodingKeys.start, start)
            j.field(CodingKeys.end, end)
            j.field(CodingKeys.status, status)
            j.field(CodingKeys.opensAtMs, opensAtMs)
        }
    }
}

extension AppointmentResource: JSONWritable {
    package func write(to json: inout JSONText) {
        json.object { j in
            j.field(CodingKeys.resourceType, resourceType)
            j.field(CodingKeys.id, id)
            j.field(CodingKeys.status, status)
            j.field(CodingKeys.statusZh, statusZh)
            j.field(CodingKeys.slot, slot)
            j.field(CodingKeys.department, department)
            j.field(CodingKeys.practitioner, practitioner)
            j.field(CodingKeys.practitionerName, practitionerName)
            j.field(CodingKeys.date, date)
            j.field(CodingKeys.start, start)
            j.field(CodingKeys.end, end)
            j.field(CodingKeys.holdUntilMs, holdUntilMs)
            j.field(CodingKeys.payment, payment)
            j.field(CodingKeys.node, node)
        }
    }
}

extension SlotsAnswer: JSONWritable {
    private enum Key: String, CodingKey { case slots }
    package func write(to json: inout JSONText) { json.object { $0.array(Key.slots, slots) } }
}

extension AppointmentsAnswer: JSONWritable {
    private enum Key: String, CodingKey { case appointments }
    package func write(to json: inout JSONText) { json.object { $0.array(Key.appointments, appointments) } }
}
