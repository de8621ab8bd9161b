import CostOptimizerCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go. A test sink records them.
public protocol LogSink: Sendable {
    /// Writes one already-formatted event.
    func write(level: LogLevel, message: String)
}

/// One line per event: a constant phrase, then the data. Passed in, never built inside a component.
public struct Logger: Sendable {
    public var level: LogLevel
    public var sink: any LogSink

    public init(level: LogLevel, sink: any LogSink) {
        self.level = level
        self.sink = sink
    }

    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level >= self.level else { return }
        sink.write(level: level, message: Logger.oneLine(message()))
    }

    /// Escapes newlines and control characters, so provider data (instance names) cannot forge log lines.
    public static func oneLine(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += " "
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// A logger that drops everything.
    public static let silent = Logger(level: .error, sink: NullLogSink())
}

/// Drops every line.
public struct NullLogSink: LogSink {
    public init() {}
    public func write(level: LogLevel, message: String) {}
}

/// Writes each line to stderr with one `write(2)`: `<N>` priority prefixes under journald, a timestamp otherwise.
public struct StandardErrorLogSink: LogSink {
    /// True when stderr is the journal stream (`JOURNAL_STREAM` matches stderr's device and inode).
    public let journald: Bool

    public init(environment: [String: String]) {
        journald = StandardErrorLogSink.stderrIsJournal(environment["JOURNAL_STREAM"])
    }

    public func write(level: LogLevel, message: String) {
        let line: String
        if journald {
            line = "<\(level.syslogPriority)>\(message)\n"
        } else {
            let stamp = Date().formatted(.iso8601)
            line = "\(stamp) \(level.rawValue.uppercased()) \(message)\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func stderrIsJournal(_ stream: String?) -> Bool {
        guard let stream else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
