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
        let response = try await RetryPolicy().send(
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
        let response = try await RetryPolicy().send(
            request, through: transport, clock: clock, logger: .silent, label: "vast")
        #expect(response.status == status)
        #expect(transport.requests.count == 1)
        #expect(clock.sleeps.isEmpty)
    }

    @Test("When every attempt is retryable the last response is returned after maxAttempts")
    func exhaustedStatus() async throws {
        let transport = FakeHTTPTransport(handler: { _ in .vastText(502, "bad gateway") })
        let clock = FakeClock()
        let response = try await RetryPolicy(maxAttempts: 3).send(
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
            _ = try await RetryPolicy(maxAttempts: 3).send(
                request, through: transport, clock: FakeClock(), logger: .silent, label: "vast")
        }
        #expect(transport.requests.count == 3)
    }

    @Test("A cancelled request is not retried")
    func cancelledNotRetried() async throws {
        let transport = FakeHTTPTransport(responses: [.failure(.cancelled), .success(.vastText(200, ""))])
        await #expect(throws: CancellationError.self) {
            _ = try await RetryPolicy().send(
                request, through: transport, clock: FakeClock(), logger: .silent, label: "vast")
        }
        #expect(transport.requests.count == 1)
    }
}
