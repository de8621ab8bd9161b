import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

/// `FileStateStore.unresolvedIntents()` reads the journal once, then only what was appended (it runs every cycle).
@Suite("The journal read once a cycle")
struct JournalReaderTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path

    static let later = Date(timeIntervalSince1970: 1_800_000_009)

    func appendRaw(_ text: String, to store: FileStateStore) throws {
        let handle = try #require(FileHandle(forWritingAtPath: store.journalPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    @Test("intents and results appended between calls open and close intents; what was read stays known")
    func appendsBetweenCalls() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let a = FileStateStoreTests.intent("a")
        let b = FileStateStoreTests.intent("b", id: "2")
        let c = FileStateStoreTests.intent("c", id: "3", action: .delete)
        try store.append(a)
        try store.append(b)
        #expect(try store.unresolvedIntents() == [a, b])
        try store.append(a.resolution(JournalResult.ok, at: Self.later))
        #expect(try store.unresolvedIntents() == [b])
        try store.append(c)
        try store.append(b.resolution(JournalResult.failed, at: Self.later, error: "HTTP 500"))
        #expect(try store.unresolvedIntents() == [c])
        #expect(try store.unresolvedIntents() == [c])
        // A second store on the same directory (another process, or a restart) reads it all and agrees.
        #expect(try FileStateStore(directory: directory, logger: .silent).unresolvedIntents() == [c])
    }

    @Test("lines already read are not read again: an in-place change to them goes unseen, what follows is read")
    func readsOnlyWhatWasAppended() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let a = FileStateStoreTests.intent("a")
        try store.append(a)
        #expect(try store.unresolvedIntents() == [a])
        // Line 1 overwritten in place by an intent this version cannot decode, of the same length: a full read
        // would stop at it; the incremental read has taken that line already.
        var text = try String(contentsOfFile: store.journalPath, encoding: .utf8)
        let original = text.count
        let bad = #"{"action":"reboot","action_id":"x","result":"intent"}"#
        text = bad + String(repeating: " ", count: original - 1 - bad.count) + "\n"
        try text.write(toFile: store.journalPath, atomically: false, encoding: .utf8)
        let b = FileStateStoreTests.intent("b", id: "2")
        try store.append(b)
        #expect(try store.unresolvedIntents() == [a, b])
        // A fresh reader sees the file as it is now.
        #expect(throws: StateStoreError.undecodableIntent(path: store.journalPath, line: 1)) {
            try FileStateStore(directory: directory, logger: .silent).unresolvedIntents()
        }
    }

    @Test("a journal truncated, replaced or removed is read again from the start")
    func replacedJournal() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try FileStateStore(directory: directory, logger: .silent)
        let a = FileStateStoreTests.intent("a")
        let b = FileStateStoreTests.intent("b", id: "2")
        try store.append(a)
        try store.append(b)
        #expect(try store.unresolvedIntents() == [a, b])
        // Truncated in place to its first line.
        let first = try String(contentsOfFile: store.journalPath, encoding: .utf8).split(separator: "\n")[0] + "\n"
        try first.write(toFile: store.journalPath, atomically: false, encoding: .utf8)
        #expect(try store.unresolvedIntents() == [a])
        // Replaced by another file (a new inode) that closes a.
        let other = directory + "/other.jsonl"
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let closing = String(decoding: try encoder.encode(a.resolution(JournalResult.ok, at: Self.later)), as: UTF8.self)
        try (first + closing + "\n").write(toFile: other, atomically: false, encoding: .utf8)
        #expect(rename(other, store.journalPath) == 0)
        #expect(try store.unresolvedIntents() == [])
        try FileManager.default.removeItem(atPath: store.journalPath)
        #expect(try store.unresolvedIntents() == [])
        try store.append(b)
        #expect(try store.unresolvedIntents() == [b])
    }

    @Test("a last line without its newline: a whole record counts at once; a torn one is warned about once, when closed")
    func unfinishedLastLine() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = SamplerTestLogSink()
        let store = try FileStateStore(directory: directory, logger: Logger(level: .debug, sink: sink))
        let a = FileStateStoreTests.intent("a")
        try store.append(a)
        #expect(try store.unresolvedIntents() == [a])
        // The result of a, all but its newline (a crash right before it).
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let result = String(decoding: try encoder.encode(a.resolution(JournalResult.ok, at: Self.later)), as: UTF8.self)
        try appendRaw(result, to: store)
        #expect(try store.unresolvedIntents() == [])
        #expect(try store.unresolvedIntents() == [])
        let b = FileStateStoreTests.intent("b", id: "2")
        try store.append(b)  // closes the line first
        #expect(try store.unresolvedIntents() == [b])

        // A torn line: silent while last, one warning once the next append closes it, none after.
        try appendRaw(#"{"action":"pause","action_id":"c","dry_"#, to: store)
        #expect(try store.unresolvedIntents() == [b])
        #expect(sink.messages(.warning).isEmpty)
        try store.append(b.resolution(JournalResult.ok, at: Self.later))
        #expect(try store.unresolvedIntents() == [])
        #expect(try store.unresolvedIntents() == [])
        #expect(
            sink.messages(.warning) == [
                "Journal line 4 of \(store.journalPath) is not a record (a write cut short?): skipped"
            ])
    }
}
