import CostOptimizerCore
import Foundation

/// Keeps the fleet state and the action journal.
///
/// A fake keeps both in memory and records every save and append.
///
/// Crash safety of actions (safety.md §3.5): before each mutating provider call the daemon appends an intent
/// (`JournalRecord.intent(...)`, result `intent`, a fresh `actionID`) and makes the call only if that append
/// succeeded; after the call it appends the outcome with the same `actionID` (`intent.resolution(...)`). At start,
/// `unresolvedIntents()` lists the calls whose outcome was never written; the daemon re-reads each instance (never
/// repeats the call) and appends a `reconciled` record for it.
public protocol StateStore: Sendable {
    /// The saved state; nil when there is none yet, or when the file was corrupt (it is then moved aside).
    func load() throws -> FleetState?
    /// Replaces the saved state atomically: a crash leaves the old file or the new one, never a mix.
    func save(_ state: FleetState) throws
    /// Appends one record to the journal, durably: when it returns, the record survives a crash or power loss.
    /// - Throws: when the record may not be on disk. For an intent this means: do not make the call.
    func append(_ record: JournalRecord) throws
    /// The intents of the journal with no later record of the same `actionID`: calls that may or may not have
    /// happened, because the daemon died between the intent and its outcome. In journal order, one per `actionID`.
    ///
    /// A line cut short by a crash during its write (a torn line) is skipped and hides nothing before or after it.
    /// - Throws: `StateStoreError` when the journal cannot be read, or holds a complete intent this version cannot
    ///   decode: the daemon cannot then know which calls are unfinished and must not act until a person looks.
    func unresolvedIntents() throws -> [JournalRecord]
}

extension JournalRecord {
    /// A new intent: to be appended (and the append to succeed) before the provider call it announces.
    /// - Parameter actionID: links the intent to its outcome; a fresh UUID string by default.
    public static func intent(
        time: Date, provider: String, id: String, name: String, action: ActionKind, reason: String, dryRun: Bool,
        actionID: String = UUID().uuidString
    ) -> JournalRecord {
        JournalRecord(
            time: time, provider: provider, id: id, name: name, action: action, reason: reason, dryRun: dryRun,
            result: JournalResult.intent, actionID: actionID)
    }
}

/// A state file or journal could not be read or written.
public enum StateStoreError: Error, Equatable, CustomStringConvertible {
    /// Writing (or creating) `path` failed.
    case io(path: String, detail: String)
    /// Reading `path` failed.
    case unreadable(path: String, detail: String)
    /// Line `line` of the journal at `path` is a complete intent record this version cannot decode.
    case undecodableIntent(path: String, line: Int)

    public var description: String {
        switch self {
        case .io(let path, let detail): "cannot write \(path) (\(detail)); check STATE_DIR and its permissions"
        case .unreadable(let path, let detail):
            "cannot read \(path) (\(detail)); check STATE_DIR and its permissions"
        case .undecodableIntent(let path, let line):
            "line \(line) of \(path) is an action intent this version cannot read, so whether that action happened is "
                + "unknown; check the instance it names by hand, then append a line with the same action_id and "
                + "\"result\":\"reconciled\", or run the version that wrote it"
        }
    }
}
