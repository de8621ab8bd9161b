import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// TensorDockProvider against an in-memory TensorDock (FakeHTTPTransport + TensorDockSimulator, or canned JSON).
@Suite("TensorDock provider")
struct TensorDockProviderTests {
    typealias F = TensorDockFixture

    /// A provider; pacing is off unless `interval` is nil (the documented intervals) or positive.
    func provider(
        _ transport: FakeHTTPTransport, settings: TensorDockSettings = F.settings(), clock: any WallClock = FakeClock(),
        logger: Logger = .silent, retry: RetryPolicy = .exact, interval: Double? = 0
    ) -> TensorDockProvider {
        TensorDockProvider(
            settings: settings, transport: transport, clock: clock, logger: logger, retry: retry,
            minimumInterval: interval)
    }

    func simulated(_ vms: [SimulatedTensorDockVM] = [], v2StopReleasesGPU: Bool = true)
        -> (TensorDockSimulator, FakeHTTPTransport)
    {
        let simulator = F.simulator(vms, v2StopReleasesGPU: v2StopReleasesGPU)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    static let v0Settings = F.settings(v2: false, v0: true)

    // MARK: - v2 listing

    @Test(
        "Both v2 envelopes with nested or flat attributes list the same instances",
        arguments: [TensorDockSimulator.V2Envelope.dataInstances, .dataAttributesInstances],
        [TensorDockSimulator.V2Attributes.nested, .flat])
    func v2Shapes(envelope: TensorDockSimulator.V2Envelope, attributes: TensorDockSimulator.V2Attributes)
        async throws
    {
        let simulator = F.simulator(
            [
                SimulatedTensorDockVM(id: F.idA, name: "train keep", gpuCount: 2, pricePerHour: 0.7),
                SimulatedTensorDockVM(
                    id: F.idB, name: "idle", status: "StoppedDisassociated", gpuModel: "a100-pcie-80gb",
                    ipAddress: nil, sshPort: nil, dedicatedIPAddress: "203.0.113.50"),
                SimulatedTensorDockVM(id: F.idC, name: "reserved", status: "Stopped", sshPort: nil),
            ], envelope: envelope, attributes: attributes)
        let transport = FakeHTTPTransport(handler: simulator.handle)
        let instances = try await provider(transport).listInstances()
        try #require(instances.count == 3)

        let a = instances[0]
        #expect(a.key == InstanceKey(provider: .tensordock, id: F.idA))
        #expect(a.name == "train keep")
        #expect(a.labels == ["train keep"])
        #expect(a.state == .running)
        #expect(a.providerStatus == "status=running")
        #expect(a.gpuModel == "geforcertx4090-pcie-24gb")
        #expect(a.gpuCount == 2)
        #expect(a.hourlyCostUSD == 0.7)
        #expect(a.createdAt == nil, "v2 documents no creation time")
        #expect(a.ssh == SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "user"))
        #expect(a.sshUnavailableReason == nil)
        #expect(a.zone == "Chubbuck, Idaho, United States")
        #expect(a.managed)
        #expect(!a.gpuReserved)

        let b = instances[1]
        #expect(b.state == .paused)
        #expect(!b.gpuReserved)
        #expect(b.gpuModel == "a100-pcie-80gb")
        #expect(b.ssh == SSHEndpoint(host: "203.0.113.50", port: 22, user: "user"))

        let c = instances[2]
        #expect(c.state == .paused)
        #expect(c.gpuReserved)
        #expect(c.ssh == nil)
        #expect(c.sshUnavailableReason == "TensorDock lists no port forward to port 22 and no dedicated IP")

        #expect(simulator.requests.map(\.line) == ["GET /api/v2/instances"])
        #expect(simulator.requests[0].header("Authorization") == "Bearer \(F.bearerToken)")
        #expect(simulator.requests[0].header("Accept") == "application/json")
    }

    static let v2Variants = """
        {"data":{"instances":[
          {"type":"virtualmachine","id":"a1","attributes":{"name":" train keep ","status":"Running",
           "ipAddress":" 203.0.113.5 ","portForwards":[{"internalPort":"22","externalPort":"40022"},
           {"internal_port":8888,"external_port":40023}],"resources":{"gpus":[{"v0Name":"h100-sxm5-80gb","count":"8"}]},
           "rateHourly":"17.6","createdAt":"2024-03-01T12:00:00Z"}},
          {"type":"instance","id":"b2","name":"cpu-box","status":"stopped_disassociated","resources":{"gpus":{}},
           "rateHourly":0.05},
          {"type":"instance","id":"c3","attributes":{"status":null},"status":"stopped","name":"flat fallback",
           "ipAddress":"203.0.113.6","resources":{"gpus":{"l40s-48gb":{"count":1,"v0Name":"l40s-48gb"}}}},
          {"type":"instance","id":"d4","attributes":{"name":"mystery","status":"Outbid"}}
        ]}}
        """

    @Test("v2 instances decode strings for numbers, camel-case forwards, GPU arrays and maps, and missing fields")
    func v2Variants() async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, Self.v2Variants))])
        let settings = F.settings(sshUser: "ubuntu")
        let instances = try await provider(transport, settings: settings).listInstances()
        try #require(instances.count == 4)

        let a = instances[0]
        #expect(a.key.id == "a1")
        #expect(a.name == "train keep")
        #expect(a.state == .running)
        #expect(a.gpuModel == "h100-sxm5-80gb")
        #expect(a.gpuCount == 8)
        #expect(a.hourlyCostUSD == 17.6)
        #expect(a.createdAt == Date(timeIntervalSince1970: 1_709_294_400), "a creation field is used when present")
        #expect(a.ssh == SSHEndpoint(host: "203.0.113.5", port: 40_022, user: "ubuntu"))

        let b = instances[1]
        #expect(b.state == .paused)
        #expect(b.providerStatus == "status=stopped_disassociated")
        #expect(b.gpuCount == 0)
        #expect(!b.managed, "an empty GPU map is a CPU-only VM")
        #expect(b.ssh == nil)
        #expect(b.sshUnavailableReason == "TensorDock lists no IP address for it")

        let c = instances[2]
        #expect(c.name == "flat fallback")
        #expect(c.state == .paused, "a null nested status falls back to the flat one")
        #expect(c.gpuReserved)
        #expect(c.gpuModel == "l40s-48gb")
        #expect(c.gpuCount == 1)
        #expect(c.ssh == nil)

        let d = instances[3]
        #expect(d.state == .unknown)
        #expect(d.gpuModel == nil)
        #expect(d.gpuCount == nil)
        #expect(d.managed, "missing GPU fields do not make a VM unmanaged")
        #expect(d.hourlyCostUSD == nil)
    }

    @Test(
        "A v2 listing that cannot be trusted is malformed, never an empty account",
        arguments: [
            "not json", "{}", #"{"data":{}}"#, #"{"data":{"instances":null}}"#, #"{"data":{"instances":{"a":1}}}"#,
            #"{"data":{"attributes":{}}}"#, #"{"data":{"instances":[{"name":"no id"}]}}"#,
            #"{"data":{"instances":[{"id":"a/b"}]}}"#, #"{"data":{"instances":[{"id":"../x"}]}}"#,
            #"{"data":{"instances":[null]}}"#, #"{"data":{"instances":["a1"]}}"#,
        ])
    func v2UntrustedListing(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        await #expect {
            _ = try await provider(transport).listInstances()
        } throws: { error in
            guard case ProviderError.malformed(account: "tensordock", _) = error else { return false }
            return true
        }
    }

    @Test("An empty v2 account lists nothing, in both envelopes")
    func v2Empty() async throws {
        for body in [#"{"data":{"instances":[]}}"#, #"{"data":{"type":"list","attributes":{"instances":[]}}}"#] {
            let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
            #expect(try await provider(transport).listInstances().isEmpty)
        }
    }

    @Test(
        "A 2xx v2 body that carries an error is rejected with its message",
        arguments: [
            (#"{"error":"Organization suspended","status":403}"#, "Organization suspended"),
            (#"[{"message":"Internal failure"}]"#, "Internal failure"),
            (#"{"success":false,"message":"try later"}"#, "try later"),
        ])
    func v2ErrorIn2xx(body: String, detail: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        await #expect(throws: ProviderError.rejected(account: "tensordock", detail: detail)) {
            _ = try await provider(transport).listInstances()
        }
    }

    @Test(
        "Non-2xx v2 answers keep the body's message, decoded loosely",
        arguments: [
            (400, #"{"error":"Bad Request","message":"Instance is stopped","status":400}"#,
             ProviderError.http(account: "tensordock", status: 400, detail: "Bad Request: Instance is stopped")),
            (404, #"[{"message":"Route not found"}]"#,
             ProviderError.http(account: "tensordock", status: 404, detail: "Route not found")),
            (422, #"{"errors":[{"detail":"bad field"}]}"#,
             ProviderError.http(account: "tensordock", status: 422, detail: "bad field")),
            (400, "", ProviderError.http(account: "tensordock", status: 400, detail: "empty body")),
            (401, #"{"error":"Unauthorized","message":"Invalid token","status":401}"#,
             ProviderError.unauthorized(account: "tensordock", detail: "HTTP 401: Unauthorized: Invalid token")),
            (403, "Forbidden", ProviderError.unauthorized(account: "tensordock", detail: "HTTP 403: Forbidden")),
        ])
    func v2Errors(status: Int, body: String, expected: ProviderError) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(status, body))])
        await #expect(throws: expected) {
            _ = try await provider(transport).listInstances()
        }
        #expect(transport.requests.count == 1, "4xx answers are not retried")
    }

    // MARK: - v0 listing

    static let v0List = """
        {"success":true,"virtualmachines":{
          "\(F.idB)":{"status":"Stopped","name":"keep-notebook","timestamp_creation":"garbage","total_price":"1.2",
            "specs":{"gpu":{"a100-pcie-80gb":{"amount":1}},"vcpus":8,"ram":64,"storage":200},"port_forwards":{},
            "ip_address":"198.51.100.8","dedicated_ip_address":"203.0.113.50","location":"loc-7"},
          "\(F.idA)":{"status":"Running","name":"llm-train","type":"virtualmachine","city":"Chubbuck","state":"Idaho",
            "country":"United States","timestamp_creation":"2023-11-12 08:30:00","total_price":"0.350","cost":0.35,
            "compute_price":"0.34","storage_price":"0.01","default_user":"user",
            "specs":{"gpu":{"type":"geforcertx4090-pcie-24gb","amount":2},"vcpus":8,"ram":32,"storage":100},
            "port_forwards":{"20023":"8888","20022":"22"},"ip_address":"198.51.100.7"},
          "\(F.idC)":{"status":"StoppedDisassociated","name":"","specs":{"gpu":{}},"port_forwards":[],
            "ip_address":null,"total_price":"n/a"},
          "3d4e5f6a-7b8c-4d9e-8f0a-2b3c4d5e6f7a":{"status":"Outbid","name":"spot",
            "specs":{"gpu":{"type":"v100-sxm2-16gb","amount":1}},"timestamp_creation":1699777800}
        }}
        """

    @Test("The v0 list, an object keyed by VM id, decodes every documented field")
    func v0ObjectKeyedList() async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, Self.v0List))])
        let instances = try await provider(transport, settings: Self.v0Settings).listInstances()
        #expect(instances.map(\.key.id) == [F.idA, F.idB, F.idC, "3d4e5f6a-7b8c-4d9e-8f0a-2b3c4d5e6f7a"])
        try #require(instances.count == 4)

        let a = instances[0]
        #expect(a.name == "llm-train")
        #expect(a.labels == ["llm-train"])
        #expect(a.state == .running)
        #expect(a.providerStatus == "status=Running")
        #expect(a.gpuModel == "geforcertx4090-pcie-24gb")
        #expect(a.gpuCount == 2)
        #expect(a.hourlyCostUSD == 0.35)
        #expect(a.createdAt == Date(timeIntervalSince1970: 1_699_777_800))
        #expect(a.ssh == SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "user"))
        #expect(a.zone == "Chubbuck, Idaho, United States")
        #expect(a.managed && !a.gpuReserved)

        let b = instances[1]
        #expect(b.state == .paused)
        #expect(b.gpuReserved, "Stopped keeps the GPU reserved and billed")
        #expect(b.gpuModel == "a100-pcie-80gb")
        #expect(b.gpuCount == 1)
        #expect(b.hourlyCostUSD == 1.2)
        #expect(b.createdAt == nil, "an unparsable timestamp is unknown age")
        #expect(b.ssh == SSHEndpoint(host: "203.0.113.50", port: 22, user: "user"))
        #expect(b.zone == "loc-7")

        let c = instances[2]
        #expect(c.name == F.idC)
        #expect(c.labels.isEmpty)
        #expect(c.state == .paused && !c.gpuReserved)
        #expect(!c.managed)
        #expect(c.hourlyCostUSD == nil)
        #expect(c.sshUnavailableReason == "TensorDock lists no IP address for it")

        let d = instances[3]
        #expect(d.state == .unknown)
        #expect(d.createdAt == Date(timeIntervalSince1970: 1_699_777_800))
    }

    @Test("The simulator's v0 list round-trips through the provider")
    func v0Simulated() async throws {
        let (simulator, transport) = simulated(F.fleet(3))
        let instances = try await provider(transport, settings: Self.v0Settings).listInstances()
        #expect(instances.map(\.name) == ["job-0", "job-1", "job-2"])
        #expect(instances.map(\.ssh?.port) == [20_000, 20_001, 20_002])
        #expect(instances.allSatisfy { $0.createdAt == Date(timeIntervalSince1970: 1_699_740_800) })
        #expect(instances.allSatisfy { $0.gpuModel == "geforcertx4090-pcie-24gb" && $0.gpuCount == 1 })
        #expect(simulator.requests.map(\.line) == ["POST /api/v0/client/list"])
    }

    @Test("An empty v0 account lists nothing, whether virtualmachines is {} or []",
          arguments: [#"{"success":true,"virtualmachines":{}}"#, #"{"success":true,"virtualmachines":[]}"#])
    func v0Empty(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        #expect(try await provider(transport, settings: Self.v0Settings).listInstances().isEmpty)
    }

    @Test(
        "A v0 listing that cannot be trusted is malformed",
        arguments: [
            #"{"success":true}"#, #"{"success":true,"virtualmachines":null}"#,
            #"{"success":true,"virtualmachines":[{"id":"a1"}]}"#, #"{"success":true,"virtualmachines":{"a b":{}}}"#,
            #"{"success":true,"virtualmachines":{"a1":"Running"}}"#, #"{"success":true,"virtualmachines":7}"#,
        ])
    func v0Untrusted(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        await #expect {
            _ = try await provider(transport, settings: Self.v0Settings).listInstances()
        } throws: { error in
            guard case ProviderError.malformed(account: "tensordock", _) = error else { return false }
            return true
        }
    }

    // MARK: - v0 failures on HTTP 200

    enum Call: String, CaseIterable, Sendable {
        case list, pause, delete
    }

    func run(_ call: Call, on tensorDock: TensorDockProvider, id: String = F.idA) async throws {
        switch call {
        case .list: _ = try await tensorDock.listInstances()
        case .pause: try await tensorDock.pause(F.instance(id: id))
        case .delete: try await tensorDock.delete(F.instance(id: id))
        }
    }

    @Test("v0 success false on HTTP 200 is rejected with its error, and nothing changes", arguments: Call.allCases)
    func v0SuccessFalse(call: Call) async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/client/",
            response: TensorDockSimulator.v0Failure("Insufficient balance, please add funds"))
        await #expect(
            throws: ProviderError.rejected(account: "tensordock", detail: "Insufficient balance, please add funds")
        ) {
            try await run(call, on: provider(transport, settings: Self.v0Settings))
        }
        #expect(simulator.vm(id: F.idA)?.status == "Running")
        #expect(simulator.requests.count == 1, "a refusal is not retried")
    }

    @Test("A v0 body that is not JSON is a failure that keeps the text", arguments: Call.allCases)
    func v0NonJSON(call: Call) async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/",
            response: TensorDockSimulator.nonJSON("Server Error: machine already terminated?"))
        let expected = ProviderError.rejected(
            account: "tensordock",
            detail: "the \(call.rawValue == "pause" ? "stop" : call.rawValue) answer is not JSON: "
                + "Server Error: machine already terminated?")
        await #expect(throws: expected) {
            try await run(call, on: provider(transport, settings: Self.v0Settings))
        }
        #expect(simulator.vm(id: F.idA)?.status == "Running")
    }

    @Test("A 2xx v0 action answer without success true is never taken as done")
    func v0MissingSuccess() async throws {
        for body in ["{}", #"{"success":"maybe"}"#, "[]"] {
            let transport = FakeHTTPTransport(handler: { _ in .tensorDockText(200, body) })
            let tensorDock = provider(transport, settings: Self.v0Settings)
            for call in [Call.pause, .delete] {
                await #expect(throws: ProviderError.self) { try await run(call, on: tensorDock) }
            }
        }
    }

    @Test("Wrong v0 credentials answered as success false are unauthorized")
    func v0WrongCredentials() async throws {
        let simulator = TensorDockSimulator(apiKey: F.apiKey, apiToken: "another-token-1234")
        let transport = FakeHTTPTransport(handler: simulator.handle)
        await #expect(
            throws: ProviderError.unauthorized(
                account: "tensordock", detail: "Authorization failed: invalid API key or token")
        ) {
            _ = try await provider(transport, settings: Self.v0Settings).listInstances()
        }
    }

    // MARK: - Status table

    struct StatusRow: Sendable, CustomTestStringConvertible {
        var status: String?
        var state: InstanceState
        var reserved: Bool

        init(_ status: String?, _ state: InstanceState, reserved: Bool = false) {
            self.status = status
            self.state = state
            self.reserved = reserved
        }

        var testDescription: String { "\(status.map { "\"\($0)\"" } ?? "nil") → \(state)\(reserved ? "+reserved" : "")" }
    }

    static let statusTable: [StatusRow] = [
        .init("Running", .running),
        .init("running", .running),
        .init(" RUNNING ", .running),
        .init("StoppedDisassociated", .paused),
        .init("stoppeddisassociated", .paused),
        .init("stopped_disassociated", .paused),
        .init("Stopped-Disassociated", .paused),
        .init("stopped disassociated", .paused),
        .init("Stopped", .paused, reserved: true),
        .init("stopped", .paused, reserved: true),
        .init("STOPPED", .paused, reserved: true),
        .init("starting", .transitional),
        .init("Stopping", .transitional),
        .init("deleting", .transitional),
        .init("creating", .transitional),
        .init("Provisioning", .transitional),
        .init("restarting", .transitional),
        .init("Outbid", .unknown),
        .init("Relocating", .unknown),
        .init("Terminated", .unknown),
        .init("deleted", .unknown),
        .init("error", .unknown),
        .init("hibernating", .unknown),
        .init("", .unknown),
        .init("_-", .unknown),
        .init(nil, .unknown),
    ]

    @Test("TensorDock statuses normalise to one state per row of the table", arguments: statusTable)
    func statusRow(row: StatusRow) {
        #expect(TensorDockStatus.state(row.status) == row.state)
        #expect(TensorDockStatus.reservesGPU(row.status) == row.reserved)
    }

    @Test("Normalisation lower-cases and drops _, - and spaces")
    func normalisation() {
        #expect(TensorDockStatus.normalised("Stopped_Disassociated") == "stoppeddisassociated")
        #expect(TensorDockStatus.normalised(" Stopped - Dis_associated ") == "stoppeddisassociated")
        #expect(TensorDockStatus.normalised("  ") == nil)
        #expect(TensorDockStatus.describe(nil) == "status=null")
        #expect(TensorDockStatus.describe("Outbid") == "status=Outbid")
    }

    // MARK: - ssh endpoint

    struct SSHRow: Sendable, CustomTestStringConvertible {
        var fields: String
        var endpoint: SSHEndpoint?
        var reason: String?
        var testDescription: String { fields }
    }

    static let noForward = "TensorDock lists no port forward to port 22 and no dedicated IP"
    static let noIP = "TensorDock lists no IP address for it"
    static let sshTable: [SSHRow] = [
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"20022":"22"}"#,
              endpoint: SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "ubuntu")),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"20022":22,"20023":"8888"}"#,
              endpoint: SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "ubuntu")),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"30000":"22","20022":" 22 "}"#,
              endpoint: SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "ubuntu")),
        .init(fields: #""ip_address":" 198.51.100.7\n","port_forwards":{"20022":"22"}"#,
              endpoint: SSHEndpoint(host: "198.51.100.7", port: 20_022, user: "ubuntu")),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"22":"20022"}"#,
              endpoint: nil, reason: noForward),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"20022":"8888"},"dedicated_ip_address":"203.0.113.9""#,
              endpoint: SSHEndpoint(host: "203.0.113.9", port: 22, user: "ubuntu")),
        .init(fields: #""dedicated_ip_address":"203.0.113.9""#,
              endpoint: SSHEndpoint(host: "203.0.113.9", port: 22, user: "ubuntu")),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"20022":"8888"}"#, endpoint: nil, reason: noForward),
        .init(fields: #""ip_address":"198.51.100.7""#, endpoint: nil, reason: noForward),
        .init(fields: #""ip_address":"198.51.100.7","port_forwards":{"abc":"22","70000":"22","0":"22"}"#,
              endpoint: nil, reason: noForward),
        .init(fields: #""port_forwards":{"20022":"22"}"#, endpoint: nil, reason: noIP),
        .init(fields: #""ip_address":"","dedicated_ip_address":"  ""#, endpoint: nil, reason: noIP),
        .init(fields: #""ip_address":"-oProxyCommand=touch x","port_forwards":{"20022":"22"}"#,
              endpoint: nil, reason: "the listed IP address is not a usable host name"),
        .init(fields: #""dedicated_ip_address":"203.0.113.9 evil""#,
              endpoint: nil, reason: "the listed dedicated IP is not a usable host name"),
    ]

    @Test("The ssh endpoint comes from the port forward to 22, else the dedicated IP; else a reason", arguments: sshTable)
    func sshEndpoint(row: SSHRow) async throws {
        let body = #"{"success":true,"virtualmachines":{"a1":{"status":"Running",\#(row.fields)}}}"#
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        let settings = F.settings(v2: false, v0: true, sshUser: "ubuntu")
        let instance = try #require(try await provider(transport, settings: settings).listInstances().first)
        #expect(instance.ssh == row.endpoint)
        #expect(instance.sshUnavailableReason == row.reason)
    }

    // MARK: - Creation time

    struct TimeRow: Sendable, CustomTestStringConvertible {
        var json: String
        var expected: Double?
        var testDescription: String { json }
    }

    static let timeTable: [TimeRow] = [
        .init(json: #""2023-11-12 08:30:00""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T08:30:00""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T08:30:00Z""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12t08:30:00z""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T08:30:00.25Z""#, expected: 1_699_777_800.25),
        .init(json: #""2023-11-12 08:30:00.250000""#, expected: 1_699_777_800.25),
        .init(json: #""2023-11-12T09:30:00+01:00""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T03:30:00-0500""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T10:30:00+02""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12 08:30:00 UTC""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12 08:30:00 GMT""#, expected: 1_699_777_800),
        .init(json: #""2023-11-12T08:30""#, expected: 1_699_777_800),
        .init(json: #""Sun, 12 Nov 2023 08:30:00 GMT""#, expected: 1_699_777_800),
        .init(json: #""12 Nov 2023 08:30:00 +0000""#, expected: 1_699_777_800),
        .init(json: #""1699777800""#, expected: 1_699_777_800),
        .init(json: #"" 1699777800.5 ""#, expected: 1_699_777_800.5),
        .init(json: "1699777800", expected: 1_699_777_800),
        .init(json: "1699777800000", expected: 1_699_777_800),
        .init(json: #""2024-02-29 00:00:00""#, expected: 1_709_164_800),
        .init(json: #""garbage""#, expected: nil),
        .init(json: #""""#, expected: nil),
        .init(json: "null", expected: nil),
        .init(json: "true", expected: nil),
        .init(json: #"{"date":"2023-11-12"}"#, expected: nil),
        .init(json: #""2023-11-12""#, expected: nil),
        .init(json: #""12/11/2023 08:30""#, expected: nil),
        .init(json: #""2023-13-01 00:00:00""#, expected: nil),
        .init(json: #""2023-02-29 00:00:00""#, expected: nil),
        .init(json: #""2023-11-12 24:00:00""#, expected: nil),
        .init(json: #""2023-11-12T08:30:00 PST""#, expected: nil),
        .init(json: #""2023-11-12T08:30:00Zjunk""#, expected: nil),
        .init(json: #""1999-01-01T00:00:00Z""#, expected: nil),
        .init(json: #""0""#, expected: nil),
        .init(json: "-1699777800", expected: nil),
        .init(json: #""NaN""#, expected: nil),
        .init(json: "1e300", expected: nil),
    ]

    @Test("timestamp_creation is parsed defensively; anything unparsable is unknown age", arguments: timeTable)
    func creationTime(row: TimeRow) async throws {
        let body = #"{"success":true,"virtualmachines":{"a1":{"status":"Running","timestamp_creation":\#(row.json)}}}"#
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        let instance = try #require(try await provider(transport, settings: Self.v0Settings).listInstances().first)
        #expect(instance.createdAt == row.expected.map { Date(timeIntervalSince1970: $0) })
    }

    // MARK: - GPUs

    @Test(
        "GPU model and count come from either documented shape; several models are joined and summed",
        arguments: [
            (#"{"type":"geforcertx4090-pcie-24gb","amount":2}"#, "geforcertx4090-pcie-24gb", 2, true),
            (#"{"geforcertx4090-pcie-24gb":{"amount":2}}"#, "geforcertx4090-pcie-24gb", 2, true),
            (#"{"a100-pcie-80gb":{"amount":1},"h100-sxm5-80gb":{"amount":"2"}}"#, "a100-pcie-80gb, h100-sxm5-80gb", 3, true),
            (#"{"a100-pcie-80gb":4}"#, "a100-pcie-80gb", 4, true),
            (#"{"a100-pcie-80gb":{"amount":0}}"#, nil, 0, false),
            (#"{"type":"","amount":0}"#, nil, 0, false),
            (#"{}"#, nil, 0, false),
        ] as [(String, String?, Int?, Bool)])
    func gpus(json: String, model: String?, count: Int?, managed: Bool) async throws {
        let body = #"{"success":true,"virtualmachines":{"a1":{"status":"Running","specs":{"gpu":\#(json)}}}}"#
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        let instance = try #require(try await provider(transport, settings: Self.v0Settings).listInstances().first)
        #expect(instance.gpuModel == model)
        #expect(instance.gpuCount == count)
        #expect(instance.managed == managed)
    }

    // MARK: - Pause

    @Test("v0 pause posts stop/single with disassociate_resources=true, credentials only in the body")
    func v0PauseRequest() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        let tensorDock = provider(transport, settings: Self.v0Settings)
        _ = try await tensorDock.listInstances()
        try await tensorDock.pause(F.instance(id: F.idA))

        #expect(simulator.requests.map(\.line) == ["POST /api/v0/client/list", "POST /api/v0/client/stop/single"])
        let stop = simulator.requests[1]
        #expect(stop.query == nil)
        #expect(stop.header("Content-Type") == "application/x-www-form-urlencoded")
        #expect(stop.header("Authorization") == nil)
        #expect(
            TensorDockSimulator.formFields(stop.body) == [
                "api_key": F.apiKey, "api_token": F.apiToken, "server": F.idA, "disassociate_resources": "true",
            ])
        #expect(TensorDockSimulator.formFields(simulator.requests[0].body) == [
            "api_key": F.apiKey, "api_token": F.apiToken,
        ])
        for request in transport.requests {
            #expect(request.url.query == nil)
            for secret in F.secrets { #expect(!request.url.absoluteString.contains(secret)) }
        }
        #expect(simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
        let listed = try #require(try await tensorDock.listInstances().first)
        #expect(listed.state == .paused && !listed.gpuReserved)
    }

    @Test("v0 pause of a Stopped VM (GPU reserved) releases the GPU")
    func v0PauseReserved() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA, status: "Stopped")])
        let tensorDock = provider(transport, settings: Self.v0Settings)
        let listed = try #require(try await tensorDock.listInstances().first)
        #expect(listed.state == .paused && listed.gpuReserved)
        try await tensorDock.pause(listed)
        #expect(simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
    }

    @Test("v0 saying the VM is already stoppeddisassociated is a successful pause")
    func v0PauseAlreadyReleased() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA, status: "StoppedDisassociated")])
        try await provider(transport, settings: Self.v0Settings).pause(F.instance(id: F.idA))
        #expect(simulator.requests.count == 1)
    }

    @Test("v0 refusing to stop a VM in another state is rejected with its message")
    func v0PauseOutbid() async throws {
        let (_, transport) = simulated([SimulatedTensorDockVM(id: F.idA, status: "Outbid")])
        await #expect(
            throws: ProviderError.rejected(
                account: "tensordock", detail: "Machine is outbid, therefore it cannot be stopped")
        ) {
            try await provider(transport, settings: Self.v0Settings).pause(F.instance(id: F.idA))
        }
    }

    @Test("v2 pause posts /api/v2/instances/{id}/stop with the Bearer token and no body")
    func v2PauseRequest() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        try await provider(transport).pause(F.instance(id: F.idA))
        let request = try #require(simulator.requests.last)
        #expect(request.line == "POST /api/v2/instances/\(F.idA)/stop")
        #expect(request.header("Authorization") == "Bearer \(F.bearerToken)")
        #expect(request.body == nil)
        #expect(simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
    }

    @Test("A v2 stop that keeps the GPU lists as paused with the GPU reserved; without v0 keys the release is refused")
    func v2PauseKeepsGPUWithoutV0() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)], v2StopReleasesGPU: false)
        let tensorDock = provider(transport)
        try await tensorDock.pause(F.instance(id: F.idA))
        let listed = try #require(try await tensorDock.listInstances().first)
        #expect(listed.state == .paused && listed.gpuReserved)
        simulator.clearRequests()
        await #expect {
            try await tensorDock.pause(listed)
        } throws: { error in
            guard case ProviderError.rejected(account: "tensordock", let detail) = error else { return false }
            return detail.contains("TENSORDOCK_API_KEY") && detail.contains("nothing was sent")
        }
        #expect(simulator.requests.isEmpty)
        #expect(simulator.vm(id: F.idA)?.status == "Stopped")
    }

    @Test("Under v2 with the v0 pair too, a reserved GPU is released through the v0 stop")
    func v2PauseReservedThroughV0() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA, status: "Stopped")])
        let tensorDock = provider(transport, settings: F.settings(v2: true, v0: true))
        let listed = try #require(try await tensorDock.listInstances().first)
        try await tensorDock.pause(listed)
        #expect(
            simulator.requests.map(\.line) == ["GET /api/v2/instances", "POST /api/v0/client/stop/single"])
        #expect(TensorDockSimulator.formFields(simulator.requests[1].body)["disassociate_resources"] == "true")
        #expect(simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
    }

    @Test("A 2xx v2 stop answer that is not JSON is an error, never a success")
    func v2PauseUnreadable() async throws {
        for body in ["<html>ok</html>", ""] {
            let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
            await #expect(
                throws: ProviderError.malformed(
                    account: "tensordock", detail: "the stop answer is not JSON, so its outcome is unknown")
            ) {
                try await provider(transport).pause(F.instance(id: F.idA))
            }
        }
    }

    @Test("v2 pause of an unknown instance is an HTTP 404 error")
    func v2PauseMissing() async throws {
        let (_, transport) = simulated()
        await #expect(
            throws: ProviderError.http(account: "tensordock", status: 404, detail: "Not Found: Instance not found")
        ) {
            try await provider(transport).pause(F.instance(id: F.idA))
        }
    }

    // MARK: - Delete

    @Test("v2 delete removes the VM; a second delete answers 404, is confirmed by a listing, and succeeds")
    func v2DeleteTwice() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA), SimulatedTensorDockVM(id: F.idB)])
        let tensorDock = provider(transport)
        try await tensorDock.delete(F.instance(id: F.idA))
        #expect(simulator.vms.map(\.id) == [F.idB])
        try await tensorDock.delete(F.instance(id: F.idA))
        #expect(
            simulator.requests.map(\.line) == [
                "DELETE /api/v2/instances/\(F.idA)", "DELETE /api/v2/instances/\(F.idA)", "GET /api/v2/instances",
            ])
    }

    @Test("A v2 delete 404 while the VM is still listed is an error")
    func v2Delete404StillListed() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "DELETE", pathPrefix: "/api/v2/", response: .tensorDockText(404, #"{"error":"Not Found"}"#))
        await #expect {
            try await provider(transport).delete(F.instance(id: F.idA))
        } throws: { error in
            guard case ProviderError.http(account: "tensordock", status: 404, let detail) = error else { return false }
            return detail.contains("still listed")
        }
        #expect(simulator.vm(id: F.idA) != nil)
    }

    @Test("A 404 everywhere (a wrong base URL) never counts as a deletion")
    func v2DeleteWrongBaseURL() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .tensorDockText(404, "<html>Not Found</html>") })
        await #expect(
            throws: ProviderError.http(account: "tensordock", status: 404, detail: "<html>Not Found</html>")
        ) {
            try await provider(transport).delete(F.instance(id: F.idA))
        }
        #expect(transport.requests.count == 2)
    }

    @Test("v0 delete of a VM deleted elsewhere (\"already terminated\") succeeds with one request")
    func v0DeleteAlreadyTerminated() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.remove(id: F.idA)
        try await provider(transport, settings: Self.v0Settings).delete(F.instance(id: F.idA))
        #expect(simulator.requests.map(\.line) == ["POST /api/v0/client/delete/single"])
        #expect(
            TensorDockSimulator.formFields(simulator.requests[0].body) == [
                "api_key": F.apiKey, "api_token": F.apiToken, "server": F.idA,
            ])
    }

    @Test("A JSON \"already terminated\" refusal counts as gone on 2xx and 4xx statuses", arguments: [200, 400, 404])
    func v0AlreadyTerminatedStatuses(status: Int) async throws {
        let body = #"{"success":false,"error":"Machine is already terminated"}"#
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(status, body))])
        try await provider(transport, settings: Self.v0Settings).delete(F.instance(id: F.idA))
        #expect(transport.requests.count == 1)
    }

    @Test("v0 delete removes the VM; another error than already terminated is rejected")
    func v0DeleteThenUnknown() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        let tensorDock = provider(transport, settings: Self.v0Settings)
        try await tensorDock.delete(F.instance(id: F.idA))
        #expect(simulator.vms.isEmpty)
        await #expect(throws: ProviderError.rejected(account: "tensordock", detail: "No such virtual machine")) {
            try await tensorDock.delete(F.instance(id: F.idB))
        }
    }

    // MARK: - Path safety and API choice

    @Test(
        "An id that is not letters, digits and -, or an instance of another provider, is refused before any request",
        arguments: ["", "a/b", "..", "a b", "a?x=1", "a%2F", "a.b", "ünï", "a\nb", String(repeating: "a", count: 65)])
    func pathSafety(id: String) async throws {
        for settings in [F.settings(), Self.v0Settings] {
            let transport = FakeHTTPTransport(responses: [])
            let tensorDock = provider(transport, settings: settings)
            for action in [tensorDock.pause, tensorDock.delete] {
                await #expect {
                    try await action(F.instance(id: id))
                } throws: { error in
                    guard case ProviderError.malformed = error else { return false }
                    return true
                }
            }
            await #expect(throws: ProviderError.self) {
                try await tensorDock.delete(F.instance(id: F.idA, provider: .vast))
            }
            #expect(transport.requests.isEmpty)
        }
    }

    @Test("With a bearer token v2 is used even when the v0 pair is set; with only the pair, v0")
    func apiChoice() async throws {
        let (simulator, transport) = simulated(F.fleet(1))
        let both = provider(transport, settings: F.settings(v2: true, v0: true))
        #expect(both.api == .v2)
        _ = try await both.listInstances()
        let v0 = provider(transport, settings: Self.v0Settings)
        #expect(v0.api == .v0)
        _ = try await v0.listInstances()
        #expect(simulator.requests.map(\.line) == ["GET /api/v2/instances", "POST /api/v0/client/list"])
    }

    @Test("Base URLs with a trailing slash get /api/v2 and /api/v0 appended cleanly")
    func trailingSlash() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .tensorDockText(200, #"{"data":{"instances":[]}}"#) })
        let settings = F.settings(
            v2: true, v0: true, apiURL: URL(string: "https://td.example/")!,
            v0APIURL: URL(string: "https://v0.example//")!)
        _ = try await provider(transport, settings: settings).listInstances()
        #expect(transport.requests.map(\.url.absoluteString) == ["https://td.example/api/v2/instances"])
    }

    // MARK: - Rate limits and retries

    @Test("v2 requests are paced 0.6 s apart through the clock; enough elapsed time means no wait")
    func v2Pacing() async throws {
        let (_, transport) = simulated(F.fleet(1))
        let clock = FakeClock()
        let tensorDock = provider(transport, clock: clock, interval: nil)
        for _ in 0..<3 { _ = try await tensorDock.listInstances() }
        #expect(tensorDockClose(clock.sleeps, [0.6, 0.6]))
        clock.advance(by: 5)
        _ = try await tensorDock.listInstances()
        #expect(clock.sleeps.count == 2)
    }

    @Test("v0 requests are paced 1 s apart, retries included")
    func v0Pacing() async throws {
        let (simulator, transport) = simulated(F.fleet(1))
        let clock = FakeClock()
        let tensorDock = provider(transport, settings: Self.v0Settings, clock: clock, interval: nil)
        _ = try await tensorDock.listInstances()
        _ = try await tensorDock.listInstances()
        #expect(clock.sleeps == [1])
        simulator.enqueueFault(method: "POST", pathPrefix: "/api/v0/", response: .tensorDockText(429, "slow down"))
        _ = try await tensorDock.listInstances()
        // The pace wait (1), the backoff (0.5), then the rest of the pace interval (0.5).
        #expect(clock.sleeps == [1, 1, 0.5, 0.5])
    }

    @Test("Concurrent callers queue up behind each other")
    func concurrentPacing() async throws {
        let (_, transport) = simulated(F.fleet(1))
        let clock = TensorDockFrozenClock()
        let tensorDock = provider(transport, settings: Self.v0Settings, clock: clock, interval: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { _ = try await tensorDock.listInstances() } }
            try await group.waitForAll()
        }
        #expect(clock.sleeps.sorted() == [1, 2])
    }

    @Test("Rate limiting that outlasts the retries is reported as rate-limited")
    func rateLimitedAfterRetries() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .tensorDockText(429, #"{"error":"Too Many Requests"}"#) })
        let clock = FakeClock()
        await #expect(throws: ProviderError.rateLimited(account: "tensordock")) {
            _ = try await provider(transport, clock: clock).listInstances()
        }
        #expect(transport.requests.count == 4)
        #expect(clock.sleeps == [0.5, 1, 2])
    }

    @Test("No answer at all is a transport error naming the host only")
    func transportFailure() async throws {
        let transport = FakeHTTPTransport(
            responses: Array(repeating: .failure(.timedOut(host: "dashboard.tensordock.com")), count: 4))
        let detail = "no answer from dashboard.tensordock.com before the timeout; check the network or the URL"
        await #expect(throws: ProviderError.transport(account: "tensordock", detail: detail)) {
            _ = try await provider(transport).listInstances()
        }
    }

    @Test("A cancelled task gets CancellationError, not a provider error, and sends nothing")
    func cancellation() async throws {
        let (_, transport) = simulated(F.fleet(1))
        let tensorDock = provider(transport, interval: nil)
        await withThrowingTaskGroup(of: Void.self) { group in
            group.cancelAll()
            group.addTask { _ = try await tensorDock.listInstances() }
            await #expect(throws: CancellationError.self) { try await group.next() }
        }
        #expect(transport.requests.isEmpty)
    }

    // MARK: - Secrets

    @Test("No configured secret appears in an error description or a log line, even when the server echoes it")
    func secretsNeverLeak() async throws {
        for settings in [F.settings(), Self.v0Settings, F.settings(v2: true, v0: true)] {
            let secrets = [settings.bearerToken, settings.apiKey, settings.apiToken].compactMap { $0?.value }
            let echo = secrets.joined(separator: " ")
            let echoes: [HTTPResponse] = [
                .tensorDockText(401, #"{"error":"Unauthorized","message":"bad token \#(echo)","status":401}"#),
                .tensorDockText(403, "forbidden for Bearer \(echo)"),
                .tensorDockText(500, "internal error; api_key=\(echo)"),
                .tensorDockText(200, #"{"success":false,"error":"key \#(echo)"}"#),
                .tensorDockText(200, "not json \(echo)"),
                .tensorDockText(400, #"[{"message":"token \#(echo)"}]"#),
                .tensorDockText(404, #"{"error":"gone \#(echo)"}"#),
            ]
            for response in echoes {
                let sink = TensorDockRecordingLogSink()
                let logger = Logger(level: .debug, sink: sink)
                let transport = FakeHTTPTransport(handler: { _ in response })
                let tensorDock = provider(transport, settings: settings, logger: logger)
                var errors: [any Error] = []
                do { _ = try await tensorDock.listInstances() } catch { errors.append(error) }
                do { try await tensorDock.pause(F.instance(id: F.idA)) } catch { errors.append(error) }
                do { try await tensorDock.pause(F.instance(id: F.idA, gpuReserved: true)) } catch { errors.append(error) }
                do { try await tensorDock.delete(F.instance(id: F.idA)) } catch { errors.append(error) }
                #expect(errors.count == 4, "every call fails for \(response.status)")
                for error in errors {
                    for secret in secrets {
                        #expect(!"\(error)".contains(secret))
                        #expect(!String(reflecting: error).contains(secret))
                        #expect(!error.localizedDescription.contains(secret))
                    }
                }
                #expect(!sink.recorded.isEmpty || response.status < 500, "retries are logged")
                for line in sink.recorded {
                    for secret in secrets { #expect(!line.contains(secret)) }
                }
                for request in transport.requests {
                    for secret in secrets { #expect(!request.url.absoluteString.contains(secret)) }
                }
            }
        }
    }
}
