import CostOptimizer
import CostOptimizerSimulation
import Foundation
import Testing

@Suite("URLSession transport")
struct URLSessionTransportTests {
    static func slowServer(seconds: Double) throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer.start { _ in
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            return HTTPResponse(status: 200)
        }
    }

    @Test("A redirect comes back as the 3xx response and is never followed")
    func noRedirects() async throws {
        let elsewhere = WebhookRecorder()
        let other = try LoopbackHTTPServer.start(handler: elsewhere.handle)
        defer { other.shutdown() }
        let server = try LoopbackHTTPServer.start { _ in
            HTTPResponse(status: 302, headers: ["Location": other.baseURL.absoluteString + "/steal"])
        }
        defer { server.shutdown() }
        let response = try await URLSessionTransport().send(
            HTTPRequest(method: "GET", url: server.baseURL, headers: ["Authorization": "Bearer secret"]))
        #expect(response.status == 302)
        #expect(elsewhere.requests.isEmpty)
    }

    @Test("request.timeout bounds the whole exchange and the error names the host only")
    func timeout() async throws {
        let server = try Self.slowServer(seconds: 60)
        defer { server.shutdown() }
        let url = URL(string: server.baseURL.absoluteString + "/api/v1/instances/?api_key=secret-value")!
        let started = Date()
        do {
            _ = try await URLSessionTransport().send(
                HTTPRequest(method: "GET", url: url, headers: ["Authorization": "Bearer secret-value"], timeout: 0.3))
            Issue.record("expected a timeout")
        } catch let error as HTTPTransportError {
            #expect(error == .timedOut(host: "127.0.0.1:\(server.port)"))
            #expect(!error.description.contains("secret-value"))
            #expect(!error.description.contains("/api/"))
        }
        #expect(Date().timeIntervalSince(started) < 20)  // far below the server's 60 s
    }

    @Test("Cancelling the task cancels the request at once")
    func cancellation() async throws {
        let server = try Self.slowServer(seconds: 60)
        defer { server.shutdown() }
        let url = server.baseURL
        let started = Date()
        let task = Task { try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url, timeout: 90)) }
        try await Task.sleep(nanoseconds: 200_000_000)
        task.cancel()
        await #expect(throws: HTTPTransportError.cancelled) { _ = try await task.value }
        #expect(Date().timeIntervalSince(started) < 20)  // far below the 60 s server and the 90 s timeout
    }

    @Test("A task cancelled before sending never reaches the server")
    func cancelledBeforeSending() async throws {
        let recorder = WebhookRecorder()
        let server = try LoopbackHTTPServer.start(handler: recorder.handle)
        defer { server.shutdown() }
        let url = server.baseURL
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await URLSessionTransport().send(HTTPRequest(method: "POST", url: url, body: Data("x".utf8)))
        }
        await #expect(throws: HTTPTransportError.cancelled) { _ = try await task.value }
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(recorder.requests.isEmpty)
    }

    @Test("A closed port is unreachable: connection refused")
    func refused() async throws {
        let server = try LoopbackHTTPServer.start { _ in HTTPResponse(status: 200) }
        let url = URL(string: server.baseURL.absoluteString + "/path?token=secret-value")!
        let port = server.port
        server.shutdown()
        await #expect(throws: HTTPTransportError.unreachable(host: "127.0.0.1:\(port)", detail: "connection refused")) {
            _ = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url, timeout: 5))
        }
    }

    @Test("A response larger than the limit is refused")
    func responseLimit() async throws {
        let server = try LoopbackHTTPServer.start { _ in
            HTTPResponse(status: 200, body: Data(repeating: 65, count: 200_000))
        }
        defer { server.shutdown() }
        await #expect {
            _ = try await URLSessionTransport(maxResponseBytes: 1_000).send(
                HTTPRequest(method: "GET", url: server.baseURL))
        } throws: { error in
            guard case HTTPTransportError.unreachable(_, let detail) = error else { return false }
            return detail.contains("larger than 1000 bytes")
        }
    }

    @Test("Each response status, 4xx and 5xx included, is a response, not an error", arguments: [204, 404, 429, 503])
    func statuses(status: Int) async throws {
        let server = try LoopbackHTTPServer.start { _ in HTTPResponse(status: status, body: Data("b".utf8)) }
        defer { server.shutdown() }
        let response = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: server.baseURL))
        #expect(response.status == status)
    }
}
