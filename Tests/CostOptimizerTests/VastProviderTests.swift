import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// VastProvider against an in-memory Vast (FakeHTTPTransport + VastSimulator, or canned JSON).
@Suite("Vast provider")
struct VastProviderTests {
    let base = URL(string: "https://console.vast.ai")!

    func provider(
        _ transport: any HTTPTransport, clock: FakeClock = FakeClock(), logger: Logger = .silent,
        retry: RetryPolicy = .exact, pacing: VastPacing = .off
    ) -> VastProvider {
        VastProvider(
            apiKey: Secret(VastFixture.apiKey), baseURL: base, transport: transport, clock: clock, logger: logger,
            retry: retry, pacing: pacing)
    }

    func simulated(_ instances: [SimulatedVastInstance] = [], v1: Bool = true) -> (VastSimulator, FakeHTTPTransport) {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey, v1Available: v1)
        simulator.add(contentsOf: instances)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    // MARK: - Decoding

    static let mixedPage = """
        {"success":true,"instances_found":4,"total_instances":4,"next_token":null,"instances":[
          {"id":101,"label":"train-a","actual_status":"running","intended_status":"running","cur_state":"running",
           "gpu_name":"RTX 4090","num_gpus":2,"dph_total":0.71,"start_date":1668804745.1223178,
           "ssh_host":" ssh5.vast.ai ","ssh_port":29558,"geolocation":"Sweden, SE",
           "ports":{"22/tcp":[{"HostIp":"0.0.0.0","HostPort":"40022"}]}},
          {"id":"102","label":null,"actual_status":"stopped","intended_status":"stopped","cur_state":"stopped",
           "gpu_name":"A100","num_gpus":"1","dph_total":null,"start_date":null,"ssh_host":null,"ssh_port":null,
           "ports":[22,8080]},
          {"id":103.0,"actual_status":"hibernating","intended_status":"running"},
          {"id":104,"label":"","actual_status":null,"intended_status":null,"cur_state":null,"num_gpus":0,
           "public_ipaddr":"203.0.113.9 \\n","ports":{"22/tcp":[{"HostIp":"0.0.0.0","HostPort":"40022"}]},
           "geolocation":""}
        ]}
        """

    @Test("A page mixing int, string and float ids, null numbers, both ports shapes and missing fields decodes")
    func decodesVariants() async throws {
        let transport = FakeHTTPTransport(responses: [.success(.vastText(200, Self.mixedPage))])
        let instances = try await provider(transport).listInstances()
        try #require(instances.count == 4)

        let a = instances[0]
        #expect(a.key == InstanceKey(provider: .vast, id: "101"))
        #expect(a.name == "train-a")
        #expect(a.labels == ["train-a"])
        #expect(a.zone == "Sweden, SE")
        #expect(a.state == .running)
        #expect(a.providerStatus == "actual_status=running intended_status=running cur_state=running")
        #expect(a.gpuModel == "RTX 4090")
        #expect(a.gpuCount == 2)
        #expect(a.hourlyCostUSD == 0.71)
        #expect(a.createdAt == Date(timeIntervalSince1970: 1668804745.1223178))
        #expect(a.ssh == SSHEndpoint(host: "ssh5.vast.ai", port: 29558, user: "root"))
        #expect(a.managed)

        let b = instances[1]
        #expect(b.key.id == "102")
        #expect(b.name == "102")
        #expect(b.labels.isEmpty)
        #expect(b.state == .paused)
        #expect(b.gpuCount == 1)
        #expect(b.hourlyCostUSD == nil)
        #expect(b.createdAt == nil)
        #expect(b.ssh == nil)
        #expect(b.managed)

        let c = instances[2]
        #expect(c.key.id == "103")
        #expect(c.state == .unknown)
        #expect(c.providerStatus == "actual_status=hibernating intended_status=running cur_state=null")
        #expect(c.gpuModel == nil)
        #expect(c.zone == nil)
        #expect(c.managed, "missing GPU fields do not make a Vast instance unmanaged")

        let d = instances[3]
        #expect(d.name == "104")
        #expect(d.labels.isEmpty)
        #expect(d.zone == nil)
        #expect(d.state == .transitional)
        #expect(d.providerStatus == "actual_status=null intended_status=null cur_state=null")
        #expect(d.ssh == SSHEndpoint(host: "203.0.113.9", port: 40022, user: "root"))
        #expect(!d.managed, "num_gpus 0 and no gpu_name: no GPU to manage")
    }

    @Test(
        "A listing answer that cannot be trusted is malformed, never an empty account",
        arguments: [
            "not json", "{}", #"{"instances":null}"#, #"{"instances":{"id":1}}"#, #"{"instances":[{"label":"no id"}]}"#,
            #"{"instances":[{"id":"12a"}]}"#, #"{"instances":[{"id":1.5}]}"#, #"{"instances":[null]}"#,
        ])
    func untrustedListing(body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.vastText(200, body))])
        await #expect {
            _ = try await provider(transport).listInstances()
        } throws: { error in
            guard case ProviderError.malformed(account: "vast", _) = error else { return false }
            return true
        }
    }

    @Test("A 200 listing that says success false is rejected")
    func listingSuccessFalse() async throws {
        let body = #"{"success":false,"error":"invalid_request","msg":"bad filter"}"#
        let transport = FakeHTTPTransport(responses: [.success(.vastText(200, body))])
        await #expect(throws: ProviderError.rejected(account: "vast", detail: "invalid_request: bad filter")) {
            _ = try await provider(transport).listInstances()
        }
    }

    @Test("An empty account lists no instances")
    func emptyAccount() async throws {
        let (_, transport) = simulated()
        #expect(try await provider(transport).listInstances().isEmpty)
    }

    // MARK: - Status table

    struct StatusRow: Sendable, CustomTestStringConvertible {
        var actual: String?
        var intended: String?
        var cur: String?
        var expected: InstanceState

        init(_ actual: String?, _ intended: String?, _ cur: String?, _ expected: InstanceState) {
            self.actual = actual
            self.intended = intended
            self.cur = cur
            self.expected = expected
        }

        var testDescription: String {
            "\(VastStatus.describe(actualStatus: actual, intendedStatus: intended, curState: cur)) → \(expected)"
        }
    }

    static let statusTable: [StatusRow] = [
        // running: only a running container the user wants running on a running contract
        .init("running", "running", "running", .running),
        .init("running", nil, nil, .running),
        .init(" RUNNING ", "Running", "running", .running),
        // a running container with another intent or contract is on its way somewhere
        .init("running", "stopped", "running", .transitional),
        .init("running", "stopped", "stopped", .transitional),
        .init("running", "frozen", "running", .transitional),
        .init("running", "running", "stopped", .transitional),
        // paused: stopped intent and a stopped container or contract
        .init("stopped", "stopped", "stopped", .paused),
        .init("stopped", "stopped", nil, .paused),
        .init("exited", "stopped", "stopped", .paused),
        .init(nil, "stopped", "stopped", .paused),
        // not quite stopped yet, or a start under way
        .init("stopped", "stopped", "running", .transitional),
        .init("exited", "stopped", nil, .transitional),
        .init("stopped", "running", "stopped", .transitional),
        .init("stopped", "running", "running", .transitional),
        .init("stopped", nil, "stopped", .transitional),
        .init("stopped", "frozen", "running", .transitional),
        // loading, provisioning and friends
        .init(nil, nil, nil, .transitional),
        .init("", "", "", .transitional),
        .init(nil, "running", "running", .transitional),
        .init("loading", "running", "running", .transitional),
        .init("created", "running", "running", .transitional),
        .init("rebooting", "running", "running", .transitional),
        .init("restarting", "running", "running", .transitional),
        .init("scheduling", "running", "stopped", .transitional),
        .init("loading", "stopped", "stopped", .transitional),
        // frozen bills the GPU but cannot be sampled
        .init("frozen", "frozen", "running", .transitional),
        .init("frozen", "running", "running", .transitional),
        // broken: will never reach the intended running state
        .init("exited", "running", "running", .broken),
        .init("unknown", "running", "running", .broken),
        .init("offline", "running", "running", .broken),
        .init("offline", "frozen", "running", .broken),
        .init("exited", nil, "running", .transitional),
        // a stopped instance on a host that does not report: wait
        .init("offline", "stopped", "stopped", .transitional),
        .init("unknown", "stopped", "stopped", .transitional),
        // the contract is being released
        .init("running", "running", "unloaded", .transitional),
        .init("stopped", "stopped", "unloaded", .transitional),
        // anything unrecognised, in any field
        .init("hibernating", "running", "running", .unknown),
        .init("running", "paused", "running", .unknown),
        .init("running", "running", "zombie", .unknown),
        .init("stopped", "stopped", "archived", .unknown),
    ]

    @Test("Vast status fields map to one state per row of the table", arguments: statusTable)
    func statusRow(row: StatusRow) {
        let state = VastStatus.state(actualStatus: row.actual, intendedStatus: row.intended, curState: row.cur)
        #expect(state == row.expected)
    }

    @Test("The provider status string shows every field, null for a missing one")
    func providerStatusString() {
        #expect(
            VastStatus.describe(actualStatus: "loading", intendedStatus: nil, curState: "running")
                == "actual_status=loading intended_status=null cur_state=running")
    }

    // MARK: - Requests

    @Test("Every request carries the Bearer key and Accept header, and no URL holds api_key or the key")
    func bearerOnly() async throws {
        let (simulator, transport) = simulated(VastFixture.fleet(30))
        let vast = provider(transport)
        let listed = try await vast.listInstances()
        try await vast.pause(listed[0])
        try await vast.delete(listed[1])

        let requests = transport.requests
        #expect(requests.count == 4)
        for request in requests {
            #expect(request.headers["Authorization"] == "Bearer \(VastFixture.apiKey)")
            #expect(request.headers["Accept"] == "application/json")
            #expect(!request.url.absoluteString.contains("api_key"))
            #expect(!request.url.absoluteString.contains(VastFixture.apiKey))
        }
        #expect(simulator.requests.map(\.line).allSatisfy { !$0.contains("api_key") })
    }

    @Test("Pause sends PUT /api/v0/instances/{id}/ with state stopped, and the instance stops")
    func pauseRequest() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 4242)])
        try await provider(transport).pause(VastFixture.instance(id: "4242"))

        let request = try #require(simulator.requests.last)
        #expect(request.line == "PUT /api/v0/instances/4242/")
        #expect(request.header("Content-Type") == "application/json")
        let body = try JSONSerialization.jsonObject(with: try #require(request.body)) as? [String: String]
        #expect(body == ["state": "stopped"])
        let after = try #require(simulator.instance(id: 4242))
        let state = VastStatus.state(
            actualStatus: after.actualStatus, intendedStatus: after.intendedStatus, curState: after.curState)
        #expect(state == .paused)
    }

    @Test("A 200 with success false on pause is rejected with Vast's error and message")
    func pauseSuccessFalse() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 7)])
        simulator.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/7/",
            response: .vastText(200, #"{"success":false,"error":"missing_billing","msg":"Add credit first."}"#))
        await #expect(throws: ProviderError.rejected(account: "vast", detail: "missing_billing: Add credit first.")) {
            try await provider(transport).pause(VastFixture.instance(id: "7"))
        }
        #expect(simulator.instance(id: 7)?.actualStatus == "running")
    }

    @Test("A 2xx pause answer that is not JSON is an error, never a success")
    func pauseUnreadable() async throws {
        let transport = FakeHTTPTransport(responses: [.success(.vastText(200, "<html>ok</html>"))])
        await #expect {
            try await provider(transport).pause(VastFixture.instance(id: "7"))
        } throws: { error in
            guard case ProviderError.malformed = error else { return false }
            return true
        }
    }

    @Test("Pause of an unknown instance is an HTTP 404 error")
    func pauseMissing() async throws {
        let (_, transport) = simulated()
        await #expect(
            throws: ProviderError.http(account: "vast", status: 404, detail: "no_such_instance: Instance 9 not found.")
        ) {
            try await provider(transport).pause(VastFixture.instance(id: "9"))
        }
    }

    @Test("Deleting an instance that is already gone succeeds with one DELETE")
    func deleteMissing() async throws {
        let (simulator, transport) = simulated()
        try await provider(transport).delete(VastFixture.instance(id: "555"))
        #expect(simulator.requests.map(\.line) == ["DELETE /api/v0/instances/555/"])
    }

    @Test("A 200 delete answer with error no_such_instance or not_found counts as already gone",
          arguments: ["no_such_instance", "not_found"])
    func deleteGoneCodes(code: String) async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(200, #"{"success":false,"error":"\#(code)","msg":"gone"}"#))
        ])
        try await provider(transport).delete(VastFixture.instance(id: "555"))
        #expect(transport.requests.count == 1)
    }

    @Test("A bare 404 on delete is confirmed by looking the instance up before it counts as gone")
    func deleteBare404Confirmed() async throws {
        let (simulator, transport) = simulated()
        simulator.enqueueFault(method: "DELETE", pathPrefix: "/api/v0/", response: .vastText(404, "Not Found"))
        try await provider(transport).delete(VastFixture.instance(id: "555"))
        #expect(
            simulator.requests.map(\.line) == [
                "DELETE /api/v0/instances/555/", "GET /api/v0/instances/555/?owner=me",
            ])
    }

    @Test("A bare 404 on delete while the instance is still listed is an error")
    func deleteBare404StillThere() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 555)])
        simulator.enqueueFault(method: "DELETE", pathPrefix: "/api/v0/", response: .vastText(404, "Not Found"))
        await #expect {
            try await provider(transport).delete(VastFixture.instance(id: "555"))
        } throws: { error in
            guard case ProviderError.http(account: "vast", status: 404, _) = error else { return false }
            return true
        }
        #expect(simulator.instance(id: 555) != nil)
    }

    @Test("A 404 everywhere (a wrong base URL) never counts as a deletion")
    func deleteWrongBaseURL() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(404, "<html>Not Found</html>") })
        await #expect {
            try await provider(transport).delete(VastFixture.instance(id: "555"))
        } throws: { error in
            guard case ProviderError.http(account: "vast", status: 404, _) = error else { return false }
            return true
        }
    }

    @Test("A 200 delete with success false and another error is rejected")
    func deleteRejected() async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(200, #"{"success":false,"error":"invalid_args","msg":"nope"}"#))
        ])
        await #expect(throws: ProviderError.rejected(account: "vast", detail: "invalid_args: nope")) {
            try await provider(transport).delete(VastFixture.instance(id: "555"))
        }
    }

    @Test(
        "An id that is not all digits, or an instance of another provider, is refused before any request",
        arguments: ["", "12/../34", "12?x=1", "abc", "-5", "1 2", "123456789012345678901"])
    func pathSafety(id: String) async throws {
        let transport = FakeHTTPTransport(responses: [])
        let vast = provider(transport)
        for action in [vast.pause, vast.delete] {
            await #expect {
                try await action(VastFixture.instance(id: id))
            } throws: { error in
                guard case ProviderError.malformed = error else { return false }
                return true
            }
        }
        await #expect(throws: ProviderError.self) {
            try await vast.delete(VastFixture.instance(id: "123", provider: .gcp))
        }
        #expect(transport.requests.isEmpty)
    }

    // MARK: - Listing mechanics

    @Test("Where v1 answers 404 the listing falls back to v0 owner=me")
    func v0Fallback() async throws {
        let (simulator, transport) = simulated(VastFixture.fleet(3), v1: false)
        let instances = try await provider(transport).listInstances()
        #expect(instances.map(\.key.id) == ["1001", "1002", "1003"])
        #expect(
            simulator.requests.map(\.line) == [
                "GET /api/v1/instances/?limit=25", "GET /api/v0/instances/?owner=me",
            ])
    }

    @Test("A server that repeats a page token fails the listing instead of looping")
    func repeatedToken() async throws {
        let page = #"{"success":true,"next_token":"same","instances":[{"id":1}]}"#
        let transport = FakeHTTPTransport(handler: { _ in .vastText(200, page) })
        let expected = ProviderError.malformed(
            account: "vast", detail: "the API repeated a page token; the listing was abandoned")
        await #expect(throws: expected) {
            _ = try await provider(transport).listInstances()
        }
        #expect(transport.requests.count == 2)
    }

    @Test("A server that never stops paging fails the listing after the page limit")
    func endlessPaging() async throws {
        // Each answer's token is the request's token plus one character: always new, never ending.
        let transport = FakeHTTPTransport(handler: { request in
            let after = RecordedRequest(request).queryItems["after_token"] ?? "t"
            return .vastText(200, #"{"success":true,"next_token":"\#(after)x","instances":[]}"#)
        })
        await #expect {
            _ = try await provider(transport).listInstances()
        } throws: { error in
            guard case ProviderError.malformed = error else { return false }
            return true
        }
        #expect(transport.requests.count == VastProvider.maxPages)
    }

    @Test("Page tokens are percent-encoded in after_token")
    func tokenEncoding() async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(200, #"{"success":true,"next_token":"a+b/c=&d","instances":[{"id":1}]}"#)),
            .success(.vastText(200, #"{"success":true,"next_token":"","instances":[{"id":2}]}"#)),
        ])
        let instances = try await provider(transport).listInstances()
        #expect(instances.map(\.key.id) == ["1", "2"])
        #expect(
            transport.requests.map(\.url.absoluteString) == [
                "https://console.vast.ai/api/v1/instances/?limit=25",
                "https://console.vast.ai/api/v1/instances/?limit=25&after_token=a%2Bb%2Fc%3D%26d",
            ])
    }

    @Test("A failing second page fails the whole listing: no partial list")
    func noPartialListing() async throws {
        let (simulator, transport) = simulated(VastFixture.fleet(30))
        simulator.enqueueFault(method: "GET", pathPrefix: "/api/v1/", response: .vastText(200, Self.firstPageOnly))
        simulator.enqueueFault(
            method: "GET", pathPrefix: "/api/v1/",
            response: .vastText(400, #"{"error":"invalid_token","msg":"expired"}"#))
        await #expect(throws: ProviderError.http(account: "vast", status: 400, detail: "invalid_token: expired")) {
            _ = try await provider(transport).listInstances()
        }
    }

    static let firstPageOnly = #"{"success":true,"next_token":"tok","instances":[{"id":1},{"id":2}]}"#

    @Test("Rate limiting that outlasts the retries is reported as rate-limited")
    func rateLimitedAfterRetries() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(429, "API requests too frequent") })
        let clock = FakeClock()
        await #expect(throws: ProviderError.rateLimited(account: "vast")) {
            _ = try await provider(transport, clock: clock).listInstances()
        }
        #expect(transport.requests.count == 4)
        #expect(clock.sleeps == [0.5, 1, 2])
    }

    @Test("No answer at all is a transport error naming the host only")
    func transportFailure() async throws {
        let transport = FakeHTTPTransport(responses: Array(
            repeating: .failure(.timedOut(host: "console.vast.ai")), count: 4))
        let detail = "no answer from console.vast.ai before the timeout; check the network or the URL"
        await #expect(throws: ProviderError.transport(account: "vast", detail: detail)) {
            _ = try await provider(transport).listInstances()
        }
    }

    // MARK: - Secrets

    @Test("The API key appears in no error description and no log line, even when the server echoes it")
    func keyNeverLeaks() async throws {
        let key = VastFixture.apiKey
        let echoes: [HTTPResponse] = [
            .vastText(401, #"{"success":false,"error":"auth_error","msg":"Invalid user key \#(key)"}"#),
            .vastText(403, "forbidden for Bearer \(key)"),
            .vastText(500, "internal error; Authorization: Bearer \(key)"),
            .vastText(200, #"{"success":false,"error":"bad","msg":"key \#(key)"}"#),
            .vastText(200, "not json \(key)"),
            .vastText(400, #"{"error":"invalid_request","msg":"api_key=\#(key)"}"#),
        ]
        for response in echoes {
            let sink = VastRecordingLogSink()
            let logger = Logger(level: .debug, sink: sink)
            let transport = FakeHTTPTransport(handler: { _ in response })
            let vast = provider(transport, logger: logger)
            var errors: [any Error] = []
            do { _ = try await vast.listInstances() } catch { errors.append(error) }
            do { try await vast.pause(VastFixture.instance(id: "1")) } catch { errors.append(error) }
            do { try await vast.delete(VastFixture.instance(id: "1")) } catch { errors.append(error) }
            #expect(errors.count == 3, "every call fails for \(response.status)")
            for error in errors {
                #expect(!"\(error)".contains(key))
                #expect(!String(reflecting: error).contains(key))
                #expect(!error.localizedDescription.contains(key))
            }
            #expect(!sink.recorded.isEmpty || response.status < 500)
            for line in sink.recorded {
                #expect(!line.contains(key))
            }
        }
    }
}
