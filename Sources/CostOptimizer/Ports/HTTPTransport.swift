import Foundation

/// An HTTP request as a value.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var url: URL
    public var headers: [String: String]
    public var body: Data?
    /// Seconds before the transport gives up on this request.
    public var timeout: Double

    public init(method: String, url: URL, headers: [String: String] = [:], body: Data? = nil, timeout: Double = 30) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// An HTTP response as a value. Any status code is a response, not an error.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text, cut to `limit` characters, for error messages.
    public func bodyText(limit: Int = 200) -> String {
        let text = String(decoding: body.prefix(limit * 4), as: UTF8.self)
        return text.count > limit ? String(text.prefix(limit)) + "…" : text
    }
}

/// Sends HTTP requests: the port every provider and the webhook notifier use.
///
/// To fake it, record each request and answer from a queue; throw `HTTPTransportError` to simulate a network failure.
public protocol HTTPTransport: Sendable {
    /// Sends one request and returns the response, whatever its status.
    /// - Throws: `HTTPTransportError` when no response arrived (unreachable, timed out, cancelled).
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

/// No HTTP response arrived.
public enum HTTPTransportError: Error, Equatable, CustomStringConvertible {
    case timedOut(host: String)
    case unreachable(host: String, detail: String)
    case cancelled

    public var description: String {
        switch self {
        case .timedOut(let host): "no answer from \(host) before the timeout; check the network or the URL"
        case .unreachable(let host, let detail): "cannot reach \(host) (\(detail)); check the network or the URL"
        case .cancelled: "the request was cancelled"
        }
    }
}
