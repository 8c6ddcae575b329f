import Foundation
import Mesh
import NIOCore
import NIOEmbedded
import TestSupport
import Testing

/// Throws at least 100,000 frames at the decoder: random frames and mutations of valid encodings of
/// every message type. The seed is fixed so every run is the same; explore others with
/// `MESH_FUZZ_SEED=<seed> swift test --filter FuzzTests` (the seed is repeated in every failure).
@Suite struct FuzzTests {
    static let frames = 120_000
    let seed: UInt64 = ProcessInfo.processInfo.environment["MESH_FUZZ_SEED"].flatMap { UInt64($0) }
        ?? 20_261_126

    struct Stats {
        var inputs = 0
        var framesDecoded = 0
        var reachedCodec: [MeshMessageType: Int] = [:]
        var decodedByType: [MeshMessageType: Int] = [:]
        var refusedByCode: [String: Int] = [:]
        var incomplete = 0
    }

    enum Mutation: CaseIterable {
        case bitFlips, truncate, lengthLie, typeSwap, flagFlip, payloadByteInsert, payloadByteDelete, splice, randomFrame, randomBytes, none
    }

    @Test func decoderSurvivesRandomAndMutatedFrames() throws {
        let seed = self.seed
        print("FuzzTests seed: \(seed) (rerun with MESH_FUZZ_SEED=\(seed))")
        var rng = SeededRandom(seed: seed)
        var stats = Stats()
        let maximumFrameSize = 64 * 1024
        var corpus: [MeshMessage] = []

        while stats.inputs < Self.frames {
            if corpus.isEmpty || Int.random(in: 0..<100, using: &rng) == 0 {
                corpus = sampleMessages(using: &rng)
            }
            let original = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
            let compress: Int? = Bool.random(using: &rng) ? 0 : nil
            var bytes = Array(try MeshWire.encode(original, options: .init(maximumFrameSize: maximumFrameSize, compressionThreshold: compress)).readableBytesView)
            let mutation = Mutation.allCases[Int.random(in: 0..<Mutation.allCases.count, using: &rng)]
            Self.mutate(&bytes, mutation, corpus: corpus, rng: &rng)
            stats.inputs += 1

            var buffer = ByteBuffer(bytes: bytes)
            var guardCount = 0
            while buffer.readableBytes > 0 {
                guardCount += 1
                #expect(guardCount < 1_000, "decoder made no progress; seed \(seed)")
                if guardCount >= 1_000 { break }
                let before = buffer.readableBytes
                let frame: MeshWire.Frame?
                do {
                    frame = try MeshWire.parseFrame(&buffer, maximumFrameSize: maximumFrameSize)
                } catch {
                    stats.refusedByCode["\(error.code)", default: 0] += 1
                    break
                }
                guard let frame else {
                    stats.incomplete += 1
                    #expect(buffer.readableBytes == before, "an incomplete frame must consume nothing; seed \(seed)")
                    break
                }
                #expect(before - buffer.readableBytes >= MeshWire.headerSize, "seed \(seed)")
                stats.reachedCodec[frame.type, default: 0] += 1
                let message: MeshMessage
                do {
                    message = try MeshWire.decodeMessage(frame, maximumFrameSize: maximumFrameSize)
                } catch {
                    stats.refusedByCode["\(error.code)", default: 0] += 1
                    #expect(mutation != .none, "an untouched frame must decode: \(error); seed \(seed)")
                    break
                }
                stats.framesDecoded += 1
                stats.decodedByType[message.type, default: 0] += 1
                #expect(message.type == frame.type, "seed \(seed)")
                if mutation == .none {
                    #expect(message == original, "an untouched frame must decode to its message; seed \(seed)")
                }
                // Whatever decodes must re-encode to something that decodes to the same message.
                var again = try MeshWire.encode(message, options: .init(maximumFrameSize: 1 << 24, compressionThreshold: nil))
                let reparsed = try MeshWire.decode(&again, maximumFrameSize: 1 << 24)
                #expect(reparsed == message, "seed \(seed)")
            }
        }

        print("FuzzTests stats: inputs \(stats.inputs), decoded \(stats.framesDecoded), incomplete \(stats.incomplete), refused \(stats.refusedByCode.sorted { $0.key < $1.key })")
        #expect(stats.inputs >= 100_000)
        // The fuzzer must get past the frame header into the message codec for every type, and
        // both succeed and fail there.
        for type in MeshMessageType.allCases {
            #expect((stats.reachedCodec[type] ?? 0) > 1_000, "\(type) reached the codec only \(stats.reachedCodec[type] ?? 0) times; seed \(seed)")
            #expect((stats.decodedByType[type] ?? 0) > 100, "\(type) decoded only \(stats.decodedByType[type] ?? 0) times; seed \(seed)")
        }
        #expect((stats.refusedByCode["malformedPayload"] ?? 0) > 1_000, "seed \(seed)")
        #expect((stats.refusedByCode["decompressionFailed"] ?? 0) > 100, "seed \(seed)")
        #expect((stats.refusedByCode["frameTooLarge"] ?? 0) > 100, "seed \(seed)")
    }

    /// Mutated frames through the real channel handlers: every input either yields messages or
    /// closes the channel, and a stream cut mid-frame is reported at EOF. Nothing hangs.
    @Test func mutatedFramesThroughTheHandlersNeverStall() throws {
        let seed = self.seed &+ 1
        print("FuzzTests handler seed: \(seed)")
        var rng = SeededRandom(seed: seed)
        let (logger, _) = makeLogger("fuzz")
        for _ in 0..<2_000 {
            let corpus = sampleMessages(using: &rng)
            let original = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
            var bytes = Array(try MeshWire.encode(original, options: .init(compressionThreshold: Bool.random(using: &rng) ? 0 : nil)).readableBytesView)
            let mutation = Mutation.allCases[Int.random(in: 0..<Mutation.allCases.count, using: &rng)]
            Self.mutate(&bytes, mutation, corpus: corpus, rng: &rng)

            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(MeshMessageDecoder.handler(maximumFrameSize: 64 * 1024))
            try channel.pipeline.syncOperations.addHandler(MeshConnectionGuard(logger: logger))
            try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
            // Feed in random-sized pieces.
            var offset = 0
            var failed = false
            while offset < bytes.count, channel.isActive {
                let piece = min(bytes.count - offset, Int.random(in: 1...64, using: &rng))
                do {
                    // What `writeInbound` does, minus its `BufferState` result: Swift 6.3.1 -O miscompiles
                    // that discarded `Array(inboundBuffer)` copy when inlined here (frees it before filling it).
                    channel.pipeline.syncOperations.fireChannelRead(NIOAny(ByteBuffer(bytes: bytes[offset..<(offset + piece)])))
                    channel.pipeline.syncOperations.fireChannelReadComplete()
                    try channel.throwIfErrorCaught()
                } catch {
                    failed = true
                }
                offset += piece
            }
            while let _ = try? channel.readInbound(as: MeshMessage.self) {}
            if failed {
                #expect(!channel.isActive, "an error must close the channel; seed \(seed)")
            }
            _ = try? channel.finish()
        }
    }

    static func mutate<G: RandomNumberGenerator>(_ bytes: inout [UInt8], _ mutation: Mutation, corpus: [MeshMessage], rng: inout G) {
        func setLength(_ value: UInt32) {
            guard bytes.count >= 4 else { return }
            bytes[0] = UInt8(truncatingIfNeeded: value >> 24)
            bytes[1] = UInt8(truncatingIfNeeded: value >> 16)
            bytes[2] = UInt8(truncatingIfNeeded: value >> 8)
            bytes[3] = UInt8(truncatingIfNeeded: value)
        }
        func fixLength() { setLength(UInt32(max(0, bytes.count - 4))) }
        switch mutation {
        case .none:
            break
        case .bitFlips:
            // Mostly in the payload, so the header stays valid and the codec sees the damage.
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let low = bytes.count > 7 && Int.random(in: 0..<10, using: &rng) > 0 ? 7 : 0
                let index = Int.random(in: low..<bytes.count, using: &rng)
                bytes[index] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
            }
        case .truncate:
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
            if Bool.random(using: &rng) { fixLength() }  // a consistent but shorter frame: the codec sees it
        case .lengthLie:
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: setLength(UInt32.random(in: 0...UInt32.max, using: &rng))
            case 1: setLength(UInt32(max(0, bytes.count - 4 - Int.random(in: 1...8, using: &rng))))
            case 2: setLength(UInt32(bytes.count - 4 + Int.random(in: 1...8, using: &rng)))
            default: setLength(UInt32.random(in: 0...6, using: &rng))
            }
        case .typeSwap:
            bytes[5] = UInt8.random(in: 1...10, using: &rng)
        case .flagFlip:
            bytes[6] ^= 1
        case .payloadByteInsert:
            let index = Int.random(in: 7...bytes.count, using: &rng)
            bytes.insert(UInt8.random(in: 0...255, using: &rng), at: index)
            fixLength()
        case .payloadByteDelete:
            if bytes.count > 7 {
                bytes.remove(at: Int.random(in: 7..<bytes.count, using: &rng))
                fixLength()
            }
        case .splice:
            // This frame's header with another message's payload (or a random mix), length fixed up.
            let other = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
            if let otherBytes = try? Array(MeshWire.encode(other, options: .init(compressionThreshold: nil)).readableBytesView) {
                let cut = Int.random(in: 7...otherBytes.count, using: &rng)
                bytes = Array(bytes.prefix(7)) + Array(otherBytes[7..<cut])
                fixLength()
            }
        case .randomFrame:
            // A valid header around random payload bytes.
            let payload = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            bytes = [0, 0, 0, 0, MeshWire.frameVersion, UInt8.random(in: 1...10, using: &rng), UInt8.random(in: 0...1, using: &rng)] + payload
            fixLength()
        case .randomBytes:
            bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
    }
}
