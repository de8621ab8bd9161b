import CostOptimizerCore
import Foundation
import Testing

@Suite("Decision engine: delete notice")
struct DeleteNoticeTests {
    let idle = History.gpus(3)
    let busy = History.gpus(87)

    @Test("delete_notice once when the idle clock passes threshold − notice, naming the time; the delete follows")
    func noticeOnce() {
        var h = History(state: .paused)  // idle clock from t0, 24 h threshold, 2 h notice
        let t0 = h.now
        var notices: [Date] = []
        var deleted: Date?
        for _ in 0..<(25 * 60) {
            let at = h.now
            let decision = h.cycle(nil)
            if decision.notifyDeleteNotice {
                notices.append(at)
                #expect(decision.deleteAt == t0.addingTimeInterval(24 * 3600))
            }
            if decision.action == .delete && deleted == nil { deleted = at }
        }
        #expect(notices == [t0.addingTimeInterval(22 * 3600)])
        #expect(deleted == t0.addingTimeInterval(24 * 3600 + 60))
        let mark = h.state[h.instance.key]?.deleteNotice
        #expect(mark == DeleteNoticeMark(idleSince: t0, sentAt: notices[0], deleteAt: t0.addingTimeInterval(24 * 3600)))
    }

    @Test("a notice that comes late (daemon down, settings changed) still precedes the delete by the notice period")
    func lateNoticeDelaysDelete() {
        var h = History(state: .paused)
        let t0 = h.now
        h.cycle(nil, every: 25 * 3600)  // down for 25 h: the idle clock is past the threshold, no notice was sent
        let late = h.cycle(nil)
        #expect(late.action == .none)
        #expect(late.notifyDeleteNotice)
        #expect(late.deleteAt == t0.addingTimeInterval(27 * 3600))
        #expect(late.reason.contains("delete notice due now: deleting after "))
        h.now = t0.addingTimeInterval(27 * 3600 - 60)
        let waiting = h.cycle(nil)
        #expect(waiting.action == .none)
        #expect(waiting.reason.contains("delete notice sent: deleting after"))
        #expect(h.cycle(nil).action == .delete)  // t0 + 27 h
    }

    @Test("a reset idle clock re-arms the notice: busy in between, a second notice for the second idle stretch")
    func rearmedAfterBusy() {
        var policy = Policy.defaults
        policy.deleteThreshold = 3 * 3600
        policy.deleteNotice = 3600
        var h = History(policy: policy)
        var flags: [Int] = []
        let script: [(Int, SampleResult)] = [(150, idle), (1, busy), (200, idle)]
        var minute = 0
        for (count, sample) in script {
            for _ in 0..<count {
                if h.cycle(sample).notifyDeleteNotice { flags.append(minute) }
                minute += 1
            }
        }
        #expect(flags == [120, 151 + 120])
    }

    static let neverDeleted: [(String, @Sendable (inout History) -> Void)] = [
        ("protected by label", { $0.instance.labels = ["keep"] }),
        ("protected by id", { $0.engine.policy.protectedInstances = ["123456"] }),
        ("not managed", { $0.instance.managed = false }),
        ("deletion protection", { $0.instance.deletionProtected = true }),
        ("unknown age", { $0.instance.createdAt = nil }),
    ]

    @Test("no notice and no deletion time for instances never deleted", arguments: neverDeleted)
    func noNoticeWhenNeverDeleted(_ row: (String, @Sendable (inout History) -> Void)) {
        var h = History(state: .paused)
        row.1(&h)
        for _ in 0..<(26 * 6) {
            let decision = h.cycle(nil, every: 600)
            #expect(!decision.notifyDeleteNotice)
            #expect(decision.deleteAt == nil)
            #expect(decision.action == .none)
        }
    }

    @Test("DELETE_NOTICE_HOURS 0: no notice, the delete at the threshold")
    func noNotice() {
        var policy = Policy.defaults
        policy.deleteNotice = 0
        var h = History(state: .paused, policy: policy)
        var flagged = false
        for _ in 0..<(24 * 60) { flagged = flagged || h.cycle(nil).notifyDeleteNotice }
        #expect(!flagged)
        #expect(h.cycle(nil).action == .none)  // 24 h: not past the threshold yet
        #expect(h.cycle(nil).action == .delete)  // 24 h 1 min
    }

    @Test("the notice says how to keep the instance")
    func howToKeep() {
        let h = History(state: .paused)
        #expect(
            Policy.defaults.howToKeep(h.instance)
                == "to keep it, add \"keep\" to its name or labels, add 123456 to PROTECTED_INSTANCES "
                + "(then restart the daemon) or start it and use its GPU")
    }
}

@Suite("Decision engine: unmonitored")
struct UnmonitoredTests {
    @Test("running with no successful sample for an hour: unmonitored, with the cause, notified once a day")
    func unmonitoredOncePerDay() {
        var h = History()
        let t0 = h.now
        var notified: [Int] = []
        var firstUnmonitored: Int?
        for minute in 0...(49 * 60) {
            let decision = h.cycle(.failed("ssh: Host key verification failed"))
            if decision.unmonitoredSince != nil && firstUnmonitored == nil {
                firstUnmonitored = minute
                #expect(decision.unmonitoredSince == t0)
                #expect(
                    decision.reason
                        == "unmonitored: no GPU reading for 1 h (61 cycles): ssh: Host key verification failed; "
                        + "never paused or deleted while unmonitored")
            }
            if decision.notifyUnmonitored { notified.append(minute) }
            #expect(decision.action == .none)
        }
        #expect(firstUnmonitored == 60)
        #expect(notified == [60, 60 + 24 * 60, 60 + 48 * 60])
    }

    @Test("a successful sample ends it; a new outage is notified after its own hour")
    func successEndsIt() {
        var h = History()
        h.cycles(61, .failed("ssh: timeout"))
        #expect(h.state[h.instance.key]?.unmonitoredNotifiedAt != nil)
        let ok = h.cycle(History.gpus(50))
        #expect(ok.unmonitoredSince == nil)
        #expect(h.state[h.instance.key]?.failingSince == nil)
        var flags: [Int] = []
        for minute in 0..<90 {
            if h.cycle(.failed("ssh: timeout")).notifyUnmonitored { flags.append(minute) }
        }
        #expect(flags == [60])
    }

    @Test("no ssh endpoint counts: the cause says so")
    func noEndpoint() {
        var h = History()
        h.instance.ssh = nil
        h.instance.sshUnavailableReason = "no external IP"
        let decision = h.cycles(61, nil)
        #expect(decision.notifyUnmonitored)
        #expect(decision.reason.contains("no ssh: no external IP"))
    }

    @Test("protected or unmanaged instances are not reported unmonitored")
    func protectedNotReported() {
        var h = History(label: "keep-me")
        #expect(!h.cycles(120, .failed("ssh: timeout")).notifyUnmonitored)
        var u = History()
        u.instance.managed = false
        #expect(u.cycles(120, .failed("ssh: timeout")).unmonitoredSince == nil)
    }

    @Test("a paused instance is not unmonitored, and its failures do not carry over a pause")
    func pausedResets() {
        var h = History()
        h.cycles(50, .failed("ssh: timeout"))
        h.instance.state = .paused
        h.cycle(nil)
        h.instance.state = .running
        #expect(h.cycles(60, .failed("ssh: timeout")).unmonitoredSince == nil)  // 59 min since the restart
        #expect(h.cycle(.failed("ssh: timeout")).unmonitoredSince != nil)
    }
}

@Suite("Decision engine: restarts and unknown stretches")
struct RestartTests {
    let idle = History.gpus(3)

    @Test("a restart seen after a pause clears the marks and pre-pause samples: the whole window must pass anew")
    func restartAfterPause() {
        var h = History()
        h.cycles(30, idle)
        #expect(h.cycle(idle).action == .pause)
        h.acted(.pause)
        h.instance.state = .paused
        h.cycles(120, nil)
        #expect(h.state[h.instance.key]?.pausedAt != nil)
        h.instance.state = .running  // the user starts it; no start time from this provider
        let restartedAt = h.now
        #expect(h.cycle(idle).action == .none)
        let record = h.state[h.instance.key]
        #expect(record?.pausedAt == nil)
        #expect(record?.stoppedSince == nil)
        #expect(record?.deleteNotice == nil)
        #expect(record?.samples.map(\.at) == [restartedAt])  // the pre-pause samples are gone
        #expect(record?.idleSince == restartedAt)
        #expect(record?.streakCount == 1)
        #expect(h.cycles(29, idle).action == .none)
        #expect(h.cycle(idle).action == .pause)  // 30 min after the restart
    }

    @Test("a restart the daemon could not watch is not idle time: stopped again, the idle clock starts at the stop")
    func unwatchedRestart() {
        var h = History()
        h.cycles(31, idle)
        h.acted(.pause)
        h.instance.state = .paused
        h.cycles(60, nil)
        h.instance.state = .running  // restarted; ssh to it fails for 23 h (the user works)
        h.cycles(23 * 60, .failed("ssh: connection refused"))
        h.instance.state = .paused  // the user stops it
        let stoppedAt = h.now
        let decision = h.cycle(nil)
        #expect(decision.deleteAt == stoppedAt.addingTimeInterval(24 * 3600))
        #expect(h.state[h.instance.key]?.idleSince == stoppedAt)
        #expect(!h.cycles(22 * 60 - 1, nil).notifyDeleteNotice)
    }

    @Test("idle, then no readings past the gap limit, then stopped: the idle clock starts at the stop")
    func idleThenBlindThenStopped() {
        var h = History()
        h.cycles(10, idle)
        h.cycles(20 * 60, .failed("nvidia-smi: timed out"))
        #expect(h.state[h.instance.key]?.idleSince == nil)
        h.instance.state = .paused
        let stoppedAt = h.now
        #expect(h.cycle(nil).deleteAt == stoppedAt.addingTimeInterval(24 * 3600))
    }

    @Test("failures within the gap limit keep the streak: the idle clock survives a short blind spell")
    func shortBlindSpell() {
        var h = History()
        let t0 = h.now
        h.cycles(10, idle)
        h.cycles(5, .failed("ssh: timeout"))
        h.cycles(20, idle)
        #expect(h.state[h.instance.key]?.idleSince == t0)
    }
}
