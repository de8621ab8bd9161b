import CostOptimizerCore
import Foundation

// Google Compute Engine response shapes (`shared/docs/providers.md` §3). Every field is optional and decoded
// leniently: a field of an unexpected type reads as nil instead of failing the whole listing. Whether a missing field
// matters is decided by the mapping (`GCEProvider.instance(from:scope:)`), never by the decoder. A value that is not a
// JSON object where an object is required (an instance, a scope) does fail its page: such a page is not trusted.

/// `GET .../aggregated/instances`: one page of every zone's instances.
struct GCEAggregatedInstanceList: Decodable {
    var kind: String?
    /// Keyed by scope (`zones/us-central1-a`); nil when absent. A value that is not an object of scopes fails decoding.
    var items: [String: GCEInstancesScopedList]?
    var nextPageToken: String?
    /// Scopes that could not be reached with `returnPartialSuccess=true`; their instances are missing from the page.
    var unreachables: [String]?

    enum CodingKeys: String, CodingKey {
        case kind, items, nextPageToken, unreachables
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = c.gceString(.kind)
        items = try c.decodeIfPresent([String: GCEInstancesScopedList].self, forKey: .items)
        nextPageToken = c.gceString(.nextPageToken)
        unreachables = (try? c.decodeIfPresent([GCELenientString].self, forKey: .unreachables))?.compactMap(\.value)
    }
}

/// One scope of an aggregated page: `instances`, or only a `warning` (`NO_RESULTS_ON_PAGE`, `UNREACHABLE`).
struct GCEInstancesScopedList: Decodable {
    var instances: [GCEInstanceDTO]?
    var warning: GCEWarning?

    enum CodingKeys: String, CodingKey {
        case instances, warning
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        instances = try c.decodeIfPresent([GCEInstanceDTO].self, forKey: .instances)
        warning = try? c.decodeIfPresent(GCEWarning.self, forKey: .warning)
    }
}

/// `GET .../zones/{zone}/instances`: one page of one zone; `items` is omitted when the zone is empty.
struct GCEInstanceList: Decodable {
    var kind: String?
    var items: [GCEInstanceDTO]?
    var nextPageToken: String?
    var warning: GCEWarning?

    enum CodingKeys: String, CodingKey {
        case kind, items, nextPageToken, warning
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = c.gceString(.kind)
        items = try c.decodeIfPresent([GCEInstanceDTO].self, forKey: .items)
        nextPageToken = c.gceString(.nextPageToken)
        warning = try? c.decodeIfPresent(GCEWarning.self, forKey: .warning)
    }
}

/// A list or scope warning (`{"code":"NO_RESULTS_ON_PAGE","message":"..."}`) and an entry of an Operation's
/// `error.errors`: both are a code and a message.
typealias GCEWarning = GCECodeMessage
typealias GCEOperationErrorEntry = GCECodeMessage

/// `{"code": "...", "message": "..."}`, both optional.
struct GCECodeMessage: Decodable {
    var code: String?
    var message: String?

    enum CodingKeys: String, CodingKey {
        case code, message
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = c.gceString(.code)
        message = c.gceString(.message)
    }
}

/// One Compute Engine instance, only the fields the daemon reads.
struct GCEInstanceDTO: Decodable {
    /// A uint64 as a string; a JSON number is accepted too.
    var id: String?
    var name: String?
    /// A URL; its last path segment is the zone.
    var zone: String?
    var status: String?
    var statusMessage: String?
    /// A URL; its last path segment is the machine type (`a2-highgpu-8g`).
    var machineType: String?
    var creationTimestamp: String?
    var lastStartTimestamp: String?
    var guestAccelerators: [GCEAccelerator]?
    var networkInterfaces: [GCENetworkInterface]?
    var labels: [String: String]?
    var tags: [String]?
    var deletionProtection: Bool?

    enum CodingKeys: String, CodingKey {
        case id, name, zone, status, statusMessage, machineType, creationTimestamp, lastStartTimestamp
        case guestAccelerators, networkInterfaces, labels, tags, deletionProtection
    }

    enum TagsKeys: String, CodingKey {
        case items
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = c.gceString(.id)
        name = c.gceString(.name)
        zone = c.gceString(.zone)
        status = c.gceString(.status)
        statusMessage = c.gceString(.statusMessage)
        machineType = c.gceString(.machineType)
        creationTimestamp = c.gceString(.creationTimestamp)
        lastStartTimestamp = c.gceString(.lastStartTimestamp)
        guestAccelerators = try? c.decodeIfPresent([GCEAccelerator].self, forKey: .guestAccelerators)
        networkInterfaces = try? c.decodeIfPresent([GCENetworkInterface].self, forKey: .networkInterfaces)
        if let map = try? c.decodeIfPresent([String: GCELenientString].self, forKey: .labels) {
            labels = map.compactMapValues(\.value)
        }
        if let tagContainer = try? c.nestedContainer(keyedBy: TagsKeys.self, forKey: .tags) {
            tags = (try? tagContainer.decodeIfPresent([GCELenientString].self, forKey: .items))?.compactMap(\.value)
        }
        // Present but unreadable counts as protected: doubt about a protection never allows a deletion.
        let protectionIsNull = (try? c.decodeNil(forKey: .deletionProtection)) ?? false
        if c.contains(.deletionProtection), !protectionIsNull {
            deletionProtection = c.gceBool(.deletionProtection) ?? true
        }
    }
}

/// `guestAccelerators[]`: `{"acceleratorType": ".../acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}`.
struct GCEAccelerator: Decodable {
    var acceleratorType: String?
    var acceleratorCount: Int?

    enum CodingKeys: String, CodingKey {
        case acceleratorType, acceleratorCount
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        acceleratorType = c.gceString(.acceleratorType)
        acceleratorCount = c.gceInt(.acceleratorCount)
    }
}

/// `networkInterfaces[]`, with the external addresses in `accessConfigs[].natIP`.
struct GCENetworkInterface: Decodable {
    var networkIP: String?
    var accessConfigs: [GCEAccessConfig]?

    enum CodingKeys: String, CodingKey {
        case networkIP, accessConfigs
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        networkIP = c.gceString(.networkIP)
        accessConfigs = try? c.decodeIfPresent([GCEAccessConfig].self, forKey: .accessConfigs)
    }
}

/// One access config; `natIP` is absent while a stopped instance has no ephemeral address.
struct GCEAccessConfig: Decodable {
    var natIP: String?

    enum CodingKeys: String, CodingKey {
        case natIP
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        natIP = c.gceString(.natIP)
    }
}

/// A zonal Operation, as returned by stop, delete and the operation polls.
struct GCEOperation: Decodable {
    var name: String?
    /// `PENDING`, `RUNNING` or `DONE`.
    var status: String?
    var operationType: String?
    /// Present when the operation failed, even when `status` is `DONE`.
    var error: GCEOperationError?
    var httpErrorStatusCode: Int?
    var httpErrorMessage: String?

    enum CodingKeys: String, CodingKey {
        case name, status, operationType, error, httpErrorStatusCode, httpErrorMessage
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = c.gceString(.name)
        status = c.gceString(.status)
        operationType = c.gceString(.operationType)
        if c.contains(.error), !((try? c.decodeNil(forKey: .error)) ?? false) {
            // An error that cannot be read is still an error: never let it pass as a success.
            error = (try? c.decode(GCEOperationError.self, forKey: .error)) ?? GCEOperationError(errors: [])
        }
        httpErrorStatusCode = c.gceInt(.httpErrorStatusCode)
        httpErrorMessage = c.gceString(.httpErrorMessage)
    }

    /// True when the operation reports a failure: an `error` member, or an HTTP error status of 400 or more.
    var failed: Bool {
        error != nil || (httpErrorStatusCode ?? 0) >= 400
    }

    /// The failure's messages, `CODE: message; ...`, else the HTTP error, else a generic sentence.
    var failureDetail: String {
        let parts = (error?.errors ?? []).compactMap { entry -> String? in
            switch (entry.code, entry.message) {
            case (let code?, let message?): "\(code): \(message)"
            case (let code?, nil): code
            case (nil, let message?): message
            case (nil, nil): nil
            }
        }
        if !parts.isEmpty { return parts.joined(separator: "; ") }
        if let message = httpErrorMessage, !message.isEmpty {
            return httpErrorStatusCode.map { "HTTP \($0) \(message)" } ?? message
        }
        return "the operation reports an error without a message"
    }
}

/// `error` of an Operation: `{"errors":[{"code":"RESOURCE_NOT_READY","message":"..."}]}`.
struct GCEOperationError: Decodable {
    var errors: [GCEOperationErrorEntry]

    init(errors: [GCEOperationErrorEntry]) {
        self.errors = errors
    }

    enum CodingKeys: String, CodingKey {
        case errors
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errors = (try? c.decodeIfPresent([GCEOperationErrorEntry].self, forKey: .errors)) ?? []
    }
}

/// Google's API error envelope,
/// `{"error":{"code":404,"message":"...","errors":[{"reason":"notFound"}],"status":"NOT_FOUND"}}`, and the OAuth error
/// shape, `{"error":"invalid_grant","error_description":"..."}`.
struct GCEErrorEnvelope: Decodable {
    var code: Int?
    var message: String?
    var status: String?
    var reasons: [String] = []
    /// The OAuth form: `error` is a string.
    var oauthError: String?
    var oauthDescription: String?

    enum CodingKeys: String, CodingKey {
        case error
        case errorDescription = "error_description"
    }

    struct Body: Decodable {
        var code: Int?
        var message: String?
        var status: String?
        var reasons: [String]

        enum CodingKeys: String, CodingKey {
            case code, message, status, errors
        }

        struct Entry: Decodable {
            var reason: String?

            enum CodingKeys: String, CodingKey {
                case reason
            }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                reason = c.gceString(.reason)
            }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            code = c.gceInt(.code)
            message = c.gceString(.message)
            status = c.gceString(.status)
            reasons = ((try? c.decodeIfPresent([Entry].self, forKey: .errors)) ?? []).compactMap(\.reason)
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let body = try? c.decode(Body.self, forKey: .error) {
            code = body.code
            message = body.message
            status = body.status
            reasons = body.reasons
        } else {
            oauthError = c.gceString(.error)
        }
        oauthDescription = c.gceString(.errorDescription)
    }

    /// True when any `errors[].reason` is one of these (compared case-insensitively).
    func hasReason(_ candidates: Set<String>) -> Bool {
        reasons.contains { candidates.contains($0.lowercased()) }
    }

    /// The message (API form) or `error: error_description` (OAuth form), whichever is present.
    var detail: String? {
        if let message, !message.isEmpty { return message }
        switch (oauthError, oauthDescription) {
        case (let error?, let description?): return "\(error): \(description)"
        case (let error?, nil): return error
        case (nil, let description?): return description
        case (nil, nil): return status
        }
    }
}

/// The token endpoint's and the metadata server's answer: `{"access_token","expires_in","token_type"}`.
struct GCETokenResponse: Decodable {
    var accessToken: String?
    var expiresIn: Double?
    var tokenType: String?

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case expiresIn = "expires_in"
        case tokenType = "token_type"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        accessToken = c.gceString(.accessToken)
        expiresIn = c.gceDouble(.expiresIn)
        tokenType = c.gceString(.tokenType)
    }
}

/// The fields of a service-account JSON key the daemon uses. Never printed: `private_key` is the secret.
struct GCEServiceAccountKey: Decodable {
    var type: String?
    var clientEmail: String?
    var privateKey: String?
    var privateKeyID: String?
    var tokenURI: String?

    enum CodingKeys: String, CodingKey {
        case type
        case clientEmail = "client_email"
        case privateKey = "private_key"
        case privateKeyID = "private_key_id"
        case tokenURI = "token_uri"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = c.gceString(.type)
        clientEmail = c.gceString(.clientEmail)
        privateKey = c.gceString(.privateKey)
        privateKeyID = c.gceString(.privateKeyID)
        tokenURI = c.gceString(.tokenURI)
    }
}

/// A string that may arrive as a string or a number; anything else reads as nil.
struct GCELenientString: Decodable {
    var value: String?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let string = try? c.decode(String.self) {
            value = string
        } else if let int = try? c.decode(Int64.self) {
            value = String(int)
        } else if let uint = try? c.decode(UInt64.self) {
            value = String(uint)
        } else {
            value = nil
        }
    }
}

/// RFC 3339 timestamps as Compute Engine writes them: `2013-12-13T10:43:58.782-08:00`, `2024-05-01T12:00:00Z`.
public enum GCETimestamp {
    /// The instant, or nil for anything that is not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with valid fields.
    ///
    /// Parsed by hand, so the result does not depend on a formatter's locale or on which optional parts it expects;
    /// the fraction keeps every digit given (to the precision of `Date`).
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.trimmed.utf8)
        var index = 0
        func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<(index + count)] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
            expect("Tt "), let hour = digits(2), expect(":"), let minute = digits(2), expect(":"),
            let second = digits(2)
        else { return nil }
        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var numerator = 0
            var denominator = 1
            var count = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if count < 9 {  // nanoseconds; further digits are below Date's precision
                    numerator = numerator * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                    denominator *= 10
                }
                index += 1
                count += 1
            }
            guard count > 0 else { return nil }
            fraction = Double(numerator) / Double(denominator)
        }
        var offsetSeconds = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
            index += 1
        } else {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard expect("+-"), let offsetHours = digits(2), expect(":"), let offsetMinutes = digits(2),
                offsetHours <= 23, offsetMinutes <= 59
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        }
        guard index == bytes.count, CivilCalendar.isValid(year: year, month: month, day: day),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        let days = CivilCalendar.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}

extension KeyedDecodingContainer {
    fileprivate func gceString(_ key: Key) -> String? {
        (try? decodeIfPresent(GCELenientString.self, forKey: key))?.value
    }

    fileprivate func gceInt(_ key: Key) -> Int? {
        if let int = try? decodeIfPresent(Int.self, forKey: key) { return int }
        if let double = try? decodeIfPresent(Double.self, forKey: key), double.isFinite, double == double.rounded(),
            abs(double) < 9e15
        {
            return Int(double)
        }
        if let string = try? decodeIfPresent(String.self, forKey: key) { return Int(string.trimmed) }
        return nil
    }

    fileprivate func gceDouble(_ key: Key) -> Double? {
        if let double = try? decodeIfPresent(Double.self, forKey: key) { return double.isFinite ? double : nil }
        if let string = try? decodeIfPresent(String.self, forKey: key) {
            return Double(string.trimmed).flatMap { $0.isFinite ? $0 : nil }
        }
        return nil
    }

    fileprivate func gceBool(_ key: Key) -> Bool? {
        if let bool = try? decodeIfPresent(Bool.self, forKey: key) { return bool }
        if let string = try? decodeIfPresent(String.self, forKey: key) {
            switch string.trimmed.lowercased() {
            case "true": return true
            case "false": return false
            default: return nil
            }
        }
        return nil
    }
}
