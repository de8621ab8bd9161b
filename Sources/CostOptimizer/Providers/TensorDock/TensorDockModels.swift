import CostOptimizerCore
import Foundation

// TensorDock response shapes (`shared/docs/providers.md` §2). The two APIs disagree with each other and their own
// docs disagree about envelopes, so every answer is first decoded into a loose JSON value (`TensorDockJSON`) and the
// fields are then looked up by name, each accepted in whatever JSON type carries it sensibly. A field of an unexpected
// type reads as nil. Whether a missing field matters is decided by the mapping (`TensorDockProvider`), never here.

/// Any JSON value, decoded without a schema.
enum TensorDockJSON: Decodable, Equatable {
    case object([String: TensorDockJSON])
    case array([TensorDockJSON])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let bool = try? c.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? c.decode(Double.self) {
            self = .number(number)
        } else if let string = try? c.decode(String.self) {
            self = .string(string)
        } else if let array = try? c.decode([TensorDockJSON].self) {
            self = .array(array)
        } else if let object = try? c.decode([String: TensorDockJSON].self) {
            self = .object(object)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
        }
    }

    /// The body decoded as JSON, or nil when it is not JSON.
    static func decode(_ data: Data) -> TensorDockJSON? {
        try? JSONDecoder().decode(TensorDockJSON.self, from: data)
    }

    /// The member `key` of an object, nil for JSON null, a missing key or a value that is not an object.
    subscript(key: String) -> TensorDockJSON? {
        guard case .object(let object) = self, let value = object[key], value != .null else { return nil }
        return value
    }

    /// The first of `keys` that is present and not null.
    func first(_ keys: String...) -> TensorDockJSON? {
        for key in keys {
            if let value = self[key] { return value }
        }
        return nil
    }

    var object: [String: TensorDockJSON]? {
        if case .object(let object) = self { return object }
        return nil
    }

    var array: [TensorDockJSON]? {
        if case .array(let array) = self { return array }
        return nil
    }

    /// A string as is, or an integral number written out (`12345`).
    var string: String? {
        switch self {
        case .string(let string): string
        case .number(let number): TensorDockJSON.integral(number).map(String.init)
        default: nil
        }
    }

    /// A trimmed, non-empty string.
    var text: String? {
        guard let string = string?.trimmed, !string.isEmpty else { return nil }
        return string
    }

    /// A finite number, or a string holding one (`"0.350"`).
    var double: Double? {
        switch self {
        case .number(let number): number.isFinite ? number : nil
        case .string(let string): Double(string.trimmed).flatMap { $0.isFinite ? $0 : nil }
        default: nil
        }
    }

    /// An integral number, or a string holding one (`"22"`, `"1.0"`).
    var int: Int? {
        double.flatMap(TensorDockJSON.integral)
    }

    /// A boolean, `"true"`/`"false"`, or 0/1.
    var bool: Bool? {
        switch self {
        case .bool(let bool): bool
        case .number(let number): number != 0
        case .string(let string):
            switch string.trimmed.lowercased() {
            case "true": true
            case "false": false
            default: nil
            }
        default: nil
        }
    }

    static func integral(_ double: Double) -> Int? {
        guard double.isFinite, double == double.rounded(), abs(double) < 9e15 else { return nil }
        return Int(double)
    }
}

/// One VM as either API lists it, reduced to what the daemon reads. Built by `init(v0:id:)` or `init(v2:)`.
struct TensorDockVMDTO: Equatable {
    /// The VM id (a UUID in every document); checked for path safety by the provider, not here.
    var id: String?
    var name: String?
    var status: String?
    var gpus: TensorDockGPUs?
    /// Dollars per hour while running: v0 `total_price` (a string), v2 `rateHourly`.
    var pricePerHour: Double?
    /// Dollars per hour of storage (v0 `storage_price`, a string), where listed.
    var storagePricePerHour: Double?
    var createdAt: Date?
    var ipAddress: String?
    var dedicatedIPAddress: String?
    /// External port → internal port.
    var portForwards: [TensorDockPortForward]
    var zone: String?

    /// A VM of the v0 `/client/list` object; `id` is its key there.
    init(v0 object: TensorDockJSON, id: String) {
        self.id = id
        name = object["name"]?.string
        status = object["status"]?.string
        gpus = object["specs"]?["gpu"].flatMap(TensorDockGPUs.init(json:))
        pricePerHour = object["total_price"]?.double
        storagePricePerHour = object["storage_price"]?.double
        createdAt = TensorDockTimestamp.parse(object["timestamp_creation"])
        ipAddress = object["ip_address"]?.text
        dedicatedIPAddress = object["dedicated_ip_address"]?.text
        portForwards = TensorDockPortForward.parse(object["port_forwards"])
        zone = TensorDockVMDTO.zone(object)
    }

    /// A v2 instance: attributes nested under `attributes` (JSON:API style) or at the top, `attributes` winning
    /// where both have a field.
    init(v2 item: TensorDockJSON) {
        var merged = item.object ?? [:]
        for (key, value) in item["attributes"]?.object ?? [:] where value != .null {
            merged[key] = value
        }
        let fields = TensorDockJSON.object(merged)
        id = item["id"]?.text ?? fields["id"]?.text
        name = fields["name"]?.string
        status = fields["status"]?.string
        gpus = (fields["resources"]?["gpus"] ?? fields["gpus"]).flatMap(TensorDockGPUs.init(json:))
        pricePerHour = fields.first("rateHourly", "rate_hourly")?.double
        storagePricePerHour = fields.first("storagePrice", "storage_price")?.double
        createdAt = TensorDockTimestamp.parse(fields.first("createdAt", "created_at", "timestamp_creation"))
        ipAddress = fields.first("ipAddress", "ip_address")?.text
        dedicatedIPAddress = fields.first("dedicatedIpAddress", "dedicated_ip_address")?.text
        portForwards = TensorDockPortForward.parse(fields.first("portForwards", "port_forwards"))
        zone = TensorDockVMDTO.zone(fields)
    }

    /// `city, state, country` where any is listed, else `location`.
    static func zone(_ object: TensorDockJSON) -> String? {
        let parts = ["city", "state", "country"].compactMap { object[$0]?.text }
        if !parts.isEmpty { return parts.joined(separator: ", ") }
        return object["location"]?.text
    }
}

/// One port forward: traffic to `externalPort` on the VM's IP reaches `internalPort` inside it.
struct TensorDockPortForward: Equatable {
    var externalPort: Int
    var internalPort: Int

    /// v0 `port_forwards` is an object whose **key is the external port** and whose value is the internal one
    /// (`{"20022": "22"}`); v2 `portForwards` is an array of `{"internal_port", "external_port"}` (camel case
    /// accepted too). Entries that are not two valid ports are dropped.
    static func parse(_ json: TensorDockJSON?) -> [TensorDockPortForward] {
        let valid: (Int?) -> Int? = { port in port.flatMap { (1...65535).contains($0) ? $0 : nil } }
        var out: [TensorDockPortForward] = []
        if let object = json?.object {
            for (key, value) in object {
                guard let externalPort = valid(Int(key.trimmed)), let internalPort = valid(value.int) else { continue }
                out.append(TensorDockPortForward(externalPort: externalPort, internalPort: internalPort))
            }
        } else if let array = json?.array {
            for entry in array {
                guard let externalPort = valid(entry.first("external_port", "externalPort", "external")?.int),
                    let internalPort = valid(entry.first("internal_port", "internalPort", "internal")?.int)
                else { continue }
                out.append(TensorDockPortForward(externalPort: externalPort, internalPort: internalPort))
            }
        }
        return out.sorted { ($0.externalPort, $0.internalPort) < ($1.externalPort, $1.internalPort) }
    }
}

/// The GPUs of a VM: a model name (several models joined with `, `) and the total count.
struct TensorDockGPUs: Equatable {
    var model: String?
    /// Nil when an entry gave no count; 0 when the VM plainly has no GPU.
    var count: Int?

    /// Accepts, in this order:
    /// - one entry `{"type": "geforcertx4090-pcie-24gb", "amount": 1}` (v0, as TensorDock's dashboard template types
    ///   it; `count` and `model`/`v0Name`/`name` are accepted too);
    /// - an object keyed by model, each value `{"amount": n}`, `{"count": n, "v0Name": ...}` or a bare number (v0 as the
    ///   issue describes it, v2 `resources.gpus`);
    /// - an array of entries (other v2 clients).
    init?(json: TensorDockJSON) {
        var entries: [(model: String?, count: Int?)] = []
        let countOf = { (entry: TensorDockJSON) in entry.first("amount", "count", "quantity")?.int }
        let modelOf = { (entry: TensorDockJSON) in entry.first("v0Name", "model", "type", "name")?.text }
        if let object = json.object {
            if let count = countOf(json) {
                entries.append((modelOf(json), count))
            } else {
                for (key, value) in object {
                    let count = value.int ?? countOf(value)
                    entries.append((modelOf(value) ?? key.trimmed, count))
                }
            }
        } else if let array = json.array {
            for entry in array where entry.object != nil {
                entries.append((modelOf(entry), countOf(entry)))
            }
        } else {
            return nil
        }
        let present = entries.filter { $0.count != 0 }
        let models = Set(present.compactMap(\.model).filter { !$0.isEmpty })
        model = models.isEmpty ? nil : models.sorted().joined(separator: ", ")
        if present.isEmpty {
            count = 0
        } else if present.allSatisfy({ $0.count != nil }) {
            count = present.reduce(0) { $0 + ($1.count ?? 0) }
        } else {
            count = nil
        }
    }
}

/// Creation times in whatever format TensorDock writes them (v0 `timestamp_creation` is undocumented).
///
/// Accepted: Unix epoch seconds or milliseconds (a number or a numeric string); ISO 8601 / RFC 3339 with `T` or a
/// space between date and time, optional seconds and fraction, and `Z`, `UTC`, `GMT`, `±hh:mm`, `±hhmm`, `±hh` or
/// no zone; RFC 1123 (`Tue, 14 Nov 2023 22:13:20 GMT`). A time without a zone is read as UTC. Anything else, and any
/// instant before 2010 or after 2099, is nil: an instance of unknown age is never deleted.
enum TensorDockTimestamp {
    static let earliest: Double = 1_262_304_000  // 2010-01-01T00:00:00Z
    static let latest: Double = 4_102_444_800  // 2100-01-01T00:00:00Z

    static func parse(_ json: TensorDockJSON?) -> Date? {
        switch json {
        case .number(let number)?: return epoch(number)
        case .string(let string)?: return parse(string)
        default: return nil
        }
    }

    static func parse(_ text: String) -> Date? {
        let text = text.trimmed
        guard !text.isEmpty, text.count <= 64 else { return nil }
        if let number = Double(text) {
            return epoch(number)
        }
        if let seconds = iso(Array(text.utf8)) ?? rfc1123(text) {
            return plausible(seconds)
        }
        return nil
    }

    private static func epoch(_ number: Double) -> Date? {
        guard number.isFinite, number > 0 else { return nil }
        return plausible(number >= 1e11 ? number / 1000 : number)
    }

    private static func plausible(_ seconds: Double) -> Date? {
        guard seconds >= earliest, seconds < latest else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }

    /// `yyyy-MM-dd[T ]HH:mm[:ss[.fff]][zone]`.
    private static func iso(_ b: [UInt8]) -> Double? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var value = 0
            for k in i..<(i + n) {
                guard b[k] >= 48, b[k] <= 57 else { return nil }
                value = value * 10 + Int(b[k] - 48)
            }
            i += n
            return value
        }
        func take(_ byte: UInt8) -> Bool {
            guard i < b.count, b[i] == byte else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), take(45), let month = digits(2), take(45), let day = digits(2) else { return nil }
        guard take(84) || take(116) || take(32) else { return nil }  // T, t or a space
        guard let hour = digits(2), take(58), let minute = digits(2) else { return nil }
        var second = 0.0
        if take(58) {
            guard let whole = digits(2) else { return nil }
            second = Double(whole)
            if take(46) || take(44) {  // . or ,
                let start = i
                while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
                guard i > start, let fraction = Double("0." + String(decoding: b[start..<i], as: UTF8.self)) else {
                    return nil
                }
                second += fraction
            }
        }
        while i < b.count, b[i] == 32 { i += 1 }
        let zone = String(decoding: b[i...], as: UTF8.self)
        guard let offset = zoneOffset(zone) else { return nil }
        return civil(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
            .map { $0 - offset }
    }

    /// Seconds east of UTC for `Z`, `UTC`, `GMT`, `±hh:mm`, `±hhmm`, `±hh` or nothing; nil for anything else.
    private static func zoneOffset(_ zone: String) -> Double? {
        switch zone.uppercased() {
        case "", "Z", "UTC", "GMT", "UT": return 0
        default: break
        }
        let bytes = Array(zone.utf8)
        guard let sign = bytes.first, sign == 43 || sign == 45 else { return nil }  // + or -
        let rest = bytes.dropFirst().filter { $0 != 58 }  // drop ':'
        guard rest.count == 2 || rest.count == 4, rest.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let value = rest.map { Int($0 - 48) }
        let hours = value[0] * 10 + value[1]
        let minutes = rest.count == 4 ? value[2] * 10 + value[3] : 0
        guard hours <= 14, minutes <= 59 else { return nil }
        let seconds = Double(hours * 3600 + minutes * 60)
        return sign == 45 ? -seconds : seconds
    }

    /// `[Day, ]dd Mon yyyy HH:mm:ss zone`.
    private static func rfc1123(_ text: String) -> Double? {
        var parts = text.split(separator: " ").map(String.init)
        if let first = parts.first, first.hasSuffix(",") { parts.removeFirst() }
        guard parts.count == 5 || parts.count == 4 else { return nil }
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        guard let day = Int(parts[0]), let monthIndex = months.firstIndex(of: parts[1].lowercased()),
            let year = Int(parts[2]), parts[2].count == 4
        else { return nil }
        let clock = parts[3].split(separator: ":").map { Int($0) }
        guard clock.count == 3, let hour = clock[0], let minute = clock[1], let second = clock[2] else { return nil }
        guard let offset = zoneOffset(parts.count == 5 ? parts[4] : "") else { return nil }
        return civil(
            year: year, month: monthIndex + 1, day: day, hour: hour, minute: minute, second: Double(second)
        ).map { $0 - offset }
    }

    /// Seconds since 1970 of a UTC civil time, nil when a field is out of range (days from civil, proleptic
    /// Gregorian).
    private static func civil(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Double) -> Double? {
        guard CivilCalendar.isValid(year: year, month: month, day: day), (0...23).contains(hour),
            (0...59).contains(minute), second >= 0, second < 61
        else { return nil }
        let days = CivilCalendar.days(year: year, month: month, day: day)
        return Double(days * 86_400 + hour * 3600 + minute * 60) + second
    }
}

/// The readable part of an error body, decoded loosely: `{"error": "...", "message": "...", "status": n}` (v2, where
/// `error` may also be an object with a `message`), `{"success": false, "error": "..."}` (v0), `{"msg"|"detail": ...}`,
/// `{"errors": [{"message"|"detail": ...}]}` or a top-level array `[{"message": ...}]`.
enum TensorDockErrorBody {
    static func detail(_ json: TensorDockJSON) -> String? {
        switch json {
        case .string(let string):
            return string.trimmed.isEmpty ? nil : string.trimmed
        case .array(let array):
            return array.lazy.compactMap(detail).first
        case .object:
            let error = json["error"].flatMap { $0.text ?? $0.first("message", "detail", "msg")?.text }
            let message = json.first("message", "msg", "detail")?.text
            let listed = json["errors"].flatMap(detail)
            switch (error, message) {
            case (let error?, let message?) where error != message: return "\(error): \(message)"
            case (let error?, _): return error
            case (nil, let message?): return message
            case (nil, nil): return listed
            }
        default:
            return nil
        }
    }
}
