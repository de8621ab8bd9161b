import CostOptimizerCore
import Foundation

/// One account at one cloud: lists its instances and pauses or deletes them.
///
/// An adapter is built per account (one Vast key = one provider value). It decodes every field as optional, maps
/// statuses it does not know to `.unknown`, and retries rate limits and server errors a bounded number of times.
/// A fake answers `listInstances` from a queue and records every `pause` and `delete`.
public protocol GPUProvider: Sendable {
    /// Which cloud this is.
    var name: ProviderName { get }
    /// Names the account in logs and errors without a secret, e.g. `vast` or `vast#2`.
    var account: String { get }
    /// Every instance of the account, GPU or not, in any state.
    /// - Throws: `ProviderError` when the listing could not be completed. A provider whose listing can be partial by
    ///   design (GCE unreachable zones) also conforms to `PartialListing`, which names the parts it could not read.
    func listInstances() async throws -> [Instance]
    /// Stops the instance so its GPU is no longer billed.
    /// - Throws: `ProviderError`, including a 200 whose body says it failed.
    func pause(_ instance: Instance) async throws
    /// Destroys the instance and its data.
    /// - Important: an instance that is already gone is success.
    /// - Throws: `ProviderError`.
    func delete(_ instance: Instance) async throws
}

/// A provider call failed. Each description is a sentence a user can act on and never holds a secret.
public enum ProviderError: Error, Equatable, CustomStringConvertible {
    /// 401/403: the key is wrong, expired, or lacks a permission.
    case unauthorized(account: String, detail: String)
    /// Still rate-limited after the retries.
    case rateLimited(account: String)
    /// An HTTP status the adapter does not accept, after retries where they apply.
    case http(account: String, status: Int, detail: String)
    /// HTTP 2xx whose body says the call failed (`success: false`).
    case rejected(account: String, detail: String)
    /// A body that could not be decoded.
    case malformed(account: String, detail: String)
    /// No response arrived.
    case transport(account: String, detail: String)

    public var description: String {
        switch self {
        case .unauthorized(let account, let detail):
            "\(account): the API key was refused (\(detail)); check the key and its permissions"
        case .rateLimited(let account):
            "\(account): still rate-limited after retries; the next cycle will try again"
        case .http(let account, let status, let detail):
            "\(account): HTTP \(status) (\(detail))"
        case .rejected(let account, let detail):
            "\(account): the API refused the call (\(detail))"
        case .malformed(let account, let detail):
            "\(account): unreadable response (\(detail))"
        case .transport(let account, let detail):
            "\(account): \(detail)"
        }
    }
}
