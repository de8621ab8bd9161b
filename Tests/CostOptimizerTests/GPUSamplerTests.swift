import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Records log lines for the sampler tests.
final class SamplerTestLogSink: LogSink {
    private let lines = Mutex<[(LogLevel, String)]>([])

    func write(level: LogLevel, message: String) { lines.withLock { $0.append((level, message)) } }

    func messages(_ level: LogLevel) -> [String] { lines.withLock { $0.filter { $0.0 == level }.map(\.1) } }
}

@Suite("GPUSampler")
struct GPUSamplerTests {
    static func instance(
        _ id: String, host: String = "10.0.0.1", port: Int = 22, user: String = "root", ssh: Bool = true
    ) -> Instance {
        Instance(
            key: InstanceKey(provider: .vast, id: id), name: "gpu-\(id)", state: .running, providerStatus: "running",
            ssh: ssh ? SSHEndpoint(host: host, port: port, user: user) : nil)
    }

    static func sampler(
        _ runner: any CommandRunner, keyPath: String? = "/etc/cost-optimizer/ssh_key", concurrency: Int = 16,
        logger: Logger = .silent
    ) -> GPUSampler {
        GPUSampler(
            runner: runner, settings: SSHSettings(command: "ssh", keyPath: keyPath, connectTimeout: 7, concurrency: concurrency),
            knownHostsPath: "/var/lib/cost-optimizer/known_hosts", logger: logger,
            environment: ["PATH": "/usr/bin:/bin", "HOME": "/root", "VAST_API_KEY": "k-secret", "SSH_AUTH_SOCK": "/s"])
    }

    static func fixture(_ name: String) throws -> String {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test("the ssh argv is the hardened one, with -- right before the destination and the constant remote command last")
    func argv() throws {
        let arguments = try Self.sampler(FakeCommandRunner()).arguments(for: Self.instance("123", port: 2222)).get()
        let options = [
            "BatchMode=yes", "ConnectTimeout=7", "ConnectionAttempts=1", "StrictHostKeyChecking=accept-new",
            "UserKnownHostsFile=/var/lib/cost-optimizer/known_hosts", "GlobalKnownHostsFile=/dev/null",
            "HostKeyAlias=vast-123", "UpdateHostKeys=no", "CheckHostIP=no", "ServerAliveInterval=10",
            "ServerAliveCountMax=3", "IdentitiesOnly=yes", "IdentityAgent=none",
            "IdentityFile=/etc/cost-optimizer/ssh_key", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no",
            "ForwardAgent=no", "ForwardX11=no", "ClearAllForwardings=yes", "PermitLocalCommand=no", "RequestTTY=no",
            "LogLevel=ERROR",
        ]
        let expected =
            ["-F", "none", "-T", "-n"] + options.flatMap { ["-o", $0] }
            + ["-p", "2222", "--", "root@10.0.0.1", NvidiaSmiProbe.remoteCommand]
        #expect(arguments == expected)
        let separator = try #require(arguments.firstIndex(of: "--"))
        #expect(arguments[separator + 1] == "root@10.0.0.1")
        #expect(arguments.count == separator + 3)
    }

    @Test("without SSH_KEY_PATH there is no IdentityFile nor IdentitiesOnly, and still no agent")
    func argvWithoutKey() throws {
        let arguments = try Self.sampler(FakeCommandRunner(), keyPath: nil).arguments(for: Self.instance("9")).get()
        #expect(!arguments.contains { $0.hasPrefix("IdentityFile=") || $0.hasPrefix("IdentitiesOnly=") })
        #expect(arguments.contains("IdentityAgent=none"))
        #expect(arguments.contains("HostKeyAlias=vast-9"))
    }

    @Test("the child gets an allowlisted environment, the deadline and the output limit")
    func commandShape() throws {
        let command = try Self.sampler(FakeCommandRunner()).command(for: Self.instance("1")).get()
        #expect(command.executable == "ssh")
        #expect(command.environment == ["PATH": "/usr/bin:/bin", "LANG": "C", "HOME": "/root"])
        #expect(command.timeout == 37)
        #expect(command.outputLimit == 1 << 20)
    }

    @Test(
        "unsafe hosts are refused: no process started, a failed sample",
        arguments: ["-oProxyCommand=x", "a b", "", "a\nb", "-x", "host;id", "h$(id)", "[::1]", "höst", "a\tb"])
    func refusedHosts(host: String) async {
        let runner = FakeCommandRunner(answer: FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let results = await Self.sampler(runner).sample([Self.instance("1", host: host)])
        #expect(runner.commands.isEmpty)
        guard case .failed(let reason) = results[InstanceKey(provider: .vast, id: "1")] else {
            Issue.record("expected a failed sample for host \(host)")
            return
        }
        #expect(reason.hasPrefix("refused ssh host"))
        #expect(!reason.contains("\n"))
    }

    @Test("unsafe users, ports and ids are refused", arguments: [
        instance("1", user: "-oProxyCommand=x"), instance("1", user: "a@b"), instance("1", user: "a b"),
        instance("1", user: ""), instance("1", port: 0), instance("1", port: 65536), instance("1 2"),
        instance("x=y"), instance(""),
    ])
    func refusedOthers(instance: Instance) async {
        let runner = FakeCommandRunner(answer: FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let results = await Self.sampler(runner).sample([instance])
        #expect(runner.commands.isEmpty)
        guard case .failed(let reason) = results[instance.key] else {
            Issue.record("expected a failed sample")
            return
        }
        #expect(reason.hasPrefix("refused"))
    }

    @Test("IPv6 addresses, names with dots and dashes, and usual users are accepted")
    func accepted() throws {
        let sampler = Self.sampler(FakeCommandRunner())
        for instance in [
            Self.instance("1", host: "::1"), Self.instance("2", host: "ssh5.vast.ai", user: "ubuntu"),
            Self.instance("3", host: "gpu-box_1.example.com", user: "first.last-2"),
        ] {
            #expect((try? sampler.arguments(for: instance).get()) != nil)
        }
    }

    @Test("a known_hosts path or key path ssh would misread is refused")
    func refusedPaths() {
        let runner = FakeCommandRunner()
        for keyPath in ["/keys/my key", "/keys/%d", "/keys/${HOME}", "/keys/\"k\""] {
            let result = Self.sampler(runner, keyPath: keyPath).arguments(for: Self.instance("1"))
            #expect(throws: SSHRefusal.self) { try result.get() }
        }
    }

    @Test("instances without an ssh endpoint are not sampled")
    func noEndpoint() async {
        let runner = FakeCommandRunner(answer: FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let results = await Self.sampler(runner).sample([Self.instance("1"), Self.instance("2", ssh: false)])
        #expect(Array(results.keys) == [InstanceKey(provider: .vast, id: "1")])
        #expect(runner.commands.count == 1)
    }

    @Test("at most SSH_CONCURRENCY calls run at once, and every instance gets its result")
    func concurrencyBound() async {
        let runner = FakeCommandRunner(
            delay: .milliseconds(40), answer: FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let instances = (0..<20).map { Self.instance("\($0)", host: "10.0.0.\($0 + 1)") }
        let results = await Self.sampler(runner, concurrency: 3).sample(instances)
        #expect(results.count == 20)
        #expect(results.values.allSatisfy { $0.utilization == 1 })
        #expect(runner.maxInFlight == 3)
        #expect(runner.commands.count == 20)
    }

    @Test("ssh status 255 is a failed sample with ssh's message; other hosts are unaffected")
    func status255() async {
        let runner = FakeCommandRunner(
            answer: FakeCommandRunner.byHost(
                ["10.0.0.2": .success(.sshFailure("ssh: connect to host 10.0.0.2 port 22: Connection refused"))],
                otherwise: .success(.probe([.idle]))))
        let sink = SamplerTestLogSink()
        let sampler = Self.sampler(runner, logger: Logger(level: .debug, sink: sink))
        let results = await sampler.sample([Self.instance("1"), Self.instance("2", host: "10.0.0.2")])
        #expect(
            results[InstanceKey(provider: .vast, id: "2")]
                == .failed("ssh failed (status 255): ssh: connect to host 10.0.0.2 port 22: Connection refused"))
        #expect(results[InstanceKey(provider: .vast, id: "1")]?.utilization == 1)
        #expect(
            sink.messages(.warning) == [
                "GPU sample failed vast/2: ssh failed (status 255): ssh: connect to host 10.0.0.2 port 22: Connection refused"
            ])
        #expect(sink.messages(.error).isEmpty)
        #expect(sink.messages(.debug).count == 2)
        #expect(sink.messages(.debug).allSatisfy { !$0.contains("ssh_key") && !$0.contains("k-secret") })
    }

    @Test(
        "a changed host key is a failed sample saying so, and an error naming the alias and the known_hosts file",
        arguments: [
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
                + "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
                + "Host key for vast-7 has changed and you have requested strict checking.\n"
                + "Host key verification failed.",
            "Host key verification failed.",
        ])
    func hostKeyChanged(stderr: String) async {
        let runner = FakeCommandRunner(queue: [.success(.sshFailure(stderr))])
        let sink = SamplerTestLogSink()
        let result = await Self.sampler(runner, logger: Logger(level: .debug, sink: sink)).sample(Self.instance("7"))
        #expect(result == .failed(GPUSampler.hostKeyChangedReason))
        #expect(GPUSampler.hostKeyChangedReason.hasPrefix("host key changed"))
        #expect(result.utilization == nil)
        #expect(
            sink.messages(.error) == [
                "Host key changed vast/7: refusing to sample; if the instance was rebuilt, remove the line \"vast-7\""
                    + " from /var/lib/cost-optimizer/known_hosts"
            ])
        #expect(sink.messages(.warning).isEmpty)
    }

    @Test("the phrase in the remote command's own stderr (not ssh's status 255) is not a changed host key")
    func hostKeyPhraseFromRemote() {
        let remote = CommandResult(status: 1, stderr: Data("Host key verification failed.\n".utf8))
        #expect(!GPUSampler.showsChangedHostKey(remote))
        #expect(GPUSampler.interpret(remote) == .failed("remote command failed (status 1); stderr: Host key verification failed."))
    }

    @Test("the captured bursty output through ssh is ok with the buffer average")
    func fixtureOutput() async throws {
        let stdout =
            try Self.fixture("h100-query-idle.csv") + "@@status query 0\n" + Self.fixture("h100-q-utilization-bursty.txt")
            + "@@status utilization 0\n"
        let runner = FakeCommandRunner(queue: [.success(CommandResult(status: 0, stdout: Data(stdout.utf8)))])
        let result = await Self.sampler(runner).sample(Self.instance("1"))
        #expect(result.utilization == 7)
    }

    @Test("remote failures, runner errors and signals are failed samples, with stderr's first line")
    func failures() async {
        let cases: [(Result<CommandResult, CommandError>, String)] = [
            (.success(.probeFailure(.noDevices)), "nvidia-smi failed (status 6): No devices were found"),
            (
                .success(.probeFailure(.notInstalled)),
                "nvidia-smi or timeout is missing on the instance (status 127); stderr: timeout: failed to run command"
                    + " 'nvidia-smi': No such file or directory"
            ),
            (.failure(.timedOut(seconds: 37)), "ssh call failed: killed after 37 s without finishing"),
            (.failure(.outputTooLarge(limit: 1 << 20)), "ssh call failed: wrote more than 1048576 bytes of output"),
            (.success(CommandResult(status: 9, signaled: true)), "ssh was killed by signal 9"),
            (.success(CommandResult(status: 1, stderr: Data("bash: sh: not found\n".utf8))),
             "remote command failed (status 1); stderr: bash: sh: not found"),
        ]
        for (answer, reason) in cases {
            let runner = FakeCommandRunner(queue: [answer])
            #expect(await Self.sampler(runner).sample(Self.instance("1")) == .failed(reason))
        }
    }

    @Test("cancelling the sampling task cancels every call in flight: failed samples, quickly")
    func cancellation() async {
        let runner = FakeCommandRunner(delay: .seconds(120), answer: FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let sampler = Self.sampler(runner, concurrency: 2)
        let instances = (0..<5).map { Self.instance("\($0)") }
        let task = Task { await sampler.sample(instances) }
        while runner.commands.count < 2 { try? await Task.sleep(for: .milliseconds(5)) }
        let started = ContinuousClock.now
        task.cancel()
        let results = await task.value
        #expect(ContinuousClock.now - started < .seconds(30))  // far below the 120 s calls
        #expect(results.count == 5)
        #expect(results.values.allSatisfy { if case .failed = $0 { true } else { false } })
        #expect(runner.commands.count == 2)
    }
}

/// The sampler with the real `ProcessCommandRunner` and a stand-in ssh that runs the remote command under `/bin/sh`
/// with a fake `nvidia-smi`: the remote command works under a POSIX shell, and cancellation kills the child.
@Suite("GPUSampler with real child processes")
struct GPUSamplerProcessTests {
    /// A directory holding `ssh` (runs its last argument with `sh -c`, as sshd does, unless `ssh` gives another
    /// body) and `bin/nvidia-smi`.
    static func rig(nvidiaSmi: String, ssh body: String? = nil) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sampler-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
        let ssh = """
            #!/bin/sh
            echo $$ > '\(directory)/ssh.pid'
            \(body ?? "for last; do :; done; PATH='\(directory)/bin:/usr/bin:/bin' exec /bin/sh -c \"$last\"")

            """
        try ssh.write(toFile: directory + "/ssh", atomically: true, encoding: .utf8)
        try ("#!/bin/sh\n" + nvidiaSmi).write(toFile: directory + "/bin/nvidia-smi", atomically: true, encoding: .utf8)
        for file in ["/ssh", "/bin/nvidia-smi"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + file)
        }
        return directory
    }

    static func sampler(_ directory: String) -> GPUSampler {
        GPUSampler(
            runner: ProcessCommandRunner(), settings: SSHSettings(command: directory + "/ssh", connectTimeout: 5),
            knownHostsPath: directory + "/known_hosts", logger: .silent)
    }

    @Test("the remote command runs under /bin/sh and its output parses: bursty average 7 %")
    func remoteCommandUnderSh() async throws {
        let query = try GPUSamplerTests.fixture("h100-query-idle.csv")
        let report = try GPUSamplerTests.fixture("h100-q-utilization-bursty.txt")
        let directory = try Self.rig(
            nvidiaSmi: """
                case "$*" in
                  *--query-gpu=index,pci.bus_id,name,utilization.gpu,memory.used,memory.total,temperature.gpu*) printf '%s' '\(query)' ;;
                  "-q -d UTILIZATION") printf '%s' '\(report)' ;;
                  *) echo "unexpected arguments: $*"; exit 2 ;;
                esac

                """)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = await Self.sampler(directory).sample(GPUSamplerTests.instance("1"))
        #expect(result.utilization == 7)
    }

    @Test("nvidia-smi exiting 6 with 'No devices were found' is a failed sample")
    func noDevices() async throws {
        let directory = try Self.rig(nvidiaSmi: "echo 'No devices were found'; exit 6\n")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = await Self.sampler(directory).sample(GPUSamplerTests.instance("1"))
        #expect(result == .failed("nvidia-smi failed (status 6): No devices were found"))
    }

    @Test("cancelling the sampling task kills the ssh child")
    func cancellationKillsChild() async throws {
        // The stand-in ssh itself hangs (a local `timeout` would move the remote side into a process group of its own).
        let directory = try Self.rig(nvidiaSmi: "exit 0\n", ssh: "exec sleep 120")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sampler = Self.sampler(directory)
        let task = Task { await sampler.sample([GPUSamplerTests.instance("1")]) }
        var pid: pid_t?
        for _ in 0..<500 where pid == nil {
            pid = (try? String(contentsOfFile: directory + "/ssh.pid", encoding: .utf8)).flatMap { pid_t($0.trimmed) }
            try await Task.sleep(for: .milliseconds(10))
        }
        let child = try #require(pid)
        let started = ContinuousClock.now
        task.cancel()
        let results = await task.value
        #expect(ContinuousClock.now - started < .seconds(30))  // far below the 120 s child
        #expect(results[InstanceKey(provider: .vast, id: "1")] == .failed("ssh call failed: cancelled"))
        #expect(kill(child, 0) == -1)
    }
}
