import PKI

/// Who may join the mesh: the node ids and, for each, the certificate serials currently accepted.
///
/// Every TLS handshake, on both sides, asks this after the certificate chain checked out. A node
/// answers from the replicated membership (a rotation records the new serial there, an eviction
/// refuses the node), falling back to the static list of its config file for nodes the membership
/// does not name yet; tests use the static list alone.
public protocol MembershipView: Sendable {
    /// Whether `nodeID` is a member and `serial` (cluster form, see `SerialFormat`) is one of its
    /// accepted certificate serials.
    func admits(nodeID: String, serial: String) -> Bool
}

/// A fixed membership, as written in a config file.
///
/// A node may have more than one accepted serial at once, so that a rotated certificate can be
/// rolled out before the old one is dropped.
public struct StaticMembership: MembershipView, Hashable {
    /// Node id to accepted serials, serials normalised by `SerialFormat.normalise`.
    public let members: [String: Set<String>]

    /// - Parameter members: node id to its accepted serials, in any form `SerialFormat.normalise`
    ///   understands (`0A1B...`, `0a:1b:...`, `serial=...`). Serials that are not hex are dropped.
    public init(_ members: [String: [String]]) {
        self.members = members.mapValues { Set($0.compactMap(SerialFormat.normalise)) }
    }

    public init(nodes: [(nodeID: String, serial: String)]) {
        var members: [String: [String]] = [:]
        for node in nodes { members[node.nodeID, default: []].append(node.serial) }
        self.init(members)
    }

    public func admits(nodeID: String, serial: String) -> Bool {
        guard let accepted = self.members[nodeID], let normalised = SerialFormat.normalise(serial) else { return false }
        return accepted.contains(normalised)
    }
}
