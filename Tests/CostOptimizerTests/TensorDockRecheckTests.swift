import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// TensorDockProvider's single-VM read and its stop and delete under faults (never a blind repeat), through both APIs;
/// in memory (FakeHTTPTransport → TensorDockSimulator) and over loopback HTTP.
@Suite("TensorDock re-read and no blind repeat")
struct TensorDockRecheckTests {
    typealias F = TensorDockFixture

    static let v0Settings = F.settings(v2: false, v0: true)

    func provider(
        _ transport: any HTTPTransport, settings: TensorDockSettings = F.settings(), clock: FakeClock = FakeClock(),
        retry: RetryPolicy = .exact, logger: Logger = .silent
    ) -> TensorDockProvider {
        TensorDockProvider(
            settings: settings, transport: transport, clock: clock, logger: logger, retry: retry, minimumInterval: 0)
    }

    func simulated(
        _ vms: [SimulatedTensorDockVM], attributes: TensorDockSimulator.V2Attributes = .nested,
        v2StopReleasesGPU: Bool = true
    ) -> (TensorDockSimulator, FakeHTTPTransport) {
        let simulator = F.simulator(vms, attributes: attributes, v2StopReleasesGPU: v2StopReleasesGPU)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    // MARK: - instance(_:)

    @Test(
        "v2 instance(_:) reads GET /api/v2/instances/{id} and maps exactly as the listing does",
        arguments: [TensorDockSimulator.V2Attributes.nested, .flat])
    func v2ReadFound(attributes: TensorDockSimulator.V2Attributes) async throws {
        let (simulator, transport) = simulated(
            [
                SimulatedTensorDockVM(id: F.idA, name: "a"),
                SimulatedTensorDockVM(id: F.idB, name: "b keep", gpuCount: 2),
            ], attributes: attributes)
        let tensorDock = provider(transport)
        let listed = try #require(try await tensorDock.listInstances().first { $0.key.id == F.idB })
        simulator.clearRequests()
        #expect(try await tensorDock.instance(F.instance(id: F.idB)) == listed)
        #expect(simulator.requests.map(\.line) == ["GET /api/v2/instances/\(F.idB)"])
    }

    @Test("v2 instance(_:) reads a bare instance object (no data envelope) too")
    func v2ReadBare() async throws {
        let body = #"{"type":"instance","id":"\#(F.idA)","name":"x","status":"StoppedDisassociated","#
            + #""ipAddress":"198.51.100.7","portForwards":[{"internal_port":22,"external_port":20022}]}"#
        let transport = FakeHTTPTransport(responses: [.success(.tensorDockText(200, body))])
        let read = try #require(try await provider(transport).instance(F.instance(id: F.idA)))
        #expect(read.state == .paused && !read.gpuReserved)
        #expect(read.ssh == SSHEndpoint(host: "198.51.100.7", port: 20022, user: "user"))
    }

    @Test("v2 instance(_:) is gone on a 404 that a fresh listing confirms")
    func v2ReadGone() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idB)])
        #expect(try await provider(transport).instance(F.instance(id: F.idA)) == nil)
        #expect(simulator.requests.map(\.line) == ["GET /api/v2/instances/\(F.idA)", "GET /api/v2/instances"])
    }

    @Test("v2 instance(_:): a 404 while the listing still has the VM, or a 404 everywhere, throws")
    func v2Read404NotGone() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "GET", pathPrefix: "/api/v2/instances/\(F.idA)", response: .tensorDockText(404, "Not Found"))
        await #expect {
            _ = try await provider(transport).instance(F.instance(id: F.idA))
        } throws: { error in
            guard case ProviderError.http(_, 404, let detail) = error else { return false }
            return detail.contains("still listed")
        }
        let everywhere = FakeHTTPTransport(handler: { _ in .tensorDockText(404, "<html>Not Found</html>") })
        await #expect(throws: ProviderError.self) {
            _ = try await provider(everywhere).instance(F.instance(id: F.idA))
        }
    }

    @Test(
        "v2 instance(_:): an error, an unreadable answer or one about another VM throws: an error is never gone",
        arguments: [
            (500, "oops"), (401, #"{"error":"Unauthorized"}"#), (429, ""), (200, "<html/>"), (200, "[]"),
            (200, #"{"data":{"type":"instance","attributes":{"status":"running"}}}"#),
            (200, #"{"data":{"type":"instance","id":"\#(F.idB)","attributes":{"status":"running"}}}"#),
            (200, #"{"success":false,"error":"try later"}"#),
        ])
    func v2ReadError(status: Int, body: String) async throws {
        let transport = FakeHTTPTransport(handler: { _ in .tensorDockText(status, body) })
        await #expect(throws: ProviderError.self) {
            _ = try await provider(transport).instance(F.instance(id: F.idA))
        }
    }

    @Test("v0 instance(_:) picks the VM from the listing (v0 has no proven single read); absent is gone")
    func v0Read() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA, status: "Stopped")])
        let tensorDock = provider(transport, settings: Self.v0Settings)
        let listed = try #require(try await tensorDock.listInstances().first)
        let read = try #require(try await tensorDock.instance(F.instance(id: F.idA)))
        #expect(read == listed)
        #expect(read.gpuReserved)
        #expect(try await tensorDock.instance(F.instance(id: F.idB)) == nil)
        #expect(simulator.requests.map(\.line) == Array(repeating: "POST /api/v0/client/list", count: 3))
    }

    @Test("v0 instance(_:): a failed listing throws, never gone")
    func v0ReadError() async throws {
        let (simulator, transport) = simulated([])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/", response: TensorDockSimulator.v0Failure("Internal error"))
        await #expect(throws: ProviderError.rejected(account: "tensordock", detail: "Internal error")) {
            _ = try await provider(transport, settings: Self.v0Settings).instance(F.instance(id: F.idA))
        }
    }

    // MARK: - No blind repeat

    @Test("v2: a delete applied before a 504 is re-read (gone) and never sent twice")
    func v2DeleteAppliedThen504() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "DELETE", pathPrefix: "/api/v2/instances/", response: .gatewayTimeout, afterApplying: true)
        try await provider(transport).delete(F.instance(id: F.idA))
        #expect(simulator.appliedActions == ["v2 delete \(F.idA)"])
        #expect(
            simulator.requests.map(\.line) == [
                "DELETE /api/v2/instances/\(F.idA)", "GET /api/v2/instances/\(F.idA)", "GET /api/v2/instances",
            ])
    }

    @Test("v0: a delete whose connection drops after it was applied is re-read (gone) and never sent twice")
    func v0DeleteAppliedThenTimeout() async throws {
        let simulator = F.simulator([SimulatedTensorDockVM(id: F.idA)])
        let transport = DropAfterHandlingTransport(
            method: "POST", pathPrefix: "/api/v0/client/delete/", handler: simulator.handle)
        try await provider(transport, settings: Self.v0Settings).delete(F.instance(id: F.idA))
        #expect(simulator.appliedActions == ["v0 delete \(F.idA)"])
        #expect(
            simulator.requests.map(\.line) == ["POST /api/v0/client/delete/single", "POST /api/v0/client/list"])
    }

    @Test("v2: a stop applied before a 503 is re-read (paused, GPU released) and never sent twice")
    func v2StopAppliedThen503() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v2/instances/", response: .tensorDockText(503, ""), afterApplying: true)
        try await provider(transport).pause(F.instance(id: F.idA))
        #expect(simulator.appliedActions == ["v2 stop \(F.idA)"])
        #expect(
            simulator.requests.map(\.line) == [
                "POST /api/v2/instances/\(F.idA)/stop", "GET /api/v2/instances/\(F.idA)",
            ])
    }

    @Test("v2: a stop applied before a 504 that left the GPU reserved is an unknown outcome, not sent again")
    func v2StopAppliedGPUKept() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)], v2StopReleasesGPU: false)
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v2/instances/", response: .gatewayTimeout, afterApplying: true)
        await #expect {
            try await provider(transport).pause(F.instance(id: F.idA))
        } throws: { error in
            guard case ProviderError.outcomeUnknown(account: "tensordock", let detail) = error else { return false }
            return detail.contains("a re-read shows the instance paused (status=stopped)")
        }
        #expect(simulator.appliedActions == ["v2 stop \(F.idA)"])
    }

    @Test("v0: a stop answered 500 before it was applied is re-read (unchanged) and sent once more")
    func v0StopNotAppliedResent() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/client/stop/", response: .tensorDockText(500, "Internal error"))
        let clock = FakeClock()
        try await provider(transport, settings: Self.v0Settings, clock: clock).pause(F.instance(id: F.idA))
        #expect(simulator.appliedActions == ["v0 stop \(F.idA)"])
        #expect(
            simulator.requests.map(\.line) == [
                "POST /api/v0/client/stop/single", "POST /api/v0/client/list", "POST /api/v0/client/stop/single",
            ])
        #expect(clock.sleeps == [0.5])
        #expect(simulator.vm(id: F.idA)?.status == "StoppedDisassociated")
    }

    @Test("v2: 429 three times then 200 on stop stops exactly once, after growing waits")
    func v2Stop429ThenOK() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v2/instances/",
            response: .tensorDockText(429, #"{"error":"Too Many Requests"}"#), times: 3)
        let clock = FakeClock()
        try await provider(transport, clock: clock).pause(F.instance(id: F.idA))
        #expect(simulator.appliedActions == ["v2 stop \(F.idA)"])
        #expect(simulator.requests.count == 4)
        #expect(clock.sleeps == [0.5, 1, 2])
    }

    @Test("v2: a delete whose re-read fails is an unknown outcome with one DELETE, the VM untouched")
    func v2DeleteRecheckFails() async throws {
        let (simulator, transport) = simulated([SimulatedTensorDockVM(id: F.idA)])
        simulator.enqueueFault(method: "DELETE", pathPrefix: "/api/v2/", response: .gatewayTimeout)
        simulator.enqueueFault(method: "GET", pathPrefix: "/api/v2/", response: .tensorDockText(500, ""), times: 10)
        await #expect {
            try await provider(transport).delete(F.instance(id: F.idA))
        } throws: { error in
            guard case ProviderError.outcomeUnknown = error else { return false }
            return true
        }
        #expect(simulator.requests.filter { $0.method == "DELETE" }.count == 1)
        #expect(simulator.vm(id: F.idA) != nil)
    }

    // MARK: - Over loopback HTTP

    struct Harness {
        let simulator: TensorDockSimulator
        let server: LoopbackHTTPServer
        let clock = FakeClock()
        let tensorDock: TensorDockProvider

        init(_ vms: [SimulatedTensorDockVM], v2: Bool = true) throws {
            simulator = F.simulator(vms)
            server = try LoopbackHTTPServer.start(handler: simulator.handle)
            tensorDock = TensorDockProvider(
                settings: F.settings(v2: v2, v0: !v2, apiURL: server.baseURL, v0APIURL: server.baseURL),
                transport: URLSessionTransport(), clock: clock, retry: .exact, minimumInterval: 0)
        }
    }

    @Test("Over HTTP (v2): found, gone, and an error that is never gone")
    func loopbackRead() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.tensorDock.listInstances().first)
        #expect(try await h.tensorDock.instance(listed) == listed)
        #expect(try await h.tensorDock.instance(F.instance(id: F.idB)) == nil)
        h.simulator.enqueueFault(method: "GET", pathPrefix: "/api/v2/", response: .tensorDockText(502, ""), times: 4)
        await #expect(throws: ProviderError.http(account: "tensordock", status: 502, detail: "empty body")) {
            _ = try await h.tensorDock.instance(listed)
        }
    }

    @Test("Over HTTP (v0): found through the listing, gone when absent")
    func loopbackReadV0() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)], v2: false)
        defer { h.server.shutdown() }
        #expect(try await h.tensorDock.instance(F.instance(id: F.idA))?.state == .running)
        #expect(try await h.tensorDock.instance(F.instance(id: F.idB)) == nil)
    }

    @Test("Over HTTP (v2): a delete applied then answered 504 is confirmed gone, with no second DELETE")
    func loopbackDeleteApplied() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)])
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "DELETE", pathPrefix: "/api/v2/", response: .gatewayTimeout, afterApplying: true)
        try await h.tensorDock.delete(F.instance(id: F.idA))
        #expect(h.simulator.appliedActions == ["v2 delete \(F.idA)"])
        #expect(h.simulator.requests.filter { $0.method == "DELETE" }.count == 1)
    }

    @Test("Over HTTP (v0): 429 three times then success on stop stops exactly once")
    func loopback429() async throws {
        let h = try Harness([SimulatedTensorDockVM(id: F.idA)], v2: false)
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "POST", pathPrefix: "/api/v0/client/stop/", response: .tensorDockText(429, "slow down"), times: 3)
        try await h.tensorDock.pause(F.instance(id: F.idA))
        #expect(h.simulator.appliedActions == ["v0 stop \(F.idA)"])
        #expect(h.clock.sleeps == [0.5, 1, 2])
    }
}
