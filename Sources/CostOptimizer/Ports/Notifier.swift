import CostOptimizerCore
import Foundation

/// The kind of a notification, as the webhook's `event` field.
public enum NotificationKind: String, Codable, Sendable {
    case pause
    case delete
    case actionFailed = "action_failed"
    case sshUnreachable = "ssh_unreachable"
    case providerError = "provider_error"
    /// A breaker withheld every action of one kind this cycle.
    case breakerTripped = "breaker_tripped"
    /// An instance will be deleted soon unless someone acts.
    case deleteNotice = "delete_notice"
    /// A running instance the daemon has not been able to sample for an hour: it cannot protect the money there.
    case unmonitored
    /// The daily summary (`DIGEST_HOUR`): the last 24 hours' spend and savings, and what burns now.
    case digest
}

/// One notification: a line for a person (`text`) and the structured fields.
public struct NotificationEvent: Codable, Equatable, Sendable {
    public var event: NotificationKind
    public var text: String
    public var provider: String?
    public var instanceID: String?
    public var instanceName: String?
    public var gpuModel: String?
    public var reason: String?
    public var hourlyCostUSD: Double?
    public var dryRun: Bool
    /// The figures of a `digest` event; nil (and absent from the JSON) for every other event.
    public var digest: DigestFigures?

    public init(
        event: NotificationKind, text: String, provider: String? = nil, instanceID: String? = nil,
        instanceName: String? = nil, gpuModel: String? = nil, reason: String? = nil, hourlyCostUSD: Double? = nil,
        dryRun: Bool, digest: DigestFigures? = nil
    ) {
        self.event = event
        self.text = text
        self.provider = provider
        self.instanceID = instanceID
        self.instanceName = instanceName
        self.gpuModel = gpuModel
        self.reason = reason
        self.hourlyCostUSD = hourlyCostUSD
        self.dryRun = dryRun
        self.digest = digest
    }

    enum CodingKeys: String, CodingKey {
        case event, text, provider, reason, digest
        case instanceID = "instance_id"
        case instanceName = "instance_name"
        case gpuModel = "gpu_model"
        case hourlyCostUSD = "hourly_cost_usd"
        case dryRun = "dry_run"
    }
}

/// Tells people what the daemon did.
///
/// - Important: `notify` never throws and never stalls a cycle: it has its own timeout and bounded retries, and a
///   failure is logged, not propagated. A fake records every event.
public protocol Notifier: Sendable {
    /// Delivers one event, or gives up after bounded retries.
    func notify(_ event: NotificationEvent) async
}
