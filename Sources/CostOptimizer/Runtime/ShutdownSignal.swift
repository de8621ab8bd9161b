import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set once SIGTERM or SIGINT arrives: the daemon starts no new action, finishes the one in flight, saves and exits.
public final class ShutdownSignal: Sendable {
    private let requested = Mutex(false)
    /// Keeps the signal sources alive. Written only by `installHandlers`, once, at start-up on the main task.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    public init() {}

    /// True once a stop was requested.
    public var isRequested: Bool { requested.withLock { $0 } }

    /// Requests a stop (what the signal handlers call; tests call it directly).
    public func request() { requested.withLock { $0 = true } }

    /// Routes SIGTERM and SIGINT here instead of killing the process.
    public func installHandlers() {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.request() }
            source.resume()
            ShutdownSignal.sources.append(source)
        }
    }

    /// Returns when a stop is requested or the task is cancelled.
    public func wait() async {
        while !isRequested && !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }
}
