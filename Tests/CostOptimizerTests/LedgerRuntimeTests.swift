import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// A fixed state and journal for the report: t0 is 2027-01-15T08:00:00Z.
enum ReportFixture {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static func at(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    static var state: FleetState {
        var ledger = SavingsLedger()
        ledger.startedAt = at("2026-11-01T00:00:00Z")
        ledger.lastAccrualAt = at("2027-01-15T07:59:00Z")
        ledger.spendUSD = 117
        ledger.savedUSD = 56
        ledger.days = [
            "2026-12-01": LedgerDay(spendUSD: ["vast": 100], savedUSD: ["vast/7": 50]),
            "2027-01-14": LedgerDay(spendUSD: ["vast": 10, "gcp": 2], savedUSD: ["vast/1": 3]),
            "2027-01-15": LedgerDay(spendUSD: ["vast": 5], savedUSD: ["vast/1": 1, "gcp/9": 2]),
        ]
        var ended = SavingsEntry(
            provider: .vast, id: "7", name: "old-job", pausedAt: at("2026-12-01T00:00:00Z"), billedUSDPerHour: 2.5,
            savedUSD: 50)
        ended.endedAt = at("2026-12-01T20:00:00Z")
        ended.endReason = "running again"
        ledger.entries = [
            ended,
            SavingsEntry(
                provider: .vast, id: "1", name: "notebook", pausedAt: at("2027-01-14T10:00:00Z"),
                billedUSDPerHour: 0.42,
                storageUSDPerHour: 0.02, savedUSD: 4),
            SavingsEntry(
                provider: .gcp, id: "9", name: "a100-eval", pausedAt: at("2027-01-15T01:00:00Z"),
                deletedAt: at("2027-01-15T06:00:00Z"), billedUSDPerHour: 2.93, savedUSD: 2),
        ]
        ledger.snapshot = FleetSnapshot(
            at: at("2027-01-15T07:59:00Z"), instances: ["vast": ["running": 3]], runningUSDPerHour: 3.2,
            idleInstances: 2, idleUSDPerHour: 0.84, unmonitoredInstances: 1, unmonitoredUSDPerHour: 0.56,
            topIdle: [
                IdleInstance(key: "vast/3", name: "jupyter", usdPerHour: 0.42, idleSince: at("2027-01-15T07:00:00Z"))
            ])
        var state = FleetState()
        state.ledger = ledger
        return state
    }

    static var journal: [JournalRecord] {
        func record(
            _ time: String, _ provider: String, _ id: String, _ name: String, _ action: ActionKind,
            _ result: String, dryRun: Bool = false
        ) -> JournalRecord {
            JournalRecord(
                time: at(time), provider: provider, id: id, name: name, action: action, reason: "why \(id)",
                dryRun: dryRun, result: result, actionID: "a-\(id)-\(action.rawValue)")
        }
        return [
            record("2026-12-01T00:00:00Z", "vast", "7", "old-job", .pause, "ok"),
            record("2027-01-14T10:00:00Z", "vast", "1", "notebook", .pause, "intent"),
            record("2027-01-14T10:00:01Z", "vast", "1", "notebook", .pause, "ok"),
            record("2027-01-15T01:00:00Z", "gcp", "9", "a100-eval", .pause, "ok"),
            record("2027-01-15T06:00:00Z", "gcp", "9", "a100-eval", .delete, "ok"),
            record("2027-01-15T07:00:00Z", "vast", "3", "jupyter", .pause, "dry_run", dryRun: true),
            record("2027-01-15T07:30:00Z", "vast", "5", "other", .delete, "failed"),
        ]
    }
}

@Suite("Savings report")
struct SavingsReportTests {
    @Test("--since 2d: the two UTC days' spend and savings, per provider and instance, and the journal's actions")
    func twoDays() throws {
        let report = SavingsReport(
            state: ReportFixture.state, journal: ReportFixture.journal, window: ReportWindow(amount: 2, unit: .days),
            now: ReportFixture.t0, stateDirectory: "/var/lib/cost-optimizer")
        #expect(report.firstDay == "2027-01-14" && report.lastDay == "2027-01-15")
        #expect(report.spendUSD == 17 && report.spendByProviderUSD == ["vast": 15, "gcp": 2])
        #expect(report.savingsUSD == 6 && report.savingsByProviderUSD == ["vast": 4, "gcp": 2])
        #expect(report.savingsByInstance.map(\.id) == ["1", "9"])
        #expect(report.savingsByInstance.map(\.savedUSD) == [4, 2])
        #expect(
            abs((report.savingsByInstance[0].avoidedUSDPerHour ?? 0) - 0.40) < 1e-9
                && report.savingsByInstance[0].accruing)
        #expect(report.savingsByInstance[1].action == "delete" && report.savingsByInstance[1].avoidedUSDPerHour == 2.93)
        #expect(report.paused.map(\.id) == ["1", "9"] && report.deleted.map(\.id) == ["9"])
        #expect(report.dryRunPauses == 1 && report.dryRunDeletes == 0)

        let text = report.text()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines[0]
                == "Savings report for UTC days 2027-01-14 to 2027-01-15 (--since 2d; the ledger keeps whole UTC days), "
                + "generated 2027-01-15T08:00:00Z")
        #expect(lines.contains("Spend observed    $17.00  gcp $2.00, vast $15.00"))
        #expect(lines.contains("Savings realised  $6.00   gcp $2.00, vast $4.00"))
        #expect(
            lines.contains {
                $0.hasPrefix("vast/1 ") && $0.contains("notebook") && $0.contains("0.42") && $0.contains("0.40")
                    && $0.contains("$4.00") && $0.hasSuffix("accruing")
            })
        #expect(
            lines.contains("Paused in the period: 2, deleted: 1 (dry run: 1 pauses and 0 deletes decided, not sent)"))
        #expect(
            lines.contains(
                "Burning now (last cycle 2027-01-15T07:59:00Z): $3.20/h running, $0.84/h on 2 idle, $0.56/h on 1 unmonitored"
            ))
        #expect(lines.contains("  idle: vast/3 jupyter $0.42/h since 2027-01-15T07:00:00Z"))
        #expect(!text.contains("old-job"))
    }

    @Test("--since 60d reaches the older day and the ended entry; --since 12h covers the UTC days of those hours")
    func otherWindows() throws {
        let long = SavingsReport(
            state: ReportFixture.state, journal: ReportFixture.journal, window: try ReportWindow.parse("60d"),
            now: ReportFixture.t0, stateDirectory: "/s")
        #expect(long.spendUSD == 117 && long.savingsUSD == 56)
        #expect(long.savingsByInstance.first?.id == "7")
        #expect(long.savingsByInstance.first?.accruing == false)
        #expect(long.savingsByInstance.first?.endedReason == "running again")
        #expect(long.text().contains("ended: running again"))
        let hours = SavingsReport(
            state: ReportFixture.state, journal: ReportFixture.journal, window: try ReportWindow.parse("12h"),
            now: ReportFixture.t0, stateDirectory: "/s")
        #expect(hours.firstDay == "2027-01-14" && hours.spendUSD == 17)
        let today = SavingsReport(
            state: ReportFixture.state, journal: ReportFixture.journal, window: try ReportWindow.parse("1d"),
            now: ReportFixture.t0, stateDirectory: "/s")
        #expect(today.firstDay == "2027-01-15" && today.spendUSD == 5 && today.savingsUSD == 3)
        #expect(today.paused.map(\.id) == ["9"])
    }

    @Test("--json is one object with the documented snake_case keys")
    func json() throws {
        let report = SavingsReport(
            state: ReportFixture.state, journal: ReportFixture.journal, window: .default, now: ReportFixture.t0,
            stateDirectory: "/s")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "generated_at", "since", "first_day", "last_day", "state_dir", "note", "spend_usd",
                "spend_by_provider_usd", "savings_usd", "savings_by_provider_usd", "savings_by_instance", "paused",
                "deleted", "dry_run_pauses", "dry_run_deletes", "now", "ledger_since", "spend_all_time_usd",
                "savings_all_time_usd",
            ])
        #expect(object["since"] as? String == "30d")
        #expect(object["first_day"] as? String == "2026-12-17")
        #expect(object["note"] is NSNull)
        #expect(object["spend_usd"] as? Double == 17)
        let first = try #require((object["savings_by_instance"] as? [[String: Any]])?.first)
        #expect(
            Set(first.keys) == [
                "provider", "id", "name", "action", "paused_at", "deleted_at", "billed_usd_per_hour",
                "storage_usd_per_hour", "avoided_usd_per_hour", "saved_usd", "accruing", "ended_reason",
            ])
        #expect(first["paused_at"] as? String == "2027-01-14T10:00:00Z")
        #expect(first["deleted_at"] is NSNull)
        let now = try #require(object["now"] as? [String: Any])
        #expect(now["idle_usd_per_hour"] as? Double == 0.84)
        #expect((now["top_idle"] as? [[String: Any]])?.first?["idle_since"] as? String == "2027-01-15T07:00:00Z")
        let paused = try #require(object["paused"] as? [[String: Any]])
        #expect(Set(paused.first?.keys ?? [:].keys) == ["time", "provider", "id", "name", "reason"])
    }

    @Test(
        "--since takes Nd or Nh within the ledger's 400 days",
        arguments: [("30d", 30, "d"), ("12h", 12, "h"), ("400d", 400, "d"), ("9600h", 9600, "h"), ("7D", 7, "d")])
    func sinceParses(text: String, amount: Int, unit: String) throws {
        let window = try ReportWindow.parse(text)
        #expect(window.amount == amount && window.unit.rawValue == unit)
    }

    @Test(
        "--since rejects anything else with a usage error",
        arguments: ["0d", "401d", "9601h", "30", "d", "-1d", "3w", ""])
    func sinceRejects(text: String) {
        #expect(throws: UsageError.self) { try ReportWindow.parse(text) }
    }

    @Test("the command line takes report, --since with or without =, and refuses --since elsewhere")
    func invocation() throws {
        #expect(try Invocation.parse(["report"]) == Invocation(command: .report))
        #expect(
            try Invocation.parse(["report", "--since", "7d", "--json"])
                == Invocation(command: .report, json: true, since: ReportWindow(amount: 7, unit: .days)))
        #expect(try Invocation.parse(["--since=12h", "report"]).since == ReportWindow(amount: 12, unit: .hours))
        #expect(throws: UsageError.self) { try Invocation.parse(["report", "--since"]) }
        #expect(throws: UsageError.self) { try Invocation.parse(["status", "--since", "2d"]) }
        #expect(throws: UsageError.self) { try Invocation.parse(["--since", "2d"]) }
        #expect(CommandLineTool.usage.contains("report [--since 30d] [--json]"))
    }

    @Test("report reads STATE_DIR without writing: a missing directory is an empty report, a corrupt state exit 70")
    func commandOutcomes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-report-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let env = ["STATE_DIR": directory]
        let missing = CommandLineTool.reportOutput(
            environment: env, window: .default, json: false, now: ReportFixture.t0)
        #expect(missing.status == 0)
        #expect(missing.text?.contains("Note: STATE_DIR \(directory) does not exist") == true)
        #expect(missing.text?.contains("Spend observed    $0.00") == true)
        #expect(!FileManager.default.fileExists(atPath: directory))

        let store = try FileStateStore(directory: directory, logger: .silent)
        try store.save(ReportFixture.state)
        for record in ReportFixture.journal { try store.append(record) }
        // A temp file the running daemon may be about to rename: report must leave it alone.
        #expect(FileManager.default.createFile(atPath: directory + "/.state.json.tmp-999", contents: Data("x".utf8)))
        let before = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let json = CommandLineTool.reportOutput(
            environment: env, window: ReportWindow(amount: 2, unit: .days), json: true, now: ReportFixture.t0)
        #expect(json.status == 0 && json.error == nil)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data((json.text ?? "").utf8)) as? [String: Any])
        #expect(object["spend_usd"] as? Double == 17 && object["savings_usd"] as? Double == 6)
        #expect((object["paused"] as? [Any])?.count == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == before)

        try Data("{not json".utf8).write(to: URL(fileURLWithPath: directory + "/state.json"))
        let corrupt = CommandLineTool.reportOutput(
            environment: env, window: .default, json: false, now: ReportFixture.t0)
        #expect(corrupt.status == 70 && corrupt.text == nil)
        #expect(corrupt.error?.contains("cannot use \(directory)/state.json") == true)

        let bad = CommandLineTool.reportOutput(
            environment: env.merging(["DIGEST_HOUR": "25"]) { $1 }, window: .default, json: false, now: ReportFixture.t0
        )
        #expect(bad.status == 78)
    }
}

@Suite("Prometheus metrics file")
struct MetricsFileTests {
    static func values() -> CycleMetrics {
        var ledger = SavingsLedger()
        ledger.savedUSD = 12.5
        ledger.spendUSD = 40.25
        ledger.actionCounts = ["pause/ok": 3, "delete/failed": 1]
        ledger.samplesOK = 120
        ledger.samplesFailed = 4
        let snapshot = FleetSnapshot(
            at: ReportFixture.t0, instances: ["vast": ["running": 2, "paused": 1], "gcp": ["running": 1]],
            runningUSDPerHour: 3.2, idleInstances: 1, idleUSDPerHour: 0.42, unmonitoredInstances: 1,
            unmonitoredUSDPerHour: 0.56, providerErrors: 2)
        return CycleMetrics(
            snapshot: snapshot, ledger: ledger, cycleSeconds: 1.5, lastSuccess: ReportFixture.t0, dryRun: false)
    }

    @Test("every metric has HELP and TYPE, follows the naming rules, and the values come from the ledger")
    func render() throws {
        let text = PrometheusText.render(Self.values())
        let lines = text.split(separator: "\n").map(String.init)
        #expect(text.hasSuffix("\n"))
        var typed: [String: String] = [:]
        for line in lines where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            typed[String(parts[2])] = String(parts[3])
        }
        let helped = Set(lines.filter { $0.hasPrefix("# HELP ") }.map { String($0.split(separator: " ")[2]) })
        #expect(helped == Set(typed.keys))
        for (name, type) in typed {
            #expect(name.hasPrefix("cost_optimizer_"))
            #expect(name.hasSuffix("_total") == (type == "counter"), "\(name) is a \(type)")
        }
        let sample = try Regex(#"^[a-z_]+(\{([a-z_]+="[^"\\]*",?)+\})? -?[0-9.e+]+$"#)
        for line in lines where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: sample) != nil, "malformed sample line: \(line)")
            #expect(typed[String(line.prefix { $0 != "{" && $0 != " " })] != nil, "no TYPE for \(line)")
        }
        for expected in [
            #"cost_optimizer_instances{provider="vast",state="running"} 2"#,
            #"cost_optimizer_instances{provider="vast",state="unknown"} 0"#,
            #"cost_optimizer_instances{provider="gcp",state="running"} 1"#,
            "cost_optimizer_idle_instances 1", "cost_optimizer_unmonitored_instances 1",
            "cost_optimizer_running_usd_per_hour 3.2", "cost_optimizer_idle_usd_per_hour 0.42",
            "cost_optimizer_savings_usd_total 12.5", "cost_optimizer_spend_usd_total 40.25",
            #"cost_optimizer_actions_total{action="pause",result="ok"} 3"#,
            #"cost_optimizer_actions_total{action="delete",result="failed"} 1"#,
            #"cost_optimizer_actions_total{action="delete",result="dry_run"} 0"#,
            "cost_optimizer_cycle_duration_seconds 1.5", #"cost_optimizer_samples_total{result="ok"} 120"#,
            #"cost_optimizer_samples_total{result="failed"} 4"#,
            "cost_optimizer_last_success_timestamp_seconds 1800000000", "cost_optimizer_provider_errors 2",
            "cost_optimizer_dry_run 0",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
    }

    @Test("label values are escaped as the exposition format says; numbers are written as Prometheus reads them")
    func escaping() {
        #expect(PrometheusText.escape(#"a"b\c"# + "\nd") == #"a\"b\\c\nd"#)
        #expect(PrometheusText.number(3) == "3" && PrometheusText.number(0.25) == "0.25")
        #expect(PrometheusText.number(.infinity) == "+Inf" && PrometheusText.number(.nan) == "NaN")
        var values = Self.values()
        values.ledger.actionCounts["pause/we\"ird"] = 2
        #expect(
            PrometheusText.render(values).contains(#"cost_optimizer_actions_total{action="pause",result="we\"ird"} 2"#))
    }

    @Test("the file is replaced by rename, mode 0644 whatever the umask, with no temp file left")
    func atomicWrite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-metrics-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/cost_optimizer.prom"
        let sink = MetricsTextFile(path: path)
        let result = try await StateFileModes.withUmask(0o077) { () throws -> [Int?] in
            try sink.publish("first 1\n")
            var info = stat()
            _ = stat(path, &info)
            let firstInode = info.st_ino
            try sink.publish("second 2\n")
            _ = stat(path, &info)
            return [StateFileModes.mode(path), firstInode == info.st_ino ? 1 : 0]
        }
        #expect(result == [0o644, 0], "mode 0644, and a new inode: the file was renamed into place, not rewritten")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second 2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["cost_optimizer.prom"])
        let missing = MetricsTextFile(path: directory + "/no-such-dir/x.prom")
        #expect {
            try missing.publish("x 1\n")
        } throws: { error in
            "\(error)".contains("METRICS_FILE") && "\(error)".contains("no-such-dir")
        }
    }

    @Test("a METRICS_FILE whose directory cannot be written stops the start with exit 78")
    func unwritableDirectory() throws {
        let config = try Config.parse(environment: [
            "VAST_API_KEY": "k", "METRICS_FILE": "/nonexistent-\(UUID().uuidString)/cost_optimizer.prom",
        ])
        #expect(throws: ConfigError.self) {
            try CommandLineTool.checkFiles(config, environment: ["PATH": "/usr/bin:/bin"])
        }
    }
}

@Suite("Ledger in the daemon")
struct LedgerDaemonTests {
    /// The Rig's daemon with a metrics sink and UTC for the digest.
    static func daemon(_ rig: Rig, metrics: RecordingMetricsSink, logger: Logger = .silent) -> Daemon {
        Daemon(
            config: rig.daemon.config, providers: rig.daemon.providers, sampler: rig.daemon.sampler, store: rig.store,
            notifier: rig.notifier, clock: rig.clock, logger: logger, metrics: metrics,
            timeZone: TimeZone(secondsFromGMT: 0)!)
    }

    @Test("an idle instance is paused, then savings accrue in the state and the metrics file, hour after hour")
    func pauseAccrues() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "DIGEST_HOUR": "0"])
        let metrics = RecordingMetricsSink()
        let sink = CapturingSink()
        let daemon = Self.daemon(rig, metrics: metrics, logger: Logger(level: .info, sink: sink))
        var state = FleetState()
        for _ in 0..<61 {
            state = await daemon.tick(state: state).state
            rig.clock.advance(by: 60)
        }
        #expect(rig.requests("PUT") == ["/api/v0/instances/123/"])
        let ledger = try #require(state.ledger)
        let entry = try #require(ledger.entries.first)
        // The simulator bills $0.40/h running and $0.0104/h of storage: the pause saves $0.3896/h from its time on.
        #expect(entry.billedUSDPerHour == 0.4 && entry.storageUSDPerHour == 0.0104 && entry.isOpen)
        let pausedAt = try #require(rig.store.journal.first { $0.result == "ok" }?.time)
        #expect(entry.pausedAt == pausedAt)
        let last = try #require(ledger.snapshot?.at)
        let hours = last.timeIntervalSince(pausedAt) / 3600
        #expect(hours > 0.9)
        #expect(abs(ledger.savedUSD - 0.3896 * hours) < 1e-9)
        #expect(abs(ledger.spendUSD - 0.0104 * hours) < 1e-9, "spend after the pause is the storage")
        #expect(ledger.actionCounts == ["pause/ok": 1])
        #expect(ledger.samplesOK == 1 && ledger.samplesFailed == 0, "one stored sample: the instance ran one cycle")
        #expect(rig.store.state?.ledger == ledger, "saved with the state")
        #expect(metrics.published.count == 61)
        let file = try #require(metrics.published.last)
        let savings = file.split(separator: "\n").first { $0.hasPrefix("cost_optimizer_savings_usd_total ") }
        #expect(savings.flatMap { Double($0.split(separator: " ")[1]) } == ledger.savedUSD)
        #expect(file.contains(#"cost_optimizer_actions_total{action="pause",result="ok"} 1"#))
        #expect(file.contains(#"cost_optimizer_instances{provider="vast",state="paused"} 1"#))
        #expect(
            file.contains(
                "cost_optimizer_last_success_timestamp_seconds \(PrometheusText.number(last.timeIntervalSince1970))"))
        // The summary line keeps its prefix and adds the figures at the end.
        let summary = try #require(sink.captured.last { $0.contains("Cycle complete") })
        #expect(summary.hasPrefix("info: Cycle complete: 0 running, 1 paused, 0 errors in "))
        #expect(summary.hasSuffix(", $0.00/h running, $0.00/h idle, \(Money.usd(ledger.savedUSD)) saved in all"))
        // DIGEST_HOUR=0, UTC: one digest on the first cycle of the day (after its pause), none after, none after a
        // restart.
        let digests = rig.notifier.events.filter { $0.event == .digest }
        #expect(digests.count == 1)
        #expect(digests.first?.digest?.paused == 1 && digests.first?.digest?.savedUSD == 0)
        #expect(ledger.lastDigestDay == "2027-01-15")
        let restarted = Self.daemon(rig, metrics: metrics)
        _ = await restarted.tick(state: state)
        #expect(rig.notifier.events.filter { $0.event == .digest }.count == 1)
    }

    @Test("the next day's digest counts the day's pause and savings")
    func nextDayDigest() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "DIGEST_HOUR": "7"])
        let daemon = Self.daemon(rig, metrics: RecordingMetricsSink())
        var state = FleetState()
        // 08:00Z: the digest for the 15th goes out at once; the pause follows in the same cycle.
        state = await daemon.tick(state: state).state
        rig.clock.advance(by: 23 * 3600)  // 07:00Z on the 16th, give or take the pacing
        state = await daemon.tick(state: state).state
        let digests = rig.notifier.events.compactMap(\.digest)
        #expect(digests.count == 2)
        let second = try #require(digests.last)
        #expect(second.paused == 1)
        // The gap of 23 h is capped at 15 min (three intervals of 60 s are less): $0.3896/h × 0.25 h.
        #expect(abs(second.savedUSD - 0.3896 * 0.25) < 1e-9)
        #expect(rig.notifier.events.last { $0.event == .digest }?.text.contains("1 paused") == true)
    }

    @Test("dry run: the ledger counts the decision, records no pause and accrues no savings")
    func dryRun() async throws {
        let rig = try Rig(environment: ["PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "DRY_RUN": "true"])
        var state = FleetState()
        await rig.ticks(30, from: &state)
        let ledger = try #require(state.ledger)
        #expect(ledger.entries.isEmpty && ledger.savedUSD == 0)
        #expect(ledger.actionCounts == ["pause/dry_run": 1])
        #expect(ledger.spendUSD > 0, "spend is observed in dry run too: the instance runs at $0.40/h")
    }

    @Test("a failing METRICS_FILE is logged and the cycle goes on")
    func metricsFailure() async throws {
        let rig = try Rig()
        let sink = CapturingSink()
        let daemon = Daemon(
            config: rig.daemon.config, providers: rig.daemon.providers, sampler: rig.daemon.sampler, store: rig.store,
            notifier: rig.notifier, clock: rig.clock, logger: Logger(level: .info, sink: sink),
            metrics: MetricsTextFile(path: "/nonexistent-\(UUID().uuidString)/x.prom"))
        let report = await daemon.tick(state: FleetState())
        #expect(report.listedAccounts == 1)
        #expect(sink.captured.contains { $0.hasPrefix("error: Metrics not written: cannot write ") })
        #expect(rig.store.saves == 1)
    }
}

@Suite("Ledger inputs and outputs at the edges")
struct LedgerEdgeTests {
    @Test("Vast gives storage_total_cost and TensorDock v0 storage_price as the storage $/h; v2 gives none")
    func storageRates() async throws {
        let vast = VastSimulator(apiKey: VastFixture.apiKey)
        vast.add(SimulatedVastInstance(id: 1))
        let provider = VastProvider(
            apiKey: Secret(VastFixture.apiKey), baseURL: URL(string: "https://console.vast.ai")!,
            transport: FakeHTTPTransport(handler: vast.handle), clock: FakeClock(), logger: .silent, retry: .exact,
            pacing: .off)
        #expect(try await provider.listInstances().map(\.storageCostUSDPerHour) == [0.0104])

        let simulator = TensorDockFixture.simulator(TensorDockFixture.fleet(1))
        for (v2, expected) in [(false, 0.01 as Double?), (true, nil)] {
            let td = TensorDockProvider(
                settings: TensorDockFixture.settings(v2: v2, v0: !v2),
                transport: FakeHTTPTransport(handler: simulator.handle),
                clock: FakeClock(), logger: .silent, retry: .exact, minimumInterval: 0)
            #expect(try await td.listInstances().map(\.storageCostUSDPerHour) == [expected])
        }
    }

    @Test("the digest goes to the webhook as event digest with its figures, dates in ISO 8601")
    func digestPayload() async throws {
        let transport = FakeHTTPTransport(responses: [.success(HTTPResponse(status: 200, body: Data()))])
        let notifier = WebhookNotifier(
            url: Secret("https://hooks.example.com/T/B/x"), transport: transport, clock: FakeClock(), logger: .silent)
        var ledger = SavingsLedger()
        ledger.savedUSD = 3
        let figures = DigestFigures.make(
            ledger: ledger, snapshot: FleetSnapshot(at: ReportFixture.t0), now: ReportFixture.t0)
        await notifier.notify(NotificationEvent(event: .digest, text: figures.text, dryRun: false, digest: figures))
        let body = try #require(transport.requests.first?.body)
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(object["event"] as? String == "digest")
        let digest = try #require(object["digest"] as? [String: Any])
        #expect(digest["since"] as? String == "2027-01-14T08:00:00Z")
        #expect(digest["saved_all_time_usd"] as? Double == 3)
        #expect(digest["top_idle"] as? [Any] != nil)
    }
}
