import CLZ4

/// LZ4 block compression with the uncompressed length in front, so the receiver can size its
/// buffer and refuse a length that is out of bounds before it allocates anything.
///
/// Layout: `u32 little-endian uncompressed length` then the raw LZ4 block.
public enum LZ4Block {
    /// The largest uncompressed payload either side accepts (64 MiB).
    public static let maximumUncompressedSize = 64 * 1024 * 1024

    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func compress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count <= maximumUncompressedSize else {
            throw Error(description: "LZ4: input of \(input.count) bytes exceeds the \(maximumUncompressedSize)-byte limit")
        }
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        var output = [UInt8](repeating: 0, count: 4 + bound)
        let length = UInt32(input.count)
        output[0] = UInt8(truncatingIfNeeded: length)
        output[1] = UInt8(truncatingIfNeeded: length >> 8)
        output[2] = UInt8(truncatingIfNeeded: length >> 16)
        output[3] = UInt8(truncatingIfNeeded: length >> 24)
        let written = input.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                LZ4_compress_default(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    (dst.baseAddress! + 4).assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(bound))
            }
        }
        guard written > 0 || input.isEmpty else {
            throw Error(description: "LZ4: compression failed for \(input.count) bytes")
        }
        output.removeSubrange((4 + Int(written))...)
        return output
    }

    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count >= 4 else {
            throw Error(description: "LZ4: block of \(input.count) bytes is shorter than its 4-byte length header")
        }
        let length = Int(UInt32(input[0]) | UInt32(input[1]) << 8 | UInt32(input[2]) << 16 | UInt32(input[3]) << 24)
        guard length <= maximumUncompressedSize else {
            throw Error(description: "LZ4: declared length \(length) exceeds the \(maximumUncompressedSize)-byte limit")
        }
        if length == 0 {
            guard input.count <= 5 else {
                throw Error(description: "LZ4: empty payload declared but \(input.count - 4) compressed bytes follow")
            }
            return []
        }
        var output = [UInt8](repeating: 0, count: length)
        let produced = input.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                LZ4_decompress_safe(
                    (src.baseAddress! + 4).assumingMemoryBound(to: CChar.self),
                    dst.baseAddress!.assumingMemoryBound(to: CChar.self),
                    Int32(input.count - 4), Int32(length))
            }
        }
        guard produced == length else {
            throw Error(description: "LZ4: corrupt block (decoded \(produced) of \(length) declared bytes)")
        }
        return output
    }
}
