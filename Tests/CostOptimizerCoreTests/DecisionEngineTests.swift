import CostOptimizerCore
import Foundation
import Testing

/// A tiny driver: runs the engine once a minute over a scripted history, as the daemon would.
struct History {
    var engine = DecisionEngine(policy: .defaults)
    var state = FleetState()
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    var instance: Instance

    init(state: InstanceState = .running, createdHoursAgo: Double? = 48, label: String? = nil, policy: Policy = .defaults)
    {
        engine = DecisionEngine(policy: policy)
        let start = now
        instance = Instance(
            key: InstanceKey(provider: .vast, id: "123456"), name: label ?? "123456", state: state,
            providerStatus: state.rawValue, gpuModel: "RTX 4090", gpuCount: 1, hourlyCostUSD: 0.4,
            createdAt: createdHoursAgo.map { start.addingTimeInterval(-$0 * 3600) }, labels: label.map { [$0] } ?? [],
            ssh: SSHEndpoint(host: "ssh5.vast.ai", port: 29558, user: "root"))
    }

    static func gpus(_ utilizations: Double...) -> SampleResult {
        .ok(utilizations.enumerated().map { GPUReading(index: $0.offset, pointUtilization: 0, bufferAverage: $0.element) })
    }

    /// One cycle: observe with this sample, decide, advance the clock by `every` seconds afterwards.
    @discardableResult
    mutating func cycle(_ sample: SampleResult?, every: Double = 60) -> Decision {
        let plan = engine.plan(state: state, observations: [Observation(instance: instance, sample: sample)], now: now)
        state = plan.nextState
        now = now.addingTimeInterval(every)
        return plan.decisions[0].decision
    }

    /// `count` cycles with the same sample; returns the last decision.
    @discardableResult
    mutating func cycles(_ count: Int, _ sample: SampleResult?, every: Double = 60) -> Decision {
        var last = Decision.none("")
        for _ in 0..<count { last = cycle(sample, every: every) }
        return last
    }

    /// Records what the runtime does after a successful action.
    mutating func acted(_ action: ActionKind) {
        state.record(action, for: instance.key, at: now, dryRun: false, succeeded: true)
    }
}

@Suite("Decision engine")
struct DecisionEngineTests {
    let idle = History.gpus(3)
    let busy = History.gpus(87)

    @Test("does not pause while the idle streak is shorter than the window")
    func streakShorterThanWindow() {
        var h = History()
        let decision = h.cycles(30, idle)  // samples at minutes 0…29: first sample 29 min old
        #expect(decision.action == .none)
        #expect(decision.reason.contains("idle, not yet"))
    }

    @Test("pauses once the streak covers the window with enough samples, with a readable reason")
    func pausesAfterWindow() {
        var h = History()
        h.cycles(30, idle)
        let decision = h.cycle(idle)  // minute 30
        #expect(decision.action == .pause)
        #expect(decision.reason == "GPU avg 3% < 10% for 30 min, 31 samples")
    }

    @Test("does not pause with too few samples even when the window has passed")
    func tooFewSamples() {
        var h = History()
        let decision = h.cycles(4, idle, every: 15 * 60)  // 4 samples over 45 min
        #expect(decision.action == .none)
        h.cycle(idle)
        #expect(h.cycle(idle).action == .pause)  // the 6th sample: 5+ samples and 75 min
    }

    @Test("a gap in sampling longer than the window ends the streak")
    func sampleGapEndsStreak() {
        var h = History()
        h.cycles(20, idle)
        h.cycles(40, .failed("ssh: connection refused"))  // 40 min with no evidence
        let decision = h.cycles(11, idle)  // a new streak of 10 min
        #expect(decision.action == .none)
        #expect(decision.reason.contains("for 10 min, 11 samples"))
    }

    @Test("failed samples never count as idle")
    func failuresAreNotIdle() {
        var h = History()
        let decision = h.cycles(120, .failed("nvidia-smi: No devices were found"))
        #expect(decision.action == .none)
        #expect(decision.unsampled)
        #expect(h.state[h.instance.key]?.idleSince == nil)
    }

    @Test("one busy GPU of four keeps the instance busy")
    func oneBusyGPUOfFour() {
        var h = History()
        let decision = h.cycles(60, History.gpus(0, 0, 95, 1))
        #expect(decision.action == .none)
        #expect(decision.reason.hasPrefix("busy: GPU 95%"))
    }

    @Test("a busy sample ends the streak")
    func busyEndsStreak() {
        var h = History()
        h.cycles(29, idle)
        h.cycle(busy)
        #expect(h.cycles(29, idle).action == .none)
    }

    static let protections: [(String, Set<String>)] = [
        ("train-keep", []), ("notebook", ["123456"]), ("notebook", ["notebook"]),
    ]

    @Test("a protected instance is never paused or deleted", arguments: protections)
    func protected(label: String, protected: Set<String>) {
        var policy = Policy.defaults
        policy.protectedInstances = protected
        var h = History(label: label, policy: policy)
        let decision = h.cycles(26 * 60, idle)
        #expect(decision.action == .none)
        #expect(decision.reason.hasPrefix("protected:"))
    }

    @Test("pauses but never deletes an instance younger than MIN_INSTANCE_AGE_HOURS")
    func tooYoung() {
        var policy = Policy.defaults
        policy.deleteThreshold = 0
        var h = History(createdHoursAgo: 0.1, policy: policy)
        h.cycles(30, idle)
        #expect(h.cycle(idle).action == .pause)
        h.acted(.pause)
        h.instance.state = .paused
        let decision = h.cycle(nil)
        #expect(decision.action == .none)
        #expect(decision.reason.contains("too young to delete"))
    }

    @Test("never deletes an instance of unknown age")
    func unknownAge() {
        var h = History(state: .paused, createdHoursAgo: nil)
        let decision = h.cycles(26 * 60, nil)
        #expect(decision.action == .none)
        #expect(decision.reason.contains("creation time unknown"))
    }

    @Test("deletes an instance paused for 25 h, the idle clock starting at its idle streak")
    func pausedFor25Hours() {
        var h = History()
        h.cycles(30, idle)
        #expect(h.cycle(idle).action == .pause)
        h.acted(.pause)
        h.instance.state = .paused
        h.cycles(23 * 60, nil)  // 23.5 h idle so far
        #expect(h.cycle(nil).action == .none)
        h.cycles(29, nil)
        let decision = h.cycle(nil)  // idle clock: 24 h 1 min
        #expect(decision.action == .delete)
        #expect(decision.reason.hasPrefix("paused for 24"))
    }

    @Test("deletes an instance first seen stopped once it has been seen stopped for longer than the threshold")
    func firstSeenPaused() {
        var h = History(state: .paused)
        #expect(h.cycles(24 * 60, nil).action == .none)
        #expect(h.cycles(2, nil).action == .delete)
    }

    @Test("seeing an instance running and busy after a pause resets its idle clock")
    func busyAfterPause() {
        var h = History()
        h.cycles(31, idle)
        h.acted(.pause)
        h.instance.state = .paused
        h.cycles(20 * 60, nil)
        h.instance.state = .running
        h.cycle(busy)
        #expect(h.state[h.instance.key]?.idleSince == nil)
        #expect(h.state[h.instance.key]?.pausedAt == nil)
        h.instance.state = .paused
        #expect(h.cycles(5 * 60, nil).action == .none)  // 5 h paused: the clock restarted
    }

    @Test("a running instance idle for longer than the delete threshold is deleted")
    func runningIdleDeleted() {
        var policy = Policy.defaults
        policy.deleteThreshold = 3600
        var h = History(policy: policy)
        h.cycles(61, idle)
        #expect(h.cycle(idle).action == .delete)
    }

    @Test("window 0 and one sample: acts on the current sample")
    func windowZero() {
        var policy = Policy.defaults
        policy.pauseWindow = 0
        policy.minSamples = 1
        policy.sampleGapLimit = 180
        var h = History(policy: policy)
        #expect(h.cycle(idle).action == .pause)
    }

    @Test("transitional and unknown states get no action", arguments: [InstanceState.transitional, .unknown])
    func noActionWhenNotSettled(state: InstanceState) {
        var h = History(state: state)
        let decision = h.cycles(26 * 60, nil)
        #expect(decision.action == .none)
        #expect(h.state[h.instance.key]?.idleSince == nil)
    }

    @Test("running with no successful sample notifies once after a few cycles")
    func unreachableNotifiesOnce() {
        var h = History()
        let flags = (0..<6).map { _ in h.cycle(.failed("ssh: timeout")).notifyUnreachable }
        #expect(flags == [false, false, true, false, false, false])
    }

    @Test("an instance that no listing returned this cycle keeps its record untouched")
    func unobservedKeepsState() {
        var h = History()
        h.cycles(10, idle)
        let before = h.state
        let plan = h.engine.plan(state: before, observations: [], now: h.now)
        #expect(plan.nextState == before)
        #expect(plan.decisions.isEmpty)
    }

    @Test("an unmanaged instance is tracked but never acted on")
    func unmanaged() {
        var h = History()
        h.instance.managed = false
        #expect(h.cycles(26 * 60, idle).reason == "not managed: no GPU")
    }
}

@Suite("Decision engine: provider-specific marks")
struct DecisionEngineMarkTests {
    let idle = History.gpus(3)

    @Test("a newer start time (a user's restart) clears the idle clock and the streak")
    func restartResets() {
        var h = History()
        h.instance.startedAt = h.now.addingTimeInterval(-7200)
        h.cycles(25, idle)
        #expect(h.state[h.instance.key]?.streakCount == 25)
        h.instance.startedAt = h.now
        h.cycle(idle)
        #expect(h.state[h.instance.key]?.streakCount == 1)
        #expect(h.cycles(29, idle).action == .none)  // the whole window must pass anew
        #expect(h.cycle(idle).action == .pause)
    }

    @Test("a stop that keeps the GPU reserved is paused for real after the window: the GPU is released")
    func reservedGPU() {
        var h = History(state: .paused)
        h.instance.gpuReserved = true
        #expect(h.cycles(30, nil).action == .none)
        let decision = h.cycle(nil)
        #expect(decision.action == .pause)
        #expect(decision.reason.hasPrefix("stopped with its GPU reserved"))
    }

    @Test("a reserved-GPU stop that is protected is left alone")
    func reservedGPUProtected() {
        var h = History(state: .paused, label: "keep-this")
        h.instance.gpuReserved = true
        #expect(h.cycles(120, nil).action == .none)
    }

    @Test("deletion protection: paused, never deleted")
    func deletionProtection() {
        var h = History()
        h.instance.deletionProtected = true
        h.cycles(30, idle)
        #expect(h.cycle(idle).action == .pause)
        h.acted(.pause)
        h.instance.state = .paused
        let decision = h.cycles(30 * 60, nil)
        #expect(decision.action == .none)
        #expect(decision.reason.contains("deletion protection is on"))
    }
}
