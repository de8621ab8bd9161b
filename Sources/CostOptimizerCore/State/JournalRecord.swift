#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One line of `STATE_DIR/actions.jsonl`: an action the daemon attempted and how it ended.
public struct JournalRecord: Codable, Equatable, Sendable {
    public var time: Date
    public var provider: String
    public var id: String
    public var name: String
    public var action: ActionKind
    public var reason: String
    public var dryRun: Bool
    /// `ok`, `failed`, or `dry_run` (decided but not called).
    public var result: String
    public var error: String?

    public init(
        time: Date, provider: String, id: String, name: String, action: ActionKind, reason: String, dryRun: Bool,
        result: String, error: String? = nil
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
    }

    enum CodingKeys: String, CodingKey {
        case time, provider, id, name, action, reason, result, error
        case dryRun = "dry_run"
    }
}
