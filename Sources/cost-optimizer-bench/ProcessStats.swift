import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Seconds since the bench started, on the monotonic clock.
enum BenchClock {
    static let start = ContinuousClock.now

    static var now: Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }
}

/// CPU times of one process from `/proc/<pid>/stat`, in seconds.
struct CPUTimes: Sendable {
    /// utime + stime: the process's own threads.
    var own: Double
    /// cutime + cstime: the children it waited for (the ssh programs it ran).
    var children: Double

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// nil when the process is gone.
    static func read(pid: pid_t) -> CPUTimes? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 14, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let cutime = Double(fields[13]), let cstime = Double(fields[14])
        else { return nil }
        return CPUTimes(own: (utime + stime) / ticksPerSecond, children: (cutime + cstime) / ticksPerSecond)
    }

    /// This process (the bench), through getrusage.
    static func ownProcess() -> CPUTimes {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        var children = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &children)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUTimes(
            own: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            children: seconds(children.ru_utime) + seconds(children.ru_stime))
    }
}

/// Memory figures of one process from `/proc/<pid>/status` and `smaps_rollup`, in KiB.
enum Memory {
    /// `VmHWM` (peak resident set), `VmRSS`, or another `Vm…:` field.
    static func status(pid: pid_t, _ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return kibibytes(text, field)
    }

    /// The proportional set size (shared pages divided among their users).
    static func pss(pid: pid_t) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
        return kibibytes(text, "Pss")
    }

    private static func kibibytes(_ text: String, _ field: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }
}

/// Live processes whose command line holds `text` (an ssh master shows `ssh: <ControlPath> [mux]`).
func processes(mentioning text: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else {
            return false
        }
        return String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self).contains(text)
    }
}

/// A child process whose stderr is read line by line on a thread of its own, each line stamped with `BenchClock`.
final class WatchedProcess: Sendable {
    struct Line: Sendable {
        var time: Double
        var text: String
    }

    let process: Process
    private let lines = Mutex<[Line]>([])
    private let ended = Atomic<Bool>(false)

    init(executable: String, arguments: [String], environment: [String: String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        try process.run()
        let handle = pipe.fileHandleForReading
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    let line = Line(time: BenchClock.now, text: text)
                    self.lines.withLock { $0.append(line) }
                }
            }
            self.ended.store(true, ordering: .relaxed)
        }
        thread.start()
    }

    var pid: pid_t { process.processIdentifier }

    /// Every line so far.
    var allLines: [Line] { lines.withLock { $0 } }

    /// The first line at or after `index` that contains `text`, with its index; nil after `timeout` seconds or when
    /// the process ended without it.
    func waitForLine(containing text: String, from index: Int, timeout: Double) async -> (Int, Line)? {
        let deadline = BenchClock.now + timeout
        while BenchClock.now < deadline {
            let found = lines.withLock { lines -> (Int, Line)? in
                guard index < lines.count else { return nil }
                for position in index..<lines.count where lines[position].text.contains(text) {
                    return (position, lines[position])
                }
                return nil
            }
            if let found { return found }
            if ended.load(ordering: .relaxed) && !process.isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// SIGTERM, then waits up to `timeout` seconds; the exit status, or nil if it did not exit.
    func terminate(timeout: Double) async -> Int32? {
        process.terminate()
        let deadline = BenchClock.now + timeout
        while process.isRunning && BenchClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            kill(pid, SIGKILL)
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }
}

/// Makes a fresh private directory under /tmp.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw BenchError("cannot make a directory under /tmp: \(String(cString: strerror(errno)))")
    }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Writes an executable script.
func writeScript(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    guard chmod(path, 0o755) == 0 else { throw BenchError("cannot chmod \(path)") }
}

/// Quotes `text` for a POSIX shell: inside single quotes, each `'` becomes `'\''`.
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A bench failure, with what to check.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Formats a number with `digits` decimals.
func fixed(_ value: Double, _ digits: Int = 2) -> String {
    String(format: "%.\(digits)f", value)
}
