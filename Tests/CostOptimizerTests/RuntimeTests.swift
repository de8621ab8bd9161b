import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

final class CapturingSink: LogSink, Sendable {
    private let lines = Mutex<[String]>([])
    func write(level: LogLevel, message: String) { lines.withLock { $0.append("\(level.rawValue): \(message)") } }
    var captured: [String] { lines.withLock { $0 } }
}

@Suite("Webhook notifier")
struct WebhookNotifierTests {
    let event = NotificationEvent(
        event: .pause, text: "Paused vast/1", provider: "vast", instanceID: "1", instanceName: "nb",
        gpuModel: "RTX 4090", reason: "GPU avg 1% < 10% for 30 min, 31 samples", hourlyCostUSD: 0.4, dryRun: false)

    @Test("posts one JSON body with the text and every structured field")
    func posts() async throws {
        let transport = FakeHTTPTransport(responses: [.success(HTTPResponse(status: 200))])
        let notifier = WebhookNotifier(
            url: Secret("https://hooks.example.com/services/T/B/secret"), transport: transport, clock: FakeClock(now: .now),
            logger: .silent)
        await notifier.notify(event)
        let request = try #require(transport.requests.first)
        #expect(request.method == "POST")
        #expect(request.headers["Content-Type"] == "application/json")
        let body = try #require(try JSONSerialization.jsonObject(with: request.body ?? Data()) as? [String: Any])
        #expect(
            Set(body.keys) == [
                "event", "text", "provider", "instance_id", "instance_name", "gpu_model", "reason", "hourly_cost_usd",
                "dry_run",
            ])
        #expect(body["event"] as? String == "pause")
    }

    @Test("retries a bounded number of times, then logs the host only")
    func boundedRetries() async {
        let transport = FakeHTTPTransport(responses: Array(repeating: .success(HTTPResponse(status: 503)), count: 10))
        let sink = CapturingSink()
        let clock = FakeClock(now: .now)
        let notifier = WebhookNotifier(
            url: Secret("https://hooks.example.com/services/T/B/secret"), transport: transport, clock: clock,
            logger: Logger(level: .debug, sink: sink), attempts: 3, timeout: 5)
        await notifier.notify(event)
        #expect(transport.requests.count == 3)
        #expect(transport.requests.allSatisfy { $0.timeout == 5 })
        #expect(sink.captured.count == 1)
        #expect(sink.captured.first?.contains("hooks.example.com") == true)
        #expect(!sink.captured.joined().contains("secret"))
    }

    @Test("a 4xx other than 429 is not retried")
    func noRetryOnClientError() async {
        let transport = FakeHTTPTransport(responses: Array(repeating: .success(HTTPResponse(status: 404)), count: 5))
        let notifier = WebhookNotifier(
            url: Secret("https://hooks.example.com/x"), transport: transport, clock: FakeClock(now: .now),
            logger: .silent)
        await notifier.notify(event)
        #expect(transport.requests.count == 1)
    }
}

@Suite("Secrets and logs")
struct SecretsAndLogsTests {
    @Test("a credential file wins over a _FILE, which wins over the variable")
    func secretSources() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "from-credential\n".write(toFile: directory + "/vast_api_key", atomically: true, encoding: .utf8)
        try "from-file\n".write(toFile: directory + "/webhook", atomically: true, encoding: .utf8)
        let resolved = try Secrets.resolve([
            "CREDENTIALS_DIRECTORY": directory, "VAST_API_KEY": "from-env", "WEBHOOK_URL_FILE": directory + "/webhook",
            "WEBHOOK_URL": "https://ignored",
        ])
        #expect(resolved["VAST_API_KEY"] == "from-credential")
        #expect(resolved["WEBHOOK_URL"] == "from-file")
    }

    @Test("an unreadable _FILE is a configuration error naming the file")
    func unreadableSecretFile() {
        #expect(throws: ConfigError.self) {
            try Secrets.resolve(["VAST_API_KEY_FILE": "/nonexistent/key"])
        }
    }

    @Test("log lines escape newlines and control characters from provider data")
    func oneLine() {
        let sink = CapturingSink()
        Logger(level: .info, sink: sink).info("PAUSE vast/1 (evil\nDELETE vast/2\u{1b}[31m)")
        #expect(sink.captured == ["info: PAUSE vast/1 (evil\\nDELETE vast/2\\u{1b}[31m)"])
    }

    @Test("the level filters lines")
    func levels() {
        let sink = CapturingSink()
        let logger = Logger(level: .warning, sink: sink)
        logger.debug("d")
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        #expect(sink.captured == ["warning: w", "error: e"])
    }
}

@Suite("Command line")
struct CommandLineTests {
    @Test("arguments parse into an invocation", arguments: [
        ([], Invocation(command: .run)),
        (["run"], Invocation(command: .run)),
        (["--run-once", "--dry-run"], Invocation(command: .run, runOnce: true, dryRun: true)),
        (["status", "--json"], Invocation(command: .status, json: true)),
        (["check-config"], Invocation(command: .checkConfig)),
        (["--help"], Invocation(command: .help)),
        (["--version"], Invocation(command: .version)),
    ])
    func parses(arguments: [String], expected: Invocation) throws {
        #expect(try Invocation.parse(arguments) == expected)
    }

    @Test("an unknown argument is a usage error", arguments: [["--frobnicate"], ["status", "run"], ["delete"]])
    func usage(arguments: [String]) {
        #expect(throws: UsageError.self) { try Invocation.parse(arguments) }
    }

    @Test("a bad configuration exits 78 before anything runs")
    func exit78() async {
        let status = await CommandLineTool.main(arguments: ["--run-once"], environment: ["MIN_SAMPLES": "zero"])
        #expect(status == ExitStatus.config)
    }

    @Test("check-config prints every variable and never a secret")
    func describe() throws {
        let config = try Config.parse(environment: [
            "VAST_API_KEY": "abc-secret", "WEBHOOK_URL": "https://hooks.slack.com/services/T/B/tok-secret",
        ])
        let text = CommandLineTool.describe(config)
        for variable in Config.variables { #expect(text.contains("\(variable)=")) }
        #expect(!text.contains("abc-secret") && !text.contains("tok-secret"))
        #expect(text.contains("WEBHOOK_URL=https://hooks.slack.com/<redacted>"))
    }
}
