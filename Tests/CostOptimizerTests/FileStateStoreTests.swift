import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

@Suite("File state store")
struct FileStateStoreTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-\(UUID().uuidString)").path

    @Test("saves atomically with mode 0600 and loads what it saved")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        #expect(try store.load() == nil)
        var record = InstanceRecord(firstSeen: Date(timeIntervalSince1970: 1_800_000_000.25), state: .running)
        record.streakStart = Date(timeIntervalSince1970: 1_800_000_060.5)
        record.streakCount = 3
        let state = FleetState(instances: ["vast/1": record])
        try store.save(state)
        #expect(try store.load() == state)
        let attributes = try FileManager.default.attributesOfItem(atPath: store.statePath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test("a corrupt state file is moved aside and the daemon starts fresh")
    func corrupt() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.statePath))
        #expect(try store.load() == nil)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(names.contains { $0.hasPrefix("state.json.corrupt-") })
        #expect(!names.contains("state.json"))
    }

    @Test("stale temp files are removed at start")
    func staleTemp() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory + "/.state.json.tmp-999", contents: Data("x".utf8)))
        _ = try FileStateStore(directory: directory, logger: .silent)
        #expect(!FileManager.default.fileExists(atPath: directory + "/.state.json.tmp-999"))
    }

    @Test("the journal is one JSON line per action with the documented fields")
    func journal() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let record = JournalRecord(
            time: Date(timeIntervalSince1970: 1_800_000_000), provider: "vast", id: "1", name: "nb", action: .pause,
            reason: "GPU avg 1% < 10% for 30 min, 31 samples", dryRun: false, result: "failed", error: "HTTP 500")
        try store.append(record)
        try store.append(record)
        let lines = try String(contentsOfFile: store.journalPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["time", "provider", "id", "name", "action", "reason", "dry_run", "result", "error"])
        #expect(object["time"] as? String == "2027-01-15T08:00:00Z")
        #expect(store.journal() == [record, record])
    }
}
