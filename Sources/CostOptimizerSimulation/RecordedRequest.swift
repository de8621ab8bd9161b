import CostOptimizer
import Foundation

/// One request a simulator received, as tests assert it.
public struct RecordedRequest: Sendable, Equatable {
    public var method: String
    /// The path, e.g. `/api/v1/instances/`.
    public var path: String
    /// The raw query string without `?`, or nil when the URL had none.
    public var query: String?
    public var headers: [String: String]
    public var body: Data?

    public init(method: String, path: String, query: String?, headers: [String: String], body: Data?) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Records an `HTTPRequest`.
    public init(_ request: HTTPRequest) {
        let components = URLComponents(url: request.url, resolvingAgainstBaseURL: false)
        self.init(
            method: request.method, path: components?.percentEncodedPath ?? request.url.path,
            query: components?.percentEncodedQuery, headers: request.headers, body: request.body)
    }

    /// The decoded query parameters; a repeated name keeps its last value.
    public var queryItems: [String: String] {
        var components = URLComponents()
        components.percentEncodedQuery = query
        var items: [String: String] = [:]
        for item in components.queryItems ?? [] { items[item.name] = item.value ?? "" }
        return items
    }

    /// A header's value, the name compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }

    /// `METHOD /path?query`, for readable test expectations.
    public var line: String {
        "\(method) \(path)" + (query.map { "?\($0)" } ?? "")
    }
}
