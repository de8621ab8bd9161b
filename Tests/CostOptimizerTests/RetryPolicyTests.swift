import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    let request = HTTPRequest(method: "GET", url: URL(string: "https://console.vast.ai/api/v1/instances/?limit=25")!)

    @Test("Delays double from the base delay and stop at the maximum")
    func delays() {
        let policy = RetryPolicy()
        #expect((2...7).map(policy.delay(beforeAttempt:)) == [0.5, 1, 2, 4, 8, 8])
        #expect(policy.delay(beforeAttempt: 1) == 0)
        #expect(policy.maxAttempts == 4)
    }

    @Test("429 and 503 are retried through the clock, each retry logged, until a 200")
    func retriesThenSucceeds() async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(429, "API requests too frequent")), .success(.vastText(503, "")),
            .success(.vastText(200, "{}")),
        ])
        let clock = FakeClock()
        let sink = VastRecordingLogSink()
        let response = try await RetryPolicy.exact.send(
            request, through: transport, clock: clock, logger: Logger(level: .info, sink: sink), label: "vast")
        #expect(response.status == 200)
        #expect(transport.requests.count == 3)
        #expect(clock.sleeps == [0.5, 1])
        #expect(
            sink.recorded == [
                "warning Provider retry vast: HTTP 429, attempt 2 of 4",
                "warning Provider retry vast: HTTP 503, attempt 3 of 4",
            ])
    }

    @Test("A status that is not retryable comes back at once", arguments: [200, 400, 401, 403, 404, 501])
    func notRetried(status: Int) async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(status, "") })
        let clock = FakeClock()
        let response = try await RetryPolicy.exact.send(
            request, through: transport, clock: clock, logger: .silent, label: "vast")
        #expect(response.status == status)
        #expect(transport.requests.count == 1)
        #expect(clock.sleeps.isEmpty)
    }

    @Test("When every attempt is retryable the last response is returned after maxAttempts")
    func exhaustedStatus() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(502, "bad gateway") })
        let clock = FakeClock()
        let response = try await RetryPolicy(maxAttempts: 3, jitter: RetryPolicy.noJitter).send(
            request, through: transport, clock: clock, logger: .silent, label: "vast")
        #expect(response.status == 502)
        #expect(transport.requests.count == 3)
        #expect(clock.sleeps == [0.5, 1])
    }

    @Test("Transport errors are retried and the last one is thrown")
    func exhaustedTransport() async throws {
        let transport = FakeHTTPTransport(responses: [
            .failure(.unreachable(host: "h", detail: "connection refused")), .failure(.timedOut(host: "h")),
        ])
        let last = HTTPTransportError.unreachable(host: "console.vast.ai", detail: "no scripted response left")
        await #expect(throws: last) {
            _ = try await RetryPolicy(maxAttempts: 3, jitter: RetryPolicy.noJitter).send(
                request, through: transport, clock: FakeClock(), logger: .silent, label: "vast")
        }
        #expect(transport.requests.count == 3)
    }

    @Test("A cancelled request is not retried")
    func cancelledNotRetried() async throws {
        let transport = FakeHTTPTransport(responses: [.failure(.cancelled), .success(.vastText(200, ""))])
        await #expect(throws: CancellationError.self) {
            _ = try await RetryPolicy.exact.send(
                request, through: transport, clock: FakeClock(), logger: .silent, label: "vast")
        }
        #expect(transport.requests.count == 1)
    }

    // MARK: - Jitter and budget

    @Test("Jitter scales each delay; the delays still grow and stay bounded")
    func jitterScales() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(429, "API requests too frequent") })
        let clock = FakeClock()
        let policy = RetryPolicy(maxAttempts: 6, jitter: { $0 * 0.75 })
        let response = try await policy.send(request, through: transport, clock: clock, logger: .silent, label: "v")
        #expect(response.status == 429)
        #expect(clock.sleeps == [0.375, 0.75, 1.5, 3, 6])
        #expect(policy.jitteredDelay(beforeAttempt: 9) == 6, "0.75 × the 8 s maximum")
        #expect(RetryPolicy(jitter: { $0 * 10 }).jitteredDelay(beforeAttempt: 2) == 5, "jitter up to maxDelay")
        #expect(RetryPolicy(jitter: { _ in -1 }).jitteredDelay(beforeAttempt: 2) == 0)
        #expect(RetryPolicy(jitter: { _ in .nan }).jitteredDelay(beforeAttempt: 2) == 0.5)
    }

    @Test("The default jitter sleeps between half and all of each delay")
    func defaultJitterRange() async throws {
        for _ in 0..<20 {
            let transport = FakeHTTPTransport(handler: { _ in .vastText(503, "") })
            let clock = FakeClock()
            _ = try await RetryPolicy().send(request, through: transport, clock: clock, logger: .silent, label: "v")
            try #require(clock.sleeps.count == 3)
            for (slept, delay) in zip(clock.sleeps, [0.5, 1, 2]) {
                #expect(slept >= delay * 0.5 && slept <= delay)
            }
        }
    }

    @Test("A budget stops the retries when the next wait would pass it, and says so")
    func budgetStopsRetries() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(429, "API requests too frequent") })
        let clock = FakeClock()
        let sink = VastRecordingLogSink()
        let policy = RetryPolicy(budget: 2, jitter: RetryPolicy.noJitter)
        let response = try await policy.send(
            request, through: transport, clock: clock, logger: Logger(level: .info, sink: sink), label: "vast")
        #expect(response.status == 429)
        #expect(transport.requests.count == 3)
        #expect(clock.sleeps == [0.5, 1], "0.5 + 1 + 2 would end 3.5 s after the start, past the 2 s budget")
        #expect(
            sink.recorded.last
                == "warning Provider retry vast: HTTP 429; not retried, waiting 2.0 s more would pass the time "
                + "budget of 2.0 s")
    }

    @Test("The task's deadline stops the retries of every chain in it")
    func deadlineStopsRetries() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(500, "") })
        let clock = FakeClock()
        let response = try await RetryPolicy.$deadline.withValue(clock.now().addingTimeInterval(1)) {
            try await RetryPolicy.exact.send(request, through: transport, clock: clock, logger: .silent, label: "v")
        }
        #expect(response.status == 500)
        #expect(transport.requests.count == 2)
        #expect(clock.sleeps == [0.5])
    }

    // MARK: - Mutations

    let stop = HTTPRequest(method: "PUT", url: URL(string: "https://console.vast.ai/api/v0/instances/7/")!)

    /// Runs `sendMutation` with scripted re-read results, counting the re-reads.
    func mutation(
        _ transport: FakeHTTPTransport, clock: FakeClock = FakeClock(), policy: RetryPolicy = .exact,
        rechecks: [Result<MutationCheck, ProviderError>]
    ) async throws -> (MutationResult, rechecks: Int) {
        var queue = rechecks
        var count = 0
        let result = try await policy.sendMutation(
            stop, through: transport, clock: clock, logger: .silent, account: "vast",
            action: "the stop of instance 7"
        ) {
            count += 1
            return try queue.removeFirst().get()
        }
        return (result, count)
    }

    @Test("A mutation refused with 429 three times is sent again after growing delays, then its 200 is returned")
    func mutation429() async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(429, "")), .success(.vastText(429, "")), .success(.vastText(429, "")),
            .success(.vastText(200, #"{"success":true}"#)),
        ])
        let clock = FakeClock()
        let (result, rechecks) = try await mutation(transport, clock: clock, rechecks: [])
        #expect(result == .response(.vastText(200, #"{"success":true}"#)))
        #expect(rechecks == 0, "a 429 was refused, not applied: no re-read needed")
        #expect(transport.requests.count == 4)
        #expect(clock.sleeps == [0.5, 1, 2])
    }

    @Test("No answer, then a re-read showing the goal reached: done, and nothing is sent again")
    func mutationTimeoutDone() async throws {
        let transport = FakeHTTPTransport(responses: [.failure(.timedOut(host: "h"))])
        let (result, rechecks) = try await mutation(transport, rechecks: [.success(.done("paused"))])
        #expect(result == .alreadyDone)
        #expect(rechecks == 1)
        #expect(transport.requests.count == 1)
    }

    @Test(
        "A 5xx, then a re-read showing the instance unchanged: sent again after the backoff",
        arguments: [500, 502, 503, 504])
    func mutationUnchangedResent(status: Int) async throws {
        let transport = FakeHTTPTransport(responses: [
            .success(.vastText(status, "")), .success(.vastText(200, #"{"success":true}"#)),
        ])
        let clock = FakeClock()
        let (result, rechecks) = try await mutation(transport, clock: clock, rechecks: [.success(.unchanged)])
        #expect(result == .response(.vastText(200, #"{"success":true}"#)))
        #expect(rechecks == 1)
        #expect(transport.requests.count == 2)
        #expect(clock.sleeps == [0.5])
    }

    @Test("Unchanged every time: the attempts run out and the last 5xx is returned, each one re-read first")
    func mutationUnchangedExhausted() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(503, "") })
        let (result, rechecks) = try await mutation(
            transport, rechecks: Array(repeating: .success(.unchanged), count: 4))
        #expect(result == .response(.vastText(503, "")))
        #expect(rechecks == 4)
        #expect(transport.requests.count == 4)
    }

    @Test("A 5xx that is not worth retrying (501) is re-read but not sent again")
    func mutationUnretryable5xx() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(501, "") })
        let (result, rechecks) = try await mutation(transport, rechecks: [.success(.unchanged)])
        #expect(result == .response(.vastText(501, "")))
        #expect(rechecks == 1)
        #expect(transport.requests.count == 1)
    }

    @Test("A re-read showing another state is an unknown outcome, and nothing is sent again")
    func mutationChanged() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(504, "") })
        await #expect {
            _ = try await mutation(transport, rechecks: [.success(.changed("transitional (x)"))])
        } throws: { error in
            error as? ProviderError
                == .outcomeUnknown(
                    account: "vast",
                    detail: "the stop of instance 7 got no usable answer (HTTP 504) and a re-read shows the instance "
                        + "transitional (x)")
        }
        #expect(transport.requests.count == 1)
    }

    @Test("A re-read that fails is an unknown outcome, never a success, and nothing is sent again")
    func mutationRecheckFails() async throws {
        let transport = FakeHTTPTransport(responses: [.failure(.timedOut(host: "h"))])
        let failure = ProviderError.http(account: "vast", status: 500, detail: "oops")
        await #expect {
            _ = try await mutation(transport, rechecks: [.failure(failure)])
        } throws: { error in
            guard case ProviderError.outcomeUnknown(account: "vast", let detail) = error else { return false }
            return detail.contains("re-reading the instance failed (vast: HTTP 500 (oops))")
        }
        #expect(transport.requests.count == 1)
    }

    @Test("Other answers (2xx, 4xx) are returned at once without a re-read", arguments: [200, 400, 401, 404])
    func mutationPlainAnswer(status: Int) async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(status, "") })
        let (result, rechecks) = try await mutation(transport, rechecks: [])
        #expect(result == .response(.vastText(status, "")))
        #expect(rechecks == 0)
        #expect(transport.requests.count == 1)
    }

    @Test("A cancelled mutation is not re-read nor sent again")
    func mutationCancelled() async throws {
        let transport = FakeHTTPTransport(responses: [.failure(.cancelled)])
        await #expect(throws: CancellationError.self) {
            _ = try await mutation(transport, rechecks: [])
        }
        #expect(transport.requests.count == 1)
    }

    @Test("MutationCheck: paused is done for a pause, gone for a delete; the old state is unchanged")
    func mutationChecks() {
        let running = VastFixture.instance(id: "7")
        var paused = running
        paused.state = .paused
        var reserved = paused
        reserved.gpuReserved = true
        var moving = running
        moving.state = .transitional
        moving.providerStatus = "actual_status=running intended_status=stopped cur_state=running"
        #expect(MutationCheck.pause(before: running, now: paused) == .done("paused (\(paused.providerStatus))"))
        #expect(MutationCheck.pause(before: running, now: running) == .unchanged)
        #expect(MutationCheck.pause(before: running, now: nil) == .changed("gone"))
        #expect(
            MutationCheck.pause(before: running, now: moving) == .changed("transitional (\(moving.providerStatus))"))
        #expect(MutationCheck.pause(before: reserved, now: reserved) == .unchanged)
        #expect(MutationCheck.pause(before: running, now: reserved) == .changed("paused (\(reserved.providerStatus))"))
        #expect(MutationCheck.delete(before: paused, now: nil) == .done("gone"))
        #expect(MutationCheck.delete(before: paused, now: paused) == .unchanged)
        #expect(MutationCheck.delete(before: paused, now: running) == .changed("running (\(running.providerStatus))"))
    }
}
