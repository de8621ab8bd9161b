import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

/// GCEProvider over real HTTP: URLSessionTransport → LoopbackHTTPServer → GCESimulator (which is also the token
/// endpoint and the metadata server). Sleeps go through a FakeClock, so retries and operation polls are instant.
@Suite("GCE over loopback HTTP")
struct GCEIntegrationTests {
    /// A running simulator behind a loopback server, and what a provider needs to reach it.
    struct GCEHarness {
        let simulator: GCESimulator
        let server: LoopbackHTTPServer
        let clock = FakeClock()
        let transport = GCERecordingTransport(URLSessionTransport())
        let sink = GCERecordingLogSink()

        init(_ instances: [SimulatedGCEInstance] = [], pageSize: Int = 500) throws {
            simulator = GCESimulator(acceptedTokens: [GCEFixture.token], pageSize: pageSize)
            simulator.add(contentsOf: instances)
            server = try LoopbackHTTPServer.start(handler: simulator.handle)
        }

        var metadataHost: String { "127.0.0.1:\(server.port)" }

        func provider(zone: String? = nil, tokens: (any AccessTokenSource)? = nil) -> GCEProvider {
            GCEProvider(
                project: GCEFixture.project, settings: GCEFixture.settings(zone: zone, apiURL: server.baseURL),
                tokens: tokens ?? StaticTokenSource(Secret(GCEFixture.token)), transport: transport, clock: clock,
                logger: Logger(level: .debug, sink: sink), retry: .exact)
        }

        /// A cached metadata-server token source pointed at the simulator.
        func metadataTokens() -> CachingTokenSource {
            CachingTokenSource(
                // A generous request timeout: over loopback on a loaded 2-core CI machine, not a timing check.
                MetadataTokenSource(host: metadataHost, transport: transport, clock: clock, timeout: 60),
                clock: clock)
        }
    }

    static let base = "/compute/v1/projects/\(GCEFixture.project)"

    static func encodedToken(_ offset: Int) -> String {
        Data("offset:\(offset)".utf8).base64EncodedString().addingPercentEncoding(
            withAllowedCharacters: .alphanumerics)!
    }

    @Test("The aggregated list is followed across three pages; warning-only scopes are skipped, unreachables reported")
    func aggregatedPaging() async throws {
        let h = try GCEHarness(
            [
                SimulatedGCEInstance(id: "11", name: "a-1", zone: "us-central1-a"),
                SimulatedGCEInstance(id: "12", name: "a-2", zone: "us-central1-a"),
                SimulatedGCEInstance(id: "21", name: "b-1", zone: "us-central1-b"),
                SimulatedGCEInstance(id: "31", name: "e-1", zone: "europe-west4-a"),
                SimulatedGCEInstance(id: "32", name: "e-2", zone: "europe-west4-a"),
                SimulatedGCEInstance(id: "41", name: "far-1", zone: "asia-east1-c"),
            ], pageSize: 2)
        defer { h.server.shutdown() }
        h.simulator.setUnreachable(["asia-east1-c"])
        let listing = try await h.provider().listInstancesReportingGaps()
        #expect(listing.instances.map(\.name) == ["e-1", "e-2", "a-1", "a-2", "b-1"])
        #expect(listing.instances.map(\.key.id) == ["31", "32", "11", "12", "21"])
        #expect(listing.gaps == ["zones/asia-east1-c"])
        #expect(
            h.simulator.requests.map(\.line) == [
                "GET \(Self.base)/aggregated/instances?returnPartialSuccess=true",
                "GET \(Self.base)/aggregated/instances?returnPartialSuccess=true&pageToken=\(Self.encodedToken(2))",
                "GET \(Self.base)/aggregated/instances?returnPartialSuccess=true&pageToken=\(Self.encodedToken(4))",
            ])
        // Every page carried warning-only scopes, and the unreachable zone in `unreachables`.
        let pages = h.transport.responseBodies
        #expect(pages.count == 3)
        #expect(
            pages.allSatisfy {
                $0.contains("NO_RESULTS_ON_PAGE") && $0.contains(#""unreachables":["zones/asia-east1-c"]"#)
            })

        // listInstances returns the same instances and logs the gap.
        #expect(try await h.provider().listInstances().count == 5)
        #expect(
            h.sink.recorded.contains {
                $0.hasPrefix("warning Provider partial listing gcp:sim-project: unreachable zones/asia-east1-c")
            })
    }

    @Test("With GCP_ZONE the per-zone list is used")
    func perZone() async throws {
        let h = try GCEHarness([
            SimulatedGCEInstance(id: "11", name: "a-1", zone: "us-central1-a"),
            SimulatedGCEInstance(id: "21", name: "b-1", zone: "us-central1-b"),
        ])
        defer { h.server.shutdown() }
        let instances = try await h.provider(zone: "us-central1-b").listInstances()
        #expect(instances.map(\.name) == ["b-1"])
        #expect(h.simulator.requests.map(\.line) == ["GET \(Self.base)/zones/us-central1-b/instances"])
        #expect(try await h.provider(zone: "europe-west4-a").listInstances().isEmpty, "items is omitted when empty")
    }

    @Test("Stop: the operation goes PENDING → RUNNING → DONE, polled at GCP_API_URL and never at its selfLink")
    func stopOperation() async throws {
        let h = try GCEHarness([
            SimulatedGCEInstance(id: "1001", name: "gpu-1", machineType: "a2-highgpu-8g", accelerators: [])
        ])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.provider().listInstances().first)
        #expect(listed.state == .running && listed.managed && listed.gpuCount == 8)
        h.simulator.clearRequests()
        try await h.provider().pause(listed)

        let requests = h.simulator.requests
        #expect(requests.map(\.method) == ["POST", "GET", "GET"])
        #expect(requests[0].path == "\(Self.base)/zones/us-central1-a/instances/gpu-1/stop")
        let operationPath = requests[1].path
        #expect(operationPath.hasPrefix("\(Self.base)/zones/us-central1-a/operations/operation-"))
        #expect(requests[2].path == operationPath)
        let bodies = h.transport.responseBodies.suffix(3)
        #expect(bodies.map { $0.contains(#""status":"PENDING""#) } == [true, false, false])
        #expect(bodies.map { $0.contains(#""status":"RUNNING""#) } == [false, true, false])
        #expect(bodies.map { $0.contains(#""status":"DONE""#) } == [false, false, true])
        #expect(bodies.allSatisfy { $0.contains(#""selfLink":"https://www.googleapis.com/compute/v1/projects/"#) })
        #expect(h.transport.requestedURLs.allSatisfy { $0.host == "127.0.0.1" && $0.port == h.server.port })
        #expect(h.clock.sleeps == [GCEProvider.pollInterval, GCEProvider.pollInterval])

        let after = try #require(h.simulator.instance(name: "gpu-1", zone: "us-central1-a"))
        #expect(after.status == "TERMINATED")
        let relisted = try #require(try await h.provider().listInstances().first)
        #expect(relisted.state == .paused)
        #expect(relisted.ssh == nil && relisted.sshUnavailableReason == "no external IP")
    }

    @Test("A DONE operation with an error is thrown, never reported as done")
    func doneWithError() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1001", name: "gpu-1")])
        defer { h.server.shutdown() }
        h.simulator.failNextOperation(code: "RESOURCE_NOT_READY", message: "Instance is being repaired")
        await #expect(
            throws: ProviderError.rejected(
                account: "gcp:sim-project",
                detail: "the stop of gpu-1 failed: RESOURCE_NOT_READY: Instance is being repaired")
        ) {
            try await h.provider().pause(GCEFixture.instance())
        }
        #expect(h.simulator.instance(name: "gpu-1", zone: "us-central1-a")?.status == "RUNNING")
        #expect(h.simulator.requests.map(\.method) == ["POST", "GET", "GET"])
    }

    @Test("Delete removes the instance; deleting it again answers 404 and succeeds")
    func deleteTwice() async throws {
        let h = try GCEHarness([
            SimulatedGCEInstance(id: "1001", name: "gpu-1"), SimulatedGCEInstance(id: "1002", name: "gpu-2"),
        ])
        defer { h.server.shutdown() }
        try await h.provider().delete(GCEFixture.instance())
        #expect(h.simulator.instances.map(\.name) == ["gpu-2"])
        try await h.provider().delete(GCEFixture.instance())
        let lines = h.simulator.requests.map { "\($0.method) \($0.path)" }
        #expect(
            lines.filter { $0.hasPrefix("DELETE") }
                == Array(repeating: "DELETE \(Self.base)/zones/us-central1-a/instances/gpu-1", count: 2))
        #expect(lines.count == 4, "the first delete polls twice; the second stops at its 404")
    }

    @Test("A deletion-protected instance is listed as protected and never deleted")
    func deletionProtection() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1001", name: "gpu-1", deletionProtection: true)])
        defer { h.server.shutdown() }
        let listed = try #require(try await h.provider().listInstances().first)
        #expect(listed.deletionProtected)
        h.simulator.clearRequests()
        await #expect {
            try await h.provider().delete(listed)
        } throws: { error in
            guard case ProviderError.rejected = error else { return false }
            return true
        }
        #expect(h.simulator.requests.isEmpty)

        // Even when the flag is lost on the way, Google's refusal is an error, not a deletion.
        var unflagged = listed
        unflagged.deletionProtected = false
        await #expect(
            throws: ProviderError.http(
                account: "gcp:sim-project", status: 400,
                detail: "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'.")
        ) {
            try await h.provider().delete(unflagged)
        }
        #expect(h.simulator.instances.count == 1)
        // Pausing a protected instance is still allowed.
        try await h.provider().pause(listed)
        #expect(h.simulator.instance(name: "gpu-1", zone: "us-central1-a")?.status == "TERMINATED")
    }

    @Test("A 403 rateLimitExceeded is retried after a backoff and the listing then succeeds")
    func rateLimitThenOK() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1", name: "vm")])
        defer { h.server.shutdown() }
        h.simulator.enqueueFault(
            method: "GET", pathPrefix: "\(Self.base)/aggregated/",
            response: GCESimulator.errorResponse(
                403, reason: "rateLimitExceeded", message: "Rate Limit Exceeded", status: "PERMISSION_DENIED"))
        #expect(try await h.provider().listInstances().count == 1)
        #expect(h.simulator.requests.count == 2)
        #expect(h.clock.sleeps == [0.5])
    }

    @Test("Metadata server: the token comes with Metadata-Flavor: Google, which the server requires")
    func metadataToken() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1", name: "vm")])
        defer { h.server.shutdown() }
        #expect(try await h.provider(tokens: h.metadataTokens()).listInstances().count == 1)
        let requests = h.simulator.requests
        #expect(
            requests.map(\.line) == [
                "GET \(MetadataTokenSource.tokenPath)",
                "GET \(Self.base)/aggregated/instances?returnPartialSuccess=true",
            ])
        #expect(requests[0].header("Metadata-Flavor") == "Google")
        #expect(requests[0].header("Authorization") == nil)
        let issued = try #require(h.simulator.issuedTokens.first)
        #expect(requests[1].header("Authorization") == "Bearer \(issued)")

        // Without the header the metadata server refuses, and so does a token source given that answer.
        let url = URL(string: "http://\(h.metadataHost)\(MetadataTokenSource.tokenPath)")!
        let bare = try await URLSessionTransport().send(HTTPRequest(method: "GET", url: url))
        #expect(bare.status == 403)
        h.simulator.enqueueFault(
            method: "GET", pathPrefix: MetadataTokenSource.tokenPath,
            response: HTTPResponse(status: 404, body: Data("No service account for this instance\n".utf8)))
        await #expect {
            _ = try await MetadataTokenSource(host: h.metadataHost, transport: h.transport, clock: h.clock)
                .token(forceRefresh: false)
        } throws: { error in
            guard let error = error as? AccessTokenError, error.kind == .refused else { return false }
            return error.description.contains("service account")
        }
    }

    @Test("A 401 refreshes the cached token once, and the request then succeeds")
    func refreshAfter401() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1", name: "vm")])
        defer { h.server.shutdown() }
        let gce = h.provider(tokens: h.metadataTokens())
        _ = try await gce.listInstances()
        h.simulator.revokeTokens()
        h.simulator.clearRequests()
        #expect(try await gce.listInstances().count == 1)
        let list = "GET \(Self.base)/aggregated/instances?returnPartialSuccess=true"
        #expect(h.simulator.requests.map(\.line) == [list, "GET \(MetadataTokenSource.tokenPath)", list])
        #expect(h.simulator.issuedTokens.count == 2)
        let issued = h.simulator.issuedTokens
        #expect(
            h.simulator.requests.map { $0.header("Authorization") } == [
                "Bearer \(issued[0])", nil, "Bearer \(issued[1])",
            ])
        #expect(h.sink.recorded.contains { $0.contains("Provider token refresh gcp:sim-project: HTTP 401") })
    }

    @Test("Service account: an RS256 JWT signed by openssl is exchanged; claims, signature and scratch files are right")
    func serviceAccount() async throws {
        let h = try GCEHarness([SimulatedGCEInstance(id: "1", name: "vm")])
        defer { h.server.shutdown() }
        let keys = try GCEFiles.makeTemporaryDirectory("keys")
        let scratch = try GCEFiles.makeTemporaryDirectory("scratch")
        defer {
            GCEFiles.removeTree(keys)
            GCEFiles.removeTree(scratch)
        }
        let openssl = ProcessCommandRunner()
        let environment = ["PATH": "/usr/bin:/bin", "LANG": "C"]
        let privatePath = keys + "/throwaway.pem"
        let publicPath = keys + "/throwaway.pub"
        let generated = try await openssl.run(
            Command(
                executable: "/usr/bin/openssl",
                arguments: ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privatePath],
                environment: environment, timeout: 60))
        try #require(generated.status == 0)
        let exported = try await openssl.run(
            Command(
                executable: "/usr/bin/openssl", arguments: ["pkey", "-in", privatePath, "-pubout", "-out", publicPath],
                environment: environment))
        try #require(exported.status == 0)
        let pem = try String(contentsOfFile: privatePath, encoding: .utf8)
        let keyID = "5f1e2d3c4b5a69788796a5b4c3d2e1f000112233"
        let tokenURI = "\(h.server.baseURL.absoluteString)/token"
        let keyFile = keys + "/service-account.json"
        try GCEFiles.serviceAccountKey(pem: pem, tokenURI: tokenURI, keyID: keyID).write(
            to: URL(fileURLWithPath: keyFile))

        let runner = GCEInspectingRunner(ProcessCommandRunner())
        let tokens = CachingTokenSource(
            ServiceAccountTokenSource(
                keyFile: keyFile, transport: h.transport, runner: runner, clock: h.clock, scratchDirectory: scratch,
                openssl: "/usr/bin/openssl"),
            clock: h.clock)
        let gce = h.provider(tokens: tokens)
        #expect(try await gce.listInstances().count == 1)
        #expect(try await gce.listInstances().count == 1)
        #expect(h.simulator.receivedAssertions.count == 1, "the token is cached")

        // The token request.
        let tokenRequest = try #require(h.simulator.requests.first)
        #expect(tokenRequest.line == "POST /token")
        #expect(tokenRequest.header("Content-Type") == "application/x-www-form-urlencoded")
        #expect(tokenRequest.header("Authorization") == nil)
        let issued = try #require(h.simulator.issuedTokens.first)
        #expect(h.simulator.requests.dropFirst().allSatisfy { $0.header("Authorization") == "Bearer \(issued)" })

        // The JWT.
        let jwt = try #require(h.simulator.receivedAssertions.first)
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        try #require(parts.count == 3)
        #expect(
            parts.allSatisfy { !$0.contains("=") && !$0.contains("+") && !$0.contains("/") }, "base64url, no padding")
        let headerData = try #require(GCEFiles.base64URLDecoded(parts[0]))
        let header = try #require(try JSONSerialization.jsonObject(with: headerData) as? [String: Any])
        #expect(header["alg"] as? String == "RS256")
        #expect(header["typ"] as? String == "JWT")
        #expect(header["kid"] as? String == keyID)
        let claimsData = try #require(GCEFiles.base64URLDecoded(parts[1]))
        let claims = try #require(try JSONSerialization.jsonObject(with: claimsData) as? [String: Any])
        #expect(claims["iss"] as? String == "cost-optimizer@\(GCEFixture.project).iam.gserviceaccount.com")
        #expect(claims["aud"] as? String == tokenURI)
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/cloud-platform")
        let iat = try #require(claims["iat"] as? Int)
        let exp = try #require(claims["exp"] as? Int)
        #expect(iat == Int(h.clock.now().timeIntervalSince1970))
        #expect(exp > iat && exp - iat <= 3600)
        #expect(claims["sub"] == nil)

        // The signature, verified with the public key.
        let dataPath = keys + "/signed-data"
        let signaturePath = keys + "/signature"
        try Data((parts[0] + "." + parts[1]).utf8).write(to: URL(fileURLWithPath: dataPath))
        try #require(GCEFiles.base64URLDecoded(parts[2])).write(to: URL(fileURLWithPath: signaturePath))
        let verify = { () async throws -> CommandResult in
            try await openssl.run(
                Command(
                    executable: "/usr/bin/openssl",
                    arguments: ["dgst", "-sha256", "-verify", publicPath, "-signature", signaturePath, dataPath],
                    environment: environment))
        }
        let verified = try await verify()
        #expect(verified.status == 0)
        #expect(String(decoding: verified.stdout, as: UTF8.self).contains("Verified OK"))
        try Data((parts[0] + "." + parts[1] + "x").utf8).write(to: URL(fileURLWithPath: dataPath))
        #expect(try await verify().status != 0, "the check is meaningful: other data does not verify")

        // The private key was never in argv, was written 0600 in a 0700 directory inside the scratch directory,
        // and nothing is left there.
        let observation = try #require(runner.observations.first)
        #expect(runner.observations.count == 1)
        #expect(observation.keyPath.hasPrefix(scratch + "/"))
        #expect(observation.keyIsPrivateKey)
        #expect(observation.keyMode == 0o600)
        #expect(observation.directoryMode == 0o700)
        #expect(!observation.fileModes.isEmpty && observation.fileModes.values.allSatisfy { $0 == 0o600 })
        let argv = observation.arguments.joined(separator: " ")
        #expect(!argv.contains("PRIVATE KEY") && !argv.contains(String(pem.split(separator: "\n")[1].prefix(40))))
        #expect(!argv.contains(parts[1]), "the claims go through a file, not argv")
        #expect(GCEFiles.contents(scratch).isEmpty)
        for line in h.sink.recorded {
            #expect(!line.contains(issued) && !line.contains(parts[2]), "\(line)")
        }
    }
}
