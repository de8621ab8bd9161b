import CostOptimizer
import Foundation
import Synchronization

/// In-memory Compute Engine projects that speak GCE's real paths and shapes (`shared/docs/providers.md` §3), plus the
/// OAuth token endpoint and the metadata server, so one loopback server can stand in for all of Google.
///
/// Serves, under `/compute/v1/projects/{project}`:
/// - `GET /aggregated/instances` (`pageToken`, `maxResults`, `returnPartialSuccess`): every scope on every page,
///   with `instances` or a `NO_RESULTS_ON_PAGE` warning; unreachable zones (`setUnreachable`) are listed in
///   `unreachables` with `returnPartialSuccess=true`, else given an `UNREACHABLE` warning; their instances are missing.
/// - `GET /zones/{zone}/instances` (paged, `items` omitted when empty), `GET /zones/{zone}/instances/{name}`.
/// - `POST /zones/{zone}/instances/{name}/stop` and `DELETE /zones/{zone}/instances/{name}` (`requestId` de-duplicates:
///   the same id returns the same operation): each returns an Operation that moves PENDING → RUNNING → DONE, one step
///   per `GET /zones/{zone}/operations/{name}` or `POST .../wait`. The instance becomes `STOPPING` when the operation
///   runs and `TERMINATED` (without its ephemeral `natIP`) or deleted when it is done. `failNextOperation` makes the
///   next operation end DONE with `error.errors[]` and change nothing. Operation and instance `selfLink`s use
///   `linkBase`, a host other than the one serving, as Google's do.
/// - A deletion-protected instance answers DELETE with 400 in Google's envelope; an unknown instance or operation
///   answers 404 `notFound`.
///
/// Also `POST /token` (form `grant_type` = the JWT-bearer grant and a three-part `assertion` whose header says RS256;
/// the signature is not verified here: tests verify it with openssl) and
/// `GET /computeMetadata/v1/instance/service-accounts/default/token` (requires `Metadata-Flavor: Google`); both issue
/// a new token, accepted from then on.
///
/// Every request is recorded first; scripted faults are answered next (or, with `afterApplying`, after the request
/// took effect: a stop or delete then starts its operation but the caller gets the fault); then compute paths check
/// `Authorization: Bearer <token>` against the accepted tokens (401 in Google's envelope otherwise).
public final class GCESimulator: Sendable {
    /// The project of `SimulatedGCEInstance`'s default.
    public static let defaultProject = "sim-project"
    /// The JWT-bearer grant type the token endpoint accepts.
    public static let jwtGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    private struct OperationFailure {
        var code: String
        var message: String
        var httpStatus: Int
    }

    private struct Operation {
        var name: String
        var id: String
        var project: String
        var zone: String
        var type: String
        var targetName: String
        var targetID: String
        var step: Int = 0
        var failure: OperationFailure?
        /// The target's status before the operation started, restored when it fails.
        var originalStatus: String
    }

    private struct State {
        var instances: [String: SimulatedGCEInstance] = [:]
        var operations: [String: Operation] = [:]
        var requestIDs: [String: String] = [:]
        var script = FaultScript()
        var acceptedTokens: Set<String>
        var issuedTokens: [String] = []
        var assertions: [String] = []
        var unreachable: Set<String> = []
        var zones: Set<String>
        var pendingFailures: [OperationFailure] = []
        var operationsCreated = 0
    }

    private let pageSize: Int
    private let linkBase: String
    private let tokenLifetime: Int
    private let state: Mutex<State>

    /// - Parameters:
    ///   - acceptedTokens: Bearer tokens accepted from the start (a `GCP_ACCESS_TOKEN`).
    ///   - pageSize: the most instances a list page holds (Google's own maximum, 500, also applies).
    ///   - linkBase: the scheme and host of every `selfLink`, `zone` and other resource URL.
    ///   - zones: zones that exist even without instances (each is a scope of the aggregated list).
    ///   - tokenLifetime: `expires_in` of the tokens issued.
    public init(
        acceptedTokens: [String] = [], pageSize: Int = 500, linkBase: String = "https://www.googleapis.com",
        zones: [String] = ["us-central1-a", "us-central1-b", "europe-west4-a"], tokenLifetime: Int = 3599
    ) {
        self.pageSize = max(1, min(pageSize, 500))
        self.linkBase = linkBase
        self.tokenLifetime = tokenLifetime
        self.state = Mutex(State(acceptedTokens: Set(acceptedTokens), zones: Set(zones)))
    }

    // MARK: - Fleet

    private static func key(project: String, zone: String, name: String) -> String { "\(project)/\(zone)/\(name)" }

    /// Adds an instance, or replaces the one with the same project, zone and name.
    public func add(_ instance: SimulatedGCEInstance) {
        state.withLock {
            $0.instances[Self.key(project: instance.project, zone: instance.zone, name: instance.name)] = instance
        }
    }

    /// Adds several instances.
    public func add(contentsOf instances: [SimulatedGCEInstance]) {
        for instance in instances { add(instance) }
    }

    /// Changes an instance in place; returns false when there is no such instance.
    @discardableResult
    public func update(
        name: String, zone: String, project: String = defaultProject, _ change: (inout SimulatedGCEInstance) -> Void
    ) -> Bool {
        state.withLock { state in
            let key = Self.key(project: project, zone: zone, name: name)
            guard var instance = state.instances[key] else { return false }
            change(&instance)
            instance.name = name
            instance.zone = zone
            instance.project = project
            state.instances[key] = instance
            return true
        }
    }

    /// Removes an instance, as if it was deleted elsewhere.
    public func remove(name: String, zone: String, project: String = defaultProject) {
        _ = state.withLock { $0.instances.removeValue(forKey: Self.key(project: project, zone: zone, name: name)) }
    }

    /// Every instance of every project, by project, zone and name.
    public var instances: [SimulatedGCEInstance] {
        state.withLock { Self.sorted(Array($0.instances.values)) }
    }

    /// The instance with this name in this zone, if it exists.
    public func instance(name: String, zone: String, project: String = defaultProject) -> SimulatedGCEInstance? {
        state.withLock { $0.instances[Self.key(project: project, zone: zone, name: name)] }
    }

    /// Makes these zones unreachable (an empty list makes every zone reachable again).
    public func setUnreachable(_ zones: [String]) {
        state.withLock { $0.unreachable = Set(zones) }
    }

    /// The next operation created ends DONE with this error (`error.errors[]`, `httpErrorStatusCode`) and changes
    /// nothing. Several calls script several operations, in order.
    public func failNextOperation(
        code: String = "RESOURCE_NOT_READY", message: String = "The resource is not ready", httpStatus: Int = 400
    ) {
        state.withLock {
            $0.pendingFailures.append(OperationFailure(code: code, message: message, httpStatus: httpStatus))
        }
    }

    /// How many operations were created (a request repeated with the same `requestId` creates none).
    public var operationsCreated: Int { state.withLock { $0.operationsCreated } }

    // MARK: - Tokens

    /// Accepts one more Bearer token.
    public func acceptToken(_ token: String) {
        state.withLock { _ = $0.acceptedTokens.insert(token) }
    }

    /// Stops accepting every token issued or accepted so far (as if they expired).
    public func revokeTokens() {
        state.withLock { $0.acceptedTokens.removeAll() }
    }

    /// Every token the token endpoint and the metadata server issued, in order.
    public var issuedTokens: [String] { state.withLock { $0.issuedTokens } }

    /// Every JWT assertion the token endpoint received with a valid grant type, in order.
    public var receivedAssertions: [String] { state.withLock { $0.assertions } }

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

    /// Forgets the recorded requests.
    public func clearRequests() {
        state.withLock { $0.script.clearRequests() }
    }

    /// Google's API error envelope, for scripting faults, e.g.
    /// `errorResponse(403, reason: "rateLimitExceeded", message: "Rate Limit Exceeded", status: "PERMISSION_DENIED")`.
    public static func errorResponse(_ code: Int, reason: String, message: String, status: String) -> HTTPResponse {
        json(
            code,
            [
                "error": [
                    "code": code, "message": message, "status": status,
                    "errors": [["message": message, "domain": "global", "reason": reason]],
                ] as [String: Any]
            ])
    }

    // MARK: - Handling

    /// Answers one request as Google would.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let recorded = RecordedRequest(request)
        let fault = state.withLock { $0.script.record(recorded) }
        return FaultScript.answer(fault) { route(recorded) }
    }

    /// The normal answer to a request, after the faults.
    private func route(_ recorded: RecordedRequest) -> HTTPResponse {
        let segments = recorded.path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
        let method = recorded.method.uppercased()
        if segments == ["token"] {
            return method == "POST" ? tokenGrant(recorded) : Self.methodNotAllowed
        }
        if segments == ["computeMetadata", "v1", "instance", "service-accounts", "default", "token"] {
            return method == "GET" ? metadataToken(recorded) : Self.methodNotAllowed
        }
        guard segments.count >= 4, Array(segments[0..<3]) == ["compute", "v1", "projects"] else {
            return Self.errorResponse(
                404, reason: "notFound", message: "The requested URL \(recorded.path) was not found on this server.",
                status: "NOT_FOUND")
        }
        guard let header = recorded.header("Authorization"), header.hasPrefix("Bearer "),
            state.withLock({ $0.acceptedTokens.contains(String(header.dropFirst("Bearer ".count))) })
        else { return Self.unauthenticated }
        let project = segments[3]
        let rest = Array(segments[4...])
        let query = recorded.queryItems
        switch (method, rest.count) {
        case ("GET", 2) where rest == ["aggregated", "instances"]:
            return aggregatedList(project: project, query: query)
        case ("GET", 3) where rest[0] == "zones" && rest[2] == "instances":
            return zoneList(project: project, zone: rest[1], query: query)
        case ("GET", 4) where rest[0] == "zones" && rest[2] == "instances":
            guard let instance = instance(name: rest[3], zone: rest[1], project: project) else {
                return Self.notFound(project: project, zone: rest[1], kind: "instances", name: rest[3])
            }
            return Self.json(200, instance.jsonObject(linkBase: linkBase))
        case ("POST", 5) where rest[0] == "zones" && rest[2] == "instances" && rest[4] == "stop":
            return startOperation(
                type: "stop", project: project, zone: rest[1], name: rest[3], requestID: query["requestId"])
        case ("DELETE", 4) where rest[0] == "zones" && rest[2] == "instances":
            return startOperation(
                type: "delete", project: project, zone: rest[1], name: rest[3], requestID: query["requestId"])
        case ("GET", 4) where rest[0] == "zones" && rest[2] == "operations":
            return pollOperation(project: project, zone: rest[1], name: rest[3])
        case ("POST", 5) where rest[0] == "zones" && rest[2] == "operations" && rest[4] == "wait":
            return pollOperation(project: project, zone: rest[1], name: rest[3])
        default:
            return Self.errorResponse(
                404, reason: "notFound", message: "The requested URL \(recorded.path) was not found on this server.",
                status: "NOT_FOUND")
        }
    }

    // MARK: - Listing

    private func aggregatedList(project: String, query: [String: String]) -> HTTPResponse {
        let partial = query["returnPartialSuccess"] == "true"
        let size = min(pageSize, query["maxResults"].flatMap(Int.init).map { max(1, $0) } ?? 500)
        let (all, zones, unreachable) = state.withLock { state in
            let mine = state.instances.values.filter { $0.project == project && !state.unreachable.contains($0.zone) }
            let zones = state.zones.union(state.instances.values.filter { $0.project == project }.map(\.zone))
            return (Self.sorted(mine), zones, state.unreachable)
        }
        guard let offset = Self.offset(from: query["pageToken"]) else { return Self.invalidPageToken }
        let page = Array(all.dropFirst(offset).prefix(size))
        var items: [String: Any] = [:]
        for zone in zones.sorted() {
            let scope = "zones/\(zone)"
            let here = page.filter { $0.zone == zone }
            if unreachable.contains(zone) && partial { continue }
            if unreachable.contains(zone) {
                items[scope] = ["warning": Self.warning("UNREACHABLE", "The scope '\(scope)' is unreachable.", scope)]
            } else if here.isEmpty {
                items[scope] = [
                    "warning": Self.warning(
                        "NO_RESULTS_ON_PAGE", "There are no results for scope '\(scope)' on this page.", scope)
                ]
            } else {
                items[scope] = ["instances": here.map { $0.jsonObject(linkBase: linkBase) }]
            }
        }
        var object: [String: Any] = [
            "kind": "compute#instanceAggregatedList",
            "id": "projects/\(project)/aggregated/instances",
            "items": items,
            "selfLink": "\(linkBase)/compute/v1/projects/\(project)/aggregated/instances",
        ]
        if offset + page.count < all.count { object["nextPageToken"] = Self.pageToken(offset + page.count) }
        if partial && !unreachable.isEmpty { object["unreachables"] = unreachable.sorted().map { "zones/\($0)" } }
        return Self.json(200, object)
    }

    private func zoneList(project: String, zone: String, query: [String: String]) -> HTTPResponse {
        let size = min(pageSize, query["maxResults"].flatMap(Int.init).map { max(1, $0) } ?? 500)
        let all = state.withLock { state in
            Self.sorted(state.instances.values.filter { $0.project == project && $0.zone == zone })
        }
        guard let offset = Self.offset(from: query["pageToken"]) else { return Self.invalidPageToken }
        let page = Array(all.dropFirst(offset).prefix(size))
        var object: [String: Any] = [
            "kind": "compute#instanceList",
            "id": "projects/\(project)/zones/\(zone)/instances",
            "selfLink": "\(linkBase)/compute/v1/projects/\(project)/zones/\(zone)/instances",
        ]
        if !page.isEmpty { object["items"] = page.map { $0.jsonObject(linkBase: linkBase) } }
        if offset + page.count < all.count { object["nextPageToken"] = Self.pageToken(offset + page.count) }
        return Self.json(200, object)
    }

    // MARK: - Operations

    private func startOperation(type: String, project: String, zone: String, name: String, requestID: String?)
        -> HTTPResponse
    {
        let key = Self.key(project: project, zone: zone, name: name)
        enum Outcome {
            case operation(Operation)
            case notFound
            case protected
        }
        let outcome = state.withLock { state -> Outcome in
            if let requestID, let existing = state.requestIDs["\(project)/\(requestID)"],
                let operation = state.operations[existing]
            {
                return .operation(operation)
            }
            guard let instance = state.instances[key] else { return .notFound }
            if type == "delete" && instance.deletionProtection { return .protected }
            state.operationsCreated += 1
            let number = state.operationsCreated
            let operation = Operation(
                name: "operation-\(1_700_000_000_000 + number)-60c5f0a1b2c3d-\(type)-\(String(format: "%08x", number))",
                id: String(7_000_000_000_000_000_000 + UInt64(number)), project: project, zone: zone, type: type,
                targetName: name, targetID: instance.id,
                failure: state.pendingFailures.isEmpty ? nil : state.pendingFailures.removeFirst(),
                originalStatus: instance.status)
            let operationKey = Self.key(project: project, zone: zone, name: operation.name)
            state.operations[operationKey] = operation
            if let requestID { state.requestIDs["\(project)/\(requestID)"] = operationKey }
            return .operation(operation)
        }
        switch outcome {
        case .operation(let operation):
            return Self.json(200, operationObject(operation))
        case .notFound:
            return Self.notFound(project: project, zone: zone, kind: "instances", name: name)
        case .protected:
            return Self.errorResponse(
                400, reason: "resourceInUseByAnotherResource",
                message: "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'.",
                status: "FAILED_PRECONDITION")
        }
    }

    private func pollOperation(project: String, zone: String, name: String) -> HTTPResponse {
        let operationKey = Self.key(project: project, zone: zone, name: name)
        let operation = state.withLock { state -> Operation? in
            guard var operation = state.operations[operationKey] else { return nil }
            if operation.step < 2 {
                operation.step += 1
                let target = Self.key(project: project, zone: zone, name: operation.targetName)
                if operation.step == 1 {
                    state.instances[target]?.status = "STOPPING"
                } else if operation.failure != nil {
                    state.instances[target]?.status = operation.originalStatus
                } else if operation.type == "stop" {
                    state.instances[target]?.status = "TERMINATED"
                    state.instances[target]?.natIP = nil
                } else {
                    state.instances.removeValue(forKey: target)
                }
                state.operations[operationKey] = operation
            }
            return operation
        }
        guard let operation else { return Self.notFound(project: project, zone: zone, kind: "operations", name: name) }
        return Self.json(200, operationObject(operation))
    }

    private func operationObject(_ operation: Operation) -> [String: Any] {
        let zoneURL = "\(linkBase)/compute/v1/projects/\(operation.project)/zones/\(operation.zone)"
        let status = ["PENDING", "RUNNING", "DONE"][operation.step]
        var object: [String: Any] = [
            "kind": "compute#operation",
            "id": operation.id,
            "name": operation.name,
            "zone": zoneURL,
            "operationType": operation.type,
            "targetLink": "\(zoneURL)/instances/\(operation.targetName)",
            "targetId": operation.targetID,
            "status": status,
            "user": "daemon@\(operation.project).iam.gserviceaccount.com",
            "progress": [0, 50, 100][operation.step],
            "insertTime": "2023-11-14T14:13:20.000-08:00",
            "selfLink": "\(zoneURL)/operations/\(operation.name)",
        ]
        if operation.step >= 1 { object["startTime"] = "2023-11-14T14:13:21.000-08:00" }
        if operation.step == 2 {
            object["endTime"] = "2023-11-14T14:13:50.000-08:00"
            if let failure = operation.failure {
                object["error"] = ["errors": [["code": failure.code, "message": failure.message]]]
                object["httpErrorStatusCode"] = failure.httpStatus
                object["httpErrorMessage"] = failure.httpStatus == 400 ? "BAD REQUEST" : "ERROR"
            }
        }
        return object
    }

    // MARK: - Tokens

    private func tokenGrant(_ request: RecordedRequest) -> HTTPResponse {
        let form = Self.formFields(request.body ?? Data())
        guard form["grant_type"] == Self.jwtGrantType else {
            return Self.json(
                400,
                [
                    "error": "unsupported_grant_type",
                    "error_description": "Invalid grant_type: \(form["grant_type"] ?? "")",
                ])
        }
        guard let assertion = form["assertion"], !assertion.isEmpty else {
            return Self.json(
                400, ["error": "invalid_request", "error_description": "Missing required parameter: assertion"])
        }
        let parts = assertion.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }),
            let headerData = Self.base64URLDecoded(String(parts[0])),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any],
            header["alg"] as? String == "RS256"
        else {
            return Self.json(400, ["error": "invalid_grant", "error_description": "Invalid JWT Signature."])
        }
        state.withLock { $0.assertions.append(assertion) }
        return issueToken()
    }

    private func metadataToken(_ request: RecordedRequest) -> HTTPResponse {
        guard request.header("Metadata-Flavor") == "Google" else {
            return HTTPResponse(
                status: 403, headers: ["Content-Type": "text/html; charset=UTF-8"],
                body: Data("Missing Metadata-Flavor:Google header.\n".utf8))
        }
        return issueToken()
    }

    private func issueToken() -> HTTPResponse {
        let token = state.withLock { state -> String in
            let token = "ya29.sim-\(state.issuedTokens.count + 1)-c0ffee0d15ea5e5b0a7f00d"
            state.issuedTokens.append(token)
            state.acceptedTokens.insert(token)
            return token
        }
        return Self.json(200, ["access_token": token, "expires_in": tokenLifetime, "token_type": "Bearer"])
    }

    // MARK: - Helpers

    private static func sorted(_ instances: [SimulatedGCEInstance]) -> [SimulatedGCEInstance] {
        instances.sorted { ($0.project, $0.zone, $0.name) < ($1.project, $1.zone, $1.name) }
    }

    private static func warning(_ code: String, _ message: String, _ scope: String) -> [String: Any] {
        ["code": code, "message": message, "data": [["key": "scope", "value": scope]]]
    }

    private static func notFound(project: String, zone: String, kind: String, name: String) -> HTTPResponse {
        errorResponse(
            404, reason: "notFound",
            message: "The resource 'projects/\(project)/zones/\(zone)/\(kind)/\(name)' was not found",
            status: "NOT_FOUND")
    }

    private static let unauthenticated = errorResponse(
        401, reason: "authError",
        message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            + "other valid authentication credential.",
        status: "UNAUTHENTICATED")

    private static let methodNotAllowed = errorResponse(
        405, reason: "httpMethodNotAllowed", message: "HTTP method not allowed.", status: "INVALID_ARGUMENT")

    private static let invalidPageToken = errorResponse(
        400, reason: "invalid", message: "Invalid value for field 'pageToken'.", status: "INVALID_ARGUMENT")

    private static func json(_ status: Int, _ object: [String: Any]) -> HTTPResponse {
        let body =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json; charset=UTF-8"], body: body)
    }

    /// An opaque-looking page token: base64 of `offset:<n>`.
    private static func pageToken(_ offset: Int) -> String {
        Data("offset:\(offset)".utf8).base64EncodedString()
    }

    /// 0 without a token; nil for a token this simulator did not issue.
    private static func offset(from token: String?) -> Int? {
        guard let token else { return 0 }
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("offset:"), let offset = Int(text.dropFirst("offset:".count)), offset >= 0
        else { return nil }
        return offset
    }

    /// The fields of an `application/x-www-form-urlencoded` body (`+` is a space).
    private static func formFields(_ body: Data) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// Decodes base64url with or without padding.
    static func base64URLDecoded(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
