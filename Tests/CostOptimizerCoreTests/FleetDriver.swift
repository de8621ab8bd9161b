import CostOptimizerCore
import Foundation

/// A fleet driven cycle by cycle through the engine and the guards, as the daemon does: list, sample, plan, guard.
/// Actions are not applied unless a test says so (`acted`), so a planned action is planned again next cycle.
struct FleetDriver {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    var engine: DecisionEngine
    var limits: Limits
    var state = FleetState()
    var now = FleetDriver.t0
    var instances: [Instance]
    /// What each running instance with an ssh endpoint gives this cycle, by id; absent ids give `defaultSample`.
    var samples: [String: SampleResult] = [:]
    var defaultSample: SampleResult = History.gpus(87)

    init(policy: Policy = .defaults, limits: Limits = .defaults, instances: [Instance]) {
        self.engine = DecisionEngine(policy: policy)
        self.limits = limits
        self.instances = instances
    }

    /// A managed GPU instance created two days before `t0` (nil: unknown age).
    static func instance(
        _ provider: ProviderName, _ id: String, state: InstanceState = .running, createdHoursAgo: Double? = 48,
        ssh: Bool = true
    ) -> Instance {
        Instance(
            key: InstanceKey(provider: provider, id: id), name: "\(provider.rawValue)-\(id)", state: state,
            providerStatus: state.rawValue, gpuModel: "RTX 4090", gpuCount: 1, hourlyCostUSD: 0.4,
            createdAt: createdHoursAgo.map { t0.addingTimeInterval(-$0 * 3600) },
            ssh: ssh ? SSHEndpoint(host: "ssh\(id).example", port: 22, user: "root") : nil,
            sshUnavailableReason: ssh ? nil : "no external IP")
    }

    /// `count` instances `provider/0` … of one state.
    static func fleet(_ provider: ProviderName, _ count: Int, state: InstanceState = .running, from first: Int = 0)
        -> [Instance]
    {
        (first..<(first + count)).map { instance(provider, String($0), state: state) }
    }

    /// One cycle: `visible` (default: every instance) is what the providers listed; `listed` the counts given to
    /// the guards (default: counted from `visible`, for every provider of the fleet). The clock then advances.
    @discardableResult
    mutating func cycle(
        hold: Bool = false, visible: [Instance]? = nil, listed: [ProviderName: Int]? = nil, every: Double = 60
    ) -> GuardedPlan {
        let shown = visible ?? instances
        let observations = shown.map { instance in
            let sampled = instance.state == .running && instance.managed && instance.ssh != nil
            return Observation(instance: instance, sample: sampled ? samples[instance.key.id] ?? defaultSample : nil)
        }
        let plan = engine.plan(state: state, observations: observations, now: now)
        var counts: [ProviderName: Int] = [:]
        for provider in Set(instances.map(\.key.provider)) {
            counts[provider] = shown.filter { $0.key.provider == provider }.count
        }
        let context = GuardContext(hold: hold, listed: listed ?? counts)
        let guarded = Guards.apply(plan, context: context, limits: limits, now: now)
        state = guarded.nextState
        now = now.addingTimeInterval(every)
        return guarded
    }

    /// `count` cycles; returns the last.
    @discardableResult
    mutating func cycles(_ count: Int, every: Double = 60) -> GuardedPlan {
        var last: GuardedPlan?
        for _ in 0..<count { last = cycle(every: every) }
        return last!
    }

    /// Marks every id as giving `sample`.
    mutating func set(_ ids: some Sequence<Int>, _ sample: SampleResult) {
        for id in ids { samples[String(id)] = sample }
    }
}

extension GuardedPlan {
    /// The keys and kinds of the actions that survived the guards, e.g. `["vast/1 pause"]`.
    var actionList: [String] { actions.map { "\($0.instance.key) \($0.decision.action.rawValue)" } }
    /// The keys and kinds of the withheld actions.
    var withheldList: [String] { withheld.map { "\($0.instance.key) \($0.decision.withheld!.rawValue)" } }
}
