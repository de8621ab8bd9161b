import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// A small seeded generator, so every hostile input is reproducible.
struct SeededBytes {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
    mutating func bytes(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }) }
}

/// Hostile variants of a valid document: every truncation, random bytes, invalid UTF-8, and field swaps.
func hostileVariants(of valid: Data, swaps: [(String, String)] = []) -> [Data] {
    var variants: [Data] = []
    let step = max(1, valid.count / 40)
    for cut in stride(from: 0, to: valid.count, by: step) { variants.append(valid.prefix(cut)) }
    var random = SeededBytes(state: 42)
    for length in [1, 7, 64, 512, 4096] { variants.append(random.bytes(length)) }
    variants.append(Data([0xFF, 0xFE, 0xC3, 0x28]) + valid)
    let text = String(decoding: valid, as: UTF8.self)
    for (from, to) in swaps where text.contains(from) {
        variants.append(Data(text.replacingOccurrences(of: from, with: to).utf8))
    }
    variants.append(Data(String(repeating: "[", count: 100_000).utf8))  // deeply nested
    return variants
}

/// A listing must fail cleanly or return sane instances: never a crash, never a number that is not one.
func expectSane(_ instances: [Instance]) {
    for instance in instances {
        #expect(instance.hourlyCostUSD.map { $0.isFinite && $0 >= 0 } ?? true, "cost \(String(describing: instance.hourlyCostUSD))")
        #expect(instance.gpuCount.map { $0 >= 0 } ?? true)
        #expect(instance.ssh.map { (1...65535).contains($0.port) } ?? true)
    }
}

@Suite("Bad input: every parser fails cleanly")
struct BadInputTests {
    static let numberSwaps: [(String, String)] = [
        ("0.4", "1e999"), ("0.4", "-5"), ("0.4", "\"abc\""), ("0.4", "null"), ("\"running\"", "\"on-fire\""),
        ("\"running\"", "42"), ("\"RTX 4090\"", "\"evil\\nDELETE vast/1\\u001b[31m\""), ("123", "99999999999999999999999"),
    ]

    @Test("Vast listing bodies")
    func vast() async throws {
        let simulator = VastSimulator(apiKey: "k")
        simulator.add(SimulatedVastInstance(id: 123, label: "a", dphTotal: 0.4))
        let page = await simulator.handle(
            HTTPRequest(
                method: "GET", url: URL(string: "http://x/api/v1/instances/?limit=25")!,
                headers: ["Authorization": "Bearer k"]))
        for body in hostileVariants(of: page.body, swaps: Self.numberSwaps) {
            let provider = VastProvider(
                apiKey: Secret("k"), baseURL: URL(string: "http://x")!,
                transport: FakeHTTPTransport(responses: [.success(HTTPResponse(status: 200, body: body))]),
                clock: FakeClock(now: .now), retry: .none)
            if let instances = try? await provider.listInstances() { expectSane(instances) }
        }
    }

    @Test("TensorDock listing bodies, v2 and v0")
    func tensorDock() async throws {
        let simulator = TensorDockSimulator(bearerToken: "b", apiKey: "k", apiToken: "t")
        simulator.add(SimulatedTensorDockVM(id: "vm-1", name: "a", pricePerHour: 0.4))
        let v2 = await simulator.handle(
            HTTPRequest(
                method: "GET", url: URL(string: "http://x/api/v2/instances")!, headers: ["Authorization": "Bearer b"]))
        let v0 = await simulator.handle(
            HTTPRequest(
                method: "POST", url: URL(string: "http://x/api/v0/client/list")!,
                headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Data("api_key=k&api_token=t".utf8)))
        for (settings, valid) in [
            (TensorDockSettings(bearerToken: Secret("b")), v2.body),
            (TensorDockSettings(apiKey: Secret("k"), apiToken: Secret("t")), v0.body),
        ] {
            for body in hostileVariants(of: valid, swaps: Self.numberSwaps + [("Running", "Outbid")]) {
                let provider = TensorDockProvider(
                    settings: settings,
                    transport: FakeHTTPTransport(responses: [.success(HTTPResponse(status: 200, body: body))]),
                    clock: FakeClock(now: .now), retry: .none, minimumInterval: 0)
                if let instances = try? await provider.listInstances() { expectSane(instances) }
            }
        }
    }

    @Test("GCE listing bodies")
    func gce() async throws {
        let simulator = GCESimulator(acceptedTokens: ["t"])
        simulator.add(SimulatedGCEInstance(id: "1", name: "a"))
        let page = await simulator.handle(
            HTTPRequest(
                method: "GET",
                url: URL(
                    string:
                        "http://x/compute/v1/projects/\(GCESimulator.defaultProject)/aggregated/instances?returnPartialSuccess=true"
                )!, headers: ["Authorization": "Bearer t"]))
        let settings = GCPSettings(projects: [GCESimulator.defaultProject], apiURL: URL(string: "http://x")!)
        for body in hostileVariants(of: page.body, swaps: [("RUNNING", "MELTING"), ("\"1\"", "1e999")]) {
            let provider = GCEProvider(
                project: GCESimulator.defaultProject, settings: settings, tokens: StaticTokenSource(Secret("t")),
                transport: FakeHTTPTransport(responses: [.success(HTTPResponse(status: 200, body: body))]),
                clock: FakeClock(now: .now), retry: .none)
            if let instances = try? await provider.listInstances() { expectSane(instances) }
        }
    }

    @Test("nvidia-smi output: anything odd is a failed sample, and an ok one holds real percentages")
    func nvidiaSmi() {
        let valid = Data(SyntheticNvidiaSmi.output([.idle, .busy]).utf8)
        let swaps = [("100", "1e999"), ("100", "-3"), ("100", "NaN"), (", 1,", ", [N/A],"), ("@@status 0", "@@status x")]
        for body in hostileVariants(of: valid, swaps: swaps) {
            let result = NvidiaSmiProbe.parse(output: String(decoding: body, as: UTF8.self), exitStatus: 0)
            if case .ok(let gpus) = result {
                for gpu in gpus { #expect(gpu.utilization.isFinite && (0...100).contains(gpu.utilization)) }
            }
        }
    }

    @Test("configuration values: a clean error or a finite number", arguments: [
        "PAUSE_THRESHOLD_GPU", "PAUSE_WINDOW_MINUTES", "MIN_SAMPLES", "DELETE_THRESHOLD_HOURS", "MIN_INSTANCE_AGE_HOURS",
        "CHECK_INTERVAL", "SSH_CONNECT_TIMEOUT", "SSH_CONCURRENCY",
    ])
    func configValues(variable: String) {
        for value in ["nan", "NaN", "inf", "-inf", "1e309", "-1", "99999999999999999999", "0x10", "1 0", "\u{0}", "５"] {
            do {
                let config = try Config.parse(environment: ["VAST_API_KEY": "k", variable: value])
                #expect(config.policy.pauseThresholdGPU.isFinite && config.checkInterval.isFinite)
            } catch {
                #expect("\(error)".contains(variable))
            }
        }
    }

    @Test("a truncated or wrongly typed state file starts fresh; a torn journal line is skipped")
    func stateAndJournal() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-bad-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        var record = InstanceRecord(firstSeen: Date(timeIntervalSince1970: 1_800_000_000), state: .running)
        record.streakStart = record.firstSeen
        try store.save(FleetState(instances: ["vast/1": record]))
        let valid = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
        for body in hostileVariants(of: valid, swaps: [("1800000000", "\"x\""), ("\"running\"", "\"melting\"")]) {
            try body.write(to: URL(fileURLWithPath: store.statePath))
            let loaded = try store.load()
            #expect(loaded == nil || loaded?.instances["vast/1"] != nil)
            try? store.save(FleetState())
        }
        let line = JournalRecord(
            time: Date(timeIntervalSince1970: 1_800_000_000), provider: "vast", id: "1", name: "n", action: .pause,
            reason: "r", dryRun: false, result: "ok")
        try store.append(line)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: store.journalPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"time\":\"2027-01-15T08:0".utf8))  // a kill -9 mid-write
        try handle.close()
        #expect(store.journal() == [line])
    }

    @Test("a provider name holding a newline and ANSI escapes never splits or colours a log line")
    func hostileNames() async throws {
        let rig = try Rig(label: "evil\nDELETE vast/999 (fake)\u{1b}[31m", answer: Rig.idle)
        let sink = CapturingSink()
        let logged = Daemon(
            config: rig.daemon.config, providers: rig.daemon.providers, sampler: rig.daemon.sampler, store: rig.store,
            notifier: rig.notifier, clock: rig.clock, logger: Logger(level: .debug, sink: sink))
        _ = await logged.tick(state: FleetState())
        #expect(!sink.captured.isEmpty)
        for line in sink.captured {
            #expect(!line.contains("\n") && !line.contains("\u{1b}"), "split or coloured: \(line)")
        }
    }
}
