import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The shipped unit, env example and install script, checked as a user would meet them.
///
/// `systemd-analyze` (package `systemd` on Debian 12) is needed for the unit checks: without it they fail when
/// `CI=true` and are skipped otherwise.
@Suite("systemd unit, env example and install script")
struct SystemdUnitTests {
    /// The repository root: this file is `Tests/CostOptimizerTests/SystemdUnitTests.swift`.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let unitPath = root.appendingPathComponent("systemd/cost-optimizer.service").path
    static let envExamplePath = root.appendingPathComponent("etc/cost-optimizer.env.example").path
    static let installScriptPath = root.appendingPathComponent("bin/install.sh").path

    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let analyzer = findExecutable("systemd-analyze")
    static let skipComment: Comment = "systemd-analyze not found (apt-get install systemd); with CI=true this fails"

    /// The variables of the configuration table; `Config.variables` is added to them in the test.
    static let documentedVariables = [
        "PAUSE_THRESHOLD_GPU", "PAUSE_WINDOW_MINUTES", "MIN_SAMPLES", "DELETE_THRESHOLD_HOURS", "MIN_INSTANCE_AGE_HOURS",
        "CHECK_INTERVAL", "PROTECTED_INSTANCES", "PROTECT_LABEL", "DRY_RUN", "VAST_API_KEY", "VAST_API_URL",
        "WEBHOOK_URL", "SSH_KEY_PATH", "SSH_COMMAND", "SSH_CONNECT_TIMEOUT", "SSH_CONCURRENCY", "STATE_DIR", "LOG_LEVEL",
    ]

    // MARK: - The unit under systemd-analyze

    @Test(
        "systemd-analyze verify accepts the unit with no complaint about it",
        .enabled(if: SystemdUnitTests.analyzer != nil || SystemdUnitTests.isCI, SystemdUnitTests.skipComment))
    func verifyIsClean() async throws {
        guard let analyzer = Self.analyzer else {
            Issue.record("CI=true but systemd-analyze is not installed: .ci/run installs the systemd package")
            return
        }
        let result = try await Self.verify(unitText: try Self.unitWithExistingExecStart(), analyzer: analyzer)
        #expect(result.status == 0, "systemd-analyze verify exited \(result.status):\n\(result.output)")
        #expect(result.complaints.isEmpty, "systemd-analyze verify complained about the unit:\n\(result.output)")
    }

    @Test(
        "the verify check fails on a unit with an unknown key",
        .enabled(if: SystemdUnitTests.analyzer != nil || SystemdUnitTests.isCI, SystemdUnitTests.skipComment))
    func verifyCheckHasTeeth() async throws {
        guard let analyzer = Self.analyzer else {
            Issue.record("CI=true but systemd-analyze is not installed: .ci/run installs the systemd package")
            return
        }
        // systemd-analyze verify exits 0 on an unknown key and only warns, so the check must read its output.
        let unit = try Self.unitWithExistingExecStart().replacingOccurrences(
            of: "\n[Service]\n", with: "\n[Service]\nNoSuchHardeningKey=yes\n")
        let result = try await Self.verify(unitText: unit, analyzer: analyzer)
        #expect(
            result.complaints.contains { $0.contains("NoSuchHardeningKey") },
            "expected a complaint about NoSuchHardeningKey, got:\n\(result.output)")
    }

    @Test(
        "systemd-analyze security scores the unit at 2.0 or better (--threshold=20), and a bare unit worse",
        .enabled(if: SystemdUnitTests.analyzer != nil || SystemdUnitTests.isCI, SystemdUnitTests.skipComment))
    func securityGate() async throws {
        guard let analyzer = Self.analyzer else {
            Issue.record("CI=true but systemd-analyze is not installed: .ci/run installs the systemd package")
            return
        }
        let ours = try await Self.security(unitText: try Self.unitWithExistingExecStart(), analyzer: analyzer)
        #expect(ours.status == 0, "exposure above 2.0 (exit \(ours.status)):\n\(ours.output)")
        // The gate itself: the same command must reject an unhardened unit.
        let bare = try await Self.security(unitText: "[Service]\nExecStart=\(Self.existingBinary)\n", analyzer: analyzer)
        #expect(bare.status != 0, "a bare unit passed --threshold=20:\n\(bare.output)")
    }

    // MARK: - The unit's text

    @Test("the unit restarts on failure but not on exit 78, and ends a crash loop through [Unit] start limits")
    func unitLint() throws {
        let entries = Self.parseUnit(try String(contentsOfFile: Self.unitPath, encoding: .utf8))
        func values(_ section: String, _ key: String) -> [String] {
            entries.filter { $0.section == section && $0.key == key }.map(\.value)
        }
        #expect(values("Service", "ExecStart") == ["/usr/local/bin/cost-optimizer run"])
        #expect(values("Service", "EnvironmentFile") == ["/etc/cost-optimizer/cost-optimizer.env"])
        #expect(values("Service", "StateDirectory") == ["cost-optimizer"])
        #expect(values("Service", "StateDirectoryMode") == ["0700"])
        // $RUNTIME_DIRECTORY: the private home of ssh's control sockets (SSH_CONTROL_PERSIST).
        #expect(values("Service", "RuntimeDirectory") == ["cost-optimizer"])
        #expect(values("Service", "RuntimeDirectoryMode") == ["0700"])
        #expect(values("Service", "Restart") == ["on-failure"])
        #expect(values("Service", "RestartPreventExitStatus") == ["78"])
        #expect(values("Service", "KillMode") == ["mixed"])
        #expect(values("Service", "DynamicUser") == ["yes"])
        #expect(values("Service", "UMask") == ["0077"])
        #expect(values("Service", "RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"])
        #expect(values("Unit", "StartLimitBurst").count == 1)
        #expect(values("Unit", "StartLimitIntervalSec").count == 1)
        #expect(values("Service", "StartLimitBurst").isEmpty && values("Service", "StartLimitIntervalSec").isEmpty)
    }

    @Test("the unit is Type=notify, accepts notifications from the main process only, and sets a watchdog")
    func notifyAndWatchdog() throws {
        let entries = Self.parseUnit(try String(contentsOfFile: Self.unitPath, encoding: .utf8))
        func values(_ key: String) -> [String] {
            entries.filter { $0.section == "Service" && $0.key == key }.map(\.value)
        }
        #expect(values("Type") == ["notify"])
        #expect(values("NotifyAccess") == ["main"])
        let watchdog = try #require(values("WatchdogSec").first, "the unit has no WatchdogSec=")
        #expect(values("WatchdogSec").count == 1)
        let seconds = try #require(Self.seconds(watchdog), "WatchdogSec=\(watchdog) is not a number of s or min")
        // Above the longest step that still progresses: a GCE operation wait alone is 300 s.
        #expect(seconds > GCEProvider.operationTimeout, "WatchdogSec=\(watchdog) would kill a GCE stop in progress")
        #expect(seconds <= 3600, "WatchdogSec=\(watchdog): a hung daemon would go unnoticed for too long")
        // READY=1 needs AF_UNIX for the notification socket.
        #expect(values("RestrictAddressFamilies").first?.split(separator: " ").contains("AF_UNIX") == true)
    }

    @Test("every secret and the ssh key is an optional credential: a relative source, looked up in the credstore")
    func credentials() throws {
        let entries = Self.parseUnit(try String(contentsOfFile: Self.unitPath, encoding: .utf8))
        let lines = entries.filter { $0.section == "Service" && $0.key == "LoadCredential" }.map(\.value)
        var sources: [String: String] = [:]
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 1).map(String.init)
            #expect(parts.count == 2, "LoadCredential=\(line) should be id:source")
            guard parts.count == 2 else { continue }
            #expect(sources[parts[0]] == nil, "LoadCredential= for \(parts[0]) appears twice")
            sources[parts[0]] = parts[1]
        }
        let expected = Set(Secrets.names.map { $0.lowercased() } + ["ssh_key"])
        #expect(Set(sources.keys) == expected)
        for (id, source) in sources {
            // systemd 252 skips a missing relative source but fails the start on a missing absolute one.
            #expect(!source.contains("/"), "LoadCredential=\(id):\(source) must be a relative credstore name")
            #expect(source == "cost-optimizer." + id)
        }
        // Added in systemd 254: systemd 252 (Debian 12) ignores it with a warning.
        #expect(entries.allSatisfy { $0.key != "ImportCredential" })
        #expect(entries.allSatisfy { $0.key != "SetCredential" }, "SetCredential= values are readable through IPC")
    }

    // MARK: - The env example

    @Test("the env example names every setting and ships DRY_RUN=true")
    func envExampleNamesEverySetting() throws {
        let lines = try String(contentsOfFile: Self.envExamplePath, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false
        ).map(String.init)
        let active = Self.assignments(lines, commented: false)
        let commented = Self.assignments(lines, commented: true)
        for name in Set(Self.documentedVariables + Config.variables).sorted() {
            #expect(
                active.contains { $0.name == name } || commented.contains { $0.name == name },
                "etc/cost-optimizer.env.example has no \(name)= or #\(name)= line")
        }
        #expect(active.filter { $0.name == "DRY_RUN" }.map(\.value) == ["true"])
    }

    @Test("the env example parses, and its commented values are the daemon's defaults")
    func envExampleDefaultsMatchTheCode() throws {
        let lines = try String(contentsOfFile: Self.envExamplePath, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false
        ).map(String.init)
        var shipped: [String: String] = [:]
        for entry in Self.assignments(lines, commented: false) { shipped[entry.name] = entry.value }
        shipped["VAST_API_KEY"] = "test-key"  // the example leaves it for the user to fill in
        let config = try Config.parse(environment: shipped)
        #expect(config.dryRun)

        var everything = shipped
        for entry in Self.assignments(lines, commented: true) { everything[entry.name] = entry.value }
        let expected = try Config.parse(environment: ["VAST_API_KEY": "test-key", "DRY_RUN": "true"])
        #expect(try Config.parse(environment: everything) == expected)
    }

    // MARK: - bin/install.sh

    @Test("install.sh stages the binary, unit and env file with their modes and keeps an existing env file")
    func installScript() async throws {
        let fileManager = FileManager.default
        let scratch = try Self.scratchDirectory()
        defer { try? fileManager.removeItem(atPath: scratch) }
        let fakeBinary = scratch + "/fake-cost-optimizer"
        try "#!/bin/sh\necho fake\n".write(toFile: fakeBinary, atomically: false, encoding: .utf8)
        try fileManager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fakeBinary)
        let destdir = scratch + "/root"
        var environment = ProcessInfo.processInfo.environment
        environment["DESTDIR"] = destdir
        environment["COST_OPTIMIZER_BINARY"] = fakeBinary
        environment.removeValue(forKey: "PREFIX")

        let first = try await Self.runProcess(Self.installScriptPath, [], environment: environment)
        #expect(first.status == 0, "install.sh exited \(first.status):\n\(first.output)")

        let binary = destdir + "/usr/local/bin/cost-optimizer"
        let unit = destdir + "/etc/systemd/system/cost-optimizer.service"
        let envFile = destdir + "/etc/cost-optimizer/cost-optimizer.env"
        #expect(Self.mode(binary) == 0o755)
        #expect(Self.mode(unit) == 0o644)
        #expect(Self.mode(envFile) == 0o600)
        #expect(fileManager.contents(atPath: binary) == fileManager.contents(atPath: fakeBinary))
        #expect(fileManager.contents(atPath: unit) == fileManager.contents(atPath: Self.unitPath))
        #expect(fileManager.contents(atPath: envFile) == fileManager.contents(atPath: Self.envExamplePath))
        #expect(first.output.contains("systemctl enable --now cost-optimizer"))
        #expect(first.output.contains("journalctl -u cost-optimizer -f"))

        // The user's settings survive a second run; everything else is replaced.
        let edited = "VAST_API_KEY=the-users-key\nDRY_RUN=false\n"
        try edited.write(toFile: envFile, atomically: false, encoding: .utf8)
        try fileManager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: envFile)
        try "stale\n".write(toFile: unit, atomically: false, encoding: .utf8)
        let second = try await Self.runProcess(Self.installScriptPath, [], environment: environment)
        #expect(second.status == 0, "install.sh exited \(second.status) on the second run:\n\(second.output)")
        #expect(try String(contentsOfFile: envFile, encoding: .utf8) == edited)
        #expect(Self.mode(envFile) == 0o600)
        #expect(fileManager.contents(atPath: unit) == fileManager.contents(atPath: Self.unitPath))
        #expect(Self.mode(binary) == 0o755)
    }

    // MARK: - Helpers

    /// A binary that exists on any Linux host, for `ExecStart=` in the copies given to `systemd-analyze`.
    static var existingBinary: String {
        FileManager.default.isExecutableFile(atPath: "/bin/true") ? "/bin/true" : "/usr/bin/true"
    }

    /// The unit's text with its `ExecStart=` binary replaced by one that exists (verify checks it).
    static func unitWithExistingExecStart() throws -> String {
        let text = try String(contentsOfFile: unitPath, encoding: .utf8)
        let original = "\nExecStart=/usr/local/bin/cost-optimizer "
        #expect(text.components(separatedBy: original).count == 2, "the unit should have one ExecStart= line")
        return text.replacingOccurrences(of: original, with: "\nExecStart=\(existingBinary) ")
    }

    struct AnalyzeResult {
        var status: Int32
        var output: String
        /// Output lines about the unit under test (its path or its name), as opposed to other units on the host.
        var complaints: [String]
    }

    /// Runs `systemd-analyze verify` on a copy of `unitText` named `cost-optimizer.service` in a fresh directory.
    static func verify(unitText: String, analyzer: String) async throws -> AnalyzeResult {
        try await analyze(unitText: unitText, analyzer: analyzer, arguments: ["verify"])
    }

    /// Runs `systemd-analyze security --offline=true --threshold=20` on a copy of `unitText`.
    static func security(unitText: String, analyzer: String) async throws -> AnalyzeResult {
        try await analyze(
            unitText: unitText, analyzer: analyzer,
            arguments: ["security", "--no-pager", "--offline=true", "--threshold=20"])
    }

    private static func analyze(unitText: String, analyzer: String, arguments: [String]) async throws
        -> AnalyzeResult
    {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/cost-optimizer.service"
        try unitText.write(toFile: copy, atomically: false, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SYSTEMD_PAGER"] = ""
        environment["SYSTEMD_COLORS"] = "0"
        let result = try await runProcess(analyzer, arguments + [copy], environment: environment)
        let complaints = result.output.split(separator: "\n").map(String.init).filter {
            $0.contains(copy) || $0.contains("cost-optimizer.service:")
        }
        return AnalyzeResult(status: result.status, output: result.output, complaints: complaints)
    }

    struct UnitEntry: Equatable {
        var section: String
        var key: String
        var value: String
    }

    /// `[Section]` and `Key=value` lines of a unit file; comments and blank lines dropped.
    static func parseUnit(_ text: String) -> [UnitEntry] {
        var section = ""
        var entries: [UnitEntry] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
            } else if let equals = line.firstIndex(of: "=") {
                entries.append(
                    UnitEntry(
                        section: section, key: line[..<equals].trimmingCharacters(in: .whitespaces),
                        value: line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        return entries
    }

    /// `NAME=value` lines (`commented: false`) or `#NAME=value` lines (`commented: true`) of an env file.
    static func assignments(_ lines: [String], commented: Bool) -> [(name: String, value: String)] {
        lines.compactMap { line in
            var body = Substring(line)
            if commented {
                guard body.hasPrefix("#") else { return nil }
                body = body.dropFirst()
            }
            guard let equals = body.firstIndex(of: "="), let first = body.first,
                first == "_" || ("A"..."Z").contains(first)
            else { return nil }
            let name = body[..<equals]
            guard name.allSatisfy({ $0 == "_" || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }) else {
                return nil
            }
            return (String(name), String(body[body.index(after: equals)...]))
        }
    }

    /// Seconds in a systemd time span made of one number with an optional `s`, `sec`, `min` or `m` suffix.
    static func seconds(_ span: String) -> Double? {
        let digits = span.prefix { $0.isNumber }
        guard let value = Double(digits) else { return nil }
        switch span.dropFirst(digits.count) {
        case "", "s", "sec": return value
        case "min", "m": return value * 60
        default: return nil
        }
    }

    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }

    static func scratchDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cost-optimizer-systemd-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `executable` with `arguments` (no shell) through the daemon's own runner, which never blocks the
    /// cooperative threads other tests' loopback servers need; stdout then stderr; killed after `timeout` seconds.
    static func runProcess(
        _ executable: String, _ arguments: [String], environment: [String: String], timeout: Double = 120
    ) async throws -> (status: Int32, output: String) {
        let result = try await ProcessCommandRunner().run(
            Command(
                executable: executable, arguments: arguments, environment: environment, timeout: timeout,
                outputLimit: 8 << 20))
        let output = String(decoding: result.stdout + result.stderr, as: UTF8.self)
        return (result.status, output)
    }
}
