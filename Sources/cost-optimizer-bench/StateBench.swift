import CostOptimizer
import CostOptimizerCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The state file at fleet scale: `FileStateStore.save` (every cycle) and `load` (at start) of a state holding
/// `samples` samples per instance, timed, with the memory each takes on top of what the process held (its peak
/// resident set, reset before each step through `/proc/self/clear_refs`).
struct StateBench {
    struct Result {
        var instances: Int
        var bytes: Int
        var saveSeconds: Double
        var savePeakMiB: Double
        var loadSeconds: Double
        var loadPeakMiB: Double
    }

    static func run(instances: Int, samples: Int) throws -> Result {
        let directory = try makeTemporaryDirectory("cost-optimizer-bench-state")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        var state = FleetState()
        let now = Date().timeIntervalSince1970
        for index in 0..<instances {
            var record = InstanceRecord(firstSeen: Date(timeIntervalSince1970: now - 6 * 3600), state: .running)
            record.lastSeen = Date(timeIntervalSince1970: now)
            record.samples = (0..<samples).reversed().map {
                StoredSample(at: Date(timeIntervalSince1970: now - Double($0) * 60 + 0.123456), utilization: 94)
            }
            record.lastSampleAt = Date(timeIntervalSince1970: now)
            record.lastStartedAt = Date(timeIntervalSince1970: now - 5 * 3600)
            state.instances[index % 2 == 0 ? "vast/\(10_000_000 + index)" : "gcp/\(7_300_000_000_000_000_000 + UInt64(index))"] = record
        }
        func measured<T>(_ body: () throws -> T) rethrows -> (T, Double, Double) {
            let base = residentKiB()
            resetPeak()
            let started = BenchClock.now
            let value = try body()
            let seconds = BenchClock.now - started
            return (value, seconds, Double(max(0, peakKiB() - base)) / 1024)
        }
        let (_, saveSeconds, savePeak) = try measured { try store.save(state) }
        let bytes = FleetBench.size(store.statePath)
        let (loaded, loadSeconds, loadPeak) = try measured { try store.load() }
        guard loaded == state else { throw BenchError("the state read back differs from the one saved") }
        return Result(
            instances: instances, bytes: bytes, saveSeconds: saveSeconds, savePeakMiB: savePeak, loadSeconds: loadSeconds,
            loadPeakMiB: loadPeak)
    }

    static func residentKiB() -> Int { Memory.status(pid: getpid(), "VmRSS") ?? 0 }
    static func peakKiB() -> Int { Memory.status(pid: getpid(), "VmHWM") ?? 0 }

    /// Resets VmHWM to the current resident set (Linux 4.0 and later).
    static func resetPeak() {
        _ = try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }
}
