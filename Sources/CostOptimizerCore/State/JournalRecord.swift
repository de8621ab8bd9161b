#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One line of `STATE_DIR/actions.jsonl`: an action the daemon is about to attempt (an intent), or how one ended.
///
/// A mutating provider call is bracketed by two records sharing an `actionID`: an `intent` appended (and fsynced)
/// before the call, and its outcome (`ok`, `failed`, or at start after a crash `reconciled`) after it. An intent with
/// no later record of the same `actionID` is a call whose outcome is unknown: at start the daemon re-reads that
/// instance instead of repeating the call. Lines written before intents existed have no `action_id` and still decode.
public struct JournalRecord: Codable, Equatable, Sendable {
    public var time: Date
    public var provider: String
    public var id: String
    public var name: String
    public var action: ActionKind
    public var reason: String
    public var dryRun: Bool
    /// One of the `JournalResult` values: `intent`, `ok`, `failed`, `dry_run` (decided but not called) or
    /// `reconciled`.
    public var result: String
    public var error: String?
    /// Links an intent to its outcome (`action_id`, a UUID string); nil in records written before intents existed.
    public var actionID: String?

    public init(
        time: Date, provider: String, id: String, name: String, action: ActionKind, reason: String, dryRun: Bool,
        result: String, error: String? = nil, actionID: String? = nil
    ) {
        self.time = time
        self.provider = provider
        self.id = id
        self.name = name
        self.action = action
        self.reason = reason
        self.dryRun = dryRun
        self.result = result
        self.error = error
        self.actionID = actionID
    }

    enum CodingKeys: String, CodingKey {
        case time, provider, id, name, action, reason, result, error
        case dryRun = "dry_run"
        case actionID = "action_id"
    }

    /// True for an `intent` record.
    public var isIntent: Bool { result == JournalResult.intent }

    /// The record that closes this intent: the same instance, action, reason and `actionID`, with `result` (one of
    /// `JournalResult`), the time it was known and an optional error or finding.
    public func resolution(_ result: String, at time: Date, error: String? = nil) -> JournalRecord {
        var record = self
        record.time = time
        record.result = result
        record.error = error
        return record
    }

    /// The intents among `records` (in journal order) that no later record with the same `actionID` closes, in
    /// journal order; one per `actionID` (the latest, should an intent be repeated). An intent without an
    /// `actionID` cannot be linked to anything and is not returned (the daemon never writes one).
    public static func unresolvedIntents(_ records: some Sequence<JournalRecord>) -> [JournalRecord] {
        var open = OpenIntents()
        for record in records { open.add(record) }
        return open.intents
    }
}

/// The values of `JournalRecord.result`.
public enum JournalResult {
    /// Written and fsynced before the provider call; closed by one of the others.
    public static let intent = "intent"
    /// The provider accepted the call.
    public static let ok = "ok"
    /// The call failed; `error` says why.
    public static let failed = "failed"
    /// Dry run: decided, not called.
    public static let dryRun = "dry_run"
    /// Written at start for an intent left open by a crash, after re-reading the instance (never by repeating the
    /// call); `error` holds what was found.
    public static let reconciled = "reconciled"
    /// Every value, in the order above.
    public static let all = [intent, ok, failed, dryRun, reconciled]
}
