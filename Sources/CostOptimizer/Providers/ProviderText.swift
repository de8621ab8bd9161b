import CostOptimizerCore
import Foundation

/// Text helpers every provider shares: RFC 3986 percent-encoding, masking secrets a server might echo back, and the
/// short detail of an error answer that goes into a `ProviderError` or an `AccessTokenError`.
enum ProviderText {
    /// What a masked secret is replaced with.
    static let redactionMark = "<redacted>"

    /// The most characters of an error detail or body kept for a message.
    static let detailLimit = 200

    /// Percent-encodes every UTF-8 byte but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), as upper-case
    /// `%XX`; good for a query value, a form field and an opaque page token alike.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `text` with every occurrence of each secret replaced by `<redacted>`, in case a server echoes one back.
    ///
    /// Secrets shorter than 4 characters are left alone (masking them would mangle ordinary text). Secrets are
    /// masked in the order given; with `alsoPercentEncoded`, each secret's percent-encoded form is masked right
    /// after it, when it differs (a secret sent in a form body may come back encoded).
    static func masked(_ text: String, secrets: [String], alsoPercentEncoded: Bool = false) -> String {
        var text = text
        for secret in secrets where secret.count >= 4 {
            text = text.replacingOccurrences(of: secret, with: redactionMark)
            guard alsoPercentEncoded else { continue }
            let encoded = percentEncoded(secret)
            if encoded != secret { text = text.replacingOccurrences(of: encoded, with: redactionMark) }
        }
        return text
    }

    /// The start of an answer's body, trimmed, at most `detailLimit` characters (`…` marks a cut); `empty body`
    /// when there is nothing. Not masked: callers mask it.
    static func bodyStart(_ response: HTTPResponse) -> String {
        let text = response.bodyText(limit: detailLimit).trimmed
        return text.isEmpty ? "empty body" : text
    }

    /// The error message a provider found in an answer's body (`detail`), cut to `detailLimit` characters, else
    /// `bodyStart(response)`. Not masked: callers mask it.
    static func errorDetail(_ detail: String?, of response: HTTPResponse) -> String {
        if let detail { return String(detail.prefix(detailLimit)) }
        return bodyStart(response)
    }
}
