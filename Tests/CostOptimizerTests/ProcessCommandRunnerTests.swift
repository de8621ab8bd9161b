import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real child processes, as swift-subprocess tests its own.
@Suite("ProcessCommandRunner")
struct ProcessCommandRunnerTests {
    let runner = ProcessCommandRunner()
    let path = ["PATH": "/usr/bin:/bin"]

    func shell(_ script: String, timeout: Double = 30, outputLimit: Int = 1 << 20) -> Command {
        Command(
            executable: "/bin/sh", arguments: ["-c", script], environment: path, timeout: timeout,
            outputLimit: outputLimit)
    }

    /// A fresh directory for pid files.
    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Waits until the file holds a pid.
    func pid(in file: URL) async throws -> pid_t {
        for _ in 0..<500 {
            if let text = try? String(contentsOf: file, encoding: .utf8), let pid = pid_t(text.trimmed) { return pid }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CommandError.launchFailed(executable: "sh", detail: "no pid written to \(file.path)")
    }

    /// True while the process exists, zombie or not (our own children must be reaped, not just dead).
    static func exists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    /// True while the process runs (a zombie of someone else's does not count).
    static func running(_ pid: pid_t) -> Bool {
        guard exists(pid), let file = FileHandle(forReadingAtPath: "/proc/\(pid)/stat") else { return false }
        defer { try? file.close() }
        return !String(decoding: file.readDataToEndOfFile(), as: UTF8.self).contains(") Z ")
    }

    @Test("captures exit status, stdout and stderr")
    func captures() async throws {
        let result = try await runner.run(shell("echo out; echo err >&2; exit 3"))
        #expect(result == CommandResult(status: 3, stdout: Data("out\n".utf8), stderr: Data("err\n".utf8)))
    }

    @Test("sh -c 'exit 9' gives status 9")
    func exitNine() async throws {
        let result = try await runner.run(Command(executable: "/bin/sh", arguments: ["-c", "exit 9"]))
        #expect(result.status == 9)
        #expect(result.signaled == false)
    }

    @Test("a bare program name is found on the command's PATH, and the environment is exactly the command's")
    func pathAndEnvironment() async throws {
        let result = try await runner.run(
            Command(executable: "env", arguments: [], environment: ["PATH": "/usr/bin:/bin", "ONLY": "this"]))
        let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").sorted()
        #expect(lines == ["ONLY=this", "PATH=/usr/bin:/bin"])
        let empty = try await runner.run(Command(executable: "/usr/bin/env", arguments: []))
        #expect(empty.stdout.isEmpty)
    }

    @Test("the child starts with no signal blocked, so SIGTERM stops it")
    func signalMask() async throws {
        let result = try await runner.run(Command(executable: "/bin/grep", arguments: ["SigBlk", "/proc/self/status"]))
        #expect(String(decoding: result.stdout, as: UTF8.self).trimmed == "SigBlk:\t0000000000000000")
    }

    @Test("a child killed by a signal reports signaled with the signal number")
    func signaled() async throws {
        let result = try await runner.run(shell("kill -9 $$"))
        #expect(result.signaled)
        #expect(result.status == SIGKILL)
    }

    @Test("the deadline kills the child: timedOut within a few seconds and the pid is gone")
    func timeout() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pid")
        let started = ContinuousClock.now
        await #expect(throws: CommandError.timedOut(seconds: 1)) {
            try await runner.run(shell("echo $$ > '\(pidFile.path)'; exec sleep 120", timeout: 1))
        }
        #expect(ContinuousClock.now - started < .seconds(30))  // far below the 120 s child
        let pid = try await pid(in: pidFile)
        #expect(!Self.exists(pid))
    }

    @Test("a child that ignores SIGTERM is killed after the grace period")
    func ignoresTerm() async throws {
        let started = ContinuousClock.now
        await #expect(throws: CommandError.timedOut(seconds: 0.5)) {
            try await runner.run(shell("trap '' TERM; while :; do sleep 0.1; done", timeout: 0.5))
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .seconds(2.4) && elapsed < .seconds(60))  // the grace period passed, then SIGKILL
    }

    @Test("output over the limit kills the child and throws outputTooLarge, without hanging")
    func outputCap() async throws {
        let started = ContinuousClock.now
        await #expect(throws: CommandError.outputTooLarge(limit: 1_000_000)) {
            try await runner.run(
                Command(
                    executable: "head", arguments: ["-c", "10000000", "/dev/zero"], environment: path, timeout: 30,
                    outputLimit: 1_000_000))
        }
        #expect(ContinuousClock.now - started < .seconds(25))  // below the 30 s deadline: the cap acted
        await #expect(throws: CommandError.outputTooLarge(limit: 1000)) {
            try await runner.run(shell("head -c 2000 /dev/zero >&2; sleep 30", outputLimit: 1000))
        }
    }

    @Test("large output below the limit on both pipes is read in full, without deadlock")
    func largeOutput() async throws {
        let result = try await runner.run(
            shell("head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2; head -c 300000 /dev/zero"))
        #expect(result.status == 0)
        #expect(result.stdout.count == 600_000)
        #expect(result.stderr.count == 300_000)
    }

    @Test("forty concurrent runs each get their own output and status")
    func concurrentRuns() async throws {
        let runner = self.runner
        let commands = (0..<40).map { shell("head -c 70000 /dev/zero; echo \($0); exit \($0 % 7)") }
        let results = try await withThrowingTaskGroup(of: (Int, CommandResult).self) { group in
            for (index, command) in commands.enumerated() {
                group.addTask { (index, try await runner.run(command)) }
            }
            return try await group.reduce(into: [Int: CommandResult]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<40 {
            let result = try #require(results[index])
            #expect(result.status == Int32(index % 7))
            let tail = Data("\(index)\n".utf8)
            #expect(result.stdout.count == 70_000 + tail.count)
            #expect(result.stdout.suffix(tail.count) == tail)
        }
    }

    @Test("cancelling the task kills the child and throws cancelled")
    func cancellation() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pid")
        let runner = self.runner
        let command = shell("echo $$ > '\(pidFile.path)'; exec sleep 120")
        let task = Task { try await runner.run(command) }
        let pid = try await pid(in: pidFile)
        #expect(Self.exists(pid))
        let started = ContinuousClock.now
        task.cancel()
        await #expect(throws: CommandError.cancelled) { try await task.value }
        #expect(ContinuousClock.now - started < .seconds(30))  // far below the 120 s child
        #expect(!Self.exists(pid))
    }

    @Test("a task cancelled before the run starts no process")
    func cancelledBeforeStart() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let marker = dir.appendingPathComponent("ran")
        let runner = self.runner
        let command = shell("touch '\(marker.path)'")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await runner.run(command)
        }
        await #expect(throws: CommandError.cancelled) { try await task.value }
        #expect(!FileManager.default.fileExists(atPath: marker.path))
    }

    @Test("a missing program is launchFailed", arguments: ["/nonexistent/ssh", "no-such-program-7d1f", "", "/tmp"])
    func missingProgram(executable: String) async throws {
        await #expect {
            try await runner.run(Command(executable: executable, arguments: [], environment: path))
        } throws: { error in
            guard case .launchFailed(let name, _) = error as? CommandError else { return false }
            return name == executable
        }
    }

    @Test("a grandchild holding the pipes delays neither the result nor outlives it")
    func grandchild() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pid")
        let started = ContinuousClock.now
        let result = try await runner.run(shell("sleep 120 & echo $! > '\(pidFile.path)'; echo done; exit 4"))
        #expect(ContinuousClock.now - started < .seconds(30))  // far below the 120 s grandchild
        #expect(result.status == 4)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "done\n")
        let pid = try await pid(in: pidFile)
        // Killed by then; the kernel may take a moment to finish its exit.
        var stopped = false
        for _ in 0..<200 where !stopped {
            stopped = !Self.running(pid)
            if !stopped { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(stopped)
    }
}
