import CostOptimizerCore
import Foundation

/// What one cycle publishes for Prometheus: the fleet it saw, the ledger's counters and the cycle's own figures.
public struct CycleMetrics: Sendable {
    public var snapshot: FleetSnapshot
    public var ledger: SavingsLedger
    /// The cycle's wall time.
    public var cycleSeconds: Double
    /// The start of the last cycle in which every account was listed and the state saved; nil before the first.
    public var lastSuccess: Date?
    public var dryRun: Bool

    public init(snapshot: FleetSnapshot, ledger: SavingsLedger, cycleSeconds: Double, lastSuccess: Date?, dryRun: Bool)
    {
        self.snapshot = snapshot
        self.ledger = ledger
        self.cycleSeconds = cycleSeconds
        self.lastSuccess = lastSuccess
        self.dryRun = dryRun
    }
}

/// The Prometheus text exposition format (version 0.0.4) of `CycleMetrics`, for node_exporter's textfile collector.
///
/// Every metric has `# HELP` and `# TYPE`; counters end in `_total` and come from the ledger, which the state file
/// keeps, so they survive restarts; units are in the names (`_usd`, `_usd_per_hour`, `_seconds`). Label series that
/// can be zero (`actions_total`, `samples_total`, each state of each provider listed) are always written, so rates
/// and alerts work from the first cycle.
public enum PrometheusText {
    /// The whole file, ending with a newline.
    public static func render(_ metrics: CycleMetrics) -> String {
        let snapshot = metrics.snapshot
        let ledger = metrics.ledger
        var out = ""
        func metric(
            _ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]
        ) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
                out += name + (labels.isEmpty ? "" : "{\(labels)}") + " " + number(sample.value) + "\n"
            }
        }
        var instances: [(labels: [(String, String)], value: Double)] = []
        for provider in snapshot.instances.keys.sorted() {
            for state in InstanceState.allCases {
                instances.append(
                    (
                        [("provider", provider), ("state", state.rawValue)],
                        Double(snapshot.instances[provider]?[state.rawValue] ?? 0)
                    ))
            }
        }
        metric(
            "cost_optimizer_instances", "gauge", "Instances listed in the last cycle, by provider and state.", instances
        )
        metric(
            "cost_optimizer_idle_instances", "gauge",
            "Running managed instances in an idle streak in the last cycle.", [([], Double(snapshot.idleInstances))])
        metric(
            "cost_optimizer_unmonitored_instances", "gauge",
            "Running managed instances without a GPU reading for an hour or more.",
            [([], Double(snapshot.unmonitoredInstances))])
        metric(
            "cost_optimizer_running_usd_per_hour", "gauge", "Dollars per hour of the running instances with a price.",
            [([], snapshot.runningUSDPerHour)])
        metric(
            "cost_optimizer_idle_usd_per_hour", "gauge", "Dollars per hour of the idle instances.",
            [([], snapshot.idleUSDPerHour)])
        metric(
            "cost_optimizer_unmonitored_usd_per_hour", "gauge", "Dollars per hour of the unmonitored instances.",
            [([], snapshot.unmonitoredUSDPerHour)])
        metric(
            "cost_optimizer_savings_usd_total", "counter",
            "Dollars saved by the daemon's pauses and deletes since its ledger started.", [([], ledger.savedUSD)])
        metric(
            "cost_optimizer_spend_usd_total", "counter",
            "Dollars of spend observed on the listed instances since the ledger started.", [([], ledger.spendUSD)])
        var actions: [(labels: [(String, String)], value: Double)] = []
        let results = [JournalResult.ok, JournalResult.failed, JournalResult.dryRun]
        let known = Set(["pause", "delete"].flatMap { action in results.map { "\(action)/\($0)" } })
        for action in ["pause", "delete"] {
            for result in results {
                actions.append(
                    ([("action", action), ("result", result)], Double(ledger.actionCounts["\(action)/\(result)"] ?? 0)))
            }
        }
        for (key, count) in ledger.actionCounts.sorted(by: { $0.key < $1.key }) where !known.contains(key) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            actions.append(
                ([("action", parts.first ?? key), ("result", parts.count > 1 ? parts[1] : "")], Double(count)))
        }
        metric(
            "cost_optimizer_actions_total", "counter",
            "Pauses and deletes attempted, by result (ok, failed, dry_run).", actions)
        metric(
            "cost_optimizer_cycle_duration_seconds", "gauge", "Wall time of the last cycle.",
            [([], metrics.cycleSeconds)])
        metric(
            "cost_optimizer_samples_total", "counter", "GPU samples taken over ssh, by result.",
            [([("result", "ok")], Double(ledger.samplesOK)), ([("result", "failed")], Double(ledger.samplesFailed))])
        metric(
            "cost_optimizer_last_success_timestamp_seconds", "gauge",
            "Unix time of the last cycle in which every account was listed and the state saved (0: none yet).",
            [([], metrics.lastSuccess?.timeIntervalSince1970 ?? 0)])
        metric(
            "cost_optimizer_provider_errors", "gauge", "Listing errors in the last cycle (accounts or zones not read).",
            [([], Double(snapshot.providerErrors))])
        metric(
            "cost_optimizer_dry_run", "gauge", "1 when the daemon runs in dry run (no pause or delete is sent).",
            [([], metrics.dryRun ? 1 : 0)])
        return out
    }

    /// A label value as the exposition format wants it: backslash, double quote and line feed escaped.
    public static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// A sample value: whole numbers without a fraction, others in full precision, `+Inf`, `-Inf`, `NaN`.
    public static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }
}
