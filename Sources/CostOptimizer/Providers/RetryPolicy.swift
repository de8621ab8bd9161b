import Foundation

/// How a provider retries a request: bounded attempts with exponential backoff, slept through a `WallClock`.
///
/// Retried: transport errors (no answer) and HTTP 429, 500, 502, 503, 504. Everything else is returned at once.
/// Delays: `baseDelay`, then times `multiplier` each retry, never more than `maxDelay` (0.5, 1, 2 s by default).
/// No jitter: a daemon with a handful of accounts does not stampede, and tests stay exact.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included; 1 means no retry.
    public var maxAttempts: Int
    /// Seconds slept before the second attempt.
    public var baseDelay: Double
    /// Each later delay is the previous one times this.
    public var multiplier: Double
    /// No delay is longer than this many seconds.
    public var maxDelay: Double

    public init(maxAttempts: Int = 4, baseDelay: Double = 0.5, multiplier: Double = 2, maxDelay: Double = 8) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = max(0, baseDelay)
        self.multiplier = max(1, multiplier)
        self.maxDelay = max(0, maxDelay)
    }

    /// One attempt, no retry.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// HTTP statuses worth another attempt: rate limited, or a server or gateway failure.
    public static let retryableStatuses: Set<Int> = [429, 500, 502, 503, 504]

    /// Seconds to sleep before attempt `attempt` (2 is the first retry).
    public func delay(beforeAttempt attempt: Int) -> Double {
        guard attempt > 1 else { return 0 }
        var delay = baseDelay
        for _ in 2..<attempt {
            delay *= multiplier
            if delay >= maxDelay { break }
        }
        return min(delay, maxDelay)
    }

    /// Sends the request, retrying what `retryableStatuses` and transport errors allow.
    ///
    /// - Parameter label: names the caller in the retry log line (`Provider retry vast: HTTP 429, attempt 2 of 4`);
    ///   never a secret.
    /// - Returns: the first non-retryable response, or the last response when attempts ran out (the caller maps it).
    /// - Throws: the last `HTTPTransportError` when no attempt got a response; `CancellationError` when the task is
    ///   cancelled (a cancelled request is never retried).
    public func send(
        _ request: HTTPRequest, through transport: any HTTPTransport, clock: any WallClock, logger: Logger,
        label: String
    ) async throws -> HTTPResponse {
        var attempt = 1
        while true {
            try Task.checkCancellation()
            let reason: String
            do {
                let response = try await transport.send(request)
                guard Self.retryableStatuses.contains(response.status), attempt < maxAttempts else { return response }
                reason = "HTTP \(response.status)"
            } catch let error as HTTPTransportError {
                if error == .cancelled { throw CancellationError() }
                guard attempt < maxAttempts else { throw error }
                reason = error.description
            }
            attempt += 1
            logger.warning("Provider retry \(label): \(reason), attempt \(attempt) of \(maxAttempts)")
            try await clock.sleep(seconds: delay(beforeAttempt: attempt))
        }
    }
}
