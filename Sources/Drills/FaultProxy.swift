import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fault-injecting TCP proxy for the mesh, in the drill's own process: one loopback listener
/// per direction (node A dialling node B), forwarding bytes to B's real mesh port. `cut(from:to:)`
/// turns one direction into a black hole: its open connections are closed and new ones are
/// accepted but never forwarded (the dialler's TLS handshake times out, as across a real
/// partition); `heal` forwards again. Needs no privileges or firewall tools, so it runs the same
/// on a laptop and in CI.
public final class FaultProxy: @unchecked Sendable {
    struct Direction: Hashable { let from: String, to: String }

    /// One proxied connection: both sockets, closed once by whichever pump ends last. Shutdown
    /// and close share a lock, so a late `shutdownBoth` never hits a reused descriptor number.
    final class Connection: @unchecked Sendable {
        let client: Int32
        let server: Int32?
        private let lock = NSLock()
        private var pumps: Int
        init(client: Int32, server: Int32?) { self.client = client; self.server = server; pumps = server == nil ? 1 : 2 }
        func shutdownBoth() {
            lock.withLock {
                guard pumps > 0 else { return }
                Glibc.shutdown(client, Int32(SHUT_RDWR))
                if let server { Glibc.shutdown(server, Int32(SHUT_RDWR)) }
            }
        }
        func pumpEnded() {
            lock.withLock {
                pumps -= 1
                guard pumps == 0 else { return }
                Glibc.close(client)
                if let server { Glibc.close(server) }
            }
        }
    }

    final class Listener: @unchecked Sendable {
        let fd: Int32
        let port: Int
        let targetPort: Int
        init(fd: Int32, port: Int, targetPort: Int) { self.fd = fd; self.port = port; self.targetPort = targetPort }
    }

    private let lock = NSLock()
    private var listeners: [Direction: Listener] = [:]
    private var cutDirections: Set<Direction> = []
    private var connections: [Direction: [ObjectIdentifier: Connection]] = [:]
    private var stopped = false

    public init() {}

    /// Starts the listener for `from` dialling `to` (whose real mesh port is `targetPort`); returns its port.
    public func add(from: String, to: String, targetPort: Int) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DrillError("代理 socket() 失败 / proxy socket() failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw DrillError("代理无法监听 / proxy cannot listen: \(String(cString: strerror(errno)))") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let listener = Listener(fd: fd, port: Int(UInt16(bigEndian: address.sin_port)), targetPort: targetPort)
        let direction = Direction(from: from, to: to)
        lock.withLock { listeners[direction] = listener }
        let thread = Thread { [self] in acceptLoop(listener, direction) }
        thread.name = "proxy \(from)->\(to)"
        thread.start()
        return listener.port
    }

    /// Black-holes `from` dialling `to`: open connections closed, new ones held and never forwarded.
    public func cut(from: String, to: String) {
        let direction = Direction(from: from, to: to)
        let open = lock.withLock { () -> [Connection] in
            cutDirections.insert(direction)
            return Array(connections[direction, default: [:]].values)
        }
        for c in open { c.shutdownBoth() }
    }

    /// Cuts every direction between `node` and each of `others`, both ways.
    public func isolate(_ node: String, from others: [String]) {
        for o in others where o != node { cut(from: node, to: o); cut(from: o, to: node) }
    }

    /// Forwards every direction again; connections held in a black hole are closed (their diallers redial).
    public func healAll() {
        let held = lock.withLock { () -> [Connection] in
            let dirs = cutDirections
            cutDirections = []
            return dirs.flatMap { connections[$0, default: [:]].values }
        }
        for c in held { c.shutdownBoth() }
    }

    public var cuts: [(from: String, to: String)] { lock.withLock { cutDirections.map { ($0.from, $0.to) } } }

    public func stop() {
        let (all, open) = lock.withLock { () -> ([Listener], [Connection]) in
            stopped = true
            return (Array(listeners.values), connections.values.flatMap(\.values))
        }
        for l in all { Glibc.shutdown(l.fd, Int32(SHUT_RDWR)); close(l.fd) }
        for c in open { c.shutdownBoth() }
    }

    // MARK: Plumbing (blocking sockets, a thread per pump: a handful of connections per drill)

    private func acceptLoop(_ listener: Listener, _ direction: Direction) {
        while true {
            let client = accept(listener.fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return // the listener was closed
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let (isCut, isStopped) = lock.withLock { (cutDirections.contains(direction), stopped) }
            if isStopped { close(client); return }
            if isCut {
                // The black hole: read and drop until healed (then closed) or the dialler gives up.
                let c = Connection(client: client, server: nil)
                track(c, direction)
                spawn("hole") { [self] in drain(client); untrack(c, direction); c.pumpEnded() }
                continue
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: listener.targetPort)
            let connected = server >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            guard connected else {
                // The node behind is down: refuse, as the node itself would.
                if server >= 0 { close(server) }
                close(client)
                continue
            }
            setsockopt(server, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let c = Connection(client: client, server: server)
            track(c, direction)
            for (a, b) in [(client, server), (server, client)] {
                spawn("pump") { [self] in
                    pump(from: a, to: b)
                    c.shutdownBoth()
                    untrack(c, direction)
                    c.pumpEnded()
                }
            }
        }
    }

    private func track(_ c: Connection, _ d: Direction) { lock.withLock { connections[d, default: [:]][ObjectIdentifier(c)] = c } }
    private func untrack(_ c: Connection, _ d: Direction) { lock.withLock { _ = connections[d]?.removeValue(forKey: ObjectIdentifier(c)) } }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let t = Thread(block: body)
        t.name = "proxy-" + name
        t.stackSize = 256 << 10
        t.start()
    }

    private func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m < 0, errno == EINTR { continue }
                if m <= 0 { return }
                sent += m
            }
        }
    }

    private func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
        }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return a
    }
}
