import CostOptimizerCore
import Foundation
import Testing

/// One row of the breaker table: `idle` of `fleet` running Vast instances go idle, under these limits.
struct BreakerCase: CustomTestStringConvertible, Sendable {
    var idle: Int
    var fleet: Int
    var maxPauses: Int
    var fraction: Double
    /// Pauses that go ahead.
    var paused: Int
    var trip: BreakerTrip?

    var testDescription: String {
        "\(idle) of \(fleet) idle, cap \(maxPauses), fraction \(fraction): \(paused) paused"
            + (trip.map { ", \($0)" } ?? "")
    }
}

@Suite("Guards: breakers")
struct BreakerTests {
    static let cases: [BreakerCase] = [
        BreakerCase(
            idle: 9, fleet: 10, maxPauses: 10, fraction: 0.5, paused: 0,
            trip: BreakerTrip(kind: .pause, provider: .vast, planned: 9, rule: .fraction(0.5), managed: 10)),
        BreakerCase(
            idle: 9, fleet: 10, maxPauses: 5, fraction: 1, paused: 0,
            trip: BreakerTrip(kind: .pause, provider: nil, planned: 9, rule: .perCycleCap(5), managed: 10)),
        BreakerCase(
            idle: 6, fleet: 10, maxPauses: 10, fraction: 0.5, paused: 0,
            trip: BreakerTrip(kind: .pause, provider: .vast, planned: 6, rule: .fraction(0.5), managed: 10)),
        BreakerCase(idle: 5, fleet: 10, maxPauses: 10, fraction: 0.5, paused: 5, trip: nil),
        BreakerCase(idle: 5, fleet: 10, maxPauses: 5, fraction: 1, paused: 5, trip: nil),
        // The fraction rule needs more than 2 managed instances.
        BreakerCase(idle: 2, fleet: 2, maxPauses: 10, fraction: 0.5, paused: 2, trip: nil),
        BreakerCase(idle: 1, fleet: 1, maxPauses: 10, fraction: 0.5, paused: 1, trip: nil),
        BreakerCase(
            idle: 2, fleet: 3, maxPauses: 10, fraction: 0.5, paused: 0,
            trip: BreakerTrip(kind: .pause, provider: .vast, planned: 2, rule: .fraction(0.5), managed: 3)),
        BreakerCase(idle: 1, fleet: 3, maxPauses: 10, fraction: 0.5, paused: 1, trip: nil),
        BreakerCase(
            idle: 1, fleet: 3, maxPauses: 0, fraction: 1, paused: 0,
            trip: BreakerTrip(kind: .pause, provider: nil, planned: 1, rule: .perCycleCap(0), managed: 3)),
    ]

    @Test("pauses are all or nothing under MAX_PAUSES_PER_CYCLE and MAX_ACTION_FRACTION", arguments: cases)
    func pauseBreakers(_ c: BreakerCase) {
        var f = FleetDriver(
            limits: Limits(maxPausesPerCycle: c.maxPauses, maxActionFraction: c.fraction),
            instances: FleetDriver.fleet(.vast, c.fleet))
        f.set(0..<c.idle, History.gpus(2))
        #expect(f.cycles(30).withheld.isEmpty)  // minutes 0…29: nothing planned yet
        let cycle = f.cycle()  // minute 30: every idle one is due
        #expect(cycle.actions.count == c.paused)
        #expect(cycle.actions.count + cycle.withheld.count == c.idle)
        #expect(cycle.events == (c.trip.map { [.breakerTripped($0)] } ?? []))
        for withheld in cycle.withheld {
            #expect(withheld.decision.action == .none)
            #expect(withheld.decision.withheld == .pause)
            #expect(withheld.decision.reason == "\(c.trip!); would pause: GPU avg 2% < 10% for 30 min, 31 samples")
        }
    }

    @Test("a trip names the numbers")
    func tripDescriptions() {
        let cap = BreakerTrip(kind: .delete, provider: nil, planned: 9, rule: .perCycleCap(3), managed: 12)
        #expect("\(cap)" == "breaker: 9 deletes planned > MAX_DELETES_PER_CYCLE 3")
        let fraction = BreakerTrip(kind: .pause, provider: .vast, planned: 9, rule: .fraction(0.5), managed: 10)
        #expect("\(fraction)" == "breaker: 9 pauses planned of 10 managed vast instances > MAX_ACTION_FRACTION 0.5")
    }

    /// 10 Vast instances: `paused` of them stopped since t0 (due for deletion at t0+65 min), the rest running busy.
    static func deleteFleet(paused: Int) -> FleetDriver {
        var policy = Policy.defaults
        policy.deleteThreshold = 3600
        policy.deleteNotice = 1800
        return FleetDriver(
            policy: policy,
            instances: FleetDriver.fleet(.vast, paused, state: .paused)
                + FleetDriver.fleet(.vast, 10 - paused, from: paused))
    }

    @Test("4 deletes planned with MAX_DELETES_PER_CYCLE 3: no delete at all")
    func fourDeletesCapThree() {
        var f = Self.deleteFleet(paused: 4)
        #expect(f.cycles(13, every: 300).withheld.isEmpty)  // t0 … t0+60 min
        let cycle = f.cycle()  // t0+65 min
        #expect(cycle.actions.isEmpty)
        #expect(cycle.withheldList == ["vast/0 delete", "vast/1 delete", "vast/2 delete", "vast/3 delete"])
        let trip = BreakerTrip(kind: .delete, provider: nil, planned: 4, rule: .perCycleCap(3), managed: 10)
        #expect(cycle.events == [.breakerTripped(trip)])
        #expect(cycle.withheld[0].decision.reason.hasPrefix("breaker: 4 deletes planned > MAX_DELETES_PER_CYCLE 3; "))
        #expect(cycle.notify == [.breakerTripped(trip)])
    }

    @Test("3 deletes planned with MAX_DELETES_PER_CYCLE 3: all three go ahead")
    func threeDeletesCapThree() {
        var f = Self.deleteFleet(paused: 3)
        f.cycles(13, every: 300)
        let cycle = f.cycle()
        #expect(cycle.actionList == ["vast/0 delete", "vast/1 delete", "vast/2 delete"])
        #expect(cycle.events.isEmpty)
    }

    @Test("the fraction rule is per provider: a tripped one does not stop another")
    func fractionPerProvider() {
        var f = FleetDriver(instances: FleetDriver.fleet(.vast, 3) + FleetDriver.fleet(.gcp, 4, from: 10))
        f.set(0..<3, History.gpus(1))  // every Vast instance
        f.set([10], History.gpus(1))  // one of four GCE instances
        f.cycles(30)
        let cycle = f.cycle()
        #expect(cycle.actionList == ["gcp/10 pause"])
        #expect(cycle.withheldList == ["vast/0 pause", "vast/1 pause", "vast/2 pause"])
        #expect(
            cycle.events == [
                .breakerTripped(
                    BreakerTrip(kind: .pause, provider: .vast, planned: 3, rule: .fraction(0.5), managed: 3))
            ])
    }

    @Test("a lasting trip is notified when it begins and once a day after; every cycle still reports it")
    func alertsRepeatDaily() {
        var policy = Policy.defaults
        policy.deleteThreshold = 1000 * 3600  // only the pause breaker in play
        var f = FleetDriver(policy: policy, instances: FleetDriver.fleet(.vast, 10))
        f.set(0..<9, History.gpus(1))
        f.cycles(30)
        var notified: [Int] = []
        for minute in 0..<(25 * 60) {
            let cycle = f.cycle()
            #expect(cycle.events.count == 1)
            if !cycle.notify.isEmpty { notified.append(minute) }
        }
        #expect(notified == [0, 24 * 60])
        // Over, then back within the day: logged, not notified again (a flapping breaker is not a stream of alerts).
        f.set(0..<9, History.gpus(90))
        #expect(f.cycle().events.isEmpty)
        f.set(0..<9, History.gpus(1))
        f.cycles(30)
        let back = f.cycle()
        #expect(back.events.count == 1)
        #expect(back.notify.isEmpty)
    }
}

@Suite("Guards: observer health")
struct ObserverHealthTests {
    /// 8 running Vast instances, 3 of them idle (unknown age: paused, never deleted), plus a GCE instance stopped
    /// since t0 and due for deletion at t0+65 min. At that cycle `failing` of the 5 busy ones give no reading.
    static func run(failing: Int, withoutSSH: Int = 0) -> GuardedPlan {
        var policy = Policy.defaults
        policy.deleteThreshold = 3600
        policy.deleteNotice = 1800
        var vast = (0..<8).map { FleetDriver.instance(.vast, String($0), createdHoursAgo: $0 < 3 ? nil : 48) }
        for index in 3..<(3 + withoutSSH) { vast[index].ssh = nil }
        var f = FleetDriver(
            policy: policy, instances: vast + [FleetDriver.instance(.gcp, "gce-1", state: .paused)])
        f.set(0..<3, History.gpus(0))
        f.cycles(13, every: 300)
        f.set((3 + withoutSSH)..<(3 + withoutSSH + failing), .failed("ssh: connect timed out"))
        return f.cycle()
    }

    @Test("5 of 8 running instances give no reading: no pause or delete anywhere, the healthy idle ones included")
    func fiveOfEightFail() {
        let cycle = Self.run(failing: 5)
        #expect(cycle.actions.isEmpty)
        #expect(cycle.withheldList == ["gcp/gce-1 delete", "vast/0 pause", "vast/1 pause", "vast/2 pause"])
        #expect(cycle.events == [.observerUnhealthy(failed: 5, running: 8)])
        #expect(
            cycle.withheld[1].decision.reason.hasPrefix(
                "observer unhealthy: 5 of 8 running instances gave no GPU reading: no pause or delete anywhere; "
                    + "would pause: GPU avg 0%"))
    }

    @Test("4 of 8 is not more than half: every action goes ahead")
    func fourOfEightFail() {
        let cycle = Self.run(failing: 4)
        #expect(cycle.actionList == ["gcp/gce-1 delete", "vast/0 pause", "vast/1 pause", "vast/2 pause"])
        #expect(cycle.events.isEmpty)
    }

    @Test("instances with no ssh endpoint were never tried: they count in neither number")
    func noEndpointNotCounted() {
        // 3 without an endpoint, 2 failing, 3 healthy: 2 of 5 tried failed (5 of 8 if the untried counted).
        let cycle = Self.run(failing: 2, withoutSSH: 3)
        #expect(cycle.actions.count == 4)
        #expect(cycle.events.isEmpty)
        let worse = Self.run(failing: 2, withoutSSH: 2)  // 2 of 6 tried
        #expect(worse.actions.count == 4)
        let broken = Self.run(failing: 3, withoutSSH: 2)  // 3 of 6: not more than half
        #expect(broken.actions.count == 4)
        let down = Self.run(failing: 4, withoutSSH: 1)  // 4 of 7
        #expect(down.actions.isEmpty)
        #expect(down.events == [.observerUnhealthy(failed: 4, running: 7)])
    }
}

@Suite("Guards: suspicious listings")
struct SuspiciousListingTests {
    static let rows: [(previous: Int, current: Int, suspicious: Bool)] = [
        (10, 0, true), (10, 4, true), (10, 5, false), (10, 12, false), (3, 1, true), (2, 1, false), (2, 0, true),
        (1, 0, true), (1, 1, false), (0, 0, false),
    ]

    @Test("empty after non-empty, or fewer than half of at least 2, is suspicious", arguments: rows)
    func rule(_ row: (previous: Int, current: Int, suspicious: Bool)) {
        #expect(Guards.isSuspicious(previous: row.previous, current: row.current) == row.suspicious)
    }

    /// 10 Vast instances, the first idle and due for a pause at minute 30, plus one idle GCE instance.
    static func fleet() -> FleetDriver {
        var f = FleetDriver(instances: FleetDriver.fleet(.vast, 10) + FleetDriver.fleet(.gcp, 1, from: 20))
        f.set([0, 20], History.gpus(1))
        f.cycles(30)
        return f
    }

    @Test("a much smaller listing right after a full one: no action on that provider this cycle, then acted on")
    func muchSmaller() {
        var f = Self.fleet()
        let before = f.state
        let few = Array(f.instances[0..<4]) + [f.instances[10]]
        let cycle = f.cycle(visible: few)
        #expect(cycle.actionList == ["gcp/20 pause"])
        #expect(cycle.withheldList == ["vast/0 pause"])
        #expect(cycle.events == [.suspiciousListing(provider: .vast, previous: 10, current: 4)])
        #expect(cycle.withheld[0].decision.reason.hasPrefix("listing suspicious: vast listed 4 after 10; would pause"))
        // The six that were not listed keep their records untouched.
        for id in 4..<10 {
            let key = InstanceKey(provider: .vast, id: String(id))
            #expect(cycle.nextState[key] == before[key])
        }
        #expect(cycle.nextState.listingCounts == ["vast": 4, "gcp": 1])
        // The same listing again is the new normal.
        let next = f.cycle(visible: few)
        #expect(next.actionList == ["gcp/20 pause", "vast/0 pause"])
        #expect(next.events.isEmpty)
    }

    @Test("HTTP 200 [] after a full listing: no action on that provider, records kept, the other provider acts")
    func emptyAfterFull() {
        var f = Self.fleet()
        let before = f.state
        let cycle = f.cycle(visible: [f.instances[10]])
        #expect(cycle.events == [.suspiciousListing(provider: .vast, previous: 10, current: 0)])
        #expect(cycle.actionList == ["gcp/20 pause"])
        for id in 0..<10 {
            let key = InstanceKey(provider: .vast, id: String(id))
            #expect(cycle.nextState[key] == before[key])
        }
    }

    @Test("a provider that did not answer keeps its previous count: [] after the outage is still suspicious")
    func outageKeepsCount() {
        var f = Self.fleet()
        let outage = f.cycle(visible: [f.instances[10]], listed: [.gcp: 1])
        #expect(outage.events.isEmpty)
        #expect(outage.nextState.listingCounts?["vast"] == 10)
        let back = f.cycle(visible: Array(f.instances[0..<2]) + [f.instances[10]])
        #expect(back.events == [.suspiciousListing(provider: .vast, previous: 10, current: 2)])
        #expect(back.withheldList == ["vast/0 pause"])
    }

    @Test("an instance missing from listings keeps its clocks and is forgotten only after a day")
    func missingForADay() {
        var policy = Policy.defaults
        policy.deleteThreshold = 48 * 3600
        var f = FleetDriver(
            policy: policy,
            instances: [FleetDriver.instance(.vast, "1", state: .paused), FleetDriver.instance(.vast, "2")])
        let first = f.cycle()
        let deleteAt = first.decisions[0].decision.deleteAt
        #expect(deleteAt == FleetDriver.t0.addingTimeInterval(48 * 3600))
        let lastSeen = f.state.instances["vast/1"]!.lastSeen
        // Missing for three hours (one provider answer without it), then back: same idle clock.
        for _ in 0..<3 { f.cycle(visible: [f.instances[1]], listed: [.vast: 1], every: 3600) }
        let back = f.cycle()
        #expect(back.decisions[0].decision.deleteAt == deleteAt)
        // Missing for a whole day: kept; for a day and a minute: forgotten, and said so.
        let gone = f.state.instances["vast/1"]!.lastSeen
        f.now = gone.addingTimeInterval(24 * 3600)
        let day = f.cycle(visible: [f.instances[1]], listed: [.vast: 1])
        #expect(day.nextState.instances["vast/1"] != nil)
        #expect(day.forgotten.isEmpty)
        f.now = gone.addingTimeInterval(24 * 3600 + 60)
        let later = f.cycle(visible: [f.instances[1]], listed: [.vast: 1])
        #expect(later.nextState.instances["vast/1"] == nil)
        #expect(later.forgotten == [InstanceKey(provider: .vast, id: "1")])
        #expect(lastSeen < gone)
    }
}

@Suite("Guards: hold")
struct HoldTests {
    @Test("hold: observe and decide, act on nothing, and say so for each withheld action")
    func holdActsOnNothing() {
        var policy = Policy.defaults
        policy.deleteThreshold = 3600
        policy.deleteNotice = 1800
        var f = FleetDriver(
            policy: policy,
            instances: [
                FleetDriver.instance(.vast, "1", createdHoursAgo: nil),
                FleetDriver.instance(.vast, "2", state: .paused),
            ])
        f.set([1], History.gpus(0))
        f.cycles(13, every: 300)
        let held = f.cycle(hold: true)
        #expect(held.actions.isEmpty)
        #expect(held.withheldList == ["vast/1 pause", "vast/2 delete"])
        #expect(held.events == [.hold])
        #expect(held.notify == [.hold])
        let hold = "hold file present: acting on nothing"
        #expect(held.withheld[0].decision.reason.hasPrefix("\(hold); would pause: GPU avg 0%"))
        #expect(held.withheld[1].decision.reason.hasPrefix("\(hold); would delete: paused for"))
        let still = f.cycle(hold: true)
        #expect(still.events == [.hold])
        #expect(still.notify.isEmpty)
        let released = f.cycle()
        #expect(released.actionList == ["vast/1 pause", "vast/2 delete"])
    }

    @Test("several guards on one action: every reason is named")
    func reasonsCombine() {
        var f = FleetDriver(instances: FleetDriver.fleet(.vast, 3))
        f.set(0..<3, History.gpus(0))
        f.cycles(30)
        let cycle = f.cycle(hold: true)
        #expect(cycle.events.count == 2)
        #expect(
            cycle.withheld[0].decision.reason.hasPrefix(
                "hold file present: acting on nothing; breaker: 3 pauses planned of 3 managed vast instances > "
                    + "MAX_ACTION_FRACTION 0.5; would pause"))
    }
}
