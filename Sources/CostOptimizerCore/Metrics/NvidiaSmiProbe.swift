#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The remote command that reads an instance's GPUs, and the parser of what it prints.
///
/// The command prints the `--query-gpu` CSV, a marker line `@@status query <status>`, then (only when the query
/// succeeded) the `-q -d UTILIZATION` report and `@@status utilization <status>`. The parser turns that text into a
/// `SampleResult`. Anything it cannot read with certainty is `.failed`: unknown is never idle.
public enum NvidiaSmiProbe {
    /// The fields asked of `--query-gpu`, in order.
    public static let queryFields = [
        "index", "pci.bus_id", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu",
    ]

    /// The constant command sent over ssh (never built from API data).
    ///
    /// It runs under a POSIX `sh` whatever the remote login shell is. Each `nvidia-smi` is bounded by
    /// `timeout -k 5 20` (a hung driver must not keep the call alive), and each is followed by a marker with its exit
    /// status. The `-q` report is skipped when the query failed: the sample has failed anyway, and a wedged GPU
    /// would otherwise hold the call for a second timeout.
    public static let remoteCommand =
        "sh -c 'timeout -k 5 20 nvidia-smi --query-gpu=\(queryFields.joined(separator: ","))"
        + " --format=csv,noheader,nounits; s=$?; echo \"\(marker)query $s\"; if [ \"$s\" -eq 0 ]; then"
        + " timeout -k 5 20 nvidia-smi -q -d UTILIZATION; echo \"\(marker)utilization $?\"; fi'"

    /// The prefix of a status line: `@@status query 0`, `@@status utilization 0`.
    public static let marker = "@@status "
    static let markerFirstByte = UInt8(ascii: "@")

    /// Turns the probe's stdout and ssh's exit status into a sample.
    ///
    /// - Parameters:
    ///   - output: the remote command's stdout.
    ///   - exitStatus: ssh's exit status (255 is ssh's own failure; otherwise the remote shell's).
    /// - Returns: `.ok` with one reading per GPU, or `.failed` with a short reason that names the status.
    public static func parse(output: String, exitStatus: Int32) -> SampleResult {
        if exitStatus != 0 {
            let what = exitStatus == 255 ? "ssh failed" : "remote command failed"
            return .failed(withDetail("\(what) (status \(exitStatus))", firstLine(of: output)))
        }
        guard !output.trimmed.isEmpty else { return .failed("no output from the instance (status 0)") }
        let sections = Sections(output)
        guard let queryStatus = sections.queryStatus else {
            return .failed(withDetail("unrecognised probe output (no status marker)", firstLine(of: output)))
        }
        if let reason = queryFailure(status: queryStatus, text: sections.query) {
            return .failed(reason)
        }
        let rows: [Row]
        switch parseQuery(sections.query) {
        case .success(let parsed): rows = parsed
        case .failure(let problem): return .failed(problem.reason)
        }
        guard !rows.isEmpty else { return .failed("nvidia-smi listed no GPU (status 0)") }
        let buffers = sections.utilizationStatus == 0 ? parseUtilizationReport(sections.utilization) : []
        return combine(rows, buffers)
    }
}

// MARK: - Sections and failures

extension NvidiaSmiProbe {
    /// The output split at the status markers.
    struct Sections {
        var query: [Substring] = []
        var queryStatus: Int32?
        var utilization: [Substring] = []
        var utilizationStatus: Int32?

        init(_ output: String) {
            // Split on the newline byte: splitting on the Character would walk grapheme clusters, slowly, and would
            // keep "\r\n" (one Character) unsplit.
            for bytes in output.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                let whole = Substring(bytes)
                let line = whole.utf8.last == UInt8(ascii: "\r") ? whole.dropLast() : whole
                // A marker may follow text that lacked a final newline: the text before it still belongs to the section.
                // Searched for only in lines holding its first byte: the search is slow, and runs for every sample.
                let markerRange =
                    line.utf8.contains(NvidiaSmiProbe.markerFirstByte) ? line.firstRange(of: NvidiaSmiProbe.marker) : nil
                let text = markerRange.map { line[..<$0.lowerBound] } ?? line
                if !text.isEmpty {
                    if queryStatus == nil {
                        query.append(text)
                    } else if utilizationStatus == nil {
                        utilization.append(text)
                    }
                }
                guard let markerRange else { continue }
                let words = line[markerRange.upperBound...].split(separator: " ")
                guard words.count == 2, let status = Int32(words[1]) else { continue }
                if words[0] == "query", queryStatus == nil {
                    queryStatus = status
                } else if words[0] == "utilization", queryStatus != nil, utilizationStatus == nil {
                    utilizationStatus = status
                }
            }
        }
    }

    /// Texts nvidia-smi prints when it cannot read the GPUs, whatever its exit status.
    static let failureTexts = [
        "No devices were found", "NVIDIA-SMI has failed", "couldn't communicate with the NVIDIA driver",
        "Unable to determine the device handle",
    ]

    /// The reason the query section is no sample, or nil when it may hold readings.
    static func queryFailure(status: Int32, text: [Substring]) -> String? {
        let lines = text.map(\.trimmed).filter { !$0.isEmpty }
        switch status {
        case 0:
            let failure = lines.first { line in failureTexts.contains { line.contains($0) } }
            return failure.map { withDetail("nvidia-smi failed (status 0)", $0) }
        case 124, 137:
            return "nvidia-smi timed out on the instance (status \(status))"
        case 126:
            return withDetail("nvidia-smi or timeout cannot be run on the instance (status 126)", lines.first)
        case 127:
            return withDetail("nvidia-smi or timeout is missing on the instance (status 127)", lines.first)
        default:
            return withDetail("nvidia-smi failed (status \(status))", lines.first)
        }
    }

    static func withDetail(_ reason: String, _ detail: String?) -> String {
        guard let detail, !detail.isEmpty else { return reason }
        return "\(reason): \(detail.count > 120 ? String(detail.prefix(120)) + "…" : detail)"
    }

    static func firstLine(of text: String) -> String? {
        text.split(separator: "\n").lazy.map(\.trimmed).first { !$0.isEmpty }
    }
}

// MARK: - The query CSV

extension NvidiaSmiProbe {
    /// One CSV row.
    struct Row {
        var index: Int
        var busID: String?
        var name: String?
        /// nil when nvidia-smi printed `[N/A]`, `[Not Supported]` or another non-number.
        var utilization: Double?
        var rawUtilization: String
        var memoryUsed: Double?
        var memoryTotal: Double?
        var temperature: Double?
    }

    struct Problem: Error {
        var reason: String
    }

    /// Column layouts accepted without a header line, recognised by their width: the probe's own, and the wider set
    /// (with `uuid`, `utilization.memory` and `power.draw`) of the repository's H100 captures.
    static let headerlessLayouts: [[String]] = [
        queryFields,
        [
            "index", "uuid", "name", "utilization.gpu", "utilization.memory", "memory.used", "memory.total",
            "temperature.gpu", "power.draw",
        ],
    ]

    static func parseQuery(_ lines: [Substring]) -> Result<[Row], Problem> {
        let lines = lines.map(\.trimmed).filter { !$0.isEmpty }
        guard let first = lines.first else { return .success([]) }
        var fields: [String]?
        var body = lines[...]
        if cells(first).first == "index" {
            // `--format=csv` with its header: `utilization.gpu [%]` names the field `utilization.gpu`.
            fields = cells(first).map { name in
                String(name.split(separator: " [", maxSplits: 1).first ?? Substring(name))
            }
            body = body.dropFirst()
        }
        var rows: [Row] = []
        for line in body {
            let values = cells(line)
            guard let names = fields ?? headerlessLayouts.first(where: { $0.count == values.count }),
                names.count == values.count, names.contains("index"), names.contains("utilization.gpu")
            else {
                return .failure(Problem(reason: withDetail("unparsable nvidia-smi output", line)))
            }
            let row = Dictionary(zip(names, values), uniquingKeysWith: { first, _ in first })
            guard let indexText = row["index"], let index = Int(indexText), index >= 0 else {
                return .failure(Problem(reason: withDetail("unparsable nvidia-smi output", line)))
            }
            let rawUtilization = row["utilization.gpu"] ?? ""
            rows.append(
                Row(
                    index: index, busID: row["pci.bus_id"].flatMap(bareText), name: row["name"].flatMap(bareText),
                    utilization: percentage(rawUtilization), rawUtilization: rawUtilization,
                    memoryUsed: row["memory.used"].flatMap(number), memoryTotal: row["memory.total"].flatMap(number),
                    temperature: row["temperature.gpu"].flatMap(number)))
        }
        return .success(rows)
    }

    static func cells(_ line: String) -> [String] {
        line.split(separator: ",", omittingEmptySubsequences: false).map(\.trimmed)
    }

    /// A text value, or nil for `[N/A]`-style placeholders and blanks.
    static func bareText(_ text: String) -> String? {
        text.isEmpty || text.hasPrefix("[") || text == "N/A" ? nil : text
    }

    /// A non-negative decimal number, with or without a unit (`0 %`, `81559 MiB`, `37 C`); nil for anything else.
    static func number(_ text: some StringProtocol) -> Double? {
        var digits = Substring(text.trimmed)
        if let space = digits.firstIndex(of: " ") {
            let unit = digits[space...].trimmed
            guard !unit.isEmpty, unit.allSatisfy(\.isLetter) || unit == "%" else { return nil }
            digits = digits[..<space]
        }
        if digits.hasSuffix("%") { digits = digits.dropLast() }
        guard digits.contains(where: \.isNumber),
            digits.allSatisfy({ $0 == "." || ("0"..."9").contains($0) }),
            let value = Double(digits), value.isFinite
        else { return nil }
        return value
    }

    /// A utilisation in 0...100, or nil.
    static func percentage(_ text: some StringProtocol) -> Double? {
        guard let value = number(text), value <= 100 else { return nil }
        return value
    }
}

// MARK: - The `-q -d UTILIZATION` report

extension NvidiaSmiProbe {
    /// One GPU's "GPU Utilization Samples" block.
    struct Buffer {
        var busID: String
        var average: Double?
        var maximum: Double?
    }

    /// Reads each `GPU <bus id>` block's "GPU Utilization Samples" Avg and Max.
    static func parseUtilizationReport(_ lines: [Substring]) -> [Buffer] {
        var buffers: [Buffer] = []
        var inSamples = false
        for line in lines {
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmed
            if indent == 0, text.hasPrefix("GPU ") {
                buffers.append(Buffer(busID: String(text.dropFirst(4)).trimmed))
                inSamples = false
            } else if indent <= 4 {
                inSamples = !buffers.isEmpty && text == "GPU Utilization Samples"
            } else if inSamples, let colon = text.firstIndex(of: ":") {
                let key = text[..<colon].trimmed
                let value = percentage(text[text.index(after: colon)...])
                if key == "Avg" {
                    buffers[buffers.count - 1].average = value
                } else if key == "Max" {
                    buffers[buffers.count - 1].maximum = value
                }
            }
        }
        return buffers
    }

    /// `00000000:00:06.0` and `0000:00:06.0` name the same GPU.
    static func normalizedBusID(_ id: String) -> String {
        var parts = id.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3 {
            let domain = parts[0].drop { $0 == "0" }
            parts[0] = domain.isEmpty ? "0" : String(domain)
        }
        return parts.joined(separator: ":")
    }

    /// Pairs each row with its buffer (by bus id; by order when the CSV has no bus ids) and builds the sample.
    static func combine(_ rows: [Row], _ buffers: [Buffer]) -> SampleResult {
        let byBusID = Dictionary(
            buffers.map { (normalizedBusID($0.busID), $0) }, uniquingKeysWith: { first, _ in first })
        let matchByOrder = rows.contains { $0.busID == nil } && rows.count == buffers.count
        var readings: [GPUReading] = []
        for (position, row) in rows.enumerated() {
            let buffer =
                matchByOrder ? buffers[position] : row.busID.flatMap { byBusID[normalizedBusID($0)] }
            let average = buffer?.average
            // A point value nvidia-smi could not read counts only when the buffer's average stands in for it.
            guard let point = row.utilization ?? average else {
                let raw = row.rawUtilization.isEmpty ? "nothing" : row.rawUtilization
                return .failed("GPU \(row.index) reports no utilization (\(raw))")
            }
            readings.append(
                GPUReading(
                    index: row.index, busID: row.busID, name: row.name, pointUtilization: point,
                    bufferAverage: average, bufferMax: buffer?.maximum, memoryUsedMiB: row.memoryUsed,
                    memoryTotalMiB: row.memoryTotal, temperatureC: row.temperature))
        }
        return .ok(readings)
    }
}
