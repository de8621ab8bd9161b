import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// A whole daemon over fakes: in-memory Vast (the simulator behind a fake transport), fake ssh, fake clock.
struct Rig {
    let vast = VastSimulator(apiKey: "k-secret-123")
    let clock = FakeClock(now: Date(timeIntervalSince1970: 1_800_000_000))
    let runner: FakeCommandRunner
    let store = MemoryStateStore()
    let notifier = RecordingNotifier()
    let daemon: Daemon
    let transport: FakeHTTPTransport

    static let idle = SyntheticNvidiaSmi.output([
        SyntheticGPU(
            name: "NVIDIA GeForce RTX 4090", busID: "00000000:01:00.0", point: 0, average: 2, max: 9,
            memoryUsedMiB: 10767, memoryTotalMiB: 24564, temperature: 38)
    ])
    static let busy = SyntheticNvidiaSmi.output([
        SyntheticGPU(
            name: "NVIDIA GeForce RTX 4090", busID: "00000000:01:00.0", point: 99, average: 97, max: 100,
            memoryUsedMiB: 20000, memoryTotalMiB: 24564, temperature: 70)
    ])

    init(
        environment: [String: String] = [:], label: String? = "notebook", answer: String = Rig.idle,
        onReread: (@Sendable (VastSimulator) -> Void)? = nil
    ) throws {
        vast.add(
            SimulatedVastInstance(id: 123, label: label, dphTotal: 0.4, startDate: 1_800_000_000 - 7200, sshPort: 29558))
        let vast = self.vast
        transport = FakeHTTPTransport { request in
            // The single-instance read is the re-check right before acting: the world may change just then.
            if request.method == "GET", request.url.absoluteString.contains("/api/v0/instances/123/") { onReread?(vast) }
            return await vast.handle(request)
        }
        runner = FakeCommandRunner { _ in .success(CommandResult(status: 0, stdout: Data(answer.utf8))) }
        let config = try Config.parse(
            environment: ["VAST_API_KEY": "k-secret-123", "VAST_API_URL": "https://console.vast.ai"].merging(
                environment
            ) { $1 })
        let edges = Edges(http: transport, runner: runner, clock: clock, logger: .silent)
        let base = try Wiring.daemon(config: config, edges: edges, store: store)
        daemon = Daemon(
            config: config, providers: base.providers, sampler: base.sampler, store: store, notifier: notifier,
            clock: clock, logger: .silent)
    }

    /// Runs `count` cycles a minute apart; returns the last report.
    @discardableResult
    func ticks(_ count: Int, from state: inout FleetState) async -> CycleReport? {
        var last: CycleReport?
        for _ in 0..<count {
            let report = await daemon.tick(state: state)
            state = report.state
            last = report
            clock.advance(by: 60)
        }
        return last
    }

    func requests(_ method: String) -> [String] {
        vast.requests.filter { $0.method == method }.map(\.path)
    }
}

@Suite("Daemon, whole cycles over fakes")
struct DaemonTests {
    @Test("pauses after the idle window, then deletes once the idle clock passes the threshold")
    func pauseThenDelete() async throws {
        let rig = try Rig()
        var state = FleetState()
        await rig.ticks(30, from: &state)
        #expect(rig.requests("PUT").isEmpty)
        await rig.ticks(1, from: &state)
        #expect(rig.requests("PUT") == ["/api/v0/instances/123/"])
        #expect(rig.vast.instances.first?.actualStatus == "stopped")
        #expect(rig.notifier.events.map(\.event) == [.pause])
        #expect(rig.store.journal.map(\.result) == ["intent", "ok"])
        #expect(rig.store.journal.last?.reason.hasPrefix("GPU avg 2% < 10% for 30 min, 31 samples") == true)

        await rig.ticks(23 * 60 + 29, from: &state)  // idle clock 23 h 59 min
        #expect(rig.requests("DELETE").isEmpty)
        await rig.ticks(2, from: &state)
        #expect(rig.requests("DELETE") == ["/api/v0/instances/123/"])
        #expect(rig.vast.instances.isEmpty)
        #expect(rig.notifier.events.map(\.event) == [.pause, .deleteNotice, .delete])
        #expect(state.instances.isEmpty)
    }

    @Test("a busy instance is never paused")
    func busyNeverPaused() async throws {
        let rig = try Rig(answer: Rig.busy)
        var state = FleetState()
        await rig.ticks(120, from: &state)
        #expect(rig.requests("PUT").isEmpty)
        #expect(rig.notifier.events.isEmpty)
    }

    @Test("dry run calls no mutating API, journals and notifies once per streak")
    func dryRun() async throws {
        let rig = try Rig(environment: ["DRY_RUN": "true"])
        var state = FleetState()
        await rig.ticks(40, from: &state)
        #expect(rig.requests("PUT").isEmpty && rig.requests("DELETE").isEmpty)
        #expect(rig.store.journal.map(\.result) == ["dry_run"])
        #expect(rig.notifier.events.map(\.event) == [.pause])
        #expect(rig.notifier.events.first?.dryRun == true)
    }

    @Test("the protect label holds in dry run and in the real run", arguments: ["true", "false"])
    func protectedBothWays(dryRun: String) async throws {
        let rig = try Rig(environment: ["DRY_RUN": dryRun, "DELETE_THRESHOLD_HOURS": "1"], label: "eval-KEEP")
        var state = FleetState()
        await rig.ticks(180, from: &state)
        #expect(rig.requests("PUT").isEmpty && rig.requests("DELETE").isEmpty)
        #expect(rig.store.journal.isEmpty)
        #expect(rig.notifier.events.isEmpty)
    }

    @Test(
        "a protect label added between plan and act stops the action, in dry run and in the real run",
        arguments: ["true", "false"])
    func protectedBetweenPlanAndAct(dryRun: String) async throws {
        let rig = try Rig(
            environment: ["DRY_RUN": dryRun, "PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"],
            onReread: { vast in _ = vast.update(id: 123) { $0.label = "now-KEEP" } })
        var state = FleetState()
        await rig.ticks(1, from: &state)
        #expect(rig.requests("GET").contains("/api/v0/instances/123/"))  // the re-check happened
        #expect(rig.requests("PUT").isEmpty)
        #expect(rig.store.journal.isEmpty)
        #expect(rig.notifier.events.isEmpty)
    }

    @Test("an instance that turned busy between plan and act is not paused")
    func busyBetweenPlanAndAct() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        rig.runner.enqueue(.success(CommandResult(status: 0, stdout: Data(Rig.idle.utf8))))
        rig.runner.setHandler { _ in .success(CommandResult(status: 0, stdout: Data(Rig.busy.utf8))) }
        var state = FleetState()
        await rig.ticks(1, from: &state)
        #expect(rig.runner.commands.count == 2)  // the cycle's sample, then the re-sample before acting
        #expect(rig.requests("PUT").isEmpty)
    }

    @Test("a pause the provider accepts but never applies is sent again twice, then reported as action_failed")
    func unconfirmedPause() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        rig.vast.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/",
            response: HTTPResponse(status: 200, body: Data(#"{"success":true}"#.utf8)), times: 3)
        var state = FleetState()
        await rig.ticks(1, from: &state)
        #expect(rig.requests("PUT").count == 1)
        #expect(state[InstanceKey(provider: .vast, id: "123")]?.pauseCheck?.attempts == 1)
        await rig.ticks(2, from: &state)
        #expect(rig.requests("PUT").count == 3)  // one more per cycle, never two in one cycle
        #expect(!rig.notifier.events.map(\.event).contains(.actionFailed))
        await rig.ticks(1, from: &state)
        #expect(rig.notifier.events.map(\.event).contains(.actionFailed))
        // With PAUSE_WINDOW_MINUTES=0 the engine plans a fresh pause at once; the provider now applies it.
        #expect(rig.requests("PUT").count == 4)
        #expect(rig.vast.instances.first?.actualStatus == "stopped")
    }

    @Test("an instance busy again after an unconfirmed pause (a user's restart) is not paused again")
    func restartBeforeStopSeen() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "30"])
        rig.vast.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/",
            response: HTTPResponse(status: 200, body: Data(#"{"success":true}"#.utf8)), times: 3)
        var state = FleetState()
        await rig.ticks(31, from: &state)
        #expect(rig.requests("PUT").count == 1)  // accepted, never applied: still listed running
        rig.runner.setHandler { _ in .success(CommandResult(status: 0, stdout: Data(Rig.busy.utf8))) }
        await rig.ticks(3, from: &state)
        #expect(rig.requests("PUT").count == 1)  // the re-check saw it busy: no second pause
        #expect(state[InstanceKey(provider: .vast, id: "123")]?.pauseCheck == nil)
        #expect(!rig.notifier.events.map(\.event).contains(.actionFailed))
    }

    @Test("an interrupted action stays open while its provider lists only part of the account")
    func reconcileNeedsWholeListing() async throws {
        let key = InstanceKey(provider: .gcp, id: "1")
        let intent = JournalRecord.intent(
            time: Date(timeIntervalSince1970: 1_800_000_000), provider: "gcp", id: key.id, name: "vm", action: .delete,
            reason: "r", dryRun: false)
        for gaps in [["zones/us-central1-b"], []] {
            let store = MemoryStateStore(journal: [intent])
            let config = try Config.parse(environment: ["GCP_PROJECT_ID": "p", "GCP_ACCESS_TOKEN": "t"])
            let daemon = Daemon(
                config: config, providers: [PartialProvider(gaps: gaps)], sampler: NoSampler(), store: store,
                notifier: RecordingNotifier(), clock: FakeClock(now: .now), logger: .silent)
            _ = await daemon.tick(state: FleetState())
            let reconciled = store.journal.filter { $0.result == JournalResult.reconciled }
            #expect(reconciled.count == (gaps.isEmpty ? 1 : 0), "gaps \(gaps)")
        }
    }

    @Test("a pause seen to take effect on the next listing is confirmed and not sent again")
    func confirmedPause() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        var state = FleetState()
        await rig.ticks(2, from: &state)
        #expect(rig.requests("PUT").count == 1)
        #expect(state[InstanceKey(provider: .vast, id: "123")]?.pauseCheck == nil)
        #expect(!rig.notifier.events.map(\.event).contains(.actionFailed))
    }

    @Test("while STATE_DIR/hold exists nothing is paused and every summary says so; removing it resumes")
    func holdFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-hold-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory + "/hold", contents: nil))
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "STATE_DIR": directory])
        let sink = CapturingSink()
        let daemon = Daemon(
            config: rig.daemon.config, providers: rig.daemon.providers, sampler: rig.daemon.sampler, store: rig.store,
            notifier: rig.notifier, clock: rig.clock, logger: Logger(level: .info, sink: sink),
            hold: HoldSwitch(stateDirectory: directory, systemPath: directory + "/no-system-hold"))
        var state = FleetState()
        for _ in 0..<3 { state = await daemon.tick(state: state).state }
        #expect(rig.requests("PUT").isEmpty)
        let summaries = sink.captured.filter { $0.contains("Cycle complete") }
        #expect(summaries.count == 3 && summaries.allSatisfy { $0.contains("hold: \(directory)/hold present") })
        try FileManager.default.removeItem(atPath: directory + "/hold")
        _ = await daemon.tick(state: state)
        #expect(rig.requests("PUT") == ["/api/v0/instances/123/"])
    }

    @Test("a pause refused with success:false is journaled as failed, notified, and retried next cycle")
    func failedPauseRetried() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        rig.vast.enqueueFault(
            method: "PUT", pathPrefix: "/api/v0/instances/",
            response: HTTPResponse(
                status: 200, body: Data(#"{"success":false,"error":"missing_billing","msg":"no credit"}"#.utf8)))
        var state = FleetState()
        await rig.ticks(1, from: &state)
        #expect(rig.store.journal.map(\.result) == ["intent", "failed"])
        #expect(rig.store.journal.last?.error?.contains("no credit") == true)
        #expect(rig.notifier.events.map(\.event) == [.actionFailed])
        #expect(rig.vast.instances.first?.actualStatus == "running")
        await rig.ticks(1, from: &state)
        #expect(rig.store.journal.map(\.result) == ["intent", "failed", "intent", "ok"])
        #expect(rig.vast.instances.first?.actualStatus == "stopped")
    }

    @Test("a provider failing every call: the cycle completes, the error is reported once, nothing is acted on")
    func providerDown() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        rig.vast.enqueueFault(
            method: "GET", pathPrefix: "/api/", response: HTTPResponse(status: 500, body: Data("oops".utf8)),
            times: 1000)
        var state = FleetState()
        let report = await rig.ticks(3, from: &state)
        #expect(report?.errors.map(\.provider) == ["vast"])
        #expect(report?.listedAccounts == 0)
        #expect(rig.requests("PUT").isEmpty)
        #expect(rig.notifier.events.map(\.event) == [.providerError])
        #expect(rig.store.saves == 3)
    }

    @Test("failed samples are never idle and notify ssh_unreachable once")
    func sshDown() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1"])
        rig.runner.setHandler { _ in .success(CommandResult(status: 255, stderr: Data("Connection refused".utf8))) }
        var state = FleetState()
        await rig.ticks(10, from: &state)
        #expect(rig.requests("PUT").isEmpty)
        // One instance, unreadable: the observer-health breaker says so, and ssh_unreachable is notified once.
        #expect(rig.notifier.events.map(\.event) == [.breakerTripped, .sshUnreachable])
    }

    @Test("a restart of the daemon keeps the idle clock: the saved state carries the streak")
    func restartKeepsClocks() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try Rig()
        var state = FleetState()
        await rig.ticks(20, from: &state)
        let store = try FileStateStore(directory: directory, logger: .silent)
        try store.save(state)
        var reloaded = try #require(try FileStateStore(directory: directory, logger: .silent).load())
        await rig.ticks(10, from: &reloaded)
        #expect(rig.requests("PUT").isEmpty)
        await rig.ticks(1, from: &reloaded)
        #expect(rig.requests("PUT") == ["/api/v0/instances/123/"])
    }
}

/// A GCE-like account that lists nothing and names the parts it could not read.
struct PartialProvider: GPUProvider, PartialListing {
    let gaps: [String]
    var name: ProviderName { .gcp }
    var account: String { "gcp:p" }
    func listInstances() async throws -> [Instance] { [] }
    func listInstancesReportingGaps() async throws -> (instances: [Instance], gaps: [String]) { ([], gaps) }
    func instance(_ instance: Instance) async throws -> Instance? { nil }
    func pause(_ instance: Instance) async throws {}
    func delete(_ instance: Instance) async throws {}
}

/// Samples nothing.
struct NoSampler: GPUSampling {
    func sample(_ instances: [Instance]) async -> [InstanceKey: SampleResult] { [:] }
}
