import LZ4
import NIOCore

/// Frames and the binary message codec. The layout is documented in `WIRE.md` beside this file;
/// keep the two in step.
///
/// Everything here is pure: bytes in, messages (or a `MeshProtocolError`) out. Decoding never
/// traps: every length is checked against the bytes that remain before anything is read or
/// allocated, integers are read with `ByteBuffer`'s checked readers, and no arithmetic can overflow.
public enum MeshWire {
    /// The frame format version this node writes and the only one it reads.
    public static let frameVersion: UInt8 = 1
    /// The protocol version carried in `Hello`.
    public static let protocolVersion: UInt16 = 1
    /// `u32 length | u8 version | u8 type | u8 flags`.
    public static let headerSize = 7
    /// Bytes after the length field that every frame has: version, type, flags.
    static let fixedAfterLength = 3
    public static let defaultMaximumFrameSize = 8 * 1024 * 1024
    /// No configuration can raise the frame limit above this (the LZ4 block limit, 64 MiB).
    public static let largestMaximumFrameSize = LZ4Block.maximumUncompressedSize
    /// Flag bit 0: the payload is an `LZ4Block` (u32 LE uncompressed length + raw LZ4 block).
    public static let flagLZ4: UInt8 = 0x01
    static let reservedFlagsMask: UInt8 = 0xfe

    /// How to write frames.
    public struct EncodingOptions: Sendable, Hashable {
        /// The largest value of the length field this side writes (and, in the transport, accepts).
        public var maximumFrameSize: Int
        /// Payloads at least this long are LZ4-compressed when that makes them smaller; `nil` never compresses.
        public var compressionThreshold: Int?

        public init(maximumFrameSize: Int = MeshWire.defaultMaximumFrameSize, compressionThreshold: Int? = 1024) {
            self.maximumFrameSize = maximumFrameSize
            self.compressionThreshold = compressionThreshold
        }
    }

    // MARK: - Frames

    /// A frame whose header has been checked; the payload is still compressed if `flags` says so.
    public struct Frame: Sendable, Hashable {
        public var version: UInt8
        public var type: MeshMessageType
        public var flags: UInt8
        public var payload: ByteBuffer
    }

    /// Takes one whole frame off the front of `buffer`, or returns `nil` (consuming nothing) if
    /// more bytes are needed. Header faults are reported as soon as the 7 header bytes are there,
    /// without waiting for a payload that may never come.
    public static func parseFrame(_ buffer: inout ByteBuffer, maximumFrameSize: Int) throws(MeshProtocolError) -> Frame? {
        let maximumFrameSize = min(maximumFrameSize, largestMaximumFrameSize)
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= fixedAfterLength else {
            throw MeshProtocolError(.frameTooShort, zh: "帧长度 \(length) 小于 3", en: "frame length \(length) is below the 3 header bytes that must follow it")
        }
        guard UInt64(length) <= UInt64(max(maximumFrameSize, fixedAfterLength)) else {
            throw MeshProtocolError(
                .frameTooLarge, zh: "帧长度 \(length) 超过上限 \(maximumFrameSize)", en: "frame length \(length) exceeds the \(maximumFrameSize)-byte limit")
        }
        guard buffer.readableBytes >= headerSize,
            let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self),
            let typeByte = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self),
            let flags = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt8.self)
        else { return nil }
        guard version == frameVersion else {
            throw MeshProtocolError(
                .unsupportedFrameVersion, zh: "帧版本 \(version) 不受支持（本节点为 \(frameVersion)）", en: "frame version \(version) is not supported (this node speaks \(frameVersion))")
        }
        guard let type = MeshMessageType(rawValue: typeByte) else {
            throw MeshProtocolError(.unknownMessageType, zh: "未知消息类型 \(typeByte)", en: "unknown message type \(typeByte)")
        }
        guard flags & reservedFlagsMask == 0 else {
            throw MeshProtocolError(.reservedFlags, zh: "保留标志位被置位：0x\(String(flags, radix: 16))", en: "reserved flag bits set: 0x\(String(flags, radix: 16))")
        }
        let payloadLength = Int(length) - fixedAfterLength
        guard buffer.readableBytes - headerSize >= payloadLength else { return nil }
        buffer.moveReaderIndex(forwardBy: headerSize)
        guard let payload = buffer.readSlice(length: payloadLength) else { return nil }  // cannot fail: checked above
        return Frame(version: version, type: type, flags: flags, payload: payload)
    }

    /// Decodes a checked frame into its message, decompressing first if flagged.
    public static func decodeMessage(_ frame: Frame, maximumFrameSize: Int) throws(MeshProtocolError) -> MeshMessage {
        let maximumFrameSize = min(maximumFrameSize, largestMaximumFrameSize)
        var payload = frame.payload
        if frame.flags & flagLZ4 != 0 {
            let compressed = Array(payload.readableBytesView)
            guard compressed.count >= 4 else {
                throw MeshProtocolError(.decompressionFailed, zh: "LZ4 负载短于 4 字节", en: "LZ4 payload shorter than its 4-byte length")
            }
            let declared = Int(compressed[0]) | Int(compressed[1]) << 8 | Int(compressed[2]) << 16 | Int(compressed[3]) << 24
            guard declared <= maximumFrameSize else {
                throw MeshProtocolError(
                    .decompressionFailed, zh: "LZ4 解压后长度 \(declared) 超过上限 \(maximumFrameSize)", en: "LZ4 payload declares \(declared) bytes, over the \(maximumFrameSize)-byte limit")
            }
            do {
                payload = ByteBuffer(bytes: try LZ4Block.decompress(compressed))
            } catch {
                throw MeshProtocolError(.decompressionFailed, zh: "LZ4 解压失败", en: "LZ4 decompression failed", cause: error)
            }
        }
        var reader = WireReader(buffer: payload, type: frame.type)
        let message = try reader.readMessage()
        try reader.expectEnd()
        return message
    }

    /// Parses and decodes one message, or returns `nil` if more bytes are needed.
    public static func decode(_ buffer: inout ByteBuffer, maximumFrameSize: Int = defaultMaximumFrameSize) throws(MeshProtocolError) -> MeshMessage? {
        guard let frame = try parseFrame(&buffer, maximumFrameSize: maximumFrameSize) else { return nil }
        return try decodeMessage(frame, maximumFrameSize: maximumFrameSize)
    }

    /// Appends one whole frame for `message` to `out`.
    public static func encode(_ message: MeshMessage, into out: inout ByteBuffer, options: EncodingOptions = .init()) throws(MeshProtocolError) {
        var payload = ByteBuffer()
        try WireWriter.write(message, into: &payload)
        // The limit applies to the uncompressed payload too: the receiver refuses to inflate more.
        let limit = min(options.maximumFrameSize, largestMaximumFrameSize)
        guard payload.readableBytes + fixedAfterLength <= limit else {
            throw MeshProtocolError(
                .messageTooLarge, zh: "\(message.type) 消息编码后 \(payload.readableBytes + fixedAfterLength) 字节，超过帧上限 \(limit)", en: "\(message.type) message encodes to \(payload.readableBytes + fixedAfterLength) bytes, over the \(limit)-byte frame limit")
        }
        var flags: UInt8 = 0
        if let threshold = options.compressionThreshold, payload.readableBytes >= threshold,
            let compressed = try? LZ4Block.compress(Array(payload.readableBytesView)),
            compressed.count < payload.readableBytes
        {
            payload = ByteBuffer(bytes: compressed)
            flags |= flagLZ4
        }
        let length = payload.readableBytes + fixedAfterLength
        out.reserveCapacity(minimumWritableBytes: headerSize + payload.readableBytes)
        out.writeInteger(UInt32(length))
        out.writeInteger(frameVersion)
        out.writeInteger(message.type.rawValue)
        out.writeInteger(flags)
        out.writeImmutableBuffer(payload)
    }

    /// The size of `message`'s payload before compression, computed without encoding it.
    public static func uncompressedPayloadSize(of message: MeshMessage) -> Int {
        func string(_ text: String) -> Int { 2 + text.utf8.count }
        func entries(_ list: [VersionEntry]) -> Int { 4 + list.reduce(0) { $0 + string($1.nodeID) + 12 } }
        switch message {
        case .hello(let hello): return 6 + string(hello.nodeID) + string(hello.clusterID)
        case .heartbeat: return 24
        case .heartbeatAck: return 40
        case .versionVector(let vector): return entries(vector.entries)
        case .changeBatch(let batch): return entries(batch.coverage) + 4 + batch.batch.count
        case .snapshotRequest: return 16
        case .snapshotChunk(let chunk): return 21 + chunk.bytes.count
        case .raft(let bytes): return 4 + bytes.count
        case .forward(let forward): return 12 + forward.bytes.count
        case .error(let error): return 2 + string(error.message)
        }
    }

    /// Throws `messageTooLarge` if `message` cannot be sent in one frame under `maximumFrameSize`
    /// (or has a string field over 65,535 bytes). Cheap: nothing is encoded.
    public static func checkFits(_ message: MeshMessage, maximumFrameSize: Int) throws(MeshProtocolError) {
        let limit = min(maximumFrameSize, largestMaximumFrameSize)
        let size = uncompressedPayloadSize(of: message) + fixedAfterLength
        guard size <= limit else {
            throw MeshProtocolError(
                .messageTooLarge, zh: "\(message.type) 消息编码后 \(size) 字节，超过帧上限 \(limit)", en: "\(message.type) message encodes to \(size) bytes, over the \(limit)-byte frame limit")
        }
        let strings: [String]
        switch message {
        case .hello(let hello): strings = [hello.nodeID, hello.clusterID]
        case .versionVector(let vector): strings = vector.entries.map(\.nodeID)
        case .changeBatch(let batch): strings = batch.coverage.map(\.nodeID)
        case .error(let error): strings = [error.message]
        default: strings = []
        }
        if strings.contains(where: { $0.utf8.count > Int(UInt16.max) }) {
            throw MeshProtocolError(.messageTooLarge, zh: "\(message.type) 消息含超过 65535 字节的字符串", en: "\(message.type) message has a string over 65535 bytes")
        }
    }

    /// Convenience: one message as the bytes of one frame.
    public static func encode(_ message: MeshMessage, options: EncodingOptions = .init()) throws(MeshProtocolError) -> ByteBuffer {
        var out = ByteBuffer()
        try encode(message, into: &out, options: options)
        return out
    }
}

// MARK: - Reading

/// Checked reads of the wire primitives from one message's payload.
struct WireReader {
    var buffer: ByteBuffer
    let type: MeshMessageType

    init(buffer: ByteBuffer, type: MeshMessageType) {
        self.buffer = buffer
        self.type = type
    }

    func fail(_ what: String) -> MeshProtocolError {
        MeshProtocolError(
            .malformedPayload, zh: "\(self.type) 消息无法解码：\(what)", en: "\(self.type) message does not decode: \(what) (\(self.buffer.readableBytes) bytes left)")
    }

    mutating func integer<T: FixedWidthInteger>(_ field: String, as: T.Type = T.self) throws(MeshProtocolError) -> T {
        guard let value = self.buffer.readInteger(as: T.self) else { throw self.fail("\(field) truncated") }
        return value
    }

    mutating func bool(_ field: String) throws(MeshProtocolError) -> Bool {
        switch try self.integer(field, as: UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw self.fail("\(field) is \(other), not a bool (0 or 1)")
        }
    }

    mutating func string(_ field: String) throws(MeshProtocolError) -> String {
        let length = Int(try self.integer("\(field) length", as: UInt16.self))
        guard length <= self.buffer.readableBytes, let bytes = self.buffer.readBytes(length: length) else {
            throw self.fail("\(field) declares \(length) bytes")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw self.fail("\(field) is not valid UTF-8") }
        return text
    }

    mutating func bytes(_ field: String) throws(MeshProtocolError) -> [UInt8] {
        let length = Int(try self.integer("\(field) length", as: UInt32.self))
        guard length <= self.buffer.readableBytes, let bytes = self.buffer.readBytes(length: length) else {
            throw self.fail("\(field) declares \(length) bytes")
        }
        return bytes
    }

    /// A list count, refused if even the smallest elements could not fit in what remains.
    mutating func count(_ field: String, minimumElementSize: Int) throws(MeshProtocolError) -> Int {
        let count = Int(try self.integer("\(field) count", as: UInt32.self))
        guard count <= self.buffer.readableBytes / minimumElementSize else {
            throw self.fail("\(field) declares \(count) entries")
        }
        return count
    }

    mutating func versionEntries(_ field: String) throws(MeshProtocolError) -> [VersionEntry] {
        // Smallest entry: 2-byte empty string length + 4 + 8.
        let count = try self.count(field, minimumElementSize: 14)
        var entries: [VersionEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            entries.append(
                VersionEntry(
                    nodeID: try self.string("\(field).nodeID"),
                    incarnation: try self.integer("\(field).incarnation"),
                    seq: try self.integer("\(field).seq")))
        }
        return entries
    }

    mutating func heartbeat() throws(MeshProtocolError) -> Heartbeat {
        Heartbeat(
            hlc: try self.integer("hlc"), wallMillis: try self.integer("wallMillis"),
            sentMonotonicNanos: try self.integer("sentMonotonicNanos"))
    }

    mutating func readMessage() throws(MeshProtocolError) -> MeshMessage {
        switch self.type {
        case .hello:
            return .hello(
                Hello(
                    protocolVersion: try self.integer("protocolVersion"),
                    schemaVersion: try self.integer("schemaVersion"),
                    nodeID: try self.string("nodeID"),
                    clusterID: try self.string("clusterID")))
        case .heartbeat:
            return .heartbeat(try self.heartbeat())
        case .heartbeatAck:
            return .heartbeatAck(
                HeartbeatAck(echo: try self.heartbeat(), hlc: try self.integer("hlc"), wallMillis: try self.integer("wallMillis")))
        case .versionVector:
            return .versionVector(VersionVector(entries: try self.versionEntries("entries")))
        case .changeBatch:
            return .changeBatch(ChangeBatch(coverage: try self.versionEntries("coverage"), batch: try self.bytes("batch")))
        case .snapshotRequest:
            return .snapshotRequest(SnapshotRequest(snapshotID: try self.integer("snapshotID"), resumeOffset: try self.integer("resumeOffset")))
        case .snapshotChunk:
            return .snapshotChunk(
                SnapshotChunk(
                    snapshotID: try self.integer("snapshotID"), offset: try self.integer("offset"),
                    isFinal: try self.bool("isFinal"), bytes: try self.bytes("bytes")))
        case .raft:
            return .raft(try self.bytes("raft"))
        case .forward:
            return .forward(Forward(requestID: try self.integer("requestID"), bytes: try self.bytes("bytes")))
        case .error:
            return .error(MeshErrorMessage(code: .init(rawValue: try self.integer("code")), message: try self.string("message")))
        }
    }

    func expectEnd() throws(MeshProtocolError) {
        guard self.buffer.readableBytes == 0 else { throw self.fail("trailing bytes after the last field") }
    }
}

// MARK: - Writing

enum WireWriter {
    static func string(_ text: String, _ field: String, into out: inout ByteBuffer) throws(MeshProtocolError) {
        let utf8 = text.utf8
        guard utf8.count <= Int(UInt16.max) else {
            throw MeshProtocolError(.messageTooLarge, zh: "字符串字段 \(field) 超过 65535 字节", en: "string field \(field) is over 65535 bytes")
        }
        out.writeInteger(UInt16(utf8.count))
        out.writeBytes(utf8)
    }

    static func bytes(_ bytes: [UInt8], _ field: String, into out: inout ByteBuffer) throws(MeshProtocolError) {
        guard bytes.count <= Int(UInt32.max) else {
            throw MeshProtocolError(.messageTooLarge, zh: "字节字段 \(field) 过长", en: "bytes field \(field) is too long")
        }
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
    }

    static func versionEntries(_ entries: [VersionEntry], _ field: String, into out: inout ByteBuffer) throws(MeshProtocolError) {
        guard entries.count <= Int(UInt32.max) else {
            throw MeshProtocolError(.messageTooLarge, zh: "列表 \(field) 过长", en: "list \(field) is too long")
        }
        out.writeInteger(UInt32(entries.count))
        for entry in entries {
            try string(entry.nodeID, "\(field).nodeID", into: &out)
            out.writeInteger(entry.incarnation)
            out.writeInteger(entry.seq)
        }
    }

    static func heartbeat(_ heartbeat: Heartbeat, into out: inout ByteBuffer) {
        out.writeInteger(heartbeat.hlc)
        out.writeInteger(heartbeat.wallMillis)
        out.writeInteger(heartbeat.sentMonotonicNanos)
    }

    static func write(_ message: MeshMessage, into out: inout ByteBuffer) throws(MeshProtocolError) {
        switch message {
        case .hello(let hello):
            out.writeInteger(hello.protocolVersion)
            out.writeInteger(hello.schemaVersion)
            try string(hello.nodeID, "nodeID", into: &out)
            try string(hello.clusterID, "clusterID", into: &out)
        case .heartbeat(let beat):
            heartbeat(beat, into: &out)
        case .heartbeatAck(let ack):
            heartbeat(ack.echo, into: &out)
            out.writeInteger(ack.hlc)
            out.writeInteger(ack.wallMillis)
        case .versionVector(let vector):
            try versionEntries(vector.entries, "entries", into: &out)
        case .changeBatch(let batch):
            try versionEntries(batch.coverage, "coverage", into: &out)
            try bytes(batch.batch, "batch", into: &out)
        case .snapshotRequest(let request):
            out.writeInteger(request.snapshotID)
            out.writeInteger(request.resumeOffset)
        case .snapshotChunk(let chunk):
            out.writeInteger(chunk.snapshotID)
            out.writeInteger(chunk.offset)
            out.writeInteger(UInt8(chunk.isFinal ? 1 : 0))
            try bytes(chunk.bytes, "bytes", into: &out)
        case .raft(let raft):
            try bytes(raft, "raft", into: &out)
        case .forward(let forward):
            out.writeInteger(forward.requestID)
            try bytes(forward.bytes, "bytes", into: &out)
        case .error(let error):
            out.writeInteger(error.code.rawValue)
            try string(error.message, "message", into: &out)
        }
    }
}
