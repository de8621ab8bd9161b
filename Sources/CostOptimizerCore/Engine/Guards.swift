#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The blast-radius limits the guards apply to a plan (`MAX_PAUSES_PER_CYCLE`, `MAX_DELETES_PER_CYCLE`,
/// `MAX_ACTION_FRACTION`), and how long the daemon remembers what it no longer sees.
public struct Limits: Equatable, Sendable {
    /// When a cycle plans more pauses than this (over all providers), it pauses nothing.
    public var maxPausesPerCycle: Int
    /// When a cycle plans more deletes than this (over all providers), it deletes nothing.
    public var maxDeletesPerCycle: Int
    /// When a cycle plans to pause (or delete) more than this fraction of one provider's managed instances (all those
    /// listed this cycle, in any state, protected ones included), and that provider lists more than
    /// `fractionMinimumFleet` of them, it pauses (or deletes) nothing on that provider.
    public var maxActionFraction: Double
    /// The fraction rule applies only to a provider with more managed instances than this.
    public var fractionMinimumFleet: Int
    /// The record of an instance that no listing has held for longer than this (seconds) is forgotten. Until then an
    /// instance missing from listings keeps its record and is not taken as deleted.
    public var forgetAfter: Double
    /// A guard alert that lasts (a breaker still tripped, the hold still on) is notified again after this long
    /// (seconds); every cycle still reports it in `GuardedPlan.events`.
    public var alertRepeat: Double

    public init(
        maxPausesPerCycle: Int = 10, maxDeletesPerCycle: Int = 3, maxActionFraction: Double = 0.5,
        fractionMinimumFleet: Int = 2, forgetAfter: Double = 24 * 3600, alertRepeat: Double = 24 * 3600
    ) {
        self.maxPausesPerCycle = maxPausesPerCycle
        self.maxDeletesPerCycle = maxDeletesPerCycle
        self.maxActionFraction = maxActionFraction
        self.fractionMinimumFleet = fractionMinimumFleet
        self.forgetAfter = forgetAfter
        self.alertRepeat = alertRepeat
    }

    /// The defaults of the safety issue: 10 pauses, 3 deletes, half of a provider's fleet (over 2), a day.
    public static let defaults = Limits()
}

/// What the guards know of a cycle beyond the plan: the hold switch and the listings.
public struct GuardContext: Equatable, Sendable {
    /// A hold file is present (`STATE_DIR/hold` or `/etc/cost-optimizer/hold`): observe and decide, act on nothing.
    public var hold: Bool
    /// How many instances each provider listed this cycle, for the providers that answered (a provider with several
    /// accounts: the sum over the accounts that answered). A provider absent here did not answer: nothing is
    /// concluded about it, and its previous count is kept for the next comparison.
    public var listed: [ProviderName: Int]

    public init(hold: Bool = false, listed: [ProviderName: Int]) {
        self.hold = hold
        self.listed = listed
    }
}

/// A per-cycle breaker that tripped: the numbers for the error line and `breaker_tripped`.
public struct BreakerTrip: Equatable, Sendable, CustomStringConvertible {
    /// The limit that was exceeded.
    public enum Rule: Equatable, Sendable {
        /// `MAX_PAUSES_PER_CYCLE` or `MAX_DELETES_PER_CYCLE`, over all providers.
        case perCycleCap(Int)
        /// `MAX_ACTION_FRACTION` of one provider's managed instances.
        case fraction(Double)
    }

    /// `.pause` or `.delete`: no action of this kind is taken (on `provider`, or anywhere when it is nil).
    public var kind: ActionKind
    /// The provider of the fraction rule; nil for the per-cycle cap, which counts every provider.
    public var provider: ProviderName?
    /// How many actions of this kind the engine planned (on `provider`, or in all).
    public var planned: Int
    public var rule: Rule
    /// The managed instances listed this cycle (of `provider`, or in all).
    public var managed: Int

    public init(kind: ActionKind, provider: ProviderName?, planned: Int, rule: Rule, managed: Int) {
        self.kind = kind
        self.provider = provider
        self.planned = planned
        self.rule = rule
        self.managed = managed
    }

    /// `breaker: 9 pauses planned > MAX_PAUSES_PER_CYCLE 3`, or
    /// `breaker: 9 pauses planned of 10 managed vast instances > MAX_ACTION_FRACTION 0.5`.
    public var description: String {
        let what = "\(planned) \(kind == .delete ? "deletes" : "pauses") planned"
        switch rule {
        case .perCycleCap(let cap):
            let name = kind == .delete ? "MAX_DELETES_PER_CYCLE" : "MAX_PAUSES_PER_CYCLE"
            return "breaker: \(what) > \(name) \(cap)"
        case .fraction(let fraction):
            let of = "of \(managed) managed \(provider?.rawValue ?? "") instances"
            return "breaker: \(what) \(of) > MAX_ACTION_FRACTION \(number(fraction))"
        }
    }
}

/// Something a guard noticed this cycle, for the runtime to log and notify.
public enum GuardEvent: Equatable, Sendable, CustomStringConvertible {
    /// The hold switch is on: no action anywhere.
    case hold
    /// More than half of the sampled running managed instances gave no GPU reading: no pause and no delete anywhere.
    case observerUnhealthy(failed: Int, running: Int)
    /// A provider listed an empty or much smaller list right after a non-empty one: no action on that provider.
    case suspiciousListing(provider: ProviderName, previous: Int, current: Int)
    /// A breaker tripped: no action of its kind (anywhere, or on its provider). Logged as an error.
    case breakerTripped(BreakerTrip)

    /// One sentence with the numbers, for the log line and the notification.
    public var description: String {
        switch self {
        case .hold:
            "hold file present: acting on nothing"
        case .observerUnhealthy(let failed, let running):
            "observer unhealthy: \(failed) of \(running) running instances gave no GPU reading: "
                + "no pause or delete anywhere"
        case .suspiciousListing(let provider, let previous, let current):
            "listing suspicious: \(provider.rawValue) listed \(current) after \(previous)"
        case .breakerTripped(let trip):
            trip.description
        }
    }

    /// Identifies the condition across cycles, so a lasting one is notified once a day (`FleetState.guardAlerts`).
    public var alertKey: String {
        switch self {
        case .hold: "hold"
        case .observerUnhealthy: "observer"
        case .suspiciousListing(let provider, _, _): "listing/\(provider.rawValue)"
        case .breakerTripped(let trip):
            "breaker/\(trip.kind.rawValue)/" + (trip.provider.map { "fraction/\($0.rawValue)" } ?? "cap")
        }
    }
}

/// A plan after the guards: withheld actions turned into `.none` with the reason, the next state, the events.
public struct GuardedPlan: Equatable, Sendable {
    /// The engine's plan with every withheld action turned into `.none` (`Decision.withheld` keeps what it was), and
    /// the next state: listing counts updated, guard alerts updated, long-unseen instances forgotten.
    public var plan: Plan
    /// Every guard condition of this cycle, in a stable order: hold, observer, listings, breakers.
    public var events: [GuardEvent]
    /// The events to notify now: each condition when it begins, then once per `Limits.alertRepeat` while it lasts.
    public var notify: [GuardEvent]
    /// Instances forgotten this cycle: no listing held them for longer than `Limits.forgetAfter`.
    public var forgotten: [InstanceKey]

    public var decisions: [PlannedDecision] { plan.decisions }
    public var nextState: FleetState { plan.nextState }
    /// The decisions whose action survived the guards.
    public var actions: [PlannedDecision] { plan.actions }
    /// The decisions whose action a guard withheld.
    public var withheld: [PlannedDecision] { plan.decisions.filter { $0.decision.withheld != nil } }
}

/// The guards between the engine's plan and the runtime's actions: hold, observer health, suspicious listings and
/// the per-cycle breakers. Pure: values in, values out.
///
/// Each guard is evaluated on the engine's plan independently; an action withheld by several guards names all of
/// them. Breakers count every action the engine planned, those withheld by other guards included (the conservative
/// reading). Notifications (`delete_notice`, `unmonitored`, `ssh_unreachable`) are not actions and are left alone.
public enum Guards {
    /// Applies the guards to a plan.
    ///
    /// - Parameters:
    ///   - plan: the engine's plan for this cycle.
    ///   - context: the hold switch and this cycle's listing counts.
    ///   - limits: the breakers' limits and the forgetting horizon.
    ///   - now: the cycle's time (the same as the engine's).
    /// - Returns: the plan with withheld actions turned into `.none`, the next state and the events.
    public static func apply(_ plan: Plan, context: GuardContext, limits: Limits, now: Date) -> GuardedPlan {
        var next = plan.nextState
        var events: [GuardEvent] = []
        // Index of a planned action → the reasons it is withheld.
        var withheld: [Int: [String]] = [:]
        let actions = plan.decisions.indices.filter { plan.decisions[$0].decision.action != .none }
        func withhold(_ reason: String, where include: (PlannedDecision) -> Bool) {
            for index in actions where include(plan.decisions[index]) { withheld[index, default: []].append(reason) }
        }

        // 1. Hold: act on nothing.
        if context.hold {
            events.append(.hold)
            withhold(GuardEvent.hold.description) { _ in true }
        }

        // 2. Observer health: more than half of the sampled running instances gave nothing. The network or the key is
        // broken, not the fleet idle. Instances with no ssh endpoint were never tried and are left out of both counts.
        let tried = plan.decisions.filter {
            $0.instance.state == .running && $0.instance.managed && $0.instance.ssh != nil
        }
        let failed = tried.filter { $0.decision.unsampled }.count
        if failed * 2 > tried.count {
            let event = GuardEvent.observerUnhealthy(failed: failed, running: tried.count)
            events.append(event)
            withhold(event.description) { _ in true }
        }

        // 3. Suspicious listings: empty, or fewer than half, right after a non-empty one. The count is kept either way,
        // so one odd answer stops one cycle, and a fleet that really shrank is acted on from the next cycle.
        var counts = next.listingCounts ?? [:]
        for (provider, current) in context.listed.sorted(by: { $0.key < $1.key }) {
            if let previous = counts[provider.rawValue], isSuspicious(previous: previous, current: current) {
                let event = GuardEvent.suspiciousListing(provider: provider, previous: previous, current: current)
                events.append(event)
                withhold(event.description) { $0.instance.key.provider == provider }
            }
            counts[provider.rawValue] = current
        }
        next.listingCounts = counts.isEmpty ? nil : counts

        // 4. Breakers, all or nothing per kind: the cap over every provider, then the fraction of each provider.
        let managed = plan.decisions.filter { $0.instance.managed }
        for kind in [ActionKind.pause, .delete] {
            let planned = actions.map { plan.decisions[$0] }.filter { $0.decision.action == kind }
            guard !planned.isEmpty else { continue }
            let cap = kind == .pause ? limits.maxPausesPerCycle : limits.maxDeletesPerCycle
            if planned.count > cap {
                let trip = BreakerTrip(
                    kind: kind, provider: nil, planned: planned.count, rule: .perCycleCap(cap), managed: managed.count)
                events.append(.breakerTripped(trip))
                withhold(trip.description) { $0.decision.action == kind }
            }
            for provider in Set(planned.map(\.instance.key.provider)).sorted() {
                let fleet = managed.filter { $0.instance.key.provider == provider }.count
                let count = planned.filter { $0.instance.key.provider == provider }.count
                guard fleet > limits.fractionMinimumFleet, Double(count) > limits.maxActionFraction * Double(fleet)
                else { continue }
                let trip = BreakerTrip(
                    kind: kind, provider: provider, planned: count, rule: .fraction(limits.maxActionFraction),
                    managed: fleet)
                events.append(.breakerTripped(trip))
                withhold(trip.description) { $0.decision.action == kind && $0.instance.key.provider == provider }
            }
        }

        var decisions = plan.decisions
        for (index, reasons) in withheld {
            var decision = decisions[index].decision
            let verb = decision.action == .delete ? "delete" : "pause"
            decision.withheld = decision.action
            decision.action = .none
            decision.reason = reasons.joined(separator: "; ") + "; would \(verb): " + decision.reason
            decisions[index].decision = decision
        }

        // Alerts: notify a condition when it begins, then once per alertRepeat while it lasts. An entry is dropped
        // once its condition is over and its last notification is older than alertRepeat, so a flapping condition is
        // notified at most once per alertRepeat (every cycle still logs it).
        var alerts = next.guardAlerts ?? [:]
        var notify: [GuardEvent] = []
        for event in events {
            let due = alerts[event.alertKey].map { now.timeIntervalSince($0) >= limits.alertRepeat } ?? true
            if due {
                notify.append(event)
                alerts[event.alertKey] = now
            }
        }
        let active = Set(events.map(\.alertKey))
        alerts = alerts.filter { active.contains($0.key) || now.timeIntervalSince($0.value) < limits.alertRepeat }
        next.guardAlerts = alerts.isEmpty ? nil : alerts

        let forgotten = next.forgetInstances(unseenSince: now.addingTimeInterval(-limits.forgetAfter))
        return GuardedPlan(
            plan: Plan(decisions: decisions, nextState: next), events: events, notify: notify, forgotten: forgotten)
    }

    /// True for an empty listing after a non-empty one, or one with fewer than half the previous count when that
    /// was at least 2 (10 → 4 is suspicious, 10 → 5 and 2 → 1 are not).
    public static func isSuspicious(previous: Int, current: Int) -> Bool {
        guard previous > 0 else { return false }
        if current == 0 { return true }
        return previous >= 2 && current * 2 < previous
    }
}

/// `0.5`, `1`, `0.25`: the shortest form of a setting's value.
private func number(_ value: Double) -> String {
    value == value.rounded() ? String(Int(value)) : String(value)
}
