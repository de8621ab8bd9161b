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

    @Test("a state file written before the guards still decodes; the new fields start empty")
    func decodesOldStateFile() throws {
        let json = """
            {"schemaVersion":1,"failingAccounts":["vast"],"instances":{"vast/1":{
              "firstSeen":"2027-01-15T08:00:00Z","lastSeen":"2027-01-15T09:00:00Z","lastState":"paused","samples":[],
              "streakCount":0,"streakSum":0,"idleSince":"2027-01-15T08:00:00Z","pausedAt":"2027-01-15T08:30:00Z",
              "failedCycles":0,"unreachableNotified":false}}}
            """
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let state = try decoder.decode(FleetState.self, from: Data(json.utf8))
        #expect(state.listingCounts == nil)
        #expect(state.guardAlerts == nil)
        let record = try #require(state.instances["vast/1"])
        #expect(record.pausedAt != nil)
        #expect(record.deleteNotice == nil && record.stoppedSince == nil && record.failingSince == nil)
        #expect(record.unmonitoredNotifiedAt == nil)
    }

    @Test("the new fields round-trip")
    func newFieldsRoundTrip() throws {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var record = InstanceRecord(firstSeen: t0, state: .paused)
        record.deleteNotice = DeleteNoticeMark(idleSince: t0, sentAt: t0 + 60, deleteAt: t0 + 7200)
        record.stoppedSince = t0
        record.failingSince = t0 + 1
        record.unmonitoredNotifiedAt = t0 + 2
        var state = FleetState(instances: ["gcp/7": record])
        state.listingCounts = ["gcp": 3]
        state.guardAlerts = ["hold": t0]
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        #expect(try decoder.decode(FleetState.self, from: encoder.encode(state)) == state)
    }

    @Test("forgets only instances unseen since the cutoff, and names them")
    func forgets() {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var old = InstanceRecord(firstSeen: t0, state: .paused)
        old.lastSeen = t0
        var recent = InstanceRecord(firstSeen: t0, state: .paused)
        recent.lastSeen = t0 + 3600
        var state = FleetState(instances: ["vast/1": old, "gcp/2": recent, "tensordock/a-b": old])
        let forgotten = state.forgetInstances(unseenSince: t0 + 1)
        #expect(
            forgotten == [InstanceKey(provider: .tensordock, id: "a-b"), InstanceKey(provider: .vast, id: "1")])
        #expect(Array(state.instances.keys) == ["gcp/2"])
        #expect(InstanceKey(stateKey: "gcp/1/2") == InstanceKey(provider: .gcp, id: "1/2"))
        #expect(InstanceKey(stateKey: "aws/1") == nil)
        #expect(InstanceKey(stateKey: "vast/") == nil)
    }
}
