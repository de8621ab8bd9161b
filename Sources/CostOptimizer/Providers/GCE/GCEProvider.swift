import CostOptimizerCore
import Foundation

/// One Google Compute Engine project (`shared/docs/providers.md` §3): lists its instances, stops and deletes them.
///
/// - URLs: `GCP_API_URL` + `/compute/v1/projects/{project}/...`, built from the configured base only (an Operation's
///   `selfLink` is never followed). The project, zone, instance and operation names are checked to be plain path
///   segments before any URL is built; an instance that fails the check is refused with nothing sent.
/// - Authentication: `Authorization: Bearer <token>` from the `AccessTokenSource`. On a 401 the token is refreshed once
///   (`token(forceRefresh: true)`) and the request sent again; a second 401 is `.unauthorized`. Token failures map to
///   `ProviderError` (`.unauthorized` for refused credentials, with the OAuth `error_description`). No token, key or
///   JWT is put in a URL, a log line or an error.
/// - Listing: `GET .../aggregated/instances?returnPartialSuccess=true` (every zone), or
///   `GET .../zones/{zone}/instances` when `GCP_ZONE` is set, following `nextPageToken`. Scopes that hold only a
///   `warning` are skipped; scopes named in `unreachables`, or whose warning is `UNREACHABLE`, are the listing's gaps
///   (`PartialListing`): the instances that could be read are returned and the gaps are reported, never guessed at. A
///   page that cannot be read fails the whole listing. An answer without `items` counts as empty only if its `kind`
///   says it is an instance list.
/// - Instances: id = the instance `id` (a uint64 string), name = `name`, zone = the last segment of `zone`. Managed
///   when it has `guestAccelerators` or an accelerator-optimised machine type (`GCEMachineTypes`); others are listed
///   with `managed: false`. Labels (`key=value`) and network tags go to `labels`. `deletionProtection` sets
///   `deletionProtected`. The price is estimated from `GCEMachineTypes` (`costEstimated`). ssh goes to
///   `networkInterfaces[0].accessConfigs[0].natIP`, port 22, as `GCP_SSH_USER`.
/// - One instance: `GET .../zones/{zone}/instances/{name}`, mapped as the listing maps it; a 404 carrying Google's
///   not-found envelope is gone, and so is an answer about another id (the name was reused by a new instance).
/// - Pause: `POST .../zones/{zone}/instances/{name}/stop?requestId=<uuid>`; delete:
///   `DELETE .../zones/{zone}/instances/{name}?requestId=<uuid>`. One request id per call, reused by its retries (and
///   by the resend after a token refresh), so a retried request is not a second action: Google answers a repeated
///   request id with the operation the first request started. This is how GCE never repeats a mutation blindly.
///   The returned Operation is polled with `GET .../zones/{zone}/operations/{name}` every `pollInterval` seconds
///   (slept on the injected clock) until `DONE`, for at most `operationTimeout` seconds. A `DONE` operation with
///   `error` (or an HTTP error status) is `.rejected` with Google's messages: never a success. Delete: a 404 carrying
///   Google's not-found envelope is already gone (success); an instance with `deletionProtected` is refused without
///   a request.
/// - Retries: transport errors, 429, 500, 502, 503, 504 and 403 `rateLimitExceeded` are retried with the
///   `RetryPolicy`'s attempts, jittered delays and budget.
/// - Cancellation: a cancelled task gets `CancellationError`, not a `ProviderError`.
public struct GCEProvider: GPUProvider, PartialListing {
    /// Always `.gcp`.
    public let name: ProviderName = .gcp
    /// `gcp:<project>`.
    public let account: String
    /// The project id.
    public let project: String

    private let settings: GCPSettings
    private let tokens: any AccessTokenSource
    private let transport: any HTTPTransport
    private let clock: any WallClock
    private let logger: Logger
    private let retry: RetryPolicy

    /// A listing stops with an error after this many pages (100 000 instances at Google's 500 per page).
    public static let maxPages = 200
    /// Seconds each request may take.
    public static let requestTimeout: Double = 30
    /// Seconds an operation may take before the action is reported as failed with an unknown outcome.
    public static let operationTimeout: Double = 300
    /// Seconds between operation polls.
    public static let pollInterval: Double = 3
    /// 403 reasons that mean "rate limited", not "forbidden".
    static let rateLimitReasons: Set<String> = ["ratelimitexceeded", "userratelimitexceeded"]

    /// - Parameters:
    ///   - project: the project id (one provider per project).
    ///   - settings: the `GCP_*` settings: zone, API URL, ssh user, price overrides.
    ///   - tokens: gives the access token; share one source between projects.
    ///   - transport: sends the requests (`URLSessionTransport` in production).
    ///   - clock: sleeps the retry backoff and the operation polls.
    public init(
        project: String, settings: GCPSettings, tokens: any AccessTokenSource, transport: any HTTPTransport,
        clock: any WallClock, logger: Logger = .silent, retry: RetryPolicy = .init()
    ) {
        self.project = project.trimmed
        self.account = "gcp:\(project.trimmed)"
        self.settings = settings
        self.tokens = tokens
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.retry = retry
    }

    // MARK: - Listing

    /// The instances that could be listed; unreachable zones are logged as a warning (see `PartialListing`).
    /// - Throws: `ProviderError` when the listing failed as a whole.
    public func listInstances() async throws -> [Instance] {
        let listing = try await listInstancesReportingGaps()
        if !listing.gaps.isEmpty {
            logger.warning(
                "Provider partial listing \(account): unreachable \(listing.gaps.joined(separator: ", ")); "
                    + "instances there were not listed")
        }
        return listing.instances
    }

    /// Every instance that could be listed, and the scopes (`zones/...`) that could not be reached.
    /// - Throws: `ProviderError` when any page fails or cannot be read.
    public func listInstancesReportingGaps() async throws -> (instances: [Instance], gaps: [String]) {
        try requireValidProject()
        var instances: [Instance] = []
        var seenKeys: Set<InstanceKey> = []
        var gaps: [String] = []
        let addGap = { (gap: String) in
            let gap = gap.trimmed
            if !gap.isEmpty, !gaps.contains(gap) { gaps.append(gap) }
        }
        let add = { (instance: Instance) in
            if seenKeys.insert(instance.key).inserted { instances.append(instance) }
        }
        var pageToken: String?
        var seenTokens: Set<String> = []
        var pages = 0
        while true {
            pages += 1
            guard pages <= Self.maxPages else {
                throw ProviderError.malformed(
                    account: account, detail: "the listing did not end after \(Self.maxPages) pages; nothing was used")
            }
            let next: String?
            if let zone = settings.zone {
                guard Self.isZone(zone) else {
                    throw ProviderError.malformed(
                        account: account, detail: "GCP_ZONE is not a zone name such as us-central1-a; nothing was sent")
                }
                var query: String?
                if let pageToken { query = "pageToken=\(ProviderText.percentEncoded(pageToken))" }
                let answer = try await send("GET", path: "/zones/\(zone)/instances", query: query)
                try requireSuccess(answer)
                guard let page = try? JSONDecoder().decode(GCEInstanceList.self, from: answer.response.body) else {
                    throw ProviderError.malformed(account: account, detail: "the zone's instance list is not readable")
                }
                guard page.items != nil || page.kind == "compute#instanceList" else {
                    throw ProviderError.malformed(
                        account: account, detail: "the answer to the zone's instance list is not an instance list")
                }
                if page.warning?.code?.uppercased() == "UNREACHABLE" { addGap("zones/\(zone)") }
                for dto in page.items ?? [] { add(try instance(from: dto, scope: "zones/\(zone)")) }
                next = page.nextPageToken
            } else {
                var query = "returnPartialSuccess=true"
                if let pageToken { query += "&pageToken=\(ProviderText.percentEncoded(pageToken))" }
                let answer = try await send("GET", path: "/aggregated/instances", query: query)
                try requireSuccess(answer)
                guard let page = try? JSONDecoder().decode(GCEAggregatedInstanceList.self, from: answer.response.body)
                else {
                    throw ProviderError.malformed(
                        account: account, detail: "the aggregated instance list is not readable")
                }
                guard page.items != nil || page.kind == "compute#instanceAggregatedList" else {
                    throw ProviderError.malformed(
                        account: account, detail: "the answer to the aggregated list is not an instance list")
                }
                for (scope, list) in (page.items ?? [:]).sorted(by: { $0.key < $1.key }) {
                    if list.warning?.code?.uppercased() == "UNREACHABLE" { addGap(scope) }
                    for dto in list.instances ?? [] { add(try instance(from: dto, scope: scope)) }
                }
                for scope in page.unreachables ?? [] { addGap(scope) }
                next = page.nextPageToken
            }
            guard let next, !next.isEmpty else { break }
            guard seenTokens.insert(next).inserted else {
                throw ProviderError.malformed(
                    account: account, detail: "the API repeated a page token; the listing was abandoned")
            }
            pageToken = next
        }
        logger.debug(
            "Provider listed \(account): \(instances.count) instances in \(pages) pages, \(gaps.count) unreachable")
        return (instances, gaps)
    }

    // MARK: - One instance

    /// Reads one instance again: `GET .../zones/{zone}/instances/{name}`, mapped as the listing maps it.
    ///
    /// Gone (nil) when Google answers 404 with its not-found envelope, or when the name now belongs to an instance
    /// with another id (the one asked about was deleted and the name reused). A bare 404 (a wrong `GCP_API_URL`) is
    /// an error.
    /// - Returns: the instance, or nil when it no longer exists.
    /// - Throws: `ProviderError` for any other answer or an unreadable one; `.malformed` for an instance without a
    ///   valid zone and name (nothing is sent then).
    public func instance(_ instance: Instance) async throws -> Instance? {
        let target = try actionTarget(instance)
        let answer = try await send("GET", path: "/zones/\(target.zone)/instances/\(target.name)")
        if answer.response.status == 404 {
            guard Self.isNotFoundEnvelope(answer.response) else {
                throw ProviderError.http(
                    account: account, status: 404,
                    detail: "\(errorDetail(answer)); the answer is not Google's not-found error, check GCP_API_URL")
            }
            return nil
        }
        try requireSuccess(answer)
        guard let dto = try? JSONDecoder().decode(GCEInstanceDTO.self, from: answer.response.body) else {
            throw ProviderError.malformed(
                account: account, detail: "the lookup of instance \(target.name) is not an instance")
        }
        let found = try self.instance(from: dto, scope: "zones/\(target.zone)")
        guard found.name == target.name else {
            throw ProviderError.malformed(
                account: account, detail: "the lookup of instance \(target.name) answered about another instance")
        }
        guard found.key.id == instance.key.id else {
            logger.info(
                "Provider lookup \(account): the name \(target.name) in \(target.zone) now belongs to instance "
                    + "\(found.key.id), so instance \(instance.key.id) is gone")
            return nil
        }
        return found
    }

    /// The normalised instance; an entry without a numeric id or a name fails the listing.
    /// - Parameter scope: the aggregated list's key (`zones/us-central1-a`), used when the instance has no `zone`.
    func instance(from dto: GCEInstanceDTO, scope: String) throws -> Instance {
        guard let id = dto.id?.trimmed, Self.isNumericID(id) else {
            throw ProviderError.malformed(account: account, detail: "an instance in \(scope) has no numeric id")
        }
        guard let instanceName = dto.name?.trimmed, !instanceName.isEmpty else {
            throw ProviderError.malformed(account: account, detail: "instance \(id) has no name")
        }
        let zoneFromScope = scope.hasPrefix("zones/") ? String(scope.dropFirst("zones/".count)) : nil
        let zone =
            dto.zone.map(GCEMachineTypes.lastPathSegment).flatMap { $0.isEmpty ? nil : $0 } ?? zoneFromScope
            ?? settings.zone
        let gpus = Self.gpus(of: dto, overrides: settings.priceOverrides)
        let ssh = Self.sshEndpoint(dto, user: settings.sshUser)
        var labels = (dto.labels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        labels += (dto.tags ?? []).filter { !$0.trimmed.isEmpty }
        return Instance(
            key: InstanceKey(provider: .gcp, id: id),
            name: instanceName,
            zone: zone,
            state: GCEStatus.state(dto.status),
            providerStatus: "status=\(dto.status?.trimmed ?? "null")",
            gpuModel: gpus.model,
            gpuCount: gpus.count,
            hourlyCostUSD: gpus.hourlyCost,
            createdAt: dto.creationTimestamp.flatMap(GCETimestamp.parse),
            labels: labels,
            ssh: ssh,
            managed: gpus.managed,
            startedAt: dto.lastStartTimestamp.flatMap(GCETimestamp.parse),
            deletionProtected: dto.deletionProtection ?? false,
            costEstimated: gpus.hourlyCost != nil,
            sshUnavailableReason: ssh == nil ? "no external IP" : nil)
    }

    /// The GPUs, from `guestAccelerators` when present, else from an accelerator-optimised machine type.
    static func gpus(of dto: GCEInstanceDTO, overrides: [String: Double]) -> (
        managed: Bool, model: String?, count: Int?, hourlyCost: Double?
    ) {
        let attached = (dto.guestAccelerators ?? []).compactMap { accelerator -> (type: String, count: Int?)? in
            guard let type = accelerator.acceleratorType.map(GCEMachineTypes.lastPathSegment), !type.isEmpty,
                accelerator.acceleratorCount.map({ $0 > 0 }) ?? true
            else { return nil }
            return (type.lowercased(), accelerator.acceleratorCount)
        }
        if !attached.isEmpty {
            var models: [String] = []
            for entry in attached {
                let model = GCEMachineTypes.model(forAcceleratorType: entry.type)
                if !models.contains(model) { models.append(model) }
            }
            let counts = attached.compactMap(\.count)
            let count = counts.count == attached.count ? counts.reduce(0, +) : nil
            var cost: Double? = 0
            for entry in attached {
                guard let price = GCEMachineTypes.price(forAcceleratorType: entry.type, overrides: overrides),
                    let n = entry.count, let sum = cost
                else {
                    cost = nil
                    break
                }
                cost = sum + price * Double(n)
            }
            return (true, models.joined(separator: " + "), count, cost)
        }
        if let machineType = dto.machineType, let gpu = GCEMachineTypes.gpu(forMachineType: machineType) {
            let price = gpu.acceleratorType.flatMap {
                GCEMachineTypes.price(forAcceleratorType: $0, overrides: overrides)
            }
            let cost = price.flatMap { price in gpu.count.map { price * Double($0) } }
            return (true, gpu.model, gpu.count, cost)
        }
        return (false, nil, nil, nil)
    }

    /// `networkInterfaces[0].accessConfigs[0].natIP`, port 22; nil without an external IP.
    static func sshEndpoint(_ dto: GCEInstanceDTO, user: String) -> SSHEndpoint? {
        guard let ip = dto.networkInterfaces?.first?.accessConfigs?.first?.natIP?.trimmed, !ip.isEmpty,
            ip.count <= 64, ip.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "@") })
        else { return nil }
        return SSHEndpoint(host: ip, port: 22, user: user)
    }

    // MARK: - Actions

    /// Stops the instance and waits for the stop operation to finish.
    /// - Throws: `ProviderError`: `.rejected` when the operation is `DONE` with an error, `.malformed` for an instance
    ///   that is not a GCE instance with a valid zone and name (nothing is sent then).
    public func pause(_ instance: Instance) async throws {
        let target = try actionTarget(instance)
        let requestID = Self.newRequestID()
        let answer = try await send(
            "POST", path: "/zones/\(target.zone)/instances/\(target.name)/stop", query: "requestId=\(requestID)")
        try requireSuccess(answer)
        try await waitForOperation(answer, zone: target.zone, action: "stop", instanceName: target.name)
        logger.debug("Provider paused \(account): instance \(target.name) in \(target.zone)")
    }

    /// Deletes the instance and waits for the delete operation to finish.
    ///
    /// A 404 with Google's not-found envelope is already gone (success); a bare 404 (a wrong `GCP_API_URL`) is an
    /// error.
    /// - Throws: `ProviderError`: `.rejected` for a deletion-protected instance (nothing is sent) or a `DONE`
    ///   operation with an error.
    public func delete(_ instance: Instance) async throws {
        let target = try actionTarget(instance)
        guard !instance.deletionProtected else {
            throw ProviderError.rejected(
                account: account,
                detail: "instance \(target.name) has deletion protection, so it was not deleted; turn the protection "
                    + "off in Google Cloud to let it be deleted")
        }
        let requestID = Self.newRequestID()
        let answer = try await send(
            "DELETE", path: "/zones/\(target.zone)/instances/\(target.name)", query: "requestId=\(requestID)")
        if answer.response.status == 404 {
            guard Self.isNotFoundEnvelope(answer.response) else {
                throw ProviderError.http(
                    account: account, status: 404,
                    detail: "\(errorDetail(answer)); the answer is not Google's not-found error, check GCP_API_URL")
            }
            logger.info("Provider delete \(account): instance \(target.name) in \(target.zone) was already gone")
            return
        }
        try requireSuccess(answer)
        try await waitForOperation(answer, zone: target.zone, action: "delete", instanceName: target.name)
        logger.debug("Provider deleted \(account): instance \(target.name) in \(target.zone)")
    }

    /// Follows the Operation in `answer` until it is `DONE`, then checks its error.
    private func waitForOperation(_ answer: Answer, zone: String, action: String, instanceName: String) async throws {
        var operation = try decodeOperation(answer, action: action)
        let deadline = clock.now().addingTimeInterval(Self.operationTimeout)
        while true {
            let status = operation.status?.trimmed.uppercased()
            if status == "DONE" {
                if operation.failed {
                    throw ProviderError.rejected(
                        account: account,
                        detail:
                            "the \(action) of \(instanceName) failed: \(masked(operation.failureDetail, answer.token))")
                }
                return
            }
            guard status == "PENDING" || status == "RUNNING" else {
                throw ProviderError.malformed(
                    account: account,
                    detail: "the \(action) operation of \(instanceName) has status \(status ?? "null"), so its outcome "
                        + "is unknown")
            }
            guard let operationName = operation.name?.trimmed, Self.isOperationName(operationName) else {
                throw ProviderError.malformed(
                    account: account,
                    detail: "the \(action) operation of \(instanceName) has no usable name, so it cannot be followed")
            }
            guard clock.now() < deadline else {
                throw ProviderError.transport(
                    account: account,
                    detail: "the \(action) operation \(operationName) of \(instanceName) was not done after "
                        + "\(Int(Self.operationTimeout)) s; its outcome is unknown and the next cycle lists it again")
            }
            try await clock.sleep(seconds: Self.pollInterval)
            let poll = try await send("GET", path: "/zones/\(zone)/operations/\(operationName)")
            try requireSuccess(poll)
            operation = try decodeOperation(poll, action: action)
        }
    }

    private func decodeOperation(_ answer: Answer, action: String) throws -> GCEOperation {
        guard let operation = try? JSONDecoder().decode(GCEOperation.self, from: answer.response.body),
            operation.status != nil
        else {
            throw ProviderError.malformed(
                account: account, detail: "the \(action) answer is not an Operation, so its outcome is unknown")
        }
        return operation
    }

    /// The zone and name to put in an action URL, checked; otherwise nothing may be sent.
    private func actionTarget(_ instance: Instance) throws -> (zone: String, name: String) {
        try requireValidProject()
        guard instance.key.provider == .gcp else {
            throw ProviderError.malformed(
                account: account,
                detail: "\(String(instance.key.description.prefix(64))) is not a GCE instance; nothing was sent")
        }
        guard let zone = instance.zone, Self.isZone(zone) else {
            throw ProviderError.malformed(
                account: account, detail: "instance \(instance.key.id) has no valid zone; nothing was sent")
        }
        guard Self.isInstanceName(instance.name) else {
            throw ProviderError.malformed(
                account: account,
                detail: "instance \(instance.key.id) has a name that is not a GCE instance name; nothing was sent")
        }
        return (zone, instance.name)
    }

    private func requireValidProject() throws {
        guard Self.isProjectID(project) else {
            throw ProviderError.malformed(
                account: account, detail: "GCP_PROJECT_ID holds an invalid project id; nothing was sent")
        }
    }

    // MARK: - HTTP

    /// A response and the token it was sent with (to mask it in error text).
    struct Answer {
        var response: HTTPResponse
        var token: Secret
    }

    /// Sends one API call with retries; on a 401, refreshes the token once and sends again.
    private func send(_ method: String, path: String, query: String? = nil) async throws -> Answer {
        var text = settings.apiURL.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        text += "/compute/v1/projects/\(project)" + path
        if let query { text += "?" + query }
        guard let url = URL(string: text) else {
            throw ProviderError.malformed(account: account, detail: "GCP_API_URL cannot be combined with \(path)")
        }
        var refreshed = false
        while true {
            let token = try await accessToken(forceRefresh: refreshed)
            let request = HTTPRequest(
                method: method, url: url,
                headers: ["Authorization": "Bearer \(token.value)", "Accept": "application/json"],
                timeout: Self.requestTimeout)
            let response = try await sendRetrying(request, token: token)
            if response.status == 401, !refreshed {
                refreshed = true
                logger.info(
                    "Provider token refresh \(account): HTTP 401, fetching a new access token and retrying once")
                continue
            }
            return Answer(response: response, token: token)
        }
    }

    /// `RetryPolicy`'s attempts, jittered delays and budget, also retrying 403 `rateLimitExceeded`. Safe for the
    /// stop and delete too: their URL carries the call's `requestId`, so Google treats a repeat as the same call.
    private func sendRetrying(_ request: HTTPRequest, token: Secret) async throws -> HTTPResponse {
        var chain = RetryChain(policy: retry, clock: clock)
        while true {
            try Task.checkCancellation()
            do {
                let response = try await transport.send(request)
                guard let why = Self.retryReason(response) else { return response }
                guard try await chain.retry(after: masked(why, token), logger: logger, label: account) else {
                    return response
                }
            } catch let error as HTTPTransportError {
                if error == .cancelled { throw CancellationError() }
                let detail = masked(error.description, token)
                guard try await chain.retry(after: detail, logger: logger, label: account) else {
                    throw ProviderError.transport(account: account, detail: detail)
                }
            }
        }
    }

    /// Why a response is worth another attempt, or nil.
    static func retryReason(_ response: HTTPResponse) -> String? {
        if RetryPolicy.retryableStatuses.contains(response.status) { return "HTTP \(response.status)" }
        if response.status == 403, isRateLimited(response) { return "HTTP 403 rateLimitExceeded" }
        return nil
    }

    static func isRateLimited(_ response: HTTPResponse) -> Bool {
        guard let envelope = try? JSONDecoder().decode(GCEErrorEnvelope.self, from: response.body) else { return false }
        return envelope.hasReason(rateLimitReasons)
    }

    private func accessToken(forceRefresh: Bool) async throws -> Secret {
        let token: Secret
        do {
            token = try await tokens.token(forceRefresh: forceRefresh)
        } catch let error as AccessTokenError {
            switch error.kind {
            case .refused: throw ProviderError.unauthorized(account: account, detail: error.description)
            case .unreachable: throw ProviderError.transport(account: account, detail: error.description)
            case .failed(let status):
                throw ProviderError.http(account: account, status: status, detail: error.description)
            case .malformed: throw ProviderError.malformed(account: account, detail: error.description)
            }
        } catch let error as ProviderError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Another source's own error: named by its type only, since its text might hold a credential.
            throw ProviderError.unauthorized(
                account: account, detail: "no access token could be obtained (\(type(of: error)))")
        }
        guard GCETokenSupport.isHeaderSafe(token.value) else {
            throw ProviderError.unauthorized(
                account: account,
                detail: "the access token holds characters that cannot be sent in a header; check GCP_ACCESS_TOKEN")
        }
        return token
    }

    /// Maps 401, 403, 429 and other non-2xx statuses (already retried) to `ProviderError`.
    private func requireSuccess(_ answer: Answer) throws {
        let response = answer.response
        switch response.status {
        case 200..<300:
            return
        case 401:
            throw ProviderError.unauthorized(
                account: account, detail: "HTTP 401 after a token refresh: \(errorDetail(answer))")
        case 403 where Self.isRateLimited(response), 429:
            throw ProviderError.rateLimited(account: account)
        case 403:
            throw ProviderError.unauthorized(account: account, detail: "HTTP 403: \(errorDetail(answer))")
        default:
            throw ProviderError.http(account: account, status: response.status, detail: errorDetail(answer))
        }
    }

    /// Google's error message, else the start of the body, with the token masked.
    private func errorDetail(_ answer: Answer) -> String {
        let envelope = try? JSONDecoder().decode(GCEErrorEnvelope.self, from: answer.response.body)
        return masked(ProviderText.errorDetail(envelope?.detail, of: answer.response), answer.token)
    }

    /// The text with the token replaced, in case a server echoes it back.
    private func masked(_ text: String, _ token: Secret) -> String {
        ProviderText.masked(text, secrets: [token.value])
    }

    /// A 404 that is Google's own not-found error (`code` 404, `status` NOT_FOUND or reason `notFound`).
    static func isNotFoundEnvelope(_ response: HTTPResponse) -> Bool {
        guard let envelope = try? JSONDecoder().decode(GCEErrorEnvelope.self, from: response.body) else { return false }
        return envelope.code == 404 || envelope.status?.uppercased() == "NOT_FOUND" || envelope.hasReason(["notfound"])
    }

    // MARK: - Names

    /// A new request id: a random UUID, as Google requires.
    static func newRequestID() -> String { UUID().uuidString.lowercased() }

    /// GCE instance ids are uint64 values written in decimal.
    static func isNumericID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 20 && id.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A zone: lower-case letters, digits and `-`, at most 63 characters.
    public static func isZone(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 63 && text.utf8.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// An instance name (RFC 1035, as GCE requires): a lower-case letter, then lower-case letters, digits and `-`,
    /// at most 63 characters.
    public static func isInstanceName(_ text: String) -> Bool {
        guard let first = text.utf8.first, first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z") else { return false }
        return text.count <= 63 && text.utf8.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// A project id (`my-project`, or domain-scoped `example.com:my-project`): letters, digits, `-`, `.`, `:`.
    static func isProjectID(_ text: String) -> Bool {
        guard let first = text.utf8.first, first != UInt8(ascii: "."), first != UInt8(ascii: ":") else { return false }
        return text.count <= 100
            && text.utf8.allSatisfy {
                isLowerAlnum($0) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "-")
                    || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":")
            }
    }

    /// An operation name: letters, digits, `-`, `_`, `.`, not starting with `.`, at most 128 characters.
    static func isOperationName(_ text: String) -> Bool {
        guard let first = text.utf8.first, first != UInt8(ascii: ".") else { return false }
        return text.count <= 128
            && text.utf8.allSatisfy {
                isLowerAlnum($0) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "-")
                    || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
            }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// Maps a Compute Engine instance `status` to `InstanceState`.
///
/// | status | state |
/// |---|---|
/// | `RUNNING` | running |
/// | `TERMINATED`, `STOPPED`, `SUSPENDED` | paused (a user-stopped VM reports `TERMINATED`) |
/// | `PROVISIONING`, `STAGING`, `STOPPING`, `SUSPENDING`, `REPAIRING` | transitional |
/// | `PENDING_STOP`, `DEPROVISIONING`, `PENDING` | transitional |
/// | anything else, or none | unknown |
///
/// Values are compared trimmed and upper-cased.
public enum GCEStatus {
    /// Statuses that are on their way somewhere: no action.
    public static let transitional: Set<String> = [
        "PROVISIONING", "STAGING", "STOPPING", "SUSPENDING", "REPAIRING", "PENDING_STOP", "DEPROVISIONING", "PENDING",
    ]
    /// Statuses with the VM stopped or suspended.
    public static let paused: Set<String> = ["TERMINATED", "STOPPED", "SUSPENDED"]

    /// The normalised state of a raw `status` (nil = absent).
    public static func state(_ status: String?) -> InstanceState {
        guard let status = status?.trimmed.uppercased(), !status.isEmpty else { return .unknown }
        if status == "RUNNING" { return .running }
        if paused.contains(status) { return .paused }
        if transitional.contains(status) { return .transitional }
        return .unknown
    }
}
