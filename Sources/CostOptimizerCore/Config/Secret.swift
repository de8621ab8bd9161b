/// A value that must never be printed: an API key, a token, a webhook URL.
///
/// Its `description` and `debugDescription` are redacted, so interpolating one into a log line, an error or a
/// notification cannot leak it. Read the value only where it is sent: `secret.value`.
public struct Secret: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself. Use it in a request header or body, nowhere else.
    public let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
