import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Shared fixtures for the GCE tests.
enum GCEFixture {
    /// A static token shaped like a real one, so a leak would be visible.
    static let token = "ya29.a0AfB_byStaticTokenForTests_9f3c2d1e0b7a6c5d4e3f2a1b"
    static let project = GCESimulator.defaultProject
    static let apiURL = URL(string: "https://compute.googleapis.com")!

    static func settings(
        zone: String? = nil, apiURL: URL = GCEFixture.apiURL, overrides: [String: Double] = [:],
        metadataHost: String = "metadata.google.internal"
    ) -> GCPSettings {
        GCPSettings(
            projects: [project], zone: zone, sshUser: "ops", apiURL: apiURL, metadataHost: metadataHost,
            priceOverrides: overrides)
    }

    /// A GCE instance as the provider would list it, with just what an action needs.
    static func instance(
        name: String = "gpu-1", zone: String? = "us-central1-a", id: String = "1001", protected: Bool = false,
        provider: ProviderName = .gcp
    ) -> Instance {
        Instance(
            key: InstanceKey(provider: provider, id: id), name: name, zone: zone, state: .running,
            providerStatus: "status=RUNNING", deletionProtected: protected)
    }
}

/// A token source that hands out tokens from a list and records each call's `forceRefresh`.
final class GCEScriptedTokenSource: AccessTokenSource {
    private let state: Mutex<(tokens: [String], calls: [Bool])>

    /// - Parameter tokens: the first call gets the first token, and so on; the last one is repeated.
    init(_ tokens: [String]) {
        state = Mutex((tokens, []))
    }

    func token(forceRefresh: Bool) async throws -> Secret {
        state.withLock { state in
            state.calls.append(forceRefresh)
            let token = state.tokens.count > 1 ? state.tokens.removeFirst() : state.tokens[0]
            return Secret(token)
        }
    }

    /// Every call's `forceRefresh`, in order.
    var calls: [Bool] { state.withLock { $0.calls } }
}

/// A log sink that keeps every line.
final class GCERecordingLogSink: LogSink {
    private let lines = Mutex<[String]>([])

    func write(level: LogLevel, message: String) {
        lines.withLock { $0.append("\(level.rawValue) \(message)") }
    }

    var recorded: [String] { lines.withLock { $0 } }
}

/// An HTTP transport that records every URL, and every response body, around the inner transport.
final class GCERecordingTransport: HTTPTransport {
    private let inner: any HTTPTransport
    private let log = Mutex<(urls: [URL], bodies: [String])>(([], []))

    init(_ inner: any HTTPTransport) {
        self.inner = inner
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        log.withLock { $0.urls.append(request.url) }
        let response = try await inner.send(request)
        log.withLock { $0.bodies.append(String(decoding: response.body, as: UTF8.self)) }
        return response
    }

    /// Every URL requested, in order.
    var requestedURLs: [URL] { log.withLock { $0.urls } }
    /// Every response body received, in order.
    var responseBodies: [String] { log.withLock { $0.bodies } }
}

/// What a signing command found on disk while it ran.
struct GCESigningObservation: Sendable {
    var arguments: [String]
    var keyPath: String
    var keyMode: UInt32?
    var keyIsPrivateKey: Bool
    var directoryMode: UInt32?
    /// Every file in the signing directory at that moment, with its permission bits.
    var fileModes: [String: UInt32]
}

/// A runner that inspects the files an `openssl dgst -sign` command is given, then runs it with the inner runner.
final class GCEInspectingRunner: CommandRunner {
    private let inner: any CommandRunner
    private let observed = Mutex<[GCESigningObservation]>([])

    init(_ inner: any CommandRunner) {
        self.inner = inner
    }

    func run(_ command: Command) async throws -> CommandResult {
        if let index = command.arguments.firstIndex(of: "-sign"), index + 1 < command.arguments.count {
            let keyPath = command.arguments[index + 1]
            let directory = (keyPath as NSString).deletingLastPathComponent
            var fileModes: [String: UInt32] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                fileModes[name] = GCEFiles.mode(directory + "/" + name)
            }
            let content = FileManager.default.contents(atPath: keyPath).map { String(decoding: $0, as: UTF8.self) }
            let observation = GCESigningObservation(
                arguments: command.arguments, keyPath: keyPath, keyMode: GCEFiles.mode(keyPath),
                keyIsPrivateKey: content?.contains("PRIVATE KEY") ?? false, directoryMode: GCEFiles.mode(directory),
                fileModes: fileModes)
            observed.withLock { $0.append(observation) }
        }
        return try await inner.run(command)
    }

    var observations: [GCESigningObservation] { observed.withLock { $0 } }
}

/// File helpers for the tests.
enum GCEFiles {
    /// A new empty directory under the system temporary directory; remove it with `removeTree`.
    static func makeTemporaryDirectory(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("co-gce-\(label)-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The permission bits of a path (not following a final symlink), or nil when it does not exist.
    static func mode(_ path: String) -> UInt32? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return UInt32(info.st_mode) & 0o7777
    }

    /// Every file and directory below `path`, relative.
    static func contents(_ path: String) -> [String] {
        (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
    }

    /// A service-account JSON key holding this PEM.
    static func serviceAccountKey(
        pem: String, tokenURI: String, keyID: String = "0123456789abcdef0123456789abcdef01234567"
    )
        throws -> Data
    {
        let object: [String: Any] = [
            "type": "service_account", "project_id": GCEFixture.project, "private_key_id": keyID,
            "private_key": pem, "client_email": "cost-optimizer@\(GCEFixture.project).iam.gserviceaccount.com",
            "client_id": "109876543210987654321", "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": tokenURI,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Decodes base64url without padding.
    static func base64URLDecoded(_ text: some StringProtocol) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}

extension HTTPResponse {
    /// A response with a UTF-8 body, for scripting fakes.
    static func gceText(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Data(body.utf8))
    }
}
