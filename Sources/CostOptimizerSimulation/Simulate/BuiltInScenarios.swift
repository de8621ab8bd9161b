import Foundation

/// The built-in scenarios of `simulate`, seeded and reproducible: the three of the product's savings table, then the
/// hard ones a policy gets wrong (bursts, stalls, one busy GPU of many, memory held at 0 %, restarts, ssh outages, a
/// daemon restart).
public enum BuiltInScenarios {
    /// The scenario names, in table order.
    public static let names = [
        "idle-12h", "forgotten-gpus", "batch", "bursty-inference", "training-stalls", "one-busy-of-eight", "notebook",
        "next-morning", "ssh-outage", "daemon-restart",
    ]

    /// Storage while stopped, $/h: what the Vast simulator reports for a 50 GB disk (`storage_total_cost`).
    public static let storagePerHour = 0.0104

    /// Every built-in scenario over `days` days.
    public static func all(days: Int, seed: UInt64) -> [SimulationScenario] {
        names.compactMap { scenario(named: $0, days: days, seed: seed) }
    }

    /// One scenario by name, or nil.
    public static func scenario(named name: String, days: Int, seed: UInt64) -> SimulationScenario? {
        var random = SeededRandom(seed: seed, salt: name)
        let duration = Double(days) * day
        let make: ((inout SeededRandom, Int, Double) -> SimulationScenario)? =
            switch name {
            case "idle-12h": idle12h
            case "forgotten-gpus": forgottenGPUs
            case "batch": batch
            case "bursty-inference": burstyInference
            case "training-stalls": trainingStalls
            case "one-busy-of-eight": oneBusyOfEight
            case "notebook": notebook
            case "next-morning": nextMorning
            case "ssh-outage": sshOutage
            case "daemon-restart": daemonRestart
            default: nil
            }
        return make?(&random, days, duration)
    }

    // MARK: - The product's savings table

    static func idle12h(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        // The period starts as an idle stretch begins and ends with a busy block: no stretch is cut in two by it.
        var timeline = Timeline()
        for d in 0..<days {
            let start = Double(d) * day + 12 * hour + random.uniform(-15, 15) * minute
            timeline.idle(until: start, &random)
            timeline.busy(until: min(duration, start + 12 * hour), levels: 60...100, step: 5 * minute, &random)
        }
        timeline.idle(until: duration, &random)
        return SimulationScenario(
            name: "idle-12h",
            story: "one GPU ($1.00/h) idle 12 h a day (00:00-12:00 ±15 min) and busy the other 12 h: "
                + "$720/month → ~$360",
            machines: [
                SimulatedMachine(
                    name: "trainer", pricePerHour: 1.00, storagePerHour: storagePerHour, createdAt: -30 * day,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 30_000)]))
            ], duration: duration)
    }

    static func forgottenGPUs(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        let machines = (0..<5).map { i in
            var timeline = Timeline()
            // The jobs end minutes apart, as jobs do.
            timeline.busy(until: (10 + 7 * Double(i)) * minute + random.uniform(0, 3) * minute, levels: 90...100,
                          step: 5 * minute, &random)
            timeline.idle(until: duration, &random)
            return SimulatedMachine(
                name: "experiment-\(i + 1)", pricePerHour: 1.00, storagePerHour: storagePerHour, createdAt: -3 * day,
                trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 0)]))
        }
        return SimulationScenario(
            name: "forgotten-gpus",
            story: "five GPUs ($1.00/h each) left running after an experiment ended, never used again: "
                + "$3,600/month → ~$0",
            machines: machines, duration: duration)
    }

    static func batch(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var timeline = Timeline()
        for d in 0..<days {
            let start = Double(d) * day + random.uniform(1, 5) * hour
            let end = start + random.uniform(8.5, 9.7) * hour
            timeline.idle(until: start, &random)
            // A checkpoint every ~3 h drops the GPU to a few % for two minutes.
            var t = start
            while t < end {
                let next = min(end, t + random.uniform(2.5, 3.5) * hour)
                timeline.busy(until: next, levels: 85...100, step: 10 * minute, &random)
                if next < end {
                    timeline.append(.constant(3, from: next, to: next + 2 * minute))
                    t = next + 2 * minute
                } else {
                    t = next
                }
            }
        }
        timeline.idle(until: duration, &random)
        return SimulationScenario(
            name: "batch",
            story: "one GPU ($0.694/h) running one batch job a day (8.5-9.7 h, starting 01:00-05:00), idle ~62 % of "
                + "the time: $500/month → ~$200",
            machines: [
                SimulatedMachine(
                    name: "batch-runner", gpuModel: "NVIDIA RTX A6000", pricePerHour: 500.0 / 720,
                    storagePerHour: storagePerHour, createdAt: -30 * day,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 20_000)]))
            ], duration: duration)
    }

    // MARK: - The hard ones

    static func burstyInference(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        let pulse = TraceSegment.pulse(
            period: 2, busySeconds: 0.3, busyLevel: 100, idleLevel: 0, phase: random.uniform(0, 2), from: -day,
            to: duration)
        return SimulationScenario(
            name: "bursty-inference",
            story: "an inference server busy 0.3 s in every 2 s around the clock (true mean 15 %, point readings "
                + "mostly 0 %): never idle",
            machines: [
                SimulatedMachine(
                    name: "inference-api", gpuModel: "NVIDIA GeForce RTX 4090", pricePerHour: 0.50,
                    storagePerHour: storagePerHour, createdAt: -10 * day,
                    trace: InstanceTrace(gpus: [GPUTrace([pulse], memoryUsedMiB: 9_000)]))
            ], duration: duration)
    }

    static func trainingStalls(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var epochs: [(TimeSpan, stall: TimeSpan)] = []
        var t = -hour
        while t < duration {
            let epochEnd = t + random.uniform(45, 55) * minute
            epochs.append((TimeSpan(t, epochEnd), TimeSpan(epochEnd, epochEnd + 10 * minute)))
            t = epochEnd + 10 * minute
        }
        let gpus = (0..<2).map { _ in
            var timeline = Timeline(from: -hour)
            for (epoch, stall) in epochs {
                timeline.busy(until: epoch.end, levels: 88...99, step: 10 * minute, &random)
                timeline.append(.constant(0, from: stall.start, to: stall.end))
            }
            return GPUTrace(timeline.segments, memoryUsedMiB: 60_000)
        }
        return SimulationScenario(
            name: "training-stalls",
            story: "a 2-GPU training job ($2.00/h): ~50-min epochs at ~95 %, each followed by a 10-min data-loading "
                + "stall at 0 %: never idle for 30 min",
            machines: [
                SimulatedMachine(
                    name: "llm-train", pricePerHour: 2.00, storagePerHour: storagePerHour, createdAt: -5 * day,
                    trace: InstanceTrace(gpus: gpus))
            ], duration: duration)
    }

    static func oneBusyOfEight(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var busy = Timeline(from: -day)
        busy.busy(until: duration, levels: 62...78, step: 5 * minute, &random)
        let gpus = [GPUTrace(busy.segments, memoryUsedMiB: 50_000)] + (1..<8).map { _ in GPUTrace.constant(0) }
        return SimulationScenario(
            name: "one-busy-of-eight",
            story: "an 8-GPU box ($16.00/h) with one GPU at ~70 % and seven at 0 % (the mean over GPUs reads < 10 %): "
                + "busy",
            machines: [
                SimulatedMachine(
                    name: "eval-8x", gpuModel: "NVIDIA H100 80GB HBM3", pricePerHour: 16.00,
                    storagePerHour: storagePerHour * 4, createdAt: -5 * day, trace: InstanceTrace(gpus: gpus))
            ], duration: duration)
    }

    static func notebook(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var timeline = Timeline(from: -3 * hour)
        timeline.busy(until: duration, levels: 0...1, step: hour, &random)
        return SimulationScenario(
            name: "notebook",
            story: "a Jupyter kernel holding 10 GB of GPU memory at 0 % utilisation ($0.40/h), nobody at the keyboard: "
                + "genuinely idle",
            machines: [
                SimulatedMachine(
                    name: "jupyter", gpuModel: "NVIDIA GeForce RTX 4090", pricePerHour: 0.40,
                    storagePerHour: storagePerHour, createdAt: -3 * hour,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 10_767)]))
            ], duration: duration)
    }

    static func nextMorning(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var timeline = Timeline()
        for d in 0..<days {
            let start = Double(d) * day + 9 * hour + random.uniform(-20, 20) * minute
            let end = Double(d) * day + 18 * hour + random.uniform(-20, 20) * minute
            timeline.idle(until: start, &random)
            // Interactive work: bursts of a few minutes, pauses of a few minutes, never 30 min idle.
            var t = start
            while t < end {
                let burst = min(end, t + random.uniform(3, 25) * minute)
                timeline.busy(until: burst, levels: 30...100, step: minute, &random)
                let gap = min(end, burst + random.uniform(1, 12) * minute)
                if gap > burst { timeline.append(.constant(random.uniform(0, 2), from: burst, to: gap)) }
                t = gap
            }
        }
        timeline.idle(until: duration, &random)
        return SimulationScenario(
            name: "next-morning",
            story: "a developer's GPU ($1.00/h) used 09:00-18:00 with short breaks: paused each evening, started "
                + "again by its user the next morning",
            machines: [
                SimulatedMachine(
                    name: "dev-box", pricePerHour: 1.00, storagePerHour: storagePerHour, createdAt: -30 * day,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 12_000)]))
            ], duration: duration)
    }

    static func sshOutage(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var timeline = Timeline(from: -day)
        timeline.busy(until: duration, levels: 90...99, step: 10 * minute, &random)
        let outageDay = Double(min(1, days - 1)) * day
        return SimulationScenario(
            name: "ssh-outage",
            story: "a busy training job ($1.00/h) whose ssh is refused for two hours (10:00-12:00 on day \(min(2, days))): "
                + "no evidence, so no action",
            machines: [
                SimulatedMachine(
                    name: "ssh-flaky", pricePerHour: 1.00, storagePerHour: storagePerHour, createdAt: -5 * day,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 40_000)]),
                    sshDown: [TimeSpan(outageDay + 10 * hour, outageDay + 12 * hour)])
            ], duration: duration)
    }

    static func daemonRestart(_ random: inout SeededRandom, days: Int, duration: Double) -> SimulationScenario {
        var timeline = Timeline()
        for d in 0..<days {
            let base = Double(d) * day
            timeline.idle(until: base + 6 * hour, &random)
            timeline.busy(until: base + 11.75 * hour, levels: 70...100, step: 10 * minute, &random)
            timeline.idle(until: base + 14 * hour, &random)
            timeline.busy(until: base + 22 * hour, levels: 70...100, step: 10 * minute, &random)
        }
        timeline.idle(until: duration, &random)
        let restartDay = Double(min(1, days - 1)) * day
        return SimulationScenario(
            name: "daemon-restart",
            story: "a GPU ($1.00/h) busy 06:00-11:45 and 14:00-22:00; the daemon is restarted at 12:00 on day "
                + "\(min(2, days)) and down 15 min, mid idle streak",
            machines: [
                SimulatedMachine(
                    name: "two-shifts", pricePerHour: 1.00, storagePerHour: storagePerHour, createdAt: -30 * day,
                    trace: InstanceTrace(gpus: [GPUTrace(timeline.segments, memoryUsedMiB: 20_000)]))
            ], duration: duration,
            daemonDown: [TimeSpan(restartDay + 12 * hour, restartDay + 12.25 * hour)])
    }

    // MARK: - Building traces

    static let minute = 60.0
    static let hour = 3600.0
    static let day = 86_400.0

    /// Appends segments in time order.
    struct Timeline {
        var segments: [TraceSegment] = []
        var cursor: Double

        init(from start: Double = 0) { cursor = start }

        mutating func append(_ segment: TraceSegment) {
            segments.append(segment)
            cursor = segment.end
        }

        /// Idle (0-2 %, a new level every hour) until `end`.
        mutating func idle(until end: Double, _ random: inout SeededRandom) {
            busy(until: end, levels: 0...2, step: 3600, &random)
        }

        /// Levels drawn from `levels`, a new one every `step` seconds, until `end`.
        mutating func busy(until end: Double, levels: ClosedRange<Double>, step: Double, _ random: inout SeededRandom) {
            while cursor < end {
                let next = min(end, cursor + step)
                append(.constant(random.uniform(levels.lowerBound, levels.upperBound), from: cursor, to: next))
            }
        }
    }
}
