import Foundation

/// The time: read it and wait on it. The engine never reads a clock; the runtime passes `now` in.
///
/// A fake moves time by hand, and its `sleep` returns at once after advancing.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
    /// Waits this many seconds.
    /// - Throws: `CancellationError` when the task is cancelled.
    func sleep(seconds: Double) async throws
}

/// The system clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1_000_000_000))
    }
}
