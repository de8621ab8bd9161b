import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

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

    // MARK: - Private files whatever the umask

    @Test("state.json, the journal and new directories are private under a umask that would make them 0400 and 0500")
    func modesUnderStrictUmask() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let nested = directory + "/var/lib/co"
        let modes = try await StateFileModes.withUmask(0o277) {
            let store = try FileStateStore(directory: nested, logger: .silent)
            try store.save(FleetState())
            try store.save(FleetState())
            try store.append(Self.intent("a"))
            return [nested, directory + "/var", store.statePath, store.journalPath].map(StateFileModes.mode)
        }
        #expect(modes == [0o700, 0o700, 0o600, 0o600])
    }

    @Test("under umask 000 too, and an older world-readable journal or state file is made private")
    func modesUnderOpenUmask() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: directory + "/actions.jsonl", contents: nil))
        #expect(FileManager.default.createFile(atPath: directory + "/state.json", contents: Data("{}".utf8)))
        chmod(directory + "/actions.jsonl", 0o644)
        chmod(directory + "/state.json", 0o644)
        let modes = try await StateFileModes.withUmask(0) {
            let store = try FileStateStore(directory: directory, logger: .silent)
            try store.save(FleetState())
            try store.append(Self.intent("a"))
            return [store.statePath, store.journalPath].map(StateFileModes.mode)
        }
        #expect(modes == [0o600, 0o600])
    }

    @Test("a STATE_DIR open to other users is reported, not changed")
    func openDirectoryIsReported() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        let sink = StoreTestLogSink()
        _ = try FileStateStore(directory: directory, logger: Logger(level: .debug, sink: sink))
        #expect(StateFileModes.mode(directory) == 0o755)
        #expect(sink.lines.contains { $0.level == .warning && $0.message.contains("chmod 700") })
    }

    @Test("leftover temp files go at start, also a GCE key copy directory, and nothing else")
    func staleFilesGo() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keyCopy = directory + "/gce-jwt.AbC123"
        try FileManager.default.createDirectory(atPath: keyCopy, withIntermediateDirectories: true)
        for name in [".state.json.tmp-1", ".state.json.tmp-77", "state.json", "actions.jsonl", "known_hosts"] {
            #expect(FileManager.default.createFile(atPath: directory + "/" + name, contents: Data("x".utf8)))
        }
        _ = try FileStateStore(directory: directory, logger: .silent)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(names == ["state.json", "actions.jsonl", "known_hosts", "lock"])
    }

    @Test("temp files are left alone while another process holds the lock (status beside the daemon)")
    func staleFilesStayWhileLocked() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temp = directory + "/.state.json.tmp-999"
        #expect(FileManager.default.createFile(atPath: temp, contents: Data("x".utf8)))
        let lockPath = directory + "/lock"
        let holder = Task {
            try await ProcessCommandRunner().run(
                Command(
                    executable: "flock",
                    arguments: ["-o", lockPath, "sh", "-c", "echo $$ > \(lockPath); exec sleep 20"], environment: ["PATH": "/usr/bin:/bin"], timeout: 25))
        }
        var held = false
        for _ in 0..<200 where !held {
            do { try StateLock(directory: directory).release() } catch { held = true }
            if !held { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(held, "the child never held the lock")
        _ = try FileStateStore(directory: directory, logger: .silent)
        #expect(FileManager.default.fileExists(atPath: temp))
        holder.cancel()
        _ = try? await holder.value
        // The holder is gone: the next start cleans up.
        _ = try FileStateStore(directory: directory, logger: .silent)
        #expect(!FileManager.default.fileExists(atPath: temp))
    }

    @Test("the daemon's own lock does not stop it from cleaning up")
    func staleFilesGoUnderOwnLock() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lock = try StateLock(directory: directory)
        defer { lock.release() }
        let temp = directory + "/.state.json.tmp-999"
        #expect(FileManager.default.createFile(atPath: temp, contents: Data("x".utf8)))
        _ = try FileStateStore(directory: directory, logger: .silent)
        #expect(!FileManager.default.fileExists(atPath: temp))
        #expect(lock.isHeld)
    }

    // MARK: - Intents

    static func intent(_ actionID: String, id: String = "1", action: ActionKind = .pause) -> JournalRecord {
        JournalRecord.intent(
            time: Date(timeIntervalSince1970: 1_800_000_000), provider: "vast", id: id, name: "nb", action: action,
            reason: "GPU avg 1% < 10% for 30 min, 31 samples", dryRun: false, actionID: actionID)
    }

    @Test("an intent without a result is unresolved; with ok, failed, dry_run or reconciled it is not")
    func intents() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        #expect(try store.unresolvedIntents() == [])
        let later = Date(timeIntervalSince1970: 1_800_000_005)
        let open = Self.intent("open", id: "7", action: .delete)
        try store.append(open)
        for (index, result) in [JournalResult.ok, JournalResult.failed, JournalResult.dryRun, JournalResult.reconciled]
            .enumerated()
        {
            let intent = Self.intent("closed-\(index)")
            try store.append(intent)
            let error = result == JournalResult.failed ? "HTTP 500" : nil
            try store.append(intent.resolution(result, at: later, error: error))
        }
        // A record from before intents existed links nothing.
        try store.append(
            JournalRecord(
                time: later, provider: "vast", id: "7", name: "nb", action: .delete, reason: "old", dryRun: false,
                result: "ok"))
        #expect(try store.unresolvedIntents() == [open])
        try store.append(open.resolution(JournalResult.reconciled, at: later, error: "re-read after restart: gone"))
        #expect(try store.unresolvedIntents() == [])

        let lines = try String(contentsOfFile: store.journalPath, encoding: .utf8).split(separator: "\n")
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["action_id"] as? String == "open")
        #expect(first["result"] as? String == "intent")
        #expect(first["error"] == nil)
    }

    @Test("a fresh intent gets a UUID action_id, and its resolution keeps it")
    func intentFactory() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let intent = JournalRecord.intent(
            time: now, provider: "gce", id: "p/z/i", name: "i", action: .delete, reason: "r", dryRun: false)
        #expect(intent.isIntent)
        #expect(UUID(uuidString: try #require(intent.actionID)) != nil)
        let other = JournalRecord.intent(
            time: now, provider: "gce", id: "p/z/i", name: "i", action: .delete, reason: "r", dryRun: false)
        #expect(other.actionID != intent.actionID)
        let done = intent.resolution(JournalResult.ok, at: now.addingTimeInterval(3))
        #expect(done.actionID == intent.actionID && done.result == "ok" && !done.isIntent)
        #expect(done.provider == "gce" && done.id == "p/z/i" && done.action == .delete)
    }

    @Test("a torn final line (kill -9 mid-write) is ignored, hides no earlier intent, and spoils no later record")
    func tornLine() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let first = Self.intent("first")
        try store.append(first)
        let second = Self.intent("second")
        try store.append(second)
        try store.append(second.resolution(JournalResult.ok, at: Date(timeIntervalSince1970: 1_800_000_009)))
        // Half of a result line for "first": the crash came before its newline.
        let handle = try #require(FileHandle(forWritingAtPath: store.journalPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"action":"pause","action_id":"first","dry_run":false,"id":"1","na"#.utf8))
        try handle.close()
        #expect(try store.unresolvedIntents() == [first])

        // The next append starts on a line of its own.
        let third = Self.intent("third")
        try store.append(third)
        #expect(try store.unresolvedIntents() == [first, third])
        let lines = try String(contentsOfFile: store.journalPath, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 6 && lines.last == "")
        let parsed = lines.dropLast().map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(parsed.map { $0 != nil } == [true, true, true, false, true])
        #expect(store.journal().count == 4)

        // A torn line with nothing after it, right at the start of a journal, hides nothing either.
        try Data(#"{"result":"int"#.utf8).write(to: URL(fileURLWithPath: store.journalPath))
        #expect(try store.unresolvedIntents() == [])
        try store.append(first)
        #expect(try store.unresolvedIntents() == [first])
    }

    @Test("a whole intent line this version cannot decode is an error naming the line, not a silent skip")
    func undecodableIntent() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        try store.append(Self.intent("a"))
        let handle = try #require(FileHandle(forWritingAtPath: store.journalPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"action":"reboot","action_id":"b","result":"intent"}"#.utf8 + [10]))
        try handle.close()
        #expect(throws: StateStoreError.undecodableIntent(path: store.journalPath, line: 2)) {
            try store.unresolvedIntents()
        }
        let message = StateStoreError.undecodableIntent(path: store.journalPath, line: 2).description
        #expect(message.contains("line 2 of \(store.journalPath)") && message.contains("reconciled"))
    }

    @Test("the journal stays one JSON object per line over many appends, old records included")
    func oneObjectPerLine() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let old =
            #"{"action":"pause","dry_run":true,"id":"1","name":"nb","provider":"vast","reason":"r","result":"dry_run","#
            + #""time":"2027-01-15T08:00:00Z"}"#
        try Data((old + "\n").utf8).write(to: URL(fileURLWithPath: store.journalPath))
        for index in 0..<50 {
            let intent = Self.intent("id-\(index)", id: "\(index)")
            try store.append(intent)
            if index % 2 == 0 {
                try store.append(intent.resolution(JournalResult.ok, at: Date(timeIntervalSince1970: 1_800_000_100)))
            }
        }
        let lines = try String(contentsOfFile: store.journalPath, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 1 + 50 + 25 + 1 && lines.last == "")
        for line in lines.dropLast() {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any])
        }
        let records = store.journal()
        #expect(records.count == 76)
        #expect(records.first?.actionID == nil && records.first?.result == "dry_run")
        #expect(try store.unresolvedIntents().map(\.actionID) == (0..<50).filter { $0 % 2 == 1 }.map { "id-\($0)" })
    }

    @Test("MemoryStateStore finds the same unresolved intents, and can refuse appends")
    func memoryStore() throws {
        let store = MemoryStateStore()
        let open = Self.intent("open")
        let closed = Self.intent("closed")
        try store.append(open)
        try store.append(closed)
        try store.append(closed.resolution(JournalResult.failed, at: Date(timeIntervalSince1970: 1_800_000_001)))
        #expect(try store.unresolvedIntents() == [open])
        store.failAppends(with: .io(path: "/var/lib/cost-optimizer/actions.jsonl", detail: "No space left on device"))
        #expect(throws: StateStoreError.self) { try store.append(Self.intent("refused")) }
        #expect(store.journal.count == 3)
        store.failAppends(with: nil)
        try store.append(open.resolution(JournalResult.reconciled, at: Date(timeIntervalSince1970: 1_800_000_002)))
        #expect(try store.unresolvedIntents() == [])
    }
}

/// Records log lines of the store.
final class StoreTestLogSink: LogSink {
    private let recorded = Mutex<[(level: LogLevel, message: String)]>([])
    func write(level: LogLevel, message: String) { recorded.withLock { $0.append((level, message)) } }
    var lines: [(level: LogLevel, message: String)] { recorded.withLock { $0 } }
}
