import CostOptimizerCore
import Foundation

/// One account at one cloud: lists its instances and pauses or deletes them.
///
/// An adapter is built per account (one Vast key = one provider value). It decodes every field as optional, maps
/// statuses it does not know to `.unknown`, paces its requests to the provider's rate limits, and retries rate limits
/// and server errors a bounded number of times (`RetryPolicy`), but never repeats a pause or delete blindly.
/// A fake answers `listInstances` and `instance(_:)` from its fleet and records every `pause` and `delete`.
public protocol GPUProvider: Sendable {
    /// Which cloud this is.
    var name: ProviderName { get }
    /// Names the account in logs and errors without a secret, e.g. `vast` or `vast#2`.
    var account: String { get }
    /// Every instance of the account, GPU or not, in any state.
    /// - Throws: `ProviderError` when the listing could not be completed. A provider whose listing can be partial by
    ///   design (GCE unreachable zones) also conforms to `PartialListing`, which names the parts it could not read.
    func listInstances() async throws -> [Instance]
    /// Reads this one instance again from the provider, mapped exactly as `listInstances()` maps it.
    ///
    /// For the daemon to call right before each pause or delete, to act on what the instance is now rather than on
    /// what the cycle's listing said; the providers also call it after a mutating call got no usable answer, to learn
    /// whether the call was applied before sending it again.
    /// - Parameter instance: an instance of this provider, as listed (its key, and for GCE its zone and name, say
    ///   which one to read).
    /// - Returns: the instance as it is now, or nil when the provider says it no longer exists (for GCE also when its
    ///   name now belongs to another instance, with another id). Nil is only returned on the provider's own answer
    ///   that the instance is gone, never for an error.
    /// - Throws: `ProviderError` when the instance could not be read: the answer was an error, unreadable, or did not
    ///   clearly say the instance is gone. An error never means gone.
    func instance(_ instance: Instance) async throws -> Instance?
    /// Stops the instance so its GPU is no longer billed.
    ///
    /// The stop is never repeated blindly: after no answer or a 5xx the instance is re-read first (Vast, TensorDock)
    /// or the request carries the same idempotency key (GCE `requestId`); see `RetryPolicy.sendMutation`.
    /// - Throws: `ProviderError`, including a 200 whose body says it failed, and `.outcomeUnknown` when it cannot
    ///   be known whether the stop was applied.
    func pause(_ instance: Instance) async throws
    /// Destroys the instance and its data.
    ///
    /// The delete is never repeated blindly: after no answer or a 5xx the instance is re-read first (Vast, TensorDock)
    /// or the request carries the same idempotency key (GCE `requestId`); see `RetryPolicy.sendMutation`.
    /// - Important: an instance that is already gone is success.
    /// - Throws: `ProviderError`, and `.outcomeUnknown` when it cannot be known whether the delete was applied.
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
    /// A mutating call got no usable answer and a re-read could not show whether it was applied; it was not sent
    /// again. Never a success: the next cycle reads the instance afresh.
    case outcomeUnknown(account: String, detail: String)

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
        case .outcomeUnknown(let account, let detail):
            "\(account): \(detail); whether it took effect is unknown, so it was not sent again and the next cycle "
                + "will read the instance afresh"
        }
    }
}

extension ProviderError {
    /// The error for a final (already retried) non-2xx response: 401/403 unauthorized, 429 rate-limited, any other
    /// status `http`; nil for 2xx.
    /// - Parameter detail: the response's message with secrets masked; evaluated only for an error.
    static func forStatus(_ response: HTTPResponse, account: String, detail: @autoclosure () -> String)
        -> ProviderError?
    {
        switch response.status {
        case 200..<300: nil
        case 401, 403: .unauthorized(account: account, detail: "HTTP \(response.status): \(detail())")
        case 429: .rateLimited(account: account)
        default: .http(account: account, status: response.status, detail: detail())
        }
    }
}
