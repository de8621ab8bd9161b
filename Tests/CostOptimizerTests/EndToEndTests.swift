import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

/// Switches a test flips while the server runs.
final class StageControl: Sendable {
    /// Seconds every PUT waits before the simulator sees it.
    let putDelay = Atomic<Int>(0)
    /// PUTs that reached the server (before their delay).
    let putsStarted = Atomic<Int>(0)
    /// Seconds every DELETE waits before the simulator applies it.
    let deleteDelay = Atomic<Int>(0)
    /// DELETEs that reached the server (before their delay).
    let deletesStarted = Atomic<Int>(0)
}

/// The built `cost-optimizer` executable against the loopback Vast server, a fake ssh program and a webhook
/// recorder: real HTTP, real child processes, real state files.
final class Stage: @unchecked Sendable {
    // @unchecked: written only in init, then read; the server and simulators are Sendable themselves.
    let directory: String
    let vast: VastSimulator
    let apiKey: String
    let webhook = WebhookRecorder()
    let server: LoopbackHTTPServer
    let ssh: FakeSSHProgram
    let control = StageControl()

    init(apiKey: String = "e2e-secret-key") throws {
        self.apiKey = apiKey
        vast = VastSimulator(apiKey: apiKey)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-e2e-\(UUID().uuidString)").path
        ssh = try FakeSSHProgram(directory: directory + "/ssh")
        let vast = self.vast
        let webhook = self.webhook
        let control = self.control
        server = try LoopbackHTTPServer.start { request in
            if request.url.path.hasPrefix("/hooks") { return await webhook.handle(request) }
            if request.method == "DELETE" {
                control.deletesStarted.add(1, ordering: .relaxed)
                let delay = control.deleteDelay.load(ordering: .relaxed)
                if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000_000) }
            }
            if request.method == "PUT" {
                control.putsStarted.add(1, ordering: .relaxed)
                let delay = control.putDelay.load(ordering: .relaxed)
                if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000_000) }
            }
            return await vast.handle(request)
        }
    }

    deinit {
        server.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Adds a running idle RTX 4090 whose ssh answers on `port`.
    func addRunning(id: Int, label: String?, port: Int, utilization: Double) {
        vast.add(
            SimulatedVastInstance(
                id: id, label: label, dphTotal: 0.4, startDate: Date().timeIntervalSince1970 - 5 * 3600,
                sshHost: "127.0.0.1", sshPort: port))
        ssh.answer(
            port: port,
            with: SyntheticNvidiaSmi.output([
                SyntheticGPU(
                    name: "NVIDIA GeForce RTX 4090", busID: "00000000:01:00.0", point: 0, average: utilization,
                    max: utilization, memoryUsedMiB: 100, memoryTotalMiB: 24564, temperature: 35)
            ]))
    }

    var environment: [String: String] {
        [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "VAST_API_KEY": apiKey, "VAST_API_URL": server.baseURL.absoluteString,
            "WEBHOOK_URL": server.baseURL.absoluteString + "/hooks/T0/B0/e2e-webhook-secret",
            "PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "STATE_DIR": directory + "/state",
            "SSH_COMMAND": ssh.path, "LOG_LEVEL": "debug",
        ]
    }

    /// Runs the executable through the daemon's own process runner (which never blocks the cooperative pool that
    /// the loopback server's handlers need); returns status, stdout, stderr.
    func run(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> (Int32, String, String)
    {
        let command = Command(
            executable: Stage.executable.path, arguments: arguments, environment: environment.merging(extra) { $1 },
            timeout: 120, outputLimit: 8 << 20)
        let result = try await ProcessCommandRunner().run(command)
        return (
            result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self)
        )
    }

    /// `.build/<config>/cost-optimizer`, next to the test bundle.
    static let executable: URL = {
        var directory = Bundle.module.bundleURL.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("cost-optimizer")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("cost-optimizer")
    }()
}

@Suite("End to end: the executable against the loopback server", .serialized)
struct EndToEndTests {
    @Test("--run-once pauses the idle instance, leaves the busy and protected ones, journals and posts the webhook")
    func runOnce() async throws {
        let stage = try Stage()
        stage.addRunning(id: 101, label: "notebook", port: 41001, utilization: 1)
        stage.addRunning(id: 102, label: "training", port: 41002, utilization: 93)
        stage.addRunning(id: 103, label: "eval-keep", port: 41003, utilization: 0)
        let (status, _, stderr) = try await stage.run(["--run-once"])
        #expect(status == 0)

        let calls = stage.vast.requests.map { "\($0.method) \($0.path)" }
        #expect(calls.first == "GET /api/v1/instances/")
        #expect(calls.filter { !$0.hasPrefix("GET") } == ["PUT /api/v0/instances/101/"])
        #expect(stage.vast.requests.allSatisfy { $0.headers["Authorization"] == "Bearer e2e-secret-key" })
        #expect(stage.vast.instances.first { $0.id == 101 }?.actualStatus == "stopped")

        let journal = try String(contentsOfFile: stage.directory + "/state/actions.jsonl", encoding: .utf8)
        let lines = journal.split(separator: "\n")
        try #require(lines.count == 2)  // the intent, fsynced before the call, then its result
        let intent = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let record = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(intent["result"] as? String == "intent")
        #expect(intent["action_id"] as? String != nil && intent["action_id"] as? String == record["action_id"] as? String)
        #expect(record["id"] as? String == "101")
        #expect(record["action"] as? String == "pause")
        #expect(record["result"] as? String == "ok")
        #expect(record["dry_run"] as? Bool == false)

        #expect(stage.webhook.bodies.count == 1)
        let posted = try #require(stage.webhook.bodies.first)
        let body = try #require(try JSONSerialization.jsonObject(with: posted) as? [String: Any])
        #expect(body["event"] as? String == "pause")
        #expect(body["instance_id"] as? String == "101")
        #expect(body["instance_name"] as? String == "notebook")
        #expect(body["gpu_model"] as? String == "RTX 4090")
        #expect(body["hourly_cost_usd"] as? Double == 0.4)
        #expect(body["dry_run"] as? Bool == false)
        #expect((body["text"] as? String)?.contains("Paused vast/101") == true)
        #expect((body["text"] as? String)?.contains("A paused GPU may not be available again") == true)

        #expect(stderr.contains("PAUSE vast/101 (RTX 4090): GPU avg 1% < 10% for 0 min, 1 samples"))
        #expect(stderr.contains("Cycle complete: 3 running, 0 paused, 0 errors"))
        #expect(!stderr.contains("e2e-secret-key") && !stderr.contains("e2e-webhook-secret"))
        let state = try String(contentsOfFile: stage.directory + "/state/state.json", encoding: .utf8)
        #expect(state.contains("vast/102") && !state.contains("e2e-secret-key"))
    }

    @Test("--run-once --dry-run calls no mutating API but journals and notifies as dry run")
    func dryRun() async throws {
        let stage = try Stage()
        stage.addRunning(id: 201, label: nil, port: 41011, utilization: 0)
        let (status, _, stderr) = try await stage.run(["--run-once", "--dry-run"])
        #expect(status == 0)
        #expect(stage.vast.requests.allSatisfy { $0.method == "GET" })
        #expect(stderr.contains("DRY RUN PAUSE vast/201"))
        let journal = try String(contentsOfFile: stage.directory + "/state/actions.jsonl", encoding: .utf8)
        #expect(journal.contains(#""result":"dry_run""#) && journal.contains(#""dry_run":true"#))
        #expect(stage.webhook.bodies.count == 1)
    }

    @Test("--run-once exits non-zero when no provider could be listed, and acts on nothing")
    func providerDown() async throws {
        let stage = try Stage()
        stage.addRunning(id: 301, label: nil, port: 41021, utilization: 0)
        stage.vast.enqueueFault(
            method: "GET", pathPrefix: "/api/", response: HTTPResponse(status: 500, body: Data("boom".utf8)),
            times: 100)
        let (status, _, stderr) = try await stage.run(["--run-once"])
        #expect(status == 1)
        #expect(stderr.contains("Provider error vast"))
        #expect(stage.vast.requests.allSatisfy { $0.method == "GET" })
    }

    @Test("status --json lists every instance with the documented fields and changes nothing")
    func statusJSON() async throws {
        let stage = try Stage()
        stage.addRunning(id: 401, label: "notebook", port: 41031, utilization: 2)
        stage.addRunning(id: 402, label: "train-keep", port: 41032, utilization: 50)
        stage.vast.add(
            SimulatedVastInstance(
                id: 403, actualStatus: "stopped", intendedStatus: "stopped", curState: "stopped", gpuName: "A100",
                numGPUs: 2, startDate: nil))
        let (status, stdout, _) = try await stage.run(["status", "--json"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let instances = try #require(object["instances"] as? [[String: Any]])
        #expect((object["errors"] as? [Any])?.isEmpty == true)
        try #require(instances.map { $0["id"] as? String } == ["401", "402", "403"])
        let fields = [
            "provider", "id", "name", "zone", "state", "provider_status", "gpu_model", "gpu_count", "hourly_cost_usd",
            "created_at", "protected", "managed", "ssh", "idle_since", "decision",
        ]
        for instance in instances {
            #expect(fields.allSatisfy { instance.keys.contains($0) }, "missing fields in \(instance.keys.sorted())")
            #expect(instance["provider"] as? String == "vast")
        }
        #expect(instances[0]["state"] as? String == "running")
        #expect((instances[0]["decision"] as? [String: Any])?["action"] as? String == "pause")
        #expect(instances[0]["idle_since"] is String)
        #expect((instances[0]["ssh"] as? [String: Any])?["port"] as? Int == 41031)
        #expect(instances[1]["protected"] as? Bool == true)
        #expect(instances[2]["state"] as? String == "paused")
        #expect(instances[2]["created_at"] is NSNull)
        #expect(stage.vast.requests.allSatisfy { $0.method == "GET" })
        #expect(!FileManager.default.fileExists(atPath: stage.directory + "/state/actions.jsonl"))
    }

    @Test("a bad value exits 78 with one line naming the variable and the value", arguments: [
        ("PAUSE_THRESHOLD_GPU", "abc"), ("CHECK_INTERVAL", "-1"), ("LOG_LEVEL", "loud"), ("VAST_API_URL", "nope"),
        ("SSH_KEY_PATH", "/nonexistent/id_ed25519"), ("SSH_COMMAND", "no-such-ssh-program"),
    ])
    func badConfig(variable: String, value: String) async throws {
        let stage = try Stage()
        let (status, _, stderr) = try await stage.run(["--run-once"], environment: [variable: value])
        #expect(status == 78)
        #expect(stderr.contains("\(variable)=\"\(value)\""))
        #expect(stderr.split(separator: "\n").count == 1)
    }

    @Test("no provider configured exits 78")
    func noProvider() async throws {
        let stage = try Stage()
        let (status, _, stderr) = try await stage.run(["--run-once"], environment: ["VAST_API_KEY": ""])
        #expect(status == 78)
        #expect(stderr.contains("no provider is configured"))
    }

    @Test("check-config redacts secrets and tests the account")
    func checkConfig() async throws {
        let stage = try Stage()
        let (status, stdout, _) = try await stage.run(["check-config"])
        #expect(status == 0)
        #expect(stdout.contains("VAST_API_KEY=<redacted: 1 key(s)>"))
        #expect(stdout.contains("vast: ok (0 instances)"))
        #expect(!stdout.contains("e2e-secret-key") && !stdout.contains("e2e-webhook-secret"))
    }
}

@Suite("End to end: the daemon loop and the demo", .serialized)
struct DaemonProcessTests {
    @Test("SIGTERM ends the daemon loop: state saved, exit 0")
    func sigterm() async throws {
        let stage = try Stage()
        stage.addRunning(id: 501, label: nil, port: 41041, utilization: 50)
        let process = Process()
        process.executableURL = Stage.executable
        process.arguments = ["run"]
        process.environment = stage.environment.merging(["CHECK_INTERVAL": "1"]) { $1 }
        let log = stage.directory + "/daemon.log"
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait (without blocking the pool) until two cycles completed.
        var text = ""
        for _ in 0..<200 where text.components(separatedBy: "Cycle complete").count < 3 {
            try await Task.sleep(nanoseconds: 50_000_000)
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        }
        process.terminate()  // SIGTERM
        for _ in 0..<200 where process.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
        try handle.close()
        text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!process.isRunning)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(text.contains("Daemon stopped: state saved"))
        #expect(FileManager.default.fileExists(atPath: stage.directory + "/state/state.json"))
    }

    @Test("SIGTERM during a slow stop: the stop in flight finishes and is journaled, then exit 0")
    func sigtermDuringSlowStop() async throws {
        let stage = try Stage()
        stage.addRunning(id: 511, label: nil, port: 41051, utilization: 0)
        stage.control.putDelay.store(3, ordering: .relaxed)
        let process = Process()
        process.executableURL = Stage.executable
        process.arguments = ["run"]
        process.environment = stage.environment.merging(["CHECK_INTERVAL": "1"]) { $1 }
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<400 where stage.control.putsStarted.load(ordering: .relaxed) == 0 {
            try await Task.sleep(nanoseconds: 25_000_000)
        }
        #expect(stage.control.putsStarted.load(ordering: .relaxed) == 1)
        process.terminate()  // SIGTERM while the PUT is in flight
        for _ in 0..<400 where process.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(stage.vast.instances.first?.actualStatus == "stopped")
        let journal = try String(contentsOfFile: stage.directory + "/state/actions.jsonl", encoding: .utf8)
        #expect(journal.contains(#""result":"ok""#))
        #expect(stage.control.putsStarted.load(ordering: .relaxed) == 1)
    }

    @Test("under journald (JOURNAL_STREAM names stderr) each line starts with its syslog priority")
    func journaldPrefixes() async throws {
        let stage = try Stage()
        stage.vast.enqueueFault(
            method: "GET", pathPrefix: "/api/", response: HTTPResponse(status: 500, body: Data("boom".utf8)),
            times: 100)
        let log = stage.directory + "/journal-stream"
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        var info = stat()
        #expect(stat(log, &info) == 0)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = Stage.executable
        process.arguments = ["--run-once"]
        process.environment = stage.environment.merging(["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]) { $1 }
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<600 where process.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
        try handle.close()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("<4>Provider error vast: ") })
        #expect(lines.contains { $0.hasPrefix("<6>Cycle complete: 0 running, 0 paused, 1 errors") })
        #expect(lines.allSatisfy { $0.hasPrefix("<") })
    }

    @Test("the README's demo command tells what it paused, deleted and left alone; report and metrics show its ledger")
    func demo() async throws {
        let kept = FileManager.default.temporaryDirectory.appendingPathComponent("co-demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: kept) }
        let path = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let result = try await ProcessCommandRunner().run(
            Command(
                executable: Stage.executable.path, arguments: ["demo", "--keep-state", kept], environment: path,
                timeout: 120, outputLimit: 8 << 20))
        let out = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.status == 0)
        let ledgerLine = try #require(out.split(separator: "\n").first { $0.hasPrefix("Ledger for the 25 simulated hours: ") })
        #expect(!ledgerLine.contains(" $0.00 saved"))
        #expect(out.contains("STATE_DIR=\(kept) cost-optimizer report"))
        let report = try await ProcessCommandRunner().run(
            Command(
                executable: Stage.executable.path, arguments: ["report", "--since", "2d"],
                environment: path.merging(["STATE_DIR": kept]) { $1 }, timeout: 60, outputLimit: 1 << 20))
        let text = String(decoding: report.stdout, as: UTF8.self)
        #expect(report.status == 0)
        #expect(text.contains("Savings realised  $"))
        #expect(text.contains("Paused in the period: 4, deleted: 3"))
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("gcp/7300000000000000001 ") && $0.hasSuffix("accruing") })
        let metrics = try String(contentsOfFile: kept + "/metrics.prom", encoding: .utf8)
        let savings = metrics.split(separator: "\n").first { $0.hasPrefix("cost_optimizer_savings_usd_total ") }
        #expect((savings.flatMap { Double($0.split(separator: " ")[1]) } ?? 0) > 50)
        #expect(metrics.contains(#"cost_optimizer_actions_total{action="delete",result="ok"} 3"#))
        #expect(out.contains("PAUSE vast/9100002 (RTX 4090): GPU avg 0% < 10% for 30 min, 7 samples"))
        let rows = out.split(separator: "\n").filter {
            $0.hasPrefix("vast/") || $0.hasPrefix("tensordock/") || $0.hasPrefix("gcp/")
        }
        #expect(rows.count == 11)
        #expect(rows.first { $0.contains("a100-eval") }?.contains("paused at +00:30, deleted at +24:0") == true)
        #expect(rows.first { $0.contains("l4-private") }?.contains("no ssh: no external IP") == true)
        #expect(rows.first { $0.contains("web-frontend") }?.contains("not managed") == true)
        #expect(rows.first { $0.contains("notebook") }?.contains("paused at +00:30, deleted at +24:0") == true)
        #expect(rows.first { $0.contains("lora-sweep") }?.contains("releasing the GPU") == false)
        #expect(rows.first { $0.contains("lora-sweep") }?.contains("paused at +00:30") == true)
        #expect(rows.first { $0.contains("jupyter") }?.contains("creation time unknown: never deleted") == true)
        #expect(rows.first { $0.contains("inference-api") }?.contains("left alone") == true)
        #expect(rows.first { $0.contains("eval-keep") }?.contains("protected") == true)
        #expect(rows.first { $0.contains("old-experiment") }?.contains("deleted at") == true)
        #expect(rows.first { $0.contains("llama-finetune") }?.contains("left alone") == true)
    }
}
