import CostOptimizer
import CostOptimizerCore
import Foundation
import Synchronization

/// A `CommandRunner` that starts nothing: it records every command and answers from a queue of scripted results,
/// then from an answer function (for example "every host answers idle" or "host X fails").
///
/// ```swift
/// let runner = FakeCommandRunner(answer: FakeCommandRunner.byHost(
///     ["10.0.0.2": .success(.sshFailure())], otherwise: .success(.probe([.idle]))))
/// ```
public final class FakeCommandRunner: CommandRunner, Sendable {
    /// Answers one command.
    public typealias Answer = @Sendable (Command) -> Result<CommandResult, CommandError>

    private struct State {
        var commands: [Command] = []
        var queue: [Result<CommandResult, CommandError>] = []
        var answer: Answer
        var inFlight = 0
        var maxInFlight = 0
    }

    private let state: Mutex<State>
    private let delay: Duration?

    /// - Parameters:
    ///   - queue: results handed out first, one per command, in order.
    ///   - delay: how long each run takes (a cancelled run throws `CommandError.cancelled`); nil answers at once.
    ///   - answer: answers each command once the queue is empty; by default every command fails to launch, so an
    ///     unscripted call never looks like an idle GPU.
    public init(
        queue: [Result<CommandResult, CommandError>] = [], delay: Duration? = nil,
        answer: @escaping Answer = FakeCommandRunner.unscripted
    ) {
        state = Mutex(State(queue: queue, answer: answer))
        self.delay = delay
    }

    /// Every command run so far, in the order the runs started.
    public var commands: [Command] { state.withLock { $0.commands } }

    /// The most runs that were in progress at once.
    public var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    /// Adds results to hand out before the answer function is asked.
    public func enqueue(_ results: Result<CommandResult, CommandError>...) {
        state.withLock { $0.queue += results }
    }

    /// Replaces the answer function (for example to make every host fail from now on).
    public func setHandler(_ answer: @escaping Answer) {
        state.withLock { $0.answer = answer }
    }

    /// Records the command and returns its scripted result, after `delay` when one was given.
    public func run(_ command: Command) async throws -> CommandResult {
        let (queued, answer) = state.withLock { state in
            state.commands.append(command)
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return (state.queue.isEmpty ? nil : state.queue.removeFirst(), state.answer)
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        let result = queued ?? answer(command)
        if let delay {
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw CommandError.cancelled
            }
        }
        return try result.get()
    }

    // MARK: Answers

    /// The default answer: the command fails to launch.
    public static let unscripted: Answer = { command in
        .failure(.launchFailed(executable: command.executable, detail: "no answer scripted in FakeCommandRunner"))
    }

    /// Gives every command the same result.
    public static func everyHost(_ result: Result<CommandResult, CommandError>) -> Answer {
        { _ in result }
    }

    /// Gives each ssh destination host its own result, and `otherwise` to the rest.
    public static func byHost(
        _ results: [String: Result<CommandResult, CommandError>], otherwise: Result<CommandResult, CommandError>
    ) -> Answer {
        { command in host(of: command).flatMap { results[$0] } ?? otherwise }
    }

    /// The host of an ssh command's destination: the argument after `--`, without `user@`.
    public static func host(of command: Command) -> String? {
        guard let separator = command.arguments.firstIndex(of: "--"),
            separator + 1 < command.arguments.count
        else { return nil }
        let destination = command.arguments[separator + 1]
        return destination.split(separator: "@", maxSplits: 1).last.map(String.init)
    }
}

extension CommandResult {
    /// ssh's answer when the probe ran on these GPUs: status 0 and the probe's exact stdout.
    public static func probe(_ gpus: [SyntheticGPU]) -> CommandResult {
        CommandResult(status: 0, stdout: Data(SyntheticNvidiaSmi.output(gpus).utf8))
    }

    /// ssh's answer when the probe failed on the instance (the remote shell still exits 0).
    public static func probeFailure(_ failure: SyntheticNvidiaSmi.Failure) -> CommandResult {
        let stderr = failure == .notInstalled ? "timeout: failed to run command 'nvidia-smi': No such file or directory\n" : ""
        return CommandResult(status: 0, stdout: Data(SyntheticNvidiaSmi.failure(failure).utf8), stderr: Data(stderr.utf8))
    }

    /// ssh's own failure: status 255 and its message on stderr.
    public static func sshFailure(_ message: String = "ssh: connect to host 10.0.0.1 port 22: Connection refused")
        -> CommandResult
    {
        CommandResult(status: 255, stderr: Data((message + "\n").utf8))
    }
}
