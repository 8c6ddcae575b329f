import CLZ4
import ClinicErrors

/// LZ4 block compression with the uncompressed length in front, so the receiver can size its
/// buffer and refuse a length that is out of bounds before it allocates anything.
///
/// Layout: `u32 little-endian uncompressed length` then the raw LZ4 block.
public enum LZ4Block {
    /// The largest uncompressed payload either side accepts (64 MiB).
    public static let maximumUncompressedSize = 64 * 1024 * 1024

    /// Why a block was refused; the code names which check failed.
    public typealias Error = ClinicError<LZ4ErrorCode>

    public static func compress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count <= maximumUncompressedSize else {
            throw Error(.inputTooLarge, zh: "LZ4：输入 \(input.count) 字节，超过上限 \(maximumUncompressedSize) 字节",
                        en: "LZ4: input of \(input.count) bytes exceeds the \(maximumUncompressedSize)-byte limit")
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
            throw Error(.compressionFailed, zh: "LZ4：\(input.count) 字节压缩失败", en: "LZ4: compression failed for \(input.count) bytes")
        }
        output.removeSubrange((4 + Int(written))...)
        return output
    }

    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count >= 4 else {
            throw Error(.truncated, zh: "LZ4：数据块只有 \(input.count) 字节，短于 4 字节的长度头",
                        en: "LZ4: block of \(input.count) bytes is shorter than its 4-byte length header")
        }
        let length = Int(UInt32(input[0]) | UInt32(input[1]) << 8 | UInt32(input[2]) << 16 | UInt32(input[3]) << 24)
        guard length <= maximumUncompressedSize else {
            throw Error(.declaredTooLarge, zh: "LZ4：声明长度 \(length) 超过上限 \(maximumUncompressedSize) 字节",
                        en: "LZ4: declared length \(length) exceeds the \(maximumUncompressedSize)-byte limit")
        }
        if length == 0 {
            guard input.count <= 5 else {
                throw Error(.trailingBytes, zh: "LZ4：声明为空，却跟着 \(input.count - 4) 个压缩字节",
                            en: "LZ4: empty payload declared but \(input.count - 4) compressed bytes follow")
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
            throw Error(.corrupt, zh: "LZ4：数据块已损坏（解出 \(produced) 字节，声明 \(length) 字节）",
                        en: "LZ4: corrupt block (decoded \(produced) of \(length) declared bytes)")
        }
        return output
    }
}

/// What `LZ4Block` refused.
public enum LZ4ErrorCode: String, ClinicErrorCode {
    /// The input to compress is over `maximumUncompressedSize`.
    case inputTooLarge = "lz4.input_too_large"
    /// liblz4 could not compress the input.
    case compressionFailed = "lz4.compression_failed"
    /// The block is shorter than its length header.
    case truncated = "lz4.truncated"
    /// The length header declares more than `maximumUncompressedSize`.
    case declaredTooLarge = "lz4.declared_too_large"
    /// An empty payload is declared, yet compressed bytes follow.
    case trailingBytes = "lz4.trailing_bytes"
    /// The compressed bytes do not decode to the declared length.
    case corrupt = "lz4.corrupt"
}
