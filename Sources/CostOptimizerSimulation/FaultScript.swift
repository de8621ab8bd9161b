import CostOptimizer

/// The scripted faults and the request log that every simulator keeps (Vast, TensorDock, GCE).
///
/// A value type meant to live inside a simulator's `Mutex`-guarded state, so enqueuing, recording and matching happen
/// under the simulator's one lock. The simulators' public `enqueueFault`, `requests` and `clearRequests` forward here.
struct FaultScript: Sendable {
    /// One scripted answer: the next `remaining` requests whose method matches (`*` for any) and whose path starts
    /// with `pathPrefix` get `response`.
    struct Fault: Sendable {
        /// The method matched, upper-cased, or `*` for any.
        var method: String
        /// The prefix a request's path must start with.
        var pathPrefix: String
        /// The answer given instead of the normal one.
        var response: HTTPResponse
        /// How many more requests this fault answers.
        var remaining: Int
        /// True answers only after the request was handled normally (so it took effect); false answers instead of
        /// any normal handling.
        var afterApplying: Bool
    }

    /// Faults not yet used up, in the order added (the first match wins).
    private var faults: [Fault] = []

    /// Every request recorded, faulted ones included, in order.
    private(set) var requests: [RecordedRequest] = []

    /// Adds a fault for the next `times` matching requests; nothing when `times` is not positive. The method is
    /// compared case-insensitively.
    mutating func enqueue(
        method: String, pathPrefix: String, response: HTTPResponse, times: Int, afterApplying: Bool
    ) {
        guard times > 0 else { return }
        faults.append(
            Fault(
                method: method.uppercased(), pathPrefix: pathPrefix, response: response, remaining: times,
                afterApplying: afterApplying))
    }

    /// Records `request`, then returns the first fault that matches it (using up one of its `remaining` answers and
    /// dropping it when none are left), or nil when none matches.
    mutating func record(_ request: RecordedRequest) -> Fault? {
        requests.append(request)
        let method = request.method.uppercased()
        guard
            let index = faults.firstIndex(where: {
                ($0.method == "*" || $0.method == method) && request.path.hasPrefix($0.pathPrefix)
            })
        else { return nil }
        faults[index].remaining -= 1
        let fault = faults[index]
        if fault.remaining <= 0 { faults.remove(at: index) }
        return fault
    }

    /// Forgets the recorded requests (the faults stay).
    mutating func clearRequests() {
        requests.removeAll()
    }

    /// The answer to a request that `record` matched to `fault`: a fault without `afterApplying` is answered without
    /// calling `route`; one with it calls `route` (so the request takes effect) and answers the fault instead; no
    /// fault answers what `route` returns.
    static func answer(_ fault: Fault?, route: () -> HTTPResponse) -> HTTPResponse {
        if let fault, !fault.afterApplying { return fault.response }
        let response = route()
        return fault?.response ?? response
    }
}
