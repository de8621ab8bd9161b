import Foundation

/// A child process to run, as a value: argv, never a shell string.
public struct Command: Sendable, Equatable {
    /// A path, or a program name looked up on `PATH`.
    public var executable: String
    public var arguments: [String]
    /// The child's whole environment (an allowlist; the daemon's own secrets are never inherited).
    public var environment: [String: String]
    /// The runner kills the child (SIGTERM, then SIGKILL) when it outlives this many seconds.
    public var timeout: Double
    /// Bytes kept of stdout and of stderr each; more fails the run with `CommandError.outputTooLarge`.
    public var outputLimit: Int

    public init(
        executable: String, arguments: [String], environment: [String: String] = [:], timeout: Double = 30,
        outputLimit: Int = 1 << 20
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
        self.outputLimit = outputLimit
    }
}

/// How a child process ended.
public struct CommandResult: Sendable, Equatable {
    /// The exit status, or the signal number when `signaled` is true.
    public var status: Int32
    public var signaled: Bool
    public var stdout: Data
    public var stderr: Data

    public init(status: Int32, signaled: Bool = false, stdout: Data = Data(), stderr: Data = Data()) {
        self.status = status
        self.signaled = signaled
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs child processes: the port the ssh sampler uses.
///
/// To fake it, record each `Command` and answer from a queue of results or errors.
public protocol CommandRunner: Sendable {
    /// Runs the command to its end, its deadline or cancellation; the child is always reaped.
    /// - Throws: `CommandError` when the child could not start, outlived its deadline or wrote too much.
    func run(_ command: Command) async throws -> CommandResult
}

/// A child process did not run to a normal end.
public enum CommandError: Error, Equatable, CustomStringConvertible {
    case launchFailed(executable: String, detail: String)
    case timedOut(seconds: Double)
    case outputTooLarge(limit: Int)
    case cancelled

    public var description: String {
        switch self {
        case .launchFailed(let executable, let detail): "cannot start \(executable) (\(detail)); check SSH_COMMAND"
        case .timedOut(let seconds): "killed after \(Int(seconds)) s without finishing"
        case .outputTooLarge(let limit): "wrote more than \(limit) bytes of output"
        case .cancelled: "cancelled"
        }
    }
}
