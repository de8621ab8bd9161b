import CostOptimizerCore

// Kept apart so that `CommandLineTool.swift` stays untouched on this branch; fold it into `ReadOnlyStore` there.
extension ReadOnlyStore {
    /// None: `status` reads no journal through this store and acts on nothing.
    func unresolvedIntents() throws -> [JournalRecord] { [] }
}
