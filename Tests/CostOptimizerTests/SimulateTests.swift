import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

private let minute = 60.0
private let hour = 3600.0

/// A machine with one trace per GPU, for hand-built cases.
private func machine(
    _ gpus: [GPUTrace], price: Double = 1, storage: Double = 0, createdAt: Double = -86_400, sshDown: [TimeSpan] = []
) -> SimulatedMachine {
    SimulatedMachine(
        name: "m", pricePerHour: price, storagePerHour: storage, createdAt: createdAt,
        trace: InstanceTrace(gpus: gpus), sshDown: sshDown)
}

private func approximately(_ a: Double, _ b: Double, _ tolerance: Double = 1e-9) -> Bool { abs(a - b) <= tolerance }

@Suite("Simulate: traces")
struct SimulateTraceTests {
    @Test func constantSegmentsGiveValuesMeansAndMaxima() {
        let gpu = GPUTrace([.constant(50, from: 0, to: 10), .constant(20, from: 10, to: 30)])
        #expect(gpu.value(at: 0) == 50)
        #expect(gpu.value(at: 9.999) == 50)
        #expect(gpu.value(at: 10) == 20)
        #expect(gpu.value(at: 30) == 0)  // after the last segment: idle
        #expect(gpu.value(at: -5) == 0)  // before the first: idle
        // (5 s × 50 + 10 s × 20) / 15 s = 30
        #expect(approximately(gpu.mean(from: 5, to: 20), 30))
        // (10 s × 20 + 10 s × 0) / 20 s = 10
        #expect(approximately(gpu.mean(from: 20, to: 40), 10))
        #expect(gpu.maximum(from: 5, to: 20) == 50)
        #expect(gpu.maximum(from: 12, to: 40) == 20)
    }

    @Test func aPulseIsExactAtFullResolution() {
        // 0.3 s at 100 % in every 2 s: the bursty inference server.
        let gpu = GPUTrace([.pulse(period: 2, busySeconds: 0.3, busyLevel: 100, from: 0, to: 100)])
        #expect(gpu.value(at: 0.1) == 100)
        #expect(gpu.value(at: 0.5) == 0)
        #expect(gpu.value(at: 10.2) == 100)
        #expect(approximately(gpu.mean(from: 0, to: 14), 15))  // the driver's 14 s buffer: 7 whole periods
        #expect(approximately(gpu.mean(from: 0.1, to: 0.4), 200.0 / 3))  // 0.2 s busy of 0.3 s
        #expect(approximately(gpu.mean(from: 1, to: 2.15), 100 * 0.15 / 1.15))
        #expect(gpu.maximum(from: 0.5, to: 1.9) == 0)
        #expect(gpu.maximum(from: 0.5, to: 2.1) == 100)
        #expect(gpu.nextBusy(threshold: 10, from: 0.5) == 2)
        #expect(gpu.nextBusy(threshold: 10, from: 4.2) == 4.2)
        #expect(gpu.nextBusy(threshold: 10, from: 99) == nil)  // the last period ended at 98.3
    }

    @Test func idleStretchesNeedEveryGPUBelowTheThreshold() {
        let trace = InstanceTrace(gpus: [
            GPUTrace([.constant(80, from: 10, to: 20), .constant(5, from: 20, to: 100)]),
            GPUTrace([.constant(40, from: 15, to: 40)]),
        ])
        let all = trace.idleStretches(threshold: 10, in: TimeSpan(0, 100))
        #expect(all == [TimeSpan(0, 10), TimeSpan(40, 100)])
        // Only stretches strictly longer than 10 s.
        #expect(trace.idleStretches(threshold: 10, in: TimeSpan(0, 100), longerThan: 10) == [TimeSpan(40, 100)])
        // At a threshold of 5, the second GPU's 5 % is not idle.
        #expect(trace.idleStretches(threshold: 5, in: TimeSpan(0, 100)) == [TimeSpan(0, 10)])
        #expect(trace.isIdle(at: 50, threshold: 10))
        #expect(!trace.isIdle(at: 16, threshold: 10))
        #expect(trace.nextBusy(threshold: 10, from: 0) == 10)
        #expect(trace.nextBusy(threshold: 10, from: 40) == nil)
    }

    @Test func aPulsesGapsAreIdleStretchesJustShortOnes() {
        let trace = InstanceTrace(gpus: [GPUTrace([.pulse(period: 2, busySeconds: 0.3, busyLevel: 100, from: 0, to: 10)])])
        let all = trace.idleStretches(threshold: 10, in: TimeSpan(0, 20))
        #expect(all.count == 5)
        #expect(approximately(all[0].start, 0.3) && approximately(all[0].end, 2))
        #expect(approximately(all[4].start, 8.3) && all[4].end == 20)
        // Longer than 5 s: only the stretch after the last burst, with its exact start.
        let long = trace.idleStretches(threshold: 10, in: TimeSpan(0, 20), longerThan: 5)
        #expect(long.count == 1)
        #expect(approximately(long[0].start, 8.3) && long[0].end == 20)
        // A month of pulses has no long stretch and needs no million spans.
        let month = InstanceTrace(gpus: [
            GPUTrace([.pulse(period: 2, busySeconds: 0.3, busyLevel: 100, phase: 0.7, from: 0, to: 30 * 86_400)])
        ])
        #expect(month.idleStretches(threshold: 10, in: TimeSpan(0, 30 * 86_400), longerThan: 1800).isEmpty)
    }
}

@Suite("Simulate: oracle, accounting and false pauses")
struct SimulateOracleTests {
    static let settings = SimulationSettings(threshold: 10, window: 30 * 60, interval: 60, seed: 1)

    /// Ten hours, $2/h running, $0.50/h stopped. Idle (both GPUs < 10 %): [2 h, 2 h 20) (too short), [4 h, 5 h) and
    /// [5 h 10, 10 h): the second GPU's 10-minute burst at 5 h splits the long stretch in two.
    static let scenario = SimulationScenario(
        name: "hand", story: "",
        machines: [
            machine(
                [
                    GPUTrace([
                        .constant(50, from: 0, to: 2 * hour), .constant(3, from: 2 * hour, to: 2 * hour + 20 * minute),
                        .constant(90, from: 2 * hour + 20 * minute, to: 4 * hour),
                    ]),
                    GPUTrace([.constant(40, from: 5 * hour, to: 5 * hour + 10 * minute)]),
                ], price: 2, storage: 0.5)
        ], duration: 10 * hour)

    @Test func theOracleStopsForEveryIdleStretchLongerThanTheWindow() {
        let stops = Oracle.stops(Self.scenario.machines[0], settings: Self.settings, duration: 10 * hour)
        #expect(stops == [TimeSpan(4 * hour, 5 * hour), TimeSpan(5 * hour + 10 * minute, 10 * hour)])
        // (1 h + 4 h 50 min) × ($2 − $0.50) = $8.75
        #expect(approximately(Oracle.saved(Self.scenario.machines[0], settings: Self.settings, duration: 10 * hour), 8.75))
    }

    @Test func theResultComparesOurSpendWithTheOracle() {
        // Ours: paused at 4 h 31 min, restarted by the user at 5 h (the burst), paused again at 5 h 41 min.
        var history = MachineHistory()
        history.paused(at: 4 * hour + 31 * minute)
        history.restarted(at: 5 * hour)
        history.paused(at: 5 * hour + 41 * minute)
        let result = SimulationResult.evaluate(Self.scenario, policy: "default", histories: [history], settings: Self.settings)
        #expect(approximately(result.spendWithout, 20))
        // Running 4 h 31 + 41 min = 5 h 12 min at $2; stopped 29 min + 4 h 19 min = 4 h 48 min at $0.50.
        #expect(approximately(result.spendWith, 5.2 * 2 + 4.8 * 0.5))
        #expect(approximately(result.oracleSaved, 8.75))
        #expect(approximately(result.savingsPercent, 100 * (20 - 12.8) / 20))
        #expect(approximately(result.oracleSavingsPercent, 43.75))
        #expect(approximately(result.captureRatio, 7.2 / 8.75))
        #expect(result.pauses == 2 && result.deletes == 0 && result.falsePauses == 0)
    }

    @Test func theCaptureRatioIsOneWhereTheOracleSavesNothing() {
        let busy = SimulationScenario(
            name: "busy", story: "", machines: [machine([GPUTrace.constant(80)])], duration: 2 * hour)
        let result = SimulationResult.evaluate(busy, policy: "default", histories: [MachineHistory()], settings: Self.settings)
        #expect(result.oracleSaved == 0)
        #expect(result.captureRatio == 1)
        #expect(result.savingsPercent == 0)
    }

    @Test func aPauseRightAfterBurstsIsFalseAndOneAfterAnIdleWindowIsNot() {
        // Bursts (true mean 15 %) for an hour, then idle.
        let scenario = SimulationScenario(
            name: "bursts", story: "",
            machines: [machine([GPUTrace([.pulse(period: 2, busySeconds: 0.3, busyLevel: 100, from: 0, to: hour)])])],
            duration: 3 * hour)
        var early = MachineHistory()
        early.paused(at: hour + 60)  // its 30-min window holds 29 min of bursts: mean 14.5 %
        var late = MachineHistory()
        late.paused(at: 1.6 * hour)  // its window [1.1 h, 1.6 h] is idle
        let falsely = SimulationResult.evaluate(scenario, policy: "x", histories: [early], settings: Self.settings)
        let rightly = SimulationResult.evaluate(scenario, policy: "x", histories: [late], settings: Self.settings)
        #expect(falsely.falsePauses == 1)
        #expect(rightly.falsePauses == 0)
        #expect(rightly.pauses == 1)
    }

    @Test func aDeleteBeforeMoreWorkIsCounted() {
        let scenario = SimulationScenario(
            name: "back", story: "", machines: [machine([GPUTrace([.constant(90, from: 40 * hour, to: 41 * hour)])])],
            duration: 48 * hour)
        var history = MachineHistory()
        history.paused(at: 0.5 * hour)
        history.deleted(at: 25 * hour)
        let result = SimulationResult.evaluate(scenario, policy: "x", histories: [history], settings: Self.settings)
        #expect(result.deletes == 1)
        #expect(result.workAfterDelete == 1)
    }
}

@Suite("Simulate: the traces CSV")
struct SimulateCSVTests {
    @Test func aGoodFileBecomesOneTracePerInstance() throws {
        let text = """
            timestamp,instance,gpu_index,utilization\r
            2025-03-01T00:10:00Z,trainer,1,40\r
            2025-03-01T00:00:00Z,trainer,0,90\r
            1740787200,trainer,1,0\r

            2025-03-01T01:00:00.500+01:00,trainer,0,5\r
            2025-03-01 00:20:00,"nb, old",0,0\r
            2025-03-01T00:30:00Z,trainer,0,70
            """
        let file = try TraceFile.parse(text)
        #expect(file.start == 1_740_787_200)  // 2025-03-01T00:00:00Z
        #expect(file.duration == 1800)
        #expect(file.instances.map(\.name) == ["trainer", "nb, old"])
        let trainer = file.instances[0]
        #expect(trainer.gpuIndices == [0, 1])
        let gpu0 = trainer.trace.gpus[0]
        #expect(gpu0.value(at: 0) == 90)
        #expect(gpu0.value(at: 0.4) == 90)
        #expect(gpu0.value(at: 0.5) == 5)  // 01:00:00.5+01:00 is 00:00:00.5Z
        #expect(gpu0.value(at: 1799) == 5)
        #expect(gpu0.value(at: 1800) == 0)  // the instance's last row: idle from then on
        let gpu1 = trainer.trace.gpus[1]
        #expect(gpu1.value(at: 300) == 0)
        #expect(gpu1.value(at: 600) == 40)
        #expect(gpu1.value(at: 1799) == 40)
        // An instance with one row is idle from it on.
        #expect(file.instances[1].trace.gpus[0].value(at: 1200) == 0)
    }

    @Test func timestampsInEveryAcceptedForm() {
        #expect(TraceFile.parseTimestamp("1740787200") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("1740787200.25") == 1_740_787_200.25)
        #expect(TraceFile.parseTimestamp("2025-03-01T00:00:00Z") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("2025-03-01T00:00:00") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("2025-03-01T00:00Z") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("2025-03-01T00:00:00.125Z") == 1_740_787_200.125)
        #expect(TraceFile.parseTimestamp("2025-03-01T02:00:00+02:00") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("2025-02-28T19:00:00-0500") == 1_740_787_200)
        #expect(TraceFile.parseTimestamp("2024-02-29T00:00:00Z") == 1_709_164_800)
        for bad in ["", "yesterday", "2025-02-29T00:00:00Z", "2025-03-01", "2025-03-01T24:00:00Z", "-5", "1e9",
                    "2025-03-01T00:00:00+25:00", "2025-03-01T00:00:00Zjunk"] {
            #expect(TraceFile.parseTimestamp(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: [
        ("time,host,gpu,util\n1,a,0,5\n", 1, "the header must be timestamp,instance,gpu_index,utilization"),
        ("timestamp,instance,gpu_index,utilization\n1,a,0,5\n2,a,0\n", 3, "3 fields, expected 4"),
        ("timestamp,instance,gpu_index,utilization\n1,a,0,5\n\nsoon,a,0,5\n", 4, "timestamp \"soon\" is neither"),
        ("timestamp,instance,gpu_index,utilization\n1, ,0,5\n", 2, "instance is empty"),
        ("timestamp,instance,gpu_index,utilization\n1,a,-1,5\n", 2, "gpu_index \"-1\" is not a whole number"),
        ("timestamp,instance,gpu_index,utilization\n1,a,0,5\n2,a,0,5\n3,a,0,5\n4,a,0,5\n5,a,0,5\n6,a,0,abc\n",
         7, "utilization \"abc\" is not a number 0–100"),
        ("timestamp,instance,gpu_index,utilization\n1,a,0,100.5\n", 2, "utilization \"100.5\" is not a number 0–100"),
        ("timestamp,instance,gpu_index,utilization\n1,a,0,5\n2,a,0,5\n1,a,0,7\n", 4,
         "instance a GPU 0 already has a row at this timestamp (line 2)"),
        ("timestamp,instance,gpu_index,utilization\n1,\"a,0,5\n", 2, "a quoted field is not closed"),
    ])
    func aBadRowIsNamedByItsLine(text: String, line: Int, message: String) {
        #expect {
            _ = try TraceFile.parse(text)
        } throws: { error in
            guard let error = error as? TraceCSVError else { return false }
            return error.line == line && error.message.contains(message)
                && error.description.hasPrefix("line \(line): ")
        }
    }

    @Test func anEmptyFileOrOneWithoutRowsIsRefused() {
        #expect(throws: TraceCSVError.self) { try TraceFile.parse("") }
        #expect(throws: TraceCSVError.self) { try TraceFile.parse("timestamp,instance,gpu_index,utilization\n") }
    }
}

@Suite("Simulate: the daemon and the naive rule")
struct SimulateRunTests {
    static func config(_ extra: [String: String] = [:]) throws -> Config {
        try DaemonSimulation.config(environment: extra.merging(["DRY_RUN": "true", "VAST_API_KEY": "real"]) { a, _ in a })
    }

    @Test func theSimulatedDaemonIgnoresDryRunAndRealKeys() throws {
        let config = try Self.config()
        #expect(!config.dryRun)
        #expect(config.vastAPIURL.host == "vast.simulated")
        #expect(config.policy.pauseThresholdGPU == 10)
        #expect(try Self.config(["PAUSE_THRESHOLD_GPU": "7.5"]).policy.pauseThresholdGPU == 7.5)
        #expect(throws: ConfigError.self) { try Self.config(["PAUSE_WINDOW_MINUTES": "soon"]) }
    }

    @Test func aForgottenGPUIsPausedAfterTheWindowAndSavesMostOfItsTime() async throws {
        let config = try Self.config()
        let settings = DaemonSimulation.settings(config: config, seed: 1)
        let scenario = SimulationScenario(
            name: "forgotten", story: "",
            machines: [machine([GPUTrace.constant(0.5, memoryUsedMiB: 0)], price: 1, storage: 0.01)],
            duration: 8 * hour)
        let histories = try await DaemonSimulation.run(scenario, config: config, settings: settings)
        let pause = try #require(histories[0].pauses.first)
        #expect(pause >= 30 * minute && pause < 33 * minute)
        let result = SimulationResult.evaluate(scenario, policy: "default", histories: histories, settings: settings)
        #expect(result.pauses == 1 && result.deletes == 0 && result.falsePauses == 0)
        // 8 h less the ~31 min before the pause, at $0.99 saved per hour: ~92 %; the oracle stops it at once.
        #expect(result.savingsPercent > 90)
        #expect(result.captureRatio > 0.9 && result.captureRatio < 1)
    }

    @Test func theBuiltInNotebookIsPausedThoughItHoldsMemory() async throws {
        let config = try Self.config()
        let settings = DaemonSimulation.settings(config: config, seed: 1)
        let scenario = try #require(BuiltInScenarios.scenario(named: "notebook", days: 1, seed: 1))
        #expect(scenario.machines[0].trace.gpus[0].memoryUsedMiB > 10_000)
        let results = try await Simulate.run([scenario], config: config, settings: settings, compareNaive: true)
        #expect(results.map(\.policy) == ["default", "naive"])
        #expect(results[0].pauses == 1 && results[0].falsePauses == 0 && results[0].deletes == 0)
        #expect(results[0].savingsPercent > 95)
        #expect(results[1].pauses == 1)
    }

    @Test func burstsFoolTheNaiveRuleButNotTheDaemon() async throws {
        let config = try Self.config()
        let settings = DaemonSimulation.settings(config: config, seed: 3)
        let scenario = SimulationScenario(
            name: "bursty", story: "",
            machines: [
                machine([GPUTrace([.pulse(period: 2, busySeconds: 0.3, busyLevel: 100, phase: 0.4, from: -hour, to: 4 * hour)])])
            ], duration: 3 * hour)
        let ours = SimulationResult.evaluate(
            scenario, policy: "default", histories: try await DaemonSimulation.run(scenario, config: config, settings: settings),
            settings: settings)
        let naive = SimulationResult.evaluate(
            scenario, policy: "naive", histories: NaivePolicy().run(scenario, settings: settings), settings: settings)
        #expect(ours.pauses == 0)
        #expect(naive.pauses > 0)
        #expect(naive.falsePauses == naive.pauses)
    }

    @Test func theNaiveRuleCountsMissingSamplesAsIdleAndTheDaemonDoesNot() async throws {
        let config = try Self.config()
        let settings = DaemonSimulation.settings(config: config, seed: 1)
        let scenario = SimulationScenario(
            name: "ssh", story: "",
            machines: [machine([GPUTrace.constant(95)], sshDown: [TimeSpan(hour, 2 * hour)])], duration: 3 * hour)
        let ours = try await DaemonSimulation.run(scenario, config: config, settings: settings)
        let naive = NaivePolicy().run(scenario, settings: settings)
        #expect(ours[0].pauses.isEmpty)
        #expect(naive[0].pauses.count >= 10)  // every 5 missing samples for an hour
        #expect(naive[0].pauses.allSatisfy { $0 >= hour && $0 < 2 * hour })
    }

    @Test func aDaemonRestartKeepsTheIdleStreak() async throws {
        // Busy until 0:45, idle after; the daemon is down from 1:00 to 1:15 and comes back on the same state store.
        let config = try Self.config()
        let settings = DaemonSimulation.settings(config: config, seed: 1)
        let scenario = SimulationScenario(
            name: "restart", story: "", machines: [machine([GPUTrace([.constant(90, from: -hour, to: 45 * minute)])])],
            duration: 2 * hour, daemonDown: [TimeSpan(hour, hour + 15 * minute)])
        #expect(!settings.cycleTimes(for: scenario).contains { $0 >= hour && $0 < hour + 15 * minute })
        let histories = try await DaemonSimulation.run(scenario, config: config, settings: settings)
        // The streak began at ~0:46 and survives the restart: the pause comes at ~1:16, not 30 min after the restart.
        #expect(histories[0].pauses.count == 1)
        let pause = try #require(histories[0].pauses.first)
        #expect(pause >= hour + 15 * minute && pause < hour + 18 * minute)
    }

    @Test func aUsersCSVRunsThroughTheDaemon() async throws {
        var rows = ["timestamp,instance,gpu_index,utilization"]
        for m in 0..<180 {
            let time = 1_740_787_200 + m * 60
            rows.append("\(time),busy-box,0,\(m < 60 ? 90 : 0)")
            rows.append("\(time),busy-box,1,0")
        }
        let file = try TraceFile.parse(rows.joined(separator: "\n"))
        let scenario = try Simulate.scenario(from: file, name: "fleet.csv", days: nil, price: 1.5, storagePrice: 0)
        #expect(scenario.machines[0].pricePerHour == 3)  // two GPUs at $1.50
        let config = try Self.config()
        let results = try await Simulate.run(
            [scenario], config: config, settings: DaemonSimulation.settings(config: config, seed: 1), compareNaive: true,
            start: Date(timeIntervalSince1970: file.start))
        #expect(results.map(\.policy) == ["default", "naive"])
        #expect(results.allSatisfy { $0.scenario == "fleet.csv" })
        // Idle from 1 h to 3 h (the file ends at 2 h 59 min): ours pauses once, ~31 min into it.
        #expect(results[0].pauses == 1 && results[0].falsePauses == 0)
        #expect(results[0].savingsPercent > 20)
        let json = Simulate.json(results, settings: DaemonSimulation.settings(config: config, seed: 1))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let entries = try #require(object["scenarios"] as? [[String: Any]])
        #expect(entries.count == 2)
        for key in ["name", "policy", "spend_without_usd", "spend_with_usd", "savings_pct", "oracle_savings_pct",
                    "capture_ratio", "pauses", "deletes", "false_pauses"] {
            #expect(entries[0][key] != nil, "\(key)")
        }
        #expect(entries[1]["policy"] as? String == "naive")
    }

    @Test func theCommandLineIsChecked() throws {
        let options = try Simulate.parse(["--days", "7", "--seed", "42", "--compare", "naive", "--json"])
        #expect(options.days == 7 && options.seed == 42 && options.compareNaive && options.json)
        #expect(throws: SimulateUsageError.self) { try Simulate.parse(["--days", "0"]) }
        #expect(throws: SimulateUsageError.self) { try Simulate.parse(["--compare", "smart"]) }
        #expect(throws: SimulateUsageError.self) { try Simulate.parse(["--scenario", "nope"]) }
        #expect(throws: SimulateUsageError.self) { try Simulate.parse(["--traces"]) }
        #expect(throws: SimulateUsageError.self) { try Simulate.parse(["--price", "-1"]) }
    }

    @Test func builtInScenariosAreReproducible() {
        let a = BuiltInScenarios.all(days: 2, seed: 9)
        let b = BuiltInScenarios.all(days: 2, seed: 9)
        let c = BuiltInScenarios.all(days: 2, seed: 10)
        #expect(a.map(\.name) == BuiltInScenarios.names)
        #expect(a == b)
        #expect(a != c)
    }
}
