import ClinicErrors
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import PKI

/// A peer after TLS and the Hello exchange: who its certificate says it is, and what it said.
public struct MeshPeer: Sendable, Hashable, CustomStringConvertible {
    /// The verified certificate: node id, serial, department.
    public let certificate: VerifiedPeer
    /// The peer's Hello (its node id equals the certificate's; its cluster id equals ours).
    public let hello: Hello
    public let remoteAddress: SocketAddress?

    public var nodeID: String { self.hello.nodeID }
    public var description: String { "\(self.nodeID) (serial \(self.certificate.serial), \(self.remoteAddress.map { "\($0)" } ?? "?"))" }
}

/// Why a connection ended before it became a session.
public typealias MeshHandshakeError = ClinicError<MeshHandshakeErrorCode>

public enum MeshHandshakeErrorCode: String, ClinicErrorCode {
    /// TLS and Hello did not finish within the handshake timeout.
    case timeout = "mesh.handshake.timeout"
    /// The connection closed before the Hello exchange finished.
    case closedBeforeHello = "mesh.handshake.closed_before_hello"
    /// The peer refused this node's certificate, or this node refused the peer's.
    case certificateRefused = "mesh.handshake.certificate_refused"
    /// Data arrived before the TLS handshake completed.
    case dataBeforeTLS = "mesh.handshake.data_before_tls"
    /// The first message was not a Hello.
    case notHello = "mesh.handshake.not_hello"
    /// A Hello arrived but the peer certificate had not been verified.
    case certificateNotVerified = "mesh.handshake.certificate_not_verified"
    /// The peer speaks another protocol version.
    case protocolVersion = "mesh.handshake.protocol_version"
    /// The peer belongs to another cluster.
    case clusterMismatch = "mesh.handshake.cluster_mismatch"
    /// The Hello names another node than the certificate.
    case identityMismatch = "mesh.handshake.identity_mismatch"
    /// The node connected to itself.
    case connectedToSelf = "mesh.handshake.connected_to_self"
}

/// The Hello exchange, right after the TLS handshake, on both sides.
///
/// Sends our Hello when TLS completes; checks that the first message from the peer is a Hello
/// with our cluster id, our protocol version and the node id its certificate names; then completes
/// `peerPromise`, removes itself and lets every later message through untouched. Anything else,
/// or no Hello within the timeout, sends an `Error` message where that makes sense and closes.
final class MeshHelloHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = MeshMessage
    typealias InboundOut = MeshMessage
    typealias OutboundOut = MeshMessage

    private enum State {
        case waitingForTLS
        case waitingForHello
        case done
    }

    private let ownHello: Hello
    private let record: PeerRecord
    private let peerPromise: EventLoopPromise<MeshPeer>
    private let timeout: TimeAmount
    private let logger: Logger
    private var state = State.waitingForTLS
    private var timeoutTask: Scheduled<Void>?

    init(ownHello: Hello, record: PeerRecord, peerPromise: EventLoopPromise<MeshPeer>, timeout: TimeAmount, logger: Logger) {
        self.ownHello = ownHello
        self.record = record
        self.peerPromise = peerPromise
        self.timeout = timeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timeoutTask = context.eventLoop.scheduleTask(in: self.timeout) {
            let (handler, context) = loopBound.value
            handler.fail(
                context: context,
                MeshHandshakeError(.timeout, zh: "\(handler.timeout) 内未完成 TLS 与 Hello", en: "no TLS handshake and Hello within \(handler.timeout)"),
                notify: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeoutTask?.cancel()
        if self.state != .done {
            self.state = .done
            self.peerPromise.fail(MeshHandshakeError(.closedBeforeHello, zh: "连接在 Hello 之前关闭", en: "the connection closed before Hello"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.handshakeCompleted) = event as? TLSUserEvent, self.state == .waitingForTLS {
            self.state = .waitingForHello
            context.writeAndFlush(self.wrapOutboundOut(.hello(self.ownHello)), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.state != .done else {
            context.fireChannelRead(data)
            return
        }
        let message = self.unwrapInboundIn(data)
        guard self.state == .waitingForHello else {
            self.fail(context: context, MeshHandshakeError(.dataBeforeTLS, zh: "TLS 握手前收到数据", en: "data before the TLS handshake"), notify: nil)
            return
        }
        guard case .hello(let hello) = message else {
            self.fail(
                context: context,
                MeshHandshakeError(.notHello, zh: "第一条消息是 \(message.type) 而不是 Hello", en: "the first message was \(message.type), not Hello"),
                notify: .protocolViolation)
            return
        }
        guard case .accepted(let certificate) = self.record.current else {
            self.fail(context: context, MeshHandshakeError(.certificateNotVerified, zh: "对端证书未通过验证", en: "the peer certificate was not verified"), notify: nil)
            return
        }
        if hello.protocolVersion != MeshWire.protocolVersion {
            self.fail(
                context: context,
                MeshHandshakeError(.protocolVersion, zh: "对端协议版本 \(hello.protocolVersion)，本节点为 \(MeshWire.protocolVersion)", en: "peer speaks protocol \(hello.protocolVersion), this node \(MeshWire.protocolVersion)"),
                notify: .unsupportedProtocolVersion)
        } else if hello.clusterID != self.ownHello.clusterID {
            self.fail(
                context: context,
                MeshHandshakeError(.clusterMismatch, zh: "对端集群 “\(hello.clusterID)” 不是本集群 “\(self.ownHello.clusterID)”", en: "peer is in cluster \"\(hello.clusterID)\", not \"\(self.ownHello.clusterID)\""),
                notify: .clusterMismatch)
        } else if hello.nodeID != certificate.identity.name {
            self.fail(
                context: context,
                MeshHandshakeError(.identityMismatch, zh: "Hello 中的节点 \(hello.nodeID) 与证书中的 \(certificate.identity) 不符", en: "Hello names node \(hello.nodeID) but the certificate names \(certificate.identity)"),
                notify: .identityMismatch)
        } else if hello.nodeID == self.ownHello.nodeID {
            self.fail(
                context: context,
                MeshHandshakeError(.connectedToSelf, zh: "连接到了自己（\(hello.nodeID)）", en: "connected to itself (\(hello.nodeID))"),
                notify: .protocolViolation)
        } else {
            self.state = .done
            self.timeoutTask?.cancel()
            self.peerPromise.succeed(MeshPeer(certificate: certificate, hello: hello, remoteAddress: context.channel.remoteAddress))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.state != .done {
            self.state = .done
            self.timeoutTask?.cancel()
            self.peerPromise.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.state != .done {
            self.state = .done
            self.timeoutTask?.cancel()
            let error: MeshHandshakeError
            if case .refused(let refusal) = self.record.current {
                error = MeshHandshakeError(
                    .certificateRefused, zh: "对端证书被拒绝：\(refusal)", en: "the peer certificate was refused: \(refusal)")
            } else {
                error = MeshHandshakeError(
                    .closedBeforeHello, zh: "连接在 Hello 之前关闭（对端可能拒绝了本节点的证书）",
                    en: "the connection closed before Hello (the peer may have refused this node's certificate)")
            }
            self.peerPromise.fail(error)
        }
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, _ error: MeshHandshakeError, notify code: MeshErrorMessage.Code?) {
        guard self.state != .done else { return }
        self.state = .done
        self.timeoutTask?.cancel()
        var metadata: Logger.Metadata = ["mesh.handshake.error": "\(error)"]
        if let remote = context.channel.remoteAddress { metadata["mesh.peer.address"] = "\(remote)" }
        self.logger.warning("Hello 失败，关闭连接 / Hello failed, closing connection", metadata: metadata)
        self.peerPromise.fail(error)
        if let code {
            let message = MeshErrorMessage(code: code, message: "\(error.zh) / \(error.en)")
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(self.wrapOutboundOut(.error(message))).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }
}
