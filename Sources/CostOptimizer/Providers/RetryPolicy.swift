import CostOptimizerCore
import Foundation

/// How a provider retries a request: bounded attempts with jittered exponential backoff, slept through a `WallClock`,
/// within an optional time budget.
///
/// - Reads (`send`): transport errors (no answer) and HTTP 429, 500, 502, 503, 504 are retried; everything else is
///   returned at once.
/// - Mutations (`sendMutation`): only a 429 (the call was refused, so nothing was applied) is sent again directly.
///   After no answer or a 5xx the call may have been applied, so the instance is re-read first and the call is sent
///   again only when the instance is still in the state it had before (see `MutationCheck`).
/// - Delays: `baseDelay`, then times `multiplier` each retry, never more than `maxDelay` (0.5, 1, 2 s by default);
///   `jitter` turns each into the delay slept (by default a random 50 to 100 % of it, so accounts that failed together
///   do not retry in step). Tests pass `RetryPolicy.noJitter` to sleep the exact delays.
/// - Budget: with `budget` set, a chain of attempts (one `send` or `sendMutation` call, measured on the clock from
///   its first attempt) makes no retry whose wait would end more than `budget` seconds after that start. Independently,
///   `RetryPolicy.deadline` (a task-local value) stops every chain in a task from waiting past one moment, so a caller
///   can bound a whole cycle with it (a per-cycle time budget). When the budget or the deadline stops the retries,
///   the last answer is what the caller gets, exactly as when the attempts run out.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included; 1 means no retry.
    public var maxAttempts: Int
    /// Seconds slept before the second attempt (before jitter).
    public var baseDelay: Double
    /// Each later delay is the previous one times this.
    public var multiplier: Double
    /// No delay is longer than this many seconds.
    public var maxDelay: Double
    /// Seconds one chain of attempts may take, from its first attempt to the end of its last wait; nil for no limit.
    public var budget: Double?
    /// Turns the exponential delay into the delay slept; the result is kept within 0 and `maxDelay`.
    public var jitter: @Sendable (Double) -> Double

    /// - Parameters:
    ///   - maxAttempts: attempts in all; at least 1.
    ///   - baseDelay, multiplier, maxDelay: the exponential backoff, in seconds.
    ///   - budget: seconds a chain of attempts may take; nil (the default) for no limit but `maxAttempts`.
    ///   - jitter: the delay slept for a computed delay; `randomJitter` by default, `noJitter` for exact delays.
    public init(
        maxAttempts: Int = 4, baseDelay: Double = 0.5, multiplier: Double = 2, maxDelay: Double = 8,
        budget: Double? = nil, jitter: @escaping @Sendable (Double) -> Double = RetryPolicy.randomJitter
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = max(0, baseDelay)
        self.multiplier = max(1, multiplier)
        self.maxDelay = max(0, maxDelay)
        self.budget = budget.map { max(0, $0) }
        self.jitter = jitter
    }

    /// One attempt, no retry.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// A random 50 to 100 % of the delay ("equal jitter"): retries of several accounts spread out, and a retry
    /// never comes sooner than half the planned delay.
    public static let randomJitter: @Sendable (Double) -> Double = { $0 * Double.random(in: 0.5...1.0) }

    /// The delay itself: no jitter, for tests and reproducible runs.
    public static let noJitter: @Sendable (Double) -> Double = { $0 }

    /// The moment after which no retry wait may end, for every chain of attempts in the current task; nil (the
    /// default) for none. A per-cycle time budget is set with `RetryPolicy.$deadline.withValue(start + budget) { ... }`
    /// around the cycle; child tasks inherit it.
    @TaskLocal public static var deadline: Date?

    /// HTTP statuses worth another attempt: rate limited, or a server or gateway failure.
    public static let retryableStatuses: Set<Int> = [429, 500, 502, 503, 504]

    /// Seconds before attempt `attempt` (2 is the first retry), before jitter.
    public func delay(beforeAttempt attempt: Int) -> Double {
        guard attempt > 1 else { return 0 }
        var delay = baseDelay
        for _ in 2..<attempt {
            delay *= multiplier
            if delay >= maxDelay { break }
        }
        return min(delay, maxDelay)
    }

    /// Seconds actually slept before attempt `attempt`: `delay(beforeAttempt:)` passed through `jitter`, kept within
    /// 0 and `maxDelay` (a non-finite jitter result sleeps the plain delay).
    public func jitteredDelay(beforeAttempt attempt: Int) -> Double {
        let delay = delay(beforeAttempt: attempt)
        let jittered = jitter(delay)
        guard jittered.isFinite else { return delay }
        return min(max(0, jittered), maxDelay)
    }

    /// Sends the request, retrying what `retryableStatuses` and transport errors allow. Only for requests that can
    /// safely be repeated (reads, or calls carrying an idempotency key); mutations use `sendMutation`.
    ///
    /// - Parameter label: names the caller in the retry log line (`Provider retry vast: HTTP 429, attempt 2 of 4`);
    ///   never a secret.
    /// - Returns: the first non-retryable response, or the last response when attempts or the budget ran out (the
    ///   caller maps it).
    /// - Throws: the last `HTTPTransportError` when no attempt got a response; `CancellationError` when the task is
    ///   cancelled (a cancelled request is never retried).
    public func send(
        _ request: HTTPRequest, through transport: any HTTPTransport, clock: any WallClock, logger: Logger,
        label: String
    ) async throws -> HTTPResponse {
        var chain = RetryChain(policy: self, clock: clock)
        while true {
            try Task.checkCancellation()
            do {
                let response = try await transport.send(request)
                guard Self.retryableStatuses.contains(response.status) else { return response }
                let reason = "HTTP \(response.status)"
                guard try await chain.retry(after: reason, logger: logger, label: label) else { return response }
            } catch let error as HTTPTransportError {
                if error == .cancelled { throw CancellationError() }
                guard try await chain.retry(after: error.description, logger: logger, label: label) else { throw error }
            }
        }
    }

    /// Sends a mutating request (a stop, a delete) without ever repeating it blindly.
    ///
    /// - A 429 means the call was refused and not applied: it is sent again after the backoff, within the attempts and
    ///   the budget.
    /// - No answer (a timeout, a dropped connection) or any 5xx may come after the provider applied the call. The
    ///   instance is then re-read with `recheck`:
    ///   - `.done`: the goal is already reached (deleted, or paused): success, and nothing is sent again;
    ///   - `.unchanged`: still in the state it had before, so the call was not applied: sent again after the backoff
    ///     (for a transport error or a retryable 5xx, within the attempts and the budget; otherwise, or when they ran
    ///     out, the 5xx response is returned or the transport error thrown);
    ///   - `.changed`: neither: the outcome is unknown, `ProviderError.outcomeUnknown` is thrown and nothing is sent
    ///     again.
    ///   If the re-read itself fails, the outcome is unknown too: `ProviderError.outcomeUnknown`, never a success.
    /// - Anything else (2xx, 4xx but 429) is returned for the caller to map.
    ///
    /// - Parameters:
    ///   - account: names the account in log lines and errors; never a secret.
    ///   - action: names the call in log lines and errors, e.g. `the stop of instance 4242`.
    ///   - recheck: re-reads the instance and says where it stands (`MutationCheck.pause` or `.delete`).
    /// - Returns: the response to map, or `.alreadyDone` when a re-read showed the goal reached.
    /// - Throws: `ProviderError.outcomeUnknown`; the last `HTTPTransportError` when the instance is unchanged and no
    ///   retry is left; `CancellationError`.
    public func sendMutation(
        _ request: HTTPRequest, through transport: any HTTPTransport, clock: any WallClock, logger: Logger,
        account: String, action: String, recheck: () async throws -> MutationCheck
    ) async throws -> MutationResult {
        var chain = RetryChain(policy: self, clock: clock)
        while true {
            try Task.checkCancellation()
            let failure: Result<HTTPResponse, HTTPTransportError>
            do {
                let response = try await transport.send(request)
                if response.status == 429 {
                    let reason = "HTTP 429 on \(action) (refused, not applied)"
                    guard try await chain.retry(after: reason, logger: logger, label: account) else {
                        return .response(response)
                    }
                    continue
                }
                guard (500..<600).contains(response.status) else { return .response(response) }
                failure = .success(response)
            } catch let error as HTTPTransportError {
                if error == .cancelled { throw CancellationError() }
                failure = .failure(error)
            }
            let reason: String
            let retryable: Bool
            switch failure {
            case .success(let response):
                reason = "HTTP \(response.status)"
                retryable = Self.retryableStatuses.contains(response.status)
            case .failure(let error):
                reason = error.description
                retryable = true
            }
            let check: MutationCheck
            do {
                check = try await recheck()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw ProviderError.outcomeUnknown(
                    account: account,
                    detail: "\(action) got no usable answer (\(reason)) and re-reading the instance failed (\(error))")
            }
            switch check {
            case .done(let state):
                logger.info(
                    "Provider \(account): \(action) got no usable answer (\(reason)), but a re-read shows it \(state); "
                        + "not sent again")
                return .alreadyDone
            case .changed(let state):
                throw ProviderError.outcomeUnknown(
                    account: account,
                    detail: "\(action) got no usable answer (\(reason)) and a re-read shows the instance \(state)")
            case .unchanged:
                let retryReason = "\(reason) on \(action), and a re-read shows it unchanged"
                guard retryable, try await chain.retry(after: retryReason, logger: logger, label: account) else {
                    switch failure {
                    case .success(let response): return .response(response)
                    case .failure(let error): throw error
                    }
                }
            }
        }
    }
}

/// What a re-read after an unanswered mutating call shows (`RetryPolicy.sendMutation`).
public enum MutationCheck: Sendable, Equatable {
    /// The goal is reached (gone after a delete, paused after a pause); the text says how, e.g. `gone`.
    case done(String)
    /// Still in the state it had before the call: the call was not applied and may be sent again.
    case unchanged
    /// Neither: the text says what the re-read shows, e.g. `transitional (actual_status=running …)`.
    case changed(String)

    /// After a pause: paused with no GPU reserved is done; the state (and GPU reservation) it had before is
    /// unchanged; anything else, gone included, is changed.
    /// - Parameters:
    ///   - before: the instance as it was when the pause was sent.
    ///   - now: the re-read instance; nil when the provider no longer has it.
    public static func pause(before: Instance, now: Instance?) -> MutationCheck {
        guard let now else { return .changed("gone") }
        if now.state == .paused && !now.gpuReserved { return .done("paused (\(now.providerStatus))") }
        if now.state == before.state && now.gpuReserved == before.gpuReserved { return .unchanged }
        return .changed("\(now.state.rawValue) (\(now.providerStatus))")
    }

    /// After a delete: gone is done; the state it had before is unchanged; anything else is changed.
    /// - Parameters:
    ///   - before: the instance as it was when the delete was sent.
    ///   - now: the re-read instance; nil when the provider no longer has it.
    public static func delete(before: Instance, now: Instance?) -> MutationCheck {
        guard let now else { return .done("gone") }
        if now.state == before.state && now.gpuReserved == before.gpuReserved { return .unchanged }
        return .changed("\(now.state.rawValue) (\(now.providerStatus))")
    }
}

/// The end of `RetryPolicy.sendMutation`.
public enum MutationResult: Sendable, Equatable {
    /// An answer to map as usual (2xx, 4xx, or the last 429 or 5xx).
    case response(HTTPResponse)
    /// No usable answer came, but a re-read showed the goal already reached; nothing was sent again.
    case alreadyDone
}

/// The attempts of one chain: counts them, and sleeps the backoff when one more is allowed.
struct RetryChain {
    let policy: RetryPolicy
    let clock: any WallClock
    let start: Date
    private(set) var attempt = 1

    init(policy: RetryPolicy, clock: any WallClock) {
        self.policy = policy
        self.clock = clock
        self.start = clock.now()
    }

    /// Logs and sleeps before the next attempt and returns true; false (after logging why, for the budget) when the
    /// attempts, the budget or the task's deadline allow none.
    /// - Throws: `CancellationError` when the task is cancelled during the sleep.
    mutating func retry(after reason: String, logger: Logger, label: String) async throws -> Bool {
        guard attempt < policy.maxAttempts else { return false }
        let delay = policy.jitteredDelay(beforeAttempt: attempt + 1)
        let now = clock.now()
        let wakeUp = now.addingTimeInterval(delay)
        if let budget = policy.budget, wakeUp.timeIntervalSince(start) > budget {
            logger.warning(
                "Provider retry \(label): \(reason); not retried, waiting \(Self.seconds(delay)) more would pass the "
                    + "time budget of \(Self.seconds(budget))")
            return false
        }
        if let deadline = RetryPolicy.deadline, wakeUp > deadline {
            logger.warning(
                "Provider retry \(label): \(reason); not retried, waiting \(Self.seconds(delay)) more would pass the "
                    + "deadline set for this cycle")
            return false
        }
        attempt += 1
        logger.warning("Provider retry \(label): \(reason), attempt \(attempt) of \(policy.maxAttempts)")
        try await clock.sleep(seconds: delay)
        return true
    }

    static func seconds(_ value: Double) -> String {
        String(format: "%.1f s", value)
    }
}
