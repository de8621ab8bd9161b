import CostOptimizerCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The private directory that holds ssh's control sockets (`ControlPath`), one per instance, named after its host-key
/// alias (`vast-123456`), so that a sample rides the connection the previous one left open (`ControlMaster=auto`,
/// `ControlPersist`).
///
/// Made fresh and mode 0700 for each run of the daemon: under systemd in `$RUNTIME_DIRECTORY` (`RuntimeDirectory=`,
/// removed by systemd when the service stops), else in `$TMPDIR` or `/tmp`. Nobody else can reach a socket there,
/// and a socket reaches only the instance whose host key its master verified. `tearDown` stops every master
/// (`ssh -O exit`) and removes the directory.
public final class SSHControlDirectory: Sendable {
    /// The directory's absolute path.
    public let path: String
    private let tornDown = Mutex(false)

    /// The longest control path ssh can listen on: it binds `<path>.<16 random characters>` first, and a Unix socket
    /// path holds at most 107 bytes. A longer path makes ssh fail (status 255), so such an instance gets no reuse.
    public static let maxSocketPathBytes = 90

    /// The destination given to `ssh -O exit`: ssh needs one, and never connects to it for a control command.
    static let controlDestination = "cost-optimizer-control"

    /// Seconds `ssh -O exit` may take for one master.
    static let exitDeadline: Double = 5

    /// Takes over an existing directory (tests); `create` makes a fresh one.
    public init(path: String) {
        self.path = path
    }

    /// Makes a fresh 0700 directory: `$RUNTIME_DIRECTORY/ssh-XXXXXX` when systemd set `RUNTIME_DIRECTORY`, else
    /// `$TMPDIR/cost-optimizer-ssh-XXXXXX` (or under `/tmp` when `TMPDIR` is unset or relative).
    /// - Throws: `SSHRefusal` when the directory cannot be made, or its path cannot be given to ssh.
    public static func create(environment: [String: String]) throws(SSHRefusal) -> SSHControlDirectory {
        let template: String
        if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first, runtime.hasPrefix("/") {
            template = "\(runtime)/ssh-XXXXXX"
        } else {
            var base = environment["TMPDIR"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
            while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
            template = "\(base)/cost-optimizer-ssh-XXXXXX"
        }
        if let refusal = GPUSampler.refusal(path: template, named: "the ssh control directory") { throw refusal }
        var bytes = Array(template.utf8CString)
        let made = bytes.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        guard made else {
            throw SSHRefusal(
                "cannot make the ssh control directory \(template) (\(String(cString: strerror(errno)))); ssh "
                    + "connections are not reused")
        }
        return SSHControlDirectory(path: String(decoding: bytes.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// The control socket of one instance: `<path>/<provider>-<id>`; nil when that is longer than
    /// `maxSocketPathBytes` (or holds a character ssh would expand), and after `tearDown`: the directory is gone.
    public func socketPath(for key: InstanceKey) -> String? {
        guard !tornDown.withLock({ $0 }) else { return nil }
        let socket = path + "/" + GPUSampler.hostKeyAlias(for: key)
        guard socket.utf8.count <= Self.maxSocketPathBytes, GPUSampler.refusal(path: socket, named: "") == nil else {
            return nil
        }
        return socket
    }

    /// The `ssh -O exit` command that stops the master listening on `socket`.
    public static func exitCommand(socket: String, ssh: String, environment: [String: String]) -> Command {
        Command(
            executable: ssh, arguments: ["-F", "none", "-o", "ControlPath=\(socket)", "-O", "exit", "--", controlDestination],
            environment: environment, timeout: exitDeadline, outputLimit: 1 << 16)
    }

    /// Stops every master (`ssh -O exit` on each socket, at most `concurrency` at once, each within
    /// `exitDeadline`), then removes the directory. Only the first call does anything.
    /// - Parameters:
    ///   - runner: runs `ssh -O exit`.
    ///   - ssh: the ssh program (`SSH_COMMAND`).
    ///   - environment: the ssh child's environment.
    ///   - concurrency: the most `ssh -O exit` at once.
    ///   - logger: a debug line with the count, a warning per master that would not stop.
    public func tearDown(
        runner: any CommandRunner, ssh: String, environment: [String: String], concurrency: Int, logger: Logger
    ) async {
        let first = tornDown.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        let sockets = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
            .map { path + "/" + $0 }.filter(Self.isSocket)
        var pending = sockets.makeIterator()
        let stop = { @Sendable (socket: String) async -> Bool in
            await Self.stopMaster(socket: socket, runner: runner, ssh: ssh, environment: environment, logger: logger)
        }
        let stopped = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<max(1, concurrency) {
                guard let socket = pending.next() else { break }
                group.addTask { await stop(socket) }
            }
            var count = 0
            for await ok in group {
                if ok { count += 1 }
                if let socket = pending.next() { group.addTask { await stop(socket) } }
            }
            return count
        }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            logger.warning("ssh control directory not removed \(path): \(error)")
        }
        logger.debug("ssh masters stopped: \(stopped) of \(sockets.count); removed \(path)")
    }

    /// Runs `ssh -O exit` for one socket; true when the master acknowledged. A master that is already gone is
    /// passed over quietly; any other failure is a warning.
    static func stopMaster(
        socket: String, runner: any CommandRunner, ssh: String, environment: [String: String], logger: Logger
    ) async -> Bool {
        do {
            let result = try await runner.run(exitCommand(socket: socket, ssh: ssh, environment: environment))
            if result.status == 0 { return true }
            let stderr = String(decoding: result.stderr, as: UTF8.self)
            // A master that already ended (its socket left behind by a kill): nothing to stop.
            if stderr.contains("Connection refused") || stderr.contains("No such file") { return false }
            let detail = stderr.split(separator: "\n").first
            logger.warning(
                "ssh master not stopped \(socket): status \(result.status)"
                    + (detail.map { ": \(Logger.oneLine(String($0)))" } ?? ""))
        } catch {
            logger.warning("ssh master not stopped \(socket): \(error)")
        }
        return false
    }

    static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }
}
