import CostOptimizer
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads one HTTP/1.1 request from a connected socket for `LoopbackHTTPServer`, within fixed bounds.
struct LoopbackRequestReader {
    enum Outcome {
        /// A complete request.
        case request(HTTPRequest)
        /// A request that must be refused with this status.
        case invalid(status: Int, reason: String)
        /// The peer closed, reset or stalled before a request arrived: nothing to answer.
        case closed
    }

    let fd: Int32
    /// `http://127.0.0.1:PORT`, prefixed to the request target.
    let base: String
    var maxHeaderBytes = 64 << 10
    var maxBodyBytes = 8 << 20

    func read() -> Outcome {
        var buffer: [UInt8] = []
        var headerEnd: Int?
        while headerEnd == nil {
            guard buffer.count <= maxHeaderBytes else {
                return .invalid(status: 431, reason: "request headers larger than \(maxHeaderBytes) bytes")
            }
            let searchFrom = max(0, buffer.count - 3)
            guard receive(into: &buffer, upTo: 16 << 10) else {
                return buffer.isEmpty ? .closed : .invalid(status: 400, reason: "incomplete request headers")
            }
            headerEnd = Self.find([13, 10, 13, 10], in: buffer, from: searchFrom)
        }
        guard let headerEnd, headerEnd <= maxHeaderBytes else {
            return .invalid(status: 431, reason: "request headers larger than \(maxHeaderBytes) bytes")
        }
        let head = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[0].allSatisfy({ $0.isUppercase }),
            requestLine[1].hasPrefix("/")
        else {
            return .invalid(status: 400, reason: "malformed request line")
        }
        guard requestLine[2] == "HTTP/1.1" || requestLine[2] == "HTTP/1.0" else {
            return .invalid(status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are served")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                return .invalid(status: 400, reason: "malformed header line")
            }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else {
                return .invalid(status: 400, reason: "malformed header name")
            }
            if let existing = headers[name] {
                headers[name] = existing + ", " + value
            } else {
                headers[name] = value
            }
        }
        let lowered = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $0 + ", " + $1 })
        if lowered["transfer-encoding"] != nil {
            return .invalid(status: 411, reason: "chunked bodies are not accepted; send Content-Length")
        }
        var length = 0
        if let text = lowered["content-length"] {
            guard !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), text.count <= 12,
                let value = Int(text)
            else {
                return .invalid(status: 400, reason: "malformed Content-Length")
            }
            length = value
        }
        guard length <= maxBodyBytes else {
            return .invalid(status: 413, reason: "request body larger than \(maxBodyBytes) bytes")
        }
        if lowered["expect"]?.lowercased() == "100-continue" {
            let interim = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
            _ = interim.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        var body = Array(buffer[(headerEnd + 4)...])
        while body.count < length {
            guard receive(into: &body, upTo: min(64 << 10, length - body.count)) else {
                return .invalid(status: 400, reason: "the body is shorter than Content-Length")
            }
        }
        if body.count > length { body.removeLast(body.count - length) }
        guard let url = URL(string: base + requestLine[1]) else {
            return .invalid(status: 400, reason: "malformed request target")
        }
        let request = HTTPRequest(
            method: String(requestLine[0]), url: url, headers: headers, body: length > 0 ? Data(body) : nil)
        return .request(request)
    }

    /// Appends up to `count` received bytes; false when the peer closed, reset or the read timed out.
    private func receive(into buffer: inout [UInt8], upTo count: Int) -> Bool {
        var chunk = [UInt8](repeating: 0, count: max(1, count))
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received < 0 && errno == EINTR { continue }
            guard received > 0 else { return false }
            buffer.append(contentsOf: chunk[..<received])
            return true
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}
