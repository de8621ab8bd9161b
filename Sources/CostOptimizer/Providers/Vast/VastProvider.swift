import CostOptimizerCore
import Foundation

/// One Vast.ai account (`shared/docs/providers.md` §1): lists its instances, stops and destroys them.
///
/// - Authentication: the header `Authorization: Bearer <key>` only, never the legacy `?api_key=` query parameter, so
///   the key appears in no URL. No error, log line or description built here contains the key; text taken from a
///   response body has the key masked as well.
/// - Listing: `GET /api/v1/instances/?limit=25`, then `&after_token=<next_token>` until the token is null, empty or
///   absent; where v1 answers 404 on the first page, `GET /api/v0/instances/?owner=me` (one unpaged answer). A page
///   token seen twice, or more than `maxPages` pages, fails the listing. Any failed page fails the whole listing.
/// - One instance: `GET /api/v0/instances/{id}/?owner=me`, answered `{"instances": {...}}`, or `{"instances": null}`
///   (or a 404 whose `error` is `no_such_instance` or `not_found`) for an instance that is gone.
/// - Pause: `PUT /api/v0/instances/{id}/` with `{"state":"stopped"}`. Delete: `DELETE /api/v0/instances/{id}/`.
///   A 2xx whose body says `success: false` is `.rejected`; a delete of an instance that is already gone succeeds.
///   Neither is repeated blindly: after no answer or a 5xx the instance is re-read, and the call is sent again only
///   while the instance is still in the state it had (`RetryPolicy.sendMutation`); a 429 is sent again directly.
/// - Rate limits: Vast enforces a minimum interval per endpoint and identity and answers 429 with a plain-text body
///   and no `Retry-After`. Requests are paced per endpoint through the `WallClock` by `VastPacing` (the OpenAPI
///   `x-rate-limit` values read as seconds: 1 s for show-instances and manage, 2 s for show-instance, 3 s for
///   destroy), retries included, across every task sharing this provider value. A 429, like 500/502/503/504 or no
///   answer to a read, is retried through `RetryPolicy`.
/// - Cancellation: a cancelled task gets `CancellationError`, not a `ProviderError`.
public struct VastProvider: GPUProvider {
    /// Always `.vast`.
    public let name: ProviderName = .vast
    /// Names the account in logs and errors, e.g. `vast` or `vast#2`.
    public let account: String

    private let apiKey: Secret
    private let baseURL: URL
    private let transport: any HTTPTransport
    private let clock: any WallClock
    private let logger: Logger
    private let retry: RetryPolicy
    private let pacers: [VastEndpoint: RequestPacer]

    /// Instances per v1 page; Vast's maximum.
    public static let pageSize = 25
    /// A listing stops with an error after this many pages (10 000 instances), whatever the server says.
    public static let maxPages = 400
    /// Seconds each request may take.
    public static let requestTimeout: Double = 30

    /// - Parameters:
    ///   - apiKey: the account key; needs instance read and write permission.
    ///   - baseURL: `scheme://host[:port]` of the API, e.g. `https://console.vast.ai`; paths are appended to it.
    ///   - transport: sends the requests (`URLSessionTransport` in production).
    ///   - clock: sleeps the pacing and the retry backoff.
    ///   - account: names the account in logs and errors; never the key.
    ///   - retry: attempts, backoff, jitter and budget of each request.
    ///   - pacing: the minimum seconds between two requests to one endpoint; `.documented` by default, `.off` for
    ///     tests that count backoff sleeps.
    public init(
        apiKey: Secret, baseURL: URL, transport: any HTTPTransport, clock: any WallClock, account: String = "vast",
        logger: Logger = .silent, retry: RetryPolicy = .init(), pacing: VastPacing = .documented
    ) {
        self.apiKey = apiKey
        self.baseURL = baseURL
        self.transport = transport
        self.clock = clock
        self.account = account
        self.logger = logger
        self.retry = retry
        self.pacers = [
            .showInstances: RequestPacer(interval: pacing.showInstances),
            .manageInstance: RequestPacer(interval: pacing.manageInstance),
            .showInstance: RequestPacer(interval: pacing.showInstance),
            .destroyInstance: RequestPacer(interval: pacing.destroyInstance),
        ]
    }

    // MARK: - Listing

    /// Every instance of the account, in the order Vast lists them.
    /// - Throws: `ProviderError` when any page fails; a partial listing is never returned.
    public func listInstances() async throws -> [Instance] {
        var dtos: [VastInstanceDTO] = []
        var token: String?
        var seenTokens: Set<String> = []
        var pages = 0
        while true {
            pages += 1
            guard pages <= Self.maxPages else {
                throw ProviderError.malformed(
                    account: account, detail: "the listing did not end after \(Self.maxPages) pages; nothing was used")
            }
            var query = "limit=\(Self.pageSize)"
            if let token { query += "&after_token=\(ProviderText.percentEncoded(token))" }
            let response = try await send(.showInstances, "GET", path: "/api/v1/instances/", query: query)
            if response.status == 404, token == nil {
                logger.debug("Provider fallback \(account): /api/v1/instances/ answered 404, using /api/v0/instances/")
                return try await listV0()
            }
            let page = try decodePage(response)
            dtos += page.instances ?? []
            guard let next = page.nextToken, !next.isEmpty else { break }
            guard seenTokens.insert(next).inserted else {
                throw ProviderError.malformed(
                    account: account, detail: "the API repeated a page token; the listing was abandoned")
            }
            token = next
        }
        let instances = try dtos.map(instance(from:))
        logger.debug("Provider listed \(account): \(instances.count) instances in \(pages) pages")
        return instances
    }

    private func listV0() async throws -> [Instance] {
        let response = try await send(.showInstances, "GET", path: "/api/v0/instances/", query: "owner=me")
        let page = try decodePage(response)
        let instances = try (page.instances ?? []).map(instance(from:))
        logger.debug("Provider listed \(account): \(instances.count) instances from v0")
        return instances
    }

    /// Checks the status and decodes one listing answer; a page without an `instances` array is malformed.
    private func decodePage(_ response: HTTPResponse) throws -> VastInstancePage {
        try requireSuccessStatus(response)
        guard let page = try? JSONDecoder().decode(VastInstancePage.self, from: response.body) else {
            throw ProviderError.malformed(account: account, detail: "the instance listing is not a JSON object")
        }
        if page.success == false {
            let detail = [page.error, page.msg].compactMap { $0 }.joined(separator: ": ")
            throw ProviderError.rejected(account: account, detail: masked(detail.isEmpty ? "success: false" : detail))
        }
        guard page.instances != nil else {
            throw ProviderError.malformed(account: account, detail: "the instance listing has no instances array")
        }
        return page
    }

    // MARK: - One instance

    /// Reads one instance again: `GET /api/v0/instances/{id}/?owner=me`, mapped as the listing maps it.
    ///
    /// Gone (nil) only on Vast's own word: `{"instances": null}`, or a 2xx, 400, 404 or 410 whose `error` is
    /// `no_such_instance` or `not_found`. A bare 404 (a wrong base URL answers so to everything) is an error.
    /// - Returns: the instance, or nil when Vast says it does not exist.
    /// - Throws: `ProviderError` for any other answer, an unreadable one, or one about another id; `.malformed` for
    ///   an id that is not a Vast id (nothing is sent then).
    public func instance(_ instance: Instance) async throws -> Instance? {
        let id = try actionID(instance)
        let response = try await send(.showInstance, "GET", path: "/api/v0/instances/\(id)/", query: "owner=me")
        if Self.saysNoSuchInstance(response) { return nil }
        if response.status == 404 {
            throw ProviderError.http(
                account: account, status: 404,
                detail: "\(bodyDetail(response)); the lookup of instance \(id) was not answered by Vast's API, "
                    + "check VAST_API_URL")
        }
        try requireSuccessStatus(response)
        guard let single = try? JSONDecoder().decode(VastSingleInstance.self, from: response.body) else {
            throw ProviderError.malformed(account: account, detail: "the lookup of instance \(id) is not a JSON object")
        }
        if single.success == false {
            let detail = [single.error, single.msg].compactMap { $0 }.joined(separator: ": ")
            throw ProviderError.rejected(account: account, detail: masked(detail.isEmpty ? "success: false" : detail))
        }
        if single.isNull { return nil }
        let matching = single.candidates.filter { $0.id == id }
        guard !single.candidates.isEmpty else {
            throw ProviderError.malformed(
                account: account,
                detail: "the lookup of instance \(id) has no instances object, so its state is unknown")
        }
        guard matching.count == 1, let dto = matching.first else {
            throw ProviderError.malformed(
                account: account, detail: "the lookup of instance \(id) answered about another instance")
        }
        return try self.instance(from: dto)
    }

    /// A JSON answer naming the instance as unknown (`no_such_instance`, `not_found`) on a 2xx, 400, 404 or 410.
    static func saysNoSuchInstance(_ response: HTTPResponse) -> Bool {
        guard (200..<300).contains(response.status) || [400, 404, 410].contains(response.status),
            let envelope = try? JSONDecoder().decode(VastEnvelope.self, from: response.body),
            let code = envelope.error?.lowercased()
        else { return false }
        return code == "no_such_instance" || code == "not_found"
    }

    /// The normalised instance; an entry without a numeric id fails the listing.
    func instance(from dto: VastInstanceDTO) throws -> Instance {
        guard let id = dto.id, Self.isVastID(id) else {
            throw ProviderError.malformed(account: account, detail: "an instance has no numeric id")
        }
        let label = dto.label.flatMap { $0.trimmed.isEmpty ? nil : $0 }
        return Instance(
            key: InstanceKey(provider: .vast, id: id),
            name: label ?? id,
            zone: dto.geolocation.flatMap { $0.trimmed.isEmpty ? nil : $0.trimmed },
            state: VastStatus.state(
                actualStatus: dto.actualStatus, intendedStatus: dto.intendedStatus, curState: dto.curState),
            providerStatus: VastStatus.describe(
                actualStatus: dto.actualStatus, intendedStatus: dto.intendedStatus, curState: dto.curState),
            gpuModel: dto.gpuName.flatMap { $0.trimmed.isEmpty ? nil : $0.trimmed },
            gpuCount: dto.numGPUs,
            hourlyCostUSD: dto.dphTotal.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil },
            createdAt: dto.startDate.flatMap { $0 > 0 ? Date(timeIntervalSince1970: $0) : nil },
            labels: label.map { [$0] } ?? [],
            ssh: Self.sshEndpoint(dto),
            managed: Self.isManaged(dto),
            storageCostUSDPerHour: dto.storageTotalCost.flatMap { $0 >= 0 ? $0 : nil })
    }

    /// The ssh proxy `ssh_host:ssh_port` as root; failing that, `public_ipaddr` with the host port of `22/tcp`.
    static func sshEndpoint(_ dto: VastInstanceDTO) -> SSHEndpoint? {
        let validPort: (Int?) -> Int? = { port in port.flatMap { (1...65535).contains($0) ? $0 : nil } }
        if let host = dto.sshHost?.trimmed, !host.isEmpty, let port = validPort(dto.sshPort) {
            return SSHEndpoint(host: host, port: port, user: "root")
        }
        if let host = dto.publicIPAddress?.trimmed, !host.isEmpty, let port = validPort(dto.ports?.directSSHPort) {
            return SSHEndpoint(host: host, port: port, user: "root")
        }
        return nil
    }

    /// Vast rents GPUs only, so an instance is managed unless it plainly has none (`num_gpus` 0 and no `gpu_name`);
    /// missing GPU fields do not make it unmanaged. Being managed only allows action on evidence, never without it.
    static func isManaged(_ dto: VastInstanceDTO) -> Bool {
        let hasName = !(dto.gpuName?.trimmed.isEmpty ?? true)
        return hasName || dto.numGPUs != 0
    }

    // MARK: - Actions

    /// Stops the instance: `PUT /api/v0/instances/{id}/` with `{"state":"stopped"}`.
    ///
    /// After no answer or a 5xx the instance is re-read: paused is success and nothing more is sent; unchanged, the
    /// stop is sent again (bounded, with backoff); anything else, or a failed re-read, is `.outcomeUnknown`.
    /// - Throws: `ProviderError`; `.rejected` when a 2xx says `success: false`, `.malformed` for an id that is not a
    ///   Vast id (nothing is sent then).
    public func pause(_ instance: Instance) async throws {
        let id = try actionID(instance)
        let body = Data(#"{"state":"stopped"}"#.utf8)
        let result = try await mutate(
            .manageInstance, "PUT", path: "/api/v0/instances/\(id)/", body: body, action: "the stop of instance \(id)"
        ) {
            MutationCheck.pause(before: instance, now: try await self.instance(instance))
        }
        guard case .response(let response) = result else { return }
        try requireSuccessStatus(response)
        try requireAccepted(response, action: "stop")
        logger.debug("Provider paused \(account): instance \(id)")
    }

    /// Destroys the instance: `DELETE /api/v0/instances/{id}/`.
    ///
    /// Already gone is success: an `error` of `no_such_instance` or `not_found` with a 2xx, 400, 404 or 410 status.
    /// A bare 404 without that code is confirmed with `instance(_:)` first (Vast answers `{"instances": null}` for an
    /// unknown id), so a wrong base URL answering 404 to everything is never recorded as a deletion.
    ///
    /// After no answer or a 5xx the instance is re-read: gone is success and no second DELETE is sent; unchanged, the
    /// DELETE is sent again (bounded, with backoff); anything else, or a failed re-read, is `.outcomeUnknown`.
    /// - Throws: `ProviderError`.
    public func delete(_ instance: Instance) async throws {
        let id = try actionID(instance)
        let result = try await mutate(
            .destroyInstance, "DELETE", path: "/api/v0/instances/\(id)/", action: "the destroy of instance \(id)"
        ) {
            MutationCheck.delete(before: instance, now: try await self.instance(instance))
        }
        guard case .response(let response) = result else { return }
        if Self.saysNoSuchInstance(response) {
            logger.info("Provider delete \(account): instance \(id) was already gone")
            return
        }
        if response.status == 404 {
            guard try await self.instance(instance) == nil else {
                throw ProviderError.http(
                    account: account, status: 404,
                    detail: "destroy answered 404 but instance \(id) is still listed: \(bodyDetail(response))")
            }
            logger.info("Provider delete \(account): instance \(id) was already gone")
            return
        }
        try requireSuccessStatus(response)
        try requireAccepted(response, action: "destroy")
        logger.debug("Provider deleted \(account): instance \(id)")
    }

    /// The instance's id, if it is a Vast instance with a numeric id; else nothing may be sent.
    private func actionID(_ instance: Instance) throws -> String {
        guard instance.key.provider == .vast, Self.isVastID(instance.key.id) else {
            let shown = String(instance.key.description.prefix(64))
            throw ProviderError.malformed(
                account: account, detail: "\(shown) is not a Vast instance id (digits only); nothing was sent")
        }
        return instance.key.id
    }

    /// Vast contract ids are non-negative integers; only those are put in a URL path.
    static func isVastID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 20 && id.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A 2xx of a mutating call: `success: false`, or an `error` with no `success`, is a refusal.
    private func requireAccepted(_ response: HTTPResponse, action: String) throws {
        guard let envelope = try? JSONDecoder().decode(VastEnvelope.self, from: response.body) else {
            throw ProviderError.malformed(
                account: account, detail: "the \(action) answer is not JSON, so its outcome is unknown")
        }
        if envelope.success == false || (envelope.success == nil && envelope.error != nil) {
            throw ProviderError.rejected(account: account, detail: masked(envelope.detail ?? "success: false"))
        }
    }

    // MARK: - HTTP

    /// Sends a read, paced for its endpoint and retried by the policy.
    private func send(
        _ endpoint: VastEndpoint, _ method: String, path: String, query: String? = nil, body: Data? = nil
    ) async throws -> HTTPResponse {
        let request = try makeRequest(method, path: path, query: query, body: body)
        do {
            return try await retry.send(request, through: paced(endpoint), clock: clock, logger: logger, label: account)
        } catch let error as HTTPTransportError {
            throw ProviderError.transport(account: account, detail: masked(error.description))
        }
    }

    /// Sends a stop or destroy, paced for its endpoint, never repeated blindly (`RetryPolicy.sendMutation`).
    private func mutate(
        _ endpoint: VastEndpoint, _ method: String, path: String, body: Data? = nil, action: String,
        recheck: () async throws -> MutationCheck
    ) async throws -> MutationResult {
        let request = try makeRequest(method, path: path, query: nil, body: body)
        do {
            return try await retry.sendMutation(
                request, through: paced(endpoint), clock: clock, logger: logger, account: account, action: action,
                recheck: recheck)
        } catch let error as HTTPTransportError {
            throw ProviderError.transport(account: account, detail: masked(error.description))
        } catch ProviderError.outcomeUnknown(let account, let detail) {
            throw ProviderError.outcomeUnknown(account: account, detail: masked(detail))
        }
    }

    private func paced(_ endpoint: VastEndpoint) -> any HTTPTransport {
        guard let pacer = pacers[endpoint], pacer.interval > 0 else { return transport }
        return PacedTransport(base: transport, pacer: pacer, clock: clock)
    }

    private func makeRequest(_ method: String, path: String, query: String?, body: Data?) throws -> HTTPRequest {
        var text = baseURL.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        text += path
        if let query { text += "?" + query }
        guard let url = URL(string: text) else {
            throw ProviderError.malformed(account: account, detail: "the API URL cannot be combined with \(path)")
        }
        var headers = ["Authorization": "Bearer \(apiKey.value)", "Accept": "application/json"]
        if body != nil { headers["Content-Type"] = "application/json" }
        return HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: Self.requestTimeout)
    }

    /// Maps 401/403, 429 and other non-2xx statuses (already retried) to `ProviderError`.
    private func requireSuccessStatus(_ response: HTTPResponse) throws {
        if let error = ProviderError.forStatus(response, account: account, detail: bodyDetail(response)) { throw error }
    }

    /// The envelope's `error: msg`, else the start of the body, with the key masked.
    private func bodyDetail(_ response: HTTPResponse) -> String {
        let envelope = try? JSONDecoder().decode(VastEnvelope.self, from: response.body)
        return masked(ProviderText.errorDetail(envelope?.detail, of: response))
    }

    /// The text with every occurrence of the API key replaced, in case a server echoes it back.
    private func masked(_ text: String) -> String {
        ProviderText.masked(text, secrets: [apiKey.value])
    }
}

/// The minimum seconds between two requests to one Vast endpoint, per API key (`shared/docs/providers.md` §1.4).
///
/// Vast enforces "a minimum interval between requests for a given endpoint and identity"; its OpenAPI files carry
/// `x-rate-limit` thresholds of 1.0 (show-instances, manage/stop/label), 2.0 (show-instance) and 3.0 (destroy) without
/// a unit. They are read as seconds between calls, the cautious reading: deleting three instances in a cycle then
/// takes about 6 s of waiting.
public struct VastPacing: Sendable, Equatable {
    /// `GET /api/v1/instances/` and `GET /api/v0/instances/?owner=me` (show-instances).
    public var showInstances: Double
    /// `PUT /api/v0/instances/{id}/` (manage: stop, start, label).
    public var manageInstance: Double
    /// `GET /api/v0/instances/{id}/` (show-instance).
    public var showInstance: Double
    /// `DELETE /api/v0/instances/{id}/` (destroy).
    public var destroyInstance: Double

    /// Seconds between two requests to each endpoint; 0 turns pacing off for it.
    public init(
        showInstances: Double = 1, manageInstance: Double = 1, showInstance: Double = 2, destroyInstance: Double = 3
    ) {
        self.showInstances = showInstances
        self.manageInstance = manageInstance
        self.showInstance = showInstance
        self.destroyInstance = destroyInstance
    }

    /// Vast's documented thresholds: 1, 1, 2 and 3 s.
    public static let documented = VastPacing()
    /// No pacing (tests that count backoff sleeps).
    public static let off = VastPacing(showInstances: 0, manageInstance: 0, showInstance: 0, destroyInstance: 0)
}

/// The Vast endpoints that are paced apart.
enum VastEndpoint: Hashable {
    case showInstances, manageInstance, showInstance, destroyInstance
}
