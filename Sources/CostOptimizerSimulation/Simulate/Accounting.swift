import Foundation

/// What happened to one simulated instance, in continuous time: when it was stopped (by a policy), started again (by
/// its user, when the trace says work resumes) and deleted.
public struct MachineHistory: Equatable, Sendable {
    /// What the instance is doing from a moment on.
    public enum Status: String, Equatable, Sendable {
        /// Billed at the running rate.
        case running
        /// Stopped: billed at the storage rate.
        case paused
        /// Gone: billed nothing.
        case deleted
    }

    /// Status changes in time order; the instance runs from time 0 until the first.
    public private(set) var changes: [(time: Double, status: Status)] = []
    /// When a policy stopped it.
    public private(set) var pauses: [Double] = []
    /// When a policy deleted it.
    public private(set) var deletes: [Double] = []

    public init() {}

    /// The status at the end of the changes so far.
    public var status: Status { changes.last?.status ?? .running }

    /// A policy stopped it at `t`.
    public mutating func paused(at t: Double) {
        pauses.append(t)
        changes.append((t, .paused))
    }

    /// Its user started it again at `t`.
    public mutating func restarted(at t: Double) { changes.append((t, .running)) }

    /// A policy deleted it at `t`.
    public mutating func deleted(at t: Double) {
        deletes.append(t)
        changes.append((t, .deleted))
    }

    /// Dollars spent on `[0, end)`.
    public func spend(price: Double, storage: Double, until end: Double) -> Double {
        var total = 0.0
        var from = 0.0
        var status = Status.running
        for change in changes + [(end, .deleted)] {
            let to = min(max(change.time, from), end)
            let rate = status == .running ? price : status == .paused ? storage : 0
            total += rate * (to - from) / 3600
            from = to
            status = change.status
        }
        return total
    }

    public static func == (lhs: MachineHistory, rhs: MachineHistory) -> Bool {
        lhs.pauses == rhs.pauses && lhs.deletes == rhs.deletes && lhs.changes.map(\.time) == rhs.changes.map(\.time)
            && lhs.changes.map(\.status) == rhs.changes.map(\.status)
    }
}

/// The policy that knows the future: it stops an instance at the first second of every idle stretch (every GPU below
/// the threshold) longer than the pause window and starts it again when work resumes, paying storage in between.
/// It never deletes, and never stops an instance for a stretch the window would not cover.
public enum Oracle {
    /// The idle stretches the oracle stops the instance for, within `[0, duration)`.
    public static func stops(_ machine: SimulatedMachine, settings: SimulationSettings, duration: Double) -> [TimeSpan] {
        machine.trace.idleStretches(
            threshold: settings.threshold, in: TimeSpan(0, duration), longerThan: settings.window)
    }

    /// Dollars the oracle saves on one instance: (running − storage rate) × the hours it keeps the instance stopped.
    public static func saved(_ machine: SimulatedMachine, settings: SimulationSettings, duration: Double) -> Double {
        stops(machine, settings: settings, duration: duration).reduce(0) { $0 + $1.length }
            * (machine.pricePerHour - machine.storagePerHour) / 3600
    }
}

/// One row of the result: a scenario under one policy.
public struct SimulationResult: Equatable, Sendable {
    public var scenario: String
    /// `default` (the daemon) or `naive`.
    public var policy: String
    public var spendWithout: Double
    public var spendWith: Double
    /// What the oracle saves on the same traces.
    public var oracleSaved: Double
    public var pauses: Int
    public var deletes: Int
    /// Pauses after which some GPU's true mean over the pause window before was at or above the threshold.
    public var falsePauses: Int
    /// Deletes after which the trace still had work (some GPU at or above the threshold) before the end.
    public var workAfterDelete: Int
    /// Simulated days.
    public var days: Double

    /// Dollars saved against running everything all the time.
    public var saved: Double { spendWithout - spendWith }
    public var savingsPercent: Double { spendWithout > 0 ? 100 * saved / spendWithout : 0 }
    public var oracleSavingsPercent: Double { spendWithout > 0 ? 100 * oracleSaved / spendWithout : 0 }
    /// Ours / the oracle's; 1 where the oracle saves nothing. Above 1 when deletes also save the storage the oracle
    /// keeps paying.
    public var captureRatio: Double { oracleSaved > 1e-9 ? saved / oracleSaved : 1 }

    /// Builds the row from each machine's history.
    public static func evaluate(
        _ scenario: SimulationScenario, policy: String, histories: [MachineHistory], settings: SimulationSettings
    ) -> SimulationResult {
        var result = SimulationResult(
            scenario: scenario.name, policy: policy, spendWithout: 0, spendWith: 0, oracleSaved: 0, pauses: 0,
            deletes: 0, falsePauses: 0, workAfterDelete: 0, days: scenario.duration / 86_400)
        for (machine, history) in zip(scenario.machines, histories) {
            result.spendWithout += machine.pricePerHour * scenario.duration / 3600
            result.spendWith += history.spend(
                price: machine.pricePerHour, storage: machine.storagePerHour, until: scenario.duration)
            result.oracleSaved += Oracle.saved(machine, settings: settings, duration: scenario.duration)
            result.pauses += history.pauses.count
            result.deletes += history.deletes.count
            result.falsePauses += history.pauses.filter {
                machine.trace.wasBusy(before: $0, window: settings.window, threshold: settings.threshold)
            }.count
            result.workAfterDelete += history.deletes.filter { deleted in
                machine.trace.nextBusy(threshold: settings.threshold, from: deleted).map { $0 < scenario.duration }
                    ?? false
            }.count
        }
        return result
    }
}
