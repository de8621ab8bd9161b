import CostOptimizerCore

/// Takes one GPU sample of each instance it is given. `GPUSampler` (ssh + nvidia-smi) is the real one.
public protocol GPUSampling: Sendable {
    /// One result per instance that has an ssh endpoint; a failure is `.failed`, never idle.
    func sample(_ instances: [Instance]) async -> [InstanceKey: SampleResult]
}
