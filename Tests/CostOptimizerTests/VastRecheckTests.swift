import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// VastProvider's single-instance read, its pause and delete under faults (never a blind repeat), and its pacing;
/// in memory (FakeHTTPTransport → VastSimulator) and over loopback HTTP.
@Suite("Vast re-read, no blind repeat, pacing")
struct VastRecheckTests {
    let base = URL(string: "https://console.vast.ai")!

    func provider(
        _ transport: any HTTPTransport, clock: FakeClock = FakeClock(), retry: RetryPolicy = .exact,
        pacing: VastPacing = .off, logger: Logger = .silent
    ) -> VastProvider {
        VastProvider(
            apiKey: Secret(VastFixture.apiKey), baseURL: base, transport: transport, clock: clock, logger: logger,
            retry: retry, pacing: pacing)
    }

    func simulated(_ instances: [SimulatedVastInstance]) -> (VastSimulator, FakeHTTPTransport) {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        simulator.add(contentsOf: instances)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    /// An instance as listed after a pause: what a delete is sent for.
    static func paused(id: String) -> Instance {
        var instance = VastFixture.instance(id: id)
        instance.state = .paused
        instance.providerStatus = "actual_status=stopped intended_status=stopped cur_state=stopped"
        return instance
    }

    static func stoppedVM(_ id: Int) -> SimulatedVastInstance {
        SimulatedVastInstance(id: id, actualStatus: "stopped", intendedStatus: "stopped", curState: "stopped")
    }

    // MARK: - instance(_:)

    @Test("instance(_:) reads GET /api/v0/instances/{id}/?owner=me and maps exactly as the listing does")
    func readFound() async throws {
        let (simulator, transport) = simulated([
            SimulatedVastInstance(id: 41, label: "a"), SimulatedVastInstance(id: 42, label: "train keep", numGPUs: 2),
        ])
        let vast = provider(transport)
        let listed = try #require(try await vast.listInstances().first { $0.key.id == "42" })
        simulator.clearRequests()
        let read = try await vast.instance(VastFixture.instance(id: "42"))
        #expect(read == listed)
        #expect(simulator.requests.map(\.line) == ["GET /api/v0/instances/42/?owner=me"])
        #expect(simulator.requests[0].header("Authorization") == "Bearer \(VastFixture.apiKey)")
    }

    @Test(
        "instance(_:) is nil only on Vast's word that the instance does not exist",
        arguments: [
            (200, #"{"instances":null}"#), (404, #"{"success":false,"error":"no_such_instance","msg":"gone"}"#),
            (404, #"{"success":false,"error":"not_found"}"#), (200, #"{"success":false,"error":"no_such_instance"}"#),
            (400, #"{"error":"no_such_instance","msg":"Instance 9 not found."}"#),
        ])
    func readGone(status: Int, body: String) async throws {
        let transport = FakeHTTPTransport(responses: [.success(.vastText(status, body))])
        #expect(try await provider(transport).instance(VastFixture.instance(id: "9")) == nil)
        #expect(transport.requests.count == 1)
    }

    @Test("The simulator's unknown id reads as gone")
    func readGoneSimulated() async throws {
        let (_, transport) = simulated([])
        #expect(try await provider(transport).instance(VastFixture.instance(id: "9")) == nil)
    }

    @Test(
        "An error, an unreadable answer or one about another instance throws: an error is never gone",
        arguments: [
            (404, "<html>Not Found</html>"), (500, "Internal Server Error"), (401, #"{"error":"auth_error"}"#),
            (429, "API requests too frequent"), (200, "not json"), (200, "{}"), (200, #"{"instances":{"id":8}}"#),
            (200, #"{"instances":[]}"#), (200, #"{"instances":{"label":"no id"}}"#),
            (200, #"{"success":false,"error":"invalid_args","msg":"bad"}"#), (400, #"{"error":"invalid_args"}"#),
        ])
    func readError(status: Int, body: String) async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(status, body) })
        await #expect(throws: ProviderError.self) {
            _ = try await provider(transport).instance(VastFixture.instance(id: "9"))
        }
    }

    @Test("An array answer is read too, picking the asked id")
    func readArray() async throws {
        let body = #"{"instances":[{"id":8,"actual_status":"running"},{"id":9,"actual_status":"stopped","#
            + #""intended_status":"stopped","cur_state":"stopped"}]}"#
        let transport = FakeHTTPTransport(responses: [.success(.vastText(200, body))])
        let read = try await provider(transport).instance(VastFixture.instance(id: "9"))
        #expect(read?.key.id == "9")
        #expect(read?.state == .paused)
    }

    @Test("A transport failure of the read throws after the retries")
    func readTransport() async throws {
        let transport = FakeHTTPTransport(responses: [])
        await #expect {
            _ = try await provider(transport).instance(VastFixture.instance(id: "9"))
        } throws: { error in
            guard case ProviderError.transport = error else { return false }
            return true
        }
        #expect(transport.requests.count == RetryPolicy().maxAttempts)
    }

    @Test("An id that is not a Vast id is refused before any request")
    func readPathSafety() async throws {
        let transport = FakeHTTPTransport()
        await #expect(throws: ProviderError.self) {
            _ = try await provider(transport).instance(VastFixture.instance(id: "1/../2"))
        }
        #expect(transport.requests.isEmpty)
    }

    // MARK: - No blind repeat

    @Test("A delete the provider applied before answering 504 is re-read (gone) and never sent twice")
    func deleteAppliedThen504() async throws {
        let (simulator, transport) = simulated([Self.stoppedVM(42)])
        simulator.enqueueFault(
            method: "DELETE", pathPrefix: "/api/v0/instances/42/", response: .gatewayTimeout, afterApplying: true)
        try await provider(transport).delete(Self.paused(id: "42"))
        #expect(simulator.appliedActions == ["destroy 42"])
        #expect(
            simulator.requests.map(\.line) == ["DELETE /api/v0/instances/42/", "GET /api/v0/instances/42/?owner=me"])
    }

    @Test("A delete whose connection drops after the provider applied it is re-read (gone) and never sent twice")
    func deleteAppliedThenTimeout() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        simulator.add(Self.stoppedVM(42))
        let transport = DropAfterHandlingTransport(method: "DELETE", pathPrefix: "/api/v0/", handler: simulator.handle)
        let sink = VastRecordingLogSink()
        try await provider(transport, logger: Logger(level: .info, sink: sink)).delete(Self.paused(id: "42"))
        #expect(simulator.appliedActions == ["destroy 42"])
        #expect(simulator.requests.filter { $0.method == "DELETE" }.count == 1)
        #expect(
            sink.recorded.contains(
                "info Provider vast: the destroy of instance 42 got no usable answer (no answer from console.vast.ai "
                    + "before the timeout; check the network or the URL), but a re-read shows it gone; not sent again"))
    }

    @Test("A delete answered 504 before it was applied is re-read (unchanged) and sent once more")
    func deleteNotAppliedResent() async throws {
        let (simulator, transport) = simulated([Self.stoppedVM(42)])
        simulator.enqueueFault(method: "DELETE", pathPrefix: "/api/v0/instances/42/", response: .gatewayTimeout)
        let clock = FakeClock()
        try await provider(transport, clock: clock).delete(Self.paused(id: "42"))
        #expect(simulator.appliedActions == ["destroy 42"])
        #expect(
            simulator.requests.map(\.line) == [
                "DELETE /api/v0/instances/42/", "GET /api/v0/instances/42/?owner=me", "DELETE /api/v0/instances/42/",
            ])
        #expect(clock.sleeps == [0.5])
    }

    @Test("A delete whose re-read fails is an unknown outcome: one DELETE, and no success")
    func deleteRecheckFails() async throws {
        let (simulator, transport) = simulated([Self.stoppedVM(42)])
        simulator.enqueueFault(method: "DELETE", pathPrefix: "/api/v0/", response: .gatewayTimeout)
        simulator.enqueueFault(method: "GET", pathPrefix: "/api/v0/", response: .vastText(500, "oops"), times: 10)
        await #expect {
            try await provider(transport).delete(Self.paused(id: "42"))
        } throws: { error in
            guard case ProviderError.outcomeUnknown(account: "vast", let detail) = error else { return false }
            return detail.hasPrefix("the destroy of instance 42 got no usable answer (HTTP 504) and re-reading")
        }
        #expect(simulator.requests.filter { $0.method == "DELETE" }.count == 1)
        #expect(simulator.instance(id: 42) != nil)
    }

    @Test("A delete whose re-read shows another state (being released) is an unknown outcome, not sent again")
    func deleteRecheckChanged() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        simulator.add(Self.stoppedVM(42))
        let transport = FakeHTTPTransport(handler: { request in
            if request.method == "DELETE" {
                simulator.update(id: 42) { $0.curState = "unloaded" }
                return .gatewayTimeout
            }
            return await simulator.handle(request)
        })
        await #expect {
            try await provider(transport).delete(Self.paused(id: "42"))
        } throws: { error in
            guard case ProviderError.outcomeUnknown(_, let detail) = error else { return false }
            return detail.contains("a re-read shows the instance transitional (actual_status=stopped")
        }
        #expect(transport.requests.filter { $0.method == "DELETE" }.count == 1)
    }

    @Test("A stop the provider applied before answering 502 is re-read (paused) and never sent twice")
    func pauseAppliedThen502() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 7)])
        simulator.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/7/", response: .vastText(502, "Bad Gateway"),
            afterApplying: true)
        try await provider(transport).pause(VastFixture.instance(id: "7"))
        #expect(simulator.appliedActions == ["stop 7"])
        #expect(simulator.requests.map(\.line) == ["PUT /api/v0/instances/7/", "GET /api/v0/instances/7/?owner=me"])
    }

    @Test("429 three times then 200 on stop: the stop happens exactly once, after growing, jittered, bounded waits")
    func pause429ThenOK() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 7)])
        simulator.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/7/", response: .vastText(429, "API requests too frequent"),
            times: 3)
        let clock = FakeClock()
        let jittered = RetryPolicy(jitter: { $0 * 0.8 })
        try await provider(transport, clock: clock, retry: jittered).pause(VastFixture.instance(id: "7"))
        #expect(simulator.appliedActions == ["stop 7"])
        #expect(simulator.requests.map(\.line) == Array(repeating: "PUT /api/v0/instances/7/", count: 4))
        #expect(clock.sleeps == [0.4, 0.8, 1.6])
    }

    @Test("A stop answered 500 forever, the instance unchanged each time, ends in HTTP 500 after the attempts")
    func pause500Forever() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 7)])
        simulator.enqueueFault(method: "PUT", pathPrefix: "/api/v0/", response: .vastText(500, "oops"), times: 100)
        await #expect(throws: ProviderError.http(account: "vast", status: 500, detail: "oops")) {
            try await provider(transport).pause(VastFixture.instance(id: "7"))
        }
        #expect(simulator.requests.filter { $0.method == "PUT" }.count == RetryPolicy().maxAttempts)
        #expect(simulator.requests.filter { $0.method == "GET" }.count == RetryPolicy().maxAttempts)
        #expect(simulator.appliedActions.isEmpty)
    }

    // MARK: - Pacing

    @Test("Requests to one endpoint are paced by its documented interval; other endpoints do not wait")
    func pacingPerEndpoint() async throws {
        let (_, transport) = simulated([
            SimulatedVastInstance(id: 1), SimulatedVastInstance(id: 2), Self.stoppedVM(3), Self.stoppedVM(4),
        ])
        let clock = FakeClock()
        let vast = provider(transport, clock: clock, pacing: .documented)
        _ = try await vast.listInstances()
        _ = try await vast.instance(VastFixture.instance(id: "1"))
        try await vast.pause(VastFixture.instance(id: "1"))
        try await vast.delete(Self.paused(id: "3"))
        #expect(clock.sleeps.isEmpty, "four endpoints, one request each")
        _ = try await vast.listInstances()
        #expect(clock.sleeps == [1], "show-instances: 1 s")
        _ = try await vast.instance(VastFixture.instance(id: "2"))
        try await vast.pause(VastFixture.instance(id: "2"))
        try await vast.delete(Self.paused(id: "4"))
        // The fake time moved 1 s with that wait, so show-instance (2 s) waits 1 more, manage (1 s) nothing, and
        // destroy (3 s) the last 1.
        #expect(clock.sleeps == [1, 1, 1])
    }

    @Test("Back-to-back calls wait the full interval of each endpoint: 1, 2, 1 and 3 s")
    func pacingIntervals() async throws {
        let (_, transport) = simulated([
            SimulatedVastInstance(id: 1), SimulatedVastInstance(id: 2), Self.stoppedVM(3), Self.stoppedVM(4),
        ])
        let clock = TensorDockFrozenClock()
        let vast = VastProvider(
            apiKey: Secret(VastFixture.apiKey), baseURL: base, transport: transport, clock: clock, retry: .exact)
        for _ in 0..<2 { _ = try await vast.listInstances() }
        for id in ["1", "2"] { _ = try await vast.instance(VastFixture.instance(id: id)) }
        for id in ["1", "2"] { try await vast.pause(VastFixture.instance(id: id)) }
        for id in ["3", "4"] { try await vast.delete(Self.paused(id: id)) }
        #expect(clock.sleeps == [1, 2, 1, 3])
    }

    @Test("Retries are paced too: a 429 on the listing waits the backoff, then the rest of the 1 s interval")
    func pacingRetries() async throws {
        let (simulator, transport) = simulated([SimulatedVastInstance(id: 1)])
        simulator.enqueueFault(method: "GET", pathPrefix: "/api/v1/", response: .vastText(429, "too frequent"))
        let clock = FakeClock()
        #expect(try await provider(transport, clock: clock, pacing: .documented).listInstances().count == 1)
        #expect(clock.sleeps == [0.5, 0.5])
    }

    // MARK: - Over loopback HTTP

    struct Harness {
        let simulator: VastSimulator
        let server: LoopbackHTTPServer
        let clock = FakeClock()
        let vast: VastProvider

        init(_ instances: [SimulatedVastInstance]) throws {
            simulator = VastSimulator(apiKey: VastFixture.apiKey)
            simulator.add(contentsOf: instances)
            server = try LoopbackHTTPServer.start(handler: simulator.handle)
            vast = VastProvider(
                apiKey: Secret(VastFixture.apiKey), baseURL: server.baseURL, transport: URLSessionTransport(),
                clock: clock, retry: .exact, pacing: .off)
        }
    }

    @Test("Over HTTP: found, gone, and an error that is never gone")
    func loopbackRead() async throws {
        let h = try Harness([SimulatedVastInstance(id: 5, label: "x")])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.vast.listInstances().first)
        #expect(try await h.vast.instance(listed) == listed)
        #expect(try await h.vast.instance(VastFixture.instance(id: "6")) == nil)
        h.simulator.enqueueFault(method: "GET", pathPrefix: "/api/v0/", response: .vastText(503, ""), times: 4)
        await #expect(throws: ProviderError.http(account: "vast", status: 503, detail: "empty body")) {
            _ = try await h.vast.instance(listed)
        }
    }

    @Test("Over HTTP: a delete applied then answered 504 is confirmed gone, with no second DELETE")
    func loopbackDeleteApplied() async throws {
        let h = try Harness([Self.stoppedVM(42)])
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "DELETE", pathPrefix: "/api/v0/instances/42/", response: .gatewayTimeout, afterApplying: true)
        try await h.vast.delete(Self.paused(id: "42"))
        #expect(h.simulator.appliedActions == ["destroy 42"])
        #expect(
            h.simulator.requests.map(\.line) == ["DELETE /api/v0/instances/42/", "GET /api/v0/instances/42/?owner=me"])
    }

    @Test("Over HTTP: 429 three times then 200 on stop stops once, with growing waits")
    func loopback429() async throws {
        let h = try Harness([SimulatedVastInstance(id: 7)])
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/", response: .vastText(429, "API requests too frequent"), times: 3)
        try await h.vast.pause(VastFixture.instance(id: "7"))
        #expect(h.simulator.appliedActions == ["stop 7"])
        #expect(h.simulator.requests.count == 4)
        #expect(h.clock.sleeps == [0.5, 1, 2])
    }
}
