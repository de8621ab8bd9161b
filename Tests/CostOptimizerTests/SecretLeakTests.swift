import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// A sentinel key and webhook token, driven through the error paths at debug level, must appear nowhere a person or
/// another process could read them.
@Suite("Secrets never leak", .serialized)
struct SecretLeakTests {
    static let sentinel = "SENTINEL-7f3a9c-key"
    static let webhookToken = "SENTINEL-hook-token"

    /// Everything the run left where someone could read it.
    static func exposedText(_ stage: Stage, outputs: [String]) -> String {
        let state = (try? String(contentsOfFile: stage.directory + "/state/state.json", encoding: .utf8)) ?? ""
        let journal = (try? String(contentsOfFile: stage.directory + "/state/actions.jsonl", encoding: .utf8)) ?? ""
        let bodies = stage.webhook.bodies.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
        let urls = stage.vast.requests.map { "\($0.path)?\($0.query ?? "")" }.joined(separator: "\n")
        return ([state, journal, bodies, urls, stage.ssh.argvLog] + outputs).joined(separator: "\n")
    }

    @Test(
        "through 401, 500, a malformed answer and a failed pause at LOG_LEVEL=debug, the key is nowhere",
        arguments: ["401", "500", "malformed", "pause-fails"])
    func sentinel(path: String) async throws {
        let stage = try Stage(apiKey: Self.sentinel)
        stage.addRunning(id: 701, label: "idle", port: 43001, utilization: 0)
        switch path {
        case "401":
            stage.vast.enqueueFault(
                method: "GET", pathPrefix: "/api/",
                response: HTTPResponse(status: 401, body: Data("bad key \(Self.sentinel)".utf8)), times: 10)
        case "500":
            stage.vast.enqueueFault(
                method: "GET", pathPrefix: "/api/",
                response: HTTPResponse(status: 500, body: Data("echo \(Self.sentinel)".utf8)), times: 10)
        case "malformed":
            stage.vast.enqueueFault(
                method: "GET", pathPrefix: "/api/",
                response: HTTPResponse(status: 200, body: Data("{\"instances\": [\"\(Self.sentinel)\"".utf8)), times: 10)
        default:
            stage.vast.enqueueFault(
                method: "PUT", pathPrefix: "/api/",
                response: HTTPResponse(
                    status: 200, body: Data(#"{"success":false,"error":"auth_error","msg":"key \#(Self.sentinel)"}"#.utf8)),
                times: 10)
        }
        let env = [
            "LOG_LEVEL": "debug", "PAUSE_WINDOW_MINUTES": "0", "MIN_SAMPLES": "1",
            "WEBHOOK_URL": stage.server.baseURL.absoluteString + "/hooks/T/B/\(Self.webhookToken)",
        ]
        let (_, runOut, runErr) = try await stage.run(["--run-once"], environment: env)
        let (_, statusOut, statusErr) = try await stage.run(["status", "--json"], environment: env)
        let (_, checkOut, checkErr) = try await stage.run(["check-config"], environment: env)
        let text = Self.exposedText(stage, outputs: [runOut, runErr, statusOut, statusErr, checkOut, checkErr])
        #expect(!text.contains(Self.sentinel))
        #expect(!text.contains(Self.webhookToken))
        #expect(stage.vast.requests.allSatisfy { $0.headers["Authorization"] == "Bearer \(Self.sentinel)" })
        #expect(!runErr.isEmpty)  // the run did log, at debug level
        if path == "pause-fails" {
            #expect(stage.ssh.argvLog.contains("-- root@127.0.0.1"))  // ssh ran: its argv was inspected
        }
    }

    @Test("a malformed credential file exits 78 naming the file, never its content")
    func malformedCredentialFile() async throws {
        let stage = try Stage(apiKey: Self.sentinel)
        let credentials = stage.directory + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: credentials + "/vast_api_key", contents: Data("  \n".utf8)))
        let (status, out, err) = try await stage.run(
            ["--run-once"], environment: ["CREDENTIALS_DIRECTORY": credentials, "LOG_LEVEL": "debug"])
        #expect(status == 78)
        #expect(err.contains(credentials + "/vast_api_key"))
        #expect(!(out + err).contains(Self.sentinel))
    }
}
