import CostOptimizer
import Synchronization

/// Records every notification.
public final class RecordingNotifier: Notifier, Sendable {
    private let recorded = Mutex<[NotificationEvent]>([])

    public init() {}

    public func notify(_ event: NotificationEvent) async { recorded.withLock { $0.append(event) } }

    /// Every event, in order.
    public var events: [NotificationEvent] { recorded.withLock { $0 } }
}
