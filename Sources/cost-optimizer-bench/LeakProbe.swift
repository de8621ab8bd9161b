import CostOptimizer
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Resident memory while the daemon's process runner starts many short children, 16 at a time, as sampling does:
/// growth that keeps up with the count is memory not given back.
enum LeakProbe {
    static func run(runs: Int, executable: String, arguments: [String]) async -> [(Int, Double)] {
        var points: [(Int, Double)] = []
        let runner = ProcessCommandRunner()
        var done = 0
        while done < runs {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        _ = try? await runner.run(
                            Command(executable: executable, arguments: arguments, environment: ["PATH": "/usr/bin:/bin"]))
                    }
                }
            }
            done += 16
            if done % 480 == 0 { points.append((done, Double(Memory.status(pid: getpid(), "VmRSS") ?? 0) / 1024)) }
        }
        return points
    }
}
