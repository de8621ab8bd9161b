import CostOptimizerCore
import Foundation

/// Why the sampler would not start ssh for an instance: its host, user, port or id is unsafe on a command line, or a
/// configured path cannot be passed to ssh. The instance's sample is `.failed` with this reason.
public struct SSHRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// One sentence naming the value and what to do.
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// Samples GPU utilisation over ssh: one `ssh … nvidia-smi` per instance (`NvidiaSmiProbe.remoteCommand`), hardened
/// as `shared/docs/safety.md` §6 asks (argv only, `--` before the destination, validated host and user, a host-key
/// alias per instance, a local deadline, bounded output, an allowlisted environment).
///
/// With a control directory and `SSH_CONTROL_PERSIST` above 0, ssh keeps one master connection per instance
/// (`ControlMaster=auto`, `ControlPersist`, `ControlPath=<directory>/<provider>-<id>`), so the next sample of that
/// instance skips the TCP and key exchange; `close()` stops the masters.
public struct GPUSampler: Sendable {
    /// Starts ssh (`ProcessCommandRunner` in the daemon, a fake in tests).
    public let runner: any CommandRunner
    /// `SSH_COMMAND`, `SSH_KEY_PATH`, `SSH_CONNECT_TIMEOUT`, `SSH_CONCURRENCY`.
    public let settings: SSHSettings
    /// The sampler's own known_hosts file (`STATE_DIR/known_hosts`), keyed by `<provider>-<id>` aliases.
    public let knownHostsPath: String
    /// Gets one debug line per sample and a warning per failure (an error for a changed host key); never a key, a
    /// secret or the argv.
    public let logger: Logger
    /// The child's whole environment: `PATH`, `LANG=C` and `HOME` (when set), never the daemon's secrets.
    public let childEnvironment: [String: String]
    /// Where the control sockets live; nil opens a new connection for every sample.
    public let controlDirectory: SSHControlDirectory?

    /// The most bytes kept of ssh's stdout and of its stderr.
    public static let outputLimit = 1 << 20

    /// - Parameters:
    ///   - runner: starts ssh.
    ///   - settings: `SSH_COMMAND`, `SSH_KEY_PATH`, `SSH_CONNECT_TIMEOUT`, `SSH_CONCURRENCY`.
    ///   - knownHostsPath: the file ssh records host keys in.
    ///   - logger: one debug line per sample, a warning per failure, an error for a changed host key.
    ///   - environment: the daemon's environment, from which only `PATH` and `HOME` are passed on.
    ///   - controlDirectory: where ssh keeps its master connections (with `settings.controlPersist` above 0); nil
    ///     for none.
    public init(
        runner: any CommandRunner, settings: SSHSettings, knownHostsPath: String, logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        controlDirectory: SSHControlDirectory? = nil
    ) {
        self.runner = runner
        self.settings = settings
        self.knownHostsPath = knownHostsPath
        self.logger = logger
        self.controlDirectory = controlDirectory
        var child = ["PATH": environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LANG": "C"]
        child["HOME"] = environment["HOME"]
        childEnvironment = child
    }

    /// Seconds one ssh call may take: `ConnectTimeout` plus 30 s for the remote command (itself bounded remotely).
    public var deadline: Double { Double(settings.connectTimeout) + 30 }

    /// True when samples reuse master connections: a control directory and `SSH_CONTROL_PERSIST` above 0.
    public var reusesConnections: Bool { controlDirectory != nil && settings.controlPersist > 0 }

    /// Stops the ssh master connections and removes the control directory (see `SSHControlDirectory.tearDown`);
    /// nothing without a control directory. Samples taken afterwards open their own connections again.
    public func close() async {
        await controlDirectory?.tearDown(
            runner: runner, ssh: settings.command, environment: childEnvironment, concurrency: settings.concurrency,
            logger: logger)
    }

    /// Samples every instance that has an ssh endpoint, at most `settings.concurrency` at once.
    ///
    /// Instances without an endpoint are skipped (the caller decides which instances to give: running, managed).
    /// Cancelling the calling task kills every ssh in flight; their samples are `.failed`.
    /// - Returns: one result per sampled instance.
    public func sample(_ instances: [Instance]) async -> [InstanceKey: SampleResult] {
        var pending = instances.filter { $0.ssh != nil }.makeIterator()
        return await withTaskGroup(of: (InstanceKey, SampleResult).self) { group in
            for _ in 0..<max(1, settings.concurrency) {
                guard let instance = pending.next() else { break }
                group.addTask { (instance.key, await sample(instance)) }
            }
            var results: [InstanceKey: SampleResult] = [:]
            for await (key, result) in group {
                results[key] = result
                if let instance = pending.next() {
                    group.addTask { (instance.key, await sample(instance)) }
                }
            }
            return results
        }
    }

    /// Samples one instance (also used to re-check an instance right before acting on it).
    /// - Returns: `.ok` with its GPUs, or `.failed` with a reason: never idle for want of an answer.
    public func sample(_ instance: Instance) async -> SampleResult {
        let key = instance.key
        let started = ContinuousClock.now
        let result: SampleResult
        var hostKeyChanged = false
        switch command(for: instance) {
        case .failure(let refusal):
            result = .failed(refusal.reason)
        case .success(let command):
            if Task.isCancelled {
                result = .failed("not sampled: the cycle was cancelled")
            } else {
                do {
                    let output = try await runner.run(command)
                    hostKeyChanged = Self.showsChangedHostKey(output)
                    result = Self.interpret(output)
                } catch {
                    result = .failed("ssh call failed: \(error)")
                }
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = String(format: "%.2f s", Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
        switch result {
        case .ok(let gpus):
            let utilization = result.utilization.map { String(format: "%.1f", $0) } ?? "?"
            logger.debug("GPU sample \(key): ok in \(seconds), \(gpus.count) GPU(s), utilization \(utilization)%")
        case .failed(let reason):
            logger.debug("GPU sample \(key): failed in \(seconds)")
            if hostKeyChanged {
                logger.error(
                    "Host key changed \(key): refusing to sample; if the instance was rebuilt, remove the line"
                        + " \"\(Self.hostKeyAlias(for: key))\" from \(knownHostsPath)")
            } else {
                logger.warning("GPU sample failed \(key): \(reason)")
            }
        }
        return result
    }

    /// The ssh command for one instance, or why none may be started.
    public func command(for instance: Instance) -> Result<Command, SSHRefusal> {
        arguments(for: instance).map { arguments in
            Command(
                executable: settings.command, arguments: arguments, environment: childEnvironment, timeout: deadline,
                outputLimit: Self.outputLimit)
        }
    }

    /// ssh's arguments for one instance (without the program name): options, `-p`, `--`, `user@host`, then the
    /// constant remote command.
    /// - Returns: the arguments, or the refusal when the host, user, port, id or a path is unsafe.
    public func arguments(for instance: Instance) -> Result<[String], SSHRefusal> {
        guard let endpoint = instance.ssh else {
            return .failure(SSHRefusal("\(instance.key) has no ssh endpoint"))
        }
        if let refusal = Self.refusal(host: endpoint.host) ?? Self.refusal(user: endpoint.user)
            ?? Self.refusal(port: endpoint.port) ?? Self.refusal(id: instance.key)
            ?? Self.refusal(path: knownHostsPath, named: "the known_hosts path (STATE_DIR)")
            ?? settings.keyPath.flatMap({ Self.refusal(path: $0, named: "SSH_KEY_PATH") })
        {
            return .failure(refusal)
        }
        var options = [
            "BatchMode=yes", "ConnectTimeout=\(settings.connectTimeout)", "ConnectionAttempts=1",
            "StrictHostKeyChecking=accept-new", "UserKnownHostsFile=\(knownHostsPath)", "GlobalKnownHostsFile=/dev/null",
            "HostKeyAlias=\(Self.hostKeyAlias(for: instance.key))", "UpdateHostKeys=no", "CheckHostIP=no",
            "ServerAliveInterval=10", "ServerAliveCountMax=3",
        ]
        if let keyPath = settings.keyPath {
            options += ["IdentitiesOnly=yes", "IdentityAgent=none", "IdentityFile=\(keyPath)"]
        } else {
            options += ["IdentityAgent=none"]
        }
        options += [
            "PasswordAuthentication=no", "KbdInteractiveAuthentication=no", "ForwardAgent=no", "ForwardX11=no",
            "ClearAllForwardings=yes", "PermitLocalCommand=no", "RequestTTY=no", "LogLevel=ERROR",
        ]
        if reusesConnections, let controlDirectory {
            if let socket = controlDirectory.socketPath(for: instance.key) {
                options += ["ControlMaster=auto", "ControlPersist=\(settings.controlPersist)", "ControlPath=\(socket)"]
            } else {
                logger.debug(
                    "ssh reuse off \(instance.key): its control path in \(controlDirectory.path) would pass "
                        + "\(SSHControlDirectory.maxSocketPathBytes) bytes")
            }
        }
        var arguments = ["-F", "none", "-T", "-n"]
        for option in options { arguments += ["-o", option] }
        arguments += ["-p", String(endpoint.port), "--", "\(endpoint.user)@\(endpoint.host)", NvidiaSmiProbe.remoteCommand]
        return .success(arguments)
    }

    /// The name ssh records an instance's host key under in `knownHostsPath`: `<provider>-<id>`, so a recycled IP
    /// given to a new instance is a new entry, not a key mismatch.
    public static func hostKeyAlias(for key: InstanceKey) -> String {
        "\(key.provider.rawValue)-\(key.id)"
    }

    /// The reason of a sample ssh refused because the instance's host key differs from the recorded one.
    public static let hostKeyChangedReason =
        "host key changed: ssh refused to connect because the instance's host key differs from the recorded one"

    /// True when ssh itself failed (status 255) because the host key did not match the recorded one: its stderr says
    /// "REMOTE HOST IDENTIFICATION HAS CHANGED" or "Host key verification failed".
    public static func showsChangedHostKey(_ result: CommandResult) -> Bool {
        guard !result.signaled, result.status == 255 else { return false }
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        return stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || stderr.contains("Host key verification failed")
    }

    /// Turns what ssh returned into a sample: killed by a signal or status 255 is ssh's own failure (with the first
    /// line of its stderr, or `hostKeyChangedReason` for a changed host key); anything else is the probe's output,
    /// parsed by `NvidiaSmiProbe.parse`.
    public static func interpret(_ result: CommandResult) -> SampleResult {
        let stderrLine = String(decoding: result.stderr, as: UTF8.self).split(separator: "\n").lazy
            .map(\.trimmed).first { !$0.isEmpty }
        if result.signaled {
            return .failed("ssh was killed by signal \(result.status)")
        }
        if showsChangedHostKey(result) {
            return .failed(hostKeyChangedReason)
        }
        if result.status == 255 {
            return .failed(withDetail("ssh failed (status 255)", stderrLine))
        }
        let sample = NvidiaSmiProbe.parse(output: String(decoding: result.stdout, as: UTF8.self), exitStatus: result.status)
        if case .failed(let reason) = sample, let stderrLine {
            return .failed(withDetail(reason + "; stderr", stderrLine))
        }
        return sample
    }

    static func withDetail(_ reason: String, _ detail: String?) -> String {
        guard let detail, !detail.isEmpty else { return reason }
        return "\(reason): \(detail.count > 160 ? String(detail.prefix(160)) + "…" : detail)"
    }

    // MARK: Validation

    /// Characters allowed in a user name or an instance id: ASCII letters and digits, '.', '-', '_'.
    static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "." || scalar == "-" || scalar == "_"
    }

    /// Characters allowed in a host: those of a DNS name or an IP address, and ':' for IPv6 (without brackets).
    static func isHostCharacter(_ scalar: Unicode.Scalar) -> Bool {
        isNameCharacter(scalar) || scalar == ":"
    }

    static func refusal(host: String) -> SSHRefusal? {
        let shown = Logger.oneLine(host)
        if host.isEmpty { return SSHRefusal("refused ssh host: it is empty") }
        if host.hasPrefix("-") { return SSHRefusal("refused ssh host \"\(shown)\": it starts with '-'") }
        if host.utf8.count > 253 { return SSHRefusal("refused ssh host \"\(shown.prefix(40))…\": longer than 253 bytes") }
        guard host.unicodeScalars.allSatisfy(isHostCharacter) else {
            return SSHRefusal(
                "refused ssh host \"\(shown)\": only letters, digits, '.', '-', '_' and ':' are allowed in a host")
        }
        return nil
    }

    static func refusal(user: String) -> SSHRefusal? {
        let shown = Logger.oneLine(user)
        if user.isEmpty { return SSHRefusal("refused ssh user: it is empty") }
        if user.hasPrefix("-") { return SSHRefusal("refused ssh user \"\(shown)\": it starts with '-'") }
        guard user.utf8.count <= 64, user.unicodeScalars.allSatisfy(isNameCharacter) else {
            return SSHRefusal(
                "refused ssh user \"\(shown)\": only up to 64 letters, digits, '.', '-' and '_' are allowed in a user")
        }
        return nil
    }

    static func refusal(port: Int) -> SSHRefusal? {
        (1...65535).contains(port) ? nil : SSHRefusal("refused ssh port \(port): it must be between 1 and 65535")
    }

    /// The id becomes part of `HostKeyAlias`, an ssh option value.
    static func refusal(id key: InstanceKey) -> SSHRefusal? {
        if !key.id.isEmpty, key.id.unicodeScalars.allSatisfy(isNameCharacter) { return nil }
        return SSHRefusal(
            "refused instance id \"\(Logger.oneLine(key.id))\" as a host-key alias: only letters, digits, '.', '-' and '_'"
                + " are allowed")
    }

    /// ssh splits option values at spaces and expands `%` tokens, `${VAR}` and quotes in file names.
    static func refusal(path: String, named name: String) -> SSHRefusal? {
        let hasUnsafeCharacter = path.isEmpty
            || path.unicodeScalars.contains {
                $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F || "\"'\\%$".unicodeScalars.contains($0)
            }
        guard hasUnsafeCharacter else { return nil }
        return SSHRefusal(
            "refused \(name) \"\(Logger.oneLine(path))\": ssh cannot take an empty path or one holding spaces, quotes,"
                + " backslashes, '%' or '$' in an option; choose another path")
    }
}
