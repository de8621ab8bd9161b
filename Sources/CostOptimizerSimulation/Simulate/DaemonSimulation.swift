import CostOptimizer
import CostOptimizerCore
import Foundation
import Synchronization

/// Runs the real daemon (`Wiring.daemon`, `Daemon.tick`: listing, sampling, the engine, the guards, the re-check and
/// the actions) over a scenario: an in-memory Vast account (a `VastSimulator` answering the daemon's `HTTPTransport`),
/// an in-memory nvidia-smi answering the sampler's ssh argv from the traces, a memory state store and a simulated
/// clock. The simulated user starts a stopped instance again at the exact moment its trace says work resumes.
public enum DaemonSimulation {
    /// Where the simulated instances live on the simulated clock: 2026-03-02 00:00:00 UTC, a Monday.
    public static let defaultStart = Date(timeIntervalSince1970: 1_772_409_600)
    /// The state directory the simulated daemon is given: never created, written or read (the state is in memory, and
    /// the hold files are looked for only here), so nothing of a real daemon's state is touched.
    static let sandbox = "/nonexistent/cost-optimizer-simulate"

    /// The configuration the simulated daemon runs with: every policy variable from `environment` (as the daemon reads
    /// them), the simulation's own provider endpoint and state directory, and `DRY_RUN` forced off (it acts on
    /// simulated instances only).
    /// - Throws: `ConfigError` for a bad policy variable.
    public static func config(environment: [String: String]) throws(ConfigError) -> Config {
        var env: [String: String] = [:]
        for name in policyVariables { env[name] = environment[name] }
        env["VAST_API_KEY"] = "simulated-key"
        env["VAST_API_URL"] = "https://vast.simulated"
        env["STATE_DIR"] = sandbox
        env["DRY_RUN"] = "false"
        return try Config.parse(environment: env)
    }

    /// The variables read from the environment: everything that shapes a decision or a breaker.
    public static let policyVariables = [
        "PAUSE_THRESHOLD_GPU", "PAUSE_WINDOW_MINUTES", "MIN_SAMPLES", "DELETE_THRESHOLD_HOURS", "MIN_INSTANCE_AGE_HOURS",
        "CHECK_INTERVAL", "PROTECTED_INSTANCES", "PROTECT_LABEL", "MAX_PAUSES_PER_CYCLE", "MAX_DELETES_PER_CYCLE",
        "MAX_ACTION_FRACTION", "DELETE_NOTICE_HOURS",
    ]

    /// The simulation settings that follow from a configuration.
    public static func settings(config: Config, seed: UInt64) -> SimulationSettings {
        SimulationSettings(
            threshold: config.policy.pauseThresholdGPU, window: config.policy.pauseWindow,
            interval: config.checkInterval, seed: seed)
    }

    /// Runs the daemon over the scenario; one history per machine, in the scenario's order.
    public static func run(
        _ scenario: SimulationScenario, config: Config, settings: SimulationSettings, start: Date = defaultStart
    ) async throws -> [MachineHistory] {
        let world = SimulatedWorld(scenario: scenario, settings: settings, start: start)
        let store = MemoryStateStore()
        let edges = Edges(http: world, runner: world, clock: world.clock, logger: .silent)
        func makeDaemon() throws -> Daemon {
            let base = try Wiring.daemon(config: config, edges: edges, store: store)
            return Daemon(
                config: config, providers: base.providers, sampler: base.sampler, store: store, notifier: base.notifier,
                clock: world.clock, logger: .silent,
                hold: HoldSwitch(stateDirectory: sandbox, systemPath: sandbox + "/hold"))
        }
        var daemon = try makeDaemon()
        var state = try daemon.loadState()
        var previous: Double?
        for t in settings.cycleTimes(for: scenario) {
            if let previous, scenario.daemonDown.contains(where: { $0.start > previous && $0.start <= t }) {
                // Restarted: a new process with the same state directory.
                daemon = try makeDaemon()
                state = try daemon.loadState()
            }
            previous = t
            world.advance(to: t)
            let report = await daemon.tick(state: state)
            state = report.state
        }
        return world.finish()
    }
}

/// The simulated side of one scenario: the Vast account (as the daemon's `HTTPTransport`, recording nothing, so a month
/// of cycles does not pile up requests), the clock, the ssh answers (as its `CommandRunner`) and each machine's history.
final class SimulatedWorld: HTTPTransport, CommandRunner, Sendable {
    private struct State {
        var histories: [MachineHistory]
        /// When each stopped machine's user starts it again.
        var restarts: [Int: Double] = [:]
        /// The last listing page the simulator served, with the fleet it described and the URL asked.
        var listing: (fleet: [SimulatedVastInstance], url: URL, response: HTTPResponse)?
        /// Each machine's last probe output, with the readings it showed (most cycles repeat the last readings).
        var probes: [Int: (readings: [SyntheticGPU], output: Data)] = [:]
    }

    let scenario: SimulationScenario
    let settings: SimulationSettings
    let clock: SimulatedClock
    let vast = VastSimulator(apiKey: "simulated-key")
    private let state: Mutex<State>
    static let firstID = 10_000
    static let firstPort = 20_000

    init(scenario: SimulationScenario, settings: SimulationSettings, start: Date) {
        self.scenario = scenario
        self.settings = settings
        clock = SimulatedClock(start: start)
        state = Mutex(State(histories: Array(repeating: MachineHistory(), count: scenario.machines.count)))
        for (index, machine) in scenario.machines.enumerated() {
            vast.add(
                SimulatedVastInstance(
                    id: Self.firstID + index, label: machine.name, gpuName: machine.gpuModel,
                    numGPUs: machine.trace.gpus.count, dphTotal: machine.pricePerHour,
                    startDate: start.timeIntervalSince1970 + machine.createdAt, sshHost: "ssh.vast.simulated",
                    sshPort: Self.firstPort + index))
        }
    }

    /// Seconds since the start of the simulation.
    var now: Double { clock.now().timeIntervalSince(clock.start) }

    /// Moves the clock to `t` (never back: a cycle that slept past it stays where it is) and lets every user whose
    /// work resumed by then start their instance.
    func advance(to t: Double) {
        if t > now { clock.advance(by: t - now) }
        let current = now
        let due = state.withLock { state in
            let due = state.restarts.filter { $0.value <= current }
            for (index, at) in due {
                state.restarts[index] = nil
                state.histories[index].restarted(at: at)
            }
            return due
        }
        for index in due.keys {
            vast.update(id: Self.firstID + index) {
                $0.actualStatus = "running"
                $0.intendedStatus = "running"
                $0.curState = "running"
            }
        }
    }

    /// The histories, with the restarts due before the end applied.
    func finish() -> [MachineHistory] {
        state.withLock { state in
            for (index, at) in state.restarts where at < scenario.duration { state.histories[index].restarted(at: at) }
            state.restarts = [:]
            return state.histories
        }
    }

    /// The Vast API, recording when a stop or a destroy took effect.
    ///
    /// The simulator serialises its listing with sorted keys, which costs more than the whole rest of a cycle; a month
    /// of cycles lists an unchanged fleet tens of thousands of times. So a listing request identical to the last one,
    /// while the fleet is unchanged, gets the simulator's own earlier answer (byte for byte what it would answer).
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let isListing = request.method == "GET" && request.url.path.hasPrefix("/api/v1/instances")
        let fleet = isListing ? vast.instances : []
        if isListing, let cached = state.withLock({ $0.listing }), cached.url == request.url, cached.fleet == fleet {
            return cached.response
        }
        let before = vast.appliedActions.count
        let response = await vast.handle(request)
        if isListing { state.withLock { $0.listing = (fleet, request.url, response) } }
        let applied = vast.appliedActions.dropFirst(before)
        guard !applied.isEmpty else { return response }
        let t = now
        state.withLock { state in
            for action in applied {
                let parts = action.split(separator: " ")
                guard parts.count == 2, let id = Int(parts[1]) else { continue }
                let index = id - Self.firstID
                guard scenario.machines.indices.contains(index) else { continue }
                switch parts[0] {
                case "stop" where state.histories[index].status == .running:
                    state.histories[index].paused(at: t)
                    state.restarts[index] = scenario.machines[index].trace.nextBusy(threshold: settings.threshold, from: t)
                case "destroy":
                    state.histories[index].deleted(at: t)
                    state.restarts[index] = nil
                default:
                    break
                }
            }
        }
        return response
    }

    /// Answers the sampler's ssh call for the machine at the command's port: the probe's output from the trace, or
    /// ssh's "Connection refused" when the instance is not running or its ssh is scripted down.
    func run(_ command: Command) async throws -> CommandResult {
        guard let flag = command.arguments.firstIndex(of: "-p"), flag + 1 < command.arguments.count,
            let port = Int(command.arguments[flag + 1])
        else { return .sshFailure("ssh: Could not resolve hostname: no such simulated host") }
        let index = port - Self.firstPort
        guard scenario.machines.indices.contains(index) else {
            return .sshFailure("ssh: connect to host ssh.vast.simulated port \(port): Connection refused")
        }
        let machine = scenario.machines[index]
        let t = now
        guard vast.instance(id: Self.firstID + index)?.actualStatus == "running", !machine.sshFails(at: t) else {
            return .sshFailure("ssh: connect to host ssh.vast.simulated port \(port): Connection refused")
        }
        let readings = Self.readings(machine, at: t)
        if let cached = state.withLock({ $0.probes[index] }), cached.readings == readings {
            return CommandResult(status: 0, stdout: cached.output)
        }
        let output = Data(SyntheticNvidiaSmi.output(readings).utf8)
        state.withLock { $0.probes[index] = (readings, output) }
        return CommandResult(status: 0, stdout: output)
    }

    /// The driver's sample buffer covers the last 14 s: its Avg is the trace's true mean over them and its Max the
    /// highest value; the point reading is the value at `t`. nvidia-smi prints whole percents.
    static let bufferSeconds = 14.0

    static func readings(_ machine: SimulatedMachine, at t: Double) -> [SyntheticGPU] {
        machine.trace.gpus.enumerated().map { index, gpu in
            SyntheticGPU(
                name: machine.gpuModel, busID: nil, point: gpu.value(at: t).rounded(),
                average: gpu.mean(from: t - bufferSeconds, to: t).rounded(),
                max: gpu.maximum(from: t - bufferSeconds, to: t).rounded(), memoryUsedMiB: gpu.memoryUsedMiB.rounded(),
                memoryTotalMiB: 81_920, temperature: 40)
        }
    }
}
