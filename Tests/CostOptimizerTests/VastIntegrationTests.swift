import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// VastProvider over real HTTP: URLSessionTransport → LoopbackHTTPServer → VastSimulator. Backoff sleeps go through a
/// FakeClock, so retries are instant.
@Suite("Vast over loopback HTTP")
struct VastIntegrationTests {
    /// A running simulator behind a loopback server, and a provider pointed at it.
    struct Harness {
        let simulator: VastSimulator
        let server: LoopbackHTTPServer
        let clock = FakeClock()
        let vast: VastProvider

        init(
            _ instances: [SimulatedVastInstance] = [], key: String = VastFixture.apiKey, retry: RetryPolicy = .exact,
            pacing: VastPacing = .off
        ) throws {
            simulator = VastSimulator(apiKey: VastFixture.apiKey)
            simulator.add(contentsOf: instances)
            server = try LoopbackHTTPServer.start(handler: simulator.handle)
            vast = VastProvider(
                apiKey: Secret(key), baseURL: server.baseURL, transport: URLSessionTransport(), clock: clock,
                retry: retry, pacing: pacing)
        }
    }

    @Test("60 instances are listed in 3 pages, following next_token exactly")
    func paging() async throws {
        let h = try Harness(VastFixture.fleet(60))
        defer { h.server.shutdown() }
        let instances = try await h.vast.listInstances()
        #expect(instances.map(\.key.id) == (1001...1060).map(String.init))
        #expect(instances.allSatisfy { $0.state == .running && $0.managed })
        // The simulator's tokens are base64 of "after:<last id>", percent-encoded in the query.
        let token = { (id: Int) in
            Data("after:\(id)".utf8).base64EncodedString().addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        }
        #expect(
            h.simulator.requests.map(\.line) == [
                "GET /api/v1/instances/?limit=25",
                "GET /api/v1/instances/?limit=25&after_token=\(token(1025))",
                "GET /api/v1/instances/?limit=25&after_token=\(token(1050))",
            ])
        #expect(h.simulator.requests.allSatisfy { $0.header("Authorization") == "Bearer \(VastFixture.apiKey)" })
    }

    @Test("Pause stops the simulated instance, which then lists as paused")
    func pause() async throws {
        let h = try Harness([SimulatedVastInstance(id: 31337)])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.vast.listInstances().first)
        try await h.vast.pause(listed)
        let after = try #require(h.simulator.instance(id: 31337))
        #expect([after.actualStatus, after.intendedStatus, after.curState] == ["stopped", "stopped", "stopped"])
        #expect(try await h.vast.listInstances().first?.state == .paused)
        #expect(h.simulator.requests.map(\.method) == ["GET", "PUT", "GET"])
        #expect(h.simulator.requests[1].body == Data(#"{"state":"stopped"}"#.utf8))
    }

    @Test("Delete destroys the instance; deleting it again succeeds with one more DELETE")
    func deleteTwice() async throws {
        let h = try Harness([SimulatedVastInstance(id: 77), SimulatedVastInstance(id: 78)])
        defer { h.server.shutdown() }
        let target = VastFixture.instance(id: "77")
        try await h.vast.delete(target)
        #expect(h.simulator.instances.map(\.id) == [78])
        try await h.vast.delete(target)
        #expect(h.simulator.requests.map(\.line) == ["DELETE /api/v0/instances/77/", "DELETE /api/v0/instances/77/"])
    }

    @Test("success false on a 200 is rejected and nothing changes")
    func successFalse() async throws {
        let h = try Harness([SimulatedVastInstance(id: 5)])
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/",
            response: .vastText(200, #"{"success":false,"error":"missing_billing","msg":"Add credit."}"#))
        await #expect(throws: ProviderError.rejected(account: "vast", detail: "missing_billing: Add credit.")) {
            try await h.vast.pause(VastFixture.instance(id: "5"))
        }
        #expect(h.simulator.instance(id: 5)?.actualStatus == "running")
    }

    @Test("A 429 is retried once and the listing then succeeds")
    func rateLimitThenOK() async throws {
        let h = try Harness(VastFixture.fleet(2))
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "GET", pathPrefix: "/api/v1/instances/", response: .vastText(429, "API requests too frequent"))
        #expect(try await h.vast.listInstances().count == 2)
        #expect(h.simulator.requests.map(\.line) == Array(repeating: "GET /api/v1/instances/?limit=25", count: 2))
        #expect(h.clock.sleeps == [0.5])
    }

    @Test("A 500 forever fails with HTTP 500 after exactly maxAttempts requests")
    func serverErrorForever() async throws {
        let h = try Harness(VastFixture.fleet(2))
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "*", pathPrefix: "/", response: .vastText(500, "Internal Server Error"), times: 1_000)
        await #expect(throws: ProviderError.http(account: "vast", status: 500, detail: "Internal Server Error")) {
            _ = try await h.vast.listInstances()
        }
        #expect(h.simulator.requests.count == RetryPolicy().maxAttempts)
        #expect(h.clock.sleeps == [0.5, 1, 2])
    }

    @Test("A wrong key is unauthorized, without retries")
    func wrongKey() async throws {
        let h = try Harness(VastFixture.fleet(1), key: "vk_wrong_key_0000")
        defer { h.server.shutdown() }
        await #expect(
            throws: ProviderError.unauthorized(account: "vast", detail: "HTTP 401: auth_error: Invalid user key")
        ) {
            _ = try await h.vast.listInstances()
        }
        #expect(h.simulator.requests.count == 1)
    }

    @Test("Without v1 the listing falls back to v0 over HTTP too")
    func v0Fallback() async throws {
        let h = try Harness(VastFixture.fleet(30))
        defer { h.server.shutdown() }
        h.simulator.setV1Available(false)
        #expect(try await h.vast.listInstances().count == 30)
        #expect(
            h.simulator.requests.map(\.line) == ["GET /api/v1/instances/?limit=25", "GET /api/v0/instances/?owner=me"])
    }
}
