#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The journal's open intents, kept up to date one record at a time in journal order: an intent opens its
/// `actionID` (a repeated intent replaces the earlier one), any later record with that `actionID` closes it.
///
/// Holds only the open intents, so a reader can feed it the journal once and then only what was appended since.
public struct OpenIntents: Sendable, Equatable {
    private var open: [String: Entry] = [:]
    private var next = 0

    private struct Entry: Sendable, Equatable {
        var order: Int
        var record: JournalRecord
    }

    public init() {}

    /// Takes the next record of the journal. A record without an `actionID` links nothing and is passed over.
    public mutating func add(_ record: JournalRecord) {
        guard let actionID = record.actionID else { return }
        if record.isIntent {
            open[actionID] = Entry(order: next, record: record)
            next += 1
        } else {
            open.removeValue(forKey: actionID)
        }
    }

    /// The open intents, in journal order (a repeated intent counts where it was last written).
    public var intents: [JournalRecord] {
        open.values.sorted { $0.order < $1.order }.map(\.record)
    }
}
