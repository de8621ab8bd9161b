@testable import CostOptimizer
import Foundation
import Synchronization
import Testing

/// Counts the `Process` objects freed.
final class ReleaseCounter: Sendable {
    let freed = Atomic<Int>(0)
}

/// A `Process` that reports its deinit.
final class CountingProcess: Process, @unchecked Sendable {
    // @unchecked: Process itself is not Sendable; the counter is.
    let counter: ReleaseCounter

    init(counter: ReleaseCounter) {
        self.counter = counter
        super.init()
    }

    deinit { counter.freed.add(1, ordering: .relaxed) }
}

@Suite("ProcessCommandRunner frees each Process")
struct ProcessReleaseTests {
    @Test("every Process the runner started is freed once its child ended: ok, failed and timed-out runs alike")
    func processesAreFreed() async throws {
        let counter = ReleaseCounter()
        var runner = ProcessCommandRunner(gracePeriod: 0.2)
        runner.makeProcess = { CountingProcess(counter: counter) }
        let environment = ["PATH": "/usr/bin:/bin"]
        for _ in 0..<10 {
            _ = try await runner.run(Command(executable: "/bin/echo", arguments: ["x"], environment: environment))
        }
        _ = try await runner.run(Command(executable: "/bin/sh", arguments: ["-c", "exit 3"], environment: environment))
        await #expect(throws: CommandError.timedOut(seconds: 0.1)) {
            try await runner.run(
                Command(executable: "/bin/sleep", arguments: ["30"], environment: environment, timeout: 0.1))
        }
        // The runner lets go of each Process just after it returned the result, once Process has seen the exit
        // (which a long-lived child of another test, such as sshd, can delay: Process has one reaper).
        for _ in 0..<6000 where counter.freed.load(ordering: .relaxed) < 12 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(counter.freed.load(ordering: .relaxed) == 12)
    }
}
