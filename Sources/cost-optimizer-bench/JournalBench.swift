import CostOptimizer
import CostOptimizerCore
import Foundation

/// The cost of finding the open intents of the action journal (`FileStateStore.unresolvedIntents()`, called once a
/// cycle) as the journal grows: a journal of N lines (N/2 actions, each an intent and its result, as the daemon
/// writes them) is read by the store the daemon uses.
struct JournalBench {
    struct Result {
        var lines: Int
        var bytes: Int
        /// Seconds of each later call, each after two more records were appended (what a cycle that acted adds).
        var calls: [Double]
        /// The first call on a fresh store (the daemon's first cycle after it starts).
        var firstCall: Double
        var unresolved: Int
        var mean: Double { calls.isEmpty ? .nan : calls.reduce(0, +) / Double(calls.count) }
    }

    static func run(lines: Int, repeats: Int) throws -> Result {
        let directory = try makeTemporaryDirectory("cost-optimizer-bench-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        for action in 0..<(lines / 2) {
            let intent = JournalRecord.intent(
                time: start.addingTimeInterval(Double(action) * 60), provider: action % 2 == 0 ? "vast" : "gcp",
                id: String(10_000_000 + action), name: "bench-\(action)", action: action % 7 == 0 ? .delete : .pause,
                reason: "GPU avg 3.2% < 10% for 34 min, 31 samples", dryRun: false)
            for record in [intent, intent.resolution(JournalResult.ok, at: intent.time.addingTimeInterval(2))] {
                data.append(try encoder.encode(record))
                data.append(UInt8(ascii: "\n"))
            }
        }
        let store = try FileStateStore(directory: directory, logger: .silent)
        try data.write(to: URL(fileURLWithPath: store.journalPath))
        // One open intent at the end, as a crash between the intent and its result leaves.
        try store.append(
            .intent(
                time: start, provider: "vast", id: "1", name: "open", action: .pause, reason: "bench", dryRun: false))
        func timed() throws -> (Double, Int) {
            let started = BenchClock.now
            let open = try store.unresolvedIntents()
            return (BenchClock.now - started, open.count)
        }
        let (first, unresolved) = try timed()
        var calls: [Double] = []
        for index in 0..<repeats {
            // A cycle that acted appends its records, then the next cycle asks again.
            let intent = JournalRecord.intent(
                time: start, provider: "vast", id: "r\(index)", name: "repeat", action: .pause, reason: "bench",
                dryRun: false)
            try store.append(intent)
            try store.append(intent.resolution(JournalResult.ok, at: start))
            calls.append(try timed().0)
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: store.journalPath)[.size] as? Int) ?? 0
        return Result(lines: lines + 1, bytes: bytes, calls: calls, firstCall: first, unresolved: unresolved)
    }
}
