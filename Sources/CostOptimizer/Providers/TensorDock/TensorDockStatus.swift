import CostOptimizerCore

/// Maps TensorDock's `status` string, from either API, to `InstanceState` (`shared/docs/providers.md` §2 and §4).
///
/// v0 writes `Running`, `Stopped`, `StoppedDisassociated`; v2 clients see `running`, `stopped`, `stoppeddisassociated`
/// and other spellings. Every value is normalised first, as the v2 Terraform client does: trimmed, lower-cased, and
/// every `_`, `-` and space dropped, so `Stopped_Disassociated`, `stopped-disassociated` and `StoppedDisassociated`
/// are one status. Then:
///
/// | normalised status | state | GPU reserved |
/// |---|---|---|
/// | `running` | `running` | no |
/// | `stoppeddisassociated` (stopped, GPU released) | `paused` | no |
/// | `stopped` (stopped, GPU kept and billed at the running rate) | `paused` | **yes** |
/// | `starting`, `stopping`, `deleting`, `creating`, `provisioning`, `deploying`, `pending`, `restarting`, `rebooting`, `modifying` | `transitional` | no |
/// | anything else (`outbid`, `relocating`, `terminated`, `deleted`, `error`, …), empty or missing | `unknown` | no |
///
/// Choices worth knowing:
/// - `stopped` is `paused` with `Instance.gpuReserved` set: the engine then pauses it again, which releases the GPU
///   (v0 stop with `disassociate_resources=true`), and deletes it on the idle clock like any paused instance.
/// - `starting` is `transitional`, not `running`: a VM on its way up cannot be sampled fairly.
/// - `error`, `outbid` and `relocating` are not `broken`: no source says what they bill or whether they recover, and a
///   `broken` instance becomes a delete candidate. Unknown means no action.
public enum TensorDockStatus {
    /// Normalised statuses that are on their way somewhere.
    static let transitionalValues: Set<String> = [
        "starting", "stopping", "deleting", "creating", "provisioning", "deploying", "pending", "restarting",
        "rebooting", "modifying",
    ]

    /// The status trimmed, lower-cased and without `_`, `-` or spaces; nil when nothing is left.
    public static func normalised(_ status: String?) -> String? {
        guard let status else { return nil }
        let text = String(status.trimmed.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
        return text.isEmpty ? nil : text
    }

    /// The normalised state of an instance with this raw status (nil = absent or JSON null).
    public static func state(_ status: String?) -> InstanceState {
        switch normalised(status) {
        case "running": .running
        case "stoppeddisassociated", "stopped": .paused
        case let value? where transitionalValues.contains(value): .transitional
        default: .unknown
        }
    }

    /// True for `Stopped`: stopped with its GPU still reserved, so still billed for it.
    public static func reservesGPU(_ status: String?) -> Bool {
        normalised(status) == "stopped"
    }

    /// The raw status as listed, for `Instance.providerStatus`: `status=Running`, or `status=null` when missing.
    public static func describe(_ status: String?) -> String {
        "status=\(status ?? "null")"
    }
}
