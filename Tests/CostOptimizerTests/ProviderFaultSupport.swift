import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

extension RetryPolicy {
    /// The default policy without jitter, so tests can assert the exact backoff sleeps.
    static let exact = RetryPolicy(jitter: RetryPolicy.noJitter)
}

/// A transport in front of a simulator's handler that lets the handler answer (so a stop or delete takes effect) and
/// then throws `HTTPTransportError.timedOut`, as when the connection drops after the provider applied the call.
///
/// Only the first `times` requests whose method and path prefix match are dropped; every request, dropped or not, is
/// handled by the simulator and recorded there.
final class DropAfterHandlingTransport: HTTPTransport {
    private let handler: @Sendable (HTTPRequest) async -> HTTPResponse
    private let method: String
    private let pathPrefix: String
    private let remaining: Mutex<Int>

    init(
        method: String, pathPrefix: String, times: Int = 1,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) {
        self.handler = handler
        self.method = method.uppercased()
        self.pathPrefix = pathPrefix
        self.remaining = Mutex(times)
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let response = await handler(request)
        let matches = request.method.uppercased() == method && request.url.path.hasPrefix(pathPrefix)
        let drop = matches && remaining.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if drop { throw HTTPTransportError.timedOut(host: request.url.host ?? "simulator") }
        return response
    }
}

extension HTTPResponse {
    /// A 504 from a gateway, the usual answer when the upstream took too long.
    static let gatewayTimeout = HTTPResponse(
        status: 504, headers: ["Content-Type": "text/html"], body: Data("<html>504 Gateway Time-out</html>".utf8))
}
