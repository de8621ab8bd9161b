import CostOptimizerCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses, from sysexits.h where one fits.
public enum ExitStatus {
    public static let ok: Int32 = 0
    /// `--run-once` or `status` could list no provider at all.
    public static let noProviderListed: Int32 = 1
    /// EX_USAGE: unknown command or flag.
    public static let usage: Int32 = 64
    /// EX_SOFTWARE: an unexpected internal failure (the state directory, say).
    public static let software: Int32 = 70
    /// EX_TEMPFAIL: another daemon holds the state directory's lock; systemd may retry within its start limit.
    public static let locked: Int32 = 75
    /// EX_CONFIG: systemd's `RestartPreventExitStatus=78` stops a restart loop on it.
    public static let config: Int32 = 78
}

/// The parsed command line.
public struct Invocation: Equatable, Sendable {
    public enum Command: String, Sendable {
        case run, status, report, checkConfig = "check-config", demo, simulate, help, version
    }
    public var command: Command
    public var runOnce: Bool
    public var dryRun: Bool
    public var json: Bool
    /// `report --since`; nil when not given.
    public var since: ReportWindow?

    public init(
        command: Command, runOnce: Bool = false, dryRun: Bool = false, json: Bool = false, since: ReportWindow? = nil
    ) {
        self.command = command
        self.runOnce = runOnce
        self.dryRun = dryRun
        self.json = json
        self.since = since
    }

    /// Parses the arguments after the program name.
    /// - Throws: a message for the usage error.
    public static func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        var invocation = Invocation(command: .run)
        var sawCommand = false
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "--since":
                guard let value = remaining.popFirst() else {
                    throw UsageError(message: "--since needs a value such as 30d")
                }
                invocation.since = try ReportWindow.parse(value)
            case _ where argument.hasPrefix("--since="):
                invocation.since = try ReportWindow.parse(String(argument.dropFirst("--since=".count)))
            case "--run-once": invocation.runOnce = true
            case "--dry-run": invocation.dryRun = true
            case "--json": invocation.json = true
            case "-h", "--help", "help": invocation.command = .help
            case "--version", "version": invocation.command = .version
            default:
                guard !sawCommand, !argument.hasPrefix("-"), let command = Command(rawValue: argument) else {
                    throw UsageError(message: "unknown argument \"\(argument)\"")
                }
                if invocation.command != .help && invocation.command != .version { invocation.command = command }
                sawCommand = true
            }
        }
        if invocation.since != nil && invocation.command != .report && invocation.command != .help {
            throw UsageError(message: "--since goes with report only")
        }
        return invocation
    }
}

/// A command-line mistake.
public struct UsageError: Error, Equatable {
    public var message: String
}

/// `cost-optimizer` and its subcommands. `main` calls `CommandLineTool.main`; `demo` is routed to the simulation.
public enum CommandLineTool {
    public static let version = "0.1.0"

    public static let usage = """
        Usage: cost-optimizer [run] [--run-once] [--dry-run]
               cost-optimizer status [--json] | report [--since 30d] [--json] | check-config
               cost-optimizer demo [--keep-state DIR] | simulate [--help] | --help | --version

        Pauses GPU instances that stay idle and deletes ones idle for a day (Vast.ai, TensorDock, Google Compute Engine).
          run            the daemon: a cycle every CHECK_INTERVAL seconds until SIGTERM (the default)
          --run-once     one cycle, then exit (0 when it ran, 1 when no provider could be listed)
          --dry-run      decide and log, never pause or delete (same as DRY_RUN=true)
          status         one listing and one metrics pass, no action: every instance and the decision now
          report         spend observed, savings per provider and instance, pauses and deletes, what burns now;
                         reads STATE_DIR only (--since Nd or Nh, default 30d; whole UTC days)
          check-config   print the effective configuration (secrets redacted) and test each provider
          demo           run the real daemon against simulated fleets for a simulated day
          simulate       the real daemon over utilisation traces: savings, oracle, false pauses (see simulate --help)
        Configuration is read from the environment; see docs/configuration.md. Exit 78 on a configuration error.
        """

    /// Runs a command line; returns the exit status.
    public static func main(arguments: [String], environment: [String: String]) async -> Int32 {
        let invocation: Invocation
        do { invocation = try Invocation.parse(arguments) } catch {
            printError("cost-optimizer: \(error.message)\n\(usage)")
            return ExitStatus.usage
        }
        switch invocation.command {
        case .help:
            print(usage)
            return ExitStatus.ok
        case .version:
            print("cost-optimizer \(version)")
            return ExitStatus.ok
        case .demo, .simulate:
            printError("cost-optimizer: \(invocation.command.rawValue) is provided by the cost-optimizer executable")
            return ExitStatus.usage
        case .report:
            return report(environment: environment, window: invocation.since ?? .default, json: invocation.json)
        case .run, .status, .checkConfig:
            break
        }
        let config: Config
        do {
            var environment = try Secrets.resolve(environment)
            if invocation.dryRun { environment["DRY_RUN"] = "true" }
            // systemd's LoadCredential=ssh_key is used when no SSH_KEY_PATH is set.
            if environment["SSH_KEY_PATH"]?.isEmpty ?? true, let credentials = environment["CREDENTIALS_DIRECTORY"],
                FileManager.default.fileExists(atPath: credentials + "/ssh_key")
            {
                environment["SSH_KEY_PATH"] = credentials + "/ssh_key"
            }
            config = try Config.parse(environment: environment)
            try checkFiles(config, environment: environment)
        } catch {
            printError("cost-optimizer: \(error)")
            return ExitStatus.config
        }
        let logger = Logger(level: config.logLevel, sink: StandardErrorLogSink(environment: environment))
        umask(0o077)
        let edges = Edges.live(logger: logger)
        switch invocation.command {
        case .status:
            return await status(config: config, edges: edges, json: invocation.json)
        case .checkConfig:
            return await checkConfig(config: config, edges: edges)
        default:
            let service: any ServiceNotifier
            do {
                service = try SystemdNotifier(environment: environment, logger: logger) ?? NoServiceNotifier()
            } catch {
                printError("cost-optimizer: \(error)")
                return ExitStatus.config
            }
            return await run(config: config, edges: edges, once: invocation.runOnce, service: service)
        }
    }

    /// `report`: reads `STATE_DIR` (never writes, needs no provider) and prints; returns 0, 78 on a bad setting, 70
    /// when the state directory exists but cannot be read.
    public static func report(environment: [String: String], window: ReportWindow, json: Bool, now: Date = Date())
        -> Int32
    {
        let result = reportOutput(environment: environment, window: window, json: json, now: now)
        if let error = result.error { printError(error) }
        if let text = result.text { print(text, terminator: json ? "\n" : "") }
        return result.status
    }

    /// What `report` prints (the report, or the error line) and its exit status.
    public static func reportOutput(environment: [String: String], window: ReportWindow, json: Bool, now: Date)
        -> (status: Int32, text: String?, error: String?)
    {
        let config: Config
        do { config = try Config.parse(environment: environment, requireProvider: false) } catch {
            return (ExitStatus.config, nil, "cost-optimizer: \(error)")
        }
        let files: (state: FleetState?, journal: [JournalRecord], note: String?)
        do { files = try ReportFiles.load(directory: config.stateDirectory) } catch {
            return (ExitStatus.software, nil, "cost-optimizer: \(error)")
        }
        let report = SavingsReport(
            state: files.state, journal: files.journal, window: window, now: now,
            stateDirectory: config.stateDirectory, note: files.note)
        return (ExitStatus.ok, json ? report.json() : report.text(), nil)
    }

    /// The checks `Config.parse` cannot make, being pure: the ssh key is readable and the ssh program exists.
    /// - Throws: `ConfigError` naming the variable and the path.
    public static func checkFiles(_ config: Config, environment: [String: String]) throws(ConfigError) {
        if let key = config.ssh.keyPath, !FileManager.default.isReadableFile(atPath: key) {
            throw ConfigError.invalid(variable: "SSH_KEY_PATH", value: key, expected: "a readable private key file")
        }
        let command = config.ssh.command
        let found: Bool
        if command.contains("/") {
            found = FileManager.default.isExecutableFile(atPath: command)
        } else {
            let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            found = path.split(separator: ":").contains {
                FileManager.default.isExecutableFile(atPath: "\($0)/\(command)")
            }
        }
        guard found else {
            throw ConfigError.invalid(
                variable: "SSH_COMMAND", value: command, expected: "an executable path or a program on PATH")
        }
        if let metrics = config.metricsFile {
            let directory = (metrics as NSString).deletingLastPathComponent
            guard access(directory, W_OK | X_OK) == 0 else {
                throw ConfigError.invalid(
                    variable: "METRICS_FILE", value: metrics,
                    expected: "in a directory the daemon can write (\(String(cString: strerror(errno)))); under "
                        + "systemd allow it with ReadWritePaths= in a drop-in")
            }
        }
    }

    /// The daemon loop, or one cycle.
    public static func run(
        config: Config, edges: Edges, once: Bool, service: any ServiceNotifier = NoServiceNotifier()
    ) async -> Int32 {
        // One daemon per STATE_DIR, taken before anything reads or writes there; held until this returns.
        let lock: StateLock
        do { lock = try StateLock(directory: config.stateDirectory) } catch {
            printError("cost-optimizer: \(error)")
            return ExitStatus.locked
        }
        defer { lock.release() }
        let sshControl = sshControlDirectory(config: config, logger: edges.logger)
        let daemon: Daemon
        do { daemon = try Wiring.daemon(config: config, edges: edges, service: service, sshControl: sshControl) } catch {
            edges.logger.error("Cannot start: \(error)")
            try? sshControl.map { try FileManager.default.removeItem(atPath: $0.path) }
            return ExitStatus.software
        }
        if once {
            let state: FleetState
            do { state = try daemon.loadState() } catch {
                edges.logger.error("Cannot start: \(error)")
                await daemon.sampler.close()
                return ExitStatus.software
            }
            let report = await daemon.tick(state: state)
            await daemon.sampler.close()
            return report.listedAccounts == 0 ? ExitStatus.noProviderListed : ExitStatus.ok
        }
        edges.shutdown.installHandlers()
        do { try await daemon.run() } catch {
            edges.logger.error("Daemon failed: \(error)")
            await daemon.sampler.close()
            return ExitStatus.software
        }
        return ExitStatus.ok
    }

    /// A fresh private directory for ssh's control sockets when `SSH_CONTROL_PERSIST` is above 0; nil (and a
    /// warning) when none can be made: every sample then opens its own connection.
    static func sshControlDirectory(config: Config, logger: Logger) -> SSHControlDirectory? {
        guard config.ssh.controlPersist > 0 else { return nil }
        do {
            let directory = try SSHControlDirectory.create(environment: ProcessInfo.processInfo.environment)
            logger.debug(
                "ssh connection reuse: control sockets in \(directory.path), masters kept \(config.ssh.controlPersist) s")
            return directory
        } catch {
            logger.warning("ssh connection reuse off: \(error)")
            return nil
        }
    }

    /// One listing and one metrics pass against the saved state; nothing is acted on and nothing is saved.
    public static func status(config: Config, edges: Edges, json: Bool) async -> Int32 {
        let report = await statusReport(config: config, edges: edges)
        print(json ? report.json() : report.table(), terminator: json ? "\n" : "")
        let accounts = Wiring.providers(config: config, edges: edges).map(\.account)
        let failed = Set(report.errors.map(\.provider))
        return !accounts.isEmpty && accounts.allSatisfy(failed.contains) ? ExitStatus.noProviderListed : ExitStatus.ok
    }

    /// Builds the status report (shared by `status` and tests).
    public static func statusReport(config: Config, edges: Edges) async -> StatusReport {
        var state = FleetState()
        if FileManager.default.fileExists(atPath: config.stateDirectory + "/state.json"),
            let store = try? FileStateStore(directory: config.stateDirectory, logger: edges.logger)
        {
            state = (try? store.load()) ?? FleetState()
        }
        let daemon = Daemon(
            config: config, providers: Wiring.providers(config: config, edges: edges),
            sampler: Wiring.sampler(config: config, edges: edges), store: ReadOnlyStore(),
            notifier: NoNotifier(), clock: edges.clock, logger: edges.logger, shutdown: edges.shutdown)
        let listing = await daemon.list()
        let sampled = listing.instances.filter { $0.state == .running && $0.managed && $0.ssh != nil }
        let samples = await daemon.sampler.sample(sampled)
        let observations = listing.instances.map { Observation(instance: $0, sample: samples[$0.key]) }
        let plan = DecisionEngine(policy: config.policy).plan(
            state: state, observations: observations, now: edges.clock.now())
        return StatusReport(plan: plan, samples: samples, errors: listing.allErrors)
    }

    /// Prints the configuration with secrets redacted, then lists each account once.
    public static func checkConfig(config: Config, edges: Edges) async -> Int32 {
        print(describe(config))
        var failed = false
        for provider in Wiring.providers(config: config, edges: edges) {
            do {
                let instances = try await provider.listInstances()
                print("\(provider.account): ok (\(instances.count) instances)")
            } catch {
                failed = true
                print("\(provider.account): error: \(error)")
            }
        }
        return failed ? ExitStatus.noProviderListed : ExitStatus.ok
    }

    /// The effective configuration, one `NAME=value` per line, secrets redacted.
    public static func describe(_ config: Config) -> String {
        let p = config.policy
        let webhook = config.webhookURL.flatMap { URL(string: $0.value) }.map {
            "\($0.scheme ?? "https")://\($0.host ?? "")/<redacted>"
        }
        let lines: [(String, String)] = [
            ("PAUSE_THRESHOLD_GPU", number(p.pauseThresholdGPU)), ("PAUSE_WINDOW_MINUTES", number(p.pauseWindow / 60)),
            ("MIN_SAMPLES", "\(p.minSamples)"), ("DELETE_THRESHOLD_HOURS", number(p.deleteThreshold / 3600)),
            ("MIN_INSTANCE_AGE_HOURS", number(p.minInstanceAge / 3600)), ("CHECK_INTERVAL", number(config.checkInterval)),
            ("PROTECTED_INSTANCES", p.protectedInstances.sorted().joined(separator: ",")),
            ("PROTECT_LABEL", p.protectLabel), ("DRY_RUN", "\(config.dryRun)"),
            ("VAST_API_KEY", config.vastAPIKeys.isEmpty ? "" : "<redacted: \(config.vastAPIKeys.count) key(s)>"),
            ("VAST_API_URL", config.vastAPIURL.absoluteString), ("WEBHOOK_URL", webhook ?? ""),
            ("SSH_KEY_PATH", config.ssh.keyPath ?? ""), ("SSH_COMMAND", config.ssh.command),
            ("SSH_CONNECT_TIMEOUT", "\(config.ssh.connectTimeout)"), ("SSH_CONCURRENCY", "\(config.ssh.concurrency)"),
            ("SSH_CONTROL_PERSIST", "\(config.ssh.controlPersist)"),
            ("STATE_DIR", config.stateDirectory), ("LOG_LEVEL", config.logLevel.rawValue),
            ("MAX_PAUSES_PER_CYCLE", "\(config.limits.maxPausesPerCycle)"),
            ("MAX_DELETES_PER_CYCLE", "\(config.limits.maxDeletesPerCycle)"),
            ("MAX_ACTION_FRACTION", number(config.limits.maxActionFraction)),
            ("DELETE_NOTICE_HOURS", number(p.deleteNotice / 3600)),
            ("METRICS_FILE", config.metricsFile ?? ""), ("DIGEST_HOUR", config.digestHour.map(String.init) ?? ""),
        ]
        let td = config.tensorDock
        let gcp = config.gcp
        func redacted(_ secret: Secret?) -> String { secret == nil ? "" : "<redacted>" }
        let providers: [(String, String)] = [
            ("TENSORDOCK_API_KEY", redacted(td?.apiKey)), ("TENSORDOCK_API_TOKEN", redacted(td?.apiToken)),
            ("TENSORDOCK_BEARER_TOKEN", redacted(td?.bearerToken)),
            ("TENSORDOCK_API_URL", td?.apiURL.absoluteString ?? ""),
            ("TENSORDOCK_V0_API_URL", td?.v0APIURL.absoluteString ?? ""), ("TENSORDOCK_SSH_USER", td?.sshUser ?? ""),
            ("GCP_PROJECT_ID", gcp?.projects.joined(separator: ",") ?? ""), ("GCP_ZONE", gcp?.zone ?? ""),
            ("GCP_SSH_USER", gcp?.sshUser ?? ""), ("GCP_API_URL", gcp?.apiURL.absoluteString ?? ""),
            ("GCP_ACCESS_TOKEN", redacted(gcp?.accessToken)),
            ("GOOGLE_APPLICATION_CREDENTIALS", gcp?.credentialsFile ?? ""),
            ("GCE_METADATA_HOST", gcp?.metadataHost ?? ""),
            (
                "GCP_PRICE_OVERRIDES",
                (gcp?.priceOverrides ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\(number($0.value))" }
                    .joined(separator: ",")
            ),
        ]
        return (lines + providers).map { "\($0.0)=\($0.1)" }.joined(separator: "\n")
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// A store that saves nothing: `status` must not change the daemon's clocks.
struct ReadOnlyStore: StateStore {
    func load() throws -> FleetState? { nil }
    func save(_ state: FleetState) throws {}
    func append(_ record: JournalRecord) throws {}
    func unresolvedIntents() throws -> [JournalRecord] { [] }
}
