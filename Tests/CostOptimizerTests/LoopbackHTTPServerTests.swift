import CostOptimizer
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Loopback HTTP server")
struct LoopbackHTTPServerTests {
    /// Sends raw bytes on a fresh connection and reads until the server closes it, on a thread of its own: blocking
    /// socket calls must not hold the cooperative threads the server's handler needs, nor Dispatch's small pool.
    static func rawExchange(port: Int, _ text: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try blockingExchange(port: port, text) }) }.start()
        }
    }

    static func blockingExchange(port: Int, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)  // an upper bound for a loaded CI machine, not a timing check
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }
            offset += sent
        }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received <= 0 { break }
            answer += chunk[..<received]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    static func echo(_ request: HTTPRequest) async -> HTTPResponse {
        let summary = "\(request.method) \(request.url.absoluteString) body=\(request.body?.count ?? 0)"
        return HTTPResponse(status: 200, headers: ["X-Test": "yes"], body: Data(summary.utf8))
    }

    @Test("Method, URL, headers and body reach the handler, and the response comes back whole")
    func roundTrip() async throws {
        let seen = Mutex<HTTPRequest?>(nil)
        let server = try LoopbackHTTPServer.start { request in
            seen.withLock { $0 = request }
            return HTTPResponse(status: 201, headers: ["X-Answer": "42"], body: Data("created".utf8))
        }
        defer { server.shutdown() }
        #expect(server.baseURL.absoluteString == "http://127.0.0.1:\(server.port)")
        let url = server.baseURL.appendingPathComponent("api/v0/instances/1/")
        let request = HTTPRequest(
            method: "PUT", url: URL(string: url.absoluteString + "?owner=me&x=a%20b")!,
            headers: ["Authorization": "Bearer k", "Content-Type": "application/json"],
            body: Data(#"{"state":"stopped"}"#.utf8))
        let response = try await URLSessionTransport().send(request)
        #expect(response.status == 201)
        #expect(response.body == Data("created".utf8))
        #expect(response.headers.first { $0.key.lowercased() == "x-answer" }?.value == "42")

        let received = try #require(seen.withLock { $0 })
        #expect(received.method == "PUT")
        #expect(received.url.absoluteString == "http://127.0.0.1:\(server.port)/api/v0/instances/1/?owner=me&x=a%20b")
        #expect(RecordedRequest(received).header("authorization") == "Bearer k")
        #expect(received.body == Data(#"{"state":"stopped"}"#.utf8))
    }

    /// One bad request and the status it must get; `BIG` in the text stands for 70 000 bytes.
    struct BadRequest: Sendable, CustomTestStringConvertible {
        var text: String
        var status: String
        init(_ text: String, _ status: String) {
            self.text = text
            self.status = status
        }
        var testDescription: String { "\(text.debugDescription) → \(status)" }
        var bytes: String { text.replacingOccurrences(of: "BIG", with: String(repeating: "a", count: 70_000)) }
    }

    @Test(
        "Malformed or oversized requests get a 4xx and the server keeps serving",
        arguments: [
            BadRequest("GARBAGE\r\n\r\n", "400"),
            BadRequest("GET nopath HTTP/1.1\r\n\r\n", "400"),
            BadRequest("GET / HTTP/2.0\r\n\r\n", "505"),
            BadRequest("GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400"),
            BadRequest("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "400"),
            BadRequest("POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", "413"),
            BadRequest("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "411"),
            BadRequest("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", "400"),
            BadRequest("GET / HTTP/1.1\r\nX-Big: BIG\r\n\r\n", "431"),
            BadRequest("GET / HTTP/1.1\r\nHost: x", "400"),
        ])
    func malformed(bad: BadRequest) async throws {
        let server = try LoopbackHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let answer = try await Self.rawExchange(port: server.port, bad.bytes)
        #expect(answer.hasPrefix("HTTP/1.1 \(bad.status) "))
        #expect(answer.contains("Connection: close\r\n"))
        let good = try await Self.rawExchange(port: server.port, "GET /ok?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(good.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(good.hasSuffix("GET http://127.0.0.1:\(server.port)/ok?q=1 body=0"))
    }

    @Test("Connections closed before or without a request do not disturb the server")
    func halfClosed() async throws {
        let server = try LoopbackHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        #expect(try await Self.rawExchange(port: server.port, "") == "")
        #expect(try await Self.rawExchange(port: server.port, "") == "")
        let good = try await Self.rawExchange(port: server.port, "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        #expect(good.hasSuffix("POST http://127.0.0.1:\(server.port)/p body=3"))
    }

    @Test("Expect: 100-continue gets the interim answer before the body is read")
    func expectContinue() async throws {
        let server = try LoopbackHTTPServer.start(handler: Self.echo)
        defer { server.shutdown() }
        let answer = try await Self.rawExchange(
            port: server.port, "POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
        #expect(answer.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"))
        #expect(answer.hasSuffix("POST http://127.0.0.1:\(server.port)/c body=3"))
    }

    @Test("Shutdown is prompt and idempotent, even with a request in flight, and the port then refuses")
    func shutdownIsPrompt() async throws {
        let server = try LoopbackHTTPServer.start { _ in
            try? await Task.sleep(nanoseconds: 60_000_000_000)
            return HTTPResponse(status: 200)
        }
        let url = server.baseURL
        let inFlight = Task {
            try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url, timeout: 90))
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        let started = Date()
        server.shutdown()
        server.shutdown()
        #expect(Date().timeIntervalSince(started) < 20)  // far below the 60 s handler
        await #expect(throws: HTTPTransportError.self) { _ = try await inFlight.value }
        await #expect(throws: HTTPTransportError.self) {
            _ = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url, timeout: 2))
        }
    }

    @Test("A server that is simply released stops too")
    func releasedServerStops() async throws {
        var server: LoopbackHTTPServer? = try LoopbackHTTPServer.start(handler: Self.echo)
        let url = try #require(server?.baseURL)
        _ = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url))
        server = nil
        await #expect(throws: HTTPTransportError.self) {
            _ = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url, timeout: 2))
        }
    }
}
