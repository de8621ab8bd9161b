import CostOptimizerCore
import Foundation

/// What `cost-optimizer status` prints: every listed instance with its state, protection, metrics, idle time and
/// the decision the engine would take now, plus the providers that failed.
public struct StatusReport: Codable, Sendable {
    /// One instance, in the JSON shape documented in `docs/operations.md`.
    public struct Entry: Codable, Sendable {
        public struct SSH: Codable, Sendable {
            public var host: String
            public var port: Int
            public var user: String
        }
        public struct Metrics: Codable, Sendable {
            /// The instance's utilisation in this pass (max over GPUs, buffer average where present); nil if none.
            public var gpuUtilization: Double?
            /// Per GPU, this pass.
            public var gpus: [GPUReading]?
            /// Successful idle samples in the current streak.
            public var idleSamples: Int
            /// Samples kept in the window, failures included.
            public var windowSamples: Int
            /// Why the last sample failed, if it did.
            public var lastFailure: String?

            enum CodingKeys: String, CodingKey {
                case gpus
                case gpuUtilization = "gpu_utilization"
                case idleSamples = "idle_samples"
                case windowSamples = "window_samples"
                case lastFailure = "last_failure"
            }
        }
        public struct DecisionView: Codable, Sendable {
            public var action: String
            public var reason: String
        }
        public var provider: String
        public var id: String
        public var name: String
        public var zone: String?
        public var state: String
        public var providerStatus: String
        public var gpuModel: String?
        public var gpuCount: Int?
        public var hourlyCostUSD: Double?
        /// True when the cost comes from the built-in price table (GCE), not from the provider.
        public var hourlyCostEstimated: Bool
        public var createdAt: String?
        public var protected: Bool
        public var managed: Bool
        public var ssh: SSH?
        public var idleSince: String?
        /// When the engine will delete it if nothing changes (the delete notice's time), or nil.
        public var deleteAt: String?
        /// Since when a running instance gave no GPU reading, once that has lasted an hour: it is unmonitored.
        public var unmonitoredSince: String?
        public var metrics: Metrics
        public var decision: DecisionView

        enum CodingKeys: String, CodingKey {
            case provider, id, name, zone, state, protected, managed, ssh, metrics, decision
            case providerStatus = "provider_status"
            case gpuModel = "gpu_model"
            case gpuCount = "gpu_count"
            case hourlyCostUSD = "hourly_cost_usd"
            case hourlyCostEstimated = "hourly_cost_estimated"
            case createdAt = "created_at"
            case idleSince = "idle_since"
            case deleteAt = "delete_at"
            case unmonitoredSince = "unmonitored_since"
        }

        // Encode nil as null so every documented field is present.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(provider, forKey: .provider)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(zone, forKey: .zone)
            try c.encode(state, forKey: .state)
            try c.encode(providerStatus, forKey: .providerStatus)
            try c.encode(gpuModel, forKey: .gpuModel)
            try c.encode(gpuCount, forKey: .gpuCount)
            try c.encode(hourlyCostUSD, forKey: .hourlyCostUSD)
            try c.encode(hourlyCostEstimated, forKey: .hourlyCostEstimated)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(protected, forKey: .protected)
            try c.encode(managed, forKey: .managed)
            try c.encode(ssh, forKey: .ssh)
            try c.encode(idleSince, forKey: .idleSince)
            try c.encode(deleteAt, forKey: .deleteAt)
            try c.encode(unmonitoredSince, forKey: .unmonitoredSince)
            try c.encode(metrics, forKey: .metrics)
            try c.encode(decision, forKey: .decision)
        }
    }

    public var instances: [Entry]
    public var errors: [ProviderFailure]

    /// Builds the report from one listing, one sampling pass and the engine's plan.
    public init(plan: Plan, samples: [InstanceKey: SampleResult], errors: [ProviderFailure]) {
        instances = plan.decisions.map { planned in
            let instance = planned.instance
            let record = plan.nextState[instance.key]
            var gpus: [GPUReading]?
            if case .ok(let readings)? = samples[instance.key] { gpus = readings }
            return Entry(
                provider: instance.key.provider.rawValue, id: instance.key.id, name: instance.name, zone: instance.zone,
                state: instance.state.rawValue, providerStatus: instance.providerStatus, gpuModel: instance.gpuModel,
                gpuCount: instance.gpuCount, hourlyCostUSD: instance.hourlyCostUSD,
                hourlyCostEstimated: instance.costEstimated,
                createdAt: instance.createdAt.map(StatusReport.iso8601), protected: planned.protected,
                managed: instance.managed,
                ssh: instance.ssh.map { Entry.SSH(host: $0.host, port: $0.port, user: $0.user) },
                idleSince: record?.idleSince.map(StatusReport.iso8601),
                deleteAt: planned.decision.deleteAt.map(StatusReport.iso8601),
                unmonitoredSince: planned.decision.unmonitoredSince.map(StatusReport.iso8601),
                metrics: Entry.Metrics(
                    gpuUtilization: samples[instance.key]?.utilization, gpus: gpus,
                    idleSamples: record?.streakCount ?? 0, windowSamples: record?.samples.count ?? 0,
                    lastFailure: record?.lastFailure),
                decision: Entry.DecisionView(action: planned.decision.action.rawValue, reason: planned.decision.reason))
        }
        self.errors = errors
    }

    static func iso8601(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// The report as pretty JSON.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// The report as a table for a person.
    public func table() -> String {
        var rows = [["INSTANCE", "NAME", "STATE", "GPU", "$/H", "UTIL", "IDLE SINCE", "DECISION"]]
        for entry in instances {
            rows.append([
                "\(entry.provider)/\(entry.id)", String(entry.name.prefix(24)),
                entry.state + (entry.protected ? " (protected)" : ""),
                "\(entry.gpuCount.map { "\($0)x " } ?? "")\(entry.gpuModel ?? "-")",
                entry.hourlyCostUSD.map { String(format: entry.hourlyCostEstimated ? "~%.2f" : "%.2f", $0) } ?? "-",
                entry.metrics.gpuUtilization.map { String(format: "%.1f%%", $0) } ?? "-",
                entry.idleSince ?? "-", "\(entry.decision.action): \(entry.decision.reason)",
            ])
        }
        var text = TextTable.render(rows)
        for error in errors { text += "error: \(error.provider): \(error.message)\n" }
        return text
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
public enum TextTable {
    /// The rows as text, one line each, ending with a newline.
    public static func render(_ rows: [[String]]) -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        var widths = Array(repeating: 0, count: width)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
