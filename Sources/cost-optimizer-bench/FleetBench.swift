import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One fleet size: the release daemon (`cost-optimizer run`) as a child process against loopback Vast.ai (pages of
/// 25) and GCE (pages of 500) servers hosted here, with a fake ssh that answers after a fixed latency. Two cycles
/// and the idle time between them are measured from the daemon's log, `/proc` and the servers' request counts.
struct FleetBench {
    struct Options {
        var daemon: String
        var latency: Double
        var concurrency: Int
        var interval: Double
        var logLevel: String
        /// Added to (or replacing) the daemon's variables.
        var environment: [String: String]
        /// Samples per instance in the state file the daemon starts from (one a minute, the last ones); 0 starts
        /// from no state. 60 is the steady state of the defaults (CHECK_INTERVAL=60, an hour kept).
        var seededSamples: Int
        /// Cycles run (at least 2); the figures of "cycle 2" are those of the last one.
        var cycles: Int
    }

    /// What one fleet size measured.
    struct Result {
        var size: Int
        var vastInstances: Int
        var gceInstances: Int
        /// Per cycle (1 and 2): the daemon's own "Cycle complete … in X s".
        var daemonSeconds: [Double]
        /// From the first listing request to the "Cycle complete" line, seen from here.
        var outsideSeconds: [Double]
        /// From the first listing request to the last listing answer, seen by the servers.
        var listingSeconds: [Double]
        /// The daemon's own "Listing complete … in X s" (LOG_LEVEL=debug only).
        var daemonListingSeconds: [Double?]
        var idealSeconds: [Double]
        var requests: [Int]
        var vastRequests: [Int]
        var gceRequests: [Int]
        /// CPU seconds of the daemon's own threads: everything up to the end of cycle 1 (startup included), and
        /// cycle 2 alone.
        var cpuFirstWithStartup: Double
        var cpuSecondCycle: Double
        /// CPU seconds of the fake ssh children the daemon reaped during cycle 2.
        var fakeSSHSecondCycle: Double
        /// Peak resident set (VmHWM) and resident set after cycle 2, MiB.
        var peakRSS: Double
        var rssAfter: Double
        /// CPU per wall second while idle between the cycles (1 = one core), over `idleWindow` seconds.
        var idleCPU: Double
        var idleWindow: Double
        /// The bench's own CPU seconds (servers, fake ssh bookkeeping) during cycle 2.
        var benchCPUSecondCycle: Double
        var exitStatus: Int32?
        var stopped: Bool
        var summary: String
        /// Bytes of state.json when the daemon started, and after cycle 2.
        var stateBytesBefore: Int
        var stateBytesAfter: Int
        /// VmRSS at the end of each cycle, MiB.
        var rssByCycle: [Double]
    }

    /// Request counts and listing times, filled by the server handlers.
    final class Recorder: Sendable {
        struct Listing: Sendable {
            var started: Double
            var answered: Double
        }

        struct State {
            var vast = 0
            var gce = 0
            var listings: [Listing] = []
            /// The daemon's CPU at the first listing request of each cycle.
            var cycleStartCPU: [Int: CPUTimes] = [:]
            var cycleStartBenchCPU: [Int: CPUTimes] = [:]
            var cycle = 1
        }

        let state = Mutex(State())
        let pid = Atomic<Int32>(0)

        func record(vast: Bool, listing: Bool, started: Double, answered: Double) {
            state.withLock { state in
                if vast { state.vast += 1 } else { state.gce += 1 }
                if listing { state.listings.append(Listing(started: started, answered: answered)) }
            }
        }

        /// Called when a listing request arrives: the first one of a cycle notes the daemon's CPU.
        func listingArrived() {
            let pid = pid.load(ordering: .relaxed)
            state.withLock { state in
                guard state.cycleStartCPU[state.cycle] == nil, pid > 0, let cpu = CPUTimes.read(pid: pid) else { return }
                state.cycleStartCPU[state.cycle] = cpu
                state.cycleStartBenchCPU[state.cycle] = CPUTimes.ownProcess()
            }
        }
    }

    let options: Options

    /// The probe's stdout on one busy RTX 4090: no instance is ever idle, so no action and no re-check.
    static let busyAnswer = SyntheticNvidiaSmi.output([
        SyntheticGPU(
            name: "NVIDIA GeForce RTX 4090", busID: "00000000:01:00.0", point: 96, average: 94, max: 100,
            memoryUsedMiB: 20000, memoryTotalMiB: 24564, temperature: 70)
    ])

    func run(size: Int) async throws -> Result {
        let directory = try makeTemporaryDirectory("cost-optimizer-bench")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let vastCount = (size + 1) / 2
        let gceCount = size - vastCount
        let now = Date().timeIntervalSince1970
        let vast = VastSimulator(apiKey: "bench-vast-key", pageSize: 25)
        vast.add(
            contentsOf: (0..<vastCount).map { index in
                SimulatedVastInstance(
                    id: 10_000_000 + index, label: "bench-\(index)", dphTotal: 0.4, startDate: now - 5 * 3600,
                    sshHost: "127.0.0.1", sshPort: 20_000 + index % 40_000)
            })
        let zones = ["us-central1-a", "us-central1-b", "europe-west4-a"]
        let gce = GCESimulator(acceptedTokens: ["bench-gce-token"], pageSize: 500, zones: zones)
        gce.add(
            contentsOf: (0..<gceCount).map { index in
                SimulatedGCEInstance(
                    id: String(7_300_000_000_000_000_000 + UInt64(index)), name: "bench-\(index)",
                    zone: zones[index % zones.count], natIP: "127.0.0.1")
            })
        let recorder = Recorder()
        let vastServer = try LoopbackHTTPServer.start { request in
            let listing = request.url.path.hasPrefix("/api/v1/instances")
            let started = BenchClock.now
            if listing { recorder.listingArrived() }
            let response = await vast.handle(request)
            recorder.record(vast: true, listing: listing, started: started, answered: BenchClock.now)
            return response
        }
        defer { vastServer.shutdown() }
        let gceServer = try LoopbackHTTPServer.start { request in
            let listing = request.url.path.hasSuffix("/aggregated/instances")
            let started = BenchClock.now
            if listing { recorder.listingArrived() }
            let response = await gce.handle(request)
            recorder.record(vast: false, listing: listing, started: started, answered: BenchClock.now)
            return response
        }
        defer { gceServer.shutdown() }

        // The fake ssh: a shell script that sleeps the latency, then prints the busy probe output (printf is a
        // shell builtin: one sh and one sleep per call).
        let ssh = directory + "/fake-ssh"
        try writeScript(
            ssh,
            "#!/bin/sh\n# cost-optimizer-bench: answers like ssh running the probe, after a fixed latency.\n"
                + "sleep \(options.latency)\nprintf '%s' \(shellQuoted(Self.busyAnswer))\n")
        var environment: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "VAST_API_KEY": "bench-vast-key", "VAST_API_URL": vastServer.baseURL.absoluteString,
            "GCP_PROJECT_ID": GCESimulator.defaultProject, "GCP_API_URL": gceServer.baseURL.absoluteString,
            "GCP_ACCESS_TOKEN": "bench-gce-token", "GCP_SSH_USER": "bench", "SSH_COMMAND": ssh,
            "SSH_CONCURRENCY": String(options.concurrency), "CHECK_INTERVAL": fixed(options.interval, 0),
            "STATE_DIR": directory + "/state", "TMPDIR": directory, "DRY_RUN": "true",
            "LOG_LEVEL": options.logLevel,
        ]
        environment.merge(options.environment) { $1 }
        let stateBytes = try seedState(
            directory: directory + "/state", vast: vast.instances.map { "vast/\($0.id)" },
            gce: gce.instances.map { "gcp/\($0.id)" }, now: now)
        let daemon = try WatchedProcess(executable: options.daemon, arguments: ["run"], environment: environment)
        recorder.pid.store(daemon.pid, ordering: .relaxed)
        let cycleTimeout = 120 + Double(size) * 0.5

        var daemonSeconds: [Double] = []
        var outsideSeconds: [Double] = []
        var listingSeconds: [Double] = []
        var daemonListing: [Double?] = []
        var requests: [Int] = []
        var vastRequests: [Int] = []
        var gceRequests: [Int] = []
        var cycleEndCPU: [CPUTimes] = []
        var benchEndCPU: [CPUTimes] = []
        var summary = ""
        var lineIndex = 0
        var idleCPU = 0.0
        var idleWindow = 0.0
        var countedListings = 0
        var countedVast = 0
        var countedGCE = 0
        let cycles = max(2, options.cycles)
        var rssByCycle: [Double] = []
        for cycle in 1...cycles {
            guard let (index, line) = await daemon.waitForLine(containing: "Cycle complete", from: lineIndex, timeout: cycleTimeout)
            else {
                let tail = daemon.allLines.suffix(20).map(\.text).joined(separator: "\n")
                _ = await daemon.terminate(timeout: 10)
                throw BenchError("cycle \(cycle) of \(size) instances did not complete; the daemon's last lines:\n\(tail)")
            }
            let cpu = CPUTimes.read(pid: daemon.pid) ?? CPUTimes(own: .nan, children: .nan)
            cycleEndCPU.append(cpu)
            benchEndCPU.append(CPUTimes.ownProcess())
            let snapshot = recorder.state.withLock { state -> Recorder.State in
                state.cycle = cycle + 1
                return state
            }
            let listings = Array(snapshot.listings[countedListings...])
            countedListings = snapshot.listings.count
            let first = listings.map(\.started).min() ?? line.time
            let last = listings.map(\.answered).max() ?? first
            listingSeconds.append(last - first)
            outsideSeconds.append(line.time - first)
            vastRequests.append(snapshot.vast - countedVast)
            gceRequests.append(snapshot.gce - countedGCE)
            requests.append(snapshot.vast - countedVast + snapshot.gce - countedGCE)
            countedVast = snapshot.vast
            countedGCE = snapshot.gce
            daemonSeconds.append(Self.seconds(in: line.text, after: " errors in ") ?? .nan)
            let listed = daemon.allLines[lineIndex..<index].last { $0.text.contains("Listing complete") }
            daemonListing.append(listed.flatMap { Self.seconds(in: $0.text, after: " in ") })
            summary = line.text
            lineIndex = index + 1
            rssByCycle.append(Double(Memory.status(pid: daemon.pid, "VmRSS") ?? 0) / 1024)
            if cycle == 1 {
                // Idle: from 2 s after the cycle to 2 s before the next one starts.
                try await Task.sleep(for: .seconds(2))
                let idleStart = (BenchClock.now, CPUTimes.read(pid: daemon.pid))
                let window = max(1, options.interval - 4)
                try await Task.sleep(for: .seconds(window))
                let idleEnd = (BenchClock.now, CPUTimes.read(pid: daemon.pid))
                if let before = idleStart.1, let after = idleEnd.1 {
                    idleWindow = idleEnd.0 - idleStart.0
                    idleCPU = (after.own - before.own) / idleWindow
                }
            }
        }
        let peak = Double(Memory.status(pid: daemon.pid, "VmHWM") ?? 0) / 1024
        let rss = Double(Memory.status(pid: daemon.pid, "VmRSS") ?? 0) / 1024
        let starts = recorder.state.withLock { ($0.cycleStartCPU, $0.cycleStartBenchCPU) }
        let secondStart = starts.0[cycles] ?? cycleEndCPU[cycles - 2]
        let benchSecondStart = starts.1[cycles] ?? benchEndCPU[cycles - 2]
        let stateAfter = Self.size(directory + "/state/state.json")
        let status = await daemon.terminate(timeout: 60)
        let stopped = daemon.allLines.contains { $0.text.contains("Daemon stopped: state saved") }
        let ideal = listingSeconds.map {
            Double((size + options.concurrency - 1) / options.concurrency) * options.latency + $0
        }
        return Result(
            size: size, vastInstances: vastCount, gceInstances: gceCount, daemonSeconds: daemonSeconds,
            outsideSeconds: outsideSeconds, listingSeconds: listingSeconds, daemonListingSeconds: daemonListing,
            idealSeconds: ideal, requests: requests, vastRequests: vastRequests, gceRequests: gceRequests,
            cpuFirstWithStartup: cycleEndCPU[0].own, cpuSecondCycle: cycleEndCPU[cycles - 1].own - secondStart.own,
            fakeSSHSecondCycle: cycleEndCPU[cycles - 1].children - secondStart.children, peakRSS: peak, rssAfter: rss,
            idleCPU: idleCPU, idleWindow: idleWindow,
            benchCPUSecondCycle: benchEndCPU[cycles - 1].own - benchSecondStart.own, exitStatus: status, stopped: stopped,
            summary: summary, stateBytesBefore: stateBytes, stateBytesAfter: stateAfter, rssByCycle: rssByCycle)
    }

    /// Writes the state a daemon that has run for a while leaves (`seededSamples` busy samples a minute apart per
    /// instance) with the daemon's own store; returns the file's size.
    func seedState(directory: String, vast: [String], gce: [String], now: Double) throws -> Int {
        guard options.seededSamples > 0 else { return 0 }
        var state = FleetState()
        let last = now - 30
        for key in vast + gce {
            var record = InstanceRecord(firstSeen: Date(timeIntervalSince1970: now - 6 * 3600), state: .running)
            record.lastSeen = Date(timeIntervalSince1970: last)
            record.samples = (0..<options.seededSamples).reversed().map { minutes in
                StoredSample(at: Date(timeIntervalSince1970: last - Double(minutes) * 60), utilization: 94)
            }
            record.lastSampleAt = Date(timeIntervalSince1970: last)
            state.instances[key] = record
        }
        let store = try FileStateStore(directory: directory, logger: .silent)
        try store.save(state)
        return Self.size(store.statePath)
    }

    static func size(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }

    /// The number of seconds in `text` after the last `marker`, e.g. "… in 12.3 s" → 12.3.
    static func seconds(in text: String, after marker: String) -> Double? {
        guard let range = text.range(of: marker, options: .backwards) else { return nil }
        return Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }
}
