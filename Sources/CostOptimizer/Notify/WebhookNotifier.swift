import CostOptimizerCore
import Foundation

/// POSTs each event as JSON (`text` for Slack plus the structured fields) to `WEBHOOK_URL`.
///
/// Each attempt has a short timeout and the attempts are bounded, so a dead webhook costs a cycle seconds, not
/// minutes. A failure is logged with the webhook's host only: the URL's path is a secret.
public struct WebhookNotifier: Notifier {
    let url: Secret
    let transport: any HTTPTransport
    let clock: any WallClock
    let logger: Logger
    let attempts: Int
    let timeout: Double

    public init(
        url: Secret, transport: any HTTPTransport, clock: any WallClock, logger: Logger, attempts: Int = 3,
        timeout: Double = 5
    ) {
        self.url = url
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.attempts = attempts
        self.timeout = timeout
    }

    public func notify(_ event: NotificationEvent) async {
        guard let target = URL(string: url.value) else { return }
        let host = target.host ?? "webhook"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        guard let body = try? encoder.encode(event) else { return }
        let request = HTTPRequest(
            method: "POST", url: target, headers: ["Content-Type": "application/json"], body: body, timeout: timeout)
        var problem = ""
        for attempt in 1...max(1, attempts) {
            if Task.isCancelled { return }
            do {
                let response = try await transport.send(request)
                if (200..<300).contains(response.status) { return }
                problem = "HTTP \(response.status)"
                if (400..<500).contains(response.status) && response.status != 429 { break }
            } catch {
                problem = "\(error)"
            }
            if attempt < attempts { try? await clock.sleep(seconds: Double(attempt)) }
        }
        logger.warning("Webhook failed \(host): \(problem), event \(event.event.rawValue) not delivered")
    }
}

/// Sends nothing: used when `WEBHOOK_URL` is unset.
public struct NoNotifier: Notifier {
    public init() {}
    public func notify(_ event: NotificationEvent) async {}
}
