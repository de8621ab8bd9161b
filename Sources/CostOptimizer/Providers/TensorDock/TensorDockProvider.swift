import CostOptimizerCore
import Foundation

/// One TensorDock organisation (`shared/docs/providers.md` §2): lists its VMs, stops and deletes them, through API v2
/// when a bearer token is configured and through the marketplace API v0 when only the key pair is.
///
/// - Authentication: v2 sends `Authorization: Bearer <token>`; v0 sends `api_key` and `api_token` as form fields in a
///   POST body, never in a query string, so no secret appears in a URL. No error, log line or description built here
///   contains a secret; text taken from a response body has every configured secret masked as well.
/// - Listing: v2 `GET /api/v2/instances`, whose instances are read from `data.instances` or
///   `data.attributes.instances` (both documented), each with its fields under `attributes` or flat. v0
///   `POST /api/v0/client/list`, whose `virtualmachines` is an object keyed by VM id. A listing that cannot be read
///   whole is an error, never an empty or partial account.
/// - One instance: v2 `GET /api/v2/instances/{id}`, decoded like a listing entry (under `data` or bare); a 404 or 410
///   is gone once a fresh listing confirms the id is absent. v0 has no single-VM read proven by official code (the
///   `client/get/single` seen in one third-party client documents no answer for an unknown VM, so "gone" could not be
///   told from an error): the v0 listing is read and the VM picked from it, absent meaning gone.
/// - Pause: v2 `POST /api/v2/instances/{id}/stop`. v0 `POST /api/v0/client/stop/single` with
///   `disassociate_resources=true`: a stop that keeps the GPU reserved (`Stopped`) keeps billing for it, so it is no
///   pause. An instance listed as `Stopped` (`Instance.gpuReserved`) is released with that v0 call even under v2,
///   which documents no way to release a reserved GPU; without the v0 key pair such a pause fails and sends nothing.
///   v0's "Machine is stoppeddisassociated, therefore it cannot be stopped" means the goal is already reached: success.
/// - Delete: v2 `DELETE /api/v2/instances/{id}`; a 404 or 410 counts as already gone once a fresh listing confirms
///   the id is absent (so a wrong base URL answering 404 to everything is never recorded as a deletion). v0
///   `POST /api/v0/client/delete/single`; a JSON `success: false` whose error says "already terminated" is already
///   gone (on a 2xx, 400, 404, 409 or 410; a body that is not JSON never counts).
/// - No blind repeat: after no answer or a 5xx to a stop or delete the VM is re-read (`instance(_:)`), and the call
///   is sent again only while the VM is still in the state it had (`RetryPolicy.sendMutation`); a 429 is sent again
///   directly.
/// - v0 failures: v0 answers failures as HTTP 200 with `{"success": false, "error": ...}`, or with a body that is not
///   JSON; both are `.rejected` with the message kept. A mutating v0 call succeeds only on `"success": true`.
/// - Rate limits: v2 allows 100 requests a minute per organisation, v0 asks for about one a second. Requests are paced
///   through the `WallClock`: each API's requests start at least `v2MinimumInterval` (0.6 s) or `v0MinimumInterval`
///   (1 s) apart, retries included, across every task sharing this provider value. A 429, like 500/502/503/504 or no
///   answer to a read, is retried through `RetryPolicy`.
/// - Cancellation: a cancelled task gets `CancellationError`, not a `ProviderError`.
public struct TensorDockProvider: GPUProvider {
    /// Which TensorDock API a request goes to.
    public enum API: String, Sendable {
        /// The marketplace API v0 (`api_key` + `api_token` form fields).
        case v0
        /// API v2 (Bearer token).
        case v2
    }

    /// Always `.tensordock`.
    public let name: ProviderName = .tensordock
    /// Names the account in logs and errors: `tensordock`.
    public let account: String = "tensordock"
    /// The API that lists and acts: v2 when a bearer token is configured, else v0.
    public let api: API

    private let settings: TensorDockSettings
    private let transport: any HTTPTransport
    private let clock: any WallClock
    private let logger: Logger
    private let retry: RetryPolicy
    private let v2Pacer: RequestPacer
    private let v0Pacer: RequestPacer

    /// Seconds between the starts of two v2 requests: 100 requests a minute per organisation.
    public static let v2MinimumInterval: Double = 0.6
    /// Seconds between the starts of two v0 requests: "about one request a second".
    public static let v0MinimumInterval: Double = 1
    /// Seconds each request may take (v0 deletes often take more than 12 s).
    public static let requestTimeout: Double = 30
    /// The longest VM id put in a URL or a form (a UUID has 36 characters).
    public static let maxIDLength = 64

    /// - Parameters:
    ///   - settings: credentials, base URLs and the ssh user (`TENSORDOCK_*`); with `bearerToken` set, v2 is used.
    ///   - transport: sends the requests (`URLSessionTransport` in production).
    ///   - clock: sleeps the pacing and the retry backoff.
    ///   - minimumInterval: seconds between two requests to the same API; nil uses `v2MinimumInterval` and
    ///     `v0MinimumInterval`, 0 turns pacing off (tests that count backoff sleeps).
    public init(
        settings: TensorDockSettings, transport: any HTTPTransport, clock: any WallClock, logger: Logger = .silent,
        retry: RetryPolicy = .init(), minimumInterval: Double? = nil
    ) {
        self.settings = settings
        self.api = settings.usesV2 ? .v2 : .v0
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.retry = retry
        self.v2Pacer = RequestPacer(interval: minimumInterval ?? Self.v2MinimumInterval)
        self.v0Pacer = RequestPacer(interval: minimumInterval ?? Self.v0MinimumInterval)
    }

    // MARK: - Listing

    /// Every VM of the organisation, ordered by id.
    /// - Throws: `ProviderError` when the listing cannot be read whole; a partial listing is never returned.
    public func listInstances() async throws -> [Instance] {
        let dtos = try await (api == .v2 ? listV2() : listV0())
        let instances = try dtos.map(instance(from:)).sorted { $0.key.id < $1.key.id }
        logger.debug("Provider listed \(account): \(instances.count) instances through \(api.rawValue)")
        return instances
    }

    private func listV2() async throws -> [TensorDockVMDTO] {
        let response = try await send(.v2, "GET", path: "/api/v2/instances")
        try requireSuccessStatus(response)
        guard let json = TensorDockJSON.decode(response.body) else {
            throw ProviderError.malformed(account: account, detail: "the instance listing is not JSON")
        }
        if let refusal = v2Refusal(json) {
            throw ProviderError.rejected(account: account, detail: masked(refusal))
        }
        let data = json["data"]
        guard
            let items = data?["instances"]?.array ?? data?["attributes"]?["instances"]?.array ?? data?.array
                ?? json["instances"]?.array
        else {
            throw ProviderError.malformed(
                account: account,
                detail: "the instance listing has neither data.instances nor data.attributes.instances")
        }
        return try items.map { item in
            guard item.object != nil else {
                throw ProviderError.malformed(account: account, detail: "an instance entry is not a JSON object")
            }
            return TensorDockVMDTO(v2: item)
        }
    }

    private func listV0() async throws -> [TensorDockVMDTO] {
        let response = try await send(.v0, "POST", path: "/api/v0/client/list", form: [])
        let json = try v0Answer(response, action: "list", requireSuccess: false)
        switch json["virtualmachines"] {
        case .object(let vms)?:
            return try vms.map { id, vm in
                guard vm.object != nil else {
                    throw ProviderError.malformed(account: account, detail: "a virtual machine entry is not an object")
                }
                return TensorDockVMDTO(v0: vm, id: id)
            }
        case .array(let vms)? where vms.isEmpty:
            // An empty PHP-style associative array serialises as `[]`.
            return []
        default:
            throw ProviderError.malformed(
                account: account, detail: "the VM listing has no virtualmachines object keyed by VM id")
        }
    }

    // MARK: - One instance

    /// Reads one VM again, mapped as the listing maps it.
    ///
    /// v2: `GET /api/v2/instances/{id}`, the instance under `data` or bare, with fields under `attributes` or flat; a
    /// 404 or 410 is gone only when a fresh listing succeeds without the id (so a wrong base URL answering 404 to
    /// everything never reads as gone). v0: the listing, from which the VM is picked; absent means gone.
    /// - Returns: the VM, or nil when TensorDock says it does not exist.
    /// - Throws: `ProviderError` for any other answer, an unreadable one, or one about another id; `.malformed` for
    ///   an id that is not path-safe (nothing is sent then).
    public func instance(_ instance: Instance) async throws -> Instance? {
        let id = try actionID(instance)
        if api == .v0 {
            guard let dto = try await listV0().first(where: { $0.id == id }) else { return nil }
            return try self.instance(from: dto)
        }
        let response = try await send(.v2, "GET", path: "/api/v2/instances/\(id)")
        if response.status == 404 || response.status == 410 {
            try await confirmGone(id: id, notFound: response, action: "the lookup")
            return nil
        }
        try requireSuccessStatus(response)
        guard let json = TensorDockJSON.decode(response.body), json.object != nil else {
            throw ProviderError.malformed(account: account, detail: "the lookup of instance \(id) is not a JSON object")
        }
        if let refusal = v2Refusal(json) {
            throw ProviderError.rejected(account: account, detail: masked(refusal))
        }
        let item = json["data"].flatMap { $0.object != nil ? $0 : nil } ?? json
        let dto = TensorDockVMDTO(v2: item)
        guard let answered = dto.id else {
            throw ProviderError.malformed(
                account: account, detail: "the lookup of instance \(id) has no instance id, so its state is unknown")
        }
        guard answered == id else {
            throw ProviderError.malformed(
                account: account, detail: "the lookup of instance \(id) answered about another instance")
        }
        return try self.instance(from: dto)
    }

    /// The normalised instance; an entry without a path-safe id fails the listing.
    func instance(from dto: TensorDockVMDTO) throws -> Instance {
        guard let id = dto.id, Self.isTensorDockID(id) else {
            throw ProviderError.malformed(
                account: account, detail: "a VM has no usable id (letters, digits and - only, at most 64)")
        }
        let name = dto.name.flatMap { $0.trimmed.isEmpty ? nil : $0.trimmed }
        let (ssh, sshReason) = sshEndpoint(dto)
        return Instance(
            key: InstanceKey(provider: .tensordock, id: id),
            name: name ?? id,
            zone: dto.zone,
            state: TensorDockStatus.state(dto.status),
            providerStatus: TensorDockStatus.describe(dto.status.map { String($0.prefix(100)) }),
            gpuModel: dto.gpus?.model,
            gpuCount: dto.gpus?.count,
            hourlyCostUSD: dto.pricePerHour.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil },
            createdAt: dto.createdAt,
            labels: name.map { [$0] } ?? [],
            ssh: ssh,
            managed: dto.gpus?.count != 0,
            gpuReserved: TensorDockStatus.reservesGPU(dto.status),
            sshUnavailableReason: sshReason,
            storageCostUSDPerHour: dto.storagePricePerHour.flatMap { $0 >= 0 ? $0 : nil })
    }

    /// `ip_address` with the external port forwarded to 22 (the lowest, if several); failing that, port 22 on the
    /// dedicated IP. With neither, the reason there is none.
    func sshEndpoint(_ dto: TensorDockVMDTO) -> (SSHEndpoint?, String?) {
        let user = settings.sshUser
        let forward = dto.portForwards.first { $0.internalPort == 22 }
        if let host = dto.ipAddress, let forward {
            guard Self.isUsableHost(host) else { return (nil, "the listed IP address is not a usable host name") }
            return (SSHEndpoint(host: host, port: forward.externalPort, user: user), nil)
        }
        if let host = dto.dedicatedIPAddress {
            guard Self.isUsableHost(host) else { return (nil, "the listed dedicated IP is not a usable host name") }
            return (SSHEndpoint(host: host, port: 22, user: user), nil)
        }
        if dto.ipAddress == nil {
            return (nil, "TensorDock lists no IP address for it")
        }
        return (nil, "TensorDock lists no port forward to port 22 and no dedicated IP")
    }

    /// No whitespace or control characters, no leading `-` (it would read as an ssh option), at most 253 bytes.
    static func isUsableHost(_ host: String) -> Bool {
        !host.isEmpty && host.utf8.count <= 253 && !host.hasPrefix("-")
            && host.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }
    }

    // MARK: - Actions

    /// Stops the VM and releases its GPU.
    ///
    /// v2: `POST /api/v2/instances/{id}/stop`. v0, and under v2 an instance listed as `Stopped` (GPU still reserved):
    /// `POST /api/v0/client/stop/single` with `disassociate_resources=true`.
    ///
    /// After no answer or a 5xx the VM is re-read: paused with its GPU released is success and nothing more is sent;
    /// unchanged, the stop is sent again (bounded, with backoff); anything else, or a failed re-read, is
    /// `.outcomeUnknown`.
    /// - Throws: `ProviderError`; `.rejected` when the answer says the call failed, or when a reserved GPU must be
    ///   released under v2 without the v0 key pair (nothing is sent then); `.malformed` for an id that is not path-safe
    ///   (nothing is sent).
    public func pause(_ instance: Instance) async throws {
        let id = try actionID(instance)
        let action = "the stop of instance \(id)"
        let recheck = { MutationCheck.pause(before: instance, now: try await self.instance(instance)) }
        if api == .v2 && !instance.gpuReserved {
            let result = try await mutate(
                .v2, "POST", path: "/api/v2/instances/\(id)/stop", action: action, recheck: recheck)
            guard case .response(let response) = result else { return }
            try requireSuccessStatus(response)
            try requireV2Accepted(response, action: "stop")
            logger.debug("Provider paused \(account): instance \(id) through v2")
            return
        }
        if api == .v2 && !hasV0Pair {
            throw ProviderError.rejected(
                account: account,
                detail: "instance \(id) is stopped with its GPU still reserved and billed, and API v2 documents no "
                    + "call that releases it, so nothing was sent; set TENSORDOCK_API_KEY and TENSORDOCK_API_TOKEN "
                    + "so the v0 stop with disassociate_resources=true can release it, or use \"Stop and release GPU\" "
                    + "in the TensorDock dashboard")
        }
        let result = try await mutate(
            .v0, "POST", path: "/api/v0/client/stop/single",
            form: [("server", id), ("disassociate_resources", "true")], action: action, recheck: recheck)
        guard case .response(let response) = result else { return }
        if let refusal = v0Refusal(response), Self.isAlreadyReleased(refusal) {
            logger.info("Provider pause \(account): instance \(id) was already stopped with its GPU released")
            return
        }
        _ = try v0Answer(response, action: "stop", requireSuccess: true)
        logger.debug("Provider paused \(account): instance \(id) through v0, GPU released")
    }

    /// Deletes the VM and its data.
    ///
    /// v2: `DELETE /api/v2/instances/{id}`; a 404 or 410 is confirmed with a fresh listing before it counts as
    /// already gone. v0: `POST /api/v0/client/delete/single`; "already terminated" is already gone.
    ///
    /// After no answer or a 5xx the VM is re-read: gone is success and no second delete is sent; unchanged, the
    /// delete is sent again (bounded, with backoff); anything else, or a failed re-read, is `.outcomeUnknown`.
    /// - Throws: `ProviderError`.
    public func delete(_ instance: Instance) async throws {
        let id = try actionID(instance)
        let action = "the delete of instance \(id)"
        let recheck = { MutationCheck.delete(before: instance, now: try await self.instance(instance)) }
        if api == .v2 {
            let result = try await mutate(
                .v2, "DELETE", path: "/api/v2/instances/\(id)", action: action, recheck: recheck)
            guard case .response(let response) = result else { return }
            if response.status == 404 || response.status == 410 {
                try await confirmGone(id: id, notFound: response, action: "delete")
                logger.info("Provider delete \(account): instance \(id) was already gone")
                return
            }
            try requireSuccessStatus(response)
            try requireV2Accepted(response, action: "delete")
            logger.debug("Provider deleted \(account): instance \(id) through v2")
            return
        }
        let result = try await mutate(
            .v0, "POST", path: "/api/v0/client/delete/single", form: [("server", id)], action: action,
            recheck: recheck)
        guard case .response(let response) = result else { return }
        if let refusal = v0Refusal(response), refusal.lowercased().contains("already terminated") {
            logger.info("Provider delete \(account): instance \(id) was already gone")
            return
        }
        _ = try v0Answer(response, action: "delete", requireSuccess: true)
        logger.debug("Provider deleted \(account): instance \(id) through v0")
    }

    /// A v2 call answered 404/410: gone only if a full listing succeeds without the id.
    private func confirmGone(id: String, notFound: HTTPResponse, action: String) async throws {
        let listed = try await listV2()
        guard !listed.contains(where: { $0.id == id }) else {
            throw ProviderError.http(
                account: account, status: notFound.status,
                detail: "\(action) answered \(notFound.status) but instance \(id) is still listed: "
                    + bodyDetail(notFound))
        }
    }

    /// The instance's id, if it is a TensorDock instance with a path-safe id; else nothing may be sent.
    private func actionID(_ instance: Instance) throws -> String {
        guard instance.key.provider == .tensordock, Self.isTensorDockID(instance.key.id) else {
            let shown = Logger.oneLine(String(instance.key.description.prefix(80)))
            throw ProviderError.malformed(
                account: account,
                detail: "\(shown) is not a TensorDock VM id (letters, digits and - only); nothing was sent")
        }
        return instance.key.id
    }

    /// TensorDock VM ids are UUIDs; only ASCII letters, digits and `-` (at most `maxIDLength`) go in a URL or form.
    static func isTensorDockID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maxIDLength
            && id.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    /// v0's refusal to stop a VM that is already stopped with its resources released.
    static func isAlreadyReleased(_ detail: String) -> Bool {
        let text = detail.lowercased()
        return text.contains("is stoppeddisassociated") && text.contains("cannot be stopped")
    }

    private var hasV0Pair: Bool { settings.apiKey != nil && settings.apiToken != nil }

    // MARK: - Answers

    /// A v0 answer: non-2xx statuses are mapped as for v2; a 2xx must be a JSON object whose `success` is not false
    /// (and, with `requireSuccess`, is true). A body that is not JSON is `.rejected` with its text, as v0 sends
    /// failures that way; `success: false` is `.rejected` with the error, or `.unauthorized` when the error is about
    /// the credentials.
    private func v0Answer(_ response: HTTPResponse, action: String, requireSuccess: Bool) throws -> TensorDockJSON {
        try requireSuccessStatus(response)
        guard let json = TensorDockJSON.decode(response.body), json.object != nil else {
            throw ProviderError.rejected(
                account: account, detail: "the \(action) answer is not JSON: \(bodyText(response))")
        }
        let success = json["success"]?.bool
        if success == true { return json }
        if success == false || json["error"] != nil {
            let detail = masked(String((TensorDockErrorBody.detail(json) ?? "success: false").prefix(200)))
            if Self.isCredentialProblem(detail) {
                throw ProviderError.unauthorized(account: account, detail: detail)
            }
            throw ProviderError.rejected(account: account, detail: detail)
        }
        guard !requireSuccess else {
            throw ProviderError.malformed(
                account: account, detail: "the \(action) answer has no success field, so its outcome is unknown")
        }
        return json
    }

    /// The error of a v0 answer (2xx, or 400/404/409/410) that is a JSON object saying `success: false`; nil for
    /// anything else. Only used to recognise a goal already reached ("already terminated", "is stoppeddisassociated").
    private func v0Refusal(_ response: HTTPResponse) -> String? {
        let statuses: Set<Int> = [400, 404, 409, 410]
        guard (200..<300).contains(response.status) || statuses.contains(response.status),
            let json = TensorDockJSON.decode(response.body),
            json.object != nil, json["success"]?.bool == false
        else { return nil }
        return TensorDockErrorBody.detail(json)
    }

    /// True for a v0 error that is about the key pair.
    static func isCredentialProblem(_ detail: String) -> Bool {
        let text = detail.lowercased()
        return ["authoriz", "authentic", "api key", "api_key", "api token", "api_token", "credential"]
            .contains { text.contains($0) }
    }

    /// The refusal in a 2xx v2 body: `success: false`, an `error` without `data`, or a top-level error array.
    private func v2Refusal(_ json: TensorDockJSON) -> String? {
        if json.array != nil { return TensorDockErrorBody.detail(json) ?? "an error list" }
        if json["success"]?.bool == false || (json["error"] != nil && json["data"] == nil) {
            return String((TensorDockErrorBody.detail(json) ?? "success: false").prefix(200))
        }
        return nil
    }

    /// A 2xx answer of a v2 stop or delete: it must be JSON (else the outcome is unknown) and must not say it failed.
    private func requireV2Accepted(_ response: HTTPResponse, action: String) throws {
        guard let json = TensorDockJSON.decode(response.body) else {
            throw ProviderError.malformed(
                account: account, detail: "the \(action) answer is not JSON, so its outcome is unknown")
        }
        if let refusal = v2Refusal(json) {
            throw ProviderError.rejected(account: account, detail: masked(refusal))
        }
    }

    /// Maps 401/403, 429 and other non-2xx statuses (already retried) to `ProviderError`.
    private func requireSuccessStatus(_ response: HTTPResponse) throws {
        if let error = ProviderError.forStatus(response, account: account, detail: bodyDetail(response)) { throw error }
    }

    /// The error body's message, else the start of the body, with secrets masked.
    private func bodyDetail(_ response: HTTPResponse) -> String {
        let detail = TensorDockJSON.decode(response.body).flatMap { TensorDockErrorBody.detail($0) }
        return masked(ProviderText.errorDetail(detail, of: response))
    }

    /// The start of the body, trimmed and masked; `empty body` when there is nothing.
    private func bodyText(_ response: HTTPResponse) -> String {
        masked(ProviderText.bodyStart(response))
    }

    /// The text with every configured secret (as is, and form-encoded) replaced, in case a server echoes one.
    private func masked(_ text: String) -> String {
        let secrets = [settings.bearerToken, settings.apiKey, settings.apiToken].compactMap { $0?.value }
        return ProviderText.masked(text, secrets: secrets, alsoPercentEncoded: true)
    }

    // MARK: - HTTP

    /// Sends one read (or list) to `api`, paced and retried.
    private func send(_ api: API, _ method: String, path: String, form: [(String, String)]? = nil) async throws
        -> HTTPResponse
    {
        let request = try makeRequest(api, method, path: path, form: form)
        do {
            return try await retry.send(request, through: paced(api), clock: clock, logger: logger, label: account)
        } catch let error as HTTPTransportError {
            throw ProviderError.transport(account: account, detail: masked(error.description))
        }
    }

    /// Sends one stop or delete to `api`, paced, never repeated blindly (`RetryPolicy.sendMutation`).
    private func mutate(
        _ api: API, _ method: String, path: String, form: [(String, String)]? = nil, action: String,
        recheck: () async throws -> MutationCheck
    ) async throws -> MutationResult {
        let request = try makeRequest(api, method, path: path, form: form)
        do {
            return try await retry.sendMutation(
                request, through: paced(api), clock: clock, logger: logger, account: account, action: action,
                recheck: recheck)
        } catch let error as HTTPTransportError {
            throw ProviderError.transport(account: account, detail: masked(error.description))
        } catch ProviderError.outcomeUnknown(let account, let detail) {
            throw ProviderError.outcomeUnknown(account: account, detail: masked(detail))
        }
    }

    /// The transport for `api`, waiting for that API's pacer before every attempt.
    private func paced(_ api: API) -> any HTTPTransport {
        PacedTransport(base: transport, pacer: api == .v2 ? v2Pacer : v0Pacer, clock: clock)
    }

    /// One request to `api`. v0 requests are form POSTs whose body starts with the key pair followed by `form`; v2
    /// requests carry the Bearer token.
    private func makeRequest(_ api: API, _ method: String, path: String, form: [(String, String)]?) throws
        -> HTTPRequest
    {
        var text = (api == .v2 ? settings.apiURL : settings.v0APIURL).absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        text += path
        guard let url = URL(string: text) else {
            throw ProviderError.malformed(account: account, detail: "the API URL cannot be combined with \(path)")
        }
        var headers = ["Accept": "application/json"]
        var body: Data?
        switch api {
        case .v2:
            guard let token = settings.bearerToken else {
                throw ProviderError.unauthorized(
                    account: account, detail: "no bearer token is configured; set TENSORDOCK_BEARER_TOKEN")
            }
            headers["Authorization"] = "Bearer \(token.value)"
        case .v0:
            guard let key = settings.apiKey, let token = settings.apiToken else {
                throw ProviderError.unauthorized(
                    account: account,
                    detail: "no v0 key pair is configured; set TENSORDOCK_API_KEY and TENSORDOCK_API_TOKEN")
            }
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            let fields = [("api_key", key.value), ("api_token", token.value)] + (form ?? [])
            body = Data(Self.formEncoded(fields).utf8)
        }
        return HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: Self.requestTimeout)
    }

    /// `name=value&…`, every byte but RFC 3986 unreserved characters percent-encoded.
    static func formEncoded(_ fields: [(String, String)]) -> String {
        fields.map { "\(ProviderText.percentEncoded($0.0))=\(ProviderText.percentEncoded($0.1))" }
            .joined(separator: "&")
    }
}
