import CostOptimizer
import CostOptimizerCore
import Foundation

/// A mistake on `simulate`'s command line.
public struct SimulateUsageError: Error, Equatable, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }
}

/// `cost-optimizer simulate`: the real daemon over utilisation traces (built-in scenarios or a user's CSV) for simulated
/// days, with what it spends, what it saves, what a policy that knows the future would save, and its false pauses;
/// optionally beside the naive rule.
public enum Simulate {
    /// The parsed command line.
    public struct Options: Equatable, Sendable {
        public var days: Int?
        public var seed: UInt64 = 1
        public var scenario: String?
        public var compareNaive = false
        public var json = false
        public var traces: String?
        /// `--price`: dollars per GPU-hour for a `--traces` fleet.
        public var price = 1.0
        /// `--storage-price`: dollars per instance-hour while stopped, for a `--traces` fleet.
        public var storagePrice = 0.0
        public var help = false

        public init() {}
    }

    /// The default number of simulated days for the built-in scenarios (see docs/simulate.md: a month of cycles for all
    /// of them takes minutes; the figures are shown per 30 days).
    public static let defaultDays = 7
    /// The built-in scenarios' dollars are shown for this many days (spend over the simulated days, scaled).
    public static let monthDays = 30.0

    public static let usage = """
        Usage: cost-optimizer simulate [--days N] [--seed N] [--scenario NAME] [--compare naive] [--json]
               cost-optimizer simulate --traces FILE [--price USD_PER_GPU_HOUR] [--storage-price USD_PER_HOUR] [--days N]
                                       [--compare naive] [--json]

        Runs the real decision engine and cycle (simulated clock, in-memory Vast.ai account and nvidia-smi) over
        utilisation traces and prints, per scenario: spend without the daemon, spend with it, savings, the savings of an
        oracle that knows the future, the capture ratio (ours / oracle), pauses, deletes and false pauses.
          --days N           simulated days (default \(defaultDays); with --traces, the file's own span)
          --seed N           seed of the built-in scenarios and of the cycle-time jitter (default 1)
          --scenario NAME    one built-in scenario: \(BuiltInScenarios.names.joined(separator: ", "))
          --compare naive    also run the naive rule (point readings, 5 samples, delete 24 h after the last activity)
          --json             {"scenarios": [...]} instead of the table
          --traces FILE      your own CSV: timestamp,instance,gpu_index,utilization (ISO 8601 or epoch seconds, 0-100)
          --price USD        with --traces: dollars per GPU-hour while running (default 1.00)
          --storage-price USD  with --traces: dollars per instance-hour while stopped (default 0)
        Policy variables (PAUSE_THRESHOLD_GPU, PAUSE_WINDOW_MINUTES, MIN_SAMPLES, DELETE_THRESHOLD_HOURS, CHECK_INTERVAL,
        ...) are read from the environment as the daemon reads them. DRY_RUN is ignored: only simulated instances are
        acted on. See docs/simulate.md.
        """

    /// Parses the arguments after `simulate`.
    /// - Throws: `UsageError` naming the bad argument.
    public static func parse(_ arguments: [String]) throws(SimulateUsageError) -> Options {
        var options = Options()
        var rest = arguments[...]
        func value(_ flag: String) throws(SimulateUsageError) -> String {
            guard let value = rest.popFirst(), !value.hasPrefix("--") else {
                throw SimulateUsageError("\(flag) needs a value")
            }
            return value
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--days":
                let raw = try value(argument)
                guard let days = Int(raw), (1...366).contains(days) else {
                    throw SimulateUsageError("--days \"\(raw)\" must be a whole number from 1 to 366")
                }
                options.days = days
            case "--seed":
                let raw = try value(argument)
                guard let seed = UInt64(raw) else {
                    throw SimulateUsageError("--seed \"\(raw)\" must be a whole number ≥ 0")
                }
                options.seed = seed
            case "--scenario":
                let raw = try value(argument)
                guard BuiltInScenarios.names.contains(raw) else {
                    throw SimulateUsageError(
                        "--scenario \"\(raw)\" is not one of \(BuiltInScenarios.names.joined(separator: ", "))")
                }
                options.scenario = raw
            case "--compare":
                let raw = try value(argument)
                guard raw == "naive" else { throw SimulateUsageError("--compare \"\(raw)\": only naive is known") }
                options.compareNaive = true
            case "--json": options.json = true
            case "--traces": options.traces = try value(argument)
            case "--price", "--storage-price":
                let raw = try value(argument)
                guard let price = Double(raw), price.isFinite, price >= 0 else {
                    throw SimulateUsageError("\(argument) \"\(raw)\" must be a number of dollars ≥ 0")
                }
                if argument == "--price" { options.price = price } else { options.storagePrice = price }
            case "-h", "--help", "help": options.help = true
            default:
                throw SimulateUsageError("unknown argument \"\(argument)\"")
            }
        }
        if options.traces != nil, options.scenario != nil {
            throw SimulateUsageError("--scenario and --traces cannot be used together")
        }
        return options
    }

    /// Runs the command; returns the exit status.
    public static func main(arguments: [String], environment: [String: String]) async -> Int32 {
        let options: Options
        do { options = try parse(arguments) } catch {
            printError("cost-optimizer simulate: \(error.message)\n\(usage)")
            return ExitStatus.usage
        }
        if options.help {
            print(usage)
            return ExitStatus.ok
        }
        let config: Config
        do { config = try DaemonSimulation.config(environment: environment) } catch {
            printError("cost-optimizer simulate: \(error)")
            return ExitStatus.config
        }
        let settings = DaemonSimulation.settings(config: config, seed: options.seed)
        var scenarios: [SimulationScenario]
        var start = DaemonSimulation.defaultStart
        if let path = options.traces {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                printError("cost-optimizer simulate: cannot read \(path): \(error.localizedDescription)")
                return 66  // EX_NOINPUT
            }
            do {
                let file = try TraceFile.parse(text)
                let scenario = try scenario(
                    from: file, name: URL(fileURLWithPath: path).lastPathComponent, days: options.days,
                    price: options.price, storagePrice: options.storagePrice)
                scenarios = [scenario]
                start = Date(timeIntervalSince1970: file.start)
            } catch {
                printError("cost-optimizer simulate: \(path): \(error)")
                return 65  // EX_DATAERR
            }
        } else {
            let days = options.days ?? defaultDays
            scenarios = BuiltInScenarios.all(days: days, seed: options.seed)
            if let only = options.scenario { scenarios = scenarios.filter { $0.name == only } }
        }
        let started = ContinuousClock.now
        let results: [SimulationResult]
        do {
            results = try await run(
                scenarios, config: config, settings: settings, compareNaive: options.compareNaive, start: start)
        } catch {
            printError("cost-optimizer simulate: \(error)")
            return ExitStatus.software
        }
        let elapsed = ContinuousClock.now - started
        // Built-in scenarios are shown per 30 days (a month, as the product's savings table is); a user's traces over
        // their own period.
        let period = options.traces == nil ? monthDays : nil
        if options.json {
            print(json(results, settings: settings, periodDays: period))
        } else {
            print(
                report(
                    results, scenarios: scenarios, config: config, settings: settings, periodDays: period,
                    elapsed: elapsed))
        }
        return ExitStatus.ok
    }

    /// Runs every scenario under the daemon (and the naive rule), at most one scenario per core at once; results in
    /// scenario order, ours before naive.
    public static func run(
        _ scenarios: [SimulationScenario], config: Config, settings: SimulationSettings, compareNaive: Bool,
        start: Date = DaemonSimulation.defaultStart
    ) async throws -> [SimulationResult] {
        let width = max(1, ProcessInfo.processInfo.activeProcessorCount)
        return try await withThrowingTaskGroup(of: (Int, [SimulationResult]).self) { group in
            var next = 0
            func add() {
                guard next < scenarios.count else { return }
                let index = next
                let scenario = scenarios[index]
                next += 1
                group.addTask {
                    let ours = try await DaemonSimulation.run(scenario, config: config, settings: settings, start: start)
                    var rows = [SimulationResult.evaluate(scenario, policy: "default", histories: ours, settings: settings)]
                    if compareNaive {
                        let naive = NaivePolicy().run(scenario, settings: settings)
                        rows.append(SimulationResult.evaluate(scenario, policy: "naive", histories: naive, settings: settings))
                    }
                    return (index, rows)
                }
            }
            for _ in 0..<width { add() }
            var byIndex: [Int: [SimulationResult]] = [:]
            while let (index, rows) = try await group.next() {
                byIndex[index] = rows
                add()
            }
            return (0..<scenarios.count).flatMap { byIndex[$0] ?? [] }
        }
    }

    /// A scenario from a user's traces: one instance per CSV instance, `price` per GPU-hour, created at the file's first
    /// timestamp, over the file's span (or `days` from its start).
    /// - Throws: `TraceCSVError` when the file spans no time and no `days` was given.
    public static func scenario(from file: TraceFile, name: String, days: Int?, price: Double, storagePrice: Double)
        throws(TraceCSVError) -> SimulationScenario
    {
        let duration = days.map { Double($0) * 86_400 } ?? file.duration
        guard duration > 0 else {
            throw TraceCSVError(line: 0, "the file spans no time (its first and last timestamps are equal); add --days N")
        }
        let machines = file.instances.map { instance in
            SimulatedMachine(
                name: instance.name, gpuModel: "GPU", pricePerHour: price * Double(instance.trace.gpus.count),
                storagePerHour: storagePrice, createdAt: 0, trace: instance.trace)
        }
        return SimulationScenario(
            name: name, story: "\(machines.count) instance(s) from \(name)", machines: machines, duration: duration)
    }

    // MARK: - Output

    /// The table for people, with the settings above it and the definitions below.
    static func report(
        _ results: [SimulationResult], scenarios: [SimulationScenario], config: Config, settings: SimulationSettings,
        periodDays: Double?, elapsed: Duration
    ) -> String {
        let p = config.policy
        let simulated = results.first?.days ?? 0
        let days = simulated == simulated.rounded() ? format(simulated) : format(simulated, decimals: 2)
        let dollarsFor: String
        if let periodDays {
            dollarsFor =
                "dollars per \(format(periodDays)) days"
                + (periodDays == simulated ? "" : " (the \(days) simulated days scaled)")
        } else {
            dollarsFor = "dollars over the \(days) days of the file"
        }
        var text = """
            cost-optimizer simulate: the real daemon (engine, cycle, guards, re-check, actions) on simulated Vast.ai \
            instances, \(days) days, seed \(settings.seed); \(dollarsFor).
            Policy: pause below \(format(p.pauseThresholdGPU))% for \(format(p.pauseWindow / 60)) min \
            (\(p.minSamples) samples), delete after \(format(p.deleteThreshold / 3600)) h idle \
            (notice \(format(p.effectiveDeleteNotice / 3600)) h), a cycle every \(format(config.checkInterval)) s. \
            DRY_RUN is forced off: only simulated instances are acted on.

            """
        text += "\n" + TextTable.render(scenarios.map { ["  " + $0.name, $0.story] })
        var header = ["SCENARIO", "POLICY", "WITHOUT", "WITH", "SAVED", "ORACLE", "CAPTURE", "PAUSES", "DELETES",
                      "FALSE PAUSES"]
        let showWrong = results.contains { $0.workAfterDelete > 0 }
        if showWrong { header.append("WORK AFTER DELETE") }
        var rows = [header]
        for result in results {
            let scale = periodDays.map { result.days > 0 ? $0 / result.days : 1 } ?? 1
            var row = [
                result.scenario, result.policy, dollars(result.spendWithout * scale), dollars(result.spendWith * scale),
                format(result.savingsPercent, decimals: 1) + "%", format(result.oracleSavingsPercent, decimals: 1) + "%",
                format(result.captureRatio, decimals: 3), "\(result.pauses)", "\(result.deletes)", "\(result.falsePauses)",
            ]
            if showWrong { row.append("\(result.workAfterDelete)") }
            rows.append(row)
        }
        text += "\n" + TextTable.render(rows)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        text += """

            WITHOUT: every instance running the whole time. WITH: running until paused, storage while paused, nothing once \
            deleted; a paused instance is started again by its user the moment its trace has work (some GPU ≥ the \
            threshold). ORACLE: savings of a policy that knows the future and stops each instance for every idle \
            stretch longer than the pause window, from its first second (it never deletes). CAPTURE: our savings / the \
            oracle's (1 when it saves nothing; above 1 when a delete also saves the storage the oracle pays). FALSE \
            PAUSES: pauses after which some GPU's true mean over the pause window before was at or above the threshold.
            Simulated in \(format(seconds, decimals: 1)) s.
            """
        return text
    }

    /// `{"scenarios": [...]}`, one entry per scenario and policy. Dollars are per `periodDays` (scaled from the simulated
    /// days), or over the simulated days when it is nil; `period_days` says which, `days` how many were simulated.
    public static func json(_ results: [SimulationResult], settings: SimulationSettings, periodDays: Double? = nil)
        -> String
    {
        let entries = results.map { result in
            let scale = periodDays.map { result.days > 0 ? $0 / result.days : 1 } ?? 1
            let fields: [(String, String)] = [
                ("name", quoted(result.scenario)), ("policy", quoted(result.policy)),
                ("spend_without_usd", format(result.spendWithout * scale, decimals: 2)),
                ("spend_with_usd", format(result.spendWith * scale, decimals: 2)),
                ("savings_pct", format(result.savingsPercent, decimals: 2)),
                ("oracle_savings_pct", format(result.oracleSavingsPercent, decimals: 2)),
                ("capture_ratio", format(result.captureRatio, decimals: 4)), ("pauses", "\(result.pauses)"),
                ("deletes", "\(result.deletes)"), ("false_pauses", "\(result.falsePauses)"),
                ("work_after_delete", "\(result.workAfterDelete)"), ("days", format(result.days, decimals: 3)),
                ("period_days", format(periodDays ?? result.days, decimals: 3)),
            ]
            return "{" + fields.map { "\(quoted($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        }
        return "{\"scenarios\": [\n  " + entries.joined(separator: ",\n  ") + "\n], \"seed\": \(settings.seed)}"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    static func dollars(_ value: Double) -> String {
        let cents = Int((value * 100).rounded())
        let whole = String(cents / 100)
        var grouped = ""
        for (i, c) in whole.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { grouped.append(",") }
            grouped.append(c)
        }
        return "$" + String(grouped.reversed()) + "." + String(format: "%02d", cents % 100)
    }

    static func format(_ value: Double, decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    /// `10`, `7.5`: a setting's value in its shortest form.
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
