import CostOptimizer
import Foundation
import Synchronization

/// An accelerated clock: `sleep` returns at once after moving simulated time forward, so a simulated day of
/// cycles runs in seconds. Used by `demo`.
public final class SimulatedClock: WallClock, Sendable {
    private let current: Mutex<Date>
    /// Where simulated time started.
    public let start: Date

    public init(start: Date) {
        self.start = start
        self.current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    public func sleep(seconds: Double) async throws {
        try Task.checkCancellation()
        advance(by: seconds)
        await Task.yield()
    }

    /// Moves simulated time forward.
    public func advance(by seconds: Double) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }

    /// `+HH:MM` since the start, for log lines.
    public func elapsedStamp(_ date: Date? = nil) -> String {
        let seconds = Int((date ?? now()).timeIntervalSince(start))
        return String(format: "+%02d:%02d", seconds / 3600, (seconds % 3600) / 60)
    }
}
