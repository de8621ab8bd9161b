import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

/// A log sink that keeps every line, for assertions on what was logged.
final class TensorDockRecordingLogSink: LogSink {
    private let lines = Mutex<[String]>([])

    func write(level: LogLevel, message: String) {
        lines.withLock { $0.append("\(level.rawValue) \(message)") }
    }

    var recorded: [String] { lines.withLock { $0 } }
}

/// Shared fixtures for the TensorDock tests.
enum TensorDockFixture {
    /// Secrets shaped like real ones, so a leak would be visible.
    static let bearerToken = "tdv2_Zk3q9XcP7mWn2Lr8Ts5Vb1Yh4Jd6Gf0Ae"
    static let apiKey = "5c0f9a7e-2b4d-4e61-8f3a-9d7c1b2e4a60"
    static let apiToken = "tdtok_Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVb"
    static let secrets = [bearerToken, apiKey, apiToken]

    static let v2Base = URL(string: "https://dashboard.tensordock.com")!
    static let v0Base = URL(string: "https://marketplace.tensordock.com")!

    static let idA = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    static let idB = "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
    static let idC = "2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f"

    /// Settings for v2 only, v0 only, or both (v2 is then used).
    static func settings(
        v2: Bool = true, v0: Bool = false, apiURL: URL = v2Base, v0APIURL: URL = v0Base, sshUser: String = "user"
    ) -> TensorDockSettings {
        TensorDockSettings(
            apiKey: v0 ? Secret(apiKey) : nil, apiToken: v0 ? Secret(apiToken) : nil,
            bearerToken: v2 ? Secret(bearerToken) : nil, apiURL: apiURL, v0APIURL: v0APIURL, sshUser: sshUser)
    }

    /// A simulator that accepts every fixture credential.
    static func simulator(
        _ vms: [SimulatedTensorDockVM] = [], envelope: TensorDockSimulator.V2Envelope = .dataInstances,
        attributes: TensorDockSimulator.V2Attributes = .nested, v2StopReleasesGPU: Bool = true
    ) -> TensorDockSimulator {
        let simulator = TensorDockSimulator(
            bearerToken: bearerToken, apiKey: apiKey, apiToken: apiToken, v2Envelope: envelope,
            v2Attributes: attributes, v2StopReleasesGPU: v2StopReleasesGPU)
        simulator.add(contentsOf: vms)
        return simulator
    }

    /// A TensorDock instance with just enough fields to be acted on.
    static func instance(id: String, provider: ProviderName = .tensordock, gpuReserved: Bool = false) -> Instance {
        Instance(
            key: InstanceKey(provider: provider, id: id), name: id, state: gpuReserved ? .paused : .running,
            providerStatus: gpuReserved ? "status=Stopped" : "status=Running", gpuReserved: gpuReserved)
    }

    /// `count` running VMs with ids `00000000-0000-4000-8000-00000000000N`.
    static func fleet(_ count: Int) -> [SimulatedTensorDockVM] {
        (0..<count).map { index in
            SimulatedTensorDockVM(
                id: String(format: "00000000-0000-4000-8000-%012d", index + 1), name: "job-\(index)",
                sshPort: 20_000 + index)
        }
    }
}

extension HTTPResponse {
    /// A response with a UTF-8 body, for scripting fakes.
    static func tensorDockText(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, body: Data(body.utf8))
    }
}

/// True when `a` and `b` differ by less than a microsecond (pacing delays come from `Date` arithmetic).
func tensorDockClose(_ a: [Double], _ b: [Double]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 }
}

/// A clock whose time never moves: `sleep` records the delay and returns at once, so concurrent callers all see the
/// same `now` and the pacing reservations are deterministic.
final class TensorDockFrozenClock: WallClock {
    private let recorded = Mutex<[Double]>([])

    func now() -> Date { Date(timeIntervalSince1970: 1_700_000_000) }

    func sleep(seconds: Double) async throws {
        try Task.checkCancellation()
        recorded.withLock { $0.append(seconds) }
    }

    var sleeps: [Double] { recorded.withLock { $0 } }
}
