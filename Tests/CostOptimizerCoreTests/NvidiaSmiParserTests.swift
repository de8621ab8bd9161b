import CostOptimizerCore
import Foundation
import Testing

/// The probe's output is built from the real H100 captures in `Fixtures/`, joined by the status markers that
/// `NvidiaSmiProbe.remoteCommand` prints.
@Suite("nvidia-smi probe parser")
struct NvidiaSmiParserTests {
    static func fixture(_ name: String) throws -> String {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// What the remote command prints: the query CSV, its marker, then the `-q` report and its marker when given.
    static func probeOutput(query: String, queryStatus: Int32 = 0, report: String? = nil, reportStatus: Int32 = 0)
        -> String
    {
        var text = query + "@@status query \(queryStatus)\n"
        if let report { text += report + "@@status utilization \(reportStatus)\n" }
        return text
    }

    static func readings(_ result: SampleResult) -> [GPUReading] {
        guard case .ok(let readings) = result else { return [] }
        return readings
    }

    static func isFailed(_ result: SampleResult) -> Bool {
        if case .failed = result { return true }
        return false
    }

    static func reason(_ result: SampleResult) -> String {
        if case .failed(let reason) = result { return reason }
        return ""
    }

    // MARK: One test per fixture

    @Test("idle capture: ok, the buffer average 1 % is the utilization")
    func idle() throws {
        let output = Self.probeOutput(
            query: try Self.fixture("h100-query-idle.csv"), report: try Self.fixture("h100-q-utilization-idle.txt"))
        let result = NvidiaSmiProbe.parse(output: output, exitStatus: 0)
        let gpu = try #require(Self.readings(result).first)
        #expect(Self.readings(result).count == 1)
        #expect(gpu.index == 0)
        #expect(gpu.name == "NVIDIA H100 80GB HBM3")
        #expect(gpu.pointUtilization == 0)
        #expect(gpu.bufferAverage == 1)
        #expect(gpu.bufferMax == 65)
        #expect(gpu.memoryUsedMiB == 0)
        #expect(gpu.memoryTotalMiB == 81559)
        #expect(gpu.temperatureC == 37)
        #expect(result.utilization == 1)
    }

    @Test("bursty capture: the point reads 0 % but the buffer average 7 % is what counts")
    func bursty() throws {
        let output = Self.probeOutput(
            query: try Self.fixture("h100-query-idle.csv"), report: try Self.fixture("h100-q-utilization-bursty.txt"))
        let result = NvidiaSmiProbe.parse(output: output, exitStatus: 0)
        let gpu = try #require(Self.readings(result).first)
        #expect(gpu.pointUtilization == 0)
        #expect(gpu.bufferAverage == 7)
        #expect(gpu.bufferMax == 100)
        #expect(result.utilization == 7)
    }

    @Test("busy capture without a -q report: the point value 100 % is used")
    func busy() throws {
        let result = NvidiaSmiProbe.parse(
            output: Self.probeOutput(query: try Self.fixture("h100-query-busy.csv")), exitStatus: 0)
        let gpu = try #require(Self.readings(result).first)
        #expect(gpu.bufferAverage == nil)
        #expect(gpu.memoryUsedMiB == 1011)
        #expect(gpu.temperatureC == 58)
        #expect(result.utilization == 100)
    }

    @Test("busy capture with a failing -q command: still ok from the point value")
    func busyWithFailingReport() throws {
        let output = Self.probeOutput(
            query: try Self.fixture("h100-query-busy.csv"), report: "Unable to query\n", reportStatus: 2)
        #expect(NvidiaSmiProbe.parse(output: output, exitStatus: 0).utilization == 100)
    }

    @Test("header line and units in values (--format=csv) parse")
    func headerAndUnits() throws {
        let output = Self.probeOutput(
            query: try Self.fixture("h100-query-header-units-idle.csv"),
            report: try Self.fixture("h100-q-utilization-idle.txt"))
        let result = NvidiaSmiProbe.parse(output: output, exitStatus: 0)
        let gpu = try #require(Self.readings(result).first)
        #expect(gpu.pointUtilization == 0)
        #expect(gpu.memoryUsedMiB == 0)
        #expect(gpu.memoryTotalMiB == 81559)
        #expect(gpu.temperatureC == 37)
        #expect(result.utilization == 1)
    }

    @Test("the errors capture is a failed sample, as printed and as probe output with its statuses")
    func errors() throws {
        let capture = try Self.fixture("h100-errors.txt")
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: capture, exitStatus: 0)))

        let lines = capture.split(separator: "\n").map(String.init)
        let badField = try #require(lines.first { $0.hasPrefix("Field") })
        let noDevices = try #require(lines.first { $0.hasPrefix("No devices") })
        let invalid = NvidiaSmiProbe.parse(output: Self.probeOutput(query: badField + "\n", queryStatus: 2), exitStatus: 0)
        #expect(Self.reason(invalid).contains("status 2"))
        #expect(Self.reason(invalid).contains("not a valid field"))
        let none = NvidiaSmiProbe.parse(output: Self.probeOutput(query: noDevices + "\n", queryStatus: 6), exitStatus: 0)
        #expect(Self.reason(none) == "nvidia-smi failed (status 6): No devices were found")
        let noneButZero = NvidiaSmiProbe.parse(output: Self.probeOutput(query: noDevices + "\n"), exitStatus: 0)
        #expect(Self.isFailed(noneButZero))
    }

    @Test("the default table is not the probe format: failed")
    func defaultTable() throws {
        let table = try Self.fixture("h100-default-table.txt")
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: table, exitStatus: 0)))
        let asQuery = NvidiaSmiProbe.parse(output: Self.probeOutput(query: table), exitStatus: 0)
        #expect(Self.reason(asQuery).hasPrefix("unparsable nvidia-smi output"))
    }

    @Test("compute-apps captures are not GPU readings: failed")
    func computeApps() throws {
        let busy = Self.probeOutput(query: try Self.fixture("h100-compute-apps-busy.csv"))
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: busy, exitStatus: 0)))
        let idle = Self.probeOutput(query: try Self.fixture("h100-compute-apps-idle.csv"))
        #expect(Self.reason(NvidiaSmiProbe.parse(output: idle, exitStatus: 0)) == "nvidia-smi listed no GPU (status 0)")
    }

    // MARK: Several GPUs

    /// A `-q` report for several GPUs, made of the captured one's header and its GPU block under each bus id.
    static func report(blocks: [(busID: String, capture: String)]) throws -> String {
        var header = ""
        var text = ""
        for (busID, name) in blocks {
            let capture = try fixture(name)
            let start = try #require(capture.range(of: "GPU 00000000:00:06.0"))
            header = String(capture[..<start.lowerBound]).replacingOccurrences(
                of: "Attached GPUs                                          : 1",
                with: "Attached GPUs                                          : \(blocks.count)")
            text += "GPU \(busID)" + capture[start.upperBound...]
        }
        return header + text
    }

    @Test("four GPUs, one busy: the instance utilization is the maximum, blocks matched by bus id")
    func fourGPUsOneBusy() throws {
        let query = """
            0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 0, 0, 81559, 37
            1, 00000000:00:07.0, NVIDIA H100 80GB HBM3, 0, 10767, 81559, 36
            2, 00000000:0A:00.0, NVIDIA H100 80GB HBM3, 100, 1011, 81559, 58
            3, 00000000:0B:00.0, NVIDIA H100 80GB HBM3, [N/A], [N/A], 81559, [N/A]

            """
        // In another order than the CSV, one bus id in lower case, and no block for GPU 2.
        let report = try Self.report(blocks: [
            ("00000000:0b:00.0", "h100-q-utilization-bursty.txt"),
            ("00000000:00:07.0", "h100-q-utilization-idle.txt"),
            ("0000:00:06.0", "h100-q-utilization-idle.txt"),
        ])
        let result = NvidiaSmiProbe.parse(output: Self.probeOutput(query: query, report: report), exitStatus: 0)
        let gpus = Self.readings(result)
        #expect(gpus.map(\.index) == [0, 1, 2, 3])
        #expect(gpus.map(\.busID) == ["00000000:00:06.0", "00000000:00:07.0", "00000000:0A:00.0", "00000000:0B:00.0"])
        #expect(gpus.map(\.utilization) == [1, 1, 100, 7])
        #expect(gpus[1].memoryUsedMiB == 10767)
        #expect(gpus[3].memoryUsedMiB == nil)
        #expect(gpus[3].temperatureC == nil)
        #expect(gpus[3].bufferMax == 100)
        #expect(result.utilization == 100)
    }

    @Test("four GPUs, all idle but one bursty: the bursty average keeps the instance above zero")
    func fourGPUsOneBursty() throws {
        let query = (0..<4).map { "\($0), 00000000:0\($0):00.0, NVIDIA H100 80GB HBM3, 0, 0, 81559, 37" }
            .joined(separator: "\n") + "\n"
        let report = try Self.report(blocks: (0..<4).map {
            ("00000000:0\($0):00.0", $0 == 2 ? "h100-q-utilization-bursty.txt" : "h100-q-utilization-idle.txt")
        })
        let result = NvidiaSmiProbe.parse(output: Self.probeOutput(query: query, report: report), exitStatus: 0)
        #expect(Self.readings(result).map(\.utilization) == [1, 1, 7, 1])
        #expect(result.utilization == 7)
    }

    // MARK: Unreadable values

    @Test("[N/A] utilization without a buffer average: the whole sample failed")
    func notAvailable() {
        let query = "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, [N/A], 0, 81559, 37\n"
        let result = NvidiaSmiProbe.parse(output: Self.probeOutput(query: query), exitStatus: 0)
        #expect(Self.reason(result) == "GPU 0 reports no utilization ([N/A])")
    }

    @Test("[Not Supported] utilization on one GPU of two: the whole sample failed")
    func notSupported() {
        let query = """
            0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 0, 0, 81559, 37
            1, 00000000:00:07.0, NVIDIA H100 80GB HBM3, [Not Supported], 0, 81559, 37

            """
        let result = NvidiaSmiProbe.parse(output: Self.probeOutput(query: query), exitStatus: 0)
        #expect(Self.reason(result) == "GPU 1 reports no utilization ([Not Supported])")
    }

    @Test("[N/A] utilization with a buffer average: the average stands in")
    func notAvailableWithBuffer() throws {
        let query = "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, [N/A], [N/A], [N/A], [N/A]\n"
        let output = Self.probeOutput(query: query, report: try Self.fixture("h100-q-utilization-bursty.txt"))
        let result = NvidiaSmiProbe.parse(output: output, exitStatus: 0)
        let gpu = try #require(Self.readings(result).first)
        #expect(gpu.utilization == 7)
        #expect(gpu.memoryUsedMiB == nil)
    }

    @Test("NaN, negative, over 100 % and hexadecimal utilization values are unreadable", arguments: [
        "nan", "NaN", "-1", "101", "0x10", "inf", "", "12abc",
    ])
    func oddNumbers(value: String) {
        let query = "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, \(value), 0, 81559, 37\n"
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: Self.probeOutput(query: query), exitStatus: 0)))
    }

    // MARK: Failures

    @Test("driver failure text is a failed sample, whatever the status")
    func driverError() {
        let text =
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest"
            + " NVIDIA driver is installed and running.\n"
        let withStatus = NvidiaSmiProbe.parse(output: Self.probeOutput(query: text, queryStatus: 9), exitStatus: 0)
        #expect(Self.reason(withStatus).hasPrefix("nvidia-smi failed (status 9): NVIDIA-SMI has failed"))
        let withZero = NvidiaSmiProbe.parse(output: Self.probeOutput(query: text), exitStatus: 0)
        #expect(Self.reason(withZero).hasPrefix("nvidia-smi failed (status 0): NVIDIA-SMI has failed"))
    }

    @Test("missing nvidia-smi or timeout (status 127) is a failed sample")
    func commandNotFound() {
        let result = NvidiaSmiProbe.parse(output: "@@status query 127\n", exitStatus: 0)
        #expect(Self.reason(result) == "nvidia-smi or timeout is missing on the instance (status 127)")
    }

    @Test("a remote timeout (status 124) is a failed sample")
    func remoteTimeout() {
        let result = NvidiaSmiProbe.parse(output: "@@status query 124\n", exitStatus: 0)
        #expect(Self.reason(result) == "nvidia-smi timed out on the instance (status 124)")
    }

    @Test("exit status 255 is a failed sample even when the output looks fine")
    func status255() throws {
        let output = Self.probeOutput(
            query: try Self.fixture("h100-query-idle.csv"), report: try Self.fixture("h100-q-utilization-idle.txt"))
        let result = NvidiaSmiProbe.parse(output: output, exitStatus: 255)
        #expect(Self.reason(result).hasPrefix("ssh failed (status 255)"))
        #expect(Self.reason(NvidiaSmiProbe.parse(output: "", exitStatus: 1)) == "remote command failed (status 1)")
    }

    @Test("empty output is a failed sample")
    func emptyOutput() {
        #expect(Self.reason(NvidiaSmiProbe.parse(output: "", exitStatus: 0)) == "no output from the instance (status 0)")
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: "\n \n", exitStatus: 0)))
    }

    @Test("garbage, a CSV without its marker and a truncated row are failed samples", arguments: [
        "\u{1B}[31mhello\u{0}\n", "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 0, 0, 81559, 37\n",
        "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 0\n@@status query 0\n",
        "x, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 0, 0, 81559, 37\n@@status query 0\n",
    ])
    func garbage(output: String) {
        #expect(Self.isFailed(NvidiaSmiProbe.parse(output: output, exitStatus: 0)))
    }

    @Test("a marker glued to a last line without newline still splits the sections")
    func markerWithoutNewline() throws {
        let query = try Self.fixture("h100-query-busy.csv").trimmingCharacters(in: .newlines)
        #expect(NvidiaSmiProbe.parse(output: Self.probeOutput(query: query), exitStatus: 0).utilization == 100)
    }

    // MARK: The remote command

    @Test("the remote command runs both nvidia-smi calls under timeout, each followed by its status marker")
    func remoteCommand() {
        let command = NvidiaSmiProbe.remoteCommand
        #expect(command.hasPrefix("sh -c '") && command.hasSuffix("'"))
        #expect(command.dropFirst(7).dropLast().contains("'") == false)
        #expect(
            command.contains(
                "timeout -k 5 20 nvidia-smi --query-gpu=index,pci.bus_id,name,utilization.gpu,memory.used,"
                    + "memory.total,temperature.gpu --format=csv,noheader,nounits; s=$?; echo \"@@status query $s\""))
        #expect(command.contains("timeout -k 5 20 nvidia-smi -q -d UTILIZATION; echo \"@@status utilization $?\""))
    }
}
