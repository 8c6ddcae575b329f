import ClinicErrors

/// Why a frame or message was refused. Any of these closes the connection it arrived on.
///
/// Compare `code` with the cases of `MeshProtocolErrorCode`; `description` is for the log,
/// Chinese first, then English.
public typealias MeshProtocolError = ClinicError<MeshProtocolErrorCode>

public enum MeshProtocolErrorCode: String, ClinicErrorCode {
    /// The length field says fewer than the 3 header bytes that must follow it.
    case frameTooShort = "mesh.frame_too_short"
    /// The length field is over the configured maximum frame size.
    case frameTooLarge = "mesh.frame_too_large"
    /// The version byte is not one this node speaks.
    case unsupportedFrameVersion = "mesh.unsupported_frame_version"
    /// The type byte names no message.
    case unknownMessageType = "mesh.unknown_message_type"
    /// A flag bit other than bit 0 (LZ4) is set.
    case reservedFlags = "mesh.reserved_flags"
    /// The LZ4 payload is corrupt or declares a size over the limit.
    case decompressionFailed = "mesh.decompression_failed"
    /// The payload does not decode as its message type (short, long, bad UTF-8, bad bool...).
    case malformedPayload = "mesh.malformed_payload"
    /// The stream ended in the middle of a frame.
    case truncatedStream = "mesh.truncated_stream"
    /// A message to send does not fit in one frame (local error, nothing was sent).
    case messageTooLarge = "mesh.message_too_large"
}
