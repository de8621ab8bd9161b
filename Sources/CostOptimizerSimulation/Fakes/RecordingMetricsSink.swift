import CostOptimizer
import Synchronization

/// Records every metrics text published, in order.
public final class RecordingMetricsSink: MetricsSink, Sendable {
    private let texts = Mutex<[String]>([])

    public init() {}

    public func publish(_ text: String) throws {
        texts.withLock { $0.append(text) }
    }

    /// Every text published.
    public var published: [String] { texts.withLock { $0 } }
}
