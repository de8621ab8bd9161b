import CostOptimizerCore

/// Takes one GPU sample of each instance it is given. `GPUSampler` (ssh + nvidia-smi) is the real one.
public protocol GPUSampling: Sendable {
    /// One result per instance that has an ssh endpoint; a failure is `.failed`, never idle.
    func sample(_ instances: [Instance]) async -> [InstanceKey: SampleResult]

    /// Releases what sampling keeps between cycles (ssh master connections); called once the daemon stops.
    func close() async
}

extension GPUSampling {
    /// Nothing to release.
    public func close() async {}
}
