#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything the daemon remembers between cycles and across restarts (`STATE_DIR/state.json`).
public struct FleetState: Codable, Equatable, Sendable {
    /// Bumped when the shape changes; an unknown version is treated as a corrupt file.
    public var schemaVersion: Int
    /// One record per instance ever seen and not yet forgotten, keyed by `provider/id`.
    public var instances: [String: InstanceRecord]
    /// Accounts whose last listing failed, so `provider_error` is notified once per outage, not every cycle.
    public var failingAccounts: [String]?
    /// How many instances each provider (`ProviderName` raw value) returned in its last answered listing, for the
    /// suspicious-listing guard. Nil in state files written before the guards.
    public var listingCounts: [String: Int]?
    /// When each guard alert (`GuardEvent.alertKey`) was last notified, so a lasting condition is notified once a day,
    /// not every cycle. Nil in state files written before the guards.
    public var guardAlerts: [String: Date]?
    /// Spend observed, savings realised and the counters behind `report`, the digest and the metrics file. Nil in
    /// state files written before the ledger; `savings` reads and writes it as a value.
    public var ledger: SavingsLedger?

    public static let currentSchemaVersion = 1

    public init(instances: [String: InstanceRecord] = [:]) {
        self.schemaVersion = FleetState.currentSchemaVersion
        self.instances = instances
    }

    /// The ledger, empty when there is none yet; setting it stores it.
    public var savings: SavingsLedger {
        get { ledger ?? SavingsLedger() }
        set { ledger = newValue }
    }

    public subscript(key: InstanceKey) -> InstanceRecord? {
        get { instances[key.description] }
        set { instances[key.description] = newValue }
    }

    /// Forgets the records of instances no listing has held since `cutoff`, and returns their keys (sorted).
    ///
    /// Forgetting resets an instance's clocks should it come back, so a record is kept through short absences (a
    /// listing that missed it, a provider outage) and forgotten only after a long one.
    @discardableResult
    public mutating func forgetInstances(unseenSince cutoff: Date) -> [InstanceKey] {
        let stale = instances.filter { $0.value.lastSeen < cutoff }.map(\.key).sorted()
        for key in stale { instances[key] = nil }
        return stale.compactMap(InstanceKey.init(stateKey:))
    }

    /// Records the outcome of an action the runtime attempted.
    ///
    /// A successful pause starts the paused-by-us clock; a successful delete forgets the instance; a failure is kept
    /// as the last action only, so the engine plans the same action again next cycle.
    public mutating func record(_ action: ActionKind, for key: InstanceKey, at time: Date, dryRun: Bool, succeeded: Bool)
    {
        guard var record = self[key] else { return }
        record.lastAction = ActionMark(action: action, at: time, dryRun: dryRun, succeeded: succeeded)
        if succeeded && !dryRun {
            switch action {
            case .pause:
                record.pausedAt = time
                record.endStreak()
            case .delete:
                self[key] = nil
                return
            case .none:
                break
            }
        }
        self[key] = record
    }
}

/// One stored sample: when, and the instance's utilisation (nil when the sample failed).
public struct StoredSample: Codable, Equatable, Sendable {
    public var at: Date
    public var utilization: Double?

    public init(at: Date, utilization: Double?) {
        self.at = at
        self.utilization = utilization
    }
}

/// A `delete_notice` sent: for which idle clock, when, and the deletion time it named.
public struct DeleteNoticeMark: Codable, Equatable, Sendable {
    /// The idle clock's start (`InstanceRecord.idleSince`) the notice was sent for; a new idle clock re-arms it.
    public var idleSince: Date
    public var sentAt: Date
    public var deleteAt: Date

    public init(idleSince: Date, sentAt: Date, deleteAt: Date) {
        self.idleSince = idleSince
        self.sentAt = sentAt
        self.deleteAt = deleteAt
    }
}

/// What the daemon last did to an instance.
public struct ActionMark: Codable, Equatable, Sendable {
    public var action: ActionKind
    public var at: Date
    public var dryRun: Bool
    public var succeeded: Bool

    public init(action: ActionKind, at: Date, dryRun: Bool, succeeded: Bool) {
        self.action = action
        self.at = at
        self.dryRun = dryRun
        self.succeeded = succeeded
    }
}

/// The daemon's memory of one instance: its clocks and its recent samples.
public struct InstanceRecord: Codable, Equatable, Sendable {
    /// When the daemon first listed it.
    public var firstSeen: Date
    /// When a listing last held it.
    public var lastSeen: Date
    /// The state it had at `lastSeen`.
    public var lastState: InstanceState
    /// Recent samples, failures included, for `status` and the record (bounded in age and count).
    public var samples: [StoredSample]
    /// The first sample of the current idle streak; nil when there is no streak.
    public var streakStart: Date?
    /// Successful idle samples in the current streak.
    public var streakCount: Int
    /// Sum of the streak's utilisations, for its average.
    public var streakSum: Double
    /// The last successful sample.
    public var lastSampleAt: Date?
    /// When the idle clock started (streak start while running; pause or first sighting while paused or broken).
    public var idleSince: Date?
    /// When the daemon paused it; nil when it did not, or after it was seen busy again.
    public var pausedAt: Date?
    /// Consecutive cycles in which it was running and no sample succeeded.
    public var failedCycles: Int
    /// The last reason a sample failed.
    public var lastFailure: String?
    /// True once `ssh_unreachable` was notified for the current run of failures.
    public var unreachableNotified: Bool
    public var lastAction: ActionMark?
    /// The provider's last start time as last seen; a newer one means someone restarted the instance.
    public var lastStartedAt: Date?
    /// Set when the daemon's pause was accepted and not yet seen take effect; cleared once it is seen stopped.
    public var pauseCheck: PauseCheck?
    /// When it was first seen paused or broken since it last ran; nil while running. Seeing it running again means
    /// someone started it: its marks and pre-pause samples are cleared.
    public var stoppedSince: Date?
    /// The first cycle of the current run of cycles in which it was running with no successful sample.
    public var failingSince: Date?
    /// When `unmonitored` was last notified for the current run of failures.
    public var unmonitoredNotifiedAt: Date?
    /// The `delete_notice` sent for the current idle clock, if any.
    public var deleteNotice: DeleteNoticeMark?

    public init(firstSeen: Date, state: InstanceState) {
        self.firstSeen = firstSeen
        self.lastSeen = firstSeen
        self.lastState = state
        self.samples = []
        self.streakStart = nil
        self.streakCount = 0
        self.streakSum = 0
        self.lastSampleAt = nil
        self.idleSince = nil
        self.pausedAt = nil
        self.failedCycles = 0
        self.lastFailure = nil
        self.unreachableNotified = false
        self.lastAction = nil
        self.lastStartedAt = nil
    }

    /// Ends the current idle streak (a busy sample, a gap, a pause, a restart).
    public mutating func endStreak() {
        streakStart = nil
        streakCount = 0
        streakSum = 0
    }

    /// Forgets all idleness: the streak, the idle clock, the pause mark and the delete notice (seen busy, or
    /// restarted by someone).
    public mutating func resetIdleness() {
        endStreak()
        idleSince = nil
        pausedAt = nil
        deleteNotice = nil
    }

    /// Someone started the instance: forgets its idleness, its marks and the samples taken before, so the whole
    /// pause window must pass anew. The record of the last action (`lastAction`) stays, as history.
    public mutating func restarted() {
        resetIdleness()
        stoppedSince = nil
        samples.removeAll()
    }

    /// The average utilisation of the current idle streak.
    public var streakAverage: Double? { streakCount > 0 ? streakSum / Double(streakCount) : nil }
}

/// A pause the provider accepted but that no listing has shown yet.
public struct PauseCheck: Codable, Equatable, Sendable {
    /// When the last pause call was accepted.
    public var since: Date
    /// Pause calls made so far (the first included).
    public var attempts: Int

    public init(since: Date, attempts: Int) {
        self.since = since
        self.attempts = attempts
    }
}

extension InstanceKey {
    /// Parses the `provider/id` form used as a key in the state file; nil for an unknown provider or a malformed key.
    public init?(stateKey: String) {
        guard let slash = stateKey.firstIndex(of: "/"),
            let provider = ProviderName(rawValue: String(stateKey[..<slash]))
        else { return nil }
        let id = String(stateKey[stateKey.index(after: slash)...])
        guard !id.isEmpty else { return nil }
        self.init(provider: provider, id: id)
    }
}
