import CostOptimizerCore
import Foundation
import Testing

@Suite("Fleet state")
struct FleetStateTests {
    @Test("round-trips through JSON with every clock intact")
    func roundTrip() throws {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000.5)
        var record = InstanceRecord(firstSeen: t0, state: .running)
        record.samples = [StoredSample(at: t0, utilization: 3.5), StoredSample(at: t0 + 60, utilization: nil)]
        record.streakStart = t0
        record.streakCount = 2
        record.streakSum = 7
        record.idleSince = t0
        record.pausedAt = t0 + 120
        record.lastAction = ActionMark(action: .pause, at: t0 + 120, dryRun: false, succeeded: true)
        let state = FleetState(instances: ["vast/1": record])
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let decoded = try decoder.decode(FleetState.self, from: encoder.encode(state))
        // ISO 8601 keeps whole seconds; compare the clocks at that precision.
        #expect(decoded.instances["vast/1"]?.streakCount == 2)
        #expect(decoded.instances["vast/1"]?.samples.count == 2)
        #expect(decoded.instances["vast/1"]?.pausedAt.map { Int($0.timeIntervalSince1970) } == 1_800_000_120)
        #expect(decoded.schemaVersion == FleetState.currentSchemaVersion)
    }

    @Test("a successful delete forgets the instance; a failed one keeps it for a retry")
    func recordOutcome() {
        let key = InstanceKey(provider: .vast, id: "1")
        var state = FleetState(instances: [key.description: InstanceRecord(firstSeen: .distantPast, state: .paused)])
        state.record(.delete, for: key, at: .distantPast, dryRun: false, succeeded: false)
        #expect(state[key]?.lastAction?.succeeded == false)
        state.record(.delete, for: key, at: .distantPast, dryRun: true, succeeded: true)
        #expect(state[key] != nil)
        state.record(.delete, for: key, at: .distantPast, dryRun: false, succeeded: true)
        #expect(state[key] == nil)
    }
}
