import CostOptimizer
import CostOptimizerCore
import Foundation
import Synchronization

/// `cost-optimizer demo`: the real daemon (HTTP client, Process-spawned ssh, engine, state files) against a
/// simulated fleet on loopback Vast.ai, TensorDock and GCE servers, for 25 simulated hours, with no configuration,
/// root or network.
public enum Demo {
    /// One simulated instance and what its GPUs do over time.
    struct Machine {
        enum Listing {
            case vast(SimulatedVastInstance)
            case tensordock(SimulatedTensorDockVM)
            case gcp(SimulatedGCEInstance)
        }
        var listing: Listing
        var story: String
        /// GPU readings at `hours` since the start; empty = nvidia-smi answers nothing (not running).
        var gpus: (_ hours: Double) -> [SyntheticGPU]

        var key: String {
            switch listing {
            case .vast(let instance): "vast/\(instance.id)"
            case .tensordock(let vm): "tensordock/\(vm.id)"
            case .gcp(let instance): "gcp/\(instance.id)"
            }
        }
        var name: String {
            switch listing {
            case .vast(let instance): instance.label ?? String(instance.id)
            case .tensordock(let vm): vm.name
            case .gcp(let instance): instance.name
            }
        }
        /// Where the fake ssh answers for it.
        var sshAddress: (host: String?, port: Int)? {
            switch listing {
            case .vast(let instance): instance.sshPort.map { (nil, $0) }
            case .tensordock(let vm): vm.sshPort.map { (nil, $0) }
            case .gcp(let instance): instance.natIP.map { ($0, 22) }
            }
        }
    }

    /// Runs the demo; returns the exit status. `--keep-state DIR` keeps the daemon's state directory (and writes
    /// `DIR/metrics.prom`) so that `STATE_DIR=DIR cost-optimizer report` shows the simulated day's ledger.
    public static func main(arguments: [String], environment: [String: String]) async -> Int32 {
        let hours = 25.0
        let interval = 300.0
        let started = Date()
        let keptState: String?
        switch keepStateArgument(arguments) {
        case .failure(let message):
            print("demo: \(message)\nUsage: cost-optimizer demo [--keep-state DIR]")
            return ExitStatus.usage
        case .success(let path):
            keptState = path
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cost-optimizer-demo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The simulated day ends now, so that `report` run right after covers it.
        let clock = SimulatedClock(
            start: Date(timeIntervalSince1970: ((Date().timeIntervalSince1970 - hours * 3600) / 60).rounded() * 60))
        let t0 = clock.start.timeIntervalSince1970
        let machines = fleet(t0: t0)
        let vast = VastSimulator(apiKey: "demo-key")
        let tensorDock = TensorDockSimulator(bearerToken: "demo-bearer", apiKey: "demo-td-key", apiToken: "demo-td-token")
        let gce = GCESimulator(acceptedTokens: ["demo-gce-token"])
        for machine in machines {
            switch machine.listing {
            case .vast(let instance): vast.add(instance)
            case .tensordock(let vm): tensorDock.add(vm)
            case .gcp(let instance): gce.add(instance)
            }
        }
        let webhook = WebhookRecorder()
        let server: LoopbackHTTPServer
        let tensorDockServer: LoopbackHTTPServer
        let gceServer: LoopbackHTTPServer
        let ssh: FakeSSHProgram
        do {
            ssh = try FakeSSHProgram(directory: directory + "/ssh")
            server = try LoopbackHTTPServer.start { request in
                request.url.path.hasPrefix("/webhook") ? await webhook.handle(request) : await vast.handle(request)
            }
            tensorDockServer = try LoopbackHTTPServer.start(handler: tensorDock.handle)
            gceServer = try LoopbackHTTPServer.start(handler: gce.handle)
        } catch {
            print("demo: cannot start the simulation: \(error)")
            return ExitStatus.software
        }
        defer {
            server.shutdown()
            tensorDockServer.shutdown()
            gceServer.shutdown()
        }

        let environment: [String: String] = [
            "VAST_API_KEY": "demo-key", "VAST_API_URL": server.baseURL.absoluteString,
            "TENSORDOCK_BEARER_TOKEN": "demo-bearer", "TENSORDOCK_API_KEY": "demo-td-key",
            "TENSORDOCK_API_TOKEN": "demo-td-token", "TENSORDOCK_API_URL": tensorDockServer.baseURL.absoluteString,
            "TENSORDOCK_V0_API_URL": tensorDockServer.baseURL.absoluteString,
            "GCP_PROJECT_ID": GCESimulator.defaultProject, "GCP_API_URL": gceServer.baseURL.absoluteString,
            "GCP_ACCESS_TOKEN": "demo-gce-token", "GCP_SSH_USER": "demo",
            "WEBHOOK_URL": server.baseURL.absoluteString + "/webhook/T000/B000/demo",
            "CHECK_INTERVAL": String(Int(interval)), "STATE_DIR": keptState ?? directory + "/state",
            "SSH_COMMAND": ssh.path, "SSH_CONCURRENCY": "8", "LOG_LEVEL": "info",
        ].merging(keptState.map { ["METRICS_FILE": $0 + "/metrics.prom"] } ?? [:]) { $1 }
        let config: Config
        do { config = try Config.parse(environment: environment) } catch {
            print("demo: \(error)")
            return ExitStatus.config
        }
        let logger = Logger(level: .info, sink: DemoLogSink(clock: clock))
        let edges = Edges(http: URLSessionTransport(), runner: ProcessCommandRunner(), clock: clock, logger: logger)
        let daemon: Daemon
        do { daemon = try Wiring.daemon(config: config, edges: edges) } catch {
            print("demo: \(error)")
            return ExitStatus.software
        }

        print(
            """
            cost-optimizer demo: simulated Vast.ai, TensorDock and Google Compute Engine fleets on loopback, \
            a fake ssh answering nvidia-smi, \(Int(hours)) simulated hours, a cycle every \(Int(interval / 60)) min.
            Defaults: pause below \(Int(config.policy.pauseThresholdGPU))% for \(Int(config.policy.pauseWindow / 60)) min \
            (\(config.policy.minSamples) samples), delete after \(Int(config.policy.deleteThreshold / 3600)) h idle, \
            protect label "\(config.policy.protectLabel)".

            """)
        var state = FleetState()
        var lastReport: CycleReport?
        let cycles = Int(hours * 3600 / interval)
        for _ in 0...cycles {
            let now = clock.now().timeIntervalSince1970
            updateFleet(machines, vast: vast, hoursSinceStart: (now - t0) / 3600, ssh: ssh)
            let report = await daemon.tick(state: state)
            state = report.state
            lastReport = report
            clock.advance(by: interval)
        }
        let journal = (try? FileStateStore(directory: config.stateDirectory, logger: .silent))?.journal() ?? []
        print(summary(machines, vast: vast, journal: journal, report: lastReport, clock: clock))
        print(ledgerLine(state.savings, hours: hours))
        print(
            "\(journal.filter { !$0.isIntent }.count) actions journaled, \(webhook.bodies.count) webhook notifications posted; "
                + String(format: "ran in %.1f s of real time.", Date().timeIntervalSince(started)))
        if let keptState {
            print(
                "State kept in \(keptState) (metrics in \(keptState)/metrics.prom); see the ledger with:\n"
                    + "  STATE_DIR=\(keptState) cost-optimizer report")
        } else {
            print(
                "Run `cost-optimizer demo --keep-state DIR` to keep the state, then "
                    + "`STATE_DIR=DIR cost-optimizer report`.")
        }
        return ExitStatus.ok
    }

    /// The ledger of the simulated day in one line.
    static func ledgerLine(_ ledger: SavingsLedger, hours: Double) -> String {
        "Ledger for the \(Int(hours)) simulated hours: \(Money.usd(ledger.spendUSD)) spent on the listed instances, "
            + "\(Money.usd(ledger.savedUSD)) saved by the pauses and deletes; now "
            + "\(Money.rate(ledger.snapshot?.runningUSDPerHour ?? 0)) running, "
            + "\(Money.rate(ledger.snapshot?.idleUSDPerHour ?? 0)) idle."
    }

    /// `--keep-state DIR` as an absolute path (nil without it), or why it cannot be used: DIR must be new or empty,
    /// so the demo never mixes its simulated ledger into a real one.
    static func keepStateArgument(_ arguments: [String]) -> Result<String?, DemoUsageError> {
        guard !arguments.isEmpty else { return .success(nil) }
        guard arguments.count == 2, arguments[0] == "--keep-state", !arguments[1].isEmpty else {
            return .failure(DemoUsageError(message: "unknown arguments \(arguments.joined(separator: " "))"))
        }
        let path = URL(fileURLWithPath: arguments[1]).standardizedFileURL.path
        if let names = try? FileManager.default.contentsOfDirectory(atPath: path), !names.isEmpty {
            return .failure(
                DemoUsageError(message: "\(path) is not empty; --keep-state needs a new or empty directory"))
        }
        return .success(path)
    }

    // MARK: - The fleet

    static func fleet(t0: Double) -> [Machine] {
        func vast(
            _ id: Int, _ label: String?, gpu: String, count: Int, price: Double, createdHoursAgo: Double,
            status: String = "running", port: Int
        ) -> SimulatedVastInstance {
            var instance = SimulatedVastInstance(id: id)
            instance.label = label
            instance.actualStatus = status
            instance.intendedStatus = status == "loading" ? "running" : status
            instance.curState = status == "stopped" ? "stopped" : "running"
            instance.gpuName = gpu
            instance.numGPUs = count
            instance.dphTotal = price
            instance.startDate = t0 - createdHoursAgo * 3600
            instance.sshHost = "127.0.0.1"
            instance.sshPort = port
            instance.geolocation = "Sweden, SE"
            return instance
        }
        func gpus(_ count: Int, _ model: String, point: Double, average: Double?, max: Double? = nil, memory: Double)
            -> [SyntheticGPU]
        {
            (0..<count).map { i in
                SyntheticGPU(
                    name: model, busID: String(format: "00000000:%02X:00.0", i + 1), point: point, average: average,
                    max: max ?? average, memoryUsedMiB: memory, memoryTotalMiB: 24564, temperature: 40)
            }
        }
        func vm(
            _ id: String, _ name: String, status: String, price: Double, createdHoursAgo: Double, port: Int
        ) -> SimulatedTensorDockVM {
            SimulatedTensorDockVM(
                id: id, name: name, status: status, gpuModel: "geforcertx4090-pcie-24gb", gpuCount: 1,
                pricePerHour: price, ipAddress: "127.0.0.1", sshPort: port,
                createdAt: Date(timeIntervalSince1970: t0 - createdHoursAgo * 3600), location: "Chubbuck, Idaho, United States")
        }
        func gceTime(hoursAgo: Double) -> String {
            Date(timeIntervalSince1970: t0 - hoursAgo * 3600).formatted(.iso8601)
        }
        return [
            Machine(
                listing: .vast(vast(
                    9_100_001, "llama-finetune", gpu: "RTX 4090", count: 4, price: 1.62, createdHoursAgo: 6, port: 40001)),
                story: "a training job, busy all day",
                gpus: { _ in gpus(4, "NVIDIA GeForce RTX 4090", point: 97, average: 96, max: 100, memory: 21000) }),
            Machine(
                listing: .vast(vast(9_100_002, "notebook", gpu: "RTX 4090", count: 1, price: 0.42, createdHoursAgo: 30, port: 40002)),
                story: "a notebook left open: memory held, GPU at 0 %",
                gpus: { _ in gpus(1, "NVIDIA GeForce RTX 4090", point: 0, average: 0, max: 1, memory: 10767) }),
            Machine(
                listing: .vast(vast(9_100_003, "inference-api", gpu: "RTX 3090", count: 1, price: 0.25, createdHoursAgo: 48, port: 40003)),
                story: "a bursty inference server: point reading 0 %, driver buffer 24 %",
                gpus: { _ in gpus(1, "NVIDIA GeForce RTX 3090", point: 0, average: 24, max: 100, memory: 9000) }),
            Machine(
                listing: .vast(vast(
                    9_100_004, "old-experiment", gpu: "A100 SXM4", count: 1, price: 1.10, createdHoursAgo: 72,
                    status: "stopped", port: 40004)),
                story: "stopped two days ago and forgotten (storage still billed)",
                gpus: { _ in [] }),
            Machine(
                listing: .vast(vast(9_100_005, "eval-keep", gpu: "H100 SXM", count: 1, price: 2.40, createdHoursAgo: 20, port: 40005)),
                story: "idle, but its label holds \"keep\"",
                gpus: { _ in gpus(1, "NVIDIA H100 80GB HBM3", point: 0, average: 1, max: 65, memory: 0) }),
            Machine(
                listing: .vast(vast(
                    9_100_006, "sd-webui", gpu: "RTX 4090", count: 1, price: 0.40, createdHoursAgo: 0.1,
                    status: "loading", port: 40006)),
                story: "just created: loading, then serving images",
                gpus: { _ in gpus(1, "NVIDIA GeForce RTX 4090", point: 55, average: 41, max: 99, memory: 8000) }),
            Machine(
                listing: .tensordock(
                    vm("3f1c2a9e-td01", "lora-sweep", status: "Stopped", price: 0.38, createdHoursAgo: 50, port: 40011)),
                story: "stopped with its GPU reserved: still billed in full",
                gpus: { _ in [] }),
            Machine(
                listing: .tensordock(
                    vm("3f1c2a9e-td02", "jupyter", status: "Running", price: 0.38, createdHoursAgo: 3, port: 40012)),
                story: "a Jupyter server nobody came back to",
                gpus: { _ in gpus(1, "NVIDIA GeForce RTX 4090", point: 0, average: 0, max: 2, memory: 2100) }),
            Machine(
                listing: .gcp(
                    SimulatedGCEInstance(
                        id: "7300000000000000001", name: "a100-eval", zone: "us-central1-a", machineType: "a2-highgpu-1g",
                        accelerators: [], natIP: "127.0.0.21", creationTimestamp: gceTime(hoursAgo: 30),
                        lastStartTimestamp: gceTime(hoursAgo: 29))),
                story: "an evaluation run that finished overnight",
                gpus: { _ in gpus(1, "NVIDIA A100-SXM4-40GB", point: 0, average: 0, max: 0, memory: 0) }),
            Machine(
                listing: .gcp(
                    SimulatedGCEInstance(
                        id: "7300000000000000002", name: "l4-private", zone: "europe-west4-a", machineType: "g2-standard-8",
                        accelerators: [], natIP: nil, creationTimestamp: gceTime(hoursAgo: 10),
                        lastStartTimestamp: gceTime(hoursAgo: 10))),
                story: "an L4 with no external IP: ssh cannot reach it",
                gpus: { _ in [] }),
            Machine(
                listing: .gcp(
                    SimulatedGCEInstance(
                        id: "7300000000000000003", name: "web-frontend", zone: "us-central1-b", machineType: "e2-medium",
                        accelerators: [], natIP: "127.0.0.23", creationTimestamp: gceTime(hoursAgo: 400))),
                story: "a web server without a GPU",
                gpus: { _ in [] }),
        ]
    }

    /// Moves the simulated world to `hoursSinceStart`: statuses change and each ssh answer file is rewritten.
    static func updateFleet(_ machines: [Machine], vast: VastSimulator, hoursSinceStart: Double, ssh: FakeSSHProgram) {
        if hoursSinceStart >= 0.25 {
            vast.update(id: 9_100_006) { instance in
                if instance.actualStatus == "loading" { instance.actualStatus = "running" }
            }
        }
        for machine in machines {
            guard let address = machine.sshAddress else { continue }
            let gpus = machine.gpus(hoursSinceStart)
            ssh.answer(port: address.port, host: address.host, with: gpus.isEmpty ? nil : SyntheticNvidiaSmi.output(gpus))
        }
    }

    // MARK: - The closing table

    static func summary(
        _ machines: [Machine], vast: VastSimulator, journal: [JournalRecord], report: CycleReport?,
        clock: SimulatedClock
    ) -> String {
        var rows = [["INSTANCE", "WHAT IT WAS", "OUTCOME", "WHY"]]
        let finalDecisions = Dictionary(
            (report?.plan.decisions ?? []).map { ($0.instance.key.description, $0.decision) },
            uniquingKeysWith: { a, _ in a })
        for machine in machines {
            let id = machine.key
            let actions = journal.filter { "\($0.provider)/\($0.id)" == id && $0.result == "ok" }
            let outcome: String
            let why: String
            outcome =
                actions.isEmpty
                ? "left alone"
                : actions.map { "\($0.action.rawValue)d at \(clock.elapsedStamp($0.time))" }.joined(separator: ", ")
            // Where the instance still exists, why it stands as it does now; else why it was last acted on.
            why = finalDecisions[id]?.reason ?? actions.last?.reason ?? "-"
            rows.append(["\(id) \(machine.name)", machine.story, outcome, why])
        }
        return "\n" + TextTable.render(rows)
    }
}

/// A mistake in the demo's arguments.
struct DemoUsageError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Prints log lines with the simulated time, so the story reads in order.
struct DemoLogSink: LogSink {
    let clock: SimulatedClock

    func write(level: LogLevel, message: String) {
        let stamp = clock.elapsedStamp()
        // A quiet cycle is shown once a simulated hour; every other line is shown.
        if message.hasPrefix("Cycle complete") && !message.contains("action") && !stamp.hasSuffix(":00") { return }
        let tag = level == .info ? "" : level.rawValue.uppercased() + " "
        print("\(stamp) \(tag)\(message)")
    }
}
