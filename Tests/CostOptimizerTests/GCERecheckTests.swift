import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// GCEProvider's single-instance read, and its stop and delete after the provider applied them but the answer was
/// lost (the same `requestId` makes the retry the same call); in memory and over loopback HTTP.
@Suite("GCE re-read and requestId reuse")
struct GCERecheckTests {
    static let base = "/compute/v1/projects/\(GCEFixture.project)"

    func provider(_ transport: any HTTPTransport, clock: FakeClock = FakeClock()) -> GCEProvider {
        GCEProvider(
            project: GCEFixture.project, settings: GCEFixture.settings(),
            tokens: StaticTokenSource(Secret(GCEFixture.token)), transport: transport, clock: clock, retry: .exact)
    }

    func simulated(_ instances: [SimulatedGCEInstance]) -> (GCESimulator, FakeHTTPTransport) {
        let simulator = GCESimulator(acceptedTokens: [GCEFixture.token])
        simulator.add(contentsOf: instances)
        return (simulator, FakeHTTPTransport(handler: simulator.handle))
    }

    // MARK: - instance(_:)

    @Test("instance(_:) reads GET .../zones/{zone}/instances/{name} and maps exactly as the listing does")
    func readFound() async throws {
        let (simulator, transport) = simulated([
            SimulatedGCEInstance(id: "1001", name: "gpu-1", labels: ["team": "ml"], tags: ["keep"]),
            SimulatedGCEInstance(id: "1002", name: "gpu-2", zone: "europe-west4-a", status: "TERMINATED"),
        ])
        let gce = provider(transport)
        let listed = try await gce.listInstances()
        simulator.clearRequests()
        for instance in listed {
            #expect(try await gce.instance(instance) == instance)
        }
        #expect(
            Set(simulator.requests.map(\.line)) == [
                "GET \(Self.base)/zones/us-central1-a/instances/gpu-1",
                "GET \(Self.base)/zones/europe-west4-a/instances/gpu-2",
            ])
        #expect(simulator.requests.count == 2)
    }

    @Test("instance(_:) is nil on Google's 404 not-found envelope")
    func readGone() async throws {
        let (_, transport) = simulated([])
        #expect(try await provider(transport).instance(GCEFixture.instance()) == nil)
    }

    @Test("instance(_:) is nil when the name now belongs to another instance (a new id): the one asked about is gone")
    func readNameReused() async throws {
        let (_, transport) = simulated([SimulatedGCEInstance(id: "2002", name: "gpu-1")])
        #expect(try await provider(transport).instance(GCEFixture.instance(name: "gpu-1", id: "1001")) == nil)
    }

    @Test(
        "An error, a bare 404 or an unreadable answer throws: an error is never gone",
        arguments: [
            (404, "<html>Not Found</html>"), (500, "backend"), (403, #"{"error":{"code":403,"message":"denied"}}"#),
            (200, "not json"), (200, #"{"name":"gpu-1"}"#), (200, #"{"id":"1001","name":"other-name"}"#),
        ])
    func readError(status: Int, body: String) async throws {
        let transport = FakeHTTPTransport(handler: { _ in HTTPResponse(status: status, body: Data(body.utf8)) })
        await #expect(throws: ProviderError.self) {
            _ = try await provider(transport).instance(GCEFixture.instance())
        }
    }

    @Test("An instance without a valid zone or name is refused before any request")
    func readPathSafety() async throws {
        let transport = FakeHTTPTransport()
        for target in [GCEFixture.instance(zone: nil), GCEFixture.instance(name: "Bad/Name")] {
            await #expect(throws: ProviderError.self) {
                _ = try await provider(transport).instance(target)
            }
        }
        #expect(transport.requests.isEmpty)
    }

    // MARK: - requestId reuse

    @Test("A delete applied before a 504 is sent again with the same requestId: one operation, and it is done")
    func deleteAppliedThen504() async throws {
        let (simulator, transport) = simulated([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        simulator.enqueueFault(
            method: "DELETE", pathPrefix: "\(Self.base)/zones/us-central1-a/instances/gpu-1",
            response: .gatewayTimeout, afterApplying: true)
        try await provider(transport).delete(GCEFixture.instance())
        let deletes = simulator.requests.filter { $0.method == "DELETE" }
        #expect(deletes.count == 2)
        #expect(deletes[0].queryItems["requestId"] != nil)
        #expect(deletes[0].queryItems["requestId"] == deletes[1].queryItems["requestId"])
        #expect(simulator.operationsCreated == 1, "the repeat was the same call, not a second delete")
        #expect(simulator.instance(name: "gpu-1", zone: "us-central1-a") == nil)
    }

    @Test("A stop whose connection drops after it was applied is sent again with the same requestId: one operation")
    func stopAppliedThenTimeout() async throws {
        let simulator = GCESimulator(acceptedTokens: [GCEFixture.token])
        simulator.add(SimulatedGCEInstance(id: "1001", name: "gpu-1"))
        let transport = DropAfterHandlingTransport(
            method: "POST", pathPrefix: "\(Self.base)/zones/us-central1-a/instances/", handler: simulator.handle)
        try await provider(transport).pause(GCEFixture.instance())
        let posts = simulator.requests.filter { $0.method == "POST" }
        #expect(posts.count == 2)
        #expect(posts[0].queryItems["requestId"] == posts[1].queryItems["requestId"])
        #expect(simulator.operationsCreated == 1)
        #expect(simulator.instance(name: "gpu-1", zone: "us-central1-a")?.status == "TERMINATED")
    }

    // MARK: - Over loopback HTTP

    @Test("Over HTTP: found, gone, a bare 404 that is not gone, and a delete applied then 504 done once")
    func loopback() async throws {
        let simulator = GCESimulator(acceptedTokens: [GCEFixture.token])
        simulator.add(contentsOf: [
            SimulatedGCEInstance(id: "1001", name: "gpu-1"), SimulatedGCEInstance(id: "1002", name: "gpu-2"),
        ])
        let server = try LoopbackHTTPServer.start(handler: simulator.handle)
        defer { server.shutdown() }
        let gce = GCEProvider(
            project: GCEFixture.project, settings: GCEFixture.settings(apiURL: server.baseURL),
            tokens: StaticTokenSource(Secret(GCEFixture.token)), transport: URLSessionTransport(), clock: FakeClock(),
            retry: .exact)
        let listed = try await gce.listInstances()
        try #require(listed.count == 2)
        #expect(try await gce.instance(listed[0]) == listed[0])
        #expect(try await gce.instance(GCEFixture.instance(name: "gpu-9", id: "1009")) == nil)
        simulator.enqueueFault(
            method: "GET", pathPrefix: "\(Self.base)/zones/", response: HTTPResponse(status: 404, body: Data("x".utf8)))
        await #expect(throws: ProviderError.self) {
            _ = try await gce.instance(listed[0])
        }
        simulator.enqueueFault(
            method: "DELETE", pathPrefix: "\(Self.base)/zones/", response: .gatewayTimeout, afterApplying: true)
        try await gce.delete(listed[1])
        #expect(simulator.operationsCreated == 1)
        #expect(simulator.instance(name: "gpu-2", zone: "us-central1-a") == nil)
    }
}
