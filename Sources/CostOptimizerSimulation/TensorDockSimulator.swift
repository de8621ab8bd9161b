import CostOptimizer
import Foundation
import Synchronization

/// An in-memory TensorDock organisation that speaks both APIs' real paths and shapes (`shared/docs/providers.md` §2).
///
/// - v2 (`Authorization: Bearer <token>`): `GET /api/v2/instances` in the envelope and attribute shape chosen with
///   `v2Envelope`/`v2Attributes`, `GET|DELETE /api/v2/instances/{id}`, `POST /api/v2/instances/{id}/stop|start`.
///   Errors are `{"error", "message", "status"}` with a matching HTTP status; an unknown or deleted id is a 404.
/// - v0 (form-encoded POSTs with `api_key` and `api_token` fields): `POST /api/v0/auth/test`, `/client/list` (VMs
///   as an object keyed by id), `/client/get/single`, `/client/stop/single` (`disassociate_resources=true` →
///   `StoppedDisassociated`, otherwise `Stopped`), `/client/start/single`, `/client/delete/single`. Every failure is
///   HTTP 200 with `{"success": false, "error": ...}`, bad credentials included; deleting a deleted VM says
///   "Machine is already terminated".
///
/// Every request is recorded first; scripted faults are answered next (`enqueueFault`, with `v0Failure` and
/// `nonJSON` for v0's two failure shapes; with `afterApplying`, after the request took effect); then the credentials
/// are checked. Every change a request made is listed in `appliedActions`. Use `handle` as a `LoopbackHTTPServer`
/// handler or as a `FakeHTTPTransport` handler. A stop, start or delete takes effect at once (no `stopping` phase).
public final class TensorDockSimulator: Sendable {
    /// Where v2 puts the instance array (the two documented examples disagree).
    public enum V2Envelope: Sendable, Equatable {
        /// `{"data": {"instances": [...]}}` (instance-management page).
        case dataInstances
        /// `{"data": {"type": "list", "id": "instances", "attributes": {"instances": [...]}}}` (getting-started page).
        case dataAttributesInstances
    }

    /// Where v2 puts each instance's fields.
    public enum V2Attributes: Sendable, Equatable {
        /// `{"type", "id", "attributes": {"name", "status", ...}}`.
        case nested
        /// `{"type", "id", "name", "status", ...}`.
        case flat
    }

    private struct State {
        var vms: [String: SimulatedTensorDockVM] = [:]
        var terminated: Set<String> = []
        var script = FaultScript()
        var applied: [String] = []
        var v2Envelope: V2Envelope
        var v2Attributes: V2Attributes
        var v2StopReleasesGPU: Bool
    }

    private let bearerToken: String?
    private let apiKey: String?
    private let apiToken: String?
    private let state: Mutex<State>

    /// - Parameters:
    ///   - bearerToken: the only v2 token accepted; nil refuses every v2 request.
    ///   - apiKey, apiToken: the only v0 pair accepted; nil refuses every v0 request.
    ///   - v2Envelope, v2Attributes: the v2 listing's shape.
    ///   - v2StopReleasesGPU: what a v2 stop leaves behind, `StoppedDisassociated` (true) or `Stopped` (false);
    ///     undocumented, so both are simulated.
    public init(
        bearerToken: String? = nil, apiKey: String? = nil, apiToken: String? = nil,
        v2Envelope: V2Envelope = .dataInstances, v2Attributes: V2Attributes = .nested, v2StopReleasesGPU: Bool = true
    ) {
        self.bearerToken = bearerToken
        self.apiKey = apiKey
        self.apiToken = apiToken
        self.state = Mutex(
            State(v2Envelope: v2Envelope, v2Attributes: v2Attributes, v2StopReleasesGPU: v2StopReleasesGPU))
    }

    // MARK: - Fleet

    /// Adds a VM, or replaces the one with the same id.
    public func add(_ vm: SimulatedTensorDockVM) {
        state.withLock { $0.vms[vm.id] = vm }
    }

    /// Adds several VMs.
    public func add(contentsOf vms: [SimulatedTensorDockVM]) {
        state.withLock { state in
            for vm in vms { state.vms[vm.id] = vm }
        }
    }

    /// Changes a VM in place; returns false when there is no such id.
    @discardableResult
    public func update(id: String, _ change: (inout SimulatedTensorDockVM) -> Void) -> Bool {
        state.withLock { state in
            guard var vm = state.vms[id] else { return false }
            change(&vm)
            vm.id = id
            state.vms[id] = vm
            return true
        }
    }

    /// Removes a VM, as if it was deleted elsewhere (a later v0 delete says "already terminated").
    public func remove(id: String) {
        state.withLock { state in
            if state.vms.removeValue(forKey: id) != nil { state.terminated.insert(id) }
        }
    }

    /// Every VM, by ascending id.
    public var vms: [SimulatedTensorDockVM] {
        state.withLock { $0.vms.values.sorted { $0.id < $1.id } }
    }

    /// The VM with this id, if it exists.
    public func vm(id: String) -> SimulatedTensorDockVM? {
        state.withLock { $0.vms[id] }
    }

    /// Changes the shape of later v2 listings.
    public func setV2Shape(envelope: V2Envelope, attributes: V2Attributes) {
        state.withLock {
            $0.v2Envelope = envelope
            $0.v2Attributes = attributes
        }
    }

    /// Changes what later v2 stops leave behind: `StoppedDisassociated` (true) or `Stopped` (false).
    public func setV2StopReleasesGPU(_ releases: Bool) {
        state.withLock { $0.v2StopReleasesGPU = releases }
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

    /// v0's usual failure: HTTP 200 with `{"success": false, "error": error}`.
    public static func v0Failure(_ error: String) -> HTTPResponse {
        json(200, ["success": false, "error": error])
    }

    /// A body that is not JSON (v0 sometimes answers so), as `text/html`.
    public static func nonJSON(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/html"], body: Data(text.utf8))
    }

    /// Every request received, faulted ones included, in order.
    public var requests: [RecordedRequest] { state.withLock { $0.script.requests } }

    /// Every change made through the API, in order: `v2 stop <id>`, `v2 start <id>`, `v2 delete <id>`,
    /// `v0 stop <id>`, `v0 start <id>`, `v0 delete <id>`. A refused or faulted request (without `afterApplying`) adds
    /// nothing, so a count here is how often a call took effect.
    public var appliedActions: [String] { state.withLock { $0.applied } }

    /// Forgets the recorded requests.
    public func clearRequests() {
        state.withLock { $0.script.clearRequests() }
    }

    /// The fields of a form-encoded body (`a=1&b=x%20y`, `+` read as a space); a repeated name keeps its last value.
    public static func formFields(_ body: Data?) -> [String: String] {
        guard let body, let text = String(data: body, encoding: .utf8), !text.isEmpty else { return [:] }
        var components = URLComponents()
        components.percentEncodedQuery = text.replacingOccurrences(of: "+", with: "%20")
        var fields: [String: String] = [:]
        for item in components.queryItems ?? [] { fields[item.name] = item.value ?? "" }
        return fields
    }

    // MARK: - Handling

    /// Answers one request as TensorDock would.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let recorded = RecordedRequest(request)
        let fault = state.withLock { $0.script.record(recorded) }
        return FaultScript.answer(fault) { route(recorded) }
    }

    /// The normal answer to a request, after the faults.
    private func route(_ recorded: RecordedRequest) -> HTTPResponse {
        let segments = recorded.path.split(separator: "/").map(String.init)
        if segments.starts(with: ["api", "v2"]) { return handleV2(recorded, Array(segments.dropFirst(2))) }
        if segments.starts(with: ["api", "v0"]) { return handleV0(recorded, Array(segments.dropFirst(2))) }
        return Self.notFound
    }

    // MARK: - v2

    private func handleV2(_ request: RecordedRequest, _ path: [String]) -> HTTPResponse {
        guard let bearerToken, request.header("Authorization") == "Bearer \(bearerToken)" else {
            return Self.v2Error(401, "Unauthorized", "Invalid or missing bearer token")
        }
        let method = request.method.uppercased()
        guard path.first == "instances" else { return Self.v2Error(404, "Not Found", "No such endpoint") }
        switch (method, path.count) {
        case ("GET", 1):
            return listV2()
        case ("GET", 2):
            guard let vm = vm(id: path[1]) else { return Self.v2Error(404, "Not Found", "Instance not found") }
            let flat = state.withLock { $0.v2Attributes == .flat }
            return Self.json(200, ["data": vm.v2JSONObject(flat: flat)])
        case ("DELETE", 2):
            let id = path[1]
            let removed = state.withLock { state -> Bool in
                guard state.vms.removeValue(forKey: id) != nil else { return false }
                state.terminated.insert(id)
                state.applied.append("v2 delete \(id)")
                return true
            }
            guard removed else { return Self.v2Error(404, "Not Found", "Instance not found") }
            return Self.json(
                200, ["data": ["type": "success", "attributes": ["message": "Instance deleted successfully"]]])
        case ("POST", 3) where path[2] == "stop" || path[2] == "start":
            return powerV2(id: path[1], stop: path[2] == "stop")
        default:
            return Self.v2Error(405, "Method Not Allowed", "\(method) is not allowed here")
        }
    }

    private func listV2() -> HTTPResponse {
        let (all, envelope, attributes) = state.withLock { state in
            (state.vms.values.sorted { $0.id < $1.id }, state.v2Envelope, state.v2Attributes)
        }
        let instances = all.map { $0.v2JSONObject(flat: attributes == .flat) }
        switch envelope {
        case .dataInstances:
            return Self.json(200, ["data": ["instances": instances]])
        case .dataAttributesInstances:
            return Self.json(
                200, ["data": ["type": "list", "id": "instances", "attributes": ["instances": instances]]])
        }
    }

    private func powerV2(id: String, stop: Bool) -> HTTPResponse {
        state.withLock { state in
            guard var vm = state.vms[id] else { return Self.v2Error(404, "Not Found", "Instance not found") }
            let status = Self.normalised(vm.status)
            if stop {
                guard status == "running" else {
                    return Self.v2Error(400, "Bad Request", "Instance is \(status), it cannot be stopped")
                }
                vm.status = state.v2StopReleasesGPU ? "StoppedDisassociated" : "Stopped"
            } else {
                guard status == "stopped" || status == "stoppeddisassociated" else {
                    return Self.v2Error(400, "Bad Request", "Instance is \(status), it cannot be started")
                }
                vm.status = "Running"
            }
            state.vms[id] = vm
            state.applied.append("v2 \(stop ? "stop" : "start") \(id)")
            let attributes = ["status": stop ? "stopping" : "starting"]
            return Self.json(200, ["data": ["type": "instance", "id": id, "attributes": attributes]])
        }
    }

    // MARK: - v0

    private func handleV0(_ request: RecordedRequest, _ path: [String]) -> HTTPResponse {
        guard request.method.uppercased() == "POST" else {
            return Self.json(405, ["success": false, "error": "Method not allowed"])
        }
        guard request.header("Content-Type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        else {
            return Self.v0Failure("Expected a form-encoded body (application/x-www-form-urlencoded)")
        }
        let form = Self.formFields(request.body)
        guard let apiKey, let apiToken, form["api_key"] == apiKey, form["api_token"] == apiToken else {
            return Self.v0Failure("Authorization failed: invalid API key or token")
        }
        let server = form["server"] ?? ""
        switch path {
        case ["auth", "test"]:
            return Self.json(200, ["success": true])
        case ["client", "list"]:
            var machines: [String: Any] = [:]
            for vm in vms { machines[vm.id] = vm.v0JSONObject() }
            return Self.json(200, ["success": true, "virtualmachines": machines])
        case ["client", "get", "single"]:
            guard let vm = vm(id: server) else { return Self.v0Failure("No such virtual machine") }
            return Self.json(200, ["success": true, "virtualmachine": vm.v0JSONObject()])
        case ["client", "stop", "single"]:
            return stopV0(id: server, disassociate: form["disassociate_resources"]?.lowercased() == "true")
        case ["client", "start", "single"]:
            return startV0(id: server)
        case ["client", "delete", "single"]:
            return state.withLock { state in
                if state.vms.removeValue(forKey: server) != nil {
                    state.terminated.insert(server)
                    state.applied.append("v0 delete \(server)")
                    return Self.json(200, ["success": true])
                }
                if state.terminated.contains(server) { return Self.v0Failure("Machine is already terminated") }
                return Self.v0Failure("No such virtual machine")
            }
        default:
            return Self.notFound
        }
    }

    private func stopV0(id: String, disassociate: Bool) -> HTTPResponse {
        state.withLock { state in
            guard var vm = state.vms[id] else { return Self.v0Failure("No such virtual machine") }
            let status = Self.normalised(vm.status)
            switch status {
            case "running":
                vm.status = disassociate ? "StoppedDisassociated" : "Stopped"
            case "stopped" where disassociate:
                vm.status = "StoppedDisassociated"
            default:
                return Self.v0Failure("Machine is \(status), therefore it cannot be stopped")
            }
            state.vms[id] = vm
            state.applied.append("v0 stop \(id)")
            return Self.json(200, ["success": true])
        }
    }

    private func startV0(id: String) -> HTTPResponse {
        state.withLock { state in
            guard var vm = state.vms[id] else { return Self.v0Failure("No such virtual machine") }
            let status = Self.normalised(vm.status)
            guard status == "stopped" || status == "stoppeddisassociated" else {
                return Self.v0Failure("Machine is \(status), therefore it cannot be started")
            }
            vm.status = "Running"
            state.vms[id] = vm
            state.applied.append("v0 start \(id)")
            return Self.json(200, ["success": true])
        }
    }

    // MARK: - Helpers

    private static let notFound = HTTPResponse(
        status: 404, headers: ["Content-Type": "text/html"], body: Data("<h1>Not Found</h1>".utf8))

    /// Lower-cased without `_`, `-` and spaces, as TensorDock's clients compare statuses.
    private static func normalised(_ status: String) -> String {
        String(status.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    private static func v2Error(_ status: Int, _ error: String, _ message: String) -> HTTPResponse {
        json(status, ["error": error, "message": message, "status": status])
    }

    private static func json(_ status: Int, _ object: [String: Any]) -> HTTPResponse {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }
}
