import LZ4
import Testing

@Suite struct LZ4BlockTests {
    @Test func roundTripsRepetitiveAndRandomPayloads() throws {
        var generator = SystemRandomNumberGenerator()
        let repetitive = [UInt8](String(repeating: "患者 patient 内科 ", count: 500).utf8)
        let random = (0..<10_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for payload in [[], [42], repetitive, random] {
            let packed = try LZ4Block.compress(payload)
            #expect(try LZ4Block.decompress(packed) == payload)
        }
        #expect(try LZ4Block.compress(repetitive).count < repetitive.count / 10)
    }

    @Test func refusesCorruptTruncatedAndOversizedBlocks() throws {
        let packed = try LZ4Block.compress([UInt8](String(repeating: "abc", count: 1000).utf8))
        #expect(throws: LZ4Block.Error.self) { try LZ4Block.decompress(Array(packed.prefix(3))) }
        #expect(throws: LZ4Block.Error.self) { try LZ4Block.decompress(Array(packed.dropLast(5))) }
        var lying = packed
        lying[3] = 0x7f  // declares ~2 GiB
        #expect(throws: LZ4Block.Error.self) { try LZ4Block.decompress(lying) }
        var garbage = packed
        for i in 4..<garbage.count { garbage[i] = 0xff }
        #expect(throws: LZ4Block.Error.self) { try LZ4Block.decompress(garbage) }
    }
}
