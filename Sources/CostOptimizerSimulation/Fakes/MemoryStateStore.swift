import CostOptimizer
import CostOptimizerCore
import Synchronization

/// Keeps the state and the journal in memory and counts saves; appends can be made to fail.
public final class MemoryStateStore: StateStore, Sendable {
    private struct Storage {
        var state: FleetState?
        var journal: [JournalRecord] = []
        var saves = 0
        var appendError: StateStoreError?
    }

    private let storage = Mutex<Storage>(Storage())

    public init(state: FleetState? = nil, journal: [JournalRecord] = []) {
        storage.withLock {
            $0.state = state
            $0.journal = journal
        }
    }

    public func load() throws -> FleetState? { storage.withLock { $0.state } }
    public func save(_ state: FleetState) throws {
        storage.withLock {
            $0.state = state
            $0.saves += 1
        }
    }
    /// Records `record`, or throws the error set with `failAppends(with:)` and records nothing.
    public func append(_ record: JournalRecord) throws {
        try storage.withLock { storage throws(StateStoreError) in
            if let error = storage.appendError { throw error }
            storage.journal.append(record)
        }
    }
    /// The recorded intents no later record of the same `actionID` closes.
    public func unresolvedIntents() throws -> [JournalRecord] {
        JournalRecord.unresolvedIntents(storage.withLock { $0.journal })
    }

    /// Makes every later `append` throw `error` (a full disk, a failed fsync); nil makes them succeed again.
    public func failAppends(with error: StateStoreError?) { storage.withLock { $0.appendError = error } }

    /// Every record appended, in order.
    public var journal: [JournalRecord] { storage.withLock { $0.journal } }
    /// The last state saved.
    public var state: FleetState? { storage.withLock { $0.state } }
    /// How many times `save` was called.
    public var saves: Int { storage.withLock { $0.saves } }
}
