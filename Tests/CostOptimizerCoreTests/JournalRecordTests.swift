import CostOptimizerCore
import Foundation
import Testing

@Suite("Journal records and intents")
struct JournalRecordTests {
    static let time = Date(timeIntervalSince1970: 1_800_000_000)

    static func record(_ result: String, _ actionID: String?, id: String = "1") -> JournalRecord {
        JournalRecord(
            time: time, provider: "vast", id: id, name: "nb", action: .pause, reason: "idle", dryRun: false,
            result: result, actionID: actionID)
    }

    @Test("an intent is open until a later record with its action_id, whatever that record's result")
    func pairing() {
        let a = Self.record(JournalResult.intent, "a")
        let b = Self.record(JournalResult.intent, "b")
        #expect(JournalRecord.unresolvedIntents([a, b]) == [a, b])
        for result in [JournalResult.ok, JournalResult.failed, JournalResult.dryRun, JournalResult.reconciled] {
            #expect(JournalRecord.unresolvedIntents([a, b, Self.record(result, "a")]) == [b])
        }
        // A result before its intent closes nothing (the intent came later: a new attempt).
        #expect(JournalRecord.unresolvedIntents([Self.record(JournalResult.ok, "a"), a]) == [a])
        // Records without an action_id link nothing; an intent without one cannot be closed and is not returned.
        #expect(JournalRecord.unresolvedIntents([a, Self.record(JournalResult.ok, nil)]) == [a])
        #expect(JournalRecord.unresolvedIntents([Self.record(JournalResult.intent, nil)]) == [])
    }

    @Test("a repeated intent is returned once, as its latest record, in journal order")
    func repeatedIntent() {
        let first = Self.record(JournalResult.intent, "a", id: "1")
        let other = Self.record(JournalResult.intent, "b", id: "2")
        let again = Self.record(JournalResult.intent, "a", id: "3")
        #expect(JournalRecord.unresolvedIntents([first, other, again]) == [other, again])
        #expect(JournalRecord.unresolvedIntents([first, other, again, Self.record(JournalResult.ok, "a")]) == [other])
    }

    @Test("a line written before intents existed decodes, with no action_id; new lines carry it")
    func compatibility() throws {
        let old =
            #"{"action":"delete","dry_run":false,"error":"HTTP 500","id":"9","name":"x","provider":"vast","reason":"r","#
            + #""result":"failed","time":1800000000}"#
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        let record = try decoder.decode(JournalRecord.self, from: Data(old.utf8))
        #expect(record.actionID == nil && record.result == "failed" && record.error == "HTTP 500")
        #expect(!record.isIntent)

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .secondsSince1970
        let text = String(decoding: try encoder.encode(Self.record(JournalResult.intent, "a")), as: UTF8.self)
        #expect(text.contains(#""action_id":"a""#) && text.contains(#""result":"intent""#))
        #expect(!String(decoding: try encoder.encode(record), as: UTF8.self).contains("action_id"))
        #expect(JournalResult.all == ["intent", "ok", "failed", "dry_run", "reconciled"])
    }
}
