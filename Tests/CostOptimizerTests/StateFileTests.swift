@testable import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

/// `state.json` is written and read one instance record at a time (for memory at fleet scale; bin/bench measures
/// it). These check that what is written is the same JSON object as before, and that every layout reads back.
@Suite("The state file, record by record")
struct StateFileTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("statefile-\(UUID().uuidString)").path

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000.25)

    /// A state using every field, with strings that hold JSON punctuation.
    static func fullState() -> FleetState {
        var state = FleetState()
        var record = InstanceRecord(firstSeen: t0, state: .running)
        record.lastSeen = t0.addingTimeInterval(60)
        record.samples = [
            StoredSample(at: t0, utilization: 3.5), StoredSample(at: t0.addingTimeInterval(60), utilization: nil),
        ]
        record.streakStart = t0
        record.streakCount = 1
        record.streakSum = 3.5
        record.lastSampleAt = t0
        record.idleSince = t0
        record.pausedAt = t0.addingTimeInterval(120)
        record.failedCycles = 2
        record.lastFailure = #"ssh failed: {"instances":{}, "x": [1, "]"]} \ "quoted" , ü"#
        record.unreachableNotified = true
        record.lastAction = ActionMark(action: .pause, at: t0, dryRun: true, succeeded: true)
        record.lastStartedAt = t0
        record.pauseCheck = PauseCheck(since: t0, attempts: 2)
        record.stoppedSince = t0
        record.failingSince = t0
        record.unmonitoredNotifiedAt = t0
        record.deleteNotice = DeleteNoticeMark(idleSince: t0, sentAt: t0, deleteAt: t0.addingTimeInterval(7200))
        state.instances["vast/1"] = record
        state.instances["gcp/odd\"key\\with{braces},and:colons"] = InstanceRecord(firstSeen: t0, state: .paused)
        state.instances["tensordock/ü-1"] = InstanceRecord(firstSeen: t0, state: .unknown)
        state.failingAccounts = ["vast#2", "gcp:\"p\""]
        state.listingCounts = ["vast": 3, "gcp": 1]
        state.guardAlerts = ["instances": t0]
        return state
    }

    /// Reads JSON the way the store writes dates: seconds since 1970.
    static let plainDecoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }()

    static let plainEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    @Test("a saved state reads back whole, and is one JSON object a plain JSONDecoder reads the same")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        for state in [Self.fullState(), FleetState()] {
            try store.save(state)
            #expect(try store.load() == state)
            let data = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
            #expect(try Self.plainDecoder.decode(FleetState.self, from: data) == state)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect((object["instances"] as? [String: Any])?.count == state.instances.count)
        }
    }

    @Test("a state written whole by JSONEncoder (older versions), or pretty-printed by hand, reads back")
    func readsOtherLayouts() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let state = Self.fullState()
        let pretty = JSONEncoder()
        pretty.dateEncodingStrategy = .secondsSince1970
        pretty.outputFormatting = [.prettyPrinted]
        for data in [try Self.plainEncoder.encode(state), try pretty.encode(state)] {
            try data.write(to: URL(fileURLWithPath: store.statePath))
            #expect(try store.load() == state)
        }
        // Keys in any order, the records before or after the other fields.
        let shuffled = """
            { "schemaVersion" : 1, "instances" : { "vast/2" : {"failedCycles":0,"firstSeen":1800000000,\
            "lastSeen":1800000000,"lastState":"running","samples":[{"at":1800000000,"utilization":null}],\
            "streakCount":0,"streakSum":0,"unreachableNotified":false} } , "failingAccounts" : [ "vast" ] }
            """
        try Data(shuffled.utf8).write(to: URL(fileURLWithPath: store.statePath))
        let loaded = try #require(try store.load())
        #expect(loaded.failingAccounts == ["vast"])
        #expect(loaded.instances.keys.sorted() == ["vast/2"])
        #expect(loaded.instances["vast/2"]?.samples == [StoredSample(at: Date(timeIntervalSince1970: 1_800_000_000), utilization: nil)])
    }

    @Test("a state file cut short is moved aside as before, never half read")
    func truncated() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        try store.save(Self.fullState())
        let data = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
        for cut in [data.count / 3, data.count - 2] {
            try data.prefix(cut).write(to: URL(fileURLWithPath: store.statePath))
            #expect(try store.load() == nil)
            let aside = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
                $0.hasPrefix("state.json.corrupt-")
            }
            #expect(!aside.isEmpty)
            for name in aside { try FileManager.default.removeItem(atPath: directory + "/" + name) }
        }
    }

    @Test("the records are found in the text itself (not by the whole-document fallback), whatever their keys hold")
    func findsRecords() throws {
        let state = Self.fullState()
        let pretty = JSONEncoder()
        pretty.dateEncodingStrategy = .secondsSince1970
        pretty.outputFormatting = [.prettyPrinted, .sortedKeys]
        for data in [try Self.plainEncoder.encode(state), try pretty.encode(state)] {
            let members = try #require(
                data.withUnsafeBytes { StateFileCoding.objectMembers(ofTopLevelKey: "instances", in: $0) })
            let keys = try data.withUnsafeBytes { bytes in
                try members.entries.map { try Self.plainDecoder.decode(String.self, from: Data(bytes[$0.key])) }
            }
            #expect(keys.sorted() == state.instances.keys.sorted())
            for (entry, key) in zip(members.entries, keys) {
                let record = try data.withUnsafeBytes {
                    try Self.plainDecoder.decode(InstanceRecord.self, from: Data($0[entry.value]))
                }
                #expect(record == state.instances[key])
            }
        }
        // Writing: the slot of the records is the top-level one, not the guard alert named "instances" inside.
        var frame = state
        frame.instances = [:]
        let outline = try Self.plainEncoder.encode(frame)
        let slot = try #require(StateFileCoding.emptyObject(ofTopLevelKey: "instances", in: outline))
        let text = String(decoding: outline, as: UTF8.self)
        let offset = text.utf8.index(text.startIndex, offsetBy: slot.lowerBound)
        // The guard alert's key comes first ("guardAlerts" sorts before "instances"), with a date, not {}.
        #expect(text[..<offset].hasSuffix(#"{"instances":1800000000.25},"instances":"#))
        #expect(text[offset...].hasPrefix("{}"))
        let written = try StateFileCoding.encode(state, with: Self.plainEncoder)
        #expect(try Self.plainDecoder.decode(FleetState.self, from: written) == state)
    }
}
