import CostOptimizer
import Foundation
import Synchronization

/// A webhook endpoint that records what it receives: use `handle` as a `LoopbackHTTPServer` or `FakeHTTPTransport`
/// handler.
///
/// A POST is answered 200 and its body kept in `bodies`, unless a scripted failure is pending; other methods get 405.
public final class WebhookRecorder: Sendable {
    private struct State {
        var bodies: [Data] = []
        var requests: [RecordedRequest] = []
        var failures: [Int] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The bodies of the POSTs answered 200, in order.
    public var bodies: [Data] { state.withLock { $0.bodies } }

    /// Every request received, failed deliveries included, in order.
    public var requests: [RecordedRequest] { state.withLock { $0.requests } }

    /// Answers the next `times` POSTs with `status` (and does not keep their bodies).
    public func enqueueFailure(status: Int = 500, times: Int = 1) {
        state.withLock { $0.failures += Array(repeating: status, count: max(0, times)) }
    }

    /// Records the request and answers it.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let recorded = RecordedRequest(request)
        return state.withLock { state in
            state.requests.append(recorded)
            guard recorded.method.uppercased() == "POST" else {
                return HTTPResponse(status: 405, body: Data("POST only\n".utf8))
            }
            if !state.failures.isEmpty {
                let status = state.failures.removeFirst()
                return HTTPResponse(status: status, body: Data("scripted failure\n".utf8))
            }
            state.bodies.append(recorded.body ?? Data())
            return HTTPResponse(status: 200, body: Data("ok\n".utf8))
        }
    }
}
