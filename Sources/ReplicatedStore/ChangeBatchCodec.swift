import ClinicErrors
import LZ4
import ReplicatedCore

/// The binary form of a `ChangeBatch`, as it goes over the wire (usually LZ4-compressed).
///
/// ```
/// u8      format version (1)
/// varint  string count, then each string as varint length + UTF-8 bytes
/// varint  base count, then each: node (string index), incarnation, seq          (varints)
/// varint  coverage count, then each: node (string index), incarnation, seq      (varints)
/// varint  change count, then each:
///         table, key, column (string indexes), value, hlc (u64 LE), node (string index),
///         incarnation, seq (varints)
/// value:  u8 tag (0 null, 1 integer as zigzag varint, 2 real as u64 LE bits,
///         3 text as string index, 4 blob as varint length + bytes)
/// ```
/// Strings that repeat (table names, keys, columns, node ids) are written once. Decoding checks
/// every count and length against the bytes that remain, so no input can trap or over-allocate.
public enum ChangeBatchCodec {
    public static let formatVersion: UInt8 = 1

    /// Why a batch did not decode; the code names which check failed.
    public typealias DecodingError = ClinicError<ChangeBatchDecodingErrorCode>

    public static func encode(_ batch: ChangeBatch) -> [UInt8] {
        var strings: [String: Int] = [:]
        var stringList: [String] = []
        func index(_ s: String) -> Int {
            if let i = strings[s] { return i }
            strings[s] = stringList.count
            stringList.append(s)
            return stringList.count - 1
        }
        var body = ByteWriter()
        for vector in [batch.base, batch.coverage] {
            let entries = vector.sortedEntries
            body.varint(UInt64(entries.count))
            for entry in entries {
                body.varint(UInt64(index(entry.origin.node)))
                body.varint(UInt64(entry.origin.incarnation))
                body.varint(entry.seq)
            }
        }
        body.varint(UInt64(batch.changes.count))
        for change in batch.changes {
            body.varint(UInt64(index(change.table)))
            body.varint(UInt64(index(change.key)))
            body.varint(UInt64(index(change.column)))
            switch change.value {
            case .null: body.byte(0)
            case .integer(let v): body.byte(1); body.varint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
            case .real(let v): body.byte(2); body.fixed64(v.bitPattern)
            case .text(let v): body.byte(3); body.varint(UInt64(index(v)))
            case .blob(let v): body.byte(4); body.varint(UInt64(v.count)); body.bytes(v)
            }
            body.fixed64(change.version.hlc.rawValue)
            body.varint(UInt64(index(change.version.origin.node)))
            body.varint(UInt64(change.version.origin.incarnation))
            body.varint(change.version.seq)
        }
        var out = ByteWriter()
        out.byte(formatVersion)
        out.varint(UInt64(stringList.count))
        for s in stringList {
            let utf8 = Array(s.utf8)
            out.varint(UInt64(utf8.count))
            out.bytes(utf8)
        }
        out.bytes(body.buffer)
        return out.buffer
    }

    public static func decode(_ bytes: [UInt8]) throws -> ChangeBatch {
        var reader = ByteReader(bytes)
        let version = try reader.byte()
        guard version == formatVersion else {
            throw DecodingError(.unsupportedFormat, zh: "变更批次格式 \(version) 不受支持（应为 \(formatVersion)）",
                                en: "change batch format \(version) is not supported (expected \(formatVersion))")
        }
        let stringCount = try reader.count(minimumBytesEach: 1)
        var strings: [String] = []
        strings.reserveCapacity(stringCount)
        for _ in 0..<stringCount {
            let length = try reader.count(minimumBytesEach: 1)
            let raw = try reader.bytes(length)
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw DecodingError(.invalidUTF8, zh: "第 \(strings.count) 个字符串不是有效的 UTF-8", en: "string \(strings.count) is not valid UTF-8")
            }
            strings.append(s)
        }
        func string() throws -> String {
            let i = try reader.varint()
            guard i < UInt64(strings.count) else {
                throw DecodingError(.stringIndexOutOfRange, zh: "字符串序号 \(i) 超出范围（共 \(strings.count) 个）",
                                    en: "string index \(i) is out of range (\(strings.count) strings)")
            }
            return strings[Int(i)]
        }
        func incarnation() throws -> UInt32 {
            let v = try reader.varint()
            guard let i = UInt32(exactly: v) else { throw DecodingError(.incarnationOutOfRange, zh: "incarnation \(v) 超出范围", en: "incarnation \(v) is out of range") }
            return i
        }
        func vector() throws -> VersionVector {
            var vector = VersionVector()
            for _ in 0..<(try reader.count(minimumBytesEach: 3)) {
                let origin = OriginID(node: try string(), incarnation: try incarnation())
                vector[origin] = max(vector[origin], try reader.varint())
            }
            return vector
        }
        let base = try vector()
        let coverage = try vector()
        let changeCount = try reader.count(minimumBytesEach: 15)
        var changes: [Change] = []
        changes.reserveCapacity(changeCount)
        for _ in 0..<changeCount {
            let table = try string(), key = try string(), column = try string()
            let value: ColumnValue
            switch try reader.byte() {
            case 0: value = .null
            case 1:
                let z = try reader.varint()
                value = .integer(Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1))
            case 2: value = .real(Double(bitPattern: try reader.fixed64()))
            case 3: value = .text(try string())
            case 4: value = .blob(try reader.bytes(try reader.count(minimumBytesEach: 1)))
            case let tag: throw DecodingError(.unknownValueTag, zh: "未知的值标记 \(tag)", en: "unknown value tag \(tag)")
            }
            let hlc = HLCTimestamp(rawValue: try reader.fixed64())
            let origin = OriginID(node: try string(), incarnation: try incarnation())
            let seq = try reader.varint()
            guard seq > 0 else { throw DecodingError(.zeroSequence, zh: "序号 0 无效", en: "sequence number 0 is not valid") }
            changes.append(Change(table: table, key: key, column: column, value: value,
                                  version: ChangeVersion(hlc: hlc, origin: origin, seq: seq)))
        }
        guard reader.isAtEnd else {
            throw DecodingError(.trailingBytes, zh: "最后一个变更之后多出 \(reader.remaining) 字节", en: "\(reader.remaining) unexpected bytes after the last change")
        }
        return ChangeBatch(changes: changes, base: base, coverage: coverage)
    }

    public static func encodeCompressed(_ batch: ChangeBatch) throws -> [UInt8] {
        try LZ4Block.compress(encode(batch))
    }

    public static func decodeCompressed(_ bytes: [UInt8]) throws -> ChangeBatch {
        try decode(LZ4Block.decompress(bytes))
    }
}

struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func byte(_ b: UInt8) { buffer.append(b) }
    mutating func bytes(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            buffer.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.append(UInt8(v))
    }
    mutating func fixed64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
    mutating func fixed32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}

struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset == bytes.count }

    private func truncated(_ what: String) -> ChangeBatchCodec.DecodingError {
        ChangeBatchCodec.DecodingError(.truncated, zh: "输入在第 \(offset) 字节处截断（共 \(bytes.count) 字节）",
                                       en: "truncated input: \(what) at byte \(offset) of \(bytes.count)")
    }

    mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw truncated("expected a byte") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else { throw truncated("expected \(count) bytes") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        for shift in stride(from: 0, through: 63, by: 7) {
            let b = try byte()
            if shift == 63 && b > 1 {
                throw ChangeBatchCodec.DecodingError(.varintOverflow, zh: "第 \(offset) 字节处的 varint 超出 64 位", en: "varint overflows 64 bits at byte \(offset)")
            }
            result |= UInt64(b & 0x7f) << UInt64(shift)
            if b & 0x80 == 0 { return result }
        }
        throw ChangeBatchCodec.DecodingError(.varintTooLong, zh: "第 \(offset) 字节处的 varint 超过 10 字节", en: "varint longer than 10 bytes at byte \(offset)")
    }

    /// A count of items that each take at least `minimumBytesEach` bytes: refused if the input
    /// could not possibly hold that many, so a lying count cannot make us allocate.
    mutating func count(minimumBytesEach: Int) throws -> Int {
        let v = try varint()
        guard v <= UInt64(remaining / max(1, minimumBytesEach)) else {
            throw ChangeBatchCodec.DecodingError(
                .countTooLarge, zh: "第 \(offset) 字节处的数量 \(v) 超出剩余 \(remaining) 字节所能容纳",
                en: "count \(v) at byte \(offset) exceeds what the remaining \(remaining) bytes can hold")
        }
        return Int(v)
    }

    mutating func fixed64() throws -> UInt64 {
        let b = try bytes(8)
        return b.enumerated().reduce(0) { $0 | UInt64($1.element) << UInt64($1.offset * 8) }
    }

    mutating func fixed32() throws -> UInt32 {
        let b = try bytes(4)
        return b.enumerated().reduce(0) { $0 | UInt32($1.element) << UInt32($1.offset * 8) }
    }
}

/// What `ChangeBatchCodec.decode` refused.
public enum ChangeBatchDecodingErrorCode: String, ClinicErrorCode {
    case unsupportedFormat = "batch.unsupported_format"
    case invalidUTF8 = "batch.invalid_utf8"
    case stringIndexOutOfRange = "batch.string_index_out_of_range"
    case incarnationOutOfRange = "batch.incarnation_out_of_range"
    case unknownValueTag = "batch.unknown_value_tag"
    case zeroSequence = "batch.zero_sequence"
    case trailingBytes = "batch.trailing_bytes"
    case truncated = "batch.truncated"
    case varintOverflow = "batch.varint_overflow"
    case varintTooLong = "batch.varint_too_long"
    case countTooLarge = "batch.count_too_large"
}
