import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs a `Command` as a child process with `Foundation.Process`: argv only, exactly the command's environment, stdin
/// from `/dev/null`, stdout and stderr drained while the child runs and capped at `outputLimit`, a deadline enforced
/// with SIGTERM then SIGKILL, and task cancellation that kills the child. Every child is reaped.
///
/// Each run is watched by its own thread, which polls the pipes and reaps the child itself with `waitid`. On Linux
/// `Process` cannot be relied on for that: it learns of an exit only when every holder of an inherited socket has
/// closed it, so a grandchild hides the exit (swift-corelibs-foundation#4795); and a child that closes that socket at
/// start (ssh and sshd close every descriptor above 2) makes its one reaper thread block in `waitpid` until that
/// child ends, delaying every other child's reaping behind it. Whichever of `Process` and this thread reaps first
/// provides the status. Output still open a moment after the exit belongs to a leftover grandchild, whose process
/// group (the child's: `Process` starts each child in a group of its own) is then killed. Once the caller has its
/// result, the thread lets go of the `Process` (`ChildWatch.release`), which would otherwise never be freed.
public struct ProcessCommandRunner: CommandRunner {
    /// Seconds between SIGTERM and SIGKILL when the deadline passes or the task is cancelled.
    ///
    /// A child inherits the signals the daemon ignores (`Process` cannot reset them): while the daemon ignores
    /// SIGTERM to handle it through a dispatch source, its children end only at the SIGKILL.
    public var gracePeriod: Double
    /// Seconds output is still read after the child exited, before leftover holders of the pipes are killed.
    public var drainAfterExit: Double

    /// - Parameters:
    ///   - gracePeriod: seconds between SIGTERM and SIGKILL.
    ///   - drainAfterExit: seconds output is still read after the child exited.
    public init(gracePeriod: Double = 2, drainAfterExit: Double = 0.5) {
        self.gracePeriod = gracePeriod
        self.drainAfterExit = drainAfterExit
    }

    /// Makes the `Process` of each run (tests give a subclass that counts its deinits).
    var makeProcess: @Sendable () -> Process = { Process() }

    /// Runs the command to its end, its deadline or cancellation; the child is always reaped.
    /// - Throws: `CommandError.launchFailed` when the program is missing or cannot start, `.timedOut` after the
    ///   deadline, `.outputTooLarge` when stdout or stderr passes `outputLimit`, `.cancelled` when the task is cancelled.
    public func run(_ command: Command) async throws -> CommandResult {
        let cancellation = CancellationFlag()
        let watch = ChildWatch(
            command: command, gracePeriod: gracePeriod, drainAfterExit: drainAfterExit, makeProcess: makeProcess)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CommandResult, any Error>) in
                Thread {
                    var launched: Process?
                    let result = Result<CommandResult, any Error> {
                        try watch.run(cancellation: cancellation, launched: &launched)
                    }
                    continuation.resume(with: result)
                    // After the caller has its result: the wait for Process to see the exit delays nobody.
                    if let launched { ChildWatch.release(launched) }
                }.start()
            }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// The absolute path of `executable`: itself when it holds a `/`, else the first match on `PATH` (the command's,
    /// else the daemon's).
    /// - Throws: `CommandError.launchFailed` when no executable file is found.
    public static func resolve(_ executable: String, environment: [String: String]) throws(CommandError) -> String {
        guard !executable.isEmpty else {
            throw .launchFailed(executable: executable, detail: "the program name is empty")
        }
        if executable.contains("/") {
            guard isExecutableFile(executable) else {
                throw .launchFailed(executable: executable, detail: "no executable file at this path")
            }
            return executable
        }
        let path = environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + executable
            if isExecutableFile(candidate) { return candidate }
        }
        throw .launchFailed(executable: executable, detail: "not found on PATH \(path)")
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }
}

/// Set by the task's cancellation handler, read by the watching thread.
final class CancellationFlag: Sendable {
    private let state = Mutex(false)

    func cancel() { state.withLock { $0 = true } }
    var isCancelled: Bool { state.withLock { $0 } }
}

/// Whether `Process` reaped the child before this runner did (its termination handler ran).
final class ReapFlag: Sendable {
    private let state = Mutex(false)

    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

/// One run of one command, on the thread that watches it.
struct ChildWatch: Sendable {
    let command: Command
    let gracePeriod: Double
    let drainAfterExit: Double
    let makeProcess: @Sendable () -> Process

    /// How the child ended, as seen by `waitid` or `Process`.
    struct Exit {
        var status: Int32
        var signaled: Bool
    }

    /// Runs the command; `launched` is set to the `Process` once it started, for `release` afterwards.
    func run(cancellation: CancellationFlag, launched: inout Process?) throws(CommandError) -> CommandResult {
        guard !cancellation.isCancelled else { throw .cancelled }
        let path = try ProcessCommandRunner.resolve(command.executable, environment: command.environment)
        let process = makeProcess()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = command.arguments
        process.environment = command.environment
        process.standardInput = FileHandle.nullDevice
        let stdoutPipe = Pipe()
        let stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        let reaped = ReapFlag()
        process.terminationHandler = { _ in reaped.set() }
        try Self.launch(process, executable: command.executable)
        launched = process
        let pid = process.processIdentifier
        var child = Child(pid: pid, ownsGroup: getpgid(pid) == pid)
        var outputs = [
            Output(handle: stdoutPipe.fileHandleForReading, limit: command.outputLimit),
            Output(handle: stderrPipe.fileHandleForReading, limit: command.outputLimit),
        ]
        defer { for index in outputs.indices { outputs[index].close() } }

        let clock = ContinuousClock()
        let start = clock.now
        let timeout = Duration.seconds(command.timeout.isNaN ? 0 : min(max(command.timeout, 0), 1e9))
        var failure: CommandError?
        var terminatedAt: ContinuousClock.Instant?
        var killed = false
        var exitedAt: ContinuousClock.Instant?
        var exit: Exit?
        var pollMilliseconds: Int32 = 1
        while true {
            let gotData = Output.poll(&outputs, milliseconds: pollMilliseconds)
            pollMilliseconds = gotData ? 1 : min(pollMilliseconds * 2, 20)
            if failure == nil, outputs.contains(where: \.overflowed) {
                failure = .outputTooLarge(limit: command.outputLimit)
                child.signal(SIGKILL)
                killed = true
            }
            if exit == nil {
                exit = Self.reap(process, pid: pid, reaped: reaped)
                if exit != nil { exitedAt = clock.now }
            }
            let now = clock.now
            if let exitedAt {
                if outputs.allSatisfy(\.isClosed) { break }
                // Something the child left behind holds the pipes: kill it, then read what is left for a moment.
                if now - exitedAt > .seconds(drainAfterExit) {
                    child.signalLeftovers(SIGKILL)
                }
                if now - exitedAt > .seconds(drainAfterExit + 0.5) { break }
                continue
            }
            if failure == nil {
                if cancellation.isCancelled {
                    failure = .cancelled
                } else if now - start >= timeout {
                    failure = .timedOut(seconds: command.timeout)
                }
            }
            if failure != nil, terminatedAt == nil {
                child.signal(SIGTERM)
                terminatedAt = now
            }
            if let terminatedAt, !killed, now - terminatedAt >= .seconds(gracePeriod) {
                child.signal(SIGKILL)
                killed = true
            }
        }
        if let failure { throw failure }
        let ended = exit ?? Exit(status: -1, signaled: false)
        return CommandResult(
            status: ended.status, signaled: ended.signaled, stdout: outputs[0].data, stderr: outputs[1].data)
    }

    /// Lets go of a `Process` whose child ended, so that it can be freed.
    ///
    /// On Linux a launched `Process` keeps itself alive through its run loop source until `waitUntilExit()` runs
    /// (swift-corelibs-foundation, Swift 6.3): without this every run kept about 2 KB, gigabytes a day for a fleet of
    /// a thousand instances (docs/performance.md). Called on the run's own thread once the caller has its result:
    /// `waitUntilExit()` returns as soon as `Process` has seen the exit, a moment after the child ended (later only
    /// while `Process`'s one reaper is held up by another child, or a grandchild holds its socket), and no caller
    /// waits for it.
    static func release(_ process: Process) {
        process.waitUntilExit()
    }

    /// Starts the process with no signal blocked.
    ///
    /// The child inherits the spawning thread's signal mask, and Foundation threads block nearly every signal, so a
    /// child spawned from this thread could not be stopped with SIGTERM. The mask is emptied for the spawn only, so
    /// that signals meant for the daemon are not taken by this thread.
    static func launch(_ process: Process, executable: String) throws(CommandError) {
        var saved = sigset_t()
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        do {
            try process.run()
        } catch {
            throw .launchFailed(executable: executable, detail: "\(error.localizedDescription)")
        }
    }

    /// Reaps the child if it has ended and tells how; nil while it runs.
    ///
    /// When `Process` reaped it first, `waitid` fails and its termination status is used. `Process` later finds the
    /// pid gone (`ECHILD`) and only marks itself finished.
    static func reap(_ process: Process, pid: pid_t, reaped: ReapFlag) -> Exit? {
        if reaped.isSet {
            return Exit(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal)
        }
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG) == 0,
            info._sifields._sigchld.si_pid == pid
        else { return nil }
        let code = info.si_code
        return Exit(
            status: info._sifields._sigchld.si_status,
            signaled: code == Int32(CLD_KILLED) || code == Int32(CLD_DUMPED))
    }
}

/// The child and the process group it leads.
struct Child {
    let pid: pid_t
    /// True when the child leads its own process group, so the group's other members are its descendants.
    let ownsGroup: Bool
    private var leftoversKilled = false

    init(pid: pid_t, ownsGroup: Bool) {
        self.pid = pid
        self.ownsGroup = ownsGroup
    }

    /// Signals the child and, when it leads its group, its descendants in that group. Called only before the child
    /// is reaped, so its pid and group id cannot have been reused.
    func signal(_ signal: Int32) {
        _ = kill(ownsGroup ? -pid : pid, signal)
    }

    /// Kills what is left of the group after the child exited. The group id stays reserved while a member lives,
    /// and this is only called while something still holds the child's pipes.
    mutating func signalLeftovers(_ signal: Int32) {
        guard ownsGroup, !leftoversKilled else { return }
        leftoversKilled = true
        _ = kill(-pid, signal)
    }
}

/// One of the child's output pipes, read without blocking and kept up to a limit.
struct Output {
    private let handle: FileHandle
    private let limit: Int
    private(set) var data = Data()
    private(set) var overflowed = false
    private(set) var isClosed = false
    private var descriptor: Int32 { handle.fileDescriptor }

    init(handle: FileHandle, limit: Int) {
        self.handle = handle
        self.limit = limit
        let flags = fcntl(handle.fileDescriptor, F_GETFL)
        _ = fcntl(handle.fileDescriptor, F_SETFL, flags | O_NONBLOCK)
    }

    /// Waits up to `milliseconds` for output on the open pipes and reads what is there.
    /// - Returns: true when any bytes were read.
    static func poll(_ outputs: inout [Output], milliseconds: Int32) -> Bool {
        let open = outputs.indices.filter { !outputs[$0].isClosed }
        var fds = open.map { pollfd(fd: outputs[$0].descriptor, events: Int16(POLLIN), revents: 0) }
        let ready = fds.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds) }
        guard ready > 0 else { return false }
        var gotData = false
        for (position, index) in open.enumerated() where fds[position].revents != 0 {
            gotData = outputs[index].readAvailable() || gotData
        }
        return gotData
    }

    /// Reads until the pipe is empty or closed; bytes past the limit are dropped and mark the output overflowed.
    mutating func readAvailable() -> Bool {
        var gotData = false
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while !isClosed {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                gotData = true
                let room = max(0, limit - data.count)
                data.append(contentsOf: buffer[0..<min(count, room)])
                if count > room { overflowed = true }
            } else if count == 0 {
                close()
            } else if errno == EINTR {
                continue
            } else {
                if errno != EAGAIN && errno != EWOULDBLOCK { close() }
                break
            }
        }
        return gotData
    }

    mutating func close() {
        guard !isClosed else { return }
        isClosed = true
        try? handle.close()
    }
}
