#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What an instance is billed per hour in the state a listing shows, as far as the listing says.
public enum Billing {
    /// The $/h an instance is billed now: running, or stopped with its GPU still reserved (TensorDock `Stopped`), at
    /// its listed price; paused or broken at its storage price where the provider gives one (else `storageFallback`,
    /// else nil); transitional and unknown states at nil (not known).
    public static func rate(_ instance: Instance, storageFallback: Double? = nil) -> Double? {
        switch instance.state {
        case .running:
            return instance.hourlyCostUSD
        case .paused:
            return instance.gpuReserved ? instance.hourlyCostUSD : instance.storageCostUSDPerHour ?? storageFallback
        case .broken:
            return instance.storageCostUSDPerHour ?? storageFallback
        case .transitional, .unknown:
            return nil
        }
    }
}

/// One instance the daemon paused or deleted, and the money that action keeps saving.
///
/// Savings accrue at `billedUSDPerHour` minus what the instance is billed now: while it is seen paused, that is the
/// storage rate (`storageUSDPerHour`, zero where the provider gives none); once deleted, nothing, for at most
/// `SavingsLedger.deleteHorizon` after the delete. The entry ends when the instance is seen running again (someone
/// started it), when a paused one is gone without our delete, or at the horizon.
public struct SavingsEntry: Codable, Equatable, Sendable {
    public var provider: ProviderName
    public var id: String
    public var name: String
    /// When the daemon's pause was accepted; nil when it deleted the instance without pausing it first.
    public var pausedAt: Date?
    /// When the daemon's delete was accepted; nil while only paused.
    public var deletedAt: Date?
    /// What the instance was billed per hour when the daemon first acted: its running price (or, for an instance the
    /// daemon found stopped, its storage price). Zero when the provider gave no price.
    public var billedUSDPerHour: Double
    /// The storage price while stopped, as the provider last gave it; nil where it gives none.
    public var storageUSDPerHour: Double?
    /// Savings accrued by this entry so far.
    public var savedUSD: Double
    /// When savings stopped accruing; nil while they accrue.
    public var endedAt: Date?
    /// Why they stopped: `running again`, `gone without our delete`, `30 days after the delete`, ...
    public var endReason: String?

    public init(
        provider: ProviderName, id: String, name: String, pausedAt: Date? = nil, deletedAt: Date? = nil,
        billedUSDPerHour: Double, storageUSDPerHour: Double? = nil, savedUSD: Double = 0
    ) {
        self.provider = provider
        self.id = id
        self.name = name
        self.pausedAt = pausedAt
        self.deletedAt = deletedAt
        self.billedUSDPerHour = billedUSDPerHour
        self.storageUSDPerHour = storageUSDPerHour
        self.savedUSD = savedUSD
    }

    public var key: InstanceKey { InstanceKey(provider: provider, id: id) }
    /// The last action taken: `delete` once deleted, else `pause`.
    public var action: ActionKind { deletedAt != nil ? .delete : .pause }
    /// The time of the last action; observations taken before it say nothing about its effect.
    public var lastActionAt: Date { deletedAt ?? pausedAt ?? .distantPast }
    /// True while savings accrue.
    public var isOpen: Bool { endedAt == nil }
    /// The $/h this entry saves while its action holds: the billed rate less storage for a pause, the whole billed
    /// rate for a delete.
    public var avoidedUSDPerHour: Double {
        deletedAt != nil ? billedUSDPerHour : max(0, billedUSDPerHour - (storageUSDPerHour ?? 0))
    }
}

/// One UTC day of the ledger.
public struct LedgerDay: Codable, Equatable, Sendable {
    /// Spend observed, by provider (`vast`, `tensordock`, `gcp`).
    public var spendUSD: [String: Double]
    /// Savings realised, by instance key (`vast/123`): only instances the daemon acted on.
    public var savedUSD: [String: Double]

    public init(spendUSD: [String: Double] = [:], savedUSD: [String: Double] = [:]) {
        self.spendUSD = spendUSD
        self.savedUSD = savedUSD
    }
}

/// One UTC hour of the ledger, kept for two days: the digest's last 24 hours.
public struct LedgerHour: Codable, Equatable, Sendable {
    /// Whole hours since 1970-01-01T00:00Z.
    public var hour: Int
    public var spendUSD: Double
    public var savedUSD: Double

    public init(hour: Int, spendUSD: Double = 0, savedUSD: Double = 0) {
        self.hour = hour
        self.spendUSD = spendUSD
        self.savedUSD = savedUSD
    }
}

/// What one cycle's listing tells the ledger.
public struct LedgerObservation: Sendable {
    /// Every instance listed this cycle.
    public var instances: [Instance]
    /// The providers whose every account answered in full this cycle: an instance of theirs that is not listed is
    /// gone. An instance of any other provider that is not listed is unknown, and accrues nothing.
    public var listedProviders: Set<ProviderName>
    /// Instances whose pause was accepted but not yet seen take effect: seen running, they are not restarted yet.
    public var pendingPauses: Set<InstanceKey>

    public init(instances: [Instance], listedProviders: Set<ProviderName>, pendingPauses: Set<InstanceKey> = []) {
        self.instances = instances
        self.listedProviders = listedProviders
        self.pendingPauses = pendingPauses
    }
}

/// The savings ledger, kept in `FleetState.ledger`: spend observed, savings realised and the counters behind the
/// report, the digest and the metrics file. Every function is pure; `now` is passed in.
///
/// Accrual covers the time since the last cycle, at most `maxGap` (a daemon that was down saw nothing, so it cannot
/// claim that time); each cycle's listing stands for that whole interval.
public struct SavingsLedger: Codable, Equatable, Sendable {
    /// The first accrual: the ledger's figures start here.
    public var startedAt: Date?
    /// The end of the last interval accrued.
    public var lastAccrualAt: Date?
    /// All spend observed since `startedAt`; never shrinks (the metrics counter).
    public var spendUSD: Double
    /// All savings realised since `startedAt`; never shrinks (the metrics counter).
    public var savedUSD: Double
    /// UTC days (`yyyy-MM-dd`), kept `dayRetention` days.
    public var days: [String: LedgerDay]
    /// UTC hours, kept two days, oldest first.
    public var hours: [LedgerHour]
    /// Every pause and delete whose savings accrue, and the ended ones of the retention period.
    public var entries: [SavingsEntry]
    /// Actions by `action/result` (`pause/ok`, `delete/failed`, `pause/dry_run`), since `startedAt`.
    public var actionCounts: [String: Int]
    /// GPU samples that succeeded and failed, since `startedAt`.
    public var samplesOK: Int
    public var samplesFailed: Int
    /// The start of the last cycle in which every account was listed and the state saved.
    public var lastSuccessAt: Date?
    /// The fleet as the last cycle saw it.
    public var snapshot: FleetSnapshot?
    /// The local day of the last `digest` sent.
    public var lastDigestDay: String?

    /// Days of day buckets and ended entries kept.
    public static let dayRetention = 400
    /// How long a delete keeps saving: a bill forgotten longer would show on the next monthly invoice.
    public static let deleteHorizon: Double = 30 * 86_400
    /// Hours of hour buckets kept.
    public static let hourRetention = 48

    public init() {
        spendUSD = 0
        savedUSD = 0
        days = [:]
        hours = []
        entries = []
        actionCounts = [:]
        samplesOK = 0
        samplesFailed = 0
    }

    enum CodingKeys: String, CodingKey {
        case startedAt, lastAccrualAt, spendUSD, savedUSD, days, hours, entries, actionCounts, samplesOK,
            samplesFailed, lastSuccessAt, snapshot, lastDigestDay
    }

    /// Lenient: a field missing from an older file takes its empty value.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        startedAt = try c.decodeIfPresent(Date.self, forKey: .startedAt)
        lastAccrualAt = try c.decodeIfPresent(Date.self, forKey: .lastAccrualAt)
        spendUSD = try c.decodeIfPresent(Double.self, forKey: .spendUSD) ?? 0
        savedUSD = try c.decodeIfPresent(Double.self, forKey: .savedUSD) ?? 0
        days = try c.decodeIfPresent([String: LedgerDay].self, forKey: .days) ?? [:]
        hours = try c.decodeIfPresent([LedgerHour].self, forKey: .hours) ?? []
        entries = try c.decodeIfPresent([SavingsEntry].self, forKey: .entries) ?? []
        actionCounts = try c.decodeIfPresent([String: Int].self, forKey: .actionCounts) ?? [:]
        samplesOK = try c.decodeIfPresent(Int.self, forKey: .samplesOK) ?? 0
        samplesFailed = try c.decodeIfPresent(Int.self, forKey: .samplesFailed) ?? 0
        lastSuccessAt = try c.decodeIfPresent(Date.self, forKey: .lastSuccessAt)
        snapshot = try c.decodeIfPresent(FleetSnapshot.self, forKey: .snapshot)
        lastDigestDay = try c.decodeIfPresent(String.self, forKey: .lastDigestDay)
    }

    /// The open entry of an instance, if any.
    public func openEntry(_ key: InstanceKey) -> SavingsEntry? {
        entries.last { $0.isOpen && $0.key == key }
    }

    // MARK: - Actions

    /// Records an action's outcome, as the journal's result says it (`ok`, `failed`, `dry_run`, …): counted always;
    /// only an `ok` (the provider applied a real pause or delete; a dry run's result is `dry_run`) opens the
    /// instance's entry at the instance's rate at that moment, or moves its open entry on (a delete after our pause
    /// keeps the pause's billed rate; a pause sent again changes nothing).
    public mutating func record(_ action: ActionKind, instance: Instance, result: String, at time: Date) {
        guard action != .none else { return }
        actionCounts[SavingsLedger.countKey(action, result), default: 0] += 1
        guard result == JournalResult.ok else { return }
        if let index = entries.lastIndex(where: { $0.isOpen && $0.key == instance.key }) {
            if let storage = instance.storageCostUSDPerHour { entries[index].storageUSDPerHour = storage }
            if action == .delete { entries[index].deletedAt = time }
            return
        }
        entries.append(
            SavingsEntry(
                provider: instance.key.provider, id: instance.key.id, name: instance.name,
                pausedAt: action == .pause ? time : nil, deletedAt: action == .delete ? time : nil,
                billedUSDPerHour: Billing.rate(instance) ?? 0, storageUSDPerHour: instance.storageCostUSDPerHour))
    }

    /// `pause/ok`: the key of `actionCounts`.
    public static func countKey(_ action: ActionKind, _ result: String) -> String { "\(action.rawValue)/\(result)" }

    /// Counts the GPU samples a cycle took at `now`: the records' samples stamped `now` (failed ones have no value).
    public mutating func countSamples(in state: FleetState, at now: Date) {
        for record in state.instances.values {
            for sample in record.samples.reversed() {
                guard sample.at == now else { break }
                if sample.utilization == nil { samplesFailed += 1 } else { samplesOK += 1 }
            }
        }
    }

    // MARK: - Accrual

    /// Accrues spend and savings from the last accrual to `now`, capped at `maxGap`, by what this cycle's listing
    /// shows; the first call only starts the clock. A clock that went backwards accrues nothing.
    public mutating func accrue(_ observation: LedgerObservation, now: Date, maxGap: Double) {
        defer { prune(now: now) }
        guard let last = lastAccrualAt else {
            startedAt = startedAt ?? now
            lastAccrualAt = now
            return
        }
        guard now > last else { return }
        lastAccrualAt = now
        let start = max(last, now.addingTimeInterval(-maxGap))
        var listed: [InstanceKey: Instance] = [:]
        for instance in observation.instances where listed[instance.key] == nil { listed[instance.key] = instance }

        var storage: [InstanceKey: Double] = [:]
        for entry in entries where entry.isOpen { storage[entry.key] = entry.storageUSDPerHour }
        var rates: [ProviderName: Double] = [:]
        for instance in listed.values {
            guard let rate = Billing.rate(instance, storageFallback: storage[instance.key]), rate > 0 else { continue }
            rates[instance.key.provider, default: 0] += rate
        }
        for (provider, rate) in rates.sorted(by: { $0.key < $1.key }) {
            addSpend(rate, provider: provider, from: start, to: now)
        }

        for index in entries.indices where entries[index].isOpen && entries[index].lastActionAt < now {
            var entry = entries[index]
            let from = max(start, entry.lastActionAt)
            if let instance = listed[entry.key] {
                if let storage = instance.storageCostUSDPerHour { entry.storageUSDPerHour = storage }
                switch instance.state {
                case .running:
                    // Not yet stopped by a pause just sent; otherwise someone started it (or a delete did not take).
                    if entry.deletedAt == nil && observation.pendingPauses.contains(entry.key) { break }
                    entry.endedAt = now
                    entry.endReason = entry.deletedAt == nil ? "running again" : "listed running after the delete"
                case .paused, .broken:
                    // Listed after our delete: not gone, nothing avoided yet.
                    guard entry.deletedAt == nil else { break }
                    let billed = Billing.rate(instance, storageFallback: entry.storageUSDPerHour) ?? 0
                    addSaving(max(0, entry.billedUSDPerHour - billed), to: &entry, from: from, to: now)
                case .transitional, .unknown:
                    break
                }
            } else if observation.listedProviders.contains(entry.provider) {
                if let deletedAt = entry.deletedAt {
                    let horizon = deletedAt.addingTimeInterval(SavingsLedger.deleteHorizon)
                    addSaving(entry.billedUSDPerHour, to: &entry, from: from, to: min(now, horizon))
                } else {
                    entry.endedAt = now
                    entry.endReason = "gone without our delete"
                }
            }
            // The horizon ends a delete's entry whatever the listing shows (even one still listed, or not listed).
            if entry.isOpen, let deletedAt = entry.deletedAt {
                let horizon = deletedAt.addingTimeInterval(SavingsLedger.deleteHorizon)
                if now >= horizon {
                    entry.endedAt = horizon
                    entry.endReason = "30 days after the delete"
                }
            }
            entries[index] = entry
        }
    }

    private mutating func addSpend(_ rate: Double, provider: ProviderName, from: Date, to: Date) {
        guard to > from else { return }
        for (day, seconds) in LedgerCalendar.split(from: from, to: to, unit: LedgerCalendar.secondsPerDay) {
            let amount = rate * seconds / 3600
            days[LedgerCalendar.dayKey(dayNumber: day), default: LedgerDay()].spendUSD[provider.rawValue, default: 0] +=
                amount
        }
        for (hour, seconds) in LedgerCalendar.split(from: from, to: to, unit: LedgerCalendar.secondsPerHour) {
            addToHour(hour, spend: rate * seconds / 3600, saved: 0)
        }
        spendUSD += rate * to.timeIntervalSince(from) / 3600
    }

    private mutating func addSaving(_ rate: Double, to entry: inout SavingsEntry, from: Date, to: Date) {
        guard to > from, rate > 0 else { return }
        let key = entry.key.description
        for (day, seconds) in LedgerCalendar.split(from: from, to: to, unit: LedgerCalendar.secondsPerDay) {
            days[LedgerCalendar.dayKey(dayNumber: day), default: LedgerDay()].savedUSD[key, default: 0] +=
                rate * seconds / 3600
        }
        for (hour, seconds) in LedgerCalendar.split(from: from, to: to, unit: LedgerCalendar.secondsPerHour) {
            addToHour(hour, spend: 0, saved: rate * seconds / 3600)
        }
        let amount = rate * to.timeIntervalSince(from) / 3600
        entry.savedUSD += amount
        savedUSD += amount
    }

    /// Adds to the bucket of `hour`, created in order if missing.
    private mutating func addToHour(_ hour: Int, spend: Double, saved: Double) {
        let index: Int
        if let found = hours.lastIndex(where: { $0.hour == hour }) {
            index = found
        } else {
            index = hours.firstIndex { $0.hour > hour } ?? hours.endIndex
            hours.insert(LedgerHour(hour: hour), at: index)
        }
        hours[index].spendUSD += spend
        hours[index].savedUSD += saved
    }

    /// Drops day buckets and ended entries older than `dayRetention` days, and hour buckets older than
    /// `hourRetention` hours.
    public mutating func prune(now: Date) {
        let firstDay = LedgerCalendar.dayNumber(now) - (SavingsLedger.dayRetention - 1)
        days = days.filter { (LedgerCalendar.dayNumber(key: $0.key) ?? Int.min) >= firstDay }
        let firstHour = LedgerCalendar.hourNumber(now) - (SavingsLedger.hourRetention - 1)
        hours.removeAll { $0.hour < firstHour }
        let cutoff = LedgerCalendar.startOfDay(firstDay)
        entries.removeAll { entry in entry.endedAt.map { $0 < cutoff } ?? false }
    }

    // MARK: - Windows

    /// Spend and savings in the hour buckets from `since` (rounded down to its hour) on.
    public func recent(since: Date) -> (spendUSD: Double, savedUSD: Double) {
        let first = LedgerCalendar.hourNumber(since)
        return hours.filter { $0.hour >= first }.reduce((0, 0)) { ($0.0 + $1.spendUSD, $0.1 + $1.savedUSD) }
    }
}
