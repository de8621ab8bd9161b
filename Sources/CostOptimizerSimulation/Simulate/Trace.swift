import Foundation

/// A span of time in seconds since the start of a simulation, `[start, end)`.
public struct TimeSpan: Equatable, Sendable, CustomStringConvertible {
    public var start: Double
    public var end: Double

    public init(_ start: Double, _ end: Double) {
        self.start = start
        self.end = end
    }

    /// `end − start`.
    public var length: Double { end - start }

    public func contains(_ t: Double) -> Bool { t >= start && t < end }

    public var description: String { "[\(start), \(end))" }
}

/// One piece of a GPU's utilisation over time: a constant level, or a periodic pulse, on `[start, end)`.
///
/// A pulse is busy at `busyLevel` for `busySeconds` at the start of every `period`, and at `idleLevel` for the rest; its
/// periods start at `phase + k × period`. A bursty inference server busy 0.3 s of every 2 s for a month is one pulse
/// segment, not millions of rows.
public struct TraceSegment: Equatable, Sendable {
    /// What the utilisation does inside the segment.
    public enum Shape: Equatable, Sendable {
        /// The same utilisation (%) throughout.
        case constant(Double)
        /// `busyLevel` % for `busySeconds` of every `period`, `idleLevel` % otherwise; periods start at `phase`.
        case pulse(period: Double, busySeconds: Double, busyLevel: Double, idleLevel: Double, phase: Double)
    }

    /// Seconds since the start of the simulation (may be negative: history before it).
    public var start: Double
    /// The first second no longer in the segment.
    public var end: Double
    public var shape: Shape

    public init(start: Double, end: Double, shape: Shape) {
        self.start = start
        self.end = end
        self.shape = shape
    }

    /// A constant level on `[start, end)`.
    public static func constant(_ level: Double, from start: Double, to end: Double) -> TraceSegment {
        TraceSegment(start: start, end: end, shape: .constant(level))
    }

    /// A pulse on `[start, end)`.
    public static func pulse(
        period: Double, busySeconds: Double, busyLevel: Double, idleLevel: Double = 0, phase: Double = 0,
        from start: Double, to end: Double
    ) -> TraceSegment {
        TraceSegment(
            start: start, end: end,
            shape: .pulse(
                period: period, busySeconds: busySeconds, busyLevel: busyLevel, idleLevel: idleLevel, phase: phase))
    }

    // MARK: Values inside the segment

    /// The utilisation at `t` (assumed inside the segment).
    func value(at t: Double) -> Double {
        switch shape {
        case .constant(let level): return level
        case .pulse(let period, let busy, let busyLevel, let idleLevel, let phase):
            let u = t - phase
            let offset = u - (u / period).rounded(.down) * period
            return offset < busy ? busyLevel : idleLevel
        }
    }

    /// ∫ utilisation dt over `[a, b]` (assumed inside the segment).
    func integral(_ a: Double, _ b: Double) -> Double {
        guard b > a else { return 0 }
        switch shape {
        case .constant(let level): return level * (b - a)
        case .pulse(_, _, let busyLevel, let idleLevel, _):
            let busyTime = busyTimeUpTo(b) - busyTimeUpTo(a)
            return busyLevel * busyTime + idleLevel * ((b - a) - busyTime)
        }
    }

    /// For a pulse: the busy seconds between the phase origin and `t` (a cumulative count, so differences give the busy
    /// time of an interval).
    private func busyTimeUpTo(_ t: Double) -> Double {
        guard case .pulse(let period, let busy, _, _, let phase) = shape else { return 0 }
        let u = t - phase
        let periods = (u / period).rounded(.down)
        return periods * busy + min(u - periods * period, busy)
    }

    /// The highest utilisation on `[a, b]` (assumed inside the segment).
    func maximum(_ a: Double, _ b: Double) -> Double {
        switch shape {
        case .constant(let level): return level
        case .pulse(_, _, let busyLevel, let idleLevel, _):
            return firstBusyMoment(from: a).map { $0 <= b } == true ? max(busyLevel, idleLevel) : idleLevel
        }
    }

    /// For a pulse: the first moment ≥ `t` inside a busy part (not bounded by the segment's end).
    func firstBusyMoment(from t: Double) -> Double? {
        guard case .pulse(let period, let busy, _, _, let phase) = shape, busy > 0 else { return nil }
        let u = t - phase
        let periods = (u / period).rounded(.down)
        let offset = u - periods * period
        return offset < busy ? t : phase + (periods + 1) * period
    }

    /// The parts of `span` (inside the segment) where the utilisation is at or above `threshold`. Busy parts of a
    /// pulse separated by idle gaps no longer than `mergeGaps` come back as one span.
    func busySpans(threshold: Double, in span: TimeSpan, mergeGaps: Double) -> [TimeSpan] {
        guard span.end > span.start else { return [] }
        switch shape {
        case .constant(let level):
            return level >= threshold ? [span] : []
        case .pulse(let period, let busy, let busyLevel, let idleLevel, let phase):
            if idleLevel >= threshold { return [span] }
            guard busyLevel >= threshold, busy > 0 else { return [] }
            if busy >= period { return [span] }
            guard let first = firstBusyMoment(from: span.start), first < span.end else { return [] }
            // The start of the last period that begins before the end, and where its busy part ends.
            let lastPeriod = ((span.end - phase) / period).rounded(.up) - 1
            let lastStart = phase + lastPeriod * period
            if period - busy <= mergeGaps {
                return [TimeSpan(first, min(span.end, lastStart + busy))]
            }
            var spans: [TimeSpan] = []
            var start = first
            while start < span.end {
                let periodStart = phase + ((start - phase) / period).rounded(.down) * period
                let end = min(span.end, periodStart + busy)
                if end > start { spans.append(TimeSpan(start, end)) }
                start = periodStart + period
            }
            return spans
        }
    }
}

/// One GPU's utilisation over all time: segments in order, with every gap (and all time before the first and after the
/// last) reading 0 %: a GPU with no record is idle.
public struct GPUTrace: Equatable, Sendable {
    /// Sorted, non-overlapping, covering all time (gaps filled with 0 %).
    public private(set) var segments: [TraceSegment]
    /// Memory the GPU's processes hold (MiB), reported by the simulated nvidia-smi; never used to decide.
    public var memoryUsedMiB: Double

    /// - Parameter segments: in any order; they must not overlap (a later overlapping segment is cut to start where the
    ///   earlier one ends).
    public init(_ segments: [TraceSegment], memoryUsedMiB: Double = 0) {
        self.memoryUsedMiB = memoryUsedMiB
        var filled: [TraceSegment] = []
        var cursor = -Double.infinity
        for var segment in segments.sorted(by: { $0.start < $1.start }) {
            segment.start = max(segment.start, cursor)
            guard segment.end > segment.start else { continue }
            if segment.start > cursor { filled.append(.constant(0, from: cursor, to: segment.start)) }
            filled.append(segment)
            cursor = segment.end
        }
        if cursor < .infinity { filled.append(.constant(0, from: cursor, to: .infinity)) }
        self.segments = filled
    }

    /// A GPU at one level for all time.
    public static func constant(_ level: Double, memoryUsedMiB: Double = 0) -> GPUTrace {
        GPUTrace([.constant(level, from: -.infinity, to: .infinity)], memoryUsedMiB: memoryUsedMiB)
    }

    /// The index of the segment holding `t`.
    private func index(at t: Double) -> Int {
        var low = 0
        var high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].start <= t { low = mid } else { high = mid - 1 }
        }
        return low
    }

    /// The segments overlapping `[a, b)`, each with the overlap.
    private func overlapping(_ a: Double, _ b: Double) -> [(TraceSegment, TimeSpan)] {
        var result: [(TraceSegment, TimeSpan)] = []
        var i = index(at: a)
        while i < segments.count, segments[i].start < b {
            let segment = segments[i]
            let span = TimeSpan(max(a, segment.start), min(b, segment.end))
            if span.end > span.start { result.append((segment, span)) }
            i += 1
        }
        return result
    }

    /// The utilisation (%) at `t`.
    public func value(at t: Double) -> Double {
        segments[index(at: t)].value(at: t)
    }

    /// The true mean utilisation (%) over `[a, b]`; the value at `a` when the interval is empty.
    public func mean(from a: Double, to b: Double) -> Double {
        guard b > a else { return value(at: a) }
        return overlapping(a, b).reduce(0) { $0 + $1.0.integral($1.1.start, $1.1.end) } / (b - a)
    }

    /// The highest utilisation (%) reached in `[a, b]`.
    public func maximum(from a: Double, to b: Double) -> Double {
        guard b > a else { return value(at: a) }
        return overlapping(a, b).map { $0.0.maximum($0.1.start, $0.1.end) }.max() ?? 0
    }

    /// The spans of `window` where this GPU is at or above `threshold`, in order, touching spans joined; spans separated
    /// by a gap no longer than `mergeGaps` are joined too (a pulse's short idle gaps then vanish).
    public func busySpans(threshold: Double, in window: TimeSpan, mergeGaps: Double = 0) -> [TimeSpan] {
        var spans: [TimeSpan] = []
        for (segment, span) in overlapping(window.start, window.end) {
            for part in segment.busySpans(threshold: threshold, in: span, mergeGaps: mergeGaps) {
                if let last = spans.last, part.start - last.end <= mergeGaps {
                    spans[spans.count - 1].end = max(last.end, part.end)
                } else {
                    spans.append(part)
                }
            }
        }
        return spans
    }

    /// The first moment at or after `t` when the utilisation is at or above `threshold`, or nil when it never is again.
    public func nextBusy(threshold: Double, from t: Double) -> Double? {
        var i = index(at: t)
        while i < segments.count {
            let segment = segments[i]
            let from = max(t, segment.start)
            switch segment.shape {
            case .constant(let level):
                if level >= threshold { return from }
            case .pulse(_, _, let busyLevel, let idleLevel, _):
                if idleLevel >= threshold { return from }
                if busyLevel >= threshold, let moment = segment.firstBusyMoment(from: from), moment < segment.end {
                    return moment
                }
            }
            i += 1
        }
        return nil
    }
}

/// One instance's GPUs over time.
public struct InstanceTrace: Equatable, Sendable {
    public var gpus: [GPUTrace]

    public init(gpus: [GPUTrace]) { self.gpus = gpus }

    /// True when every GPU is below `threshold` at `t`.
    public func isIdle(at t: Double, threshold: Double) -> Bool {
        gpus.allSatisfy { $0.value(at: t) < threshold }
    }

    /// The runs of `window` in which every GPU is below `threshold`, exact to the boundaries, keeping only those longer
    /// than `longerThan` seconds (0 keeps every non-empty one, a pulse's short gaps included).
    public func idleStretches(threshold: Double, in window: TimeSpan, longerThan: Double = 0) -> [TimeSpan] {
        guard window.end > window.start else { return [] }
        // A gap no longer than `longerThan` in one GPU's busy time is a gap at most that long for the instance too, so
        // joining such gaps per GPU first loses no stretch that is kept.
        let busy = gpus.flatMap { $0.busySpans(threshold: threshold, in: window, mergeGaps: longerThan) }
            .sorted { $0.start < $1.start }
        var stretches: [TimeSpan] = []
        var cursor = window.start
        for span in busy {
            if span.start > cursor { stretches.append(TimeSpan(cursor, span.start)) }
            cursor = max(cursor, span.end)
        }
        if window.end > cursor { stretches.append(TimeSpan(cursor, window.end)) }
        return stretches.filter { $0.length > longerThan }
    }

    /// The first moment at or after `t` when some GPU is at or above `threshold` (work resumes), or nil.
    public func nextBusy(threshold: Double, from t: Double) -> Double? {
        gpus.compactMap { $0.nextBusy(threshold: threshold, from: t) }.min()
    }

    /// True when, over `[t − window, t]`, some GPU's true mean was at or above `threshold` (for a window of 0: some GPU
    /// at `t`). A pause at `t` with this true is a false pause.
    public func wasBusy(before t: Double, window: Double, threshold: Double) -> Bool {
        gpus.contains { $0.mean(from: t - window, to: t) >= threshold }
    }
}
