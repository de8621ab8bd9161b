import CostOptimizer
import CostOptimizerCore
import Synchronization

/// Keeps the state and the journal in memory and counts saves.
public final class MemoryStateStore: StateStore, Sendable {
    private let storage = Mutex<(state: FleetState?, journal: [JournalRecord], saves: Int)>((nil, [], 0))

    public init(state: FleetState? = nil) { storage.withLock { $0.state = state } }

    public func load() throws -> FleetState? { storage.withLock { $0.state } }
    public func save(_ state: FleetState) throws {
        storage.withLock {
            $0.state = state
            $0.saves += 1
        }
    }
    public func append(_ record: JournalRecord) throws { storage.withLock { $0.journal.append(record) } }

    /// Every record appended, in order.
    public var journal: [JournalRecord] { storage.withLock { $0.journal } }
    /// The last state saved.
    public var state: FleetState? { storage.withLock { $0.state } }
    /// How many times `save` was called.
    public var saves: Int { storage.withLock { $0.saves } }
}
