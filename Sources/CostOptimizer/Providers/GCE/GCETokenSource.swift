import CostOptimizerCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Gives the OAuth2 access token sent as `Authorization: Bearer` on every Compute Engine call.
///
/// A fake returns tokens from a list and counts the calls and the forced refreshes.
public protocol AccessTokenSource: Sendable {
    /// A token that is valid now, as far as the source knows.
    /// - Parameter forceRefresh: true after the API answered 401 to the last token: fetch a new one where the source
    ///   can (a static token cannot, and is returned again).
    /// - Throws: `AccessTokenError` when no token can be had; `CancellationError` when the task is cancelled.
    func token(forceRefresh: Bool) async throws -> Secret
}

/// A freshly fetched token and how long it lives.
public struct FetchedAccessToken: Sendable {
    /// The access token.
    public var token: Secret
    /// Seconds it stays valid from the moment it was requested (`expires_in`); nil when the answer did not say.
    public var expiresIn: Double?

    /// A token and its lifetime in seconds (nil when unknown).
    public init(token: Secret, expiresIn: Double?) {
        self.token = token
        self.expiresIn = expiresIn
    }
}

/// A source that fetches a new token on every call; wrap it in `CachingTokenSource`.
public protocol AccessTokenFetcher: Sendable {
    /// Fetches a new token.
    /// - Throws: `AccessTokenError`; `CancellationError` when the task is cancelled.
    func fetchToken() async throws -> FetchedAccessToken
}

/// No access token could be had. `description` is a sentence a user can act on and never holds a secret.
public struct AccessTokenError: Error, Equatable, CustomStringConvertible {
    /// How the provider reports it.
    public enum Kind: Equatable, Sendable {
        /// The credentials were refused or cannot be used: `ProviderError.unauthorized`.
        case refused
        /// No answer from the token's issuer: `ProviderError.transport`.
        case unreachable
        /// The issuer answered with an unexpected HTTP status, after retries: `ProviderError.http`.
        case failed(status: Int)
        /// The issuer's answer cannot be read: `ProviderError.malformed`.
        case malformed
    }

    /// How the provider reports it.
    public var kind: Kind
    /// What went wrong and what to check.
    public var description: String

    /// An error of this kind with this sentence; the sentence must hold no secret.
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

// MARK: - Static

/// `GCP_ACCESS_TOKEN`: a token obtained elsewhere (e.g. `gcloud auth print-access-token`). It cannot be refreshed:
/// when the API refuses it, the provider reports unauthorized.
public struct StaticTokenSource: AccessTokenSource {
    private let value: Secret

    /// - Parameter token: the access token.
    public init(_ token: Secret) {
        value = token
    }

    /// The same token, whatever `forceRefresh` says.
    public func token(forceRefresh: Bool) async throws -> Secret { value }
}

// MARK: - Cache

/// Keeps a fetched token until `refreshMargin` seconds before it expires, by the injected clock.
///
/// A token whose answer had no `expires_in` is kept `defaultLifetime` seconds. `forceRefresh` always fetches. Two
/// callers that miss the cache at the same moment may both fetch; the last token fetched is kept. Share one cache
/// between the providers of several projects to fetch one token for all of them.
public actor CachingTokenSource: AccessTokenSource {
    /// A token is renewed this many seconds before it expires.
    public static let refreshMargin: Double = 60
    /// Seconds a token without `expires_in` is kept.
    public static let defaultLifetime: Double = 300

    private let fetcher: any AccessTokenFetcher
    private let clock: any WallClock
    private var cached: (token: Secret, renewAt: Date)?

    /// - Parameters:
    ///   - fetcher: fetches a new token (service account or metadata server).
    ///   - clock: decides when the cached token is too old.
    public init(_ fetcher: any AccessTokenFetcher, clock: any WallClock) {
        self.fetcher = fetcher
        self.clock = clock
    }

    /// The cached token while it has more than `refreshMargin` seconds to live, else a new one.
    /// - Throws: the fetcher's error; the cache is left as it was.
    public func token(forceRefresh: Bool) async throws -> Secret {
        if !forceRefresh, let cached, clock.now() < cached.renewAt { return cached.token }
        let requestedAt = clock.now()
        let fetched = try await fetcher.fetchToken()
        let lifetime = fetched.expiresIn ?? Self.defaultLifetime
        cached = (fetched.token, requestedAt.addingTimeInterval(lifetime - Self.refreshMargin))
        return fetched.token
    }
}

// MARK: - Metadata server

/// The token of the VM's default service account, from the metadata server (only when the daemon runs on GCE).
///
/// `GET http://<host>/computeMetadata/v1/instance/service-accounts/default/token` with the mandatory
/// `Metadata-Flavor: Google` header (`shared/docs/providers.md` §3.1(a)). The VM's access scopes cap what the token
/// may do. The request goes through the transport given; keep HTTP proxies away from it (the metadata server must be
/// reached directly).
public struct MetadataTokenSource: AccessTokenSource, AccessTokenFetcher {
    /// The token's path on the metadata server.
    public static let tokenPath = "/computeMetadata/v1/instance/service-accounts/default/token"

    private let host: String
    private let transport: any HTTPTransport
    private let clock: any WallClock
    private let logger: Logger
    private let retry: RetryPolicy

    /// - Parameters:
    ///   - host: `host[:port]` of the metadata server (`GCE_METADATA_HOST`, default `metadata.google.internal`).
    ///   - transport: sends the request.
    ///   - clock: sleeps the retry backoff.
    ///   - timeout: seconds for one request (the metadata server answers in milliseconds on Compute Engine).
    /// Seconds for one token request.
    let timeout: Double

    public init(
        host: String = "metadata.google.internal", transport: any HTTPTransport, clock: any WallClock,
        logger: Logger = .silent, retry: RetryPolicy = .init(), timeout: Double = 10
    ) {
        self.host = host.trimmed
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.retry = retry
    }

    /// A new token from the metadata server, uncached.
    public func token(forceRefresh: Bool) async throws -> Secret { try await fetchToken().token }

    /// Asks the metadata server for a token.
    /// - Throws: `AccessTokenError`: `.unreachable` off Compute Engine, `.refused` when the VM has no service account.
    public func fetchToken() async throws -> FetchedAccessToken {
        let source = "the metadata server \(host)"
        guard GCETokenSupport.isHostPort(host), let url = URL(string: "http://\(host)\(Self.tokenPath)") else {
            throw AccessTokenError(
                .refused, "GCE_METADATA_HOST=\"\(host.prefix(100))\" is not a host[:port]; fix or unset it")
        }
        let request = HTTPRequest(
            method: "GET", url: url, headers: ["Metadata-Flavor": "Google", "Accept": "application/json"],
            timeout: timeout)
        let response: HTTPResponse
        do {
            response = try await retry.send(
                request, through: transport, clock: clock, logger: logger, label: "gcp token")
        } catch let error as HTTPTransportError {
            throw AccessTokenError(
                .unreachable,
                "cannot reach \(source) (\(error)); outside Compute Engine set GCP_ACCESS_TOKEN or "
                    + "GOOGLE_APPLICATION_CREDENTIALS")
        }
        switch response.status {
        case 200..<300:
            return try GCETokenSupport.token(from: response, source: source)
        case 400, 401, 403, 404:
            throw AccessTokenError(
                .refused,
                "\(source) gave no token (HTTP \(response.status): \(GCETokenSupport.errorDetail(response))); check "
                    + "that the VM has a service account with the cloud-platform or compute scope")
        default:
            throw AccessTokenError(
                .failed(status: response.status),
                "\(source) answered HTTP \(response.status) (\(GCETokenSupport.errorDetail(response))); the next "
                    + "cycle will try again")
        }
    }
}

// MARK: - Service account

/// A token for a service account, from its JSON key (`GOOGLE_APPLICATION_CREDENTIALS`, `shared/docs/providers.md`
/// §3.1(c)): an RS256 JWT signed with the key, exchanged at the key's `token_uri`.
///
/// - JWT: header `{"alg":"RS256","kid":<private_key_id>,"typ":"JWT"}`, claims `{"aud":<token_uri>,
///   "exp":iat+3600,"iat":now,"iss":<client_email>,"scope":"https://www.googleapis.com/auth/cloud-platform"}`, each
///   base64url without padding; `now` comes from the injected clock.
/// - Signature: `openssl dgst -sha256 -sign <keyfile> -binary <datafile>` through the `CommandRunner`
///   (RSASSA-PKCS1-v1_5 with SHA-256). The private key is never in argv: it is written to a file created with
///   `O_CREAT|O_EXCL` and mode 0600, in a directory made by `mkdtemp` (mode 0700) inside the scratch directory, and the
///   file and directory are removed as soon as openssl has run, whatever happened. The child's environment is only
///   `PATH` and `LANG=C`.
/// - Exchange: `POST <token_uri>` with the form
///   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`. An OAuth error
///   (`{"error":"invalid_grant","error_description":...}`) is `.refused` with the description.
/// - `token_uri` must be https; plain http is accepted only for a loopback host (tests), so the assertion never
///   crosses a network in clear text.
/// - No error or log line holds the key, the JWT or the token; a key file that cannot be parsed is named, never shown.
public struct ServiceAccountTokenSource: AccessTokenSource, AccessTokenFetcher {
    /// The scope requested.
    public static let scope = "https://www.googleapis.com/auth/cloud-platform"
    /// The token endpoint used when the key has no `token_uri`.
    public static let defaultTokenURI = "https://oauth2.googleapis.com/token"
    /// The JWT's lifetime in seconds (Google's maximum).
    public static let assertionLifetime = 3600
    /// The OAuth grant type of a JWT assertion.
    public static let grantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    private let keyFile: String
    private let transport: any HTTPTransport
    private let runner: any CommandRunner
    private let clock: any WallClock
    private let scratchDirectory: String
    private let openssl: String
    private let logger: Logger
    private let retry: RetryPolicy

    /// - Parameters:
    ///   - keyFile: the service-account JSON key's path.
    ///   - transport: sends the token request.
    ///   - runner: runs openssl.
    ///   - clock: the JWT's `iat`, and the retry backoff.
    ///   - scratchDirectory: a private directory (the daemon's `STATE_DIR`) in which the key is briefly written.
    ///   - openssl: the openssl program, a path or a name looked up on `/usr/local/bin:/usr/bin:/bin`.
    public init(
        keyFile: String, transport: any HTTPTransport, runner: any CommandRunner, clock: any WallClock,
        scratchDirectory: String, openssl: String = "openssl", logger: Logger = .silent, retry: RetryPolicy = .init()
    ) {
        self.keyFile = keyFile
        self.transport = transport
        self.runner = runner
        self.clock = clock
        self.scratchDirectory = scratchDirectory
        self.openssl = openssl
        self.logger = logger
        self.retry = retry
    }

    /// A new token, uncached.
    public func token(forceRefresh: Bool) async throws -> Secret { try await fetchToken().token }

    /// Signs a JWT and exchanges it for a token.
    /// - Throws: `AccessTokenError`: `.refused` for an unusable key file, a failed signature or an OAuth refusal.
    public func fetchToken() async throws -> FetchedAccessToken {
        let key = try loadKey()
        let tokenURL = key.tokenURL
        let issuedAt = Int(clock.now().timeIntervalSince1970.rounded(.down))
        let signingInput = try Self.signingInput(
            clientEmail: key.clientEmail, keyID: key.keyID, audience: tokenURL.absoluteString, issuedAt: issuedAt)
        let signature = try await sign(signingInput, privateKeyPEM: key.privateKeyPEM)
        let assertion = signingInput + "." + GCETokenSupport.base64URL(signature)

        let body =
            "grant_type=" + ProviderText.percentEncoded(Self.grantType) + "&assertion="
            + ProviderText.percentEncoded(assertion)
        let request = HTTPRequest(
            method: "POST", url: tokenURL,
            headers: ["Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"],
            body: Data(body.utf8), timeout: 30)
        let source = "the token endpoint \(GCETokenSupport.hostDescription(tokenURL))"
        let response: HTTPResponse
        do {
            response = try await retry.send(
                request, through: transport, clock: clock, logger: logger, label: "gcp token")
        } catch let error as HTTPTransportError {
            throw AccessTokenError(.unreachable, "cannot reach \(source) (\(error)); check the network")
        }
        switch response.status {
        case 200..<300:
            return try GCETokenSupport.token(from: response, source: source)
        case 400, 401, 403:
            throw AccessTokenError(
                .refused,
                "\(source) refused the service-account key \(keyFile) (\(GCETokenSupport.errorDetail(response))); "
                    + "check that the key is valid and not disabled, and that the system clock is right")
        default:
            throw AccessTokenError(
                .failed(status: response.status),
                "\(source) answered HTTP \(response.status) (\(GCETokenSupport.errorDetail(response))); the next "
                    + "cycle will try again")
        }
    }

    /// `base64url(header).base64url(claims)`, the text that is signed.
    static func signingInput(clientEmail: String, keyID: String?, audience: String, issuedAt: Int) throws -> String {
        struct Header: Encodable {
            var alg = "RS256"
            var kid: String?
            var typ = "JWT"
        }
        struct Claims: Encodable {
            var aud: String
            var exp: Int
            var iat: Int
            var iss: String
            var scope: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = try encoder.encode(Header(kid: keyID))
        let claims = try encoder.encode(
            Claims(aud: audience, exp: issuedAt + assertionLifetime, iat: issuedAt, iss: clientEmail, scope: scope))
        return GCETokenSupport.base64URL(header) + "." + GCETokenSupport.base64URL(claims)
    }

    // MARK: Key file

    private struct LoadedKey {
        var clientEmail: String
        var keyID: String?
        var privateKeyPEM: String
        var tokenURL: URL
    }

    private func loadKey() throws -> LoadedKey {
        let hint = "check GOOGLE_APPLICATION_CREDENTIALS"
        guard let data = FileManager.default.contents(atPath: keyFile) else {
            throw AccessTokenError(
                .refused, "cannot read the service-account key file \(keyFile); \(hint) and the file's permissions")
        }
        guard let key = try? JSONDecoder().decode(GCEServiceAccountKey.self, from: data) else {
            throw AccessTokenError(.refused, "the file \(keyFile) is not a JSON service-account key; \(hint)")
        }
        if let type = key.type, type != "service_account" {
            throw AccessTokenError(
                .refused,
                "the file \(keyFile) holds credentials of type \"\(type.prefix(40))\", not a service-account key; "
                    + "\(hint), or use GCP_ACCESS_TOKEN")
        }
        guard let email = key.clientEmail?.trimmed, !email.isEmpty, email.allSatisfy({ !$0.isWhitespace }) else {
            throw AccessTokenError(.refused, "the service-account key \(keyFile) has no client_email; \(hint)")
        }
        guard let pem = key.privateKey, pem.contains("-----BEGIN"), pem.contains("PRIVATE KEY-----") else {
            throw AccessTokenError(.refused, "the service-account key \(keyFile) has no PEM private_key; \(hint)")
        }
        let uri = key.tokenURI?.trimmed.isEmpty == false ? key.tokenURI!.trimmed : Self.defaultTokenURI
        guard let url = URL(string: uri), GCETokenSupport.isAllowedTokenURL(url) else {
            throw AccessTokenError(
                .refused,
                "the token_uri of the service-account key \(keyFile) is not an https URL; \(hint)")
        }
        let keyID = key.privateKeyID.flatMap { $0.trimmed.isEmpty ? nil : $0.trimmed }
        return LoadedKey(clientEmail: email, keyID: keyID, privateKeyPEM: pem, tokenURL: url)
    }

    // MARK: Signing

    /// The RS256 signature of `input`, made by openssl from a private 0600 copy of the key that is removed after.
    private func sign(_ input: String, privateKeyPEM: String) async throws -> Data {
        let directory = try GCEScratch.makePrivateDirectory(in: scratchDirectory)
        let keyPath = directory + "/key.pem"
        let inputPath = directory + "/signing-input"
        defer { GCEScratch.remove(files: [keyPath, inputPath], directory: directory) }
        try GCEScratch.writePrivateFile(keyPath, Data(privateKeyPEM.utf8))
        try GCEScratch.writePrivateFile(inputPath, Data(input.utf8))
        let command = Command(
            executable: openssl, arguments: ["dgst", "-sha256", "-sign", keyPath, "-binary", inputPath],
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"], timeout: 30, outputLimit: 64 << 10)
        let result: CommandResult
        do {
            result = try await runner.run(command)
        } catch let error as CommandError {
            switch error {
            case .cancelled:
                throw CancellationError()
            case .launchFailed(_, let detail):
                throw AccessTokenError(
                    .refused,
                    "cannot run openssl to sign the service-account token request (\(detail)); install openssl or "
                        + "set GCP_ACCESS_TOKEN")
            case .timedOut, .outputTooLarge:
                throw AccessTokenError(
                    .refused, "openssl failed to sign the service-account token request (\(error)); check openssl")
            }
        }
        guard result.status == 0, !result.signaled, !result.stdout.isEmpty else {
            let stderr = String(decoding: result.stderr.prefix(400), as: UTF8.self)
            let firstLine = stderr.split(whereSeparator: \.isNewline).first.map { String($0.prefix(200)) } ?? ""
            let shown = firstLine.isEmpty ? "exit status \(result.status)" : firstLine
            throw AccessTokenError(
                .refused,
                "openssl could not sign with the private key of \(keyFile) (\(shown)); check that private_key is a "
                    + "valid RSA key")
        }
        return result.stdout
    }
}

// MARK: - The documented order

/// Builds the token source the configuration asks for.
public enum GCETokenSource {
    /// The first configured of, in order: `GCP_ACCESS_TOKEN` (static); `GOOGLE_APPLICATION_CREDENTIALS` (service
    /// account, cached); the metadata server at `GCE_METADATA_HOST` (cached).
    /// - Parameters:
    ///   - settings: the parsed `GCP_*` settings.
    ///   - transport: sends token requests.
    ///   - runner: runs openssl for the service-account signature.
    ///   - clock: token expiry and retry backoff.
    ///   - scratchDirectory: where the private key is briefly written (the daemon's `STATE_DIR`).
    /// - Returns: one source; share it between the providers of every project.
    public static func make(
        settings: GCPSettings, transport: any HTTPTransport, runner: any CommandRunner, clock: any WallClock,
        scratchDirectory: String, logger: Logger = .silent
    ) -> any AccessTokenSource {
        if let token = settings.accessToken, !token.value.isEmpty {
            return StaticTokenSource(token)
        }
        if let file = settings.credentialsFile, !file.trimmed.isEmpty {
            let source = ServiceAccountTokenSource(
                keyFile: file, transport: transport, runner: runner, clock: clock, scratchDirectory: scratchDirectory,
                logger: logger)
            return CachingTokenSource(source, clock: clock)
        }
        let source = MetadataTokenSource(
            host: settings.metadataHost, transport: transport, clock: clock, logger: logger)
        return CachingTokenSource(source, clock: clock)
    }
}

// MARK: - Helpers

/// Parsing and encoding shared by the token sources.
enum GCETokenSupport {
    /// The token of a 2xx answer; a missing or unusable `access_token` is `.malformed` (the body is never shown).
    static func token(from response: HTTPResponse, source: String) throws -> FetchedAccessToken {
        guard let answer = try? JSONDecoder().decode(GCETokenResponse.self, from: response.body) else {
            throw AccessTokenError(.malformed, "\(source) answered with something that is not a JSON token")
        }
        guard let token = answer.accessToken, isHeaderSafe(token) else {
            throw AccessTokenError(.malformed, "\(source) answered without a usable access_token")
        }
        if let type = answer.tokenType, type.lowercased() != "bearer" {
            throw AccessTokenError(.malformed, "\(source) issued a token of type \(type.prefix(20)), not Bearer")
        }
        let lifetime = answer.expiresIn.flatMap { $0 > 0 ? $0 : nil }
        return FetchedAccessToken(token: Secret(token), expiresIn: lifetime)
    }

    /// The OAuth or API error text of an answer, else the start of its body; never more than 200 characters.
    static func errorDetail(_ response: HTTPResponse) -> String {
        let envelope = try? JSONDecoder().decode(GCEErrorEnvelope.self, from: response.body)
        return ProviderText.errorDetail(envelope?.detail, of: response)
    }

    /// A token goes into a header: visible ASCII only.
    static func isHeaderSafe(_ token: String) -> Bool {
        !token.isEmpty && token.utf8.count <= 8192 && token.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`, with nothing that could change the URL's meaning.
    static func isHostPort(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 255
            && text.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || [UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]")]
                        .contains($0)
            }
    }

    /// https anywhere; http only to a loopback host.
    static func isAllowedTokenURL(_ url: URL) -> Bool {
        guard let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else { return false }
        if scheme == "https" { return true }
        return scheme == "http" && ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased())
    }

    /// `host` or `host:port` of a URL, for messages.
    static func hostDescription(_ url: URL) -> String {
        let host = url.host ?? "unknown host"
        return url.port.map { "\(host):\($0)" } ?? host
    }

    /// Base64url without padding (RFC 7515 §2).
    static func base64URL(_ data: Data) -> String {
        var text = data.base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }
}

/// Private scratch files for the signing step: a `mkdtemp` directory (0700) holding files created 0600 with `O_EXCL`.
enum GCEScratch {
    /// A new directory `gce-jwt.XXXXXX` inside `parent`, mode 0700.
    static func makePrivateDirectory(in parent: String) throws -> String {
        var template = Array((parent + "/gce-jwt.XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, let path = mkdtemp(base) else { return nil }
            return String(cString: path)
        }
        guard let made else {
            let reason = String(cString: strerror(errno))
            throw AccessTokenError(
                .refused,
                "cannot create a private directory in \(parent) to sign the service-account token request (\(reason)); "
                    + "check STATE_DIR and its permissions")
        }
        _ = chmod(made, 0o700)
        return made
    }

    /// Creates `path` (which must not exist) with mode 0600 exactly and writes `data`; on failure the file is removed.
    static func writePrivateFile(_ path: String, _ data: Data) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(0o600))
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw AccessTokenError(
                .refused, "cannot create a private file in \(parent(of: path)) (\(reason)); check STATE_DIR")
        }
        var failure: String?
        if fchmod(fd, 0o600) != 0 { failure = String(cString: strerror(errno)) }
        if failure == nil {
            let bytes = [UInt8](data)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 {
                    failure = String(cString: strerror(errno))
                    break
                }
                offset += written
            }
        }
        close(fd)
        if let failure {
            unlink(path)
            throw AccessTokenError(
                .refused, "cannot write a private file in \(parent(of: path)) (\(failure)); check STATE_DIR")
        }
    }

    /// Removes the files (missing ones are fine) and then the directory.
    static func remove(files: [String], directory: String) {
        for file in files { unlink(file) }
        rmdir(directory)
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}
