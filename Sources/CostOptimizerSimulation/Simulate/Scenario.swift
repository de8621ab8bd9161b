import Foundation

/// One simulated instance: what it costs, when it was created, and what its GPUs do.
public struct SimulatedMachine: Equatable, Sendable {
    /// The instance's label at the provider (its name in the table of a `--traces` run).
    public var name: String
    public var gpuModel: String
    /// Dollars per hour while running (all its GPUs).
    public var pricePerHour: Double
    /// Dollars per hour while stopped (its disk).
    public var storagePerHour: Double
    /// Seconds since the start of the simulation (negative: created before it).
    public var createdAt: Double
    public var trace: InstanceTrace
    /// When ssh to it fails (connection refused) although it runs.
    public var sshDown: [TimeSpan]

    public init(
        name: String, gpuModel: String = "NVIDIA A100-SXM4-80GB", pricePerHour: Double, storagePerHour: Double,
        createdAt: Double, trace: InstanceTrace, sshDown: [TimeSpan] = []
    ) {
        self.name = name
        self.gpuModel = gpuModel
        self.pricePerHour = pricePerHour
        self.storagePerHour = storagePerHour
        self.createdAt = createdAt
        self.trace = trace
        self.sshDown = sshDown
    }

    /// True when ssh to it is scripted to fail at `t`.
    public func sshFails(at t: Double) -> Bool { sshDown.contains { $0.contains(t) } }
}

/// A simulated fleet over a period: its machines, and when the daemon itself is down.
public struct SimulationScenario: Equatable, Sendable {
    public var name: String
    /// One line: what the workload is and what a good policy should do.
    public var story: String
    public var machines: [SimulatedMachine]
    /// Seconds simulated, from 0.
    public var duration: Double
    /// When the daemon is not running (a restart): no cycle runs then; the next cycle is a new daemon on the same
    /// state store.
    public var daemonDown: [TimeSpan]

    public init(
        name: String, story: String, machines: [SimulatedMachine], duration: Double, daemonDown: [TimeSpan] = []
    ) {
        self.name = name
        self.story = story
        self.machines = machines
        self.duration = duration
        self.daemonDown = daemonDown
    }

    /// True when the daemon is down at `t`.
    public func daemonIsDown(at t: Double) -> Bool { daemonDown.contains { $0.contains(t) } }
}

/// The settings a simulation runs under: the policy's own numbers, read from the same variables as the daemon's.
public struct SimulationSettings: Equatable, Sendable {
    /// `PAUSE_THRESHOLD_GPU` (%).
    public var threshold: Double
    /// `PAUSE_WINDOW_MINUTES`, in seconds.
    public var window: Double
    /// `CHECK_INTERVAL`, in seconds.
    public var interval: Double
    /// The seed of the cycle-time jitter (and of the built-in scenarios).
    public var seed: UInt64

    public init(threshold: Double = 10, window: Double = 1800, interval: Double = 60, seed: UInt64 = 1) {
        self.threshold = threshold
        self.window = window
        self.interval = interval
        self.seed = seed
    }

    /// The moments the daemon (and the naive rule) sample: one every `interval`, each moved later by a seeded 0–2 s
    /// (a real daemon's cycles drift by the time each takes), so a periodic workload is read at random phases. Moments
    /// when the daemon is down are left out.
    public func cycleTimes(for scenario: SimulationScenario) -> [Double] {
        var random = SeededRandom(seed: seed ^ 0x5EED_C10C)
        var times: [Double] = []
        let count = Int((scenario.duration / interval).rounded(.up))
        times.reserveCapacity(count)
        for k in 0..<count {
            let t = Double(k) * interval + random.uniform(0, min(2, interval / 2))
            guard t < scenario.duration else { break }
            if !scenario.daemonIsDown(at: t) { times.append(t) }
        }
        return times
    }
}

/// SplitMix64: a small, seeded, reproducible generator (the same numbers on every platform and run).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for one named use of a seed, so scenarios do not share a stream.
    public init(seed: UInt64, salt: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in salt.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        state = seed ^ hash
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `[low, high)`.
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(next() >> 11) / Double(1 << 53)
    }
}
