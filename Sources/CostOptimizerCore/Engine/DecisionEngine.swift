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
    /// True once per idle clock, when the idle clock passes `DELETE_THRESHOLD_HOURS − DELETE_NOTICE_HOURS`: the
    /// runtime notifies `delete_notice`, naming `deleteAt` and how to stop it (`Policy.howToKeep(_:)`).
    public var notifyDeleteNotice: Bool
    /// When the instance will be deleted if it stays idle (at the first cycle after this time); nil when no delete is
    /// scheduled: not idle, unsampled, protected, unmanaged, deletion-protected or of unknown age.
    public var deleteAt: Date?
    /// True when the instance is unmonitored (`unmonitoredSince` is set), at most once per
    /// `Policy.unmonitoredRepeat`: the runtime notifies `unmonitored` with its $/h.
    public var notifyUnmonitored: Bool
    /// The start of its run of cycles with no successful sample, once that run has lasted `Policy.unmonitoredAfter`:
    /// a running managed instance the daemon cannot watch (for `status`); nil otherwise.
    public var unmonitoredSince: Date?
    /// The action a guard withheld (`Guards`); the action is then `.none` and the reason says why. Nil otherwise.
    public var withheld: ActionKind?

    public init(
        action: ActionKind, reason: String, notifyUnreachable: Bool = false, unsampled: Bool = false,
        notifyDeleteNotice: Bool = false, deleteAt: Date? = nil, notifyUnmonitored: Bool = false,
        unmonitoredSince: Date? = nil, withheld: ActionKind? = nil
    ) {
        self.action = action
        self.reason = reason
        self.notifyUnreachable = notifyUnreachable
        self.unsampled = unsampled
        self.notifyDeleteNotice = notifyDeleteNotice
        self.deleteAt = deleteAt
        self.notifyUnmonitored = notifyUnmonitored
        self.unmonitoredSince = unmonitoredSince
        self.withheld = withheld
    }

    public static func none(_ reason: String) -> Decision { Decision(action: .none, reason: reason) }
}

/// One instance with its decision.
public struct PlannedDecision: Equatable, Sendable {
    public var instance: Instance
    public var decision: Decision
    /// Whether the instance is protected (for `status`).
    public var protected: Bool

    public init(instance: Instance, decision: Decision, protected: Bool) {
        self.instance = instance
        self.decision = decision
        self.protected = protected
    }
}

/// The engine's output: a decision for every observed instance, and the state to keep.
public struct Plan: Equatable, Sendable {
    /// Ordered by instance key.
    public var decisions: [PlannedDecision]
    public var nextState: FleetState

    public init(decisions: [PlannedDecision], nextState: FleetState) {
        self.decisions = decisions
        self.nextState = nextState
    }

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
            if decision.notifyDeleteNotice, let deleteAt = decision.deleteAt, let idleSince = record.idleSince {
                next[instance.key]?.deleteNotice = DeleteNoticeMark(
                    idleSince: idleSince, sentAt: now, deleteAt: deleteAt)
            }
            if decision.notifyUnmonitored {
                next[instance.key]?.unmonitoredNotifiedAt = now
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
                record.restarted()
            }
            record.lastStartedAt = started
        }

        switch instance.state {
        case .running:
            if record.stoppedSince != nil || record.pausedAt != nil {
                // Running after a pause or a stop: someone started it. Its marks and pre-pause samples go, so a
                // user's restart is not paused again at once: the whole window must pass anew.
                record.restarted()
            }
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
                record.failingSince = nil
                record.unmonitoredNotifiedAt = nil
            case .failed(let reason)?:
                record.samples.append(StoredSample(at: now, utilization: nil))
                noSample(&record, cause: reason, now: now)
            case nil:
                let cause =
                    instance.ssh == nil
                    ? "no ssh: \(instance.sshUnavailableReason ?? "no endpoint listed")" : "not sampled"
                noSample(&record, cause: cause, now: now)
            }
        case .paused, .broken:
            record.endStreak()
            record.failedCycles = 0
            record.unreachableNotified = false
            record.failingSince = nil
            record.unmonitoredNotifiedAt = nil
            if record.stoppedSince == nil { record.stoppedSince = now }
            if record.idleSince == nil { record.idleSince = record.pausedAt ?? now }
        case .transitional, .unknown:
            break
        }
        let horizon = now.addingTimeInterval(-policy.sampleRetention)
        record.samples.removeAll { $0.at < horizon }
        if record.samples.count > 1000 { record.samples.removeFirst(record.samples.count - 1000) }
        return record
    }

    /// A running cycle with no successful sample: counts it and, once the last successful sample is older than the
    /// gap limit, ends the streak and the idle clock. Unknown is never idle: time without evidence never counts toward
    /// a pause or a delete, not even after the instance stops.
    private func noSample(_ record: inout InstanceRecord, cause: String, now: Date) {
        record.failedCycles += 1
        record.lastFailure = cause
        if record.failingSince == nil { record.failingSince = now }
        let stale = record.lastSampleAt.map { now.timeIntervalSince($0) > policy.sampleGapLimit } ?? true
        if stale { record.endStreak() }
        if record.streakStart == nil { record.idleSince = nil }
    }

    // MARK: - Deciding

    func decide(_ instance: Instance, record: InstanceRecord, sample: SampleResult?, protection: String?, now: Date)
        -> Decision
    {
        guard instance.managed else { return .none("not managed: no GPU") }
        if let protection { return .none(protection) }
        var decision: Decision
        switch instance.state {
        case .transitional: return .none("transitional: \(instance.providerStatus)")
        case .unknown: return .none("unknown status: \(instance.providerStatus)")
        case .paused, .broken:
            decision = decideStopped(instance, record: record, now: now)
        case .running:
            decision = decideRunning(instance, record: record, sample: sample, now: now)
        }
        if !decision.unsampled, let schedule = deleteSchedule(instance, record: record, now: now) {
            decision.deleteAt = schedule.deleteAt
            decision.notifyDeleteNotice = schedule.noticeDue
        }
        return decision
    }

    private func decideStopped(_ instance: Instance, record: InstanceRecord, now: Date) -> Decision {
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
    }

    private func decideRunning(_ instance: Instance, record: InstanceRecord, sample: SampleResult?, now: Date)
        -> Decision
    {
        guard case .ok = sample, let utilization = sample?.utilization else {
            let cause = record.lastFailure ?? "no sample"
            let notify = record.failedCycles >= policy.unreachableNotifyAfter && !record.unreachableNotified
            var decision = Decision(
                action: .none, reason: "no GPU reading (\(record.failedCycles) cycles): \(cause)",
                notifyUnreachable: notify, unsampled: true)
            if let since = record.failingSince, now.timeIntervalSince(since) >= policy.unmonitoredAfter {
                // Say loudly what cannot be enforced: it may be idle and billed, and nothing here can tell.
                decision.unmonitoredSince = since
                decision.notifyUnmonitored =
                    record.unmonitoredNotifiedAt.map { now.timeIntervalSince($0) >= policy.unmonitoredRepeat } ?? true
                decision.reason =
                    "unmonitored: no GPU reading for \(duration(now.timeIntervalSince(since))) "
                    + "(\(record.failedCycles) cycles): \(cause); never paused or deleted while unmonitored"
            }
            return decision
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

    /// When an instance's delete is due and when its notice is: nil when it is never deleted from its present
    /// state (no idle clock, deletion protection, unknown age).
    struct DeleteSchedule: Equatable {
        /// The earliest time of the delete: the idle clock past the threshold, the instance old enough, and the notice
        /// (when there is one) at least `effectiveDeleteNotice` old.
        var deleteAt: Date
        /// True when the notice for this idle clock is due this cycle and was not sent yet.
        var noticeDue: Bool
    }

    func deleteSchedule(_ instance: Instance, record: InstanceRecord, now: Date) -> DeleteSchedule? {
        guard let idleSince = record.idleSince, !instance.deletionProtected, let createdAt = instance.createdAt else {
            return nil
        }
        var deleteAt = max(
            idleSince.addingTimeInterval(policy.deleteThreshold), createdAt.addingTimeInterval(policy.minInstanceAge))
        let notice = policy.effectiveDeleteNotice
        guard notice > 0 else { return DeleteSchedule(deleteAt: deleteAt, noticeDue: false) }
        if let sent = record.deleteNotice, sent.idleSince == idleSince {
            return DeleteSchedule(deleteAt: max(deleteAt, sent.sentAt.addingTimeInterval(notice)), noticeDue: false)
        }
        guard now >= deleteAt.addingTimeInterval(-notice) else {
            return DeleteSchedule(deleteAt: deleteAt, noticeDue: false)
        }
        // Due now (or late: the daemon was down, the settings changed): the delete waits the whole notice period.
        deleteAt = max(deleteAt, now.addingTimeInterval(notice))
        return DeleteSchedule(deleteAt: deleteAt, noticeDue: true)
    }

    /// A delete decision when the idle clock has passed the threshold, the instance is old enough and its delete
    /// notice (if any) went out at least the notice period ago; nil otherwise.
    private func deleteDecision(_ instance: Instance, record: InstanceRecord, now: Date) -> Decision? {
        guard let idleSince = record.idleSince else { return nil }
        let idleFor = now.timeIntervalSince(idleSince)
        guard idleFor > policy.deleteThreshold else { return nil }
        guard !instance.deletionProtected else { return nil }
        guard let createdAt = instance.createdAt else { return nil }
        guard now.timeIntervalSince(createdAt) >= policy.minInstanceAge else { return nil }
        let notice = policy.effectiveDeleteNotice
        if notice > 0 {
            guard let sent = record.deleteNotice, sent.idleSince == idleSince,
                now.timeIntervalSince(sent.sentAt) >= notice
            else { return nil }
        }
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
                if age < policy.minInstanceAge {
                    reason +=
                        "; too young to delete: \(duration(age)) < "
                        + "MIN_INSTANCE_AGE_HOURS \(hours(policy.minInstanceAge)) h"
                } else if let schedule = deleteSchedule(instance, record: record, now: now) {
                    let notice = hours(policy.effectiveDeleteNotice)
                    reason +=
                        "; delete notice \(schedule.noticeDue ? "due now" : "sent"): deleting after "
                        + "\(timestamp(schedule.deleteAt)) (DELETE_NOTICE_HOURS \(notice) h)"
                }
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

/// `2027-01-15T08:00:00Z`: UTC, whole seconds.
func timestamp(_ date: Date) -> String { date.formatted(Date.ISO8601FormatStyle()) }

/// Hours with one decimal: `25.3`, `24`.
func hours(_ seconds: Double) -> String { percent(max(0, seconds) / 3600) }
