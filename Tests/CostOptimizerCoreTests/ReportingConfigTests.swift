import CostOptimizerCore
import Testing

@Suite("Configuration: METRICS_FILE and DIGEST_HOUR")
struct ReportingConfigTests {
    static let base = ["VAST_API_KEY": "k"]

    @Test("both are off when unset or blank")
    func offByDefault() throws {
        let config = try Config.parse(environment: Self.base.merging(["METRICS_FILE": " ", "DIGEST_HOUR": ""]) { $1 })
        #expect(config.metricsFile == nil && config.digestHour == nil)
    }

    @Test("an absolute .prom path and an hour of 0 to 23 are taken", arguments: [0, 9, 23])
    func accepted(hour: Int) throws {
        let config = try Config.parse(
            environment: Self.base.merging([
                "METRICS_FILE": "/var/lib/prometheus/node-exporter/cost_optimizer.prom", "DIGEST_HOUR": "\(hour)",
            ]) { $1 })
        #expect(config.metricsFile == "/var/lib/prometheus/node-exporter/cost_optimizer.prom")
        #expect(config.digestHour == hour)
    }

    @Test(
        "a relative path, a directory or a name node_exporter would not read is refused",
        arguments: ["metrics.prom", "/var/lib/x/", "/var/lib/x/metrics.txt", "/var/lib/x/.prom"])
    func badMetricsFile(path: String) {
        #expect(throws: ConfigError.self) {
            try Config.parse(environment: Self.base.merging(["METRICS_FILE": path]) { $1 })
        }
    }

    @Test(
        "an hour outside 0–23 or not a whole number is refused, naming the variable",
        arguments: ["24", "-1", "9.5", "nine"])
    func badHour(value: String) {
        #expect {
            try Config.parse(environment: Self.base.merging(["DIGEST_HOUR": value]) { $1 })
        } throws: { error in
            "\(error)".contains("DIGEST_HOUR")
        }
    }
}
