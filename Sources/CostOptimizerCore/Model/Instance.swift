#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The cloud a GPU instance is rented from.
public enum ProviderName: String, Codable, Sendable, CaseIterable, Comparable {
    case vast
    case tensordock
    case gcp

    public static func < (lhs: ProviderName, rhs: ProviderName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Identifies one instance across providers: `vast/123456`.
public struct InstanceKey: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    /// The provider that rents the instance.
    public var provider: ProviderName
    /// The provider's own id, as a string (Vast contract ids are integers, GCE ids are uint64 strings).
    public var id: String

    public init(provider: ProviderName, id: String) {
        self.provider = provider
        self.id = id
    }

    /// `provider/id`, the form used in logs, the journal and the state file.
    public var description: String { "\(provider.rawValue)/\(id)" }

    public static func < (lhs: InstanceKey, rhs: InstanceKey) -> Bool {
        (lhs.provider, lhs.id) < (rhs.provider, rhs.id)
    }
}

/// The daemon's normalised view of a provider's status strings (`shared/docs/providers.md` §4).
public enum InstanceState: String, Codable, Sendable, CaseIterable {
    /// GPUs are allocated and billed; the only state that is sampled and can be paused.
    case running
    /// Stopped by someone (us or the user); GPU released, storage still billed.
    case paused
    /// On its way somewhere (loading, stopping, rebooting): no action.
    case transitional
    /// Will never reach running by itself (exited, offline) and still accrues charges.
    case broken
    /// A status the daemon does not recognise: no action, ever.
    case unknown
}

/// Where and as whom to reach an instance over ssh.
public struct SSHEndpoint: Codable, Hashable, Sendable {
    public var host: String
    public var port: Int
    public var user: String

    public init(host: String, port: Int, user: String) {
        self.host = host
        self.port = port
        self.user = user
    }
}

/// One instance as a provider listed it, normalised. Providers fill what they know and leave the rest nil.
public struct Instance: Codable, Equatable, Sendable {
    public var key: InstanceKey
    /// A display name (Vast: the label, else the id).
    public var name: String
    /// The zone or region, where the provider has one.
    public var zone: String?
    public var state: InstanceState
    /// The raw status string(s), e.g. `actual_status=running intended_status=running cur_state=running`.
    public var providerStatus: String
    public var gpuModel: String?
    public var gpuCount: Int?
    /// The running price in US dollars per hour.
    public var hourlyCostUSD: Double?
    /// The provider's creation time; nil means unknown, and an instance of unknown age is never deleted.
    public var createdAt: Date?
    /// Every user-set text that can carry the protect label: Vast label, TensorDock name, GCE labels and tags.
    public var labels: [String]
    public var ssh: SSHEndpoint?
    /// False for an instance the daemon never acts on (for example one with no GPU).
    public var managed: Bool
    /// When the instance last started, where the provider says (GCE `lastStartTimestamp`); a newer value than the
    /// daemon saw before means someone restarted it, which resets its idle clock.
    public var startedAt: Date?
    /// Stopped but still billed for its GPU (TensorDock `Stopped`, resources reserved): a pause releases the GPU.
    public var gpuReserved: Bool
    /// The provider refuses to delete it (GCE `deletionProtection`): never deleted, may still be paused.
    public var deletionProtected: Bool
    /// True when `hourlyCostUSD` comes from a built-in price table, not from the provider.
    public var costEstimated: Bool
    /// Why there is no ssh endpoint (e.g. "no external IP"), for `status`.
    public var sshUnavailableReason: String?
    /// What the instance is billed per hour while stopped (its disk), where the provider says: Vast
    /// `storage_total_cost`, TensorDock `storage_price`; nil for GCE, whose API gives no prices. Used by the savings
    /// ledger only.
    public var storageCostUSDPerHour: Double?

    public init(
        key: InstanceKey, name: String, zone: String? = nil, state: InstanceState, providerStatus: String,
        gpuModel: String? = nil, gpuCount: Int? = nil, hourlyCostUSD: Double? = nil, createdAt: Date? = nil,
        labels: [String] = [], ssh: SSHEndpoint? = nil, managed: Bool = true, startedAt: Date? = nil,
        gpuReserved: Bool = false, deletionProtected: Bool = false, costEstimated: Bool = false,
        sshUnavailableReason: String? = nil, storageCostUSDPerHour: Double? = nil
    ) {
        self.key = key
        self.name = name
        self.zone = zone
        self.state = state
        self.providerStatus = providerStatus
        self.gpuModel = gpuModel
        self.gpuCount = gpuCount
        self.hourlyCostUSD = hourlyCostUSD
        self.createdAt = createdAt
        self.labels = labels
        self.ssh = ssh
        self.managed = managed
        self.startedAt = startedAt
        self.gpuReserved = gpuReserved
        self.deletionProtected = deletionProtected
        self.costEstimated = costEstimated
        self.sshUnavailableReason = sshUnavailableReason
        self.storageCostUSDPerHour = storageCostUSDPerHour
    }
}
