import CostOptimizerCore
import Foundation
import Testing

/// Hand-computed ledger arithmetic. t0 is 2027-01-15T08:00:00Z.
@Suite("Savings ledger")
struct SavingsLedgerTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let hour = 3600.0
    static let day = 86_400.0
    /// Large enough never to cap in the tests that are not about the cap.
    static let noCap = 400 * 86_400.0

    static func vast(
        _ state: InstanceState, id: String = "1", price: Double? = 0.50, storage: Double? = nil,
        gpuReserved: Bool = false, provider: ProviderName = .vast
    ) -> Instance {
        Instance(
            key: InstanceKey(provider: provider, id: id), name: "box-\(id)", state: state, providerStatus: "x",
            hourlyCostUSD: price, gpuReserved: gpuReserved, storageCostUSDPerHour: storage)
    }

    static func seen(_ instances: [Instance], listed: Set<ProviderName> = [.vast], pending: Set<InstanceKey> = [])
        -> LedgerObservation
    {
        LedgerObservation(instances: instances, listedProviders: listed, pendingPauses: pending)
    }

    /// Starts the clock at t0, pauses `instance` (as listed running) at t0, then sees `after` every `step` seconds
    /// until `until` seconds after t0.
    static func pausedLedger(_ running: Instance, after: [Instance], step: Double, until: Double) -> SavingsLedger {
        var ledger = SavingsLedger()
        ledger.accrue(seen([running]), now: t0, maxGap: noCap)
        ledger.record(.pause, instance: running, result: "ok", at: t0)
        var t = step
        while t <= until {
            ledger.accrue(seen(after), now: t0 + t, maxGap: noCap)
            t += step
        }
        return ledger
    }

    @Test("a pause with a storage rate saves running minus storage; spend is the storage")
    func pauseWithStorage() {
        let ledger = Self.pausedLedger(
            Self.vast(.running, price: 0.50, storage: 0.02), after: [Self.vast(.paused, price: 0.50, storage: 0.02)],
            step: 600, until: 2 * Self.hour)
        // 2 h × (0.50 − 0.02) = 0.96; 2 h × 0.02 = 0.04.
        #expect(abs(ledger.savedUSD - 0.96) < 1e-9)
        #expect(abs(ledger.spendUSD - 0.04) < 1e-9)
        #expect(abs((ledger.days["2027-01-15"]?.savedUSD["vast/1"] ?? 0) - 0.96) < 1e-9)
        #expect(abs((ledger.days["2027-01-15"]?.spendUSD["vast"] ?? 0) - 0.04) < 1e-9)
        #expect(ledger.entries.count == 1 && ledger.entries[0].isOpen)
        #expect(abs(ledger.entries[0].savedUSD - 0.96) < 1e-9)
        #expect(ledger.entries[0].avoidedUSDPerHour == 0.48)
    }

    @Test("a pause where the provider gives no storage rate saves the whole running rate and observes no spend")
    func pauseWithoutStorage() {
        let ledger = Self.pausedLedger(
            Self.vast(.running, price: 2.93, provider: .gcp), after: [Self.vast(.paused, price: 2.93, provider: .gcp)],
            step: 300, until: 3 * Self.hour)
        #expect(abs(ledger.savedUSD - 8.79) < 1e-9)
        #expect(ledger.spendUSD == 0)
    }

    @Test("a delete saves the billed rate for 30 days, then the entry ends at the horizon")
    func deleteThirtyDays() {
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 0.40, storage: 0.01)
        ledger.accrue(Self.seen([running]), now: Self.t0, maxGap: 3 * Self.hour)
        ledger.record(.delete, instance: running, result: "ok", at: Self.t0)
        for h in 1...(31 * 24) {
            ledger.accrue(Self.seen([]), now: Self.t0 + Double(h) * Self.hour, maxGap: 3 * Self.hour)
        }
        // 30 days × 24 h × 0.40 = 288.
        #expect(abs(ledger.savedUSD - 288) < 1e-6)
        #expect(ledger.entries.first?.endedAt == Self.t0 + 30 * Self.day)
        #expect(ledger.entries.first?.endReason == "30 days after the delete")
        #expect(ledger.entries.first?.action == .delete)
    }

    @Test("a delete accrues only while its provider listed in full: an outage is no evidence that it is gone")
    func deleteNeedsAListing() {
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 0.40)
        ledger.accrue(Self.seen([running]), now: Self.t0, maxGap: Self.noCap)
        ledger.record(.delete, instance: running, result: "ok", at: Self.t0)
        ledger.accrue(Self.seen([], listed: []), now: Self.t0 + Self.hour, maxGap: Self.noCap)
        #expect(ledger.savedUSD == 0)
        ledger.accrue(Self.seen([]), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.40) < 1e-9)
        // Listed again after the delete: not gone, nothing avoided; seen running: the delete did not take.
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.40)]), now: Self.t0 + 3 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.40) < 1e-9)
        ledger.accrue(Self.seen([Self.vast(.running, price: 0.40)]), now: Self.t0 + 4 * Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.first?.endReason == "listed running after the delete")

        // A delete whose instance stays listed (or unlisted by an outage) still ends at the horizon.
        var stuck = SavingsLedger()
        stuck.accrue(Self.seen([running]), now: Self.t0, maxGap: Self.noCap)
        stuck.record(.delete, instance: running, result: "ok", at: Self.t0)
        stuck.accrue(Self.seen([Self.vast(.paused)], listed: []), now: Self.t0 + 31 * Self.day, maxGap: Self.noCap)
        #expect(stuck.entries.first?.endedAt == Self.t0 + 30 * Self.day && stuck.savedUSD == 0)
    }

    @Test("a delete after our pause keeps the running rate it paused at: the storage is saved too from then on")
    func deleteAfterPause() {
        var ledger = Self.pausedLedger(
            Self.vast(.running, price: 0.50, storage: 0.02), after: [Self.vast(.paused, price: 0.50, storage: 0.02)],
            step: Self.hour, until: Self.hour)
        ledger.record(
            .delete, instance: Self.vast(.paused, price: 0.50, storage: 0.02), result: "ok",
            at: Self.t0 + Self.hour)
        ledger.accrue(Self.seen([]), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        // 1 h × 0.48 paused, then 1 h × 0.50 deleted.
        #expect(abs(ledger.savedUSD - 0.98) < 1e-9)
        #expect(ledger.entries.count == 1)
        #expect(ledger.entries[0].pausedAt == Self.t0 && ledger.entries[0].deletedAt == Self.t0 + Self.hour)
    }

    @Test("deleting an instance someone else stopped saves only its storage")
    func deleteStopped() {
        var ledger = SavingsLedger()
        let stopped = Self.vast(.paused, price: 1.10, storage: 0.0104)
        ledger.accrue(Self.seen([stopped]), now: Self.t0, maxGap: Self.noCap)
        ledger.record(.delete, instance: stopped, result: "ok", at: Self.t0)
        ledger.accrue(Self.seen([]), now: Self.t0 + 10 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.104) < 1e-9)
    }

    @Test("a TensorDock VM stopped with its GPU reserved is spend at the full rate; releasing it saves rate − storage")
    func reservedGPU() {
        let reserved = Self.vast(
            .paused, id: "td", price: 0.38, storage: 0.01, gpuReserved: true, provider: .tensordock)
        var ledger = SavingsLedger()
        ledger.accrue(Self.seen([reserved], listed: [.tensordock]), now: Self.t0, maxGap: Self.noCap)
        ledger.accrue(Self.seen([reserved], listed: [.tensordock]), now: Self.t0 + Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.spendUSD - 0.38) < 1e-9)
        ledger.record(.pause, instance: reserved, result: "ok", at: Self.t0 + Self.hour)
        let released = Self.vast(.paused, id: "td", price: 0.38, storage: 0.01, provider: .tensordock)
        ledger.accrue(Self.seen([released], listed: [.tensordock]), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.37) < 1e-9)
        #expect(abs(ledger.spendUSD - 0.39) < 1e-9)
    }

    @Test("an instance we paused and someone started again stops accruing, for good")
    func restartStops() {
        var ledger = Self.pausedLedger(
            Self.vast(.running, price: 0.50), after: [Self.vast(.paused, price: 0.50)], step: Self.hour,
            until: Self.hour)
        #expect(abs(ledger.savedUSD - 0.50) < 1e-9)
        ledger.accrue(Self.seen([Self.vast(.running, price: 0.50)]), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.50)]), now: Self.t0 + 3 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.50) < 1e-9)
        #expect(ledger.entries.first?.endReason == "running again")
        #expect(ledger.entries.first?.endedAt == Self.t0 + 2 * Self.hour)
        // Paused again by us later: a new entry.
        ledger.record(
            .pause, instance: Self.vast(.running, price: 0.60), result: "ok",
            at: Self.t0 + 3 * Self.hour)
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.60)]), now: Self.t0 + 4 * Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.count == 2)
        #expect(abs(ledger.savedUSD - 1.10) < 1e-9)
    }

    @Test("running while our pause is still pending is not a restart; the pause sent again keeps the first rate")
    func pendingPause() {
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 0.50)
        ledger.accrue(Self.seen([running]), now: Self.t0, maxGap: Self.noCap)
        ledger.record(.pause, instance: running, result: "ok", at: Self.t0)
        ledger.accrue(Self.seen([running], pending: [running.key]), now: Self.t0 + Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.first?.isOpen == true)
        #expect(ledger.savedUSD == 0)
        ledger.record(
            .pause, instance: Self.vast(.running, price: 0.90), result: "ok",
            at: Self.t0 + Self.hour)
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.90)]), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.count == 1)
        #expect(abs(ledger.savedUSD - 0.50) < 1e-9)
    }

    @Test("not listed while its provider failed: no accrual; gone from a full listing without our delete: ended")
    func goneOrUnknown() {
        var ledger = Self.pausedLedger(
            Self.vast(.running, price: 0.50), after: [Self.vast(.paused, price: 0.50)], step: Self.hour,
            until: Self.hour)
        ledger.accrue(Self.seen([], listed: []), now: Self.t0 + 2 * Self.hour, maxGap: Self.noCap)
        #expect(abs(ledger.savedUSD - 0.50) < 1e-9)
        #expect(ledger.entries.first?.isOpen == true)
        ledger.accrue(Self.seen([]), now: Self.t0 + 3 * Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.first?.endReason == "gone without our delete")
        #expect(abs(ledger.savedUSD - 0.50) < 1e-9)
    }

    @Test("a gap longer than the cap counts only the cap: a daemon that was down claims nothing for that time")
    func gapCap() {
        var ledger = Self.pausedLedger(
            Self.vast(.running, price: 0.60, storage: 0.0), after: [Self.vast(.paused, price: 0.60, storage: 0.0)],
            step: Self.hour, until: Self.hour)
        let running = Self.vast(.running, id: "2", price: 1.20)
        ledger.accrue(
            Self.seen([Self.vast(.paused, price: 0.60, storage: 0), running]), now: Self.t0 + 11 * Self.hour,
            maxGap: 900)
        // 1 h before the gap, then 15 min only: savings 0.60 + 0.15, spend 1.20 × 0.25.
        #expect(abs(ledger.savedUSD - 0.75) < 1e-9)
        #expect(abs(ledger.spendUSD - 0.30) < 1e-9)
        #expect(ledger.lastAccrualAt == Self.t0 + 11 * Self.hour)
    }

    @Test("the first accrual only starts the clock, and a clock that went back accrues nothing")
    func firstAndBackwards() {
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 1)
        ledger.accrue(Self.seen([running]), now: Self.t0, maxGap: Self.noCap)
        #expect(ledger.spendUSD == 0 && ledger.startedAt == Self.t0)
        ledger.accrue(Self.seen([running]), now: Self.t0 - Self.hour, maxGap: Self.noCap)
        #expect(ledger.spendUSD == 0 && ledger.lastAccrualAt == Self.t0)
        ledger.accrue(Self.seen([running]), now: Self.t0 + Self.hour, maxGap: Self.noCap)
        #expect(ledger.spendUSD == 1)
    }

    @Test("an interval across midnight UTC is split between the two days, to the second")
    func acrossMidnight() {
        let beforeMidnight = Date(timeIntervalSince1970: 1_800_057_000)  // 2027-01-15T23:50:00Z
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 0.60)
        ledger.accrue(Self.seen([running]), now: beforeMidnight, maxGap: Self.noCap)
        ledger.record(.pause, instance: running, result: "ok", at: beforeMidnight)
        let twentyPast = beforeMidnight + 1800
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.60, storage: 0.06)]), now: twentyPast, maxGap: Self.noCap)
        // Savings 0.54/h: 10 min on the 15th, 20 min on the 16th. Spend 0.06/h likewise.
        #expect(abs((ledger.days["2027-01-15"]?.savedUSD["vast/1"] ?? 0) - 0.09) < 1e-9)
        #expect(abs((ledger.days["2027-01-16"]?.savedUSD["vast/1"] ?? 0) - 0.18) < 1e-9)
        #expect(abs((ledger.days["2027-01-15"]?.spendUSD["vast"] ?? 0) - 0.01) < 1e-9)
        #expect(abs((ledger.days["2027-01-16"]?.spendUSD["vast"] ?? 0) - 0.02) < 1e-9)
        #expect(ledger.days.count == 2)
        // Hour buckets: 23:00 and 00:00.
        #expect(ledger.hours.map(\.hour) == [500_015, 500_016])
        #expect(abs(ledger.hours[0].savedUSD - 0.09) < 1e-9)
    }

    @Test("a dry run opens no entry and accrues no savings; every outcome is counted")
    func dryRun() {
        var ledger = SavingsLedger()
        let running = Self.vast(.running, price: 0.50)
        ledger.accrue(Self.seen([running]), now: Self.t0, maxGap: Self.noCap)
        ledger.record(.pause, instance: running, result: "dry_run", at: Self.t0)
        ledger.record(.pause, instance: running, result: "failed", at: Self.t0)
        ledger.record(.delete, instance: running, result: "failed", at: Self.t0)
        ledger.accrue(Self.seen([Self.vast(.paused, price: 0.50)]), now: Self.t0 + Self.hour, maxGap: Self.noCap)
        #expect(ledger.entries.isEmpty)
        #expect(ledger.savedUSD == 0)
        #expect(ledger.actionCounts == ["pause/dry_run": 1, "pause/failed": 1, "delete/failed": 1])
    }

    @Test("retention: days for 400 days, hours for 48 hours, ended entries for 400 days; open entries stay")
    func retention() {
        var ledger = SavingsLedger()
        ledger.days = [
            "2025-12-12": LedgerDay(spendUSD: ["vast": 1]),  // 399 days before 2027-01-15: the 400th day, kept
            "2025-12-11": LedgerDay(spendUSD: ["vast": 1]),  // 400 days before: the 401st, dropped
            "not-a-day": LedgerDay(),
        ]
        let now = Self.t0
        let thisHour = LedgerCalendar.hourNumber(now)
        ledger.hours = [LedgerHour(hour: thisHour - 48), LedgerHour(hour: thisHour - 47), LedgerHour(hour: thisHour)]
        var old = SavingsEntry(provider: .vast, id: "1", name: "a", pausedAt: now - 500 * Self.day, billedUSDPerHour: 1)
        old.endedAt = now - 401 * Self.day
        var recent = SavingsEntry(
            provider: .vast, id: "2", name: "b", pausedAt: now - 500 * Self.day, billedUSDPerHour: 1)
        recent.endedAt = now - 300 * Self.day
        let open = SavingsEntry(
            provider: .vast, id: "3", name: "c", pausedAt: now - 500 * Self.day, billedUSDPerHour: 1)
        ledger.entries = [old, recent, open]
        ledger.prune(now: now)
        #expect(ledger.days.keys.sorted() == ["2025-12-12"])
        #expect(ledger.hours.map(\.hour) == [thisHour - 47, thisHour])
        #expect(ledger.entries.map(\.id) == ["2", "3"])
    }

    @Test("samples stamped with the cycle's time are counted, ok and failed")
    func samples() {
        var state = FleetState()
        var record = InstanceRecord(firstSeen: Self.t0, state: .running)
        record.samples = [
            StoredSample(at: Self.t0 - 60, utilization: 1), StoredSample(at: Self.t0, utilization: 2),
        ]
        var failed = InstanceRecord(firstSeen: Self.t0, state: .running)
        failed.samples = [StoredSample(at: Self.t0, utilization: nil)]
        state.instances = [
            "vast/1": record, "vast/2": failed, "vast/3": InstanceRecord(firstSeen: Self.t0, state: .paused),
        ]
        var ledger = SavingsLedger()
        ledger.countSamples(in: state, at: Self.t0)
        #expect(ledger.samplesOK == 1 && ledger.samplesFailed == 1)
    }

    @Test("the state file keeps the ledger; one written before the ledger decodes with none")
    func persistence() throws {
        var state = FleetState()
        state.savings = Self.pausedLedger(
            Self.vast(.running, price: 0.50), after: [Self.vast(.paused, price: 0.50)], step: Self.hour,
            until: Self.hour)
        let decoded = try JSONDecoder().decode(FleetState.self, from: JSONEncoder().encode(state))
        #expect(decoded == state)
        let old = try JSONDecoder().decode(FleetState.self, from: Data(#"{"schemaVersion":1,"instances":{}}"#.utf8))
        #expect(old.ledger == nil)
        #expect(old.savings == SavingsLedger())
        let partial = try JSONDecoder().decode(SavingsLedger.self, from: Data(#"{"savedUSD":2.5}"#.utf8))
        #expect(partial.savedUSD == 2.5 && partial.entries.isEmpty)
    }
}

@Suite("Ledger calendar, digest schedule, snapshot")
struct LedgerCalendarTests {
    @Test(
        "UTC day keys by arithmetic, and back",
        arguments: [
            (0, "1970-01-01"), (-1, "1969-12-31"), (11_017, "2000-03-01"), (19_782, "2024-02-29"),
            (20_833, "2027-01-15"),
        ])
    func dayKeys(number: Int, key: String) {
        #expect(LedgerCalendar.dayKey(dayNumber: number) == key)
        #expect(LedgerCalendar.dayNumber(key: key) == number)
    }

    @Test("malformed day keys are rejected", arguments: ["2027-02-30", "2027-1-15", "20270115", "2027-13-01", ""])
    func badDayKeys(key: String) {
        #expect(LedgerCalendar.dayNumber(key: key) == nil)
    }

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z

    @Test("the digest is due at the first cycle at or after the local hour, once per local day")
    func digestDue() {
        let at = { (hours: Double) in Self.t0 + hours * 3600 }
        // UTC: 08:00 now. Hour 9: not before 09:00, due at 09:00 and after, not again that day.
        #expect(DigestSchedule.dueDay(now: at(0.99), hour: 9, utcOffsetSeconds: 0, lastDigestDay: nil) == nil)
        #expect(DigestSchedule.dueDay(now: at(1), hour: 9, utcOffsetSeconds: 0, lastDigestDay: nil) == "2027-01-15")
        #expect(DigestSchedule.dueDay(now: at(5), hour: 9, utcOffsetSeconds: 0, lastDigestDay: nil) == "2027-01-15")
        #expect(DigestSchedule.dueDay(now: at(5), hour: 9, utcOffsetSeconds: 0, lastDigestDay: "2027-01-15") == nil)
        // Across midnight: at 00:30 on the 16th the 09:00 digest is not due yet; at 09:00 it is, for the 16th.
        #expect(DigestSchedule.dueDay(now: at(16.5), hour: 9, utcOffsetSeconds: 0, lastDigestDay: "2027-01-15") == nil)
        #expect(
            DigestSchedule.dueDay(now: at(25), hour: 9, utcOffsetSeconds: 0, lastDigestDay: "2027-01-15")
                == "2027-01-16")
        // Hour 23, late cycle at 23:59 then 00:01 the next day: one digest for the 15th, none yet for the 16th.
        #expect(
            DigestSchedule.dueDay(now: at(15.98), hour: 23, utcOffsetSeconds: 0, lastDigestDay: nil) == "2027-01-15")
        #expect(
            DigestSchedule.dueDay(now: at(16.02), hour: 23, utcOffsetSeconds: 0, lastDigestDay: "2027-01-15") == nil)
        // Hour 0: due at local midnight.
        #expect(
            DigestSchedule.dueDay(now: at(16), hour: 0, utcOffsetSeconds: 0, lastDigestDay: "2027-01-15")
                == "2027-01-16")
        // A later day already sent (the clock went back): nothing.
        #expect(DigestSchedule.dueDay(now: at(5), hour: 0, utcOffsetSeconds: 0, lastDigestDay: "2027-01-16") == nil)
    }

    @Test(
        "the local hour and day follow the UTC offset",
        arguments: [(19_800, 1.5, "2027-01-15"), (-28_800, 17.0, "2027-01-15"), (36_000, 23.0, "2027-01-16")])
    func digestOffsets(offset: Int, hoursAfterT0: Double, day: String) {
        // 08:00Z + 1.5 h = 09:30Z = 15:00 in +05:30; + 17 h = 01:00Z on the 16th = 17:00 on the 15th in −08:00;
        // + 23 h = 07:00Z on the 16th = 17:00 on the 16th in +10:00.
        let now = Self.t0 + hoursAfterT0 * 3600
        #expect(DigestSchedule.dueDay(now: now, hour: 15, utcOffsetSeconds: offset, lastDigestDay: nil) == day)
        #expect(
            DigestSchedule.dueDay(now: now - 3600, hour: 15, utcOffsetSeconds: offset, lastDigestDay: "2000-01-01")
                == (offset == 19_800 ? nil : day))
    }

    @Test("the snapshot sums running, idle and unmonitored $/h and lists the costliest idle instances first")
    func snapshot() {
        let t0 = Self.t0
        func planned(
            _ id: String, _ state: InstanceState, _ price: Double?, managed: Bool = true, unmonitored: Bool = false
        )
            -> PlannedDecision
        {
            var decision = Decision.none("x")
            if unmonitored { decision.unmonitoredSince = t0 - 7200 }
            return PlannedDecision(
                instance: Instance(
                    key: InstanceKey(provider: .vast, id: id), name: "n\(id)", state: state, providerStatus: "x",
                    hourlyCostUSD: price, managed: managed),
                decision: decision, protected: false)
        }
        var state = FleetState()
        for id in ["1", "2", "3"] {
            var record = InstanceRecord(firstSeen: t0, state: .running)
            record.streakStart = t0 - 600
            state.instances["vast/\(id)"] = record
        }
        let decisions = [
            planned("1", .running, 0.40), planned("2", .running, 1.60), planned("3", .running, nil),
            planned("4", .running, 2.00), planned("5", .running, 0.30, unmonitored: true),
            planned("6", .paused, 9.99), planned("7", .running, 0.10, managed: false),
        ]
        let snapshot = FleetSnapshot.make(decisions: decisions, state: state, providerErrors: 1, now: t0)
        #expect(abs(snapshot.runningUSDPerHour - 4.40) < 1e-9)
        #expect(abs(snapshot.idleUSDPerHour - 2.00) < 1e-9)
        #expect(snapshot.idleInstances == 3)
        #expect(snapshot.unmonitoredInstances == 1 && snapshot.unmonitoredUSDPerHour == 0.30)
        #expect(snapshot.topIdle.map(\.key) == ["vast/2", "vast/1", "vast/3"])
        #expect(snapshot.instances == ["vast": ["running": 6, "paused": 1]])
        #expect(snapshot.providerErrors == 1)
    }

    @Test("the digest sums the last 24 hours of hour buckets and counts the pauses and deletes in them")
    func digestFigures() {
        let now = Self.t0 + 1800  // 08:30Z
        var ledger = SavingsLedger()
        let hour = LedgerCalendar.hourNumber(now)
        ledger.hours = [
            LedgerHour(hour: hour - 25, spendUSD: 100, savedUSD: 100),  // before the window
            LedgerHour(hour: hour - 24, spendUSD: 1, savedUSD: 2),
            LedgerHour(hour: hour, spendUSD: 0.5, savedUSD: 0.25),
        ]
        ledger.savedUSD = 500
        ledger.entries = [
            SavingsEntry(provider: .vast, id: "1", name: "a", pausedAt: now - 3600, billedUSDPerHour: 1),
            SavingsEntry(
                provider: .vast, id: "2", name: "b", pausedAt: now - 30 * 3600, deletedAt: now - 60,
                billedUSDPerHour: 1),
            SavingsEntry(provider: .vast, id: "3", name: "c", pausedAt: now - 30 * 3600, billedUSDPerHour: 1),
        ]
        let snapshot = FleetSnapshot(
            at: now, runningUSDPerHour: 3.2, idleInstances: 2, idleUSDPerHour: 0.84, unmonitoredInstances: 1,
            unmonitoredUSDPerHour: 0.4,
            topIdle: [IdleInstance(key: "vast/9", name: "notebook", usdPerHour: 0.42, idleSince: now - 600)])
        let figures = DigestFigures.make(ledger: ledger, snapshot: snapshot, now: now)
        #expect(figures.since == Self.t0 - 86_400)
        #expect(figures.spendUSD == 1.5 && figures.savedUSD == 2.25)
        #expect(figures.paused == 1 && figures.deleted == 1)
        #expect(
            figures.text
                == "cost-optimizer, last 24 h: $1.50 spent on the instances listed, $2.25 saved (1 paused, 1 deleted; "
                + "$500.00 saved in all). Now: $3.20/h running, $0.84/h on 2 idle, $0.40/h on 1 unmonitored. "
                + "Top idle: notebook (vast/9) $0.42/h.")
    }

    @Test(
        "money is printed without a locale",
        arguments: [(0.0, "$0.00"), (12.4, "$12.40"), (0.006, "$0.01"), (1234.567, "$1234.57"), (-1, "-$1.00")])
    func money(value: Double, text: String) {
        #expect(Money.usd(value) == text)
    }
}
