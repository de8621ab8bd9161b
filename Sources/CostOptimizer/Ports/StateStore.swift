import CostOptimizerCore
import Foundation

/// Keeps the fleet state and the action journal.
///
/// A fake keeps both in memory and records every save and append.
public protocol StateStore: Sendable {
    /// The saved state; nil when there is none yet, or when the file was corrupt (it is then moved aside).
    func load() throws -> FleetState?
    /// Replaces the saved state atomically: a crash leaves the old file or the new one, never a mix.
    func save(_ state: FleetState) throws
    /// Appends one record to the journal, durably.
    func append(_ record: JournalRecord) throws
}

/// A state file or journal could not be read or written.
public enum StateStoreError: Error, Equatable, CustomStringConvertible {
    case io(path: String, detail: String)

    public var description: String {
        switch self {
        case .io(let path, let detail): "cannot write \(path) (\(detail)); check STATE_DIR and its permissions"
        }
    }
}
