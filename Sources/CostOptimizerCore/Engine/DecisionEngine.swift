#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the daemon may do to an instance.
public enum ActionKind: String, Codable, Sendable {
    case none, pause, delete
}

/// The engine's verdict on one instance: an action (possibly none) and a reason a person can read.
public struct Decision: Equatable, Sendable {
    public var action: ActionKind
    public var reason: String
    /// True once per run of failures: the runtime notifies `ssh_unreachable`.
    public var notifyUnreachable: Bool
    /// True when the instance is running but this cycle brought no successful sample (logged as a warning).
    public var unsampled: Bool

    public init(action: ActionKind, reason: String, notifyUnreachable: Bool = false, unsampled: Bool = false) {
        self.action = action
        self.reason = reason
        self.notifyUnreachable = notifyUnreachable
        self.unsampled = unsampled
    }

    public static func none(_ reason: String) -> Decision { Decision(action: .none, reason: reason) }
}

/// One instance with its decision.
public struct PlannedDecision: Equatable, Sendable {
    public var instance: Instance
    public var decision: Decision
    /// Whether the instance is protected (for `status`).
    public var protected: Bool
}

/// The engine's output: a decision for every observed instance, and the state to keep.
public struct Plan: Equatable, Sendable {
    /// Ordered by instance key.
    public var decisions: [PlannedDecision]
    public var nextState: FleetState

    /// The decisions whose action is not `.none`.
    public var actions: [PlannedDecision] { decisions.filter { $0.decision.action != .none } }
}

/// The pure decision engine: `(state, observations, now) → plan`. No I/O, no clock, no await.
public struct DecisionEngine: Sendable {
    public var policy: Policy

    public init(policy: Policy) { self.policy = policy }

    /// Folds this cycle's observations into the state and decides for each observed instance.
    ///
    /// Instances not observed this cycle (their provider failed to list) keep their records untouched and get no
    /// decision: a missing listing is no evidence.
    public func plan(state: FleetState, observations: [Observation], now: Date) -> Plan {
        var next = state
        var decisions: [PlannedDecision] = []
        for observation in observations.sorted(by: { $0.instance.key < $1.instance.key }) {
            let instance = observation.instance
            let record = track(next[instance.key], observation: observation, now: now)
            next[instance.key] = record
            let protection = policy.protectionReason(for: instance)
            var decision = decide(instance, record: record, sample: observation.sample, protection: protection, now: now)
            if decision.notifyUnreachable {
                next[instance.key]?.unreachableNotified = true
            }
            if !instance.managed { decision.notifyUnreachable = false }
            decisions.append(PlannedDecision(instance: instance, decision: decision, protected: protection != nil))
        }
        return Plan(decisions: decisions, nextState: next)
    }

    // MARK: - Tracking: the clocks

    /// Updates an instance's record with one observation: the idle streak, the idle clock, failure counts.
    func track(_ existing: InstanceRecord?, observation: Observation, now: Date) -> InstanceRecord {
        let instance = observation.instance
        var record = existing ?? InstanceRecord(firstSeen: now, state: instance.state)
        record.lastSeen = now
        record.lastState = instance.state
        if let started = instance.startedAt {
            if let known = record.lastStartedAt, started > known {
                // Someone started it again: pre-restart idleness is no evidence about what runs now.
                record.resetIdleness()
            }
            record.lastStartedAt = started
        }

        switch instance.state {
        case .running:
            switch observation.sample {
            case .ok?:
                let utilization = observation.sample?.utilization ?? 100
                record.samples.append(StoredSample(at: now, utilization: utilization))
                let gapEnded = record.lastSampleAt.map { now.timeIntervalSince($0) > policy.sampleGapLimit } ?? true
                if utilization < policy.pauseThresholdGPU {
                    if record.streakStart == nil || gapEnded {
                        record.endStreak()
                        record.streakStart = now
                    }
                    record.streakCount += 1
                    record.streakSum += utilization
                    // While running, the idle clock is the streak: a new streak restarts it (the safe direction).
                    record.idleSince = record.streakStart
                } else {
                    record.resetIdleness()
                }
                record.lastSampleAt = now
                record.failedCycles = 0
                record.lastFailure = nil
                record.unreachableNotified = false
            case .failed(let reason)?:
                record.samples.append(StoredSample(at: now, utilization: nil))
                record.failedCycles += 1
                record.lastFailure = reason
            case nil:
                record.failedCycles += 1
                record.lastFailure = instance.ssh == nil ? "no ssh: \(instance.sshUnavailableReason ?? "no endpoint listed")" : "not sampled"
            }
        case .paused, .broken:
            record.endStreak()
            record.failedCycles = 0
            record.unreachableNotified = false
            if record.idleSince == nil { record.idleSince = record.pausedAt ?? now }
        case .transitional, .unknown:
            break
        }
        let horizon = now.addingTimeInterval(-policy.sampleRetention)
        record.samples.removeAll { $0.at < horizon }
        if record.samples.count > 1000 { record.samples.removeFirst(record.samples.count - 1000) }
        return record
    }

    // MARK: - Deciding

    func decide(_ instance: Instance, record: InstanceRecord, sample: SampleResult?, protection: String?, now: Date)
        -> Decision
    {
        guard instance.managed else { return .none("not managed: no GPU") }
        if let protection { return .none(protection) }
        switch instance.state {
        case .transitional: return .none("transitional: \(instance.providerStatus)")
        case .unknown: return .none("unknown status: \(instance.providerStatus)")
        case .paused, .broken:
            if let delete = deleteDecision(instance, record: record, now: now) { return delete }
            if instance.gpuReserved, let since = record.idleSince {
                let stoppedFor = now.timeIntervalSince(since)
                if stoppedFor >= policy.pauseWindow {
                    return Decision(
                        action: .pause,
                        reason: "stopped with its GPU reserved (still billed) for \(minutes(stoppedFor)) min: "
                            + "releasing the GPU")
                }
            }
            return .none(waitingReason(instance, record: record, now: now))
        case .running:
            return decideRunning(instance, record: record, sample: sample, now: now)
        }
    }

    private func decideRunning(_ instance: Instance, record: InstanceRecord, sample: SampleResult?, now: Date)
        -> Decision
    {
        guard case .ok = sample, let utilization = sample?.utilization else {
            let cause = record.lastFailure ?? "no sample"
            let notify = record.failedCycles >= policy.unreachableNotifyAfter && !record.unreachableNotified
            return Decision(
                action: .none, reason: "no GPU reading (\(record.failedCycles) cycles): \(cause)",
                notifyUnreachable: notify, unsampled: true)
        }
        let threshold = percent(policy.pauseThresholdGPU)
        guard utilization < policy.pauseThresholdGPU, let start = record.streakStart else {
            return .none("busy: GPU \(percent(utilization))% ≥ \(threshold)%")
        }
        if let delete = deleteDecision(instance, record: record, now: now) { return delete }
        let idleFor = now.timeIntervalSince(start)
        let average = percent(record.streakAverage ?? utilization)
        let streak =
            "GPU avg \(average)% < \(threshold)% for \(minutes(idleFor)) min, \(record.streakCount) samples"
        if record.streakCount >= policy.minSamples && idleFor >= policy.pauseWindow {
            return Decision(action: .pause, reason: streak)
        }
        return .none(
            "idle, not yet: \(streak) (pause needs \(minutes(policy.pauseWindow)) min and \(policy.minSamples) samples)")
    }

    /// A delete decision when the idle clock has passed the threshold and the instance is old enough; nil otherwise.
    private func deleteDecision(_ instance: Instance, record: InstanceRecord, now: Date) -> Decision? {
        guard let idleSince = record.idleSince else { return nil }
        let idleFor = now.timeIntervalSince(idleSince)
        guard idleFor > policy.deleteThreshold else { return nil }
        guard !instance.deletionProtected else { return nil }
        guard let createdAt = instance.createdAt else { return nil }
        guard now.timeIntervalSince(createdAt) >= policy.minInstanceAge else { return nil }
        let how = instance.state == .running ? "GPU idle" : instance.state.rawValue
        return Decision(
            action: .delete,
            reason: "\(how) for \(duration(idleFor)), past DELETE_THRESHOLD_HOURS \(hours(policy.deleteThreshold)) h")
    }

    private func waitingReason(_ instance: Instance, record: InstanceRecord, now: Date) -> String {
        let idleFor = record.idleSince.map { now.timeIntervalSince($0) } ?? 0
        var reason = "\(instance.state.rawValue) for \(duration(idleFor))"
        if idleFor > policy.deleteThreshold {
            if instance.deletionProtected {
                reason += "; deletion protection is on: never deleted"
            } else if let createdAt = instance.createdAt {
                let age = now.timeIntervalSince(createdAt)
                reason += "; too young to delete: \(duration(age)) < MIN_INSTANCE_AGE_HOURS \(hours(policy.minInstanceAge)) h"
            } else {
                reason += "; creation time unknown: never deleted"
            }
        } else {
            reason += "; delete after \(hours(policy.deleteThreshold)) h"
        }
        return reason
    }
}

// MARK: - Number formatting for reasons (no Foundation formatters: deterministic in tests)

/// `3.2` for 3.21, `10` for 10.0.
func percent(_ value: Double) -> String {
    let tenths = (value * 10).rounded() / 10
    return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
}

/// Whole minutes, rounded down.
func minutes(_ seconds: Double) -> Int { Int(max(0, seconds) / 60) }

/// A duration for people: `40 min`, `24 h`, `24 h 5 min`.
func duration(_ seconds: Double) -> String {
    let total = minutes(seconds)
    if total < 60 { return "\(total) min" }
    return total % 60 == 0 ? "\(total / 60) h" : "\(total / 60) h \(total % 60) min"
}

/// Hours with one decimal: `25.3`, `24`.
func hours(_ seconds: Double) -> String { percent(max(0, seconds) / 3600) }
