import ClinicErrors

/// An error from a node, Chinese first, then English, saying what failed and what to do.
public typealias NodeError = ClinicError<NodeErrorCode>

public enum NodeErrorCode: String, ClinicErrorCode {
    case config = "node.config"
    case startup = "node.startup"
    case admin = "node.admin"
    case snapshot = "node.snapshot"
    case storage = "node.storage"
}
