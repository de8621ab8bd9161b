import CostOptimizerCore
import Foundation
import Testing

@Suite("Configuration")
struct ConfigTests {
    let key = ["VAST_API_KEY": "k-123"]

    @Test("defaults match the documented table")
    func defaults() throws {
        let config = try Config.parse(environment: key)
        #expect(config.policy.pauseThresholdGPU == 10)
        #expect(config.policy.pauseWindow == 30 * 60)
        #expect(config.policy.minSamples == 5)
        #expect(config.policy.deleteThreshold == 24 * 3600)
        #expect(config.policy.minInstanceAge == 3600)
        #expect(config.policy.protectLabel == "keep")
        #expect(config.checkInterval == 60)
        #expect(config.dryRun == false)
        #expect(config.vastAPIURL.absoluteString == "https://console.vast.ai")
        #expect(
            config.ssh
                == SSHSettings(command: "ssh", keyPath: nil, connectTimeout: 10, concurrency: 16, controlPersist: 120))
        #expect(config.stateDirectory == "/var/lib/cost-optimizer")
        #expect(config.logLevel == .info)
        #expect(config.policy.deleteNotice == 2 * 3600)
        #expect(config.limits == Limits(maxPausesPerCycle: 10, maxDeletesPerCycle: 3, maxActionFraction: 0.5))
        #expect(config.limits == .defaults)
    }

    @Test("reads the safety limits and the delete notice")
    func readsSafetyLimits() throws {
        let config = try Config.parse(
            environment: key.merging([
                "MAX_PAUSES_PER_CYCLE": "0", "MAX_DELETES_PER_CYCLE": "7", "MAX_ACTION_FRACTION": "1",
                "DELETE_NOTICE_HOURS": "0.5",
            ]) { $1 })
        #expect(config.limits.maxPausesPerCycle == 0)
        #expect(config.limits.maxDeletesPerCycle == 7)
        #expect(config.limits.maxActionFraction == 1)
        #expect(config.policy.deleteNotice == 1800)
    }

    static let noticeDefaults: [(threshold: String, notice: String?, seconds: Double)] = [
        ("24", nil, 7200), ("3", nil, 5400), ("1", nil, 1800), ("0", nil, 0), ("0", "5", 5 * 3600), ("3", "2.5", 9000),
        ("24", "0", 0),
    ]

    @Test(
        "DELETE_NOTICE_HOURS: unset, the smaller of 2 h and half the threshold; set, below the threshold (unless 0)",
        arguments: noticeDefaults)
    func deleteNotice(_ row: (threshold: String, notice: String?, seconds: Double)) throws {
        var env = key.merging(["DELETE_THRESHOLD_HOURS": row.threshold]) { $1 }
        env["DELETE_NOTICE_HOURS"] = row.notice
        #expect(try Config.parse(environment: env).policy.deleteNotice == row.seconds)
    }

    @Test("a notice as long as the threshold is refused, naming both")
    func noticeNotBelowThreshold() {
        #expect {
            let env = ["DELETE_THRESHOLD_HOURS": "2", "DELETE_NOTICE_HOURS": "2"]
            return try Config.parse(environment: key.merging(env) { $1 })
        } throws: { error in
            "\(error)"
                == "Invalid configuration: DELETE_NOTICE_HOURS=\"2\" must be less than DELETE_THRESHOLD_HOURS (2)."
        }
    }

    @Test("reads every variable")
    func readsEverything() throws {
        let config = try Config.parse(environment: [
            "PAUSE_THRESHOLD_GPU": "5.5", "PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1", "DELETE_THRESHOLD_HOURS": "0",
            "MIN_INSTANCE_AGE_HOURS": "0", "CHECK_INTERVAL": "30", "PROTECTED_INSTANCES": " 1, two ,", "PROTECT_LABEL": "pin",
            "DRY_RUN": "true", "VAST_API_KEY": "a,b", "VAST_API_URL": "http://127.0.0.1:8080/",
            "WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X", "SSH_KEY_PATH": "/k", "SSH_COMMAND": "/usr/bin/ssh",
            "SSH_CONNECT_TIMEOUT": "3", "SSH_CONCURRENCY": "2", "STATE_DIRECTORY": "/var/lib/x:/other",
            "LOG_LEVEL": "DEBUG",
        ])
        #expect(config.policy.pauseThresholdGPU == 5.5)
        #expect(config.policy.pauseWindow == 0)
        #expect(config.policy.sampleGapLimit == 90)
        #expect(config.policy.protectedInstances == ["1", "two"])
        #expect(config.policy.protectLabel == "pin")
        #expect(config.dryRun)
        #expect(config.vastAPIKeys.map(\.value) == ["a", "b"])
        #expect(config.vastAPIURL.absoluteString == "http://127.0.0.1:8080")
        #expect(config.webhookURL?.value == "https://hooks.slack.com/services/T/B/X")
        #expect(
            config.ssh
                == SSHSettings(command: "/usr/bin/ssh", keyPath: "/k", connectTimeout: 3, concurrency: 2, controlPersist: 60))
        #expect(config.stateDirectory == "/var/lib/x")
        #expect(config.logLevel == .debug)
    }

    @Test(
        "SSH_CONTROL_PERSIST: unset, the larger of 60 s and two CHECK_INTERVALs; 0 turns reuse off",
        arguments: [
            (nil, nil, 120), ("30", nil, 60), ("300", nil, 600), ("45.5", nil, 91), ("300", "0", 0), ("60", "15", 15),
        ] as [(String?, String?, Int)])
    func controlPersist(interval: String?, persist: String?, seconds: Int) throws {
        var env = key
        env["CHECK_INTERVAL"] = interval
        env["SSH_CONTROL_PERSIST"] = persist
        #expect(try Config.parse(environment: env).ssh.controlPersist == seconds)
    }

    @Test("STATE_DIR wins over STATE_DIRECTORY")
    func stateDirPrecedence() throws {
        let config = try Config.parse(environment: key.merging(["STATE_DIR": "/a", "STATE_DIRECTORY": "/b"]) { $1 })
        #expect(config.stateDirectory == "/a")
    }

    @Test(
        "a bad value names the variable and the value",
        arguments: [
            ("PAUSE_THRESHOLD_GPU", "ten"), ("PAUSE_THRESHOLD_GPU", "150"), ("PAUSE_WINDOW_MINUTES", "-5"),
            ("MIN_SAMPLES", "0"), ("MIN_SAMPLES", "2.5"), ("DELETE_THRESHOLD_HOURS", "-1"),
            ("MIN_INSTANCE_AGE_HOURS", "nan"), ("CHECK_INTERVAL", "0"), ("DRY_RUN", "maybe"),
            ("VAST_API_URL", "console.vast.ai"), ("VAST_API_URL", "ftp://x"), ("VAST_API_URL", "https://x/api/v0"),
            ("SSH_CONNECT_TIMEOUT", "0"), ("SSH_CONCURRENCY", "-1"), ("LOG_LEVEL", "verbose"),
            ("MAX_PAUSES_PER_CYCLE", "-1"), ("MAX_PAUSES_PER_CYCLE", "ten"), ("MAX_DELETES_PER_CYCLE", "1.5"),
            ("MAX_DELETES_PER_CYCLE", "-3"), ("MAX_ACTION_FRACTION", "0"), ("MAX_ACTION_FRACTION", "1.01"),
            ("MAX_ACTION_FRACTION", "-0.5"), ("MAX_ACTION_FRACTION", "half"), ("MAX_ACTION_FRACTION", "nan"),
            ("DELETE_NOTICE_HOURS", "-1"), ("DELETE_NOTICE_HOURS", "24"), ("DELETE_NOTICE_HOURS", "30"),
            ("DELETE_NOTICE_HOURS", "soon"), ("SSH_CONTROL_PERSIST", "-1"), ("SSH_CONTROL_PERSIST", "1.5"),
            ("SSH_CONTROL_PERSIST", "forever"), ("SSH_CONTROL_PERSIST", "604801"),
        ])
    func rejects(variable: String, value: String) {
        #expect {
            try Config.parse(environment: key.merging([variable: value]) { $1 })
        } throws: { error in
            let text = "\(error)"
            return text.contains("\(variable)=\"\(value)\"") && text.hasPrefix("Invalid configuration")
        }
    }

    @Test("a bad webhook URL is refused without printing it")
    func webhookRedacted() {
        #expect {
            try Config.parse(environment: key.merging(["WEBHOOK_URL": "not a url/secret-token"]) { $1 })
        } throws: { error in
            "\(error)".contains("WEBHOOK_URL") && !"\(error)".contains("secret-token")
        }
    }

    @Test("no provider is an error, except where not required")
    func noProvider() throws {
        #expect(throws: ConfigError.noProvider) { try Config.parse(environment: [:]) }
        _ = try Config.parse(environment: [:], requireProvider: false)
    }

    @Test("a secret never prints its value")
    func secretRedacts() throws {
        let config = try Config.parse(environment: ["VAST_API_KEY": "super-secret-key"])
        #expect(!"\(config)".contains("super-secret-key"))
        #expect(!String(reflecting: config).contains("super-secret-key"))
    }
}
