import Foundation

/// Receives the Prometheus text of each cycle (`METRICS_FILE`).
///
/// The real one replaces a node_exporter textfile atomically; a fake records every text.
public protocol MetricsSink: Sendable {
    /// Publishes `text`, replacing what was published before.
    /// - Throws: an error with a sentence naming the path and what to check; the daemon logs it and goes on.
    func publish(_ text: String) throws
}
