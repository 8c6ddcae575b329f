import Foundation
import SwiftASN1
import X509

/// Who a cluster certificate speaks for: a node or an administrator.
///
/// The identity lives in a URI subject alternative name, exactly one per certificate:
/// - `clinicmesh://node/<node-id>` for a node (also the subject CN; department in the subject OU),
/// - `clinicmesh://admin/<name>` for an administrator (also the subject CN).
///
/// Node certificates carry extended key usage serverAuth and clientAuth; admin certificates carry
/// clientAuth only, so an admin certificate can never serve as a node.
public enum ClusterIdentity: Hashable, Sendable, CustomStringConvertible {
    case node(id: String)
    case admin(name: String)

    public static let uriScheme = "clinicmesh"
    static let nodePrefix = "clinicmesh://node/"
    static let adminPrefix = "clinicmesh://admin/"

    /// The URI SAN that names this identity.
    public var uri: String {
        switch self {
        case .node(let id): return Self.nodePrefix + id
        case .admin(let name): return Self.adminPrefix + name
        }
    }

    /// The bare node id or admin name.
    public var name: String {
        switch self {
        case .node(let id): return id
        case .admin(let name): return name
        }
    }

    public var kind: Kind {
        switch self {
        case .node: return .node
        case .admin: return .admin
        }
    }

    public enum Kind: String, Hashable, Sendable {
        case node, admin
    }

    public var description: String { self.uri }

    /// Parses a `clinicmesh://node/<id>` or `clinicmesh://admin/<name>` URI; `nil` for anything else,
    /// including a well-formed prefix followed by a name outside the allowed character set.
    public init?(uri: String) {
        if uri.hasPrefix(Self.nodePrefix) {
            let id = String(uri.dropFirst(Self.nodePrefix.count))
            guard Self.isValidName(id) else { return nil }
            self = .node(id: id)
        } else if uri.hasPrefix(Self.adminPrefix) {
            let name = String(uri.dropFirst(Self.adminPrefix.count))
            guard Self.isValidName(name) else { return nil }
            self = .admin(name: name)
        } else {
            return nil
        }
    }

    /// Node ids and admin names: 1 to 64 characters of ASCII letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit. They appear in URIs, file names, logs and configs, so
    /// nothing that needs escaping anywhere is allowed.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func isAlnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
        }
        guard isAlnum(bytes[0]) else { return false }
        return bytes.allSatisfy { isAlnum($0) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
    }

    static func validateName(_ name: String, what: String, whatChinese: String) throws {
        guard Self.isValidName(name) else {
            throw PKIError(
                .invalidName,
                zh: "\(whatChinese)“\(name)”无效：须为 1 到 64 个 ASCII 字母、数字、“.”、“_”或“-”，并以字母或数字开头。请换一个\(whatChinese)。",
                en: "Invalid \(what) \"\(name)\": use 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit.",
                subject: name
            )
        }
    }
}

/// Certificate serial numbers as the cluster writes them in membership and logs: lowercase hex of
/// the integer's value, no separators, no leading zero bytes (so the `serial=` that
/// `openssl x509 -serial` prints, lowercased, is the same string).
public enum SerialFormat {
    public static func hex(_ serial: Certificate.SerialNumber) -> String {
        hex(bytes: Array(serial.bytes))
    }

    public static func hex(bytes: [UInt8]) -> String {
        var significant = bytes[...]
        while significant.count > 1, significant.first == 0 { significant = significant.dropFirst() }
        let digits: [Character] = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(significant.count * 2)
        for byte in significant {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return text
    }

    /// Normalises a serial typed by a person or copied from openssl (`serial=0A1B...`, `0a:1b:...`)
    /// to the cluster's form; `nil` if it is not hex.
    public static func normalise(_ text: String) -> String? {
        var body = text.lowercased()
        if body.hasPrefix("serial=") { body.removeFirst("serial=".count) }
        if body.hasPrefix("0x") { body.removeFirst(2) }
        body.removeAll { $0 == ":" }
        guard !body.isEmpty, body.allSatisfy({ $0.isHexDigit && $0.isASCII }) else { return nil }
        while body.count > 1, body.first == "0" { body.removeFirst() }
        if body.count % 2 == 1 { body = "0" + body }
        return body
    }

    /// A fresh random serial: 16 bytes (128 bits, 126 of them random), top bit clear so the
    /// INTEGER is positive, next bit set so it is always exactly 16 bytes long.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> Certificate.SerialNumber {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[0] = (bytes[0] & 0x7f) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }

    public static func random() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }
}

extension DistinguishedName {
    /// The first value of the given attribute type, as a string.
    func firstValue(of type: ASN1ObjectIdentifier) -> String? {
        for rdn in self {
            for attribute in rdn where attribute.type == type {
                return String(attribute.value)
            }
        }
        return nil
    }
}
