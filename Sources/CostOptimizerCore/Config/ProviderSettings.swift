#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// TensorDock credentials and endpoints (`TENSORDOCK_*`). With a bearer token the v2 API is used; with only the
/// v0 key pair, v0.
public struct TensorDockSettings: Equatable, Sendable {
    /// `TENSORDOCK_API_KEY` (v0 "Authorization ID").
    public var apiKey: Secret?
    /// `TENSORDOCK_API_TOKEN` (v0).
    public var apiToken: Secret?
    /// `TENSORDOCK_BEARER_TOKEN` (v2).
    public var bearerToken: Secret?
    /// `TENSORDOCK_API_URL`, scheme://host[:port]; `/api/v2/...` is appended.
    public var apiURL: URL
    /// `TENSORDOCK_V0_API_URL`, scheme://host[:port]; `/api/v0/...` is appended.
    public var v0APIURL: URL
    /// `TENSORDOCK_SSH_USER`, default `user`.
    public var sshUser: String

    public init(
        apiKey: Secret? = nil, apiToken: Secret? = nil, bearerToken: Secret? = nil,
        apiURL: URL = URL(string: "https://dashboard.tensordock.com")!,
        v0APIURL: URL = URL(string: "https://marketplace.tensordock.com")!, sshUser: String = "user"
    ) {
        self.apiKey = apiKey
        self.apiToken = apiToken
        self.bearerToken = bearerToken
        self.apiURL = apiURL
        self.v0APIURL = v0APIURL
        self.sshUser = sshUser
    }

    /// True when the v2 API is used.
    public var usesV2: Bool { bearerToken != nil }
}

/// Google Compute Engine settings (`GCP_*`, `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST`).
public struct GCPSettings: Equatable, Sendable {
    /// `GCP_PROJECT_ID`: one or more projects.
    public var projects: [String]
    /// `GCP_ZONE`: limit to one zone; nil lists every zone through the aggregated list.
    public var zone: String?
    /// `GCP_SSH_USER`, default the local user name (`USER`), else `root`.
    public var sshUser: String
    /// `GCP_API_URL`, scheme://host[:port]; `/compute/v1/projects/...` is appended.
    public var apiURL: URL
    /// `GCP_ACCESS_TOKEN`: a static token, tried first.
    public var accessToken: Secret?
    /// `GOOGLE_APPLICATION_CREDENTIALS`: path of a service-account JSON key, tried second.
    public var credentialsFile: String?
    /// `GCE_METADATA_HOST`: the metadata server's host[:port], default `metadata.google.internal`; tried last.
    public var metadataHost: String
    /// `GCP_PRICE_OVERRIDES`: $/GPU-hour by accelerator type, replacing the built-in table's entries.
    public var priceOverrides: [String: Double]

    public init(
        projects: [String], zone: String? = nil, sshUser: String = "root",
        apiURL: URL = URL(string: "https://compute.googleapis.com")!, accessToken: Secret? = nil,
        credentialsFile: String? = nil, metadataHost: String = "metadata.google.internal",
        priceOverrides: [String: Double] = [:]
    ) {
        self.projects = projects
        self.zone = zone
        self.sshUser = sshUser
        self.apiURL = apiURL
        self.accessToken = accessToken
        self.credentialsFile = credentialsFile
        self.metadataHost = metadataHost
        self.priceOverrides = priceOverrides
    }
}
