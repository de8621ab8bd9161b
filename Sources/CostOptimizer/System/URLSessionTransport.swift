import Dispatch
import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The real `HTTPTransport`: one ephemeral `URLSession` with no cache, no cookies and no stored credentials.
///
/// - Redirects are never followed: a 3xx comes back as a response, so an `Authorization` header can never travel to
///   another host.
/// - `request.timeout` bounds the whole exchange (connect, send, wait, read), not only the idle time between packets.
/// - Cancelling the calling task cancels the request at once (`HTTPTransportError.cancelled`).
/// - Errors name the host (and port) only: never the path, the query or a header.
/// - A response body larger than `maxResponseBytes` is refused (`HTTPTransportError.unreachable`).
public struct URLSessionTransport: HTTPTransport {
    private let owner: URLSessionOwner
    private var session: URLSession { owner.session }
    private var tracker: URLSessionTaskTracker { owner.tracker }

    /// - Parameter maxResponseBytes: the largest response body accepted (default 32 MiB).
    public init(maxResponseBytes: Int = 32 << 20) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.httpCookieStorage = nil
        configuration.httpCookieAcceptPolicy = .never
        configuration.httpShouldSetCookies = false
        configuration.urlCredentialStorage = nil
        let tracker = URLSessionTaskTracker(maxResponseBytes: maxResponseBytes)
        let session = URLSession(configuration: configuration, delegate: tracker, delegateQueue: nil)
        owner = URLSessionOwner(session: session, tracker: tracker)
    }

    /// Sends one request and returns the response, whatever its status (3xx included).
    /// - Throws: `HTTPTransportError` when no complete response arrived.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let host = Self.hostDescription(request.url)
        var urlRequest = URLRequest(url: request.url)
        urlRequest.httpMethod = request.method
        urlRequest.httpBody = request.body
        urlRequest.timeoutInterval = max(0.001, request.timeout)
        urlRequest.cachePolicy = .reloadIgnoringLocalCacheData
        urlRequest.httpShouldHandleCookies = false
        for (name, value) in request.headers {
            urlRequest.setValue(value, forHTTPHeaderField: name)
        }
        let task = session.dataTask(with: urlRequest)
        let id = task.taskIdentifier
        let tracker = self.tracker
        let deadline = max(0.001, request.timeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                tracker.register(id: id, host: host, continuation: continuation)
                if Task.isCancelled {
                    tracker.finish(id: id, with: .failure(HTTPTransportError.cancelled))
                    task.cancel()
                    return
                }
                Self.deadlines.asyncAfter(deadline: .now() + deadline) {
                    if tracker.finish(id: id, with: .failure(HTTPTransportError.timedOut(host: host))) {
                        task.cancel()
                    }
                }
                task.resume()
            }
        } onCancel: {
            tracker.finish(id: id, with: .failure(HTTPTransportError.cancelled))
            task.cancel()
        }
    }

    /// Fires the whole-exchange deadlines; its own queue, so busy global threads cannot delay a timeout.
    private static let deadlines = DispatchQueue(label: "URLSessionTransport.deadlines")

    /// `host` or `host:port`, the only part of a URL an error message may show.
    static func hostDescription(_ url: URL) -> String {
        let host = url.host ?? "unknown host"
        if let port = url.port { return "\(host):\(port)" }
        return host
    }
}

/// Keeps the session while a copy of the transport exists, then invalidates it (a session retains its delegate
/// until invalidated).
private final class URLSessionOwner: Sendable {
    let session: URLSession
    let tracker: URLSessionTaskTracker

    init(session: URLSession, tracker: URLSessionTaskTracker) {
        self.session = session
        self.tracker = tracker
    }

    deinit { session.finishTasksAndInvalidate() }
}

/// The session delegate: gathers each task's response and body and resumes its continuation exactly once.
///
/// Every continuation lives in a `Mutex`-guarded table keyed by task id; whoever removes an entry first (completion,
/// deadline, cancellation) resumes it, so late callbacks find nothing and do nothing.
final class URLSessionTaskTracker: NSObject, URLSessionDataDelegate, Sendable {
    private struct Pending {
        var host: String
        var continuation: CheckedContinuation<HTTPResponse, any Error>
        var response: HTTPURLResponse?
        var body = Data()
    }

    private let pending = Mutex<[Int: Pending]>([:])
    private let maxResponseBytes: Int

    init(maxResponseBytes: Int) {
        self.maxResponseBytes = maxResponseBytes
    }

    func register(id: Int, host: String, continuation: CheckedContinuation<HTTPResponse, any Error>) {
        pending.withLock { $0[id] = Pending(host: host, continuation: continuation) }
    }

    /// Resumes the task's continuation if nobody did yet; returns true when this call did.
    @discardableResult
    func finish(id: Int, with result: Result<HTTPResponse, HTTPTransportError>) -> Bool {
        guard let entry = pending.withLock({ $0.removeValue(forKey: id) }) else { return false }
        entry.continuation.resume(with: result.mapError { $0 as any Error })
        return true
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        pending.withLock { $0[dataTask.taskIdentifier]?.response = response as? HTTPURLResponse }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let id = dataTask.taskIdentifier
        let tooLarge = pending.withLock { table -> String? in
            guard var entry = table[id] else { return nil }
            if entry.body.count + data.count > maxResponseBytes { return entry.host }
            entry.body.append(data)
            table[id] = entry
            return nil
        }
        if let host = tooLarge {
            let detail = "the response was larger than \(maxResponseBytes) bytes"
            finish(id: id, with: .failure(.unreachable(host: host, detail: detail)))
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let id = task.taskIdentifier
        guard let entry = pending.withLock({ $0[id] }) else { return }
        if let error {
            finish(id: id, with: .failure(Self.transportError(error, host: entry.host)))
            return
        }
        guard let response = entry.response ?? (task.response as? HTTPURLResponse) else {
            finish(id: id, with: .failure(.unreachable(host: entry.host, detail: "the answer was not HTTP")))
            return
        }
        var headers: [String: String] = [:]
        for (name, value) in response.allHeaderFields {
            headers[String(describing: name)] = String(describing: value)
        }
        finish(id: id, with: .success(HTTPResponse(status: response.statusCode, headers: headers, body: entry.body)))
    }

    /// Maps a URLSession error to a message that names the host and never the URL, a header or the system text.
    static func transportError(_ error: any Error, host: String) -> HTTPTransportError {
        guard let urlError = error as? URLError else {
            return .unreachable(host: host, detail: "transport failure")
        }
        switch urlError.code {
        case .cancelled: return .cancelled
        case .timedOut: return .timedOut(host: host)
        case .cannotFindHost, .dnsLookupFailed: return .unreachable(host: host, detail: "host name not found")
        case .cannotConnectToHost: return .unreachable(host: host, detail: "connection refused")
        case .networkConnectionLost: return .unreachable(host: host, detail: "connection lost")
        case .notConnectedToInternet: return .unreachable(host: host, detail: "no network")
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
            .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot, .clientCertificateRejected:
            return .unreachable(host: host, detail: "TLS handshake failed")
        case .badServerResponse, .cannotParseResponse: return .unreachable(host: host, detail: "malformed HTTP answer")
        case .unsupportedURL, .badURL: return .unreachable(host: host, detail: "unsupported URL")
        default: return .unreachable(host: host, detail: "URL error \(urlError.code.rawValue)")
        }
    }
}
