/// An error from a node, Chinese first, then English, saying what failed and what to do.
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case config = "node.config"
        case startup = "node.startup"
        case admin = "node.admin"
        case snapshot = "node.snapshot"
        case storage = "node.storage"
    }

    public let code: Code
    public let zh: String
    public let en: String

    public init(_ code: Code, zh: String, en: String) {
        self.code = code
        self.zh = zh
        self.en = en
    }

    public var description: String { "\(zh) / \(en) [\(code.rawValue)]" }
}
