import CostOptimizerCore
import Foundation

/// A provider that could not be listed this cycle.
public struct ProviderFailure: Equatable, Sendable, Codable {
    public var provider: String
    public var message: String
}

/// What one cycle saw, decided and did.
public struct CycleReport: Sendable {
    public var state: FleetState
    public var plan: Plan
    public var errors: [ProviderFailure]
    /// How many accounts were listed successfully.
    public var listedAccounts: Int
    public var actions: [JournalRecord]
    public var seconds: Double
}

/// The daemon: list → sample → decide → act → save → tell, every `CHECK_INTERVAL`. It owns the only mutable state.
public struct Daemon: Sendable {
    public let config: Config
    public let providers: [any GPUProvider]
    public let sampler: any GPUSampling
    public let store: any StateStore
    public let notifier: any Notifier
    public let clock: any WallClock
    public let logger: Logger
    public let shutdown: ShutdownSignal
    /// systemd's notification socket (`READY`, `STATUS`, `WATCHDOG`, `STOPPING`), or nothing.
    public let service: any ServiceNotifier
    /// The kill switch files.
    public let hold: HoldSwitch
    /// Where each cycle's Prometheus text goes (`METRICS_FILE`), or nowhere.
    public let metrics: (any MetricsSink)?
    /// The zone of `DIGEST_HOUR` (the process's own by default).
    public let timeZone: TimeZone
    let engine: DecisionEngine

    public init(
        config: Config, providers: [any GPUProvider], sampler: any GPUSampling, store: any StateStore,
        notifier: any Notifier, clock: any WallClock, logger: Logger, shutdown: ShutdownSignal = ShutdownSignal(),
        service: any ServiceNotifier = NoServiceNotifier(), hold: HoldSwitch? = nil,
        metrics: (any MetricsSink)? = nil, timeZone: TimeZone = .current
    ) {
        self.config = config
        self.providers = providers
        self.sampler = sampler
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.logger = logger
        self.shutdown = shutdown
        self.service = service
        self.hold = hold ?? HoldSwitch(stateDirectory: config.stateDirectory)
        self.metrics = metrics
        self.timeZone = timeZone
        self.engine = DecisionEngine(policy: config.policy)
    }

    // MARK: - The loop

    /// Runs cycles until a stop is requested, then saves the state, closes the sampler (its ssh masters) and returns.
    public func run() async throws {
        var state = try loadState()
        logger.info(
            "Daemon started: \(providers.count) account(s), every \(Int(config.checkInterval)) s"
                + (config.dryRun ? ", DRY RUN: no instance will be paused or deleted" : ""))
        _ = service.ready()
        while !shutdown.isRequested {
            let report = await tick(state: state)
            state = report.state
            // Ping from loop progress only: a hung cycle never reaches here, and systemd restarts the service.
            let slice = min(1, (service.watchdogInterval ?? 2) / 2)
            var waited = 0.0
            while waited < config.checkInterval && !shutdown.isRequested {
                let step = min(slice, config.checkInterval - waited)
                try? await clock.sleep(seconds: step)
                waited += step
                if service.watchdogInterval != nil { _ = service.watchdog() }
            }
        }
        _ = service.stopping()
        let saved = Result { try store.save(state) }
        await sampler.close()
        try saved.get()
        logger.info("Daemon stopped: state saved")
    }

    /// Loads the saved state, or starts empty.
    public func loadState() throws -> FleetState {
        try store.load() ?? FleetState()
    }

    /// One whole cycle; the state is saved before it returns. Provider retries stop at the cycle's time budget: the
    /// larger of two check intervals and five minutes (a GCE operation may take that long).
    public func tick(state: FleetState) async -> CycleReport {
        let budget = max(2 * config.checkInterval, 300)
        return await RetryPolicy.$deadline.withValue(clock.now().addingTimeInterval(budget)) {
            await cycle(state: state)
        }
    }

    private func cycle(state: FleetState) async -> CycleReport {
        let started = clock.now()
        let listing = await list()
        pingWatchdog()
        let blocked = reconcile(listing)
        let holdFile = hold.activePath()
        let observed = await observeAndPlan(state: state, listing: listing, now: started)
        pingWatchdog()
        let guarded = Guards.apply(
            observed, context: guardContext(listing, hold: holdFile != nil), limits: config.limits, now: started)
        var plan = guarded.plan
        for event in guarded.events {
            if case .breakerTripped = event {
                logger.error("Breaker tripped: \(event)")
            } else if event != .hold {
                logger.warning("Guard: \(event)")
            }
        }
        for event in guarded.notify where event != .hold {
            await notifier.notify(
                NotificationEvent(event: .breakerTripped, text: "No action taken: \(event).", reason: "\(event)",
                                  dryRun: config.dryRun))
        }
        for key in guarded.forgotten { logger.info("Forgotten \(key): not listed for a day") }
        var next = plan.nextState
        next = await reportProviderHealth(listing, state: next)
        accrueSavings(listing, state: &next, now: started)
        var records: [JournalRecord] = []
        // Sending a pause again is an action too: not while any guard holds actions back this cycle.
        let guardsQuiet = guarded.events.isEmpty
        if holdFile == nil && guardsQuiet && !shutdown.isRequested {
            records += await verifyPauses(listing, blocked: blocked, state: &next)
        }
        for planned in plan.decisions {
            let key = planned.instance.key
            if planned.decision.unsampled {
                // Warn when it starts, when it is notified, then hourly at the default interval: not every cycle.
                let failures = next[key]?.failedCycles ?? 0
                let loud = failures == 1 || planned.decision.notifyUnreachable || failures % 60 == 0
                logger.log(
                    loud ? .warning : .debug,
                    "No GPU reading \(key) (\(planned.instance.name)): \(planned.decision.reason)")
            } else {
                logger.debug("Decision \(key): \(planned.decision.action.rawValue): \(planned.decision.reason)")
            }
            if planned.decision.notifyUnreachable {
                await notifier.notify(unreachableEvent(planned))
            }
            if planned.decision.notifyUnmonitored {
                logger.warning("Unmonitored \(key) (\(planned.instance.name)): \(planned.decision.reason)")
                await notifier.notify(unmonitoredEvent(planned))
            }
            if planned.decision.notifyDeleteNotice {
                logger.info("Delete notice \(key) (\(planned.instance.name)): \(noticeText(planned))")
                await notifier.notify(
                    event(.deleteNotice, planned.instance, reason: planned.decision.reason, dryRun: config.dryRun,
                          text: noticeText(planned)))
            }
            guard planned.decision.action != .none else { continue }
            if shutdown.isRequested {
                logger.info("Action skipped \(key): stopping")
                continue
            }
            if let reason = blocked[key] {
                logger.error("Action skipped \(key): \(reason)")
                continue
            }
            if planned.decision.action == .pause, next[key]?.pauseCheck != nil {
                logger.debug("Action skipped \(key): a pause was sent; waiting to see it take effect")
                continue
            }
            guard let provider = listing.owners[key] else { continue }
            if let record = await act(planned, provider: provider, state: &next) { records.append(record) }
            pingWatchdog()
        }
        let snapshot = FleetSnapshot.make(
            decisions: plan.decisions, state: next, providerErrors: listing.allErrors.count, now: started)
        next.savings.snapshot = snapshot
        let previousSuccess = next.ledger?.lastSuccessAt
        if listing.allErrors.isEmpty { next.savings.lastSuccessAt = started }
        await sendDigestIfDue(snapshot, state: &next, now: started)
        var saved = true
        do {
            try store.save(next)
        } catch {
            saved = false
            logger.error("State not saved: \(error)")
        }
        pingWatchdog()
        plan.nextState = next
        let seconds = clock.now().timeIntervalSince(started)
        publishMetrics(
            CycleMetrics(
                snapshot: snapshot, ledger: next.savings, cycleSeconds: seconds,
                lastSuccess: saved ? next.ledger?.lastSuccessAt : previousSuccess, dryRun: config.dryRun))
        let counts = Dictionary(grouping: listing.instances, by: \.state).mapValues(\.count)
        let summary =
            "Cycle complete: \(counts[.running] ?? 0) running, \(counts[.paused] ?? 0) paused, "
            + "\(listing.allErrors.count) errors in \(String(format: "%.1f", seconds)) s"
            + (records.isEmpty ? "" : ", \(records.count) action(s)") + (config.dryRun ? " (dry run)" : "")
            + (holdFile.map { " (hold: \($0) present, acting on nothing)" } ?? "")
            + ", \(Money.rate(snapshot.runningUSDPerHour)) running, \(Money.rate(snapshot.idleUSDPerHour)) idle, "
            + "\(Money.usd(next.savings.savedUSD)) saved in all"
        logger.info(summary)
        _ = service.status(summary)
        return CycleReport(
            state: next, plan: plan, errors: listing.allErrors, listedAccounts: providers.count - listing.errors.count,
            actions: records, seconds: seconds)
    }

    // MARK: - Steps

    /// Confirms on this listing that the pauses accepted earlier took effect. Still running: the pause is sent again
    /// (once a cycle, at most `pauseAttempts` in all), then `action_failed` is notified. Seen stopped: confirmed. A
    /// user's later restart is not ours to undo: the check ends as soon as the stop is seen.
    func verifyPauses(_ listing: Listing, blocked: [InstanceKey: String], state: inout FleetState) async
        -> [JournalRecord]
    {
        var records: [JournalRecord] = []
        for instance in listing.instances {
            guard let check = state[instance.key]?.pauseCheck, blocked[instance.key] == nil else { continue }
            switch instance.state {
            case .paused:
                state[instance.key]?.pauseCheck = nil
                logger.debug("Pause confirmed \(instance.key)")
            case .transitional:
                continue
            case .running:
                if check.attempts >= Daemon.pauseAttempts || config.policy.protectionReason(for: instance) != nil {
                    state[instance.key]?.pauseCheck = nil
                    let detail = "still running after \(check.attempts) accepted pause calls"
                    logger.error("Action failed PAUSE \(instance.key): \(detail)")
                    await notifier.notify(
                        event(
                            .actionFailed, instance, reason: detail, dryRun: false,
                            text: "Could not pause \(describe(instance)): \(detail). Check it in the provider's console."))
                    continue
                }
                guard let provider = listing.owners[instance.key] else { continue }
                let planned = PlannedDecision(
                    instance: instance,
                    decision: Decision(action: .pause, reason: "pause not confirmed: still running"), protected: false)
                // Running again may be a user's restart seen before the stop was: the same re-read and re-sample
                // as any action decide, and a busy or changed instance ends the check instead.
                if let reason = await recheck(planned, provider: provider) {
                    state[instance.key]?.pauseCheck = nil
                    logger.info("Pause check ended \(instance.key): \(reason)")
                    continue
                }
                logger.warning(
                    "Pause not confirmed \(instance.key): still running, sending it again "
                        + "(attempt \(check.attempts + 1) of \(Daemon.pauseAttempts))")
                if let record = await act(planned, provider: provider, state: &state, recheck: false) {
                    records.append(record)
                }
                if state[instance.key]?.pauseCheck != nil {
                    state[instance.key]?.pauseCheck = PauseCheck(since: clock.now(), attempts: check.attempts + 1)
                }
            case .broken, .unknown:
                state[instance.key]?.pauseCheck = nil
            }
        }
        return records
    }

    /// How many accepted pause calls the daemon makes before it reports that an instance will not stop.
    public static let pauseAttempts = 3

    /// What the guards need from the listing: per provider, how many instances it listed, for the providers whose
    /// every account answered (a provider with a failed account is left out: nothing is concluded about it).
    func guardContext(_ listing: Listing, hold: Bool) -> GuardContext {
        let failed = Set(listing.errors.compactMap { f in providers.first { $0.account == f.provider }?.name })
        var listed: [ProviderName: Int] = [:]
        for provider in providers where !failed.contains(provider.name) { listed[provider.name] = 0 }
        for instance in listing.instances where listed[instance.key.provider] != nil {
            listed[instance.key.provider, default: 0] += 1
        }
        return GuardContext(hold: hold, listed: listed)
    }

    /// Right before acting: fetch the instance again and, if it runs, take one more sample. Any change since the
    /// listing (gone, now protected, restarted, another state, busy, unreadable) cancels the action with the reason.
    /// Dry run goes through the same check.
    func recheck(_ planned: PlannedDecision, provider: any GPUProvider) async -> String? {
        let instance = planned.instance
        let action = planned.decision.action
        let fresh: Instance?
        do { fresh = try await provider.instance(instance) } catch {
            return "re-check failed, so nothing is done: \(error)"
        }
        guard let fresh else { return "gone before the \(action.rawValue)" }
        if let reason = config.policy.protectionReason(for: fresh) { return "now \(reason)" }
        if fresh.state != instance.state || fresh.gpuReserved != instance.gpuReserved {
            return "state changed since the listing: \(instance.state.rawValue) → \(fresh.state.rawValue) "
                + "(\(fresh.providerStatus))"
        }
        if let now = fresh.startedAt, let then = instance.startedAt, now > then { return "restarted since the listing" }
        if action == .delete && fresh.deletionProtected { return "deletion protection is on" }
        if fresh.state == .running {
            let sample = await sampler.sample([fresh])[fresh.key]
            guard case .ok? = sample, let utilization = sample?.utilization else {
                return "no GPU reading on re-check: \(sample.map { "\($0)" } ?? "not sampled")"
            }
            guard utilization < config.policy.pauseThresholdGPU else {
                return "busy on re-check: GPU \(String(format: "%.1f", utilization))%"
            }
        }
        return nil
    }

    private func pingWatchdog() {
        if service.watchdogInterval != nil { _ = service.watchdog() }
    }

    /// Closes every intent a crash left open by what this listing shows, before anything acts; never repeats a call.
    ///
    /// - Returns: the instances that must not be acted on this cycle, with the reason: their provider could not be
    ///   listed, so the outcome of the interrupted call is still unknown; or the journal could not be read.
    func reconcile(_ listing: Listing) -> [InstanceKey: String] {
        let intents: [JournalRecord]
        do { intents = try store.unresolvedIntents() } catch {
            logger.error("Journal unreadable, acting on nothing this cycle: \(error)")
            return Dictionary(uniqueKeysWithValues: listing.instances.map { ($0.key, "journal unreadable") })
        }
        var blocked: [InstanceKey: String] = [:]
        let listed = Set(listing.instances.map(\.key))
        // A provider that failed, or listed only part of its account (GCE unreachable zones), cannot tell "gone".
        let failedProviders = Set(
            listing.allErrors.compactMap { failure in providers.first { $0.account == failure.provider }?.name })
        for intent in intents {
            guard let provider = ProviderName(rawValue: intent.provider) else { continue }
            let key = InstanceKey(provider: provider, id: intent.id)
            if failedProviders.contains(provider) {
                blocked[key] = "an interrupted \(intent.action.rawValue) is not reconciled yet (provider not listed)"
                continue
            }
            let found = listing.instances.first { $0.key == key }
            let outcome = listed.contains(key) ? "found \(found?.state.rawValue ?? "listed") after restart" : "gone"
            logger.warning("Interrupted \(intent.action.rawValue) reconciled \(key): \(outcome)")
            do {
                try store.append(intent.resolution(JournalResult.reconciled, at: clock.now(), error: outcome))
            } catch {
                blocked[key] = "an interrupted \(intent.action.rawValue) could not be reconciled: \(error)"
            }
        }
        return blocked
    }

    /// Every account's instances, who owns each, and the accounts that failed.
    public struct Listing: Sendable {
        public var instances: [Instance] = []
        public var owners: [InstanceKey: any GPUProvider] = [:]
        /// Accounts that could not be listed at all.
        public var errors: [ProviderFailure] = []
        /// Parts of listed accounts that could not be read (GCE unreachable zones).
        public var partialErrors: [ProviderFailure] = []
        /// Every error of the listing, for reports.
        public var allErrors: [ProviderFailure] { errors + partialErrors }
    }

    /// Lists every account concurrently; one failing never stops the others.
    public func list() async -> Listing {
        let started = ContinuousClock.now
        let results = await withTaskGroup(of: (Int, Result<([Instance], [String]), any Error>).self) { group in
            for (index, provider) in providers.enumerated() {
                group.addTask {
                    do {
                        if let partial = provider as? any PartialListing {
                            let (instances, gaps) = try await partial.listInstancesReportingGaps()
                            return (index, .success((instances, gaps)))
                        }
                        return (index, .success((try await provider.listInstances(), [])))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var results: [(Int, Result<([Instance], [String]), any Error>)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }
        }
        var listing = Listing()
        for (index, result) in results {
            let provider = providers[index]
            switch result {
            case .success(let (instances, gaps)):
                for instance in instances where listing.owners[instance.key] == nil {
                    listing.owners[instance.key] = provider
                    listing.instances.append(instance)
                }
                // Unread parts (GCE unreachable zones) are errors of the cycle; what was listed is still used, and
                // nothing is concluded about what was not.
                for gap in gaps {
                    logger.warning("Provider error \(provider.account): \(gap) could not be listed")
                    listing.partialErrors.append(
                        ProviderFailure(provider: provider.account, message: "\(gap) could not be listed (unreachable)"))
                }
            case .failure(let error):
                logger.warning("Provider error \(provider.account): \(error)")
                listing.errors.append(ProviderFailure(provider: provider.account, message: "\(error)"))
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        logger.debug(
            "Listing complete: \(listing.instances.count) instances from \(providers.count - listing.errors.count) of "
                + "\(providers.count) account(s) in \(String(format: "%.2f", seconds)) s")
        return listing
    }

    /// Samples the running managed instances (cancelled if a stop arrives) and runs the engine.
    public func observeAndPlan(state: FleetState, listing: Listing, now: Date) async -> Plan {
        let sampled = listing.instances.filter { $0.state == .running && $0.managed && $0.ssh != nil }
        let samples = await withTaskGroup(of: [InstanceKey: SampleResult]?.self) { group in
            group.addTask { await sampler.sample(sampled) }
            group.addTask {
                await shutdown.wait()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? [:]
        }
        let observations = listing.instances.map { instance in
            Observation(instance: instance, sample: samples[instance.key])
        }
        return engine.plan(state: state, observations: observations, now: now)
    }

    /// Pauses or deletes one instance (or, in dry run, records that it would have), journals and notifies.
    func act(_ planned: PlannedDecision, provider: any GPUProvider, state: inout FleetState, recheck: Bool = true) async
        -> JournalRecord?
    {
        let instance = planned.instance
        let action = planned.decision.action
        let verb = action == .pause ? "PAUSE" : "DELETE"
        let line = "\(instance.key) (\(instance.gpuModel ?? "GPU")): \(planned.decision.reason)"
        let now = clock.now()
        if config.dryRun, let mark = state[instance.key]?.lastAction, mark.dryRun, mark.action == action,
            let since = state[instance.key]?.idleSince, mark.at >= since
        {
            logger.debug("DRY RUN \(verb) already reported \(line)")
            return nil
        }
        if recheck, let reason = await self.recheck(planned, provider: provider) {
            logger.info("Action skipped \(verb) \(instance.key): \(reason)")
            return nil
        }
        if config.dryRun {
            logger.info("DRY RUN \(verb) \(line)")
            let record = journalRecord(planned, now: now, result: "dry_run", error: nil)
            appendJournal(record)
            state.record(action, for: instance.key, at: now, dryRun: true, succeeded: true)
            state.savings.record(action, instance: instance, result: JournalResult.dryRun, at: now)
            await notifier.notify(actionEvent(planned, dryRun: true))
            return record
        }
        // The intent is durable before the call, or there is no call: a crash in between is reconciled at start.
        let intent = JournalRecord.intent(
            time: now, provider: instance.key.provider.rawValue, id: instance.key.id, name: instance.name,
            action: action, reason: planned.decision.reason, dryRun: false)
        do { try store.append(intent) } catch {
            logger.error("Action skipped \(instance.key): the journal cannot be written: \(error)")
            return nil
        }
        do {
            if action == .pause {
                try await provider.pause(instance)
            } else {
                try await provider.delete(instance)
            }
            logger.info("\(verb) \(line)")
            let record = intent.resolution(JournalResult.ok, at: clock.now())
            appendJournal(record)
            state.record(action, for: instance.key, at: now, dryRun: false, succeeded: true)
            state.savings.record(action, instance: instance, result: JournalResult.ok, at: now)
            if action == .pause, instance.state == .running {
                state[instance.key]?.pauseCheck = PauseCheck(since: now, attempts: 1)
            }
            await notifier.notify(actionEvent(planned, dryRun: false))
            return record
        } catch {
            logger.error("Action failed \(verb) \(instance.key): \(error)")
            let record = intent.resolution(JournalResult.failed, at: clock.now(), error: "\(error)")
            appendJournal(record)
            state.record(action, for: instance.key, at: now, dryRun: false, succeeded: false)
            state.savings.record(action, instance: instance, result: JournalResult.failed, at: now)
            await notifier.notify(
                event(
                    .actionFailed, planned.instance, reason: "\(error)", dryRun: false,
                    text: "Could not \(action.rawValue) \(describe(instance)): \(error). It will be retried next cycle."))
            return record
        }
    }

    // MARK: - The ledger, the digest, the metrics

    /// How far back one cycle's accrual reaches: a daemon that was down saw nothing, so it claims at most three check
    /// intervals (and at least 15 minutes, for short intervals) of spend and savings for the gap.
    var ledgerGapLimit: Double { max(3 * config.checkInterval, 900) }

    /// Accrues spend and savings since the last cycle from this listing, before this cycle acts, and counts its
    /// samples.
    func accrueSavings(_ listing: Listing, state: inout FleetState, now: Date) {
        let failed = Set(
            listing.allErrors.compactMap { failure in providers.first { $0.account == failure.provider }?.name })
        let listed = Set(providers.map(\.name)).subtracting(failed)
        let pending = Set(
            state.instances.compactMap { $0.value.pauseCheck == nil ? nil : InstanceKey(stateKey: $0.key) })
        let samples = state
        state.savings.accrue(
            LedgerObservation(instances: listing.instances, listedProviders: listed, pendingPauses: pending), now: now,
            maxGap: ledgerGapLimit)
        state.savings.countSamples(in: samples, at: now)
    }

    /// Sends the daily `digest` at the first cycle at or after `DIGEST_HOUR` local time, once per local day; the day
    /// is kept in the ledger, so a restart does not send it again.
    func sendDigestIfDue(_ snapshot: FleetSnapshot, state: inout FleetState, now: Date) async {
        guard let hour = config.digestHour,
            let day = DigestSchedule.dueDay(
                now: now, hour: hour, utcOffsetSeconds: timeZone.secondsFromGMT(for: now),
                lastDigestDay: state.ledger?.lastDigestDay)
        else { return }
        let figures = DigestFigures.make(ledger: state.savings, snapshot: snapshot, now: now)
        state.savings.lastDigestDay = day
        logger.info("Digest \(day): \(figures.text)")
        await notifier.notify(
            NotificationEvent(event: .digest, text: figures.text, dryRun: config.dryRun, digest: figures))
    }

    /// Writes the cycle's Prometheus text to `METRICS_FILE`, if set; a failure is logged and the cycle goes on.
    func publishMetrics(_ values: CycleMetrics) {
        guard let metrics else { return }
        do { try metrics.publish(PrometheusText.render(values)) } catch {
            logger.error("Metrics not written: \(error)")
        }
    }

    /// Notifies `provider_error` when an account starts failing, once per outage.
    func reportProviderHealth(_ listing: Listing, state: FleetState) async -> FleetState {
        var next = state
        let failing = Set(listing.errors.map(\.provider))
        let before = Set(state.failingAccounts ?? [])
        for failure in listing.errors where !before.contains(failure.provider) {
            await notifier.notify(
                NotificationEvent(
                    event: .providerError, text: "Cannot list \(failure.provider): \(failure.message)",
                    provider: failure.provider, reason: failure.message, dryRun: config.dryRun))
        }
        for recovered in before.subtracting(failing) {
            logger.info("Provider recovered \(recovered)")
        }
        next.failingAccounts = failing.isEmpty ? nil : failing.sorted()
        return next
    }

    // MARK: - Records and messages

    private func appendJournal(_ record: JournalRecord) {
        do { try store.append(record) } catch { logger.error("Journal not written: \(error)") }
    }

    private func journalRecord(_ planned: PlannedDecision, now: Date, result: String, error: String?) -> JournalRecord {
        JournalRecord(
            time: now, provider: planned.instance.key.provider.rawValue, id: planned.instance.key.id,
            name: planned.instance.name, action: planned.decision.action, reason: planned.decision.reason,
            dryRun: config.dryRun, result: result, error: error)
    }

    private func describe(_ instance: Instance) -> String {
        var text = "\(instance.key) \"\(instance.name)\" (\(instance.gpuModel ?? "GPU")"
        if let cost = instance.hourlyCostUSD { text += String(format: ", $%.2f/h", cost) }
        return text + ")"
    }

    private func actionEvent(_ planned: PlannedDecision, dryRun: Bool) -> NotificationEvent {
        let instance = planned.instance
        let isPause = planned.decision.action == .pause
        var text =
            dryRun
            ? "[dry run] Would \(isPause ? "pause" : "delete") \(describe(instance)): \(planned.decision.reason)."
            : "\(isPause ? "Paused" : "Deleted") \(describe(instance)): \(planned.decision.reason)."
        if isPause && instance.key.provider != .tensordock {
            text += " A paused GPU may not be available again when you restart it."
        }
        return event(
            isPause ? .pause : .delete, instance, reason: planned.decision.reason, dryRun: dryRun, text: text)
    }

    private func noticeText(_ planned: PlannedDecision) -> String {
        let when = planned.decision.deleteAt.map { $0.formatted(.iso8601) } ?? "soon"
        let howToKeep = config.policy.howToKeep(planned.instance)
        return "\(describe(planned.instance)) will be deleted at \(when) (\(planned.decision.reason)). "
            + howToKeep.prefix(1).uppercased() + howToKeep.dropFirst() + "."
    }

    private func unmonitoredEvent(_ planned: PlannedDecision) -> NotificationEvent {
        let since = planned.decision.unmonitoredSince.map { " since \($0.formatted(.iso8601))" } ?? ""
        return event(
            .unmonitored, planned.instance, reason: planned.decision.reason, dryRun: config.dryRun,
            text:
                "cost-optimizer cannot read the GPUs of \(describe(planned.instance))\(since): "
                + "\(planned.decision.reason). It cannot pause it while this lasts.")
    }

    private func unreachableEvent(_ planned: PlannedDecision) -> NotificationEvent {
        event(
            .sshUnreachable, planned.instance, reason: planned.decision.reason, dryRun: config.dryRun,
            text:
                "Cannot read the GPUs of \(describe(planned.instance)): \(planned.decision.reason). "
                + "cost-optimizer cannot pause it while this lasts.")
    }

    private func event(_ kind: NotificationKind, _ instance: Instance, reason: String, dryRun: Bool, text: String)
        -> NotificationEvent
    {
        NotificationEvent(
            event: kind, text: text, provider: instance.key.provider.rawValue, instanceID: instance.key.id,
            instanceName: instance.name, gpuModel: instance.gpuModel, reason: reason,
            hourlyCostUSD: instance.hourlyCostUSD, dryRun: dryRun)
    }
}
