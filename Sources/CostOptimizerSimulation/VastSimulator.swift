import CostOptimizer
import Foundation
import Synchronization

/// An in-memory Vast.ai account that speaks Vast's real paths and shapes (`shared/docs/providers.md` §1).
///
/// Serves `GET /api/v1/instances/` (limit/after_token paging), `GET /api/v0/instances/?owner=me`,
/// `GET|PUT|DELETE /api/v0/instances/{id}/` (a GET of an unknown id answers `{"instances": null}`). Every request is
/// recorded first; scripted faults are answered next (or, with `afterApplying`, after the request took effect); then
/// the Bearer key is checked (401 `auth_error` otherwise). Every change a request made is listed in `appliedActions`.
/// Use `handle` as a `LoopbackHTTPServer` handler or as a `FakeHTTPTransport` handler. A stop or start takes effect at
/// once (no loading phase).
public final class VastSimulator: Sendable {
    private struct State {
        var instances: [Int: SimulatedVastInstance] = [:]
        var script = FaultScript()
        var applied: [String] = []
        var v1Available: Bool
    }

    private let apiKey: String
    private let pageSize: Int
    private let state: Mutex<State>

    /// - Parameters:
    ///   - apiKey: the only key accepted, as `Authorization: Bearer <apiKey>`.
    ///   - pageSize: the most instances a v1 page holds (Vast's own maximum, 25, also applies).
    ///   - v1Available: false answers 404 on `/api/v1/...`, like a server with only the v0 API.
    public init(apiKey: String, pageSize: Int = 25, v1Available: Bool = true) {
        self.apiKey = apiKey
        self.pageSize = max(1, pageSize)
        self.state = Mutex(State(v1Available: v1Available))
    }

    // MARK: - Fleet

    /// Adds an instance, or replaces the one with the same id.
    public func add(_ instance: SimulatedVastInstance) {
        state.withLock { $0.instances[instance.id] = instance }
    }

    /// Adds several instances.
    public func add(contentsOf instances: [SimulatedVastInstance]) {
        state.withLock { state in
            for instance in instances { state.instances[instance.id] = instance }
        }
    }

    /// Changes an instance in place; returns false when there is no such id.
    @discardableResult
    public func update(id: Int, _ change: (inout SimulatedVastInstance) -> Void) -> Bool {
        state.withLock { state in
            guard var instance = state.instances[id] else { return false }
            change(&instance)
            instance.id = id
            state.instances[id] = instance
            return true
        }
    }

    /// Removes an instance, as if it was destroyed elsewhere.
    public func remove(id: Int) {
        _ = state.withLock { $0.instances.removeValue(forKey: id) }
    }

    /// Every instance, by ascending id.
    public var instances: [SimulatedVastInstance] {
        state.withLock { $0.instances.values.sorted { $0.id < $1.id } }
    }

    /// The instance with this id, if it exists.
    public func instance(id: Int) -> SimulatedVastInstance? {
        state.withLock { $0.instances[id] }
    }

    /// Turns the v1 listing on or off (off answers 404, so clients fall back to v0).
    public func setV1Available(_ available: Bool) {
        state.withLock { $0.v1Available = available }
    }

    // MARK: - Faults and the request log

    /// Answers the next `times` requests whose method matches (`*` for any) and whose path starts with `pathPrefix`
    /// with `response`. Faults are matched in the order added.
    ///
    /// - Parameter afterApplying: false (the default) answers before any normal handling, authentication included,
    ///   so the request changes nothing (a refusal such as a 429). True handles the request normally first, so a stop
    ///   or delete takes effect, and then answers `response` instead of the real answer: a gateway timeout (504) or
    ///   a 500 that comes after the provider applied the call.
    public func enqueueFault(
        method: String, pathPrefix: String, response: HTTPResponse, times: Int = 1, afterApplying: Bool = false
    ) {
        state.withLock {
            $0.script.enqueue(
                method: method, pathPrefix: pathPrefix, response: response, times: times, afterApplying: afterApplying)
        }
    }

    /// Every request received, faulted ones included, in order.
    public var requests: [RecordedRequest] { state.withLock { $0.script.requests } }

    /// Every change made through the API, in order: `stop 42`, `start 42`, `label 42`, `destroy 42`. A refused or
    /// faulted request (without `afterApplying`) adds nothing, so a count here is how often a call took effect.
    public var appliedActions: [String] { state.withLock { $0.applied } }

    /// Forgets the recorded requests.
    public func clearRequests() {
        state.withLock { $0.script.clearRequests() }
    }

    // MARK: - Handling

    /// Answers one request as Vast would.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let recorded = RecordedRequest(request)
        let fault = state.withLock { $0.script.record(recorded) }
        return FaultScript.answer(fault) { route(recorded) }
    }

    /// The normal answer to a request, after the faults.
    private func route(_ recorded: RecordedRequest) -> HTTPResponse {
        guard recorded.header("Authorization") == "Bearer \(apiKey)" else {
            return Self.json(401, ["success": false, "error": "auth_error", "msg": "Invalid user key"])
        }
        let segments = recorded.path.split(separator: "/").map(String.init)
        let method = recorded.method.uppercased()
        if method == "GET", segments == ["api", "v1", "instances"] { return listV1(recorded.queryItems) }
        if method == "GET", segments == ["api", "v0", "instances"] {
            let all = instances
            return Self.json(200, ["instances_found": all.count, "instances": all.map { $0.jsonObject() }])
        }
        if segments.count == 4, segments.starts(with: ["api", "v0", "instances"]), let id = Int(segments[3]) {
            return manage(method: method, id: id, body: recorded.body)
        }
        return Self.notFound
    }

    private func listV1(_ query: [String: String]) -> HTTPResponse {
        guard state.withLock({ $0.v1Available }) else { return Self.notFound }
        var limit = query["limit"].flatMap { Int($0) } ?? 25
        if limit <= 0 { limit = 5 }
        limit = min(limit, 25, pageSize)
        var afterID = Int.min
        if let token = query["after_token"] {
            guard let id = Self.decodeToken(token) else {
                return Self.json(400, ["error": "invalid_token", "msg": "after_token is not a valid page token"])
            }
            afterID = id
        }
        let all = instances
        let page = Array(all.filter { $0.id > afterID }.prefix(limit))
        let more = page.last.map { last in all.contains { $0.id > last.id } } ?? false
        var labelCounts: [String: Int] = [:]
        for instance in all { labelCounts[instance.label ?? "", default: 0] += 1 }
        let nextToken: Any = more ? Self.encodeToken(page.last!.id) : NSNull()
        return Self.json(
            200,
            [
                "success": true, "instances_found": page.count, "total_instances": all.count,
                "label_counts": labelCounts, "next_token": nextToken, "instances": page.map { $0.jsonObject() },
            ])
    }

    private func manage(method: String, id: Int, body: Data?) -> HTTPResponse {
        switch method {
        case "GET":
            let object: Any = instance(id: id)?.jsonObject() ?? NSNull()
            return Self.json(200, ["instances": object])
        case "PUT":
            guard instance(id: id) != nil else { return Self.noSuchInstance(id) }
            let fields = body.flatMap { try? JSONSerialization.jsonObject(with: $0) } as? [String: Any] ?? [:]
            if let target = fields["state"] as? String {
                guard target == "stopped" || target == "running" else {
                    let msg = "state must be stopped or running"
                    return Self.json(400, ["success": false, "error": "invalid_args", "msg": msg])
                }
                update(id: id) {
                    $0.actualStatus = target
                    $0.intendedStatus = target
                    $0.curState = target
                }
                state.withLock { $0.applied.append("\(target == "stopped" ? "stop" : "start") \(id)") }
                return Self.json(200, ["success": true])
            }
            if let label = fields["label"] as? String {
                update(id: id) { $0.label = label }
                state.withLock { $0.applied.append("label \(id)") }
                return Self.json(200, ["success": true, "msg": "label for \(id) set to '\(label)'"])
            }
            return Self.json(400, ["success": false, "error": "invalid_args", "msg": "nothing to change"])
        case "DELETE":
            let removed = state.withLock { state -> Bool in
                guard state.instances.removeValue(forKey: id) != nil else { return false }
                state.applied.append("destroy \(id)")
                return true
            }
            guard removed else { return Self.noSuchInstance(id) }
            return Self.json(200, ["success": true, "msg": "Instance destroyed successfully"])
        default:
            return Self.json(405, ["success": false, "error": "invalid_args", "msg": "method not allowed"])
        }
    }

    // MARK: - Helpers

    private static let notFound = HTTPResponse(
        status: 404, headers: ["Content-Type": "application/json"], body: Data(#"{"detail":"Not Found"}"#.utf8))

    private static func noSuchInstance(_ id: Int) -> HTTPResponse {
        json(404, ["success": false, "error": "no_such_instance", "msg": "Instance \(id) not found."])
    }

    private static func json(_ status: Int, _ object: [String: Any]) -> HTTPResponse {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    /// An opaque-looking keyset token: base64 of `after:<id>`.
    private static func encodeToken(_ id: Int) -> String {
        Data("after:\(id)".utf8).base64EncodedString()
    }

    private static func decodeToken(_ token: String) -> Int? {
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("after:")
        else { return nil }
        return Int(text.dropFirst("after:".count))
    }
}
