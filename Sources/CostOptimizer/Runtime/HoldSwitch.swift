import Foundation

/// The kill switch: while `STATE_DIR/hold` or `/etc/cost-optimizer/hold` exists, the daemon observes and decides but
/// acts on nothing, and says so in every cycle summary.
public struct HoldSwitch: Sendable {
    /// The files whose presence holds every action.
    public let paths: [String]

    public init(stateDirectory: String, systemPath: String = "/etc/cost-optimizer/hold") {
        paths = [stateDirectory + "/hold", systemPath]
    }

    /// The first hold file present, or nil.
    public func activePath() -> String? {
        paths.first { FileManager.default.fileExists(atPath: $0) }
    }
}
