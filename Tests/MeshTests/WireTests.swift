import Logging
import Mesh
import NIOCore
import NIOEmbedded
import NIOTestUtils
import TestSupport
import Testing

@Suite struct WireRoundTripTests {
    @Test func everyMessageRoundTripsWithAndWithoutCompression() throws {
        var rng = SeededRandom(seed: 42)
        for _ in 0..<50 {
            for message in sampleMessages(using: &rng) {
                for threshold in [nil, 0, 1024] as [Int?] {
                    let options = MeshWire.EncodingOptions(compressionThreshold: threshold)
                    var buffer = try MeshWire.encode(message, options: options)
                    let decoded = try MeshWire.decode(&buffer)
                    #expect(decoded == message)
                    #expect(buffer.readableBytes == 0)
                }
            }
        }
    }

    @Test func payloadSizeIsComputedExactlyWithoutEncoding() throws {
        var rng = SeededRandom(seed: 99)
        for _ in 0..<50 {
            for message in sampleMessages(using: &rng) {
                let frame = try MeshWire.encode(message, options: .init(compressionThreshold: nil))
                #expect(MeshWire.uncompressedPayloadSize(of: message) == frame.readableBytes - MeshWire.headerSize)
                try MeshWire.checkFits(message, maximumFrameSize: frame.readableBytes - 4)
                #expect(throws: MeshProtocolError.self) { try MeshWire.checkFits(message, maximumFrameSize: frame.readableBytes - 5) }
            }
        }
    }

    @Test func headerLayoutIsAsDocumented() throws {
        let buffer = try MeshWire.encode(.heartbeat(Heartbeat(hlc: 1, wallMillis: -2, sentMonotonicNanos: 3)))
        let bytes = Array(buffer.readableBytesView)
        // u32 length = 3 + 24, version 1, type 2, flags 0, then three big-endian 64-bit integers.
        #expect(Array(bytes[0..<7]) == [0, 0, 0, 27, 1, 2, 0])
        #expect(bytes.count == 7 + 24)
        #expect(Array(bytes[7..<15]) == [0, 0, 0, 0, 0, 0, 0, 1])
        #expect(Array(bytes[15..<23]) == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
    }

    @Test func largeCompressiblePayloadsAreCompressed() throws {
        let message = MeshMessage.changeBatch(ChangeBatch(coverage: [], batch: [UInt8](repeating: 7, count: 100_000)))
        let buffer = try MeshWire.encode(message)
        #expect(buffer.readableBytes < 2_000)
        #expect(buffer.getInteger(at: 6, as: UInt8.self) == MeshWire.flagLZ4)
    }

    @Test func messagesOverTheFrameLimitAreRefusedBeforeSending() {
        let options = MeshWire.EncodingOptions(maximumFrameSize: 1_000, compressionThreshold: nil)
        let error = #expect(throws: MeshProtocolError.self) {
            try MeshWire.encode(.raft([UInt8](repeating: 1, count: 2_000)), options: options)
        }
        #expect(error?.code == .messageTooLarge)
    }

    @Test func decoderVerifierAcceptsEveryMessageInAnySplit() throws {
        var rng = SeededRandom(seed: 7)
        let messages = sampleMessages(using: &rng)
        let pairs = try messages.map { message in (try MeshWire.encode(message), [message]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            MeshMessageDecoder()
        }
    }
}

@Suite struct WireRefusalTests {
    func frame(length: UInt32, version: UInt8 = 1, type: UInt8 = 2, flags: UInt8 = 0, payload: [UInt8] = []) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(length)
        buffer.writeInteger(version)
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeBytes(payload)
        return buffer
    }

    func refusal(_ buffer: ByteBuffer, maximumFrameSize: Int = 1 << 20) -> MeshProtocolError? {
        var buffer = buffer
        do {
            _ = try MeshWire.decode(&buffer, maximumFrameSize: maximumFrameSize)
            return nil
        } catch {
            return error
        }
    }

    @Test func headerFaultsAreSeenBeforeThePayloadArrives() {
        #expect(refusal(frame(length: 2))?.code == .frameTooShort)
        // Only the length field has arrived: an oversized length is refused at once.
        var lengthOnly = ByteBuffer()
        lengthOnly.writeInteger(UInt32(1 << 21))
        #expect(refusal(lengthOnly)?.code == .frameTooLarge)
        #expect(refusal(frame(length: 1000, version: 2))?.code == .unsupportedFrameVersion)
        #expect(refusal(frame(length: 1000, type: 0))?.code == .unknownMessageType)
        #expect(refusal(frame(length: 1000, type: 11))?.code == .unknownMessageType)
        #expect(refusal(frame(length: 1000, flags: 0x02))?.code == .reservedFlags)
    }

    @Test func incompleteFramesWaitWithoutConsuming() throws {
        let whole = try MeshWire.encode(.raft([1, 2, 3]))
        for cut in 0..<whole.readableBytes {
            var partial = whole.getSlice(at: 0, length: cut)!
            #expect(try MeshWire.decode(&partial) == nil)
            #expect(partial.readableBytes == cut)
        }
    }

    @Test func payloadFaultsAreMalformed() {
        // Heartbeat needs 24 bytes.
        #expect(refusal(frame(length: 3 + 23, payload: [UInt8](repeating: 0, count: 23)))?.code == .malformedPayload)
        // Trailing byte.
        #expect(refusal(frame(length: 3 + 25, payload: [UInt8](repeating: 0, count: 25)))?.code == .malformedPayload)
        // Raft bytes claiming more than there is.
        #expect(refusal(frame(length: 3 + 4, type: 8, payload: [0, 0, 0, 9]))?.code == .malformedPayload)
        // A version vector claiming four billion entries in 4 bytes.
        #expect(refusal(frame(length: 3 + 4, type: 4, payload: [0xff, 0xff, 0xff, 0xff]))?.code == .malformedPayload)
        // Invalid UTF-8 in an error message.
        #expect(refusal(frame(length: 3 + 6, type: 10, payload: [0, 1, 0, 2, 0xc3, 0x28]))?.code == .malformedPayload)
        // A bool that is neither 0 nor 1.
        var chunk: [UInt8] = [UInt8](repeating: 0, count: 16) + [2] + [0, 0, 0, 0]
        #expect(refusal(frame(length: UInt32(3 + chunk.count), type: 7, payload: chunk))?.code == .malformedPayload)
        chunk[16] = 1
        #expect(refusal(frame(length: UInt32(3 + chunk.count), type: 7, payload: chunk)) == nil)
    }

    @Test func lz4FaultsAreRefused() {
        // Declares 2 GiB uncompressed.
        #expect(refusal(frame(length: 3 + 5, flags: 1, payload: [0, 0, 0, 0x80, 0]))?.code == .decompressionFailed)
        // Garbage block.
        #expect(refusal(frame(length: 3 + 8, flags: 1, payload: [24, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]))?.code == .decompressionFailed)
        #expect(refusal(frame(length: 3 + 2, flags: 1, payload: [1, 0]))?.code == .decompressionFailed)
    }
}

@Suite struct ConnectionGuardTests {
    /// Through the real handlers on an embedded channel: a bad frame closes the channel and logs why.
    @Test(arguments: [
        ("oversized", [0x00, 0x20, 0x00, 0x00] as [UInt8], "frameTooLarge"),
        ("unknown type", [0, 0, 0, 3, 1, 99, 0], "unknownMessageType"),
        ("wrong version", [0, 0, 0, 3, 9, 2, 0], "unsupportedFrameVersion"),
        ("malformed", [0, 0, 0, 4, 1, 2, 0, 0], "malformedPayload"),
    ])
    func badFrameClosesTheChannelWithALoggedReason(_ name: String, _ bytes: [UInt8], _ code: String) throws {
        let (logger, logs) = makeLogger("guard")
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MeshMessageDecoder.handler(maximumFrameSize: 1 << 20))
        try channel.pipeline.syncOperations.addHandler(MeshConnectionGuard(logger: logger))
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        // A good frame first, then the bad one.
        try channel.writeInbound(try MeshWire.encode(.raft([1, 2, 3])))
        #expect(try channel.readInbound(as: MeshMessage.self) == .raft([1, 2, 3]))
        #expect(throws: (any Error).self) { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        #expect(!channel.isActive, "\(name) must close the connection")
        #expect(logs.contains(code), "log must give the reason \(code): \(logs.texts)")
    }

    @Test func truncatedStreamAtEOFIsReported() throws {
        let (logger, logs) = makeLogger("guard")
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MeshMessageDecoder.handler(maximumFrameSize: 1 << 20))
        try channel.pipeline.syncOperations.addHandler(MeshConnectionGuard(logger: logger))
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let whole = try MeshWire.encode(.raft([1, 2, 3, 4]))
        try channel.writeInbound(whole.getSlice(at: 0, length: 9)!)
        _ = try? channel.finish()
        #expect(logs.contains("truncatedStream"), "\(logs.texts)")
    }
}
