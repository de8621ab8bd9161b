import CostOptimizer
import CostOptimizerCore
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sd_notify` against real datagram sockets, at a path and at an abstract name (safety.md §3.1, §8 item 27).
///
/// A datagram sent to a local `AF_UNIX` socket is queued on the receiver before `sendto` returns, so every read here
/// is a non-blocking `recv(MSG_DONTWAIT)`: nothing waits, and no thread of the cooperative pool is blocked.
@Suite("sd_notify over NOTIFY_SOCKET")
struct SystemdNotifierTests {
    // MARK: - Delivery, exact bytes

    @Test("READY, STATUS, WATCHDOG and STOPPING reach a socket at a path, byte for byte")
    func pathSocket() throws {
        let receiver = try DatagramReceiver.path()
        defer { receiver.close() }
        try checkProtocol(notifySocket: receiver.name, receiver: receiver)
    }

    @Test("the same reach an abstract socket (@name: a leading NUL, the length without trailing NULs)")
    func abstractSocket() throws {
        let receiver = try DatagramReceiver.abstract()
        defer { receiver.close() }
        #expect(receiver.name.hasPrefix("@"))
        try checkProtocol(notifySocket: receiver.name, receiver: receiver)
    }

    func checkProtocol(notifySocket: String, receiver: DatagramReceiver) throws {
        let notifier = try #require(try SystemdNotifier(environment: ["NOTIFY_SOCKET": notifySocket], logger: .silent))
        #expect(notifier.socketName == notifySocket)
        #expect(receiver.receive() == nil)

        #expect(notifier.ready())
        #expect(receiver.receive() == Array("READY=1".utf8))
        #expect(notifier.status("Cycle complete: 3 running, 1 paused, 0 errors"))
        #expect(receiver.receive() == Array("STATUS=Cycle complete: 3 running, 1 paused, 0 errors".utf8))
        #expect(notifier.watchdog())
        #expect(receiver.receive() == Array("WATCHDOG=1".utf8))
        #expect(notifier.stopping())
        #expect(receiver.receive() == Array("STOPPING=1".utf8))
        #expect(notifier.send(["READY=1", "STATUS=started"]))
        #expect(receiver.receive() == Array("READY=1\nSTATUS=started".utf8))
        #expect(receiver.receive() == nil, "one datagram per message, nothing more")
    }

    @Test("a field cannot smuggle in another: control characters become spaces; STATUS is cut to 1 KiB")
    func fieldsStayFields() throws {
        let receiver = try DatagramReceiver.path()
        defer { receiver.close() }
        let notifier = try #require(try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.name], logger: .silent))
        // An instance name from a provider, in a status line.
        notifier.status("idle: evil\nREADY=1\u{0}\u{1B}[31m")
        #expect(receiver.receive() == Array("STATUS=idle: evil READY=1  [31m".utf8))
        notifier.send(["STATUS=a\nWATCHDOG=trigger"])
        #expect(receiver.receive() == Array("STATUS=a WATCHDOG=trigger".utf8))

        notifier.status(String(repeating: "é", count: 1000))  // 2000 bytes of UTF-8
        let long = try #require(receiver.receive())
        #expect(long.count == "STATUS=".utf8.count + ServiceNotifierLimits.statusBytes)
        #expect(String(bytes: long, encoding: .utf8) == "STATUS=" + String(repeating: "é", count: 512))

        // Over systemd's 4 KiB buffer: not sent at all (systemd would drop it whole).
        #expect(!notifier.send(["STATUS=" + String(repeating: "x", count: ServiceNotifierLimits.messageBytes)]))
        #expect(receiver.receive() == nil)
    }

    // MARK: - Failures are reported, never fatal, never blocking

    @Test("no receiver: send returns false, logs one warning per run of failures and one line on recovery")
    func missingReceiver() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/notify"
        let sink = NotifierTestLogSink()
        let logger = Logger(level: .debug, sink: sink)
        let notifier = try #require(try SystemdNotifier(environment: ["NOTIFY_SOCKET": path], logger: logger))
        #expect(!notifier.ready())
        #expect(!notifier.watchdog())
        #expect(sink.lines.count == 2)
        #expect(sink.lines.first?.level == .warning)
        #expect(sink.lines.first?.message.contains("NOTIFY_SOCKET=\(path)") == true)
        #expect(sink.lines.last?.level == .debug)

        // The receiver appears (systemd restarted): the next message goes through, and the recovery is logged.
        let receiver = try DatagramReceiver.bind(name: path)
        defer { receiver.close() }
        #expect(notifier.watchdog())
        #expect(receiver.receive() == Array("WATCHDOG=1".utf8))
        #expect(sink.lines.last?.level == .info)
        #expect(sink.lines.last?.message.contains("2 lost message(s)") == true)

        // A receiver that went away: ECONNREFUSED, and no SIGPIPE (MSG_NOSIGNAL), or this test process would die.
        receiver.close()
        #expect(!notifier.stopping())
    }

    @Test("a receiver that never reads fills up: sends fail at once instead of blocking")
    func fullQueueDoesNotBlock() throws {
        let receiver = try DatagramReceiver.path()
        defer { receiver.close() }
        let notifier = try #require(try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.name], logger: .silent))
        let started = Date()
        var refused = 0
        for _ in 0..<5000 where !notifier.watchdog() { refused += 1 }
        #expect(refused > 0, "the receive queue never filled; max_dgram_qlen is unusually large")
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(receiver.receive() == Array("WATCHDOG=1".utf8))
    }

    // MARK: - NOTIFY_SOCKET forms

    @Test("NOTIFY_SOCKET unset or empty: no notifier")
    func unset() throws {
        #expect(try SystemdNotifier(environment: [:], logger: .silent) == nil)
        #expect(try SystemdNotifier(environment: ["NOTIFY_SOCKET": ""], logger: .silent) == nil)
        #expect(try SystemdNotifier(environment: ["WATCHDOG_USEC": "1000000"], logger: .silent) == nil)
        #expect(!NoServiceNotifier().ready())
        #expect(NoServiceNotifier().watchdogInterval == nil)
    }

    @Test("NOTIFY_SOCKET neither /path nor @name, or too long: an error that says what to do")
    func unusable() throws {
        for name in ["run/systemd/notify", "vsock:2:1234", "@"] {
            #expect(throws: SystemdNotifierError.unsupported(name: name)) {
                try SystemdNotifier(environment: ["NOTIFY_SOCKET": name], logger: .silent)
            }
        }
        let long = "/" + String(repeating: "a", count: 107)  // 108 bytes: no room for the NUL
        #expect(throws: SystemdNotifierError.tooLong(name: long, bytes: 108, limit: 107)) {
            try SystemdNotifier(environment: ["NOTIFY_SOCKET": long], logger: .silent)
        }
        let longest = "/" + String(repeating: "a", count: 106)
        #expect(try SystemdNotifier(environment: ["NOTIFY_SOCKET": longest], logger: .silent) != nil)
        let abstract = "@" + String(repeating: "a", count: 107)  // NUL + 107 bytes fill sun_path exactly
        #expect(try SystemdNotifier(environment: ["NOTIFY_SOCKET": abstract], logger: .silent) != nil)
        #expect(throws: SystemdNotifierError.tooLong(name: abstract + "a", bytes: 109, limit: 108)) {
            try SystemdNotifier(environment: ["NOTIFY_SOCKET": abstract + "a"], logger: .silent)
        }
        let description = SystemdNotifierError.unsupported(name: "vsock:2:1234").description
        #expect(description.contains("NOTIFY_SOCKET=vsock:2:1234") && !description.contains("\n"))
    }

    @Test("the address bytes: the path as is; an @name with a leading NUL")
    func addressBytes() throws {
        #expect(try SystemdNotifier.address(of: "/run/systemd/notify") == Array("/run/systemd/notify".utf8))
        #expect(try SystemdNotifier.address(of: "@sd-notify") == [0] + Array("sd-notify".utf8))
    }

    // MARK: - Watchdog

    @Test("WATCHDOG_USEC is honoured when WATCHDOG_PID is unset or names this process, else ignored")
    func watchdogInterval() throws {
        let me: pid_t = 4242
        func interval(_ environment: [String: String]) -> Double? {
            SystemdNotifier.watchdogInterval(environment: environment, processID: me)
        }
        #expect(interval([:]) == nil)
        #expect(interval(["WATCHDOG_USEC": "600000000"]) == 600)
        #expect(interval(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"]) == 2)
        #expect(interval(["WATCHDOG_USEC": "500", "WATCHDOG_PID": "4242"]) == 0.0005)
        // Inherited from a parent that systemd watched: not ours.
        #expect(interval(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4243"]) == nil)
        #expect(interval(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]) == nil)
        // Malformed: ignored, and said.
        let sink = NotifierTestLogSink()
        let logger = Logger(level: .debug, sink: sink)
        for bad in ["0", "-5", "abc", "", " 2000000", "2s", "18446744073709551615"] {
            let environment = ["WATCHDOG_USEC": bad]
            #expect(SystemdNotifier.watchdogInterval(environment: environment, processID: me, logger: logger) == nil)
        }
        #expect(
            SystemdNotifier.watchdogInterval(
                environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "x"], processID: me, logger: logger) == nil)
        #expect(sink.lines.count == 8 && sink.lines.allSatisfy { $0.level == .warning })
    }

    @Test("the notifier reads the watchdog of this process from its environment")
    func notifierWatchdog() throws {
        let socket = ["NOTIFY_SOCKET": "/run/systemd/notify"]
        let ours = socket.merging(["WATCHDOG_USEC": "600000000", "WATCHDOG_PID": "\(getpid())"]) { $1 }
        #expect(try SystemdNotifier(environment: ours, logger: .silent)?.watchdogInterval == 600)
        let unowned = socket.merging(["WATCHDOG_USEC": "600000000"]) { $1 }
        #expect(try SystemdNotifier(environment: unowned, logger: .silent)?.watchdogInterval == 600)
        let theirs = socket.merging(["WATCHDOG_USEC": "600000000", "WATCHDOG_PID": "\(getpid() + 1)"]) { $1 }
        #expect(try SystemdNotifier(environment: theirs, logger: .silent)?.watchdogInterval == nil)
        #expect(try SystemdNotifier(environment: socket, logger: .silent)?.watchdogInterval == nil)
    }

    // MARK: - Helpers

    static func scratchDirectory() throws -> String {
        // Short: a socket path must fit in 107 bytes.
        let path = "/tmp/co-sd-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }
}

/// A bound `AF_UNIX` datagram socket standing in for systemd's notification socket.
final class DatagramReceiver: Sendable {
    /// As `NOTIFY_SOCKET` would name it: a path, or `@` and an abstract name.
    let name: String
    private let descriptor: Mutex<Int32>
    /// A directory to remove on close, for path sockets.
    private let directory: String?

    private init(name: String, descriptor: Int32, directory: String?) {
        self.name = name
        self.descriptor = Mutex(descriptor)
        self.directory = directory
    }

    /// A socket at a fresh path.
    static func path() throws -> DatagramReceiver {
        let directory = try SystemdNotifierTests.scratchDirectory()
        return try bind(name: directory + "/notify", directory: directory)
    }

    /// A socket at a fresh abstract name.
    static func abstract() throws -> DatagramReceiver {
        try bind(name: "@cost-optimizer-test-" + UUID().uuidString)
    }

    /// A socket bound at `name` (`/path` or `@name`), non-blocking.
    static func bind(name: String, directory: String? = nil) throws -> DatagramReceiver {
        let address = try SystemdNotifier.address(of: name)
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_UNIX, type, 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: address) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.count)
        let bound = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
        return DatagramReceiver(name: name, descriptor: fd, directory: directory)
    }

    /// The next queued datagram, or nil at once when there is none.
    func receive() -> [UInt8]? {
        descriptor.withLock { fd -> [UInt8]? in
            guard fd >= 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 8192)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            return count >= 0 ? Array(buffer[0..<count]) : nil
        }
    }

    /// Closes the socket and removes its path; later calls do nothing.
    func close() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            Glibc.close(fd)
            fd = -1
            if name.hasPrefix("/") { unlink(name) }
            if let directory { rmdir(directory) }
        }
    }

    deinit { close() }
}

/// Records log lines, for the notifier's failure reports.
final class NotifierTestLogSink: LogSink {
    private let recorded = Mutex<[(level: LogLevel, message: String)]>([])
    func write(level: LogLevel, message: String) { recorded.withLock { $0.append((level, message)) } }
    var lines: [(level: LogLevel, message: String)] { recorded.withLock { $0 } }
}
