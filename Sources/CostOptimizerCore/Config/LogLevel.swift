/// How much the daemon logs (`LOG_LEVEL`). Ordered from most to least verbose.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case debug, info, warning, error

    /// The syslog priority journald reads from a `<N>` prefix.
    public var syslogPriority: Int {
        switch self {
        case .debug: 7
        case .info: 6
        case .warning: 4
        case .error: 3
        }
    }

    private var rank: Int {
        switch self {
        case .debug: 0
        case .info: 1
        case .warning: 2
        case .error: 3
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }
}
