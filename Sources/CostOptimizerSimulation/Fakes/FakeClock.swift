import CostOptimizer
import Foundation
import Synchronization

/// A `WallClock` moved by hand: `sleep` returns at once after advancing the time, and every sleep is recorded.
public final class FakeClock: WallClock, Sendable {
    private struct State {
        var now: Date
        var sleeps: [Double] = []
    }

    private let state: Mutex<State>

    /// Starts at `now` (by default 2023-11-14 22:13:20 UTC, a fixed instant).
    public init(now: Date = Date(timeIntervalSince1970: 1_700_000_000)) {
        state = Mutex(State(now: now))
    }

    /// The fake current time.
    public func now() -> Date { state.withLock { $0.now } }

    /// Moves the time forward (or back, with a negative value).
    public func advance(by seconds: Double) {
        state.withLock { $0.now += seconds }
    }

    /// Records the sleep, advances the time by it and returns at once.
    /// - Throws: `CancellationError` when the task is cancelled.
    public func sleep(seconds: Double) async throws {
        try Task.checkCancellation()
        state.withLock {
            $0.sleeps.append(seconds)
            $0.now += max(0, seconds)
        }
    }

    /// Every `sleep` so far, in order, in seconds.
    public var sleeps: [Double] { state.withLock { $0.sleeps } }
}
