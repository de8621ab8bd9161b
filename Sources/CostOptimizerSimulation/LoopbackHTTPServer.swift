import CostOptimizer
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on 127.0.0.1 for the demo, integration and end-to-end tests.
///
/// One accept thread; each connection is served on a thread of its own: the request line, the headers and a
/// `Content-Length` body are read (chunked bodies are refused), the async handler answers, and the response goes back
/// with `Content-Length` and `Connection: close`, then the connection is closed. Headers are bounded to 64 KiB, bodies
/// to 8 MiB, reads and writes time out after 10 s, the handler gets 60 s, and at most 64 connections are served at
/// once; anything malformed gets a 4xx and never stops the server. `shutdown()` (or deinit) stops accepting, wakes
/// every blocked read and waits for the accept thread, so no thread is left behind.
public final class LoopbackHTTPServer: Sendable {
    /// The port the kernel picked.
    public let port: Int
    /// `http://127.0.0.1:PORT`, no trailing slash.
    public let baseURL: URL
    private let core: LoopbackServerCore

    private init(port: Int, core: LoopbackServerCore) {
        self.port = port
        self.baseURL = URL(string: "http://127.0.0.1:\(port)")!
        self.core = core
    }

    /// Binds 127.0.0.1 on a free port and starts serving with `handler`.
    /// - Throws: `LoopbackHTTPServerError` when the socket cannot be created, bound or listened on.
    public static func start(handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) throws
        -> LoopbackHTTPServer
    {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LoopbackHTTPServerError.socket(operation: "socket", code: errno) }
        do {
            var yes: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { throw LoopbackHTTPServerError.socket(operation: "bind", code: errno) }
            guard listen(fd, 128) == 0 else { throw LoopbackHTTPServerError.socket(operation: "listen", code: errno) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { throw LoopbackHTTPServerError.socket(operation: "getsockname", code: errno) }
            let port = Int(UInt16(bigEndian: address.sin_port))
            let core = LoopbackServerCore(listenFD: fd, base: "http://127.0.0.1:\(port)", handler: handler)
            let thread = Thread { core.acceptLoop() }
            thread.name = "loopback-http-\(port)"
            thread.start()
            return LoopbackHTTPServer(port: port, core: core)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Stops the server; idempotent. Connections still being served are cut off.
    public func shutdown() { core.shutdown() }

    deinit { core.shutdown() }
}

/// The loopback server could not start.
public enum LoopbackHTTPServerError: Error, Equatable, CustomStringConvertible {
    /// A socket call failed with this errno.
    case socket(operation: String, code: Int32)

    public var description: String {
        switch self {
        case .socket(let operation, let code):
            "cannot start the loopback HTTP server: \(operation) failed (\(String(cString: strerror(code))))"
        }
    }
}

/// The server's state and threads, apart from the public object so that its deinit can stop them.
private final class LoopbackServerCore: Sendable {
    struct State {
        var stopped = false
        var connections: Set<Int32> = []
    }

    static let maxHeaderBytes = 64 << 10
    static let maxBodyBytes = 8 << 20
    static let maxConnections = 64
    static let ioTimeoutSeconds = 10
    static let handlerTimeoutSeconds = 60.0

    let listenFD: Int32
    let base: String
    let handler: @Sendable (HTTPRequest) async -> HTTPResponse
    let state = Mutex(State())
    let acceptLoopEnded = DispatchSemaphore(value: 0)

    init(listenFD: Int32, base: String, handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) {
        self.listenFD = listenFD
        self.base = base
        self.handler = handler
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    func acceptLoop() {
        defer { acceptLoopEnded.signal() }
        while !isStopped {
            // poll with a timeout so the loop notices `stopped` even if shutdown(2) did not wake accept.
            var waiting = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&waiting, 1, 250)
            if ready <= 0 { continue }
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno != EINTR && errno != ECONNABORTED && errno != EAGAIN && !isStopped { usleep(10_000) }
                continue
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // child processes (ssh in the demo) must not inherit it
            let admitted = state.withLock { state -> Bool in
                guard !state.stopped, state.connections.count < Self.maxConnections else { return false }
                state.connections.insert(fd)
                return true
            }
            guard admitted else {
                Self.write(fd, HTTPResponse(status: 503, body: Data("server busy or stopping\n".utf8)))
                close(fd)
                continue
            }
            // A thread per connection (at most maxConnections): blocking reads and the wait for the handler must not
            // hold Dispatch's global pool, which has as few threads as cores.
            let thread = Thread { self.serve(fd) }
            thread.name = "loopback-http-connection"
            thread.start()
        }
    }

    func shutdown() {
        let first = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.stopped = true
            for fd in state.connections { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        _ = Glibc.shutdown(listenFD, Int32(SHUT_RDWR))
        acceptLoopEnded.wait()
        close(listenFD)
    }

    // MARK: - One connection

    private func serve(_ fd: Int32) {
        defer {
            // Closed under the lock, so shutdown() never shuts a descriptor number that was reused meanwhile.
            state.withLock { state in
                state.connections.remove(fd)
                close(fd)
            }
        }
        var timeout = timeval(tv_sec: Self.ioTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        switch LoopbackRequestReader(fd: fd, base: base).read() {
        case .closed:
            return
        case .invalid(let status, let reason):
            Self.write(fd, HTTPResponse(status: status, body: Data("\(reason)\n".utf8)))
        case .request(let request):
            Self.write(fd, answer(request))
        }
    }

    /// Runs the async handler from this connection thread, waiting at most `handlerTimeoutSeconds`.
    private func answer(_ request: HTTPRequest) -> HTTPResponse {
        let box = LoopbackResponseBox()
        let done = DispatchSemaphore(value: 0)
        let handler = self.handler
        Task.detached {
            let response = await handler(request)
            box.value.withLock { $0 = response }
            done.signal()
        }
        guard done.wait(timeout: .now() + Self.handlerTimeoutSeconds) == .success,
            let response = box.value.withLock({ $0 })
        else {
            return HTTPResponse(status: 503, body: Data("the handler did not answer in time\n".utf8))
        }
        return response
    }

    /// Writes the whole response; a peer that went away is ignored (MSG_NOSIGNAL: no SIGPIPE).
    static func write(_ fd: Int32, _ response: HTTPResponse) {
        var head = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        head += "Content-Length: \(response.body.count)\r\nConnection: close\r\n"
        let reserved: Set<String> = ["content-length", "connection", "transfer-encoding"]
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) {
            let safeName = !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
            let safeValue = !value.contains(where: { $0 == "\r" || $0 == "\n" })
            guard safeName, safeValue, !reserved.contains(name.lowercased()) else { continue }
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        var bytes = Array(head.utf8)
        bytes.append(contentsOf: response.body)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            if sent <= 0 { return }
            offset += sent
        }
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 307: "Temporary Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

/// Where the handler's task leaves its response for the waiting connection thread.
private final class LoopbackResponseBox: Sendable {
    let value = Mutex<HTTPResponse?>(nil)
}
