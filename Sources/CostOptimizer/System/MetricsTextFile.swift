import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `METRICS_FILE`: a node_exporter textfile, replaced atomically each cycle (a temp file `.<name>.tmp-<pid>` in the
/// same directory, which the collector ignores as it reads only `*.prom`, then `rename`), mode 0644 so that
/// node_exporter, running as another user, can read it.
public struct MetricsTextFile: MetricsSink {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public func publish(_ text: String) throws {
        let name = (path as NSString).lastPathComponent
        let directory = (path as NSString).deletingLastPathComponent
        let temp = (directory.isEmpty ? "." : directory) + "/.\(name).tmp-\(getpid())"
        do { try AtomicFile.replace(path, with: Data(text.utf8), mode: 0o644, temp: temp) } catch {
            throw MetricsFileError(path: error.path, detail: error.detail)
        }
    }
}

/// The metrics file could not be written.
public struct MetricsFileError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var detail: String

    public var description: String {
        "cannot write \(path) (\(detail)); check that METRICS_FILE's directory exists and the daemon may write there "
            + "(under systemd: ReadWritePaths= in a drop-in)"
    }
}
