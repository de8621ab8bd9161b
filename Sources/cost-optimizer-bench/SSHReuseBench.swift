import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Sampling time with and without ssh connection reuse, through the daemon's own `GPUSampler` and the system's
/// `/usr/bin/ssh` against a real `sshd` on 127.0.0.1 (throwaway host and client keys, a fake `nvidia-smi` on the
/// remote PATH). K instances (aliases of the same sshd) are sampled M times each way.
struct SSHReuseBench {
    struct Options {
        var instances: Int
        var passes: Int
        var concurrency: Int
    }

    /// One way of sampling (without or with reuse).
    struct Way {
        var name: String
        /// Wall seconds of each pass after the first.
        var passes: [Double]
        /// Wall seconds of the first pass (with reuse, it opens the masters).
        var firstPass: Double
        /// Mean wall seconds of one ssh call (the runner's view), passes after the first.
        var meanCall: Double
        /// CPU seconds of the ssh clients (this process's reaped children) per pass, after the first.
        var clientCPUPerPass: Double
        /// CPU seconds of sshd and its per-connection processes per pass, after the first.
        var sshdCPUPerPass: Double
        /// New connections sshd accepted per pass, after the first.
        var connectionsPerPass: Double
        var failures: Int
        var meanPass: Double { passes.isEmpty ? .nan : passes.reduce(0, +) / Double(passes.count) }
    }

    struct Result {
        var instances: Int
        var passes: Int
        var concurrency: Int
        var without: Way
        var with: Way
        /// With reuse: masters alive before close, their mean RSS and PSS (KiB) and CPU seconds; close's duration;
        /// masters left after close.
        var masters: Int
        var masterRSS: Double
        var masterPSS: Double
        var masterCPU: Double
        var closeSeconds: Double
        var mastersLeft: Int
        var controlDirectoryLeft: Bool
    }

    /// Times every run of the runner it wraps.
    final class TimingRunner: CommandRunner {
        let base = ProcessCommandRunner()
        let durations = Mutex<[Double]>([])

        func run(_ command: Command) async throws -> CommandResult {
            let started = BenchClock.now
            defer {
                let elapsed = BenchClock.now - started
                durations.withLock { $0.append(elapsed) }
            }
            return try await base.run(command)
        }

        func take() -> [Double] {
            durations.withLock { durations in
                let all = durations
                durations = []
                return all
            }
        }
    }

    let options: Options
    static let ssh = LocalSSHD.ssh

    /// Why the part cannot run here, or nil.
    static func missing() -> String? { LocalSSHD.missing() }

    func run() async throws -> Result {
        let directory = try makeTemporaryDirectory("cost-optimizer-bench-sshd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await startServer(directory)
        defer { _ = kill(server.pid, SIGTERM) }
        let instances = (0..<options.instances).map { index in
            Instance(
                key: InstanceKey(provider: .vast, id: String(50_000 + index)), name: "ssh-bench-\(index)",
                state: .running, providerStatus: "running",
                ssh: SSHEndpoint(host: "127.0.0.1", port: server.port, user: LocalSSHD.userName))
        }
        // Host keys are recorded once, before either way is timed.
        let warmup = sampler(directory, runner: TimingRunner(), persist: 0, control: nil)
        _ = await warmup.sample(instances)

        let without = try await measure(
            "without reuse (SSH_CONTROL_PERSIST=0)", instances, server: server, directory: directory, control: nil)
        let control = try SSHControlDirectory.create(environment: ["TMPDIR": directory])
        let with = try await measure(
            "with reuse (ControlMaster, ControlPersist=120)", instances, server: server, directory: directory,
            control: control)
        let masters = processes(mentioning: control.path)
        let rss = masters.compactMap { Memory.status(pid: $0, "VmRSS") }
        let pss = masters.compactMap { Memory.pss(pid: $0) }
        let cpu = masters.compactMap { CPUTimes.read(pid: $0)?.own }
        let closing = sampler(directory, runner: TimingRunner(), persist: 120, control: control)
        let started = BenchClock.now
        await closing.close()
        let closeSeconds = BenchClock.now - started
        try await Task.sleep(for: .milliseconds(300))
        func mean(_ values: [Int]) -> Double { values.isEmpty ? .nan : Double(values.reduce(0, +)) / Double(values.count) }
        return Result(
            instances: options.instances, passes: options.passes, concurrency: options.concurrency, without: without,
            with: with, masters: masters.count, masterRSS: mean(rss), masterPSS: mean(pss),
            masterCPU: cpu.isEmpty ? .nan : cpu.reduce(0, +) / Double(cpu.count), closeSeconds: closeSeconds,
            mastersLeft: processes(mentioning: control.path).count,
            controlDirectoryLeft: FileManager.default.fileExists(atPath: control.path))
    }

    private func sampler(_ directory: String, runner: TimingRunner, persist: Int, control: SSHControlDirectory?)
        -> GPUSampler
    {
        GPUSampler(
            runner: runner,
            settings: SSHSettings(
                command: Self.ssh, keyPath: directory + "/client_key", connectTimeout: 10,
                concurrency: options.concurrency, controlPersist: persist),
            knownHostsPath: directory + "/known_hosts", logger: .silent, controlDirectory: control)
    }

    private func measure(
        _ name: String, _ instances: [Instance], server: Server, directory: String, control: SSHControlDirectory?
    ) async throws -> Way {
        let runner = TimingRunner()
        let sampler = sampler(directory, runner: runner, persist: control == nil ? 0 : 120, control: control)
        var failures = 0
        func pass() async -> Double {
            let started = BenchClock.now
            let results = await sampler.sample(instances)
            failures += results.values.filter { $0.utilization == nil }.count + (instances.count - results.count)
            return BenchClock.now - started
        }
        let first = await pass()
        _ = runner.take()
        let clientBefore = CPUTimes.ownProcess().children
        let sshdBefore = server.cpu()
        let acceptedBefore = server.acceptedConnections()
        var passes: [Double] = []
        for _ in 0..<options.passes { passes.append(await pass()) }
        let calls = runner.take()
        let count = Double(max(1, options.passes))
        return Way(
            name: name, passes: passes, firstPass: first,
            meanCall: calls.isEmpty ? .nan : calls.reduce(0, +) / Double(calls.count),
            clientCPUPerPass: (CPUTimes.ownProcess().children - clientBefore) / count,
            sshdCPUPerPass: (server.cpu() - sshdBefore) / count,
            connectionsPerPass: Double(server.acceptedConnections() - acceptedBefore) / count, failures: failures)
    }

    // MARK: - The server

    struct Server {
        var pid: pid_t
        var port: Int
        var directory: String

        /// CPU seconds of sshd and every process under it (per-connection processes, the remote commands), live
        /// or reaped: the remote side's cost.
        func cpu() -> Double {
            var parents: [pid_t: pid_t] = [:]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let child = pid_t(entry),
                    let text = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                    let close = text.lastIndex(of: ")")
                else { continue }
                let fields = text[text.index(after: close)...].split(separator: " ")
                if fields.count > 1, let parent = pid_t(fields[1]) { parents[child] = parent }
            }
            func descends(_ process: pid_t) -> Bool {
                var current = process
                for _ in 0..<64 {
                    if current == pid { return true }
                    guard let parent = parents[current], parent > 1 else { return false }
                    current = parent
                }
                return false
            }
            return parents.keys.filter(descends).compactMap { CPUTimes.read(pid: $0) }.reduce(0) {
                $0 + $1.own + $1.children
            }
        }

        func acceptedConnections() -> Int {
            let log = (try? String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)) ?? ""
            return log.components(separatedBy: "Accepted publickey").count - 1
        }
    }

    private func startServer(_ directory: String) async throws -> Server {
        try await LocalSSHD.prepare(directory: directory)
        let output = FleetBench.busyAnswer
        let query = String(output[..<output.range(of: NvidiaSmiProbe.marker)!.lowerBound])
        let report = SyntheticNvidiaSmi.utilizationReport([
            SyntheticGPU(
                name: "NVIDIA GeForce RTX 4090", busID: "00000000:01:00.0", point: 96, average: 94, max: 100,
                memoryUsedMiB: 20000, memoryTotalMiB: 24564, temperature: 70)
        ])
        try query.write(toFile: directory + "/query.csv", atomically: true, encoding: .utf8)
        try report.write(toFile: directory + "/report.txt", atomically: true, encoding: .utf8)
        try writeScript(
            directory + "/bin/nvidia-smi",
            """
            #!/bin/sh
            case "$*" in
              *--query-gpu=*) cat '\(directory)/query.csv' ;;
              "-q -d UTILIZATION") cat '\(directory)/report.txt' ;;
              *) echo "unexpected arguments: $*"; exit 2 ;;
            esac

            """)
        for _ in 0..<3 {
            let port = try LocalSSHD.freePort()
            let config = try LocalSSHD.writeConfig(
                directory: directory, port: port, extra: ["MaxStartups 100:30:200", "MaxSessions 100"])
            // sshd detaches itself (no -D): the bench reads its pid from the pid file and stops it with SIGTERM.
            let result = try await ProcessCommandRunner().run(
                Command(
                    executable: LocalSSHD.sshd, arguments: ["-E", directory + "/sshd.log", "-f", config],
                    environment: [:], timeout: 30))
            if result.status == 0, let pid = await LocalSSHD.waitForPidFile(directory + "/sshd.pid") {
                return Server(pid: pid, port: port, directory: directory)
            }
        }
        let log = (try? String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)) ?? ""
        throw BenchError("sshd did not start: \(log)")
    }
}
