import CostOptimizer
import Synchronization

/// Records every `sd_notify` message, for tests of what the daemon tells systemd and when.
public final class RecordingServiceNotifier: ServiceNotifier, Sendable {
    private let recorded = Mutex<[[String]]>([])
    /// The watchdog timeout the daemon is told about, in seconds.
    public let watchdogInterval: Double?

    /// - Parameter watchdogInterval: what `WATCHDOG_USEC` would have said; nil for no watchdog.
    public init(watchdogInterval: Double? = nil) { self.watchdogInterval = watchdogInterval }

    /// Records the fields as the message; always delivered.
    @discardableResult
    public func send(_ fields: [String]) -> Bool {
        recorded.withLock { $0.append(fields.map(ServiceNotifierLimits.sanitize)) }
        return true
    }

    /// Every message, in order, each as its fields.
    public var messages: [[String]] { recorded.withLock { $0 } }
    /// Every field of every message, in order (e.g. `["READY=1", "STATUS=…", "WATCHDOG=1"]`).
    public var fields: [String] { messages.flatMap { $0 } }
}
