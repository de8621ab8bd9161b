import CostOptimizerCore
import Foundation

/// A bad line in a traces CSV: its number and a sentence saying what is wrong with it.
public struct TraceCSVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based; 0 for a problem of the whole file.
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// A user's utilisation traces, read from CSV: one `InstanceTrace` per instance, on a time axis that starts at the
/// file's first timestamp.
///
/// The format: a header `timestamp,instance,gpu_index,utilization`, then one row per reading. `timestamp` is ISO 8601
/// (`2025-03-01T09:00:00Z`, with or without fractional seconds, `Z` or an offset; no zone means UTC) or epoch seconds;
/// `utilization` is a number from 0 to 100. A row's value holds until that GPU's next row; an instance is idle (0 %)
/// after its last row and a GPU before its first. Rows may come in any order (they are sorted); two rows for the same
/// GPU at the same time are an error. Blank lines are skipped; fields may be double-quoted.
public struct TraceFile: Equatable, Sendable {
    /// One instance of the file.
    public struct Instance: Equatable, Sendable {
        public var name: String
        /// The `gpu_index` values seen, ascending; the trace's GPUs are in this order.
        public var gpuIndices: [Int]
        public var trace: InstanceTrace
    }

    /// In order of first appearance in the file.
    public var instances: [Instance]
    /// The first timestamp of the file, as epoch seconds: time 0 of the traces.
    public var start: Double
    /// Seconds from the first to the last timestamp of the file.
    public var duration: Double

    /// The header the file must start with.
    public static let header = ["timestamp", "instance", "gpu_index", "utilization"]

    /// Parses a whole file.
    /// - Throws: `TraceCSVError` for the first bad line.
    public static func parse(_ text: String) throws(TraceCSVError) -> TraceFile {
        struct Row {
            var line: Int
            var time: Double
            var utilization: Double
        }
        var sawHeader = false
        var order: [String] = []
        var rows: [String: [Int: [Row]]] = [:]
        var lineNumber = 0
        // "\r\n" is one Character in Swift: split at it as well as at "\n".
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if lineNumber == 1, line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            if line.allSatisfy(\.isWhitespace) { continue }
            let fields = try splitFields(line, line: lineNumber)
            if !sawHeader {
                let names = fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                guard names == header else {
                    throw TraceCSVError(
                        line: lineNumber,
                        "the header must be \(header.joined(separator: ",")) (found \"\(String(line.prefix(80)))\")")
                }
                sawHeader = true
                continue
            }
            guard fields.count == 4 else {
                throw TraceCSVError(
                    line: lineNumber,
                    "\(fields.count) field\(fields.count == 1 ? "" : "s"), expected 4 (\(header.joined(separator: ",")))")
            }
            let values = fields.map { $0.trimmingCharacters(in: .whitespaces) }
            guard let time = parseTimestamp(values[0]) else {
                throw TraceCSVError(
                    line: lineNumber,
                    "timestamp \"\(values[0].prefix(60))\" is neither ISO 8601 (2025-03-01T09:00:00Z) nor epoch seconds")
            }
            let instance = values[1]
            guard !instance.isEmpty else { throw TraceCSVError(line: lineNumber, "instance is empty") }
            guard let gpu = Int(values[2]), (0...1023).contains(gpu) else {
                throw TraceCSVError(
                    line: lineNumber, "gpu_index \"\(values[2].prefix(40))\" is not a whole number from 0 to 1023")
            }
            guard let utilization = Double(values[3]), utilization.isFinite, (0...100).contains(utilization) else {
                throw TraceCSVError(line: lineNumber, "utilization \"\(values[3].prefix(40))\" is not a number 0–100")
            }
            if rows[instance] == nil { order.append(instance) }
            rows[instance, default: [:]][gpu, default: []].append(Row(line: lineNumber, time: time, utilization: utilization))
        }
        guard sawHeader else {
            throw TraceCSVError(line: 0, "the file is empty: it needs the header \(header.joined(separator: ",")) and rows")
        }
        let all = rows.values.flatMap { $0.values.flatMap { $0 } }
        guard let first = all.map(\.time).min(), let last = all.map(\.time).max() else {
            throw TraceCSVError(line: 0, "the file holds no rows after its header")
        }
        var instances: [Instance] = []
        for name in order {
            let gpus = rows[name] ?? [:]
            let instanceEnd = gpus.values.flatMap { $0 }.map(\.time).max() ?? last
            var traces: [GPUTrace] = []
            let indices = gpus.keys.sorted()
            for index in indices {
                let sorted = (gpus[index] ?? []).sorted { ($0.time, $0.line) < ($1.time, $1.line) }
                var segments: [TraceSegment] = []
                for (i, row) in sorted.enumerated() {
                    if i > 0, sorted[i - 1].time == row.time {
                        throw TraceCSVError(
                            line: row.line,
                            "instance \(name) GPU \(index) already has a row at this timestamp (line \(sorted[i - 1].line))")
                    }
                    let end = i + 1 < sorted.count ? sorted[i + 1].time : instanceEnd
                    if end > row.time {
                        segments.append(.constant(row.utilization, from: row.time - first, to: end - first))
                    }
                }
                traces.append(GPUTrace(segments))
            }
            instances.append(Instance(name: name, gpuIndices: indices, trace: InstanceTrace(gpus: traces)))
        }
        return TraceFile(instances: instances, start: first, duration: last - first)
    }

    // MARK: - Fields

    /// Splits one line at commas; a field may be double-quoted (`""` inside is one quote).
    static func splitFields(_ line: Substring, line number: Int) throws(TraceCSVError) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var iterator = line.makeIterator()
        var pending: Character? = nil
        while let character = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else {
                            quoted = false
                            pending = next
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "," {
                fields.append(current)
                current = ""
                wasQuoted = false
            } else if character == "\"" && current.allSatisfy(\.isWhitespace) && !wasQuoted {
                quoted = true
                wasQuoted = true
                current = ""
            } else {
                current.append(character)
            }
        }
        if quoted { throw TraceCSVError(line: number, "a quoted field is not closed") }
        fields.append(current)
        return fields
    }

    // MARK: - Timestamps

    /// Epoch seconds (`1740819600`, `1740819600.5`) or ISO 8601 (`2025-03-01T09:00:00Z`, `2025-03-01 09:00:00.250`,
    /// `2025-03-01T10:00:00+01:00`; no zone is UTC); nil for anything else.
    public static func parseTimestamp(_ text: String) -> Double? {
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), text.filter({ $0 == "." }).count <= 1,
            let seconds = Double(text), seconds.isFinite
        {
            return seconds
        }
        return parseISO8601(text)
    }

    static func parseISO8601(_ text: String) -> Double? {
        let chars = Array(text.utf8)
        var i = 0
        func digits(_ count: Int) -> Int? {
            guard i + count <= chars.count else { return nil }
            var value = 0
            for c in chars[i..<(i + count)] {
                guard c >= 48 && c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            i += count
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < chars.count, chars[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(45), let month = digits(2), expect(45), let day = digits(2) else { return nil }
        guard i < chars.count, chars[i] == 84 || chars[i] == 116 || chars[i] == 32 else { return nil }
        i += 1
        guard let hour = digits(2), expect(58), let minute = digits(2) else { return nil }
        var second = 0.0
        if expect(58) {
            guard let whole = digits(2) else { return nil }
            second = Double(whole)
            if i < chars.count, chars[i] == 46 || chars[i] == 44 {
                i += 1
                let start = i
                var fraction = 0.0
                var scale = 0.1
                while i < chars.count, chars[i] >= 48 && chars[i] <= 57 {
                    fraction += Double(chars[i] - 48) * scale
                    scale /= 10
                    i += 1
                }
                guard i > start else { return nil }
                second += fraction
            }
        }
        var offset = 0
        if i < chars.count {
            if chars[i] == 90 || chars[i] == 122 {
                i += 1
            } else if chars[i] == 43 || chars[i] == 45 {
                let sign = chars[i] == 43 ? 1 : -1
                i += 1
                guard let hours = digits(2), hours <= 23 else { return nil }
                var minutes = 0
                if expect(58) {
                    guard let m = digits(2) else { return nil }
                    minutes = m
                } else if i < chars.count {
                    guard let m = digits(2) else { return nil }
                    minutes = m
                }
                guard minutes <= 59 else { return nil }
                offset = sign * (hours * 3600 + minutes * 60)
            } else {
                return nil
            }
        }
        guard i == chars.count else { return nil }
        guard CivilCalendar.isValid(year: year, month: month, day: day), hour <= 23, minute <= 59, second < 60
        else { return nil }
        let days = CivilCalendar.days(year: year, month: month, day: day)
        return Double(days * 86_400 + hour * 3600 + minute * 60 - offset) + second
    }
}
