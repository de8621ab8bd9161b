import CostOptimizerCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `report --since`: how far back the report looks, in days (`30d`) or hours (`12h`).
///
/// The ledger keeps whole UTC days, so the report covers whole days: `Nd` the last N UTC days, today included;
/// `Nh` every UTC day that holds part of the last N hours.
public struct ReportWindow: Equatable, Sendable {
    /// `d` or `h`, as written after the number.
    public enum Unit: String, Sendable {
        case days = "d"
        case hours = "h"
    }

    public var amount: Int
    public var unit: Unit

    public init(amount: Int, unit: Unit) {
        self.amount = amount
        self.unit = unit
    }

    /// 30 days.
    public static let `default` = ReportWindow(amount: 30, unit: .days)

    /// Parses `30d` or `12h`: 1 to 400 days (the ledger's retention), or 1 to 9600 hours.
    /// - Throws: a usage error naming the value.
    public static func parse(_ text: String) throws(UsageError) -> ReportWindow {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let last = trimmed.last, let unit = Unit(rawValue: String(last)),
            let amount = Int(trimmed.dropLast()), amount >= 1,
            amount <= (unit == .days ? SavingsLedger.dayRetention : SavingsLedger.dayRetention * 24)
        else {
            throw UsageError(
                message: "--since \"\(text)\" must be a number of days or hours such as 30d or 12h "
                    + "(at most \(SavingsLedger.dayRetention)d)")
        }
        return ReportWindow(amount: amount, unit: unit)
    }

    /// `30d`.
    public var text: String { "\(amount)\(unit.rawValue)" }

    /// The first UTC day (a day number) the window covers at `now`.
    public func firstDay(now: Date) -> Int {
        switch unit {
        case .days: LedgerCalendar.dayNumber(now) - (amount - 1)
        case .hours: LedgerCalendar.dayNumber(now.addingTimeInterval(-Double(amount) * 3600))
        }
    }
}

/// What `cost-optimizer report` prints: spend observed, savings realised per provider and per instance, the
/// instances paused and deleted, and what burns now. Built from `state.json` and `actions.jsonl` only.
public struct SavingsReport: Encodable, Sendable {
    /// One instance the daemon paused or deleted.
    public struct InstanceSavings: Encodable, Sendable {
        public var provider: String
        public var id: String
        public var name: String
        /// `pause` or `delete` (the last action).
        public var action: String
        public var pausedAt: String?
        public var deletedAt: String?
        /// What it was billed per hour when the daemon first acted.
        public var billedUSDPerHour: Double?
        public var storageUSDPerHour: Double?
        /// What the action saves per hour while it holds.
        public var avoidedUSDPerHour: Double?
        /// Saved in the period.
        public var savedUSD: Double
        /// True while savings accrue.
        public var accruing: Bool
        /// Why savings stopped, when they did.
        public var endedReason: String?

        enum CodingKeys: String, CodingKey {
            case provider, id, name, action, accruing
            case pausedAt = "paused_at"
            case deletedAt = "deleted_at"
            case billedUSDPerHour = "billed_usd_per_hour"
            case storageUSDPerHour = "storage_usd_per_hour"
            case avoidedUSDPerHour = "avoided_usd_per_hour"
            case savedUSD = "saved_usd"
            case endedReason = "ended_reason"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(provider, forKey: .provider)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(action, forKey: .action)
            try c.encode(pausedAt, forKey: .pausedAt)
            try c.encode(deletedAt, forKey: .deletedAt)
            try c.encode(billedUSDPerHour, forKey: .billedUSDPerHour)
            try c.encode(storageUSDPerHour, forKey: .storageUSDPerHour)
            try c.encode(avoidedUSDPerHour, forKey: .avoidedUSDPerHour)
            try c.encode(savedUSD, forKey: .savedUSD)
            try c.encode(accruing, forKey: .accruing)
            try c.encode(endedReason, forKey: .endedReason)
        }
    }

    /// One pause or delete the provider accepted (a journal `ok` record).
    public struct ActionLine: Encodable, Sendable {
        public var time: String
        public var provider: String
        public var id: String
        public var name: String
        public var reason: String
    }

    /// The last cycle's view of what burns now.
    public struct Now: Encodable, Sendable {
        public var at: String
        public var runningUSDPerHour: Double
        public var idleInstances: Int
        public var idleUSDPerHour: Double
        public var unmonitoredInstances: Int
        public var unmonitoredUSDPerHour: Double
        public var topIdle: [IdleInstance]

        enum CodingKeys: String, CodingKey {
            case at
            case runningUSDPerHour = "running_usd_per_hour"
            case idleInstances = "idle_instances"
            case idleUSDPerHour = "idle_usd_per_hour"
            case unmonitoredInstances = "unmonitored_instances"
            case unmonitoredUSDPerHour = "unmonitored_usd_per_hour"
            case topIdle = "top_idle"
        }
    }

    public var generatedAt: String
    /// The `--since` value.
    public var since: String
    /// The UTC days covered, first and last (`yyyy-MM-dd`).
    public var firstDay: String
    public var lastDay: String
    public var stateDirectory: String
    /// Why the report is empty (no state yet), or nil.
    public var note: String?
    public var spendUSD: Double
    public var spendByProviderUSD: [String: Double]
    public var savingsUSD: Double
    public var savingsByProviderUSD: [String: Double]
    /// Most saved first.
    public var savingsByInstance: [InstanceSavings]
    public var paused: [ActionLine]
    public var deleted: [ActionLine]
    /// Pauses and deletes decided in dry run in the period (journal `dry_run` records): nothing was sent.
    public var dryRunPauses: Int
    public var dryRunDeletes: Int
    public var now: Now?
    /// When the ledger started, and its totals since.
    public var ledgerSince: String?
    public var spendAllTimeUSD: Double
    public var savingsAllTimeUSD: Double

    enum CodingKeys: String, CodingKey {
        case since, note, paused, deleted, now
        case generatedAt = "generated_at"
        case firstDay = "first_day"
        case lastDay = "last_day"
        case stateDirectory = "state_dir"
        case spendUSD = "spend_usd"
        case spendByProviderUSD = "spend_by_provider_usd"
        case savingsUSD = "savings_usd"
        case savingsByProviderUSD = "savings_by_provider_usd"
        case savingsByInstance = "savings_by_instance"
        case dryRunPauses = "dry_run_pauses"
        case dryRunDeletes = "dry_run_deletes"
        case ledgerSince = "ledger_since"
        case spendAllTimeUSD = "spend_all_time_usd"
        case savingsAllTimeUSD = "savings_all_time_usd"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(generatedAt, forKey: .generatedAt)
        try c.encode(since, forKey: .since)
        try c.encode(firstDay, forKey: .firstDay)
        try c.encode(lastDay, forKey: .lastDay)
        try c.encode(stateDirectory, forKey: .stateDirectory)
        try c.encode(note, forKey: .note)
        try c.encode(spendUSD, forKey: .spendUSD)
        try c.encode(spendByProviderUSD, forKey: .spendByProviderUSD)
        try c.encode(savingsUSD, forKey: .savingsUSD)
        try c.encode(savingsByProviderUSD, forKey: .savingsByProviderUSD)
        try c.encode(savingsByInstance, forKey: .savingsByInstance)
        try c.encode(paused, forKey: .paused)
        try c.encode(deleted, forKey: .deleted)
        try c.encode(dryRunPauses, forKey: .dryRunPauses)
        try c.encode(dryRunDeletes, forKey: .dryRunDeletes)
        try c.encode(now, forKey: .now)
        try c.encode(ledgerSince, forKey: .ledgerSince)
        try c.encode(spendAllTimeUSD, forKey: .spendAllTimeUSD)
        try c.encode(savingsAllTimeUSD, forKey: .savingsAllTimeUSD)
    }

    /// Builds the report at `now` over `window` from a saved state (nil: none yet) and the journal.
    public init(
        state: FleetState?, journal: [JournalRecord], window: ReportWindow, now: Date, stateDirectory: String,
        note: String? = nil
    ) {
        let ledger = state?.ledger ?? SavingsLedger()
        let firstDay = window.firstDay(now: now)
        let lastDay = LedgerCalendar.dayNumber(now)
        let periodStart = LedgerCalendar.startOfDay(firstDay)
        generatedAt = SavingsReport.iso(now)
        since = window.text
        self.firstDay = LedgerCalendar.dayKey(dayNumber: firstDay)
        self.lastDay = LedgerCalendar.dayKey(dayNumber: lastDay)
        self.stateDirectory = stateDirectory
        self.note = note ?? (state == nil ? "no state.json yet: the daemon has not completed a cycle here" : nil)

        var spend: [String: Double] = [:]
        var saved: [String: Double] = [:]
        for (key, day) in ledger.days {
            guard let number = LedgerCalendar.dayNumber(key: key), number >= firstDay, number <= lastDay else {
                continue
            }
            for (provider, amount) in day.spendUSD { spend[provider, default: 0] += amount }
            for (instance, amount) in day.savedUSD { saved[instance, default: 0] += amount }
        }
        spendUSD = spend.values.reduce(0, +)
        spendByProviderUSD = spend
        savingsUSD = saved.values.reduce(0, +)
        var byProvider: [String: Double] = [:]
        for (key, amount) in saved {
            byProvider[InstanceKey(stateKey: key)?.provider.rawValue ?? "unknown", default: 0] += amount
        }
        savingsByProviderUSD = byProvider

        let inPeriod: (Date?) -> Bool = { $0.map { $0 >= periodStart } ?? false }
        var keys = Set(saved.keys)
        for entry in ledger.entries where entry.isOpen || inPeriod(entry.pausedAt) || inPeriod(entry.deletedAt) {
            keys.insert(entry.key.description)
        }
        let names = Dictionary(journal.map { ("\($0.provider)/\($0.id)", $0.name) }, uniquingKeysWith: { _, b in b })
        savingsByInstance = keys.map { key in
            let entry = ledger.entries.last { $0.key.description == key }
            let parsed = InstanceKey(stateKey: key)
            return InstanceSavings(
                provider: entry?.provider.rawValue ?? parsed?.provider.rawValue ?? "unknown",
                id: entry?.id ?? parsed?.id ?? key, name: entry?.name ?? names[key] ?? parsed?.id ?? key,
                action: entry?.action.rawValue ?? "pause", pausedAt: entry?.pausedAt.map(SavingsReport.iso),
                deletedAt: entry?.deletedAt.map(SavingsReport.iso), billedUSDPerHour: entry?.billedUSDPerHour,
                storageUSDPerHour: entry?.storageUSDPerHour, avoidedUSDPerHour: entry?.avoidedUSDPerHour,
                savedUSD: saved[key] ?? 0, accruing: entry?.isOpen ?? false, endedReason: entry?.endReason)
        }.sorted { ($0.savedUSD, $1.provider, $1.id) > ($1.savedUSD, $0.provider, $0.id) }

        let recent = journal.filter { $0.time >= periodStart && $0.time <= now }
        let line: (JournalRecord) -> ActionLine = {
            ActionLine(
                time: SavingsReport.iso($0.time), provider: $0.provider, id: $0.id, name: $0.name, reason: $0.reason)
        }
        let done = recent.filter { $0.result == JournalResult.ok && !$0.dryRun }
        paused = done.filter { $0.action == .pause }.map(line)
        deleted = done.filter { $0.action == .delete }.map(line)
        let decided = recent.filter { $0.result == JournalResult.dryRun }
        dryRunPauses = decided.filter { $0.action == .pause }.count
        dryRunDeletes = decided.filter { $0.action == .delete }.count

        self.now = ledger.snapshot.map { snapshot in
            Now(
                at: SavingsReport.iso(snapshot.at), runningUSDPerHour: snapshot.runningUSDPerHour,
                idleInstances: snapshot.idleInstances, idleUSDPerHour: snapshot.idleUSDPerHour,
                unmonitoredInstances: snapshot.unmonitoredInstances,
                unmonitoredUSDPerHour: snapshot.unmonitoredUSDPerHour, topIdle: snapshot.topIdle)
        }
        ledgerSince = ledger.startedAt.map(SavingsReport.iso)
        spendAllTimeUSD = ledger.spendUSD
        savingsAllTimeUSD = ledger.savedUSD
    }

    static func iso(_ date: Date) -> String { date.formatted(Date.ISO8601FormatStyle()) }

    /// The report as one pretty JSON object (the shape in docs/operations.md).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// The report for a person.
    public func text() -> String {
        var out =
            "Savings report for UTC days \(firstDay) to \(lastDay) (--since \(since); the ledger keeps whole UTC days), "
            + "generated \(generatedAt)\n"
        out += "State: \(stateDirectory)" + (ledgerSince.map { ", ledger since \($0)" } ?? "") + "\n"
        if let note { out += "Note: \(note)\n" }
        out += "\n"
        out += TextTable.render([
            ["Spend observed", Money.usd(spendUSD), SavingsReport.byProvider(spendByProviderUSD)],
            ["Savings realised", Money.usd(savingsUSD), SavingsReport.byProvider(savingsByProviderUSD)],
            [
                "All time", "",
                "\(Money.usd(spendAllTimeUSD)) observed, \(Money.usd(savingsAllTimeUSD)) saved since the ledger started",
            ],
        ])
        out += "\nSavings by instance\n"
        if savingsByInstance.isEmpty {
            out += "  none: nothing was paused or deleted in the period\n"
        } else {
            var rows = [["INSTANCE", "NAME", "ACTION", "BILLED $/H", "SAVES $/H", "SAVED", "STATUS"]]
            for item in savingsByInstance {
                let when =
                    [item.pausedAt.map { "paused \($0)" }, item.deletedAt.map { "deleted \($0)" }].compactMap { $0 }
                    .joined(separator: ", ")
                rows.append([
                    "\(item.provider)/\(item.id)", String(item.name.prefix(24)), when.isEmpty ? item.action : when,
                    item.billedUSDPerHour.map(SavingsReport.rate) ?? "-",
                    item.avoidedUSDPerHour.map(SavingsReport.rate) ?? "-", Money.usd(item.savedUSD),
                    item.accruing ? "accruing" : "ended: \(item.endedReason ?? "-")",
                ])
            }
            out += TextTable.render(rows)
        }
        out += "\nPaused in the period: \(paused.count), deleted: \(deleted.count)"
        if dryRunPauses + dryRunDeletes > 0 {
            out += " (dry run: \(dryRunPauses) pauses and \(dryRunDeletes) deletes decided, not sent)"
        }
        out += "\n"
        let actions =
            paused.map { ($0, "pause") } + deleted.map { ($0, "delete") }
        if !actions.isEmpty {
            var rows = [["TIME", "ACTION", "INSTANCE", "NAME", "REASON"]]
            for (line, action) in actions.sorted(by: { $0.0.time < $1.0.time }) {
                rows.append([
                    line.time, action, "\(line.provider)/\(line.id)", String(line.name.prefix(24)), line.reason,
                ])
            }
            out += TextTable.render(rows)
        }
        out += "\n"
        if let now {
            out +=
                "Burning now (last cycle \(now.at)): \(Money.rate(now.runningUSDPerHour)) running, "
                + "\(Money.rate(now.idleUSDPerHour)) on \(now.idleInstances) idle, "
                + "\(Money.rate(now.unmonitoredUSDPerHour)) on \(now.unmonitoredInstances) unmonitored\n"
            for idle in now.topIdle {
                out +=
                    "  idle: \(idle.key) \(idle.name) \(idle.usdPerHour.map(Money.rate) ?? "price unknown")"
                    + (idle.idleSince.map { " since \(SavingsReport.iso($0))" } ?? "") + "\n"
            }
        } else {
            out += "Burning now: unknown (no cycle recorded yet)\n"
        }
        return out
    }

    /// A rate in dollars: two decimals, four for a non-zero rate under ten cents (storage).
    static func rate(_ value: Double) -> String {
        String(format: value > 0 && value < 0.1 ? "%.4f" : "%.2f", value)
    }

    private static func byProvider(_ amounts: [String: Double]) -> String {
        amounts.isEmpty
            ? "-"
            : amounts.sorted { $0.key < $1.key }.map { "\($0.key) \(Money.usd($0.value))" }
                .joined(separator: ", ")
    }
}

/// The files `report` reads: `STATE_DIR/state.json` and `STATE_DIR/actions.jsonl`, read only; it never writes, never
/// takes the lock and never removes a temp file, so it runs beside the daemon.
public enum ReportFiles {
    /// The saved state (nil when there is none yet), the journal, and a note when the directory is missing.
    /// - Throws: `ReportError` when a file exists but cannot be read or decoded.
    public static func load(directory: String) throws(ReportError) -> (
        state: FleetState?, journal: [JournalRecord], note: String?
    ) {
        guard try exists(directory) else {
            return (nil, [], "STATE_DIR \(directory) does not exist: no daemon has run with it, nothing to report")
        }
        let statePath = directory + "/state.json"
        var state: FleetState?
        if let data = try contents(statePath) {
            do {
                let decoded = try FileStateStore.decoder.decode(FleetState.self, from: data)
                guard decoded.schemaVersion == FleetState.currentSchemaVersion else {
                    throw ReportError.undecodable(path: statePath, detail: "schema version \(decoded.schemaVersion)")
                }
                state = decoded
            } catch let error as ReportError {
                throw error
            } catch {
                throw ReportError.undecodable(path: statePath, detail: "not a state file this version can read")
            }
        }
        var journal: [JournalRecord] = []
        if let data = try contents(directory + "/actions.jsonl") {
            journal = data.split(separator: UInt8(ascii: "\n")).compactMap {
                try? FileStateStore.decoder.decode(JournalRecord.self, from: Data($0))
            }
        }
        return (state, journal, nil)
    }

    private static func exists(_ path: String) throws(ReportError) -> Bool {
        var info = stat()
        if stat(path, &info) == 0 { return true }
        if errno == ENOENT { return false }
        throw ReportError.unreadable(path: path, detail: String(cString: strerror(errno)))
    }

    private static func contents(_ path: String) throws(ReportError) -> Data? {
        guard try exists(path) else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReportError.unreadable(path: path, detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReportError.unreadable(path: path, detail: String(cString: strerror(errno)))
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }
}

/// `report` could not read the state directory; the command exits 70 with the sentence.
public enum ReportError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, detail: String)
    case undecodable(path: String, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let detail):
            "cannot read \(path) (\(detail)); run report as the daemon's user or as root, with the daemon's STATE_DIR"
        case .undecodable(let path, let detail):
            "cannot use \(path) (\(detail)); the daemon moves a corrupt state aside at its next start"
        }
    }
}
