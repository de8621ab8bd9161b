import CostOptimizerCore
import Foundation
import Testing

/// SplitMix64: a small seeded generator, so every run sees the same streams and a failure can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One random history of a running instance: a policy, a creation time, and (gap before, sample) steps.
struct SampleStream {
    enum Reading { case idle(Double), busy(Double), failed }

    var policy: Policy
    var createdAt: Date
    var steps: [(gap: Double, reading: Reading)]

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func random(using rng: inout SplitMix64) -> SampleStream {
        var policy = Policy.defaults
        policy.pauseWindow = [0, 5, 10, 30].randomElement(using: &rng)! * 60
        policy.minSamples = Int.random(in: 1...6, using: &rng)
        policy.deleteThreshold = [1, 2, 3].randomElement(using: &rng)! * 3600
        policy.deleteNotice = [0, 0.5, 1, 5].randomElement(using: &rng)! * 3600
        policy.sampleGapLimit = max(policy.pauseWindow, 3 * 60)  // as Config derives it, CHECK_INTERVAL 60
        let createdAt = t0.addingTimeInterval(-Double.random(in: 0...(3 * 3600), using: &rng))
        var mode = 0  // 0 idle, 1 busy, 2 flaky
        var steps: [(Double, Reading)] = []
        for _ in 0..<Int.random(in: 250...450, using: &rng) {
            if Double.random(in: 0..<1, using: &rng) < 0.01 { mode = Int.random(in: 0...2, using: &rng) }
            let roll = Double.random(in: 0..<1, using: &rng)
            let gap: Double =
                roll < 0.94 ? 60 : roll < 0.985 ? Double.random(in: 120...1200, using: &rng)
                : Double.random(in: 1800...7200, using: &rng)
            let r = Double.random(in: 0..<1, using: &rng)
            let reading: Reading
            switch mode {
            case 0: reading = r < 0.9 ? .idle(Double.random(in: 0..<10, using: &rng)) : .failed
            case 1: reading = r < 0.8 ? .busy(r < 0.05 ? 10 : Double.random(in: 10...100, using: &rng)) : .failed
            default: reading = r < 0.7 ? .failed : .idle(Double.random(in: 0..<10, using: &rng))
            }
            steps.append((gap, reading))
        }
        return SampleStream(policy: policy, createdAt: createdAt, steps: steps)
    }

    static func sample(_ reading: Reading) -> SampleResult {
        switch reading {
        case .idle(let value), .busy(let value): History.gpus(value)
        case .failed: .failed("ssh: connect timed out")
        }
    }
}

@Suite("Decision engine: properties over random sample streams")
struct EnginePropertyTests {
    /// The trailing run of successful idle samples, kept from the rules as written: failed samples are skipped
    /// (never idle), a busy sample ends the run, and so does a gap between successful samples over the gap limit.
    struct Oracle {
        var runStart: Date?
        var runCount = 0
        var lastOK: Date?
        /// The notice flagged for the current run: (when, the run's start).
        var notices: [(at: Date, run: Date)] = []

        mutating func observe(_ reading: SampleStream.Reading, at now: Date, policy: Policy) {
            switch reading {
            case .idle:
                if runStart == nil || lastOK.map({ now.timeIntervalSince($0) > policy.sampleGapLimit }) ?? true {
                    runStart = now
                    runCount = 0
                }
                runCount += 1
                lastOK = now
            case .busy:
                runStart = nil
                runCount = 0
                lastOK = now
            case .failed:
                break
            }
        }
    }

    /// No pause unless the trailing run of successful idle samples covers the window with at least MIN_SAMPLES; no
    /// delete unless the idle clock (that run) is past the threshold, the instance is old enough and warned in time.
    @Test("no pause or delete without the evidence: idle run, window, samples, idle clock, age, notice")
    func pauseAndDeleteNeedTheEvidence() {
        var rng = SplitMix64(seed: 0x5AFE_C0DE)
        var counts = (pauses: 0, deletes: 0, notices: 0)
        for index in 0..<300 {
            let stream = SampleStream.random(using: &rng)
            let policy = stream.policy
            var h = History(policy: policy)
            h.instance.createdAt = stream.createdAt
            var oracle = Oracle()
            for (step, (gap, reading)) in stream.steps.enumerated() {
                h.now = h.now.addingTimeInterval(gap)
                let now = h.now
                oracle.observe(reading, at: now, policy: policy)
                let decision = h.cycle(SampleStream.sample(reading), every: 0)
                let context = "stream \(index) step \(step): \(decision.reason)"
                let idleNow: Bool
                if case .idle = reading { idleNow = true } else { idleNow = false }
                switch decision.action {
                case .pause:
                    counts.pauses += 1
                    #expect(idleNow, "\(context)")
                    #expect(oracle.runCount >= policy.minSamples, "\(context)")
                    #expect(
                        oracle.runStart.map { now.timeIntervalSince($0) >= policy.pauseWindow } ?? false, "\(context)")
                case .delete:
                    counts.deletes += 1
                    #expect(idleNow, "\(context)")
                    let run = oracle.runStart ?? now
                    #expect(now.timeIntervalSince(run) > policy.deleteThreshold, "\(context)")
                    #expect(now.timeIntervalSince(stream.createdAt) >= policy.minInstanceAge, "\(context)")
                    let notice = min(policy.deleteNotice, policy.deleteThreshold)
                    if notice > 0 {
                        let warned = oracle.notices.contains {
                            $0.run == run && now.timeIntervalSince($0.at) >= notice
                        }
                        #expect(warned, "\(context)")
                    }
                case .none:
                    break
                }
                if decision.notifyDeleteNotice {
                    counts.notices += 1
                    #expect(idleNow, "\(context)")
                    let run = oracle.runStart ?? now
                    #expect(!oracle.notices.contains { $0.run == run }, "two notices for one idle clock: \(context)")
                    oracle.notices.append((now, run))
                }
            }
        }
        // The streams do reach every outcome, so the checks above are not vacuous.
        #expect(counts.pauses > 1000)
        #expect(counts.deletes > 100)
        #expect(counts.notices > 100)
    }

    @Test("adding protection never adds an action, and removes every action of the protected instances")
    func protectionNeverAddsActions() {
        var rng = SplitMix64(seed: 0xC0FF_EE)
        var acted = 0
        for _ in 0..<60 {
            let streams = (0..<4).map { _ in SampleStream.random(using: &rng) }
            let policy = streams[0].policy
            let instances = streams.indices.map { index in
                var instance = FleetDriver.instance(.vast, String(index))
                instance.createdAt = streams[index].createdAt
                return instance
            }
            let protectedIDs = Set(instances.map(\.key.id).filter { _ in Bool.random(using: &rng) })
            var protectedPolicy = policy
            protectedPolicy.protectedInstances = protectedIDs
            let plain = DecisionEngine(policy: policy)
            let guarded = DecisionEngine(policy: protectedPolicy)
            var stateA = FleetState()
            var stateB = FleetState()
            var now = SampleStream.t0
            let length = streams.map(\.steps.count).min()!
            for step in 0..<length {
                now = now.addingTimeInterval(streams[0].steps[step].gap)
                let observations = instances.indices.map {
                    Observation(instance: instances[$0], sample: SampleStream.sample(streams[$0].steps[step].reading))
                }
                let a = plain.plan(state: stateA, observations: observations, now: now)
                let b = guarded.plan(state: stateB, observations: observations, now: now)
                stateA = a.nextState
                stateB = b.nextState
                let withoutProtection = Set(a.actions.map { "\($0.instance.key) \($0.decision.action)" })
                let withProtection = Set(b.actions.map { "\($0.instance.key) \($0.decision.action)" })
                acted += withoutProtection.count
                #expect(withProtection.isSubset(of: withoutProtection))
                #expect(b.actions.allSatisfy { !protectedIDs.contains($0.instance.key.id) })
            }
        }
        #expect(acted > 1000)
    }

    @Test("through the guards, actions per cycle stay within the caps and the fractions")
    func guardedActionsStayWithinLimits() {
        var rng = SplitMix64(seed: 0xB10C)
        let limits = Limits(maxPausesPerCycle: 3, maxDeletesPerCycle: 1, maxActionFraction: 0.5)
        var (acted, tripped) = (0, 0)
        for _ in 0..<40 {
            let streams = (0..<8).map { _ in SampleStream.random(using: &rng) }
            var policy = streams[0].policy
            policy.pauseWindow = 0
            policy.minSamples = 1
            let providers: [ProviderName] = [.vast, .vast, .vast, .vast, .gcp, .gcp, .gcp, .tensordock]
            let instances = streams.indices.map { FleetDriver.instance(providers[$0], String($0)) }
            let engine = DecisionEngine(policy: policy)
            var state = FleetState()
            var now = SampleStream.t0
            for step in 0..<streams.map(\.steps.count).min()! {
                now = now.addingTimeInterval(60)
                let observations = instances.indices.map {
                    Observation(instance: instances[$0], sample: SampleStream.sample(streams[$0].steps[step].reading))
                }
                let plan = engine.plan(state: state, observations: observations, now: now)
                let counts = Dictionary(grouping: instances, by: \.key.provider).mapValues(\.count)
                let result = Guards.apply(plan, context: GuardContext(listed: counts), limits: limits, now: now)
                state = result.nextState
                acted += result.actions.count
                tripped += result.events.count
                for kind in [ActionKind.pause, .delete] {
                    let of = result.actions.filter { $0.decision.action == kind }
                    #expect(of.count <= (kind == .pause ? limits.maxPausesPerCycle : limits.maxDeletesPerCycle))
                    for provider in ProviderName.allCases {
                        let fleet = instances.filter { $0.key.provider == provider }.count
                        let mine = of.filter { $0.instance.key.provider == provider }.count
                        if fleet > 2 { #expect(Double(mine) <= limits.maxActionFraction * Double(fleet)) }
                    }
                }
                // Withheld or acted: nothing the engine planned disappears without a reason.
                #expect(result.actions.count + result.withheld.count == plan.actions.count)
            }
        }
        #expect(acted > 500)
        #expect(tripped > 500)
    }
}
