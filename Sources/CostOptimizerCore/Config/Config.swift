#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How metrics are collected over ssh (`SSH_*`).
public struct SSHSettings: Equatable, Sendable {
    /// The ssh program: a path, or a name looked up on `PATH`.
    public var command: String
    /// The private key given to ssh as `IdentityFile`; nil lets ssh use its defaults.
    public var keyPath: String?
    /// `ConnectTimeout` in seconds; the daemon's own deadline for one call is derived from it.
    public var connectTimeout: Int
    /// At most this many ssh calls at once.
    public var concurrency: Int
    /// `SSH_CONTROL_PERSIST`: seconds an idle ssh master connection is kept for the next sample of the same instance
    /// (`ControlPersist`); 0 opens a new connection for every sample.
    public var controlPersist: Int

    public init(
        command: String = "ssh", keyPath: String? = nil, connectTimeout: Int = 10, concurrency: Int = 16,
        controlPersist: Int = 0
    ) {
        self.command = command
        self.keyPath = keyPath
        self.connectTimeout = connectTimeout
        self.concurrency = concurrency
        self.controlPersist = controlPersist
    }
}

/// The whole configuration, parsed and validated from the environment.
public struct Config: Equatable, Sendable {
    public var policy: Policy
    /// The per-cycle breakers (`MAX_PAUSES_PER_CYCLE`, `MAX_DELETES_PER_CYCLE`, `MAX_ACTION_FRACTION`).
    public var limits: Limits
    /// Seconds between cycles (`CHECK_INTERVAL`).
    public var checkInterval: Double
    /// Decide and log, never call a mutating API.
    public var dryRun: Bool
    /// One key per Vast.ai account.
    public var vastAPIKeys: [Secret]
    /// scheme://host[:port] of the Vast.ai API.
    public var vastAPIURL: URL
    /// Where notifications are POSTed; nil sends none.
    public var webhookURL: Secret?
    /// TensorDock, when `TENSORDOCK_BEARER_TOKEN` or the `TENSORDOCK_API_KEY`/`TENSORDOCK_API_TOKEN` pair is set.
    public var tensorDock: TensorDockSettings?
    /// Google Compute Engine, when `GCP_PROJECT_ID` is set.
    public var gcp: GCPSettings?
    public var ssh: SSHSettings
    /// Where `state.json`, `actions.jsonl` and `known_hosts` live.
    public var stateDirectory: String
    public var logLevel: LogLevel
    /// Where each cycle writes the node_exporter textfile (`METRICS_FILE`); nil writes none.
    public var metricsFile: String?
    /// The local hour (0–23) of the daily `digest` webhook event (`DIGEST_HOUR`); nil sends none.
    public var digestHour: Int?

    public init(
        policy: Policy = .defaults, limits: Limits = .defaults, checkInterval: Double = 60, dryRun: Bool = false,
        vastAPIKeys: [Secret] = [],
        vastAPIURL: URL = URL(string: "https://console.vast.ai")!, webhookURL: Secret? = nil,
        ssh: SSHSettings = SSHSettings(), stateDirectory: String = "/var/lib/cost-optimizer",
        logLevel: LogLevel = .info
    ) {
        self.policy = policy
        self.limits = limits
        self.checkInterval = checkInterval
        self.dryRun = dryRun
        self.vastAPIKeys = vastAPIKeys
        self.vastAPIURL = vastAPIURL
        self.webhookURL = webhookURL
        self.tensorDock = nil
        self.gcp = nil
        self.ssh = ssh
        self.stateDirectory = stateDirectory
        self.logLevel = logLevel
    }

    /// True when at least one provider has credentials.
    public var hasProvider: Bool { !vastAPIKeys.isEmpty || tensorDock != nil || gcp != nil }

    /// Every variable the daemon reads, in the order `check-config` prints them.
    public static let variables = [
        "PAUSE_THRESHOLD_GPU", "PAUSE_WINDOW_MINUTES", "MIN_SAMPLES", "DELETE_THRESHOLD_HOURS", "MIN_INSTANCE_AGE_HOURS",
        "CHECK_INTERVAL", "PROTECTED_INSTANCES", "PROTECT_LABEL", "DRY_RUN", "VAST_API_KEY", "VAST_API_URL",
        "WEBHOOK_URL", "SSH_KEY_PATH", "SSH_COMMAND", "SSH_CONNECT_TIMEOUT", "SSH_CONCURRENCY", "STATE_DIR", "LOG_LEVEL",
        "SSH_CONTROL_PERSIST",
        "TENSORDOCK_API_KEY", "TENSORDOCK_API_TOKEN", "TENSORDOCK_BEARER_TOKEN", "TENSORDOCK_API_URL",
        "TENSORDOCK_V0_API_URL", "TENSORDOCK_SSH_USER", "GCP_PROJECT_ID", "GCP_ZONE", "GCP_SSH_USER", "GCP_API_URL",
        "GCP_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "GCP_PRICE_OVERRIDES",
        "MAX_PAUSES_PER_CYCLE", "MAX_DELETES_PER_CYCLE", "MAX_ACTION_FRACTION", "DELETE_NOTICE_HOURS",
        "METRICS_FILE", "DIGEST_HOUR",
    ]

    /// Parses and validates the configuration.
    ///
    /// - Parameters:
    ///   - environment: the process environment (secrets already resolved from credential files).
    ///   - requireProvider: false for `demo`, which brings its own simulated provider.
    /// - Throws: `ConfigError` naming the variable and the value (never a secret's value).
    public static func parse(environment env: [String: String], requireProvider: Bool = true) throws(ConfigError)
        -> Config
    {
        let reader = EnvironmentReader(env)
        var policy = Policy()
        policy.pauseThresholdGPU = try reader.number("PAUSE_THRESHOLD_GPU", default: 10, range: 0...100)
        policy.pauseWindow = try reader.number("PAUSE_WINDOW_MINUTES", default: 30, range: 0...100_000) * 60
        policy.minSamples = try reader.integer("MIN_SAMPLES", default: 5, range: 1...100_000)
        policy.deleteThreshold = try reader.number("DELETE_THRESHOLD_HOURS", default: 24, range: 0...100_000) * 3600
        policy.minInstanceAge = try reader.number("MIN_INSTANCE_AGE_HOURS", default: 1, range: 0...100_000) * 3600
        policy.protectedInstances = Set(reader.list("PROTECTED_INSTANCES"))
        policy.protectLabel = reader.string("PROTECT_LABEL") ?? "keep"
        policy.deleteNotice = try parseDeleteNotice(reader, deleteThreshold: policy.deleteThreshold)

        var config = Config(policy: policy)
        config.limits = try parseLimits(reader)
        config.checkInterval = try reader.number("CHECK_INTERVAL", default: 60, range: 1...86_400)
        config.policy.sampleGapLimit = max(policy.pauseWindow, 3 * config.checkInterval)
        config.policy.sampleRetention = max(policy.pauseWindow, 3600)
        config.dryRun = try reader.boolean("DRY_RUN", default: false)
        config.vastAPIKeys = reader.list("VAST_API_KEY").map(Secret.init)
        config.vastAPIURL = try reader.baseURL("VAST_API_URL", default: "https://console.vast.ai")
        if let webhook = reader.string("WEBHOOK_URL") {
            guard let url = URL(string: webhook), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", url.host?.isEmpty == false
            else {
                throw ConfigError.invalid(
                    variable: "WEBHOOK_URL", value: "<redacted>", expected: "an http:// or https:// URL")
            }
            config.webhookURL = Secret(webhook)
        }
        config.tensorDock = try parseTensorDock(reader)
        config.gcp = try parseGCP(reader)
        config.ssh = SSHSettings(
            command: reader.string("SSH_COMMAND") ?? "ssh",
            keyPath: reader.string("SSH_KEY_PATH"),
            connectTimeout: try reader.integer("SSH_CONNECT_TIMEOUT", default: 10, range: 1...600),
            concurrency: try reader.integer("SSH_CONCURRENCY", default: 16, range: 1...1024),
            // Unset: a master outlives the wait between two cycles, so each cycle reuses the last one's connections.
            controlPersist: try reader.integer(
                "SSH_CONTROL_PERSIST", default: max(60, Int((2 * config.checkInterval).rounded(.up))),
                range: 0...604_800))
        config.stateDirectory =
            reader.string("STATE_DIR") ?? reader.string("STATE_DIRECTORY")?.split(separator: ":").first.map(String.init)
            ?? "/var/lib/cost-optimizer"
        let level = reader.string("LOG_LEVEL")?.lowercased() ?? "info"
        guard let logLevel = LogLevel(rawValue: level == "warn" ? "warning" : level) else {
            throw ConfigError.invalid(variable: "LOG_LEVEL", value: level, expected: "one of debug, info, warning, error")
        }
        config.logLevel = logLevel
        try parseReporting(reader, into: &config)
        if requireProvider && !config.hasProvider {
            throw ConfigError.noProvider
        }
        return config
    }
}

extension Config {
    /// `DELETE_NOTICE_HOURS` in seconds: at least 0 and below `DELETE_THRESHOLD_HOURS` (unless that is 0). Unset, the
    /// smaller of 2 h and half the threshold, so a short threshold set before the notice existed stays valid.
    static func parseDeleteNotice(_ reader: EnvironmentReader, deleteThreshold: Double) throws(ConfigError) -> Double {
        guard let raw = reader.string("DELETE_NOTICE_HOURS") else { return min(2 * 3600, deleteThreshold / 2) }
        let notice = try reader.number("DELETE_NOTICE_HOURS", default: 2, range: 0...100_000) * 3600
        if deleteThreshold > 0 && notice >= deleteThreshold {
            throw ConfigError.invalid(
                variable: "DELETE_NOTICE_HOURS", value: raw,
                expected: "less than DELETE_THRESHOLD_HOURS (\(hours(deleteThreshold)))")
        }
        return notice
    }

    /// `METRICS_FILE` (an absolute path ending in `.prom`, which node_exporter's textfile collector reads) and
    /// `DIGEST_HOUR` (0–23); each unset means off.
    static func parseReporting(_ reader: EnvironmentReader, into config: inout Config) throws(ConfigError) {
        if let path = reader.string("METRICS_FILE") {
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            guard path.hasPrefix("/"), !path.hasSuffix("/"), name.hasSuffix(".prom"), name.count > 5 else {
                throw ConfigError.invalid(
                    variable: "METRICS_FILE", value: path,
                    expected:
                        "an absolute path of a file ending in .prom (node_exporter's textfile collector reads only those)"
                )
            }
            config.metricsFile = path
        }
        if reader.string("DIGEST_HOUR") != nil {
            config.digestHour = try reader.integer("DIGEST_HOUR", default: 0, range: 0...23)
        }
    }

    static func parseLimits(_ reader: EnvironmentReader) throws(ConfigError) -> Limits {
        var limits = Limits()
        limits.maxPausesPerCycle = try reader.integer("MAX_PAUSES_PER_CYCLE", default: 10, range: 0...100_000)
        limits.maxDeletesPerCycle = try reader.integer("MAX_DELETES_PER_CYCLE", default: 3, range: 0...100_000)
        if let raw = reader.string("MAX_ACTION_FRACTION") {
            guard let fraction = Double(raw), fraction.isFinite, fraction > 0, fraction <= 1 else {
                throw ConfigError.invalid(
                    variable: "MAX_ACTION_FRACTION", value: raw, expected: "a number greater than 0 and at most 1")
            }
            limits.maxActionFraction = fraction
        }
        return limits
    }

    static func parseTensorDock(_ reader: EnvironmentReader) throws(ConfigError) -> TensorDockSettings? {
        let key = reader.string("TENSORDOCK_API_KEY").map(Secret.init)
        let token = reader.string("TENSORDOCK_API_TOKEN").map(Secret.init)
        let bearer = reader.string("TENSORDOCK_BEARER_TOKEN").map(Secret.init)
        if (key == nil) != (token == nil) && bearer == nil {
            let missing = key == nil ? "TENSORDOCK_API_KEY" : "TENSORDOCK_API_TOKEN"
            throw ConfigError.invalid(
                variable: missing, value: "", expected: "set together with its pair (or set TENSORDOCK_BEARER_TOKEN)")
        }
        let apiURL = try reader.baseURL("TENSORDOCK_API_URL", default: "https://dashboard.tensordock.com")
        let v0URL = try reader.baseURL("TENSORDOCK_V0_API_URL", default: "https://marketplace.tensordock.com")
        let user = try reader.sshUser("TENSORDOCK_SSH_USER") ?? "user"
        guard bearer != nil || (key != nil && token != nil) else { return nil }
        return TensorDockSettings(
            apiKey: key, apiToken: token, bearerToken: bearer, apiURL: apiURL, v0APIURL: v0URL, sshUser: user)
    }

    static func parseGCP(_ reader: EnvironmentReader) throws(ConfigError) -> GCPSettings? {
        let projects = reader.list("GCP_PROJECT_ID")
        for project in projects where !project.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == ":" || $0 == "." }) {
            throw ConfigError.invalid(variable: "GCP_PROJECT_ID", value: project, expected: "project ids separated by commas")
        }
        let zone = reader.string("GCP_ZONE")
        if let zone, !zone.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
            throw ConfigError.invalid(variable: "GCP_ZONE", value: zone, expected: "a zone name such as us-central1-a")
        }
        let apiURL = try reader.baseURL("GCP_API_URL", default: "https://compute.googleapis.com")
        var overrides: [String: Double] = [:]
        for entry in reader.list("GCP_PRICE_OVERRIDES") {
            let parts = entry.split(separator: "=", maxSplits: 1).map(\.trimmed)
            guard parts.count == 2, !parts[0].isEmpty, let price = Double(parts[1]), price.isFinite, price >= 0 else {
                throw ConfigError.invalid(
                    variable: "GCP_PRICE_OVERRIDES", value: entry,
                    expected: "accelerator=dollars-per-GPU-hour pairs, e.g. nvidia-tesla-t4=0.35")
            }
            overrides[parts[0].lowercased()] = price
        }
        let user = try reader.sshUser("GCP_SSH_USER") ?? reader.string("USER") ?? "root"
        guard !projects.isEmpty else { return nil }
        return GCPSettings(
            projects: projects, zone: zone, sshUser: user, apiURL: apiURL,
            accessToken: reader.string("GCP_ACCESS_TOKEN").map(Secret.init),
            credentialsFile: reader.string("GOOGLE_APPLICATION_CREDENTIALS"),
            metadataHost: reader.string("GCE_METADATA_HOST") ?? "metadata.google.internal", priceOverrides: overrides)
    }
}

/// A configuration error; the executable prints `description` and exits 78 (EX_CONFIG).
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    /// A variable holds a value the daemon cannot use.
    case invalid(variable: String, value: String, expected: String)
    /// No provider has credentials.
    case noProvider

    public var description: String {
        switch self {
        case .invalid(let variable, let value, let expected):
            "Invalid configuration: \(variable)=\"\(value)\" must be \(expected)."
        case .noProvider:
            "Invalid configuration: no provider is configured; set VAST_API_KEY, TENSORDOCK_BEARER_TOKEN (or TENSORDOCK_API_KEY and TENSORDOCK_API_TOKEN) or GCP_PROJECT_ID (or run `cost-optimizer demo`)."
        }
    }
}

/// Reads variables with one rule: unset or blank means the default.
struct EnvironmentReader {
    let env: [String: String]

    init(_ env: [String: String]) { self.env = env }

    func string(_ name: String) -> String? {
        guard let raw = env[name]?.trimmed, !raw.isEmpty else { return nil }
        return raw
    }

    func list(_ name: String) -> [String] {
        (string(name) ?? "").split(separator: ",").map(\.trimmed).filter {
            !$0.isEmpty
        }
    }

    func number(_ name: String, default value: Double, range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let raw = string(name) else { return value }
        guard let number = Double(raw), number.isFinite else {
            throw ConfigError.invalid(variable: name, value: raw, expected: "a number")
        }
        guard range.contains(number) else {
            throw ConfigError.invalid(
                variable: name, value: raw, expected: "between \(format(range.lowerBound)) and \(format(range.upperBound))")
        }
        return number
    }

    func integer(_ name: String, default value: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let raw = string(name) else { return value }
        guard let number = Int(raw) else {
            throw ConfigError.invalid(variable: name, value: raw, expected: "a whole number")
        }
        guard range.contains(number) else {
            throw ConfigError.invalid(
                variable: name, value: raw, expected: "between \(range.lowerBound) and \(range.upperBound)")
        }
        return number
    }

    func boolean(_ name: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let raw = string(name)?.lowercased() else { return value }
        switch raw {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigError.invalid(variable: name, value: raw, expected: "true or false")
        }
    }

    /// A login name ssh accepts: letters, digits, `.`, `_`, `-`, not starting with `-`.
    func sshUser(_ name: String) throws(ConfigError) -> String? {
        guard let user = string(name) else { return nil }
        guard !user.hasPrefix("-"), user.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw ConfigError.invalid(variable: name, value: user, expected: "a user name (letters, digits, . _ -)")
        }
        return user
    }

    /// scheme://host[:port] with no path, query or credentials.
    func baseURL(_ name: String, default value: String) throws(ConfigError) -> URL {
        let raw = string(name) ?? value
        let expected = "scheme://host[:port] with scheme http or https and no path"
        guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty, url.user == nil, url.query == nil,
            url.path.isEmpty || url.path == "/"
        else {
            throw ConfigError.invalid(variable: name, value: raw, expected: expected)
        }
        var text = raw
        while text.hasSuffix("/") { text.removeLast() }
        return URL(string: text)!
    }

    private func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
