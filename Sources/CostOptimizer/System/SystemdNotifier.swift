import CostOptimizerCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `sd_notify` without libsystemd: each message is one datagram on an `AF_UNIX` `SOCK_DGRAM` socket sent to
/// `$NOTIFY_SOCKET` (systemd's `man/notify-selfcontained-example.c`, safety.md §3.1).
///
/// - `/path` is a socket in the file system; `@name` an abstract socket, whose `@` becomes a leading NUL byte. The
///   address length is `offsetof(sockaddr_un, sun_path)` plus the name's length, never `sizeof(sockaddr_un)`: with
///   `sizeof` an abstract name gains trailing NULs, names another socket, and the send fails with `ECONNREFUSED`.
/// - A fresh socket per message (`SOCK_CLOEXEC | SOCK_NONBLOCK`), sent with `MSG_NOSIGNAL | MSG_DONTWAIT`: a full
///   queue or a vanished receiver loses that message instead of blocking the daemon or raising SIGPIPE.
/// - The first failure of a run is logged as a warning, the following ones at debug level, and a recovery at info.
///
/// `NotifyAccess=main` (the unit's setting) means systemd accepts messages only from the daemon's own process: send
/// from it, never from a child, and never pass `NOTIFY_SOCKET` or `WATCHDOG_*` to a child.
public final class SystemdNotifier: ServiceNotifier {
    /// `NOTIFY_SOCKET` as given.
    public let socketName: String
    /// `WATCHDOG_USEC` in seconds, when systemd watches this process (see `watchdogInterval(environment:processID:)`).
    public let watchdogInterval: Double?
    /// The bytes of `sun_path`: the path, or NUL and the abstract name.
    private let address: [UInt8]
    private let logger: Logger
    /// Messages lost since the last one delivered.
    private let failures = Mutex<Int>(0)

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    ///
    /// - Parameters:
    ///   - environment: the daemon's environment.
    ///   - logger: where lost messages and malformed watchdog settings are reported.
    ///   - processID: this process's id, compared with `WATCHDOG_PID` (tests pass their own).
    /// - Returns: nil when `NOTIFY_SOCKET` is unset or empty: the daemon does not run under a service manager that
    ///   waits for it.
    /// - Throws: `SystemdNotifierError` when `NOTIFY_SOCKET` is set but unusable (not `/…` or `@…`, or too long).
    ///   Under `Type=notify` systemd would then wait for a `READY=1` that cannot arrive, so say so loudly.
    public init?(environment: [String: String], logger: Logger, processID: pid_t = getpid())
        throws(SystemdNotifierError)
    {
        guard let name = environment["NOTIFY_SOCKET"], !name.isEmpty else { return nil }
        self.socketName = name
        self.address = try SystemdNotifier.address(of: name)
        self.logger = logger
        self.watchdogInterval = SystemdNotifier.watchdogInterval(
            environment: environment, processID: processID, logger: logger)
    }

    /// The bytes to put in `sun_path` for `name`: the path itself, or for `@name` a NUL followed by `name`.
    /// - Throws: `SystemdNotifierError` when `name` is neither form or does not fit in `sun_path`.
    public static func address(of name: String) throws(SystemdNotifierError) -> [UInt8] {
        var bytes = Array(name.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        switch bytes.first {
        case UInt8(ascii: "/"):
            // Room for the terminating NUL, as systemd itself requires of path names.
            guard bytes.count < capacity else {
                throw .tooLong(name: name, bytes: bytes.count, limit: capacity - 1)
            }
        case UInt8(ascii: "@"):
            bytes[0] = 0
            guard bytes.count <= capacity, bytes.count > 1 else {
                throw bytes.count > 1
                    ? .tooLong(name: name, bytes: bytes.count, limit: capacity) : .unsupported(name: name)
            }
        default:
            throw .unsupported(name: name)
        }
        return bytes
    }

    /// The watchdog timeout in seconds from `WATCHDOG_USEC`, honoured only when `WATCHDOG_PID` is unset or equals
    /// `processID` (a `WATCHDOG_PID` of another process means the variables were inherited and are not ours), as
    /// `sd_watchdog_enabled(3)` does. Nil when there is no watchdog, or when a value is malformed (logged as a
    /// warning: systemd would then kill a daemon that does not ping).
    public static func watchdogInterval(
        environment: [String: String], processID: pid_t, logger: Logger = .silent
    ) -> Double? {
        guard let text = environment["WATCHDOG_USEC"] else { return nil }
        guard let microseconds = UInt64(text), microseconds > 0, microseconds < UInt64.max else {
            logger.warning(
                "Watchdog ignored: WATCHDOG_USEC=\(text) is not a positive number of microseconds; "
                    + "if systemd set WatchdogSec=, it will restart the daemon for not pinging")
            return nil
        }
        if let owner = environment["WATCHDOG_PID"] {
            guard let pid = pid_t(owner), pid > 0 else {
                logger.warning(
                    "Watchdog ignored: WATCHDOG_PID=\(owner) is not a process id; "
                        + "if systemd set WatchdogSec=, it will restart the daemon for not pinging")
                return nil
            }
            guard pid == processID else {
                logger.debug("Watchdog ignored: WATCHDOG_PID=\(pid) is another process (this one is \(processID))")
                return nil
            }
        }
        return Double(microseconds) / 1_000_000
    }

    /// Sends `fields` as one datagram, newline-separated, each field cleaned of control characters.
    /// - Returns: true when the datagram was queued for the service manager.
    @discardableResult
    public func send(_ fields: [String]) -> Bool {
        guard !fields.isEmpty else { return false }
        let message = Array(fields.map(ServiceNotifierLimits.sanitize).joined(separator: "\n").utf8)
        guard message.count <= ServiceNotifierLimits.messageBytes else {
            return failed(
                fields, "the message is \(message.count) bytes, over the \(ServiceNotifierLimits.messageBytes) "
                    + "systemd accepts")
        }
        if let problem = deliver(message) { return failed(fields, problem) }
        let lost = failures.withLock { count in
            defer { count = 0 }
            return count
        }
        if lost > 0 {
            logger.info("sd_notify works again through NOTIFY_SOCKET=\(socketName) after \(lost) lost message(s)")
        }
        return true
    }

    /// Sends `message`; returns why it failed, or nil.
    private func deliver(_ message: [UInt8]) -> String? {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_UNIX, type, 0)
        guard fd >= 0 else { return "socket: " + String(cString: strerror(errno)) }
        defer { close(fd) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: address) }
        // Not MemoryLayout<sockaddr_un>.size: see the type's documentation.
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.count)
        let flags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
        for _ in 0..<3 {
            let sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &target) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, flags, $0, length)
                    }
                }
            }
            if sent == message.count { return nil }
            if sent >= 0 { return "short send (\(sent) of \(message.count) bytes)" }
            if errno != EINTR { return String(cString: strerror(errno)) }
        }
        return String(cString: strerror(EINTR))
    }

    private func failed(_ fields: [String], _ problem: String) -> Bool {
        let first = failures.withLock { count in
            count += 1
            return count == 1
        }
        let what = fields.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? $0 }
            .joined(separator: ",")
        logger.log(
            first ? .warning : .debug,
            "sd_notify lost (\(what)) through NOTIFY_SOCKET=\(socketName): \(problem); systemd does not see "
                + "this daemon's progress and may restart it")
        return false
    }
}

/// `NOTIFY_SOCKET` is set to something this daemon cannot send to.
public enum SystemdNotifierError: Error, Equatable, CustomStringConvertible {
    /// Neither an absolute path nor an `@abstract` name (e.g. a relative path, or `vsock:` of newer systemd).
    case unsupported(name: String)
    /// Longer than `sockaddr_un.sun_path` holds.
    case tooLong(name: String, bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .unsupported(let name):
            "NOTIFY_SOCKET=\(Logger.oneLine(name)) is neither an absolute path nor an @abstract socket name, so "
                + "cost-optimizer cannot tell systemd it is ready; run it with Type=simple or from a systemd that "
                + "passes a path"
        case .tooLong(let name, let bytes, let limit):
            "NOTIFY_SOCKET=\(Logger.oneLine(name)) is \(bytes) bytes, over the \(limit) a Unix socket address "
                + "holds, so cost-optimizer cannot tell systemd it is ready; use a shorter socket path"
        }
    }
}
