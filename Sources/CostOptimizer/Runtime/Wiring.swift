import CostOptimizerCore
import Foundation

/// The edges a daemon is built from. `Edges.live` holds the real adapters; tests and `demo` pass others.
public struct Edges: Sendable {
    public var http: any HTTPTransport
    public var runner: any CommandRunner
    public var clock: any WallClock
    public var logger: Logger
    public var shutdown: ShutdownSignal

    public init(
        http: any HTTPTransport, runner: any CommandRunner, clock: any WallClock, logger: Logger,
        shutdown: ShutdownSignal = ShutdownSignal()
    ) {
        self.http = http
        self.runner = runner
        self.clock = clock
        self.logger = logger
        self.shutdown = shutdown
    }

    /// URLSession, Foundation.Process, the system clock.
    public static func live(logger: Logger) -> Edges {
        Edges(http: URLSessionTransport(), runner: ProcessCommandRunner(), clock: SystemClock(), logger: logger)
    }
}

/// The composition root: builds providers, sampler, store and notifier from a configuration and edges.
public enum Wiring {
    /// One provider per configured account.
    public static func providers(config: Config, edges: Edges) -> [any GPUProvider] {
        var providers: [any GPUProvider] = config.vastAPIKeys.enumerated().map { index, key in
            VastProvider(
                apiKey: key, baseURL: config.vastAPIURL, transport: edges.http, clock: edges.clock,
                account: index == 0 ? "vast" : "vast#\(index + 1)", logger: edges.logger)
        }
        if let settings = config.tensorDock {
            providers.append(
                TensorDockProvider(settings: settings, transport: edges.http, clock: edges.clock, logger: edges.logger))
        }
        if let settings = config.gcp {
            let tokens = GCETokenSource.make(
                settings: settings, transport: edges.http, runner: edges.runner, clock: edges.clock,
                scratchDirectory: config.stateDirectory, logger: edges.logger)
            for project in settings.projects {
                providers.append(
                    GCEProvider(
                        project: project, settings: settings, tokens: tokens, transport: edges.http, clock: edges.clock,
                        logger: edges.logger))
            }
        }
        return providers
    }

    /// The ssh sampler, with `known_hosts` in the state directory and, when given, ssh's control sockets in
    /// `sshControl` (connection reuse, with `SSH_CONTROL_PERSIST` above 0).
    public static func sampler(config: Config, edges: Edges, sshControl: SSHControlDirectory? = nil) -> GPUSampler {
        GPUSampler(
            runner: edges.runner, settings: config.ssh, knownHostsPath: config.stateDirectory + "/known_hosts",
            logger: edges.logger, controlDirectory: sshControl)
    }

    /// The notifier for `WEBHOOK_URL`, or one that sends nothing.
    public static func notifier(config: Config, edges: Edges) -> any Notifier {
        guard let url = config.webhookURL else { return NoNotifier() }
        return WebhookNotifier(url: url, transport: edges.http, clock: edges.clock, logger: edges.logger)
    }

    /// The whole daemon; `sshControl` as for `sampler`.
    /// - Throws: `StateStoreError` when the state directory cannot be created.
    public static func daemon(
        config: Config, edges: Edges, store: (any StateStore)? = nil, service: any ServiceNotifier = NoServiceNotifier(),
        sshControl: SSHControlDirectory? = nil
    ) throws -> Daemon {
        Daemon(
            config: config, providers: providers(config: config, edges: edges),
            sampler: sampler(config: config, edges: edges, sshControl: sshControl),
            store: try store ?? FileStateStore(directory: config.stateDirectory, logger: edges.logger),
            notifier: notifier(config: config, edges: edges), clock: edges.clock, logger: edges.logger,
            shutdown: edges.shutdown, service: service, metrics: config.metricsFile.map(MetricsTextFile.init(path:)))
    }
}

extension GPUSampler: GPUSampling {}
