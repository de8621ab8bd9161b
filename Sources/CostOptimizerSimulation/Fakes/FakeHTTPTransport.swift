import CostOptimizer
import Foundation
import Synchronization

/// An in-memory `HTTPTransport`: records every request and answers from a queue, then from a handler.
///
/// Queued results are used first, in order (a `.failure` is thrown as a network failure); when the queue is empty the
/// handler answers, e.g. `FakeHTTPTransport(handler: simulator.handle)` for an in-memory Vast. With neither, `send`
/// throws `HTTPTransportError.unreachable`.
public final class FakeHTTPTransport: HTTPTransport, Sendable {
    private struct State {
        var queue: [Result<HTTPResponse, HTTPTransportError>]
        var requests: [HTTPRequest] = []
    }

    private let state: Mutex<State>
    private let handler: (@Sendable (HTTPRequest) async -> HTTPResponse)?

    /// A transport that answers from `responses`, in order.
    public init(responses: [Result<HTTPResponse, HTTPTransportError>] = []) {
        state = Mutex(State(queue: responses))
        handler = nil
    }

    /// A transport that answers every request with `handler` (after any queued results).
    public init(handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) {
        state = Mutex(State(queue: []))
        self.handler = handler
    }

    /// Adds one answer at the end of the queue.
    public func enqueue(_ result: Result<HTTPResponse, HTTPTransportError>) {
        state.withLock { $0.queue.append(result) }
    }

    /// Adds a response with a UTF-8 body at the end of the queue.
    public func enqueue(status: Int, body: String, headers: [String: String] = [:]) {
        enqueue(.success(HTTPResponse(status: status, headers: headers, body: Data(body.utf8))))
    }

    /// Every request sent so far, in order.
    public var requests: [HTTPRequest] { state.withLock { $0.requests } }

    /// Records the request and answers it.
    /// - Throws: a queued `HTTPTransportError`, or `.unreachable` when nothing is left to answer with.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let next = state.withLock { state -> Result<HTTPResponse, HTTPTransportError>? in
            state.requests.append(request)
            return state.queue.isEmpty ? nil : state.queue.removeFirst()
        }
        if let next { return try next.get() }
        if let handler { return await handler(request) }
        throw HTTPTransportError.unreachable(host: request.url.host ?? "fake", detail: "no scripted response left")
    }
}
