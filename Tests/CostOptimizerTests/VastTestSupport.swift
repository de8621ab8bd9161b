import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

/// A log sink that keeps every line, for assertions on what was logged.
final class VastRecordingLogSink: LogSink {
    private let lines = Mutex<[String]>([])

    func write(level: LogLevel, message: String) {
        lines.withLock { $0.append("\(level.rawValue) \(message)") }
    }

    var recorded: [String] { lines.withLock { $0 } }
}

/// Shared fixtures for the Vast tests.
enum VastFixture {
    /// A key shaped like a real one, so a leak would be visible.
    static let apiKey = "vk_3f9a2c7d1e8b4a6f0c5d2e8b9a1f3c7d5e0b2a4c6d8e"

    /// A vast instance with just enough fields to be acted on.
    static func instance(id: String, provider: ProviderName = .vast) -> Instance {
        Instance(
            key: InstanceKey(provider: provider, id: id), name: id, state: .running,
            providerStatus: "actual_status=running intended_status=running cur_state=running")
    }

    /// `count` running instances with ids 1001, 1002, …
    static func fleet(_ count: Int) -> [SimulatedVastInstance] {
        (0..<count).map { SimulatedVastInstance(id: 1001 + $0, label: "job-\($0)") }
    }
}

extension HTTPResponse {
    /// A response with a UTF-8 body, for scripting fakes.
    static func vastText(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, body: Data(body.utf8))
    }
}
