import CostOptimizer
import CostOptimizerCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// cost-optimizer-bench: the benchmark of scale (run through bin/bench, a release build). Prints Markdown.

let usage = """
    Usage: cost-optimizer-bench [--sizes 100,1000,5000] [--latency 0.2] [--concurrency 16] [--interval 30]
                                [--only fleet,ssh,journal,state,runner] [--ssh-instances 32] [--ssh-passes 5]
                                [--journal-lines 10000,100000] [--samples 60] [--cycles 2] [--log-level info]
                                [--env NAME=value]... [--daemon PATH]
      fleet    the release daemon against loopback Vast.ai (pages of 25) and GCE (pages of 500) fleets of each size,
               half and half, with a fake ssh answering after --latency seconds: two cycles --interval s apart,
               starting from a state of --samples samples per instance (an hour at the default interval); with
               --cycles N, N cycles, and the figures of the last
      ssh      sampling time with and without ssh connection reuse against a real sshd on 127.0.0.1 (needs
               openssh-server; skipped with a note when it cannot start)
      journal  the per-cycle read of the action journal for open intents, at each --journal-lines size
      state    saving (each cycle) and loading (at start) the state file of each fleet size, --samples per instance
      runner   the daemon's process runner started 4,800 times: its resident memory must stay flat
    --env adds a variable to the daemon's environment (e.g. --env SSH_CONTROL_PERSIST=0).
    """

/// Prints a line at once (the output is often piped to a file while a long run goes on).
func print(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

struct Arguments {
    var sizes = [100, 1000, 5000]
    var latency = 0.2
    var concurrency = 16
    var interval = 30.0
    var parts: Set<String> = ["fleet", "ssh", "journal", "state", "runner"]
    var sshInstances = 32
    var sshPasses = 5
    var journalLines = [10_000, 100_000]
    var logLevel = "info"
    var extraEnvironment: [String: String] = [:]
    var seededSamples = 60
    var cycles = 2
    var daemon = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("cost-optimizer").path

    static func parse(_ arguments: [String]) throws -> Arguments {
        var parsed = Arguments()
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let next = rest.popFirst() else { throw BenchError("\(flag) needs a value\n\(usage)") }
            return next
        }
        func integers(_ flag: String) throws -> [Int] {
            let list = try value(flag).split(separator: ",").map { Int($0.replacingOccurrences(of: "_", with: "")) }
            guard !list.isEmpty, list.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw BenchError("\(flag) takes positive whole numbers separated by commas")
            }
            return list.compactMap { $0 }
        }
        func number(_ flag: String) throws -> Double {
            guard let number = Double(try value(flag)), number.isFinite, number >= 0 else {
                throw BenchError("\(flag) takes a number of seconds")
            }
            return number
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--sizes": parsed.sizes = try integers(flag)
            case "--latency": parsed.latency = try number(flag)
            case "--concurrency": parsed.concurrency = try integers(flag)[0]
            case "--interval": parsed.interval = max(10, try number(flag))
            case "--only": parsed.parts = Set(try value(flag).split(separator: ",").map(String.init))
            case "--ssh-instances": parsed.sshInstances = try integers(flag)[0]
            case "--ssh-passes": parsed.sshPasses = try integers(flag)[0]
            case "--journal-lines": parsed.journalLines = try integers(flag)
            case "--log-level": parsed.logLevel = try value(flag)
            case "--samples": parsed.seededSamples = Int(try value(flag)) ?? 60
            case "--cycles": parsed.cycles = max(2, try integers(flag)[0])
            case "--daemon": parsed.daemon = try value(flag)
            case "--env":
                let pair = try value(flag).split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { throw BenchError("--env takes NAME=value") }
                parsed.extraEnvironment[pair[0]] = pair[1]
            case "-h", "--help":
                print(usage)
                exit(0)
            default: throw BenchError("unknown argument \(flag)\n\(usage)")
            }
        }
        return parsed
    }
}

/// The machine, as docs/performance.md records it.
func machine() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" }
        ?? "?"
    let memory = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?.split(separator: "\n").first
        .map { String($0.split(separator: " ").dropFirst().first ?? "?") }.flatMap { Int($0) }
    var load = [Double](repeating: 0, count: 3)
    _ = getloadavg(&load, 3)
    return "\(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(model)), "
        + "\(memory.map { "\($0 / 1024 / 1024) GiB" } ?? "?") RAM, load average before the run "
        + load.map { fixed($0) }.joined(separator: " ")
}

func megabytes(_ value: Double) -> String { fixed(value, 1) }

func printFleet(_ results: [FleetBench.Result], _ arguments: Arguments) {
    print(
        """
        ### Fleet cycles (fake ssh answering after \(fixed(arguments.latency, 3)) s, SSH_CONCURRENCY=\(arguments.concurrency), \
        CHECK_INTERVAL=\(fixed(arguments.interval, 0)))

        The last of \(max(2, arguments.cycles)) cycles (the daemon starts from a state of \(arguments.seededSamples) samples per \
        instance); ideal = ceil(N / \(arguments.concurrency)) × \
        \(fixed(arguments.latency, 3)) s + listing.

        | instances (Vast + GCE) | listing s | ideal s | cycle s (daemon) | cycle s (outside) | ratio to ideal | peak RSS MiB | CPU s, last cycle | CPU s to end of cycle 1 (with start) | fake ssh CPU s, last cycle | HTTP requests / cycle (Vast + GCE) | requests per 1,000 instances | idle CPU % of a core | exit on SIGTERM |
        |---|---|---|---|---|---|---|---|---|---|---|---|---|---|
        """)
    for r in results {
        let c = r.daemonSeconds.count - 1  // the last cycle
        let ratio = r.daemonSeconds[c] / r.idealSeconds[c]
        let perThousand = Double(r.requests[c]) * 1000 / Double(r.size)
        let exit = (r.exitStatus.map { String($0) } ?? "none (killed)") + (r.stopped ? ", state saved" : "")
        var cells: [String] = ["\(r.size) (\(r.vastInstances) + \(r.gceInstances))"]
        cells += [fixed(r.listingSeconds[c]), fixed(r.idealSeconds[c]), fixed(r.daemonSeconds[c], 1)]
        cells += [fixed(r.outsideSeconds[c]), fixed(ratio), megabytes(r.peakRSS), fixed(r.cpuSecondCycle)]
        cells += [fixed(r.cpuFirstWithStartup), fixed(r.fakeSSHSecondCycle)]
        cells += ["\(r.requests[c]) (\(r.vastRequests[c]) + \(r.gceRequests[c]))", fixed(perThousand, 1)]
        cells += ["\(fixed(r.idleCPU * 100, 3)) over \(fixed(r.idleWindow, 0)) s", exit]
        print("| " + cells.joined(separator: " | ") + " |")
    }
    print()
    print("Cycle 1, for comparison:")
    print()
    print("| instances | listing s | ideal s | cycle s (daemon) | cycle s (outside) | ratio | HTTP requests |")
    print("|---|---|---|---|---|---|---|")
    for r in results {
        print(
            "| \(r.size) | \(fixed(r.listingSeconds[0])) | \(fixed(r.idealSeconds[0])) | \(fixed(r.daemonSeconds[0], 1)) "
                + "| \(fixed(r.outsideSeconds[0])) | \(fixed(r.daemonSeconds[0] / r.idealSeconds[0])) | \(r.requests[0]) |")
    }
    print()
    for r in results {
        let listed = r.daemonListingSeconds.map { $0.map { fixed($0) } ?? "-" }.joined(separator: ", ")
        print(
            "- \(r.size): state.json \(r.stateBytesBefore / 1024) KiB at start, \(r.stateBytesAfter / 1024) KiB at the end; "
                + "RSS after each cycle \(r.rssByCycle.map(megabytes).joined(separator: ", ")) MiB; the bench's own CPU (servers, counting) in the last cycle "
                + "\(fixed(r.benchCPUSecondCycle)) s; daemon's own listing time (debug log) \(listed); last summary: "
                + "`\(r.summary.replacingOccurrences(of: "`", with: "'"))`")
    }
    print()
}

func printSSH(_ r: SSHReuseBench.Result) {
    print(
        """
        ### ssh connection reuse against a real sshd on 127.0.0.1

        \(r.instances) instances (aliases of one sshd), SSH_CONCURRENCY=\(r.concurrency), \(r.passes) timed passes after \
        a first one; the daemon's GPUSampler and /usr/bin/ssh.

        | sampling | first pass s | mean pass s | mean ssh call s | connections per pass | ssh client CPU s per pass | sshd-side CPU s per pass | failed samples |
        |---|---|---|---|---|---|---|---|
        """)
    for way in [r.without, r.with] {
        print(
            "| \(way.name) | \(fixed(way.firstPass, 3)) | \(fixed(way.meanPass, 3)) | \(fixed(way.meanCall, 4)) "
                + "| \(fixed(way.connectionsPerPass, 1)) | \(fixed(way.clientCPUPerPass, 3)) | \(fixed(way.sshdCPUPerPass, 3)) "
                + "| \(way.failures) |")
    }
    print()
    print(
        "Masters kept: \(r.masters), each \(fixed(r.masterRSS / 1024, 1)) MiB RSS (\(fixed(r.masterPSS / 1024, 1)) MiB PSS), "
            + "\(fixed(r.masterCPU, 3)) CPU s over the run; close (ssh -O exit each, then the directory) took "
            + "\(fixed(r.closeSeconds, 3)) s; masters left after close: \(r.mastersLeft); control directory left: "
            + "\(r.controlDirectoryLeft ? "yes" : "no").")
    print()
}

func printState(_ results: [StateBench.Result], samples: Int) {
    print(
        """
        ### The state file (saved every cycle, loaded at start), \(samples) samples per instance

        Memory: the peak resident set above what the process held before the step (for a load, the state read \
        included).

        | instances | state.json KiB | save ms | save peak MiB | load ms | load peak MiB |
        |---|---|---|---|---|---|
        """)
    for r in results {
        print(
            "| \(r.instances) | \(r.bytes / 1024) | \(fixed(r.saveSeconds * 1000, 0)) | \(fixed(r.savePeakMiB, 1)) "
                + "| \(fixed(r.loadSeconds * 1000, 0)) | \(fixed(r.loadPeakMiB, 1)) |")
    }
    print()
}

func printJournal(_ results: [JournalBench.Result]) {
    print(
        """
        ### Open intents: reading the action journal (once a cycle)

        The first call reads the whole journal (the daemon's first cycle); each later call follows the append of an \
        intent and its result, as a cycle that acted leaves them.

        | journal lines | bytes | first call ms (whole journal) | µs per line | later calls ms (mean) | open intents found |
        |---|---|---|---|---|---|
        """)
    for r in results {
        print(
            "| \(r.lines) | \(r.bytes) | \(fixed(r.firstCall * 1000, 1)) | \(fixed(r.firstCall * 1e6 / Double(r.lines), 2)) "
                + "| \(fixed(r.mean * 1000, 3)) | \(r.unresolved) |")
    }
    print()
}

let arguments: Arguments
do { arguments = try Arguments.parse(Array(CommandLine.arguments.dropFirst())) } catch {
    FileHandle.standardError.write(Data("cost-optimizer-bench: \(error)\n".utf8))
    exit(64)
}
print("## cost-optimizer-bench")
print()
print("- command: `bin/bench \(CommandLine.arguments.dropFirst().joined(separator: " "))`")
print("- date: \(Date().formatted(.iso8601))")
print("- machine: \(machine())")
print("- daemon: \(arguments.daemon)")
print()
var failed = false
if arguments.parts.contains("journal") {
    do {
        printJournal(try arguments.journalLines.map { try JournalBench.run(lines: $0, repeats: 5) })
    } catch {
        print("journal: failed: \(error)\n")
        failed = true
    }
}
if arguments.parts.contains("runner") {
    let points = await LeakProbe.run(runs: 4800, executable: "/bin/echo", arguments: ["x"])
    print("### The process runner: resident memory over 4,800 short runs, 16 at a time\n")
    print("| runs | " + points.map { "\($0.0)" }.joined(separator: " | ") + " |")
    print("|---|" + points.map { _ in "---|" }.joined())
    print("| resident MiB | " + points.map { fixed($0.1, 1) }.joined(separator: " | ") + " |\n")
    let output = FleetBench.busyAnswer
    let started = BenchClock.now
    for _ in 0..<10_000 { _ = NvidiaSmiProbe.parse(output: output, exitStatus: 0) }
    print("Parsing one sample's output (\(output.utf8.count) bytes): \(fixed((BenchClock.now - started) * 100, 1)) µs.\n")
}
if arguments.parts.contains("state") {
    do {
        printState(
            try arguments.sizes.map { try StateBench.run(instances: $0, samples: arguments.seededSamples) },
            samples: arguments.seededSamples)
    } catch {
        print("state: failed: \(error)\n")
        failed = true
    }
}
if arguments.parts.contains("ssh") {
    if let missing = SSHReuseBench.missing() {
        print("### ssh connection reuse\n\nSkipped: \(missing).\n")
    } else {
        do {
            let bench = SSHReuseBench(
                options: .init(
                    instances: arguments.sshInstances, passes: arguments.sshPasses, concurrency: arguments.concurrency))
            printSSH(try await bench.run())
        } catch {
            print("### ssh connection reuse\n\nSkipped: \(error).\n")
        }
    }
}
if arguments.parts.contains("fleet") {
    guard FileManager.default.isExecutableFile(atPath: arguments.daemon) else {
        print("fleet: no daemon at \(arguments.daemon): build it with swift build -c release (bin/bench does)")
        exit(1)
    }
    let bench = FleetBench(
        options: .init(
            daemon: arguments.daemon, latency: arguments.latency, concurrency: arguments.concurrency,
            interval: arguments.interval, logLevel: arguments.logLevel, environment: arguments.extraEnvironment,
            seededSamples: arguments.seededSamples, cycles: arguments.cycles))
    var results: [FleetBench.Result] = []
    for size in arguments.sizes {
        do {
            FileHandle.standardError.write(Data("cost-optimizer-bench: fleet of \(size)…\n".utf8))
            results.append(try await bench.run(size: size))
        } catch {
            print("fleet of \(size): failed: \(error)\n")
            failed = true
        }
    }
    if !results.isEmpty { printFleet(results, arguments) }
}
exit(failed ? 1 : 0)
