import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// TensorDockProvider over real HTTP: URLSessionTransport → LoopbackHTTPServer → TensorDockSimulator. Pacing and
/// backoff sleeps go through a FakeClock, so they are instant and counted.
@Suite("TensorDock over loopback HTTP")
struct TensorDockIntegrationTests {
    typealias F = TensorDockFixture

    /// A running simulator behind a loopback server, and a provider pointed at it for both APIs.
    struct Harness {
        let simulator: TensorDockSimulator
        let server: LoopbackHTTPServer
        let clock = FakeClock()
        let tensorDock: TensorDockProvider

        /// - Parameters:
        ///   - v2: true for the bearer-token API, false for the v0 key pair.
        ///   - interval: the pacing interval; nil for the documented ones, 0 for none.
        init(
            _ vms: [SimulatedTensorDockVM] = [], v2: Bool = true, interval: Double? = 0,
            envelope: TensorDockSimulator.V2Envelope = .dataInstances,
            attributes: TensorDockSimulator.V2Attributes = .nested, settings: TensorDockSettings? = nil
        ) throws {
            simulator = F.simulator(vms, envelope: envelope, attributes: attributes)
            server = try LoopbackHTTPServer.start(handler: simulator.handle)
            let settings =
                settings ?? F.settings(v2: v2, v0: !v2, apiURL: server.baseURL, v0APIURL: server.baseURL)
            tensorDock = TensorDockProvider(
                settings: settings, transport: URLSessionTransport(), clock: clock, retry: .exact,
                minimumInterval: interval)
        }
    }

    @Test("v2 lists every VM over HTTP, in the attributes envelope with flat instances")
    func v2List() async throws {
        let h = try Harness(F.fleet(5), envelope: .dataAttributesInstances, attributes: .flat)
        defer { h.server.shutdown() }
        let instances = try await h.tensorDock.listInstances()
        #expect(instances.map(\.name) == ["job-0", "job-1", "job-2", "job-3", "job-4"])
        #expect(instances.allSatisfy { $0.state == .running && $0.managed && $0.ssh?.host == "198.51.100.7" })
        #expect(h.simulator.requests.map(\.line) == ["GET /api/v2/instances"])
        #expect(h.simulator.requests[0].header("Authorization") == "Bearer \(F.bearerToken)")
    }

    @Test("v2 pause stops the VM, which then lists as paused with its GPU released")
    func v2Pause() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.tensorDock.listInstances().first)
        try await h.tensorDock.pause(listed)
        #expect(h.simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
        let after = try #require(try await h.tensorDock.listInstances().first)
        #expect(after.state == .paused && !after.gpuReserved)
        #expect(
            h.simulator.requests.map(\.line) == [
                "GET /api/v2/instances", "POST /api/v2/instances/\(F.idA)/stop", "GET /api/v2/instances",
            ])
    }

    @Test("v2 delete removes the VM; deleting it again is confirmed gone by a listing")
    func v2DeleteTwice() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA), SimulatedTensorDockVM(id: F.idB)])
        defer { h.server.shutdown() }
        try await h.tensorDock.delete(F.instance(id: F.idA))
        #expect(h.simulator.vms.map(\.id) == [F.idB])
        try await h.tensorDock.delete(F.instance(id: F.idA))
        #expect(
            h.simulator.requests.map(\.line) == [
                "DELETE /api/v2/instances/\(F.idA)", "DELETE /api/v2/instances/\(F.idA)", "GET /api/v2/instances",
            ])
    }

    @Test("v0 lists, pauses with disassociate_resources=true and deletes over HTTP, paced 1 s apart")
    func v0ListPauseDelete() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA), SimulatedTensorDockVM(id: F.idB)], v2: false,
                            interval: nil)
        defer { h.server.shutdown() }
        let instances = try await h.tensorDock.listInstances()
        #expect(instances.map(\.key.id) == [F.idA, F.idB])
        #expect(instances[0].createdAt == Date(timeIntervalSince1970: 1_699_740_800))
        try await h.tensorDock.pause(instances[0])
        #expect(h.simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
        try await h.tensorDock.delete(instances[1])
        try await h.tensorDock.delete(instances[1])
        #expect(h.simulator.vms.map(\.id) == [F.idA])
        #expect(
            h.simulator.requests.map(\.line) == [
                "POST /api/v0/client/list", "POST /api/v0/client/stop/single", "POST /api/v0/client/delete/single",
                "POST /api/v0/client/delete/single",
            ])
        for request in h.simulator.requests {
            #expect(request.query == nil)
            #expect(request.header("Authorization") == nil)
            let form = TensorDockSimulator.formFields(request.body)
            #expect(form["api_key"] == F.apiKey && form["api_token"] == F.apiToken)
        }
        #expect(TensorDockSimulator.formFields(h.simulator.requests[1].body)["disassociate_resources"] == "true")
        #expect(h.clock.sleeps == [1, 1, 1])
    }

    @Test("A v0 success false on HTTP 200 is rejected over HTTP and nothing changes")
    func v0SuccessFalse() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)], v2: false)
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/client/stop/",
            response: TensorDockSimulator.v0Failure("Insufficient balance"))
        await #expect(throws: ProviderError.rejected(account: "tensordock", detail: "Insufficient balance")) {
            try await h.tensorDock.pause(F.instance(id: F.idA))
        }
        #expect(h.simulator.vm(id: F.idA)?.status == "Running")
    }

    @Test("A v2 429 is retried once and the listing then succeeds")
    func v2RateLimitThenOK() async throws {
        let h = try Harness(F.fleet(2))
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "GET", pathPrefix: "/api/v2/instances",
            response: .tensorDockText(429, #"{"error":"Too Many Requests","status":429}"#))
        #expect(try await h.tensorDock.listInstances().count == 2)
        #expect(h.simulator.requests.map(\.line) == ["GET /api/v2/instances", "GET /api/v2/instances"])
        #expect(h.clock.sleeps == [0.5])
    }

    @Test("A v0 429 is retried after the backoff and the rest of the pacing interval")
    func v0RateLimitThenOK() async throws {
        let h = try Harness(F.fleet(2), v2: false, interval: nil)
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/", response: .tensorDockText(429, "Too Many Requests"))
        #expect(try await h.tensorDock.listInstances().count == 2)
        #expect(h.simulator.requests.count == 2)
        #expect(h.clock.sleeps == [0.5, 0.5])
    }

    @Test("A v2 500 forever fails with HTTP 500 after exactly maxAttempts requests")
    func v2ServerErrorForever() async throws {
        let h = try Harness(F.fleet(2))
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "*", pathPrefix: "/", response: .tensorDockText(500, "Internal Server Error"), times: 1_000)
        await #expect(
            throws: ProviderError.http(account: "tensordock", status: 500, detail: "Internal Server Error")
        ) {
            _ = try await h.tensorDock.listInstances()
        }
        #expect(h.simulator.requests.count == RetryPolicy().maxAttempts)
        #expect(h.clock.sleeps == [0.5, 1, 2])
    }

    @Test("A v0 delete answering 500 whose re-read fails too is an unknown outcome: one delete, paced, never success")
    func v0ServerErrorForever() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)], v2: false, interval: nil)
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/",
            response: .tensorDockText(500, #"{"success":false,"error":"Internal error"}"#), times: 1_000)
        await #expect {
            try await h.tensorDock.delete(F.instance(id: F.idA))
        } throws: { error in
            guard case ProviderError.outcomeUnknown(account: "tensordock", let detail) = error else { return false }
            return detail.contains("HTTP 500") && detail.contains("re-reading the instance failed")
        }
        let lines = h.simulator.requests.map(\.line)
        #expect(lines.filter { $0 == "POST /api/v0/client/delete/single" }.count == 1, "the delete is never repeated")
        #expect(lines.filter { $0 == "POST /api/v0/client/list" }.count == RetryPolicy().maxAttempts)
        // The re-read waits 1 s for the pacing, then backs off 0.5 (plus 0.5 to reach the 1 s pace), 1 and 2.
        #expect(h.clock.sleeps == [1, 0.5, 0.5, 1, 2])
        #expect(h.simulator.vm(id: F.idA) != nil)
    }

    @Test("A wrong bearer token is unauthorized, without retries")
    func wrongBearer() async throws {
        let h0 = try Harness(F.fleet(1))
        defer { h0.server.shutdown() }
        let settings = TensorDockSettings(bearerToken: Secret("tdv2_wrong_token_0000"), apiURL: h0.server.baseURL)
        let tensorDock = TensorDockProvider(settings: settings, transport: URLSessionTransport(), clock: FakeClock())
        await #expect(
            throws: ProviderError.unauthorized(
                account: "tensordock", detail: "HTTP 401: Unauthorized: Invalid or missing bearer token")
        ) {
            _ = try await tensorDock.listInstances()
        }
        #expect(h0.simulator.requests.count == 1)
    }

    @Test("A wrong v0 key pair is unauthorized, without retries")
    func wrongV0Pair() async throws {
        let h0 = try Harness(F.fleet(1), v2: false)
        defer { h0.server.shutdown() }
        let settings = TensorDockSettings(
            apiKey: Secret(F.apiKey), apiToken: Secret("tdtok_wrong_0000"), v0APIURL: h0.server.baseURL)
        let tensorDock = TensorDockProvider(settings: settings, transport: URLSessionTransport(), clock: FakeClock())
        await #expect(
            throws: ProviderError.unauthorized(
                account: "tensordock", detail: "Authorization failed: invalid API key or token")
        ) {
            _ = try await tensorDock.listInstances()
        }
        #expect(h0.simulator.requests.count == 1)
    }
}
