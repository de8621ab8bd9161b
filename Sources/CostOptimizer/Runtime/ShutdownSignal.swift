import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Set by the SIGTERM/SIGINT handler. An atomic store is async-signal-safe.
private let signalArrived = Atomic<Bool>(false)

/// Set once SIGTERM or SIGINT arrives: the daemon starts no new action, finishes the one in flight, saves and exits.
public final class ShutdownSignal: Sendable {
    private let requested = Atomic<Bool>(false)
    private let listening = Atomic<Bool>(false)

    public init() {}

    /// True once a stop was requested.
    public var isRequested: Bool {
        requested.load(ordering: .relaxed) || (listening.load(ordering: .relaxed) && signalArrived.load(ordering: .relaxed))
    }

    /// Requests a stop (what a signal does; tests call it directly).
    public func request() { requested.store(true, ordering: .relaxed) }

    /// Catches SIGTERM and SIGINT with a handler that only sets a flag. Unlike `SIG_IGN`, a handler is reset to the
    /// default in every child at exec, so the ssh children still die on their own SIGTERM.
    public func installHandlers() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in signalArrived.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
        listening.store(true, ordering: .relaxed)
    }

    /// Returns when a stop is requested or the task is cancelled.
    public func wait() async {
        while !isRequested && !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }
}
