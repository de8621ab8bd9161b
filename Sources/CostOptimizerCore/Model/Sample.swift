#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one GPU reported in one sample.
public struct GPUReading: Codable, Equatable, Sendable {
    /// `index` from `--query-gpu`.
    public var index: Int
    /// `pci.bus_id`, used to match the `-q -d UTILIZATION` block to this GPU.
    public var busID: String?
    public var name: String?
    /// The instantaneous `utilization.gpu` (%): a point reading that misses bursty work.
    public var pointUtilization: Double
    /// The driver's sample-buffer average over its last ~14 s, when `-q -d UTILIZATION` gave one.
    public var bufferAverage: Double?
    /// The driver's sample-buffer maximum over the same period.
    public var bufferMax: Double?
    public var memoryUsedMiB: Double?
    public var memoryTotalMiB: Double?
    public var temperatureC: Double?

    public init(
        index: Int, busID: String? = nil, name: String? = nil, pointUtilization: Double, bufferAverage: Double? = nil,
        bufferMax: Double? = nil, memoryUsedMiB: Double? = nil, memoryTotalMiB: Double? = nil,
        temperatureC: Double? = nil
    ) {
        self.index = index
        self.busID = busID
        self.name = name
        self.pointUtilization = pointUtilization
        self.bufferAverage = bufferAverage
        self.bufferMax = bufferMax
        self.memoryUsedMiB = memoryUsedMiB
        self.memoryTotalMiB = memoryTotalMiB
        self.temperatureC = temperatureC
    }

    /// The GPU's utilisation for a sample: the buffer's average where present, else the point value.
    public var utilization: Double { bufferAverage ?? pointUtilization }
}

/// The outcome of sampling one instance once. A failure is "no evidence", never idleness.
public enum SampleResult: Equatable, Sendable {
    /// At least one GPU answered with parsable numbers.
    case ok([GPUReading])
    /// ssh failed, nvidia-smi failed, or its output could not be read; the reason is for people.
    case failed(String)

    /// The instance's utilisation: the maximum over its GPUs (one busy GPU keeps the instance busy).
    public var utilization: Double? {
        guard case .ok(let gpus) = self, !gpus.isEmpty else { return nil }
        return gpus.map(\.utilization).max()
    }
}

/// One instance as listed this cycle, with the sample taken of it (nil when it was not sampled: not running,
/// no ssh endpoint, or not managed).
public struct Observation: Equatable, Sendable {
    public var instance: Instance
    public var sample: SampleResult?

    public init(instance: Instance, sample: SampleResult?) {
        self.instance = instance
        self.sample = sample
    }
}
