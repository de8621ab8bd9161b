import CostOptimizerCore

/// Maps Vast's three status fields to `InstanceState` (`shared/docs/providers.md` §1.2, §1.5 and §4).
///
/// Vast reports `actual_status` (the container: null, loading, running, stopped, frozen, exited, rebooting,
/// unknown, offline; real code also sees created, restarting, scheduling), `intended_status` (the user's target:
/// running, stopped, frozen) and `cur_state` (the hardware contract: running, stopped, unloaded). Values are
/// compared trimmed and lowercased; an empty string counts as null. Rules, first match wins:
///
/// | # | condition | state |
/// |---|---|---|
/// | 1 | any field holds a value outside the lists above | `unknown` |
/// | 2 | `cur_state` unloaded (the contract is being released) | `transitional` |
/// | 3 | actual running, intended running or null, cur running or null | `running` |
/// | 4 | actual running otherwise (a stop or freeze in progress, or a contradiction) | `transitional` |
/// | 5 | actual exited, unknown or offline, intended running or frozen | `broken` |
/// | 6 | intended stopped, and actual stopped with cur stopped or null | `paused` |
/// | 6 | intended stopped, and actual exited or null with cur stopped | `paused` |
/// | 7 | anything else: null, loading, created, rebooting, restarting, scheduling, frozen, a start | `transitional` |
///
/// Choices worth knowing:
/// - `frozen` still bills the GPU but its processes are suspended, so it cannot be sampled: `transitional`
///   (no evidence, no action), not `running`. `loading` is `transitional` too, even with intended running.
/// - `paused` needs the user's (or our) intent `stopped` *and* a stopped container or contract, because a paused
///   instance becomes a delete candidate. A stopped instance whose host is `offline`/`unknown` is `transitional`:
///   its data sits on a host that is not reporting, so the daemon waits.
/// - `broken` is only claimed when the intent is to run (the VDOCS "will never reach running" case); with no
///   intent (null) the same container states are `transitional`.
public enum VastStatus {
    static let actualValues: Set<String> = [
        "running", "loading", "created", "rebooting", "restarting", "scheduling", "stopped", "frozen", "exited",
        "unknown", "offline",
    ]
    static let intendedValues: Set<String> = ["running", "stopped", "frozen"]
    static let curValues: Set<String> = ["running", "stopped", "unloaded"]

    /// The normalised state of an instance with these raw fields (nil = JSON null or absent).
    public static func state(actualStatus: String?, intendedStatus: String?, curState: String?) -> InstanceState {
        let actual = normalise(actualStatus)
        let intended = normalise(intendedStatus)
        let cur = normalise(curState)
        if let actual, !actualValues.contains(actual) { return .unknown }
        if let intended, !intendedValues.contains(intended) { return .unknown }
        if let cur, !curValues.contains(cur) { return .unknown }

        if cur == "unloaded" { return .transitional }
        if actual == "running" {
            let intentRuns = intended == nil || intended == "running"
            let contractRuns = cur == nil || cur == "running"
            return intentRuns && contractRuns ? .running : .transitional
        }
        let wantsToRun = intended == "running" || intended == "frozen"
        if let actual, ["exited", "unknown", "offline"].contains(actual), wantsToRun { return .broken }
        if intended == "stopped" {
            switch actual {
            case "stopped" where cur == "stopped" || cur == nil: return .paused
            case "exited" where cur == "stopped", nil where cur == "stopped": return .paused
            default: break
            }
        }
        return .transitional
    }

    /// `actual_status=X intended_status=Y cur_state=Z`, with `null` for a missing value: the instance's
    /// `providerStatus`.
    public static func describe(actualStatus: String?, intendedStatus: String?, curState: String?) -> String {
        let show = { (value: String?) in value ?? "null" }
        return "actual_status=\(show(actualStatus)) intended_status=\(show(intendedStatus)) cur_state=\(show(curState))"
    }

    private static func normalise(_ value: String?) -> String? {
        guard let value else { return nil }
        let text = value.trimmed.lowercased()
        return text.isEmpty ? nil : text
    }
}
