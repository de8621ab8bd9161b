import CostOptimizerCore
import Foundation

/// A provider whose listing can succeed while parts of the account could not be read (GCE zones answered as
/// `unreachables` with `returnPartialSuccess=true`).
///
/// The daemon calls `listInstancesReportingGaps()` on a provider that conforms, acts only on the instances returned
/// (nothing is ever concluded about an instance that was not listed), and reports each gap as that cycle's error for
/// the account. `GPUProvider.listInstances()` of a conforming provider returns the same instances and only logs the
/// gaps, so a caller that does not know this protocol loses the report, never safety.
public protocol PartialListing: Sendable {
    /// The instances that could be listed, and the parts of the account that could not.
    /// - Returns: `gaps` names each unread part as the provider does (GCE: `zones/us-central1-b`), without
    ///   duplicates; empty when the listing is complete.
    /// - Throws: `ProviderError` when the listing failed as a whole (an error, an unreadable page).
    func listInstancesReportingGaps() async throws -> (instances: [Instance], gaps: [String])
}
