import Foundation
import Synchronization

/// Spaces the starts of requests to one endpoint at least `interval` seconds apart, sleeping through the `WallClock`.
///
/// Each caller reserves the next free start time under a lock and then sleeps until it, so concurrent callers queue
/// up instead of all waking at once. The first request never waits, and a request that comes after the interval has
/// passed does not wait either. The pacer is a reference: every copy of a provider value shares it.
final class RequestPacer: Sendable {
    /// Seconds between two starts; 0 turns pacing off.
    let interval: Double
    /// The earliest start of the next request.
    private let next = Mutex<Date?>(nil)

    init(interval: Double) {
        self.interval = interval.isFinite ? max(0, interval) : 0
    }

    /// Waits for this request's turn.
    /// - Throws: `CancellationError` when the task is cancelled while waiting.
    func wait(clock: any WallClock) async throws {
        guard interval > 0 else { return }
        let now = clock.now()
        let delay = next.withLock { next -> Double in
            let start = max(now, next ?? now)
            next = start.addingTimeInterval(interval)
            return start.timeIntervalSince(now)
        }
        if delay > 0 { try await clock.sleep(seconds: delay) }
    }
}

/// A transport that waits for its pacer before every attempt, so retries are paced too.
struct PacedTransport: HTTPTransport {
    let base: any HTTPTransport
    let pacer: RequestPacer
    let clock: any WallClock

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await pacer.wait(clock: clock)
        return try await base.send(request)
    }
}
