import CostOptimizerCore
import Foundation

/// The GPUs of a Compute Engine instance, as far as they are known.
public struct GCEGPU: Equatable, Sendable {
    /// The accelerator type (`nvidia-tesla-a100`), the key of the price table; nil for a GPU family not in the table.
    public var acceleratorType: String?
    /// A display name (`A100 40GB`); nil when unknown.
    public var model: String?
    /// GPUs per instance; nil when the machine shape is not in the table.
    public var count: Int?

    /// A GPU description; any part may be unknown.
    public init(acceleratorType: String?, model: String?, count: Int?) {
        self.acceleratorType = acceleratorType
        self.model = model
        self.count = count
    }
}

/// Which GPUs a Compute Engine machine type carries, and what a GPU hour costs.
///
/// ## Accelerator-optimised machine types
///
/// A2, A3, A4, G2 and G4 VMs come with their GPUs built in, so the instance is a GPU instance even where
/// `guestAccelerators` is empty. The family (the first two dash-separated parts of the machine type) names the GPU;
/// the count is the `<N>g` third part for A families (`a2-highgpu-8g` → 8) and depends on the vCPU count for G
/// families:
///
/// | family | GPU (accelerator type) | count |
/// |---|---|---|
/// | `a2-highgpu`, `a2-megagpu` | A100 40GB (`nvidia-tesla-a100`) | `-1g`…`-16g` |
/// | `a2-ultragpu` | A100 80GB (`nvidia-a100-80gb`) | `-1g`…`-8g` |
/// | `a3-highgpu`, `a3-edgegpu` | H100 80GB (`nvidia-h100-80gb`) | `-1g`…`-8g` |
/// | `a3-megagpu` | H100 80GB (`nvidia-h100-mega-80gb`) | `-8g` |
/// | `a3-ultragpu` | H200 (`nvidia-h200-141gb`) | `-8g` |
/// | `a4-highgpu` | B200 (`nvidia-b200`) | `-8g` |
/// | `a4x-highgpu` | GB200 (`nvidia-gb200`) | `-4g` |
/// | `g2-standard` | L4 (`nvidia-l4`) | 4, 8, 12, 16, 32 vCPUs → 1; 24 → 2; 48 → 4; 96 → 8 |
/// | `g4-standard` | RTX PRO 6000 (`nvidia-rtx-pro-6000`) | 48 vCPUs → 1; 96 → 2; 192 → 4; 384 → 8 |
///
/// Sources and certainty: the `a2-highgpu-8g` example and the rule "also derive the GPU from `machineType`" come from
/// `shared/docs/providers.md` §3.2; the rest is Google's "GPU machine types" documentation as remembered, **not** from
/// a stored copy. The A2, A3 (high, mega, edge, ultra), A4 and G2 rows are well established; the A4X and G4 rows
/// (newer families) and G4's vCPU-to-GPU steps are the least certain. A machine type of family `a2`, `a3`, `a4`,
/// `a4x`, `g2` or `g4` that is not in the table still counts as a GPU instance (managed), with the GPU model and count
/// unknown: being managed only allows an action on measured evidence, never without it.
///
/// ## Prices
///
/// The Compute Engine API returns no price, so `onDemandPricePerGPUHour` is a built-in table of on-demand
/// **GPU-only** prices in US dollars per GPU-hour (no vCPU, memory, disk or network; no committed-use or spot
/// discounts), as listed for `us-central1` on https://cloud.google.com/compute/gpus-pricing and the
/// accelerator-optimised VM pricing pages, as remembered for early 2025 (`pricesAsOf`) and **not re-checked against the
/// live page**. Other regions differ by up to about 30 %. The T4, P4, P100, V100, A100 40GB and A100 80GB figures are
/// the long-standing list prices; L4 is the GPU share of a G2 VM; the H100, H200 and B200 figures are rough
/// per-GPU shares of the A3/A4 VM prices and may be off by 20 % or more. GB200 and RTX PRO 6000 have no entry (the
/// cost stays unknown). The figure is only shown and notified (`costEstimated`); it never drives a decision.
/// `GCP_PRICE_OVERRIDES` (`nvidia-tesla-t4=0.35,...`) replaces entries or adds new accelerator types.
public enum GCEMachineTypes {
    /// When the built-in prices were last taken from Google's price pages (approximately; see the type's doc).
    public static let pricesAsOf = "2025-03 (approximate, us-central1, on-demand, GPU only)"

    /// On-demand US dollars per GPU-hour by accelerator type; see the type's documentation for sources and caveats.
    public static let onDemandPricePerGPUHour: [String: Double] = [
        "nvidia-tesla-t4": 0.35,
        "nvidia-tesla-p4": 0.60,
        "nvidia-tesla-p100": 1.46,
        "nvidia-tesla-v100": 2.48,
        "nvidia-l4": 0.56,
        "nvidia-tesla-a100": 2.93,
        "nvidia-a100-80gb": 3.93,
        "nvidia-h100-80gb": 11.06,
        "nvidia-h100-mega-80gb": 11.06,
        "nvidia-h200-141gb": 10.60,
        "nvidia-b200": 14.00,
    ]

    /// Display names by accelerator type.
    public static let models: [String: String] = [
        "nvidia-tesla-t4": "T4",
        "nvidia-tesla-p4": "P4",
        "nvidia-tesla-p100": "P100",
        "nvidia-tesla-v100": "V100",
        "nvidia-tesla-k80": "K80",
        "nvidia-l4": "L4",
        "nvidia-tesla-a100": "A100 40GB",
        "nvidia-a100-80gb": "A100 80GB",
        "nvidia-h100-80gb": "H100 80GB",
        "nvidia-h100-mega-80gb": "H100 80GB",
        "nvidia-h200-141gb": "H200",
        "nvidia-b200": "B200",
        "nvidia-gb200": "GB200",
        "nvidia-rtx-pro-6000": "RTX PRO 6000",
    ]

    /// Accelerator type by machine family (the machine type's first two parts).
    static let families: [String: String] = [
        "a2-highgpu": "nvidia-tesla-a100",
        "a2-megagpu": "nvidia-tesla-a100",
        "a2-ultragpu": "nvidia-a100-80gb",
        "a3-highgpu": "nvidia-h100-80gb",
        "a3-edgegpu": "nvidia-h100-80gb",
        "a3-megagpu": "nvidia-h100-mega-80gb",
        "a3-ultragpu": "nvidia-h200-141gb",
        "a4-highgpu": "nvidia-b200",
        "a4x-highgpu": "nvidia-gb200",
        "g2-standard": "nvidia-l4",
        "g4-standard": "nvidia-rtx-pro-6000",
    ]

    /// Machine series whose every machine type carries GPUs.
    static let gpuSeries: Set<String> = ["a2", "a3", "a4", "a4x", "g2", "g4"]

    /// GPUs by vCPU count for the G families, where the name does not say the GPU count.
    static let gpusByVCPU: [String: [Int: Int]] = [
        "g2-standard": [4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8],
        "g4-standard": [48: 1, 96: 2, 192: 4, 384: 8],
    ]

    /// The GPUs built into an accelerator-optimised machine type, or nil for any other machine type (N1, N2, E2,
    /// custom…, whose GPUs, if any, are listed in `guestAccelerators`).
    /// - Parameter machineType: a name (`a2-highgpu-8g`) or the instance's `machineType` URL.
    public static func gpu(forMachineType machineType: String) -> GCEGPU? {
        let name = lastPathSegment(machineType).lowercased()
        let parts = name.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, gpuSeries.contains(parts[0]) else { return nil }
        let family = parts[0] + "-" + parts[1]
        let type = families[family]
        var count: Int?
        if parts.count >= 3 {
            if let byVCPU = gpusByVCPU[family] {
                count = Int(parts[2]).flatMap { byVCPU[$0] }
            } else if parts[2].hasSuffix("g"), let n = Int(parts[2].dropLast()), (1...64).contains(n) {
                count = n
            }
        }
        return GCEGPU(acceleratorType: type, model: type.flatMap { models[$0] }, count: count)
    }

    /// The display name of an accelerator type, or the type itself when it is not in the table.
    public static func model(forAcceleratorType type: String) -> String {
        let key = lastPathSegment(type).lowercased()
        return models[key] ?? key
    }

    /// Dollars per GPU-hour for an accelerator type: the override when there is one, else the built-in table.
    /// - Parameter overrides: `GCP_PRICE_OVERRIDES`, keyed by accelerator type in lower case.
    public static func price(forAcceleratorType type: String, overrides: [String: Double] = [:]) -> Double? {
        let key = lastPathSegment(type).lowercased()
        if let price = overrides[key] ?? overrides.first(where: { $0.key.lowercased() == key })?.value {
            return price.isFinite && price >= 0 ? price : nil
        }
        return onDemandPricePerGPUHour[key]
    }

    /// The text after the last `/` (a resource URL's name), or the whole text.
    static func lastPathSegment(_ text: String) -> String {
        let trimmed = text.trimmed
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }
}
