#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One idle instance for the digest and the report: running, managed, in an idle streak.
public struct IdleInstance: Codable, Equatable, Sendable {
    /// `provider/id`.
    public var key: String
    public var name: String
    /// Nil where the provider gives no price.
    public var usdPerHour: Double?
    /// The first sample of its idle streak.
    public var idleSince: Date?

    public init(key: String, name: String, usdPerHour: Double?, idleSince: Date?) {
        self.key = key
        self.name = name
        self.usdPerHour = usdPerHour
        self.idleSince = idleSince
    }

    enum CodingKeys: String, CodingKey {
        case key, name
        case usdPerHour = "usd_per_hour"
        case idleSince = "idle_since"
    }
}

/// The fleet as one cycle saw it: what burns now, for the summary line, the report, the digest and the metrics.
public struct FleetSnapshot: Codable, Equatable, Sendable {
    /// The cycle's start.
    public var at: Date
    /// Instances listed, by provider and then state (`running`, `paused`, ...).
    public var instances: [String: [String: Int]]
    /// $/h of every running instance with a price.
    public var runningUSDPerHour: Double
    /// Running managed instances in an idle streak (a successful sample below the threshold and none busy since),
    /// protected ones included: the money they burn is real.
    public var idleInstances: Int
    public var idleUSDPerHour: Double
    /// Running managed instances without a GPU reading for an hour or more (`unmonitored`).
    public var unmonitoredInstances: Int
    public var unmonitoredUSDPerHour: Double
    /// The idle instances costing most per hour, at most `topCount`.
    public var topIdle: [IdleInstance]
    /// Listing errors of the cycle (failed accounts and unreadable parts).
    public var providerErrors: Int

    public static let topCount = 5

    public init(
        at: Date, instances: [String: [String: Int]] = [:], runningUSDPerHour: Double = 0, idleInstances: Int = 0,
        idleUSDPerHour: Double = 0, unmonitoredInstances: Int = 0, unmonitoredUSDPerHour: Double = 0,
        topIdle: [IdleInstance] = [], providerErrors: Int = 0
    ) {
        self.at = at
        self.instances = instances
        self.runningUSDPerHour = runningUSDPerHour
        self.idleInstances = idleInstances
        self.idleUSDPerHour = idleUSDPerHour
        self.unmonitoredInstances = unmonitoredInstances
        self.unmonitoredUSDPerHour = unmonitoredUSDPerHour
        self.topIdle = topIdle
        self.providerErrors = providerErrors
    }

    /// The snapshot of one cycle: its decisions (one per listed instance) and the state after its actions.
    public static func make(decisions: [PlannedDecision], state: FleetState, providerErrors: Int, now: Date)
        -> FleetSnapshot
    {
        var snapshot = FleetSnapshot(at: now, providerErrors: providerErrors)
        var idle: [IdleInstance] = []
        for planned in decisions {
            let instance = planned.instance
            snapshot.instances[instance.key.provider.rawValue, default: [:]][instance.state.rawValue, default: 0] += 1
            guard instance.state == .running else { continue }
            let rate = instance.hourlyCostUSD ?? 0
            snapshot.runningUSDPerHour += rate
            guard instance.managed else { continue }
            if planned.decision.unmonitoredSince != nil {
                snapshot.unmonitoredInstances += 1
                snapshot.unmonitoredUSDPerHour += rate
            } else if let record = state[instance.key], let since = record.streakStart {
                snapshot.idleInstances += 1
                snapshot.idleUSDPerHour += rate
                idle.append(
                    IdleInstance(
                        key: instance.key.description, name: instance.name, usdPerHour: instance.hourlyCostUSD,
                        idleSince: since))
            }
        }
        snapshot.topIdle = Array(
            idle.sorted { ($0.usdPerHour ?? 0, $1.key) > ($1.usdPerHour ?? 0, $0.key) }.prefix(topCount))
        return snapshot
    }
}

/// The figures of the daily `digest`: the last 24 hours and what burns now.
public struct DigestFigures: Codable, Equatable, Sendable {
    /// The start of the window: the hour 24 hours before `until`, rounded down to the hour.
    public var since: Date
    public var until: Date
    public var spendUSD: Double
    public var savedUSD: Double
    /// All savings realised since the ledger started.
    public var savedAllTimeUSD: Double
    /// Pauses and deletes accepted in the window.
    public var paused: Int
    public var deleted: Int
    public var runningUSDPerHour: Double
    public var idleInstances: Int
    public var idleUSDPerHour: Double
    public var unmonitoredInstances: Int
    public var unmonitoredUSDPerHour: Double
    public var topIdle: [IdleInstance]

    enum CodingKeys: String, CodingKey {
        case since, until, paused, deleted
        case spendUSD = "spend_usd"
        case savedUSD = "saved_usd"
        case savedAllTimeUSD = "saved_all_time_usd"
        case runningUSDPerHour = "running_usd_per_hour"
        case idleInstances = "idle_instances"
        case idleUSDPerHour = "idle_usd_per_hour"
        case unmonitoredInstances = "unmonitored_instances"
        case unmonitoredUSDPerHour = "unmonitored_usd_per_hour"
        case topIdle = "top_idle"
    }

    /// The figures at `now` from the ledger's hour buckets and entries and the cycle's snapshot.
    public static func make(ledger: SavingsLedger, snapshot: FleetSnapshot, now: Date) -> DigestFigures {
        let since = LedgerCalendar.startOfHour(now.addingTimeInterval(-86_400))
        let recent = ledger.recent(since: since)
        let inWindow: (Date?) -> Bool = { date in date.map { $0 >= since && $0 <= now } ?? false }
        return DigestFigures(
            since: since, until: now, spendUSD: recent.spendUSD, savedUSD: recent.savedUSD,
            savedAllTimeUSD: ledger.savedUSD, paused: ledger.entries.filter { inWindow($0.pausedAt) }.count,
            deleted: ledger.entries.filter { inWindow($0.deletedAt) }.count,
            runningUSDPerHour: snapshot.runningUSDPerHour, idleInstances: snapshot.idleInstances,
            idleUSDPerHour: snapshot.idleUSDPerHour, unmonitoredInstances: snapshot.unmonitoredInstances,
            unmonitoredUSDPerHour: snapshot.unmonitoredUSDPerHour, topIdle: snapshot.topIdle)
    }

    /// One paragraph for a person (Slack's `text`).
    public var text: String {
        var text =
            "cost-optimizer, last 24 h: \(Money.usd(spendUSD)) spent on the instances listed, \(Money.usd(savedUSD)) saved "
            + "(\(paused) paused, \(deleted) deleted; \(Money.usd(savedAllTimeUSD)) saved in all). Now: "
            + "\(Money.rate(runningUSDPerHour)) running, \(Money.rate(idleUSDPerHour)) on \(idleInstances) idle, "
            + "\(Money.rate(unmonitoredUSDPerHour)) on \(unmonitoredInstances) unmonitored."
        if !topIdle.isEmpty {
            text +=
                " Top idle: "
                + topIdle.map { "\($0.name) (\($0.key)) \($0.usdPerHour.map(Money.rate) ?? "price unknown")" }
                .joined(separator: ", ") + "."
        }
        return text
    }
}

/// Money for people: `$12.40`, `$0.42/h`; no locale, so tests and logs are stable.
public enum Money {
    /// `$12.40`; `-$1.00` below zero.
    public static func usd(_ value: Double) -> String {
        let cents = Int((abs(value) * 100).rounded())
        let digits = String(cents / 100)
        let fraction = cents % 100
        return (value < 0 && cents > 0 ? "-$" : "$") + digits + "." + (fraction < 10 ? "0" : "") + String(fraction)
    }

    /// `$0.42/h`.
    public static func rate(_ value: Double) -> String { usd(value) + "/h" }
}

extension LedgerCalendar {
    /// The first instant of the UTC hour holding `date`.
    public static func startOfHour(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(hourNumber(date)) * secondsPerHour)
    }
}
