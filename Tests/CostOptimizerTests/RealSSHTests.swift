import CostOptimizer
import CostOptimizerCore
import Foundation
import CostOptimizerSimulation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The sampler through the system's `/usr/bin/ssh` against a real `sshd` on 127.0.0.1, with a throwaway host key and
/// client key and a fake `nvidia-smi` on the remote PATH that answers with the H100 captures.
///
/// Needs Debian's openssh-server. Outside CI the tests skip when it is missing; with `CI=true` they fail.
@Suite("Real ssh against a local sshd")
struct RealSSHTests {
    static let ssh = LocalSSHD.ssh
    static let installed = LocalSSHD.missing() == nil
    static let runsInCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let missing = "sshd, ssh or ssh-keygen is missing: install openssh-server (apt-get install -y openssh-server)"

    /// What the fake nvidia-smi does: answer with the idle query CSV and the bursty `-q` report, or fail.
    static let captures = """
        case "$*" in
          *--query-gpu=*) cat "$DIR/query.csv" ;;
          "-q -d UTILIZATION") cat "$DIR/report.txt" ;;
          *) echo "unexpected arguments: $*"; exit 2 ;;
        esac

        """

    static func instance(_ id: String, port: Int) -> Instance {
        Instance(
            key: InstanceKey(provider: .vast, id: id), name: id, state: .running, providerStatus: "running",
            ssh: SSHEndpoint(host: "127.0.0.1", port: port, user: LocalSSHD.userName))
    }

    @Test(
        "a real sshd: ok with the bursty buffer average 7 %, and a second instance under its own host-key alias",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"))
    func bursty() async throws {
        try #require(Self.installed, "\(Self.missing)")
        try await SSHServer.with(nvidiaSmi: Self.captures) { server in
            let sampler = server.sampler()
            let first = Self.instance("1001", port: server.port)
            let second = Self.instance("1002", port: server.port)
            let results = await sampler.sample([first, second])
            for key in [first.key, second.key] {
                guard case .ok(let gpus) = results[key] else {
                    Issue.record("expected an ok sample for \(key), got \(String(describing: results[key]))")
                    continue
                }
                #expect(gpus.map(\.pointUtilization) == [0])
                #expect(gpus.map(\.bufferAverage) == [7])
                #expect(results[key]?.utilization == 7)
            }
            let knownHosts = try String(contentsOfFile: server.directory + "/known_hosts", encoding: .utf8)
            let aliases = knownHosts.split(separator: "\n").compactMap { $0.split(separator: " ").first }.sorted()
            #expect(aliases == ["vast-1001", "vast-1002"])
        }
    }

    @Test(
        "a rebuilt instance's changed host key is failed (never ok) with an error; a new instance on the recycled address is ok",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"),
        arguments: [false, true])
    func changedHostKey(reuse: Bool) async throws {
        try #require(Self.installed, "\(Self.missing)")
        try await SSHServer.with(nvidiaSmi: Self.captures) { server in
            let sink = CapturingSink()
            let control = reuse ? try SSHControlDirectory.create(environment: ["TMPDIR": server.directory]) : nil
            let sampler = server.sampler(logger: Logger(level: .warning, sink: sink), controlDirectory: control)
            let knownHostsPath = server.directory + "/known_hosts"
            let rebuilt = Self.instance("1001", port: server.port)
            let before = await sampler.sample(rebuilt)
            #expect(before.utilization == 7, "host key A: expected an ok sample, got \(before)")
            let keyA = try server.hostPublicKey()
            #expect(try Self.knownHosts(knownHostsPath) == ["vast-1001": keyA])

            try await server.restartWithNewHostKey()
            let keyB = try server.hostPublicKey()
            #expect(keyB != keyA)
            if let control {
                // A rebuilt instance drops its connections: so does the master, and its socket goes with it.
                let socket = control.path + "/vast-1001"
                #expect(FileManager.default.fileExists(atPath: socket), "no master was kept for vast-1001")
                server.endSessions()
                try await Self.waitUntil("the master of vast-1001 ends") { !FileManager.default.fileExists(atPath: socket) }
            }

            let after = await sampler.sample(rebuilt)
            guard case .failed(let reason) = after else {
                Issue.record("a changed host key for the same instance must be a failed sample, got \(after)")
                return
            }
            #expect(reason.contains("host key changed"), "reason: \(reason)")
            #expect(
                sink.captured == [
                    "error: Host key changed vast/1001: refusing to sample; if the instance was rebuilt, remove the line"
                        + " \"vast-1001\" from \(knownHostsPath)"
                ])

            let recycled = await sampler.sample(Self.instance("1002", port: server.port))
            #expect(recycled.utilization == 7, "a new instance on the recycled address: expected ok, got \(recycled)")
            #expect(try Self.knownHosts(knownHostsPath) == ["vast-1001": keyA, "vast-1002": keyB])
            await sampler.close()
        }
    }

    @Test(
        "with SSH_CONTROL_PERSIST, later samples ride the first connection; close stops the master and removes its socket",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"))
    func connectionReuse() async throws {
        try #require(Self.installed, "\(Self.missing)")
        try await SSHServer.with(nvidiaSmi: Self.captures) { server in
            // Without reuse each sample is a connection of its own: what the count below is measured against.
            let plain = server.sampler()
            for _ in 0..<2 {
                let result = await plain.sample(Self.instance("1001", port: server.port))
                #expect(result.utilization == 7, "without reuse: \(result)")
            }
            #expect(try server.acceptedConnections() == 2)

            let control = try SSHControlDirectory.create(environment: ["TMPDIR": server.directory])
            let sampler = server.sampler(controlDirectory: control, controlPersist: 60)
            for _ in 0..<3 {
                let result = await sampler.sample(Self.instance("1002", port: server.port))
                #expect(result.utilization == 7, "with reuse: \(result)")
            }
            #expect(try server.acceptedConnections() == 3, "three samples with reuse should add one connection")
            let socket = control.path + "/vast-1002"
            let type = try FileManager.default.attributesOfItem(atPath: socket)[.type] as? FileAttributeType
            #expect(type == .typeSocket)
            let masters = Self.processes(mentioning: control.path)
            #expect(masters.count == 1, "expected one ssh master for \(control.path)")
            for master in masters {
                // Detached from the daemon: a session of its own (no signal to our group reaches it, and it holds no
                // terminal), and its standard streams on /dev/null, so it holds none of the runner's pipes.
                #expect(getsid(master) != getsid(0))
                for stream in 0...2 {
                    let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(master)/fd/\(stream)")
                    #expect(target == "/dev/null", "the master's fd \(stream) is \(target)")
                }
            }

            await sampler.close()
            #expect(!FileManager.default.fileExists(atPath: control.path))
            try await Self.waitUntil("the ssh master exits") { Self.processes(mentioning: control.path).isEmpty }
            // A sample after close opens a connection of its own again, and keeps no master.
            let after = await sampler.sample(Self.instance("1002", port: server.port))
            #expect(after.utilization == 7, "after close: \(after)")
            #expect(try server.acceptedConnections() == 4)
            #expect(Self.processes(mentioning: control.path).isEmpty)
        }
    }

    /// Live (not zombie) processes whose command line mentions `text`: an ssh master shows
    /// `ssh: <ControlPath> [mux]`.
    static func processes(mentioning text: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else {
                return false
            }
            let commandLine = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            return commandLine.contains(text)
        }
    }

    /// Polls `condition` every 20 ms for up to 10 s.
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<500 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting until \(what)")
    }

    /// known_hosts as alias → "type base64".
    static func knownHosts(_ path: String) throws -> [String: String] {
        var entries: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            entries[String(fields[0])] = "\(fields[1]) \(fields[2])"
        }
        return entries
    }

    @Test(
        "a real sshd whose nvidia-smi finds no device (status 6): failed",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"))
    func noDevices() async throws {
        try #require(Self.installed, "\(Self.missing)")
        try await SSHServer.with(nvidiaSmi: "echo 'No devices were found'; exit 6\n") { server in
            let result = await server.sampler().sample(Self.instance("2001", port: server.port))
            #expect(result == .failed("nvidia-smi failed (status 6): No devices were found"))
        }
    }

    @Test(
        "a port nobody listens on is ssh's own failure (status 255): failed",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"))
    func wrongPort() async throws {
        try #require(Self.installed, "\(Self.missing)")
        try await SSHServer.with(nvidiaSmi: Self.captures) { server in
            let closed = try LocalSSHD.freePort()
            let result = await server.sampler().sample(Self.instance("3001", port: closed))
            guard case .failed(let reason) = result else {
                Issue.record("expected a failed sample, got \(result)")
                return
            }
            #expect(reason.hasPrefix("ssh failed (status 255)"))
            #expect(reason.contains("Connection refused"))
        }
    }

    @Test(
        "ssh -G accepts every option of the sampler's argv, and the destination is the instance's",
        .enabled(if: RealSSHTests.installed || RealSSHTests.runsInCI, "\(RealSSHTests.missing); skipped outside CI"))
    func sshAcceptsOptions() async throws {
        try #require(Self.installed, "\(Self.missing)")
        let sampler = GPUSampler(
            runner: ProcessCommandRunner(),
            settings: SSHSettings(command: Self.ssh, keyPath: "/nonexistent/key", connectTimeout: 4, controlPersist: 120),
            knownHostsPath: "/nonexistent/known_hosts", logger: .silent,
            controlDirectory: SSHControlDirectory(path: "/run/cost-optimizer/ssh-Ab12Cd"))
        let arguments = try sampler.arguments(for: Self.instance("4001", port: 2200)).get()
        let result = try await ProcessCommandRunner().run(
            Command(executable: Self.ssh, arguments: ["-G"] + arguments.dropLast(), environment: ["PATH": "/usr/bin:/bin"]))
        let config = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.status == 0, "ssh -G: \(String(decoding: result.stderr, as: UTF8.self))")
        let lines = Set(config.split(separator: "\n").map(String.init))
        for line in [
            "hostname 127.0.0.1", "port 2200", "hostkeyalias vast-4001", "batchmode yes", "connecttimeout 4",
            "stricthostkeychecking accept-new", "userknownhostsfile /nonexistent/known_hosts",
            "globalknownhostsfile /dev/null", "identitiesonly yes", "identityagent none",
            "identityfile /nonexistent/key", "forwardagent no", "clearallforwardings yes", "requesttty false",
            "loglevel ERROR", "controlmaster auto", "controlpersist 120",
            "controlpath /run/cost-optimizer/ssh-Ab12Cd/vast-4001",
        ] {
            #expect(lines.contains(line), "ssh -G lacks \(line)")
        }
        #expect(!lines.contains { $0.hasPrefix("proxycommand ") && $0 != "proxycommand none" })
    }
}

/// A throwaway `sshd -D -e` on a free loopback port, run through `ProcessCommandRunner` and stopped by cancelling it.
struct SSHServer: Sendable {
    let directory: String
    let port: Int
    /// sshd's pid; a restart (SIGHUP) keeps it.
    let pid: pid_t

    /// Starts a server, runs `body`, and stops the server whatever happens; fails when a process is left behind.
    static func with(nvidiaSmi: String, _ body: (SSHServer) async throws -> Void) async throws {
        let directory = try await makeDirectory(nvidiaSmi: nvidiaSmi)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lastFailure = "sshd did not start"
        for _ in 0..<3 {
            let port = try LocalSSHD.freePort()
            let config = try LocalSSHD.writeConfig(directory: directory, port: port)
            let task = Task {
                try await ProcessCommandRunner().run(
                    Command(
                        executable: LocalSSHD.sshd, arguments: ["-D", "-E", directory + "/sshd.log", "-f", config],
                        environment: [:],
                        timeout: 300, outputLimit: 1 << 22))
            }
            guard let pid = await LocalSSHD.waitForPidFile(directory + "/sshd.pid") else {
                task.cancel()
                let stderr = (try? await task.value).map { String(decoding: $0.stderr, as: UTF8.self) }
                let log = try? String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)
                lastFailure = "sshd did not start on port \(port): \(stderr ?? "no output") \(log ?? "")"
                continue
            }
            let server = SSHServer(directory: directory, port: port, pid: pid)
            var failure: (any Error)?
            do {
                try await body(server)
            } catch {
                failure = error
            }
            task.cancel()
            _ = await task.result
            #expect(kill(pid, 0) == -1, "sshd (pid \(pid)) is still running after the test")
            if let failure { throw failure }
            return
        }
        Issue.record("\(lastFailure)")
    }

    /// The sampler, with the throwaway client key and a known_hosts file in the server's directory; with a control
    /// directory, it keeps master connections for `controlPersist` seconds.
    func sampler(
        logger: Logger = .silent, controlDirectory: SSHControlDirectory? = nil, controlPersist: Int = 60
    ) -> GPUSampler {
        GPUSampler(
            runner: ProcessCommandRunner(),
            settings: SSHSettings(
                command: RealSSHTests.ssh, keyPath: directory + "/client_key", connectTimeout: 5, concurrency: 4,
                controlPersist: controlPersist),
            knownHostsPath: directory + "/known_hosts", logger: logger, controlDirectory: controlDirectory)
    }

    /// How many connections sshd accepted so far (its log's "Accepted publickey" lines).
    func acceptedConnections() throws -> Int {
        let log = try String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)
        // sshd ends its log lines with "\r\n", one Character in Swift: count the phrase, not lines.
        return log.components(separatedBy: "Accepted publickey").count - 1
    }

    /// Ends every connection sshd is serving (its children, the per-connection processes), as a rebuilt machine
    /// would; the listener keeps running.
    func endSessions() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for child in entries.compactMap({ pid_t($0) }) {
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == pid { kill(child, SIGTERM) }
        }
    }

    /// The server's host public key as "type base64", as known_hosts records it.
    func hostPublicKey() throws -> String {
        let fields = try String(contentsOfFile: directory + "/host_key.pub", encoding: .utf8).split(separator: " ")
        return "\(fields[0]) \(fields[1])"
    }

    /// Restarts sshd on the same port with a new host key, as a rebuilt instance comes back: a fresh key from
    /// ssh-keygen, then SIGHUP (sshd re-executes itself, keeping its pid, and loads the new key).
    func restartWithNewHostKey() async throws {
        let files = FileManager.default
        for file in ["host_key", "host_key.pub"] { try files.removeItem(atPath: directory + "/" + file) }
        try await LocalSSHD.generateKey(directory + "/host_key")
        try? files.removeItem(atPath: directory + "/sshd.pid")
        #expect(kill(pid, SIGHUP) == 0)
        let restarted = await LocalSSHD.waitForPidFile(directory + "/sshd.pid")
        try #require(restarted == pid, "sshd did not come back on port \(port) after SIGHUP")
    }

    static func makeDirectory(nvidiaSmi: String) async throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sshd-\(UUID().uuidString)").path
        let files = FileManager.default
        try await LocalSSHD.prepare(directory: directory)
        try files.copyItem(
            atPath: try fixture("h100-query-idle.csv"), toPath: directory + "/query.csv")
        try files.copyItem(
            atPath: try fixture("h100-q-utilization-bursty.txt"), toPath: directory + "/report.txt")
        let script = "#!/bin/sh\nDIR='\(directory)'\n" + nvidiaSmi
        try script.write(toFile: directory + "/bin/nvidia-smi", atomically: true, encoding: .utf8)
        try files.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/bin/nvidia-smi")
        return directory
    }

    static func fixture(_ name: String) throws -> String {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")).path
    }
}
