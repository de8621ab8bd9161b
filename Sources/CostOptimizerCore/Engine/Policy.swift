/// The rules the decision engine applies, as values (from `PAUSE_*`, `DELETE_*`, `MIN_*`, `PROTECT*`).
public struct Policy: Equatable, Sendable {
    /// A sample is idle when the instance's utilisation (%) is below this.
    public var pauseThresholdGPU: Double
    /// The idle streak's first sample must be at least this old (seconds) before a pause.
    public var pauseWindow: Double
    /// The idle streak must hold at least this many samples before a pause.
    public var minSamples: Int
    /// Delete once the idle clock has run for longer than this (seconds).
    public var deleteThreshold: Double
    /// Never delete an instance younger than this (seconds), by the provider's creation time.
    public var minInstanceAge: Double
    /// Ids or names never paused or deleted.
    public var protectedInstances: Set<String>
    /// An instance whose label, name or tag contains this word is protected. Empty disables the label rule.
    public var protectLabel: String
    /// After this many cycles running with no successful sample, notify `ssh_unreachable` once.
    public var unreachableNotifyAfter: Int
    /// A gap between successful samples longer than this (seconds) ends the idle streak: no evidence, no idleness.
    /// Config sets it to the larger of the pause window and three check intervals, so a window of 0 still works.
    public var sampleGapLimit: Double
    /// How long samples are kept in the state file for `status` (seconds).
    public var sampleRetention: Double
    /// `delete_notice` goes out when the idle clock passes `deleteThreshold − deleteNotice` (seconds), and a delete
    /// waits until a notice for the current idle clock is at least this old. 0 sends no notice; a value above the
    /// threshold counts as the threshold (`DELETE_NOTICE_HOURS`).
    public var deleteNotice: Double
    /// A running managed instance with no successful sample for this long (seconds) is unmonitored.
    public var unmonitoredAfter: Double
    /// While an instance stays unmonitored, `unmonitored` is notified again after this long (seconds).
    public var unmonitoredRepeat: Double

    public init(
        pauseThresholdGPU: Double = 10, pauseWindow: Double = 30 * 60, minSamples: Int = 5,
        deleteThreshold: Double = 24 * 3600, minInstanceAge: Double = 3600, protectedInstances: Set<String> = [],
        protectLabel: String = "keep", unreachableNotifyAfter: Int = 3,
        sampleGapLimit: Double = 30 * 60, sampleRetention: Double = 3600, deleteNotice: Double = 2 * 3600,
        unmonitoredAfter: Double = 3600, unmonitoredRepeat: Double = 24 * 3600
    ) {
        self.pauseThresholdGPU = pauseThresholdGPU
        self.pauseWindow = pauseWindow
        self.minSamples = minSamples
        self.deleteThreshold = deleteThreshold
        self.minInstanceAge = minInstanceAge
        self.protectedInstances = protectedInstances
        self.protectLabel = protectLabel
        self.unreachableNotifyAfter = unreachableNotifyAfter
        self.sampleGapLimit = sampleGapLimit
        self.sampleRetention = sampleRetention
        self.deleteNotice = deleteNotice
        self.unmonitoredAfter = unmonitoredAfter
        self.unmonitoredRepeat = unmonitoredRepeat
    }

    /// The notice period the engine applies (seconds): `deleteNotice`, at most `deleteThreshold`, never negative.
    public var effectiveDeleteNotice: Double { max(0, min(deleteNotice, deleteThreshold)) }

    /// The defaults of the daemon issue: 10 %, 30 min, 5 samples, 24 h, 1 h, label `keep`; notice 2 h before a delete.
    public static let defaults = Policy()

    /// Why an instance is protected, or nil when it is not.
    public func protectionReason(for instance: Instance) -> String? {
        if protectedInstances.contains(instance.key.id) {
            return "protected: \(instance.key.id) is in PROTECTED_INSTANCES"
        }
        if protectedInstances.contains(instance.name) {
            return "protected: \(instance.name) is in PROTECTED_INSTANCES"
        }
        let word = protectLabel.lowercased()
        if !word.isEmpty {
            for label in instance.labels + [instance.name] where label.lowercased().contains(word) {
                return "protected: label \"\(label)\" holds \(protectLabel)"
            }
        }
        return nil
    }
}

extension Policy {
    /// How a person stops the deletion of an instance, for `delete_notice`: the protect label, `PROTECTED_INSTANCES`,
    /// or using it again.
    public func howToKeep(_ instance: Instance) -> String {
        var ways: [String] = []
        if !protectLabel.isEmpty { ways.append("add \"\(protectLabel)\" to its name or labels") }
        ways.append("add \(instance.key.id) to PROTECTED_INSTANCES (then restart the daemon)")
        ways.append(instance.state == .running ? "use its GPU" : "start it and use its GPU")
        return "to keep it, " + ways.dropLast().joined(separator: ", ") + " or " + ways.last!
    }
}
