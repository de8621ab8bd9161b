import CostOptimizer
import CostOptimizerCore
import Foundation

/// One simulated GPU, as the probe would read it.
public struct SyntheticGPU: Equatable, Sendable {
    public var name: String
    /// The PCI bus id; nil gives one derived from the GPU's position (`00000000:01:00.0` for the first).
    public var busID: String?
    /// The instantaneous `utilization.gpu` (%).
    public var point: Double
    /// The sample buffer's average (%); nil prints `N/A` in the `-q` report.
    public var average: Double?
    /// The sample buffer's maximum (%); nil uses the average.
    public var max: Double?
    public var memoryUsedMiB: Double
    public var memoryTotalMiB: Double
    public var temperature: Double

    public init(
        name: String = "NVIDIA H100 80GB HBM3", busID: String? = nil, point: Double, average: Double? = nil,
        max: Double? = nil, memoryUsedMiB: Double = 0, memoryTotalMiB: Double = 81559, temperature: Double = 37
    ) {
        self.name = name
        self.busID = busID
        self.point = point
        self.average = average
        self.max = max
        self.memoryUsedMiB = memoryUsedMiB
        self.memoryTotalMiB = memoryTotalMiB
        self.temperature = temperature
    }

    /// The idle H100 capture: point 0 %, buffer average 1 %, max 65 %.
    public static let idle = SyntheticGPU(point: 0, average: 1, max: 65)
    /// The bursty H100 capture: point 0 %, buffer average 7 %, max 100 %.
    public static let bursty = SyntheticGPU(point: 0, average: 7, max: 100)
    /// The busy H100 capture: 100 % throughout.
    public static let busy = SyntheticGPU(point: 100, average: 100, max: 100, memoryUsedMiB: 1011, temperature: 58)
}

/// The exact stdout of `NvidiaSmiProbe.remoteCommand` on simulated GPUs, as plain text (the demo writes it to files
/// that a fake ssh prints).
public enum SyntheticNvidiaSmi {
    /// Ways the probe fails on an instance.
    public enum Failure: Sendable, CaseIterable {
        /// No GPU visible: nvidia-smi prints "No devices were found" and exits 6.
        case noDevices
        /// The driver is not loaded: nvidia-smi prints its "couldn't communicate" message and exits 9.
        case driverNotLoaded
        /// nvidia-smi is not installed: `timeout` exits 127 (its message goes to stderr).
        case notInstalled
        /// nvidia-smi hung and `timeout` killed it: status 124.
        case timedOut
    }

    /// The probe's stdout: the query CSV, its marker, the `-q -d UTILIZATION` report modelled on the H100 capture,
    /// and its marker.
    public static func output(_ gpus: [SyntheticGPU]) -> String {
        var text = ""
        for (index, gpu) in gpus.enumerated() {
            let fields = [
                "\(index)", busID(gpu, index), gpu.name, number(gpu.point), number(gpu.memoryUsedMiB),
                number(gpu.memoryTotalMiB), number(gpu.temperature),
            ]
            text += fields.joined(separator: ", ") + "\n"
        }
        text += NvidiaSmiProbe.marker + "query 0\n"
        text += utilizationReport(gpus)
        text += NvidiaSmiProbe.marker + "utilization 0\n"
        return text
    }

    /// The probe's stdout when it fails.
    public static func failure(_ failure: Failure) -> String {
        switch failure {
        case .noDevices:
            "No devices were found\n" + NvidiaSmiProbe.marker + "query 6\n"
        case .driverNotLoaded:
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest"
                + " NVIDIA driver is installed and running.\n\n" + NvidiaSmiProbe.marker + "query 9\n"
        case .notInstalled:
            NvidiaSmiProbe.marker + "query 127\n"
        case .timedOut:
            NvidiaSmiProbe.marker + "query 124\n"
        }
    }

    /// The `nvidia-smi -q -d UTILIZATION` report, laid out as the driver 580 capture is.
    public static func utilizationReport(_ gpus: [SyntheticGPU]) -> String {
        var lines = [
            "", "==============NVSMI LOG==============", "",
            row(0, "Timestamp", "Tue Nov 24 14:49:51 2026"),
            row(0, "Driver Version", "580.159.04"),
            row(0, "CUDA Version", "13.0"),
            "",
            row(0, "Attached GPUs", "\(gpus.count)"),
        ]
        for (index, gpu) in gpus.enumerated() {
            lines.append("GPU \(busID(gpu, index))")
            lines.append("    Utilization")
            lines.append(row(8, "GPU", percent(gpu.point)))
            for engine in ["Memory", "Encoder", "Decoder", "JPEG", "OFA"] {
                lines.append(row(8, engine, "0 %"))
            }
            let average = gpu.average
            lines += samples("GPU", max: gpu.max ?? average, min: average.map { _ in 0 }, average: average)
            for engine in ["Memory", "ENC", "DEC", "JPG", "OFA"] {
                lines += samples(engine, max: 0, min: 0, average: 0)
            }
            lines.append("")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func samples(_ engine: String, max: Double?, min: Double?, average: Double?) -> [String] {
        let known = average != nil
        return [
            "    \(engine) Utilization Samples",
            row(8, "Duration", known ? "14.00 sec" : "N/A"),
            row(8, "Number of Samples", known ? "71" : "N/A"),
            row(8, "Max", max.map(percent) ?? "N/A"),
            row(8, "Min", min.map(percent) ?? "N/A"),
            row(8, "Avg", average.map(percent) ?? "N/A"),
        ]
    }

    /// `key` indented and padded so the colon sits in column 56, as nvidia-smi prints it.
    static func row(_ indent: Int, _ key: String, _ value: String) -> String {
        let label = String(repeating: " ", count: indent) + key
        return label + String(repeating: " ", count: Swift.max(1, 55 - label.count)) + ": " + value
    }

    static func busID(_ gpu: SyntheticGPU, _ index: Int) -> String {
        if let busID = gpu.busID { return busID }
        let bus = String(index + 1, radix: 16, uppercase: true)
        return "00000000:" + String(repeating: "0", count: Swift.max(0, 2 - bus.count)) + bus + ":00.0"
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func percent(_ value: Double) -> String { number(value) + " %" }
}
