import CostOptimizer
import CostOptimizerSimulation
import Foundation
import Testing

@Suite("Vast simulator")
struct VastSimulatorTests {
    func get(_ simulator: VastSimulator, _ path: String, key: String = VastFixture.apiKey) async -> HTTPResponse {
        let url = URL(string: "http://127.0.0.1:1" + path)!
        return await simulator.handle(
            HTTPRequest(method: "GET", url: url, headers: ["Authorization": "Bearer \(key)"]))
    }

    func json(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
    }

    @Test("v1 pages honour the simulator's page size and end with a null next_token")
    func pageSize() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey, pageSize: 10)
        simulator.add(contentsOf: VastFixture.fleet(25))
        var token: String?
        var sizes: [Int] = []
        repeat {
            let query = token.map {
                "&after_token=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            }
            let page = try json(await get(simulator, "/api/v1/instances/?limit=25" + (query ?? "")))
            sizes.append((page["instances"] as? [Any])?.count ?? -1)
            #expect(page["total_instances"] as? Int == 25)
            token = page["next_token"] as? String
        } while token != nil && sizes.count < 10
        #expect(sizes == [10, 10, 5])
    }

    @Test("A bad page token is a 400 invalid_token, a wrong key a 401 auth_error")
    func errors() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        let badToken = await get(simulator, "/api/v1/instances/?after_token=nonsense")
        #expect(badToken.status == 400)
        #expect(try json(badToken)["error"] as? String == "invalid_token")
        let wrongKey = await get(simulator, "/api/v0/instances/?owner=me", key: "other")
        #expect(wrongKey.status == 401)
        #expect(try json(wrongKey)["msg"] as? String == "Invalid user key")
    }

    @Test("The single-instance lookup answers the object, or null for an unknown id")
    func single() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        simulator.add(SimulatedVastInstance(id: 3, actualStatus: "stopped", intendedStatus: "stopped"))
        let known = try json(await get(simulator, "/api/v0/instances/3/"))
        let object = try #require(known["instances"] as? [String: Any])
        #expect(object["actual_status"] as? String == "stopped")
        #expect(object["ports"] == nil, "ports only while running")
        let unknown = try json(await get(simulator, "/api/v0/instances/4/"))
        #expect(unknown["instances"] is NSNull)
    }

    @Test("Faults are answered first, in order, for as many times as asked, and every request is recorded")
    func faults() async throws {
        let simulator = VastSimulator(apiKey: VastFixture.apiKey)
        simulator.enqueueFault(
            method: "GET", pathPrefix: "/api/v1/", response: .vastText(429, "API requests too frequent"), times: 2)
        let statuses = await [
            get(simulator, "/api/v1/instances/").status, get(simulator, "/api/v1/instances/").status,
            get(simulator, "/api/v1/instances/").status,
        ]
        #expect(statuses == [429, 429, 200])
        #expect(simulator.requests.count == 3)
    }
}
