import Foundation

/// Tells the service manager how the daemon is doing: the `sd_notify` protocol of systemd's `Type=notify`.
///
/// The real one (`SystemdNotifier`) sends datagrams to `$NOTIFY_SOCKET`; `NoServiceNotifier` is used when the daemon
/// runs outside systemd; a fake records the fields. Sending never blocks and never throws: a lost message is logged by
/// the implementation and reported through the return value, and the daemon carries on.
///
/// What the daemon sends, and when (see `systemd/cost-optimizer.service`):
/// - `ready()` once, after the configuration is valid, the state lock is held and the state is loaded, before the
///   first cycle (systemd waits at most `TimeoutStartSec=`, 90 s by default, for it);
/// - `status(_:)` once per cycle, one line;
/// - `watchdog()` after each completed step or sample, and while idle at least every `watchdogInterval / 2`, but
///   never from a side timer: a stuck cycle must stop the pings so that systemd restarts the daemon;
/// - `stopping()` as soon as SIGTERM or SIGINT arrives.
public protocol ServiceNotifier: Sendable {
    /// Sends one message made of `KEY=VALUE` fields (one datagram, fields separated by newlines).
    ///
    /// A field cannot smuggle in another one: newlines and other control characters inside a field are replaced by
    /// spaces.
    /// - Returns: true when the message was handed to the service manager; false when it was not (no service
    ///   manager, queue full, refused, too long). Callers need not log a false: the implementation already did, once
    ///   per run of failures.
    @discardableResult
    func send(_ fields: [String]) -> Bool

    /// The watchdog timeout systemd enforces for this process (`WatchdogSec=`), in seconds; nil when there is none.
    /// Ping with `watchdog()` at least every half of it.
    var watchdogInterval: Double? { get }
}

extension ServiceNotifier {
    /// `READY=1`: start-up is complete. Send once, after the configuration, the lock and the state are in place.
    @discardableResult
    public func ready() -> Bool { send(["READY=1"]) }

    /// `STATUS=<text>`: one line shown by `systemctl status`. Control characters become spaces and the text is
    /// cut to `ServiceNotifierLimits.statusBytes` bytes.
    @discardableResult
    public func status(_ text: String) -> Bool {
        send(["STATUS=" + ServiceNotifierLimits.truncate(ServiceNotifierLimits.sanitize(text))])
    }

    /// `WATCHDOG=1`: the daemon is making progress. Send after each completed step or sample.
    @discardableResult
    public func watchdog() -> Bool { send(["WATCHDOG=1"]) }

    /// `STOPPING=1`: a stop was requested and the daemon is shutting down.
    @discardableResult
    public func stopping() -> Bool { send(["STOPPING=1"]) }
}

/// Limits and cleaning shared by every `ServiceNotifier`.
public enum ServiceNotifierLimits {
    /// The most bytes of text `status(_:)` sends.
    public static let statusBytes = 1024
    /// The largest message sent: systemd 252 reads notification datagrams into a 4 KiB buffer and drops a longer one
    /// whole.
    public static let messageBytes = 4096

    /// `text` with every control character (newlines included) replaced by a space, so that it stays one field.
    public static func sanitize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(scalar.value < 0x20 || scalar.value == 0x7F ? " " : scalar)
        }
        return String(out)
    }

    /// `text` cut to at most `statusBytes` bytes of UTF-8, on a character boundary.
    public static func truncate(_ text: String) -> String {
        guard text.utf8.count > statusBytes else { return text }
        var out = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= statusBytes else { break }
            out.append(character)
            bytes += size
        }
        return out
    }
}

/// The notifier used outside systemd (`NOTIFY_SOCKET` unset): sends nothing, and has no watchdog.
public struct NoServiceNotifier: ServiceNotifier {
    /// A notifier that sends nothing.
    public init() {}

    /// Drops the message; returns false, since nobody received it.
    @discardableResult
    public func send(_ fields: [String]) -> Bool { false }

    /// Always nil: without systemd nothing watches the daemon.
    public var watchdogInterval: Double? { nil }
}
