import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// Vast.ai, TensorDock (v0 key pair, so creation times are listed) and GCE, each on its own loopback server, behind
/// one configuration of the built executable.
final class FleetStage: @unchecked Sendable {
    // @unchecked: every stored property is set in init and never reassigned; the simulators are Sendable.
    let base: Stage
    let tensorDock = TensorDockSimulator(apiKey: "td-key-secret", apiToken: "td-token-secret")
    let gce = GCESimulator(acceptedTokens: ["gce-token-secret"])
    let tensorDockServer: LoopbackHTTPServer
    let gceServer: LoopbackHTTPServer

    init() throws {
        base = try Stage()
        tensorDockServer = try LoopbackHTTPServer.start(handler: tensorDock.handle)
        gceServer = try LoopbackHTTPServer.start(handler: gce.handle)
        let idle = SyntheticNvidiaSmi.output([SyntheticGPU.idle])
        // Vast: one idle, one stopped.
        base.addRunning(id: 601, label: "vast-idle", port: 42001, utilization: 1)
        base.vast.add(
            SimulatedVastInstance(
                id: 602, label: "vast-stopped", actualStatus: "stopped", intendedStatus: "stopped", curState: "stopped",
                startDate: Date().timeIntervalSince1970 - 48 * 3600))
        // TensorDock: one idle, one stopped with its GPU released.
        tensorDock.add(
            SimulatedTensorDockVM(
                id: "td-idle-0001", name: "td-idle", status: "Running", ipAddress: "127.0.0.1", sshPort: 42011,
                createdAt: Date().addingTimeInterval(-48 * 3600)))
        tensorDock.add(
            SimulatedTensorDockVM(
                id: "td-stopped-0002", name: "td-stopped", status: "StoppedDisassociated", ipAddress: "127.0.0.1",
                sshPort: 42012, createdAt: Date().addingTimeInterval(-48 * 3600)))
        base.ssh.answer(port: 42011, with: idle)
        // GCE: one idle A100 (machine-type GPU), one stopped T4.
        let created = Date().addingTimeInterval(-48 * 3600).formatted(.iso8601)
        gce.add(
            SimulatedGCEInstance(
                id: "8100000000000000001", name: "gce-idle", machineType: "a2-highgpu-1g", accelerators: [],
                natIP: "127.0.0.31", creationTimestamp: created, lastStartTimestamp: created))
        gce.add(
            SimulatedGCEInstance(
                id: "8100000000000000002", name: "gce-stopped", status: "TERMINATED", natIP: nil,
                creationTimestamp: created, lastStartTimestamp: created))
        base.ssh.answer(port: 22, host: "127.0.0.31", with: idle)
    }

    deinit {
        tensorDockServer.shutdown()
        gceServer.shutdown()
    }

    var environment: [String: String] {
        [
            "TENSORDOCK_API_KEY": "td-key-secret", "TENSORDOCK_API_TOKEN": "td-token-secret",
            "TENSORDOCK_V0_API_URL": tensorDockServer.baseURL.absoluteString, "GCP_PROJECT_ID": GCESimulator.defaultProject,
            "GCP_API_URL": gceServer.baseURL.absoluteString, "GCP_ACCESS_TOKEN": "gce-token-secret",
            "GCP_SSH_USER": "ops", "DELETE_THRESHOLD_HOURS": "0", "MIN_INSTANCE_AGE_HOURS": "0",
        ]
    }

    func run(_ arguments: [String], _ extra: [String: String] = [:]) async throws -> (Int32, String, String) {
        try await base.run(arguments, environment: environment.merging(extra) { $1 })
    }

    /// The mutating calls each simulator received, as `METHOD path`.
    var actions: [String] {
        let vast = base.vast.requests.filter { $0.method != "GET" }.map { "vast \($0.method) \($0.path)" }
        let td = tensorDock.requests.filter { !$0.path.hasSuffix("/list") }.map { "tensordock \($0.method) \($0.path)" }
        let gcp = gce.requests.filter { $0.method != "GET" }.map { "gcp \($0.method) \($0.path)" }
        return vast + td + gcp
    }
}

@Suite("Three providers in one configuration", .serialized)
struct MultiProviderTests {
    @Test("--run-once lists, samples, pauses and deletes across Vast.ai, TensorDock and GCE")
    func pausesAndDeletesEverywhere() async throws {
        let stage = try FleetStage()
        let caps = ["MAX_DELETES_PER_CYCLE": "6"]  // six deletes are planned in the second cycle
        let (first, _, firstLog) = try await stage.run(["--run-once"], caps)
        #expect(first == 0)
        #expect(firstLog.contains("Cycle complete: 3 running, 3 paused, 0 errors"))
        #expect(
            stage.actions == [
                "vast PUT /api/v0/instances/601/",
                "tensordock POST /api/v0/client/stop/single",
                "gcp POST /compute/v1/projects/\(GCESimulator.defaultProject)/zones/us-central1-a/instances/gce-idle/stop",
            ])
        let stopBody = try #require(stage.tensorDock.requests.first { $0.path.hasSuffix("/stop/single") }?.body)
        #expect(String(decoding: stopBody, as: UTF8.self).contains("disassociate_resources=true"))

        // A second cycle: everything stopped has been idle longer than DELETE_THRESHOLD_HOURS=0.
        let (second, _, secondLog) = try await stage.run(["--run-once"], caps)
        #expect(second == 0)
        #expect(secondLog.components(separatedBy: "DELETE ").count - 1 == 6)
        #expect(stage.base.vast.instances.isEmpty)
        #expect(stage.tensorDock.vms.isEmpty)
        #expect(stage.gce.instances.isEmpty)

        let journal = try String(contentsOfFile: stage.base.directory + "/state/actions.jsonl", encoding: .utf8)
        let records = journal.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(records.count == 18)  // an intent before each of the 9 calls, then its result
        #expect(records.filter { $0["result"] as? String == "intent" }.count == 9)
        #expect(records.filter { $0["result"] as? String != "intent" }.allSatisfy { $0["result"] as? String == "ok" })
        #expect(Set(records.compactMap { $0["provider"] as? String }) == ["vast", "tensordock", "gcp"])
        for secret in ["e2e-secret-key", "td-key-secret", "td-token-secret", "gce-token-secret"] {
            #expect(!firstLog.contains(secret) && !secondLog.contains(secret) && !journal.contains(secret))
        }
    }

    @Test("six deletes planned with MAX_DELETES_PER_CYCLE 3: the breaker trips, nothing is deleted, and it says so")
    func deleteBreaker() async throws {
        let stage = try FleetStage()
        _ = try await stage.run(["--run-once"])
        let before = stage.actions.count
        let (status, _, log) = try await stage.run(["--run-once"])
        #expect(status == 0)
        #expect(stage.actions.count == before)  // not one delete
        #expect(log.contains("Breaker tripped: breaker: 6 deletes planned > MAX_DELETES_PER_CYCLE 3"))
        let events = stage.base.webhook.bodies.compactMap {
            (try? JSONSerialization.jsonObject(with: $0) as? [String: Any])?["event"] as? String
        }
        #expect(events.contains("breaker_tripped"))
    }

    @Test("status --json shows every provider's instances with the documented fields")
    func statusAcrossProviders() async throws {
        let stage = try FleetStage()
        let (status, stdout, _) = try await stage.run(["status", "--json"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let instances = try #require(object["instances"] as? [[String: Any]])
        #expect((object["errors"] as? [Any])?.isEmpty == true)
        let byName = Dictionary(uniqueKeysWithValues: instances.map { ($0["name"] as? String ?? "", $0) })
        #expect(byName.count == 6)
        #expect(byName["td-idle"]?["provider"] as? String == "tensordock")
        #expect(byName["gce-idle"]?["provider"] as? String == "gcp")
        #expect(byName["gce-idle"]?["zone"] as? String == "us-central1-a")
        #expect(byName["gce-idle"]?["gpu_model"] as? String == "A100 40GB")
        #expect(byName["gce-idle"]?["hourly_cost_estimated"] as? Bool == true)
        #expect((byName["gce-idle"]?["ssh"] as? [String: Any])?["user"] as? String == "ops")
        #expect(byName["gce-stopped"]?["state"] as? String == "paused")
        #expect(byName["td-stopped"]?["state"] as? String == "paused")
        #expect(byName["vast-idle"]?["hourly_cost_estimated"] as? Bool == false)
        for instance in instances {
            for field in ["provider", "id", "name", "zone", "state", "provider_status", "gpu_model", "gpu_count",
                "hourly_cost_usd", "created_at", "protected", "managed", "ssh", "idle_since", "decision"]
            {
                #expect(instance.keys.contains(field), "\(instance["name"] ?? "?") has no \(field)")
            }
        }
        #expect(stage.actions.isEmpty)
    }

    @Test(
        "one provider failing (bad credentials, 500s) leaves the other two working and is reported in errors",
        arguments: ["vast", "tensordock", "gcp"])
    func oneProviderDown(failing: String) async throws {
        let stage = try FleetStage()
        var extra: [String: String] = [:]
        switch failing {
        case "vast":
            stage.base.vast.enqueueFault(
                method: "*", pathPrefix: "/api/", response: HTTPResponse(status: 500, body: Data("down".utf8)),
                times: 100)
        case "tensordock": extra["TENSORDOCK_API_TOKEN"] = "wrong-token"
        default: extra["GCP_ACCESS_TOKEN"] = "wrong-token"
        }
        let (runStatus, _, log) = try await stage.run(["--run-once"], extra)
        #expect(runStatus == 0)
        let account = failing == "gcp" ? "gcp:\(GCESimulator.defaultProject)" : failing
        #expect(log.contains("Provider error \(account)"))
        let acted = Set(stage.actions.map { String($0.split(separator: " ")[0]) })
        #expect(acted == Set(["vast", "tensordock", "gcp"]).subtracting([failing]))

        let (_, stdout, _) = try await stage.run(["status", "--json"], extra)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let errors = try #require(object["errors"] as? [[String: Any]])
        #expect(errors.map { $0["provider"] as? String } == [account])
        #expect(!"\(errors)".contains("wrong-token"))
    }
}
