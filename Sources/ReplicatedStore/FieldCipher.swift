import Crypto
import Foundation
import ReplicatedCore

/// Seals personal data (resident ID, mobile, name) with AES-256-GCM once, at the node that writes
/// it; replicas store and forward the ciphertext and never need to re-encrypt.
///
/// The nonce is synthetic: the first 12 bytes of HMAC-SHA256(nonce key, table, column, row key,
/// plaintext). The same value in the same column of the same row therefore seals to the same bytes
/// on every node, so replicas that create the same patient independently still compare equal, and a
/// nonce is never reused for two different plaintexts. Equal values in different rows seal to
/// different bytes. The table, column and row key are authenticated too, so ciphertext cannot be
/// moved to another row or column unnoticed.
///
/// Sealed layout: `u8 format (1) | u8 kind (0 text, 1 blob) | 12-byte nonce | ciphertext | 16-byte tag`.
public struct FieldCipher: Sendable {
    private let sealKey: SymmetricKey
    private let nonceKey: SymmetricKey

    /// `dataKey` is the cluster's 32-byte data key, kept outside the database (see `DataKeyFile`).
    public init(dataKey: SymmetricKey) {
        sealKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: dataKey, info: Data("clinicmesh field seal v1".utf8), outputByteCount: 32)
        nonceKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: dataKey, info: Data("clinicmesh field nonce v1".utf8), outputByteCount: 32)
    }

    public func seal(_ value: ColumnValue, table: String, column: String, key: String) throws -> ColumnValue {
        let kind: UInt8
        let plaintext: [UInt8]
        switch value {
        case .null: return .null
        case .text(let s): kind = 0; plaintext = Array(s.utf8)
        case .blob(let b): kind = 1; plaintext = b
        default:
            throw StoreError(.encryption, zh: "加密列 \(table).\(column) 只接受文本或二进制值。",
                             en: "encrypted column \(table).\(column) takes only text or blob values.")
        }
        var mac = HMAC<SHA256>(key: nonceKey)
        let context = Self.context(table, column, key)
        mac.update(data: context + [kind])
        mac.update(data: plaintext)
        let nonce = try AES.GCM.Nonce(data: Array(mac.finalize()).prefix(12))
        let box = try AES.GCM.seal(plaintext, using: sealKey, nonce: nonce, authenticating: context)
        return .blob([1, kind] + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag))
    }

    public func open(_ value: ColumnValue, table: String, column: String, key: String) throws -> ColumnValue {
        guard case .blob(let sealed) = value else {
            if value == .null { return .null }
            throw Self.corrupt(table, column)
        }
        guard sealed.count >= 2 + 12 + 16, sealed[0] == 1, sealed[1] <= 1 else { throw Self.corrupt(table, column) }
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: sealed[2..<14]),
                                            ciphertext: sealed[14..<(sealed.count - 16)],
                                            tag: sealed[(sealed.count - 16)...])
            let plain = try AES.GCM.open(box, using: sealKey, authenticating: Self.context(table, column, key))
            if sealed[1] == 1 { return .blob(Array(plain)) }
            guard let text = String(validating: Array(plain), as: UTF8.self) else { throw Self.corrupt(table, column) }
            return .text(text)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.corrupt(table, column)
        }
    }

    /// Length-prefixed so that no two (table, column, key) triples share an encoding.
    private static func context(_ table: String, _ column: String, _ key: String) -> [UInt8] {
        var writer = ByteWriter()
        writer.string("clinicmesh.field.v1")
        writer.string(table)
        writer.string(column)
        writer.string(key)
        return writer.buffer
    }

    /// Whether a value has the sealed layout (checked when peers send it, before it is stored).
    static func looksSealed(_ value: ColumnValue) -> Bool {
        guard case .blob(let b) = value else { return value == .null }
        return b.count >= 2 + 12 + 16 && b[0] == 1 && b[1] <= 1
    }

    static func corrupt(_ table: String, _ column: String) -> StoreError {
        StoreError(.encryption, zh: "\(table).\(column) 的密文无法解密：数据损坏或数据密钥不对；请确认节点使用的是本集群的数据密钥。",
                   en: "ciphertext in \(table).\(column) does not open: corrupt data or the wrong data key; check that the node uses this cluster's data key.")
    }
}

/// The cluster data key on disk: 32 random bytes, hex, in a file of mode 0600 outside the database.
public enum DataKeyFile {
    public static func create(at path: String) throws -> SymmetricKey {
        let key = SymmetricKey(size: .bits256)
        let hex = key.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } + "\n"
        try SecureFile.writeNew(path: path, contents: Array(hex.utf8), mode: 0o600)
        return key
    }

    public static func load(from path: String) throws -> SymmetricKey {
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
              text.count == 64 else {
            throw StoreError(.encryption, zh: "无法读取数据密钥文件 \(path)（应为 64 位十六进制）；请用 clinicmesh 生成或从管理员处取得。",
                             en: "cannot read the data key file \(path) (expected 64 hex digits); generate it with clinicmesh or get it from the admins.")
        }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let b = UInt8(text[index..<next], radix: 16) else {
                throw StoreError(.encryption, zh: "数据密钥文件 \(path) 含有非十六进制字符。", en: "the data key file \(path) holds non-hex characters.")
            }
            bytes.append(b)
            index = next
        }
        return SymmetricKey(data: bytes)
    }
}
