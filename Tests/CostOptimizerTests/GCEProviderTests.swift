import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// GCEProvider against an in-memory Google (FakeHTTPTransport + GCESimulator, or canned JSON). Sleeps go through a
/// FakeClock, so retries and operation polls are instant.
@Suite("GCE provider")
struct GCEProviderTests {
    func provider(
        _ transport: any HTTPTransport, tokens: (any AccessTokenSource)? = nil,
        settings: GCPSettings = GCEFixture.settings(), clock: FakeClock = FakeClock(), logger: Logger = .silent
    ) -> GCEProvider {
        GCEProvider(
            project: GCEFixture.project, settings: settings,
            tokens: tokens ?? StaticTokenSource(Secret(GCEFixture.token)), transport: transport, clock: clock,
            logger: logger, retry: .exact)
    }

    func simulated(_ instances: [SimulatedGCEInstance] = [], pageSize: Int = 500) -> (GCESimulator, FakeHTTPTransport) {
        let simulator = GCESimulator(acceptedTokens: [GCEFixture.token], pageSize: pageSize)
        simulator.add(contentsOf: instances)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    static let base = "/compute/v1/projects/\(GCEFixture.project)"

    static func isClose(_ a: Double?, _ b: Double) -> Bool {
        guard let a else { return false }
        return abs(a - b) < 1e-6
    }

    // MARK: - Mapping

    @Test("An aggregated listing maps ids, zones, GPUs, prices, labels and tags, ssh, times and deletion protection")
    func mapsFields() async throws {
        let (_, transport) = simulated([
            SimulatedGCEInstance(
                id: "10947706194464948790", name: "train-a100", zone: "us-central1-a", machineType: "a2-highgpu-8g",
                accelerators: [], natIP: "34.122.1.2", labels: ["team": "ml", "keep": ""], tags: ["ssh-allowed"],
                deletionProtection: true, creationTimestamp: "2013-12-13T10:43:58.782-08:00",
                lastStartTimestamp: "2023-11-14T08:00:00.123-08:00"),
            SimulatedGCEInstance(
                id: "2002", name: "web", zone: "europe-west4-a", machineType: "e2-standard-4", accelerators: [],
                natIP: "35.1.1.1"),
            SimulatedGCEInstance(
                id: "3003", name: "t4-pair", zone: "us-central1-b", status: "TERMINATED",
                machineType: "n1-standard-8", accelerators: [.init("nvidia-tesla-t4", 2)], natIP: nil,
                lastStartTimestamp: nil),
        ])
        let instances = try await provider(transport).listInstances()
        #expect(instances.map(\.name) == ["web", "train-a100", "t4-pair"], "scopes in order, zone by zone")
        let byName = Dictionary(uniqueKeysWithValues: instances.map { ($0.name, $0) })

        let a100 = try #require(byName["train-a100"])
        #expect(a100.key == InstanceKey(provider: .gcp, id: "10947706194464948790"))
        #expect(a100.zone == "us-central1-a")
        #expect(a100.state == .running)
        #expect(a100.providerStatus == "status=RUNNING")
        #expect(a100.gpuModel == "A100 40GB")
        #expect(a100.gpuCount == 8)
        #expect(a100.managed, "an a2 machine type is a GPU VM even without guestAccelerators")
        #expect(Self.isClose(a100.hourlyCostUSD, 8 * 2.93))
        #expect(a100.costEstimated)
        #expect(Self.isClose(a100.createdAt?.timeIntervalSince1970, 1_386_960_238.782))
        #expect(Self.isClose(a100.startedAt?.timeIntervalSince1970, 1_699_977_600.123))
        #expect(a100.labels == ["keep=", "team=ml", "ssh-allowed"])
        #expect(a100.ssh == SSHEndpoint(host: "34.122.1.2", port: 22, user: "ops"))
        #expect(a100.sshUnavailableReason == nil)
        #expect(a100.deletionProtected)

        let web = try #require(byName["web"])
        #expect(!web.managed, "a CPU-only VM is listed but never acted on")
        #expect(web.gpuModel == nil && web.gpuCount == nil && web.hourlyCostUSD == nil && !web.costEstimated)
        #expect(web.zone == "europe-west4-a")
        #expect(!web.deletionProtected)

        let t4 = try #require(byName["t4-pair"])
        #expect(t4.state == .paused)
        #expect(t4.managed)
        #expect(t4.gpuModel == "T4" && t4.gpuCount == 2)
        #expect(Self.isClose(t4.hourlyCostUSD, 0.70))
        #expect(t4.ssh == nil)
        #expect(t4.sshUnavailableReason == "no external IP")
        #expect(t4.startedAt == nil)
    }

    struct StatusRow: Sendable, CustomTestStringConvertible {
        var status: String
        var expected: InstanceState
        init(_ status: String, _ expected: InstanceState) {
            self.status = status
            self.expected = expected
        }
        var testDescription: String { "\(status) → \(expected)" }
    }

    static let statusTable: [StatusRow] = [
        .init("RUNNING", .running), .init(" running ", .running),
        .init("TERMINATED", .paused), .init("STOPPED", .paused), .init("SUSPENDED", .paused),
        .init("PROVISIONING", .transitional), .init("STAGING", .transitional), .init("STOPPING", .transitional),
        .init("SUSPENDING", .transitional), .init("REPAIRING", .transitional), .init("PENDING_STOP", .transitional),
        .init("DEPROVISIONING", .transitional), .init("PENDING", .transitional),
        .init("HIBERNATING", .unknown), .init("", .unknown), .init("RUNNING_SOMEHOW", .unknown),
    ]

    @Test("Each GCE status maps to one state, through a listing", arguments: statusTable)
    func mapsStatus(row: StatusRow) async throws {
        let (_, transport) = simulated([SimulatedGCEInstance(id: "1", name: "vm", status: row.status)])
        let listed = try #require(try await provider(transport).listInstances().first)
        #expect(listed.state == row.expected)
        #expect(listed.providerStatus == "status=\(row.status.trimmed)")
        #expect(GCEStatus.state(row.status) == row.expected)
    }

    @Test("A missing status is unknown")
    func missingStatus() async throws {
        let body =
            #"{"kind":"compute#instanceAggregatedList","items":"#
            + #"{"zones/us-central1-a":{"instances":[{"id":"7","name":"vm"}]}}}"#
        let transport = FakeHTTPTransport(responses: [.success(.gceText(200, body))])
        let listed = try #require(try await provider(transport).listInstances().first)
        #expect(listed.state == .unknown)
        #expect(listed.providerStatus == "status=null")
        #expect(listed.zone == "us-central1-a", "the scope names the zone when the instance does not")
        #expect(!listed.managed)
        #expect(listed.createdAt == nil)
    }

    struct MachineRow: Sendable, CustomTestStringConvertible {
        var machineType: String
        var gpu: GCEGPU?
        init(_ machineType: String, _ type: String?, _ model: String?, _ count: Int?) {
            self.machineType = machineType
            self.gpu = GCEGPU(acceleratorType: type, model: model, count: count)
        }
        init(cpuOnly machineType: String) {
            self.machineType = machineType
            self.gpu = nil
        }
        var testDescription: String {
            "\(machineType) → \(gpu.map { "\($0.count.map(String.init) ?? "?") × \($0.model ?? "?")" } ?? "no GPU")"
        }
    }

    static let machineTable: [MachineRow] = [
        .init("a2-highgpu-1g", "nvidia-tesla-a100", "A100 40GB", 1),
        .init("a2-highgpu-8g", "nvidia-tesla-a100", "A100 40GB", 8),
        .init("a2-megagpu-16g", "nvidia-tesla-a100", "A100 40GB", 16),
        .init("a2-ultragpu-1g", "nvidia-a100-80gb", "A100 80GB", 1),
        .init("a2-ultragpu-8g", "nvidia-a100-80gb", "A100 80GB", 8),
        .init("a3-highgpu-8g", "nvidia-h100-80gb", "H100 80GB", 8),
        .init("a3-highgpu-2g", "nvidia-h100-80gb", "H100 80GB", 2),
        .init("a3-megagpu-8g", "nvidia-h100-mega-80gb", "H100 80GB", 8),
        .init("a3-ultragpu-8g", "nvidia-h200-141gb", "H200", 8),
        .init("a4-highgpu-8g", "nvidia-b200", "B200", 8),
        .init("g2-standard-4", "nvidia-l4", "L4", 1),
        .init("g2-standard-8", "nvidia-l4", "L4", 1),
        .init("g2-standard-12", "nvidia-l4", "L4", 1),
        .init("g2-standard-16", "nvidia-l4", "L4", 1),
        .init("g2-standard-24", "nvidia-l4", "L4", 2),
        .init("g2-standard-32", "nvidia-l4", "L4", 1),
        .init("g2-standard-48", "nvidia-l4", "L4", 4),
        .init("g2-standard-96", "nvidia-l4", "L4", 8),
        .init("g4-standard-48", "nvidia-rtx-pro-6000", "RTX PRO 6000", 1),
        .init(
            "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/machineTypes/a2-highgpu-2g",
            "nvidia-tesla-a100", "A100 40GB", 2),
        .init("g2-standard-6", "nvidia-l4", "L4", nil),
        .init("a3-futuregpu-8g", nil, nil, 8),
        .init(cpuOnly: "n1-standard-8"), .init(cpuOnly: "e2-medium"), .init(cpuOnly: "custom-8-32768"),
        .init(cpuOnly: "n2-highmem-4"), .init(cpuOnly: "c3-standard-4"), .init(cpuOnly: ""),
    ]

    @Test("Accelerator-optimised machine types give the GPU model and count", arguments: machineTable)
    func machineTypes(row: MachineRow) {
        #expect(GCEMachineTypes.gpu(forMachineType: row.machineType) == row.gpu)
    }

    @Test("The price table covers every GPU GCE rents, and overrides replace or add entries")
    func priceTable() {
        let required = [
            "nvidia-tesla-t4", "nvidia-l4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4",
            "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h200-141gb", "nvidia-b200",
        ]
        for type in required {
            let price = GCEMachineTypes.price(forAcceleratorType: type)
            #expect(price.map { $0 > 0 && $0 < 100 } == true, "\(type) has a plausible price")
        }
        #expect(GCEMachineTypes.price(forAcceleratorType: "nvidia-tesla-t4") == 0.35)
        #expect(GCEMachineTypes.price(forAcceleratorType: "zones/x/acceleratorTypes/nvidia-tesla-t4") == 0.35)
        #expect(
            GCEMachineTypes.price(forAcceleratorType: "nvidia-tesla-t4", overrides: ["nvidia-tesla-t4": 0.5]) == 0.5)
        #expect(GCEMachineTypes.price(forAcceleratorType: "nvidia-rtx-pro-6000") == nil)
        #expect(
            GCEMachineTypes.price(forAcceleratorType: "nvidia-rtx-pro-6000", overrides: ["nvidia-rtx-pro-6000": 2.5])
                == 2.5)
        #expect(GCEMachineTypes.model(forAcceleratorType: "nvidia-tesla-x99") == "nvidia-tesla-x99")
    }

    @Test("Listed prices are the price per GPU times the count, overrides applied, and unknown without a price")
    func listedPrices() async throws {
        let (_, transport) = simulated([
            SimulatedGCEInstance(id: "1", name: "t4", accelerators: [.init("nvidia-tesla-t4", 2)]),
            SimulatedGCEInstance(id: "2", name: "a100", machineType: "a2-highgpu-4g", accelerators: []),
            SimulatedGCEInstance(id: "3", name: "odd", accelerators: [.init("nvidia-tesla-x99", 1)]),
            SimulatedGCEInstance(id: "4", name: "g4", machineType: "g4-standard-96", accelerators: []),
        ])
        let settings = GCEFixture.settings(overrides: ["nvidia-tesla-t4": 0.5, "nvidia-rtx-pro-6000": 2.25])
        let byName = Dictionary(
            uniqueKeysWithValues: try await provider(transport, settings: settings).listInstances().map {
                ($0.name, $0)
            })
        #expect(Self.isClose(byName["t4"]?.hourlyCostUSD, 1.0))
        #expect(Self.isClose(byName["a100"]?.hourlyCostUSD, 4 * 2.93))
        #expect(byName["a100"]?.costEstimated == true)
        #expect(byName["odd"]?.hourlyCostUSD == nil)
        #expect(byName["odd"]?.costEstimated == false)
        #expect(byName["odd"]?.gpuModel == "nvidia-tesla-x99")
        #expect(byName["odd"]?.managed == true)
        #expect(Self.isClose(byName["g4"]?.hourlyCostUSD, 4.5))
        #expect(byName["g4"]?.gpuCount == 2)
    }

    struct TimestampRow: Sendable, CustomTestStringConvertible {
        var text: String
        var epoch: Double?
        var testDescription: String { "\(text) → \(epoch.map { String($0) } ?? "nil")" }
    }

    static let timestamps: [TimestampRow] = [
        .init(text: "2013-12-13T10:43:58.782-08:00", epoch: 1_386_960_238.782),
        .init(text: "2023-11-01T09:30:00.000-07:00", epoch: 1_698_856_200),
        .init(text: "2024-02-29T23:59:59Z", epoch: 1_709_251_199),
        .init(text: "2024-05-01T12:00:00.5+05:30", epoch: 1_714_545_000.5),
        .init(text: "2013-12-13 10:43:58-08:00", epoch: 1_386_960_238),
        .init(text: "2013-12-13T10:43:58.782", epoch: nil),
        .init(text: "2023-02-29T00:00:00Z", epoch: nil),
        .init(text: "2023-13-01T00:00:00Z", epoch: nil),
        .init(text: "2013-12-13T10:43:58.-08:00", epoch: nil),
        .init(text: "yesterday", epoch: nil),
        .init(text: "", epoch: nil),
    ]

    @Test("RFC 3339 timestamps with fraction and offset parse exactly; anything else is nil", arguments: timestamps)
    func timestamp(row: TimestampRow) {
        let parsed = GCETimestamp.parse(row.text)
        if let epoch = row.epoch {
            #expect(Self.isClose(parsed?.timeIntervalSince1970, epoch))
        } else {
            #expect(parsed == nil)
        }
    }

    // MARK: - Listing

    @Test(
        "A listing answer that cannot be trusted is malformed, never an empty project",
        arguments: [
            "not json", "{}", #"{"items":5}"#, #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":5}}"#,
            #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":{"instances":[{"name":"no-id"}]}}}"#,
            #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":{"instances":[{"id":"12a","name":"x"}]}}}"#,
            #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":{"instances":[{"id":"1"}]}}}"#,
            #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":{"instances":[5]}}}"#,
            #"{"kind":"compute#instanceAggregatedList","items":{"zones/a":{"instances":{"id":"1"}}}}"#,
        ])
    func untrustedListing(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.gceText(200, body))])
        await #expect {
            _ = try await provider(transport).listInstances()
        } throws: { error in
            guard case ProviderError.malformed(account: "gcp:sim-project", _) = error else { return false }
            return true
        }
    }

    @Test("An instance list that says so but has no items is an empty project")
    func emptyProject() async throws {
        let body = #"{"kind":"compute#instanceAggregatedList","id":"projects/sim-project/aggregated/instances"}"#
        let transport = FakeHTTPTransport(responses: [.success(.gceText(200, body))])
        #expect(try await provider(transport).listInstances().isEmpty)
        let (_, simulatedTransport) = simulated()
        #expect(try await provider(simulatedTransport).listInstancesReportingGaps().instances.isEmpty)
    }

    @Test("With GCP_ZONE only that zone's list is requested, paged")
    func perZone() async throws {
        let (simulator, transport) = simulated(
            [
                SimulatedGCEInstance(id: "1", name: "a-1", zone: "us-central1-a"),
                SimulatedGCEInstance(id: "2", name: "b-1", zone: "us-central1-b"),
                SimulatedGCEInstance(id: "3", name: "b-2", zone: "us-central1-b"),
                SimulatedGCEInstance(id: "4", name: "b-3", zone: "us-central1-b"),
            ], pageSize: 2)
        let listing = try await provider(transport, settings: GCEFixture.settings(zone: "us-central1-b"))
            .listInstancesReportingGaps()
        #expect(listing.instances.map(\.name) == ["b-1", "b-2", "b-3"])
        #expect(listing.instances.allSatisfy { $0.zone == "us-central1-b" })
        #expect(listing.gaps.isEmpty)
        let token = Data("offset:2".utf8).base64EncodedString().addingPercentEncoding(
            withAllowedCharacters: .alphanumerics)!
        #expect(
            simulator.requests.map(\.line) == [
                "GET \(Self.base)/zones/us-central1-b/instances",
                "GET \(Self.base)/zones/us-central1-b/instances?pageToken=\(token)",
            ])
    }

    @Test("A server that repeats a page token fails the listing instead of looping")
    func repeatedPageToken() async throws {
        let body = #"{"kind":"compute#instanceAggregatedList","items":{},"nextPageToken":"same"}"#
        let transport = FakeHTTPTransport(handler: { _ in .gceText(200, body) })
        await #expect(
            throws: ProviderError.malformed(
                account: "gcp:sim-project", detail: "the API repeated a page token; the listing was abandoned")
        ) {
            _ = try await provider(transport).listInstances()
        }
        #expect(transport.requests.count == 2)
    }

    // MARK: - Actions

    @Test("Pause posts stop with a requestId UUID, polls the operation until DONE, and the instance stops")
    func pause() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        let clock = FakeClock()
        try await provider(transport, clock: clock).pause(GCEFixture.instance())
        let requests = simulator.requests
        #expect(requests.map(\.method) == ["POST", "GET", "GET"])
        #expect(requests[0].path == "\(Self.base)/zones/us-central1-a/instances/gpu-1/stop")
        let requestID = try #require(requests[0].queryItems["requestId"])
        #expect(UUID(uuidString: requestID) != nil)
        #expect(requests[1].path.hasPrefix("\(Self.base)/zones/us-central1-a/operations/operation-"))
        #expect(clock.sleeps == [GCEProvider.pollInterval, GCEProvider.pollInterval])
        #expect(simulator.instance(name: "gpu-1", zone: "us-central1-a")?.status == "TERMINATED")
    }

    @Test("A retried stop reuses its requestId, and the simulator creates one operation")
    func requestIDReused() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "\(Self.base)/zones/us-central1-a/instances/gpu-1/stop",
            response: GCESimulator.errorResponse(
                503, reason: "backendError", message: "Backend Error", status: "UNAVAILABLE"))
        try await provider(transport).pause(GCEFixture.instance())
        let posts = simulator.requests.filter { $0.method == "POST" }
        #expect(posts.count == 2)
        #expect(posts[0].queryItems["requestId"] == posts[1].queryItems["requestId"])
        #expect(simulator.operationsCreated == 1)
        // A second call is a second action with its own requestId.
        simulator.update(name: "gpu-1", zone: "us-central1-a") { $0.status = "RUNNING" }
        try await provider(transport).pause(GCEFixture.instance())
        let all = simulator.requests.filter { $0.method == "POST" }.compactMap { $0.queryItems["requestId"] }
        #expect(Set(all).count == 2)
    }

    @Test("The simulator answers a repeated requestId with the same operation")
    func simulatorDeduplicates() async throws {
        let simulator = GCESimulator(acceptedTokens: [GCEFixture.token])
        simulator.add(SimulatedGCEInstance(id: "1", name: "gpu-1"))
        let url = URL(
            string:
                "https://compute.googleapis.com\(Self.base)/zones/us-central1-a/instances/gpu-1/stop"
                + "?requestId=4f1c2a3b-0d9e-4c8f-9a7b-6e5d4c3b2a10"
        )!
        let request = HTTPRequest(method: "POST", url: url, headers: ["Authorization": "Bearer \(GCEFixture.token)"])
        let first = await simulator.handle(request)
        let second = await simulator.handle(request)
        #expect(first.status == 200 && second.status == 200)
        #expect(first.body == second.body)
        #expect(simulator.operationsCreated == 1)
    }

    @Test("A DONE operation with error.errors is a failed action, never a success")
    func doneWithError() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        simulator.failNextOperation(code: "RESOURCE_NOT_READY", message: "The resource 'gpu-1' is not ready")
        await #expect(
            throws: ProviderError.rejected(
                account: "gcp:sim-project",
                detail: "the stop of gpu-1 failed: RESOURCE_NOT_READY: The resource 'gpu-1' is not ready")
        ) {
            try await provider(transport).pause(GCEFixture.instance())
        }
        #expect(simulator.instance(name: "gpu-1", zone: "us-central1-a")?.status == "RUNNING")
    }

    @Test("A DONE operation whose error cannot be read, or with only an HTTP error status, still fails")
    func doneWithOddError() async throws {
        for body in [
            #"{"name":"op-1","status":"DONE","error":"boom"}"#,
            #"{"name":"op-1","status":"DONE","httpErrorStatusCode":409,"httpErrorMessage":"CONFLICT"}"#,
        ] {
            let transport = FakeHTTPTransport(responses: [.success(.gceText(200, body))])
            await #expect {
                try await provider(transport).pause(GCEFixture.instance())
            } throws: { error in
                guard case ProviderError.rejected = error else { return false }
                return true
            }
        }
    }

    @Test("An operation that never finishes fails after the bound, polled every few seconds")
    func operationTimeout() async throws {
        let running = #"{"kind":"compute#operation","name":"operation-slow","status":"RUNNING"}"#
        let transport = FakeHTTPTransport(handler: { _ in .gceText(200, running) })
        let clock = FakeClock()
        await #expect {
            try await provider(transport, clock: clock).pause(GCEFixture.instance())
        } throws: { error in
            guard case ProviderError.transport(account: "gcp:sim-project", let detail) = error else { return false }
            return detail.contains("outcome is unknown")
        }
        let polls = Int(GCEProvider.operationTimeout / GCEProvider.pollInterval)
        #expect(clock.sleeps == Array(repeating: GCEProvider.pollInterval, count: polls))
        #expect(transport.requests.count == polls + 1)
    }

    @Test(
        "An action answer that is not a usable Operation is malformed: its outcome is unknown",
        arguments: [
            "{}", "not json", #"{"name":"op-1","status":"WEIRD"}"#, #"{"status":"PENDING"}"#,
            #"{"name":"../op","status":"PENDING"}"#,
        ])
    func unusableOperation(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.gceText(200, body))])
        await #expect {
            try await provider(transport).pause(GCEFixture.instance())
        } throws: { error in
            guard case ProviderError.malformed = error else { return false }
            return true
        }
        #expect(transport.requests.count == 1)
    }

    @Test("Delete sends DELETE with a requestId, waits for the operation, and the instance is gone")
    func delete() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        try await provider(transport).delete(GCEFixture.instance())
        #expect(simulator.instances.isEmpty)
        #expect(simulator.requests.map(\.method) == ["DELETE", "GET", "GET"])
        #expect(simulator.requests[0].queryItems["requestId"].flatMap(UUID.init(uuidString:)) != nil)
    }

    @Test("Deleting an instance that is already gone (Google's 404 notFound) succeeds")
    func deleteGone() async throws {
        let (simulator, transport) = simulated()
        try await provider(transport).delete(GCEFixture.instance())
        #expect(simulator.requests.count == 1)
    }

    @Test("A bare 404 on delete (not Google's envelope) is an error, never a deletion")
    func deleteBare404() async throws {
        let transport = FakeHTTPTransport(responses: [.success(.gceText(404, "Not Found"))])
        await #expect {
            try await provider(transport).delete(GCEFixture.instance())
        } throws: { error in
            guard case ProviderError.http(account: "gcp:sim-project", status: 404, let detail) = error else {
                return false
            }
            return detail.contains("GCP_API_URL")
        }
    }

    @Test("A deletion-protected instance is never deleted: nothing is sent")
    func deletionProtected() async throws {
        let (simulator, transport) = simulated([
            SimulatedGCEInstance(id: "1001", name: "gpu-1", deletionProtection: true)
        ])
        await #expect {
            try await provider(transport).delete(GCEFixture.instance(protected: true))
        } throws: { error in
            guard case ProviderError.rejected(account: "gcp:sim-project", let detail) = error else { return false }
            return detail.contains("deletion protection")
        }
        #expect(simulator.requests.isEmpty)
        #expect(simulator.instances.count == 1)
    }

    struct TargetRow: Sendable, CustomTestStringConvertible {
        var name: String
        var zone: String?
        var provider: ProviderName = .gcp
        var testDescription: String { "\(provider.rawValue) \(name) in \(zone ?? "nil")" }
    }

    @Test(
        "An instance whose zone or name is not path-safe, or that is not a GCE instance, is refused with nothing sent",
        arguments: [
            TargetRow(name: "gpu-1", zone: nil), TargetRow(name: "gpu-1", zone: "../us-central1-a"),
            TargetRow(name: "gpu-1", zone: "us-central1-a/instances"), TargetRow(name: "../etc", zone: "us-central1-a"),
            TargetRow(name: "a/b", zone: "us-central1-a"), TargetRow(name: "gpu 1", zone: "us-central1-a"),
            TargetRow(name: "gpu-1?x=1", zone: "us-central1-a"), TargetRow(name: "", zone: "us-central1-a"),
            TargetRow(name: "gpu-1", zone: "us-central1-a", provider: .vast),
        ])
    func unsafeTargets(row: TargetRow) async throws {
        let transport = FakeHTTPTransport()
        let target = GCEFixture.instance(name: row.name, zone: row.zone, provider: row.provider)
        for action in ["pause", "delete"] {
            await #expect {
                if action == "pause" {
                    try await provider(transport).pause(target)
                } else {
                    try await provider(transport).delete(target)
                }
            } throws: { error in
                guard case ProviderError.malformed = error else { return false }
                return true
            }
        }
        #expect(transport.requests.isEmpty)
    }

    // MARK: - Retries and authentication

    @Test("A 403 rateLimitExceeded is retried and the listing then succeeds")
    func rateLimitThenOK() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1", name: "vm")])
        simulator.enqueueFault(
            method: "GET", pathPrefix: Self.base,
            response: GCESimulator.errorResponse(
                403, reason: "rateLimitExceeded", message: "Rate Limit Exceeded", status: "PERMISSION_DENIED"))
        let clock = FakeClock()
        #expect(try await provider(transport, clock: clock).listInstances().count == 1)
        #expect(simulator.requests.count == 2)
        #expect(clock.sleeps == [0.5])
    }

    @Test("A 403 rateLimitExceeded that never ends is rateLimited after every attempt")
    func rateLimitForever() async throws {
        let (simulator, transport) = simulated()
        simulator.enqueueFault(
            method: "*", pathPrefix: "/",
            response: GCESimulator.errorResponse(
                403, reason: "rateLimitExceeded", message: "Rate Limit Exceeded", status: "PERMISSION_DENIED"),
            times: 100)
        await #expect(throws: ProviderError.rateLimited(account: "gcp:sim-project")) {
            _ = try await provider(transport).listInstances()
        }
        #expect(simulator.requests.count == RetryPolicy().maxAttempts)
    }

    @Test("A 403 that is a missing permission is unauthorized at once, with Google's message")
    func forbidden() async throws {
        let (simulator, transport) = simulated()
        let message = "Required 'compute.instances.list' permission for 'projects/sim-project'"
        simulator.enqueueFault(
            method: "GET", pathPrefix: "/",
            response: GCESimulator.errorResponse(
                403, reason: "forbidden", message: message, status: "PERMISSION_DENIED"))
        await #expect(throws: ProviderError.unauthorized(account: "gcp:sim-project", detail: "HTTP 403: \(message)")) {
            _ = try await provider(transport).listInstances()
        }
        #expect(simulator.requests.count == 1)
    }

    @Test("A 401 refreshes the token once and the request is sent again with the new token")
    func refreshOnce() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1", name: "vm")])
        let tokens = GCEScriptedTokenSource(["ya29.stale-token-00000000", GCEFixture.token])
        #expect(try await provider(transport, tokens: tokens).listInstances().count == 1)
        #expect(tokens.calls == [false, true])
        #expect(
            simulator.requests.map { $0.header("Authorization") } == [
                "Bearer ya29.stale-token-00000000", "Bearer \(GCEFixture.token)",
            ])
    }

    @Test("A second 401 after the refresh is unauthorized, after exactly two requests")
    func refreshedAndStillRefused() async throws {
        let (simulator, transport) = simulated()
        let tokens = GCEScriptedTokenSource(["ya29.stale-token-00000000", "ya29.also-stale-0000000"])
        await #expect {
            _ = try await provider(transport, tokens: tokens).listInstances()
        } throws: { error in
            guard case ProviderError.unauthorized(account: "gcp:sim-project", let detail) = error else { return false }
            return detail.hasPrefix("HTTP 401 after a token refresh: Request had invalid authentication credentials")
        }
        #expect(tokens.calls == [false, true])
        #expect(simulator.requests.count == 2)
    }

    @Test("A token is cached until 60 s before it expires, then fetched again")
    func tokenCache() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1", name: "vm")])
        let clock = FakeClock()
        let tokens = CachingTokenSource(MetadataTokenSource(transport: transport, clock: clock), clock: clock)
        let gce = provider(transport, tokens: tokens, clock: clock)
        _ = try await gce.listInstances()
        _ = try await gce.listInstances()
        #expect(simulator.issuedTokens.count == 1)
        clock.advance(by: 3599 - 60 - 1)
        _ = try await gce.listInstances()
        #expect(simulator.issuedTokens.count == 1)
        clock.advance(by: 1)
        _ = try await gce.listInstances()
        #expect(simulator.issuedTokens.count == 2)
        let metadata = simulator.requests.filter { $0.path == MetadataTokenSource.tokenPath }
        #expect(metadata.count == 2)
        #expect(metadata.allSatisfy { $0.header("Metadata-Flavor") == "Google" })
    }

    @Test("Off Compute Engine the metadata server cannot be reached: a transport error that says what to set")
    func metadataUnreachable() async throws {
        let transport = FakeHTTPTransport()
        let clock = FakeClock()
        let tokens = MetadataTokenSource(transport: transport, clock: clock)
        await #expect {
            _ = try await provider(transport, tokens: tokens, clock: clock).listInstances()
        } throws: { error in
            guard case ProviderError.transport(account: "gcp:sim-project", let detail) = error else { return false }
            return detail.contains("metadata.google.internal") && detail.contains("GOOGLE_APPLICATION_CREDENTIALS")
        }
        #expect(transport.requests.allSatisfy { $0.url.host == "metadata.google.internal" })
    }

    @Test("The documented order: GCP_ACCESS_TOKEN, then GOOGLE_APPLICATION_CREDENTIALS, then the metadata server")
    func sourceOrder() async throws {
        let transport = FakeHTTPTransport()
        let runner = FakeCommandRunner()
        let clock = FakeClock()
        var settings = GCEFixture.settings()
        settings.accessToken = Secret(GCEFixture.token)
        settings.credentialsFile = "/nonexistent/key.json"
        let first = GCETokenSource.make(
            settings: settings, transport: transport, runner: runner, clock: clock, scratchDirectory: "/tmp")
        #expect(first is StaticTokenSource)
        #expect(try await first.token(forceRefresh: true).value == GCEFixture.token)

        settings.accessToken = nil
        let second = GCETokenSource.make(
            settings: settings, transport: transport, runner: runner, clock: clock, scratchDirectory: "/tmp")
        #expect(second is CachingTokenSource)
        await #expect {
            _ = try await second.token(forceRefresh: false)
        } throws: { error in
            (error as? AccessTokenError).map { $0.kind == .refused && $0.description.contains("/nonexistent/key.json") }
                ?? false
        }
        #expect(transport.requests.isEmpty, "a missing key file is not followed by the metadata server")

        settings.credentialsFile = nil
        let third = GCETokenSource.make(
            settings: settings, transport: transport, runner: runner, clock: clock, scratchDirectory: "/tmp")
        #expect(third is CachingTokenSource)
        _ = try? await third.token(forceRefresh: false)
        #expect(
            transport.requests.first?.url.absoluteString
                == "http://metadata.google.internal\(MetadataTokenSource.tokenPath)")
        #expect(runner.commands.isEmpty)
    }

    // MARK: - Service account (openssl faked)

    static let fakePEM =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7fakefakefake\n"
        + "-----END PRIVATE KEY-----\n"

    @Test("An OAuth invalid_grant is unauthorized with its description, and no key copy is left behind")
    func invalidGrant() async throws {
        let scratch = try GCEFiles.makeTemporaryDirectory("scratch")
        let keys = try GCEFiles.makeTemporaryDirectory("keys")
        defer {
            GCEFiles.removeTree(scratch)
            GCEFiles.removeTree(keys)
        }
        let keyFile = keys + "/key.json"
        try GCEFiles.serviceAccountKey(pem: Self.fakePEM, tokenURI: "https://oauth2.googleapis.com/token")
            .write(to: URL(fileURLWithPath: keyFile))
        let simulator = GCESimulator()
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/token",
            response: .gceText(400, #"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#))
        let transport = FakeHTTPTransport(handler: simulator.handle)
        let runner = GCEInspectingRunner(
            FakeCommandRunner(
                answer: FakeCommandRunner.everyHost(
                    .success(CommandResult(status: 0, stdout: Data(repeating: 7, count: 256))))))
        let clock = FakeClock()
        let tokens = ServiceAccountTokenSource(
            keyFile: keyFile, transport: transport, runner: runner, clock: clock, scratchDirectory: scratch)
        await #expect {
            _ = try await provider(transport, tokens: tokens, clock: clock).listInstances()
        } throws: { error in
            guard case ProviderError.unauthorized(account: "gcp:sim-project", let detail) = error else { return false }
            return detail.contains("invalid_grant: Invalid JWT Signature.") && detail.contains(keyFile)
                && !detail.contains("PRIVATE KEY")
        }
        let observation = try #require(runner.observations.first)
        #expect(observation.keyMode == 0o600)
        #expect(observation.keyIsPrivateKey)
        #expect(observation.directoryMode == 0o700)
        #expect(Array(observation.arguments.prefix(3)) == ["dgst", "-sha256", "-sign"])
        #expect(!observation.arguments.joined(separator: " ").contains("BEGIN"))
        #expect(GCEFiles.contents(scratch).isEmpty)
        #expect(simulator.requests.map(\.line) == ["POST /token"], "no API call without a token")
    }

    @Test("An openssl failure is unauthorized naming openssl, and no key copy is left behind")
    func opensslFails() async throws {
        let scratch = try GCEFiles.makeTemporaryDirectory("scratch")
        let keys = try GCEFiles.makeTemporaryDirectory("keys")
        defer {
            GCEFiles.removeTree(scratch)
            GCEFiles.removeTree(keys)
        }
        let keyFile = keys + "/key.json"
        try GCEFiles.serviceAccountKey(pem: Self.fakePEM, tokenURI: "https://oauth2.googleapis.com/token")
            .write(to: URL(fileURLWithPath: keyFile))
        let failure = CommandResult(status: 1, stderr: Data("Could not read private key from /x/key.pem\nmore\n".utf8))
        let runner = FakeCommandRunner(queue: [.success(failure)])
        let transport = FakeHTTPTransport()
        let tokens = ServiceAccountTokenSource(
            keyFile: keyFile, transport: transport, runner: runner, clock: FakeClock(), scratchDirectory: scratch)
        await #expect {
            _ = try await tokens.token(forceRefresh: false)
        } throws: { error in
            guard let error = error as? AccessTokenError, error.kind == .refused else { return false }
            return error.description.contains("openssl") && error.description.contains("Could not read private key")
        }
        #expect(transport.requests.isEmpty)
        #expect(GCEFiles.contents(scratch).isEmpty)
    }

    @Test(
        "A key file that cannot be used is refused, naming the file and never showing its content",
        arguments: ["missing", "not json", "authorized_user", "no email", "no key", "http token_uri"])
    func unusableKeyFile(kind: String) async throws {
        let keys = try GCEFiles.makeTemporaryDirectory("keys")
        defer { GCEFiles.removeTree(keys) }
        let keyFile = keys + "/key.json"
        var object: [String: Any] = [
            "type": "service_account", "private_key": Self.fakePEM, "client_email": "sa@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        ]
        switch kind {
        case "authorized_user": object["type"] = "authorized_user"
        case "no email": object["client_email"] = nil
        case "no key": object["private_key"] = "secret-but-not-pem"
        case "http token_uri": object["token_uri"] = "http://oauth2.example.com/token"
        default: break
        }
        if kind == "not json" {
            try Data("{\"private_key\": \"-----BEGIN PRIVATE KEY-----MIIE".utf8).write(
                to: URL(fileURLWithPath: keyFile))
        } else if kind != "missing" {
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: keyFile))
        }
        let runner = FakeCommandRunner()
        let tokens = ServiceAccountTokenSource(
            keyFile: keyFile, transport: FakeHTTPTransport(), runner: runner, clock: FakeClock(),
            scratchDirectory: keys)
        await #expect {
            _ = try await tokens.token(forceRefresh: false)
        } throws: { error in
            guard let error = error as? AccessTokenError, error.kind == .refused else { return false }
            return error.description.contains(keyFile) && !error.description.contains("BEGIN")
                && !error.description.contains("MIIE") && !error.description.contains("secret-but-not-pem")
        }
        #expect(runner.commands.isEmpty)
    }

    // MARK: - Secrets

    @Test("No token reaches a URL, a log line or an error, even when a server echoes it back")
    func secretsStayHidden() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        let sink = GCERecordingLogSink()
        let logger = Logger(level: .debug, sink: sink)
        let tokens = GCEScriptedTokenSource(["ya29.stale-token-00000000", GCEFixture.token])
        let gce = provider(transport, tokens: tokens, logger: logger)
        simulator.enqueueFault(
            method: "GET", pathPrefix: Self.base,
            response: GCESimulator.errorResponse(
                503, reason: "backendError", message: "Backend Error", status: "UNAVAILABLE"))
        _ = try await gce.listInstances()
        simulator.enqueueFault(
            method: "POST", pathPrefix: Self.base,
            response: GCESimulator.errorResponse(
                400, reason: "invalid", message: "bad token \(GCEFixture.token) in request", status: "INVALID_ARGUMENT")
        )
        var described = ""
        do {
            try await gce.pause(GCEFixture.instance())
        } catch {
            described = "\(error)"
        }
        #expect(described.contains("bad token <redacted> in request"))
        #expect(!described.contains(GCEFixture.token))
        #expect(!sink.recorded.isEmpty)
        for line in sink.recorded {
            #expect(!line.contains(GCEFixture.token) && !line.contains("stale-token"), "\(line)")
        }
        for request in transport.requests {
            #expect(!request.url.absoluteString.contains("ya29"))
        }
    }
}
