/// Why a frame or message was refused. Any of these closes the connection it arrived on.
///
/// Extensible struct with a private code (swift-nio `FileSystemError` style): compare `code`
/// against the static members; `description` is for the log, Chinese first, then English.
public struct MeshProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case frameTooShort, frameTooLarge, unsupportedFrameVersion, unknownMessageType, reservedFlags
            case decompressionFailed, malformedPayload, truncatedStream, messageTooLarge
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The length field says fewer than the 3 header bytes that must follow it.
        public static let frameTooShort = Code(.frameTooShort)
        /// The length field is over the configured maximum frame size.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// The version byte is not one this node speaks.
        public static let unsupportedFrameVersion = Code(.unsupportedFrameVersion)
        /// The type byte names no message.
        public static let unknownMessageType = Code(.unknownMessageType)
        /// A flag bit other than bit 0 (LZ4) is set.
        public static let reservedFlags = Code(.reservedFlags)
        /// The LZ4 payload is corrupt or declares a size over the limit.
        public static let decompressionFailed = Code(.decompressionFailed)
        /// The payload does not decode as its message type (short, long, bad UTF-8, bad bool...).
        public static let malformedPayload = Code(.malformedPayload)
        /// The stream ended in the middle of a frame.
        public static let truncatedStream = Code(.truncatedStream)
        /// A message to send does not fit in one frame (local error, nothing was sent).
        public static let messageTooLarge = Code(.messageTooLarge)

        public var description: String { self.value.rawValue }
    }

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(self.code): \(self.detail)" }
}
