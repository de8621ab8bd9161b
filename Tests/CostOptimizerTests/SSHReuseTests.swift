import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ssh connection reuse (`SSH_CONTROL_PERSIST`): the options in the argv, the control directory, and the teardown
/// that stops every master. Against a real sshd: `RealSSHTests`.
@Suite("ssh connection reuse")
struct SSHReuseTests {
    static func sampler(
        _ runner: any CommandRunner, controlPersist: Int = 120, directory: SSHControlDirectory?,
        logger: Logger = .silent
    ) -> GPUSampler {
        GPUSampler(
            runner: runner,
            settings: SSHSettings(
                command: "/usr/bin/ssh", keyPath: "/k", connectTimeout: 7, concurrency: 4,
                controlPersist: controlPersist),
            knownHostsPath: "/var/lib/cost-optimizer/known_hosts", logger: logger,
            environment: ["PATH": "/usr/bin:/bin"], controlDirectory: directory)
    }

    /// The values of the `-o` options of an argv, in order.
    static func options(_ arguments: [String]) -> [String] {
        zip(arguments, arguments.dropFirst()).filter { $0.0 == "-o" }.map(\.1)
    }

    @Test("with a control directory and SSH_CONTROL_PERSIST > 0: ControlMaster=auto, ControlPersist and a path per instance")
    func optionsWhenOn() throws {
        let sampler = Self.sampler(
            FakeCommandRunner(), directory: SSHControlDirectory(path: "/run/cost-optimizer/ssh-AbC123"))
        #expect(sampler.reusesConnections)
        let arguments = try sampler.arguments(for: GPUSamplerTests.instance("123", port: 2222)).get()
        let options = Self.options(arguments)
        #expect(options.contains("ControlMaster=auto"))
        #expect(options.contains("ControlPersist=120"))
        #expect(options.contains("ControlPath=/run/cost-optimizer/ssh-AbC123/vast-123"))
        // The host-key checks are the same as without reuse: the master is the connection that verifies the key.
        #expect(options.contains("HostKeyAlias=vast-123"))
        #expect(options.contains("StrictHostKeyChecking=accept-new"))
        // Options stay before the destination.
        let separator = try #require(arguments.firstIndex(of: "--"))
        let lastControl = try #require(arguments.lastIndex { $0.hasPrefix("Control") })
        #expect(lastControl < separator)
        #expect(Array(arguments[separator...]) == ["--", "root@10.0.0.1", NvidiaSmiProbe.remoteCommand])
    }

    @Test("SSH_CONTROL_PERSIST=0, or no control directory: no Control option at all")
    func noOptionsWhenOff() throws {
        let directory = SSHControlDirectory(path: "/run/cost-optimizer/ssh-AbC123")
        for sampler in [
            Self.sampler(FakeCommandRunner(), controlPersist: 0, directory: directory),
            Self.sampler(FakeCommandRunner(), controlPersist: 120, directory: nil),
        ] {
            #expect(!sampler.reusesConnections)
            let arguments = try sampler.arguments(for: GPUSamplerTests.instance("123")).get()
            #expect(!arguments.contains { $0.hasPrefix("Control") })
        }
    }

    @Test("a control path longer than ssh can bind: that instance samples without reuse, with a debug line")
    func pathTooLong() throws {
        let longDirectory = "/tmp/" + String(repeating: "d", count: 70)
        let sink = SamplerTestLogSink()
        let sampler = Self.sampler(
            FakeCommandRunner(), directory: SSHControlDirectory(path: longDirectory),
            logger: Logger(level: .debug, sink: sink))
        // 76 + "/vast-1" = 83 bytes: fits; 76 + "/vast-" + 15 digits = 97 bytes: does not.
        let short = try sampler.arguments(for: GPUSamplerTests.instance("1")).get()
        #expect(Self.options(short).contains("ControlPath=\(longDirectory)/vast-1"))
        let long = try sampler.arguments(for: GPUSamplerTests.instance("123456789012345")).get()
        #expect(!long.contains { $0.hasPrefix("Control") })
        #expect(
            sink.messages(.debug) == [
                "ssh reuse off vast/123456789012345: its control path in \(longDirectory) would pass 90 bytes"
            ])
        #expect(SSHControlDirectory(path: longDirectory).socketPath(for: InstanceKey(provider: .vast, id: "1")) != nil)
        let limit = String(repeating: "x", count: SSHControlDirectory.maxSocketPathBytes - "/tmp/".count - "/vast-1".count)
        #expect(SSHControlDirectory(path: "/tmp/" + limit).socketPath(for: InstanceKey(provider: .vast, id: "1"))?.utf8.count == 90)
        #expect(SSHControlDirectory(path: "/tmp/" + limit + "x").socketPath(for: InstanceKey(provider: .vast, id: "1")) == nil)
    }

    @Test("create: a fresh 0700 directory under RUNTIME_DIRECTORY when set, else under TMPDIR, never a relative one")
    func createPlaces() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ctl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let runtime = try SSHControlDirectory.create(environment: ["RUNTIME_DIRECTORY": base, "TMPDIR": "/nonexistent"])
        #expect(runtime.path.hasPrefix(base + "/ssh-"))
        #expect(GPUSamplerTests.mode(runtime.path) == 0o700)
        let again = try SSHControlDirectory.create(environment: ["RUNTIME_DIRECTORY": base])
        #expect(again.path != runtime.path)
        let temporary = try SSHControlDirectory.create(environment: ["TMPDIR": base + "/"])
        #expect(temporary.path.hasPrefix(base + "/cost-optimizer-ssh-"))
        #expect(GPUSamplerTests.mode(temporary.path) == 0o700)
        let relative = try SSHControlDirectory.create(environment: ["TMPDIR": "relative"])
        defer { try? FileManager.default.removeItem(atPath: relative.path) }
        #expect(relative.path.hasPrefix("/tmp/cost-optimizer-ssh-"))
        for missing in [base + "/missing", base + "/no such dir"] {
            #expect(throws: SSHRefusal.self) { try SSHControlDirectory.create(environment: ["RUNTIME_DIRECTORY": missing]) }
        }
    }

    @Test("close: ssh -O exit once per control socket (not for other files), then the directory is gone; once only")
    func teardown() async throws {
        let directory = try SSHControlDirectory.create(environment: [:])
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        var listeners: [Int32] = []
        defer { listeners.forEach { close($0) } }
        for name in ["vast-1", "gcp-77", "tensordock-a-b"] {
            listeners.append(try Self.bindSocket(directory.path + "/" + name))
        }
        try "not a socket".write(toFile: directory.path + "/stray", atomically: false, encoding: .utf8)
        let runner = FakeCommandRunner(answer: FakeCommandRunner.everyHost(.success(CommandResult(status: 0))))
        let sampler = Self.sampler(runner, directory: directory)
        await sampler.close()
        let expected = ["gcp-77", "tensordock-a-b", "vast-1"].map { name in
            ["-F", "none", "-o", "ControlPath=\(directory.path)/\(name)", "-O", "exit", "--", "cost-optimizer-control"]
        }
        #expect(runner.commands.map(\.arguments).sorted { $0.lexicographicallyPrecedes($1) } == expected)
        #expect(runner.commands.allSatisfy { $0.executable == "/usr/bin/ssh" && $0.timeout <= 5 })
        #expect(runner.commands.allSatisfy { $0.environment == ["PATH": "/usr/bin:/bin", "LANG": "C"] })
        #expect(!FileManager.default.fileExists(atPath: directory.path))
        await sampler.close()
        #expect(runner.commands.count == 3)
    }

    @Test("close: a master that will not stop is a warning naming its socket; the directory is removed anyway")
    func teardownFailure() async throws {
        let directory = try SSHControlDirectory.create(environment: [:])
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        let listener = try Self.bindSocket(directory.path + "/vast-9")
        defer { close(listener) }
        let runner = FakeCommandRunner(queue: [.failure(.timedOut(seconds: 5))])
        let sink = SamplerTestLogSink()
        await Self.sampler(runner, directory: directory, logger: Logger(level: .debug, sink: sink)).close()
        #expect(sink.messages(.warning) == ["ssh master not stopped \(directory.path)/vast-9: killed after 5 s without finishing"])
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }

    /// A listening Unix socket at `path`, as an ssh master leaves one.
    static func bindSocket(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CommandError.launchFailed(executable: "socket", detail: "errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() where index < buffer.count - 1 { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            close(fd)
            throw CommandError.launchFailed(executable: "bind", detail: "errno \(errno)")
        }
        return fd
    }
}

extension GPUSamplerTests {
    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }
}

/// Records `close()`.
final class ClosingSampler: GPUSampling {
    let closes = Atomic<Int>(0)

    func sample(_ instances: [Instance]) async -> [InstanceKey: SampleResult] { [:] }
    func close() async { closes.add(1, ordering: .relaxed) }
}

@Suite("ssh connection reuse: the daemon's control directory", .serialized)
struct SSHControlLifecycleTests {
    @Test("Daemon.run closes the sampler (its ssh masters) once it stops")
    func runCloses() async throws {
        let sampler = ClosingSampler()
        let shutdown = ShutdownSignal()
        let daemon = Daemon(
            config: try Config.parse(environment: ["VAST_API_KEY": "k"]), providers: [], sampler: sampler,
            store: MemoryStateStore(), notifier: RecordingNotifier(),
            clock: FakeClock(now: Date(timeIntervalSince1970: 1_800_000_000)), logger: .silent, shutdown: shutdown)
        shutdown.request()
        try await daemon.run()
        #expect(sampler.closes.load(ordering: .relaxed) == 1)
    }

    /// The control directory named in the fake ssh's argv log, or nil when no ControlPath was passed.
    static func controlDirectory(in argvLog: String) -> String? {
        guard let range = argvLog.range(of: "ControlPath=") else { return nil }
        let path = argvLog[range.upperBound...].prefix { $0 != " " && $0 != "\n" }
        return (path as NSString).deletingLastPathComponent
    }

    static func runtimeDirectory(_ stage: Stage) throws -> String {
        let runtime = stage.directory + "/run"
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        return runtime
    }

    @Test("--run-once: ssh masters get a 0700 directory in RUNTIME_DIRECTORY, removed at exit; none with SSH_CONTROL_PERSIST=0")
    func runOnce() async throws {
        let stage = try Stage()
        stage.addRunning(id: 601, label: nil, port: 41061, utilization: 50)
        let runtime = try Self.runtimeDirectory(stage)
        let (status, _, stderr) = try await stage.run(["--run-once"], environment: ["RUNTIME_DIRECTORY": runtime])
        #expect(status == 0, "\(stderr)")
        let directory = try #require(Self.controlDirectory(in: stage.ssh.argvLog), "no ControlPath in \(stage.ssh.argvLog)")
        #expect(directory.hasPrefix(runtime + "/ssh-"))
        #expect(stage.ssh.argvLog.contains("ControlPath=\(directory)/vast-601"))
        #expect(stage.ssh.argvLog.contains("ControlMaster=auto") && stage.ssh.argvLog.contains("ControlPersist=120"))
        #expect(stderr.contains("ssh connection reuse: control sockets in \(directory), masters kept 120 s"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: runtime).isEmpty, "left behind in \(runtime)")

        let off = try Stage()
        off.addRunning(id: 602, label: nil, port: 41062, utilization: 50)
        let offRuntime = try Self.runtimeDirectory(off)
        let (offStatus, _, _) = try await off.run(
            ["--run-once"], environment: ["RUNTIME_DIRECTORY": offRuntime, "SSH_CONTROL_PERSIST": "0"])
        #expect(offStatus == 0)
        #expect(!off.ssh.argvLog.contains("Control"))
        #expect(off.ssh.argvLog.contains("HostKeyAlias=vast-602"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: offRuntime).isEmpty)
    }

    @Test("run: the control directory exists while the daemon runs and is removed on SIGTERM")
    func sigterm() async throws {
        let stage = try Stage()
        stage.addRunning(id: 611, label: nil, port: 41071, utilization: 50)
        let runtime = try Self.runtimeDirectory(stage)
        let process = Process()
        process.executableURL = Stage.executable
        process.arguments = ["run"]
        process.environment = stage.environment.merging(["CHECK_INTERVAL": "1", "RUNTIME_DIRECTORY": runtime]) { $1 }
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<400 where Self.controlDirectory(in: stage.ssh.argvLog) == nil {
            try await Task.sleep(nanoseconds: 25_000_000)
        }
        let directory = try #require(Self.controlDirectory(in: stage.ssh.argvLog))
        #expect(FileManager.default.fileExists(atPath: directory))
        #expect(GPUSamplerTests.mode(directory) == 0o700)
        process.terminate()  // SIGTERM
        for _ in 0..<400 where process.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(try FileManager.default.contentsOfDirectory(atPath: runtime).isEmpty)
    }
}
