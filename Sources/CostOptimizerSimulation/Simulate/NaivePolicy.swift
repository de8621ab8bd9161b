import Foundation

/// The rule many scripts use, for comparison (`--compare naive`), run on the same traces, the same sample times and the
/// same restart mechanics as the daemon, without its engine:
///
/// - every `CHECK_INTERVAL`, read the point `utilization.gpu` of each GPU and take the **mean over the GPUs** (what a
///   script averaging `nvidia-smi --query-gpu=utilization.gpu` does);
/// - a sample below `PAUSE_THRESHOLD_GPU`, or a missing one (ssh failed), counts as idle; a sample at or above it
///   resets the count;
/// - pause after `samplesToPause` idle samples in a row (the count starts over after a pause);
/// - delete `deleteAfter` after the last active sample, or after creation (or the script's start, when later) when
///   there was none, paused or not.
///
/// It knows nothing of protection labels, instance age or notices.
public struct NaivePolicy: Sendable {
    public var samplesToPause = 5
    public var deleteAfter: Double = 24 * 3600

    public init() {}

    /// Runs the rule over a scenario; one history per machine.
    public func run(_ scenario: SimulationScenario, settings: SimulationSettings) -> [MachineHistory] {
        scenario.machines.map { machine in
            var history = MachineHistory()
            var idleCount = 0
            var lastActive: Double? = nil
            var restartAt: Double? = nil
            for t in settings.cycleTimes(for: scenario) {
                if history.status == .deleted { break }
                if let restart = restartAt, restart <= t {
                    history.restarted(at: restart)
                    restartAt = nil
                }
                if history.status == .running {
                    let reading: Double? =
                        machine.sshFails(at: t)
                        ? nil
                        : machine.trace.gpus.map { $0.value(at: t) }.reduce(0, +) / Double(max(1, machine.trace.gpus.count))
                    if let reading, reading >= settings.threshold {
                        idleCount = 0
                        lastActive = t
                    } else {
                        idleCount += 1
                    }
                    if idleCount >= samplesToPause {
                        history.paused(at: t)
                        idleCount = 0
                        restartAt = machine.trace.nextBusy(threshold: settings.threshold, from: t)
                    }
                }
                // A script knows nothing of the time before it started.
                if t - (lastActive ?? max(machine.createdAt, 0)) >= deleteAfter {
                    history.deleted(at: t)
                    restartAt = nil
                }
            }
            if let restart = restartAt, restart < scenario.duration, history.status == .paused {
                history.restarted(at: restart)
            }
            return history
        }
    }
}
