import CostOptimizerCore
import Foundation

// Vast.ai response shapes (`shared/docs/providers.md` §1). Every field is optional and decoded leniently: a field of an
// unexpected type reads as nil instead of failing the whole listing. Whether a missing field matters is decided by the
// mapping (`VastProvider.instance(from:)`), never by the decoder.

/// `GET /api/v1/instances/` and `GET /api/v0/instances/?owner=me`: one page of instances.
struct VastInstancePage: Decodable {
    var success: Bool?
    var error: String?
    var msg: String?
    /// Nil when the key is absent or not an array: that is a malformed answer, not an empty account.
    var instances: [VastInstanceDTO]?
    /// v1 only: the `after_token` of the next page; nil, empty or absent on the last page.
    var nextToken: String?

    enum CodingKeys: String, CodingKey {
        case success, error, msg, instances
        case nextToken = "next_token"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        success = c.lenientBool(.success)
        error = c.lenientString(.error)
        msg = c.lenientString(.msg)
        instances = try? c.decodeIfPresent([VastInstanceDTO].self, forKey: .instances)
        nextToken = c.lenientString(.nextToken)
    }
}

/// One Vast instance (a "contract"), only the fields the daemon reads.
struct VastInstanceDTO: Decodable {
    /// The contract id; Vast sends an int, but a string or an integral float is accepted.
    var id: String?
    var label: String?
    var actualStatus: String?
    var intendedStatus: String?
    var curState: String?
    var gpuName: String?
    var numGPUs: Int?
    var dphTotal: Double?
    /// Storage $/h (`storage_total_cost`).
    var storageTotalCost: Double?
    /// Unix epoch seconds, fractional.
    var startDate: Double?
    var sshHost: String?
    var sshPort: Int?
    var publicIPAddress: String?
    var ports: VastPorts?
    var geolocation: String?

    enum CodingKeys: String, CodingKey {
        case id, label, ports, geolocation
        case actualStatus = "actual_status"
        case intendedStatus = "intended_status"
        case curState = "cur_state"
        case gpuName = "gpu_name"
        case numGPUs = "num_gpus"
        case dphTotal = "dph_total"
        case storageTotalCost = "storage_total_cost"
        case startDate = "start_date"
        case sshHost = "ssh_host"
        case sshPort = "ssh_port"
        case publicIPAddress = "public_ipaddr"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = c.lenientInt(.id).map(String.init) ?? c.lenientString(.id).flatMap { UInt64($0.trimmed).map(String.init) }
        label = c.lenientString(.label)
        actualStatus = c.lenientString(.actualStatus)
        intendedStatus = c.lenientString(.intendedStatus)
        curState = c.lenientString(.curState)
        gpuName = c.lenientString(.gpuName)
        numGPUs = c.lenientInt(.numGPUs)
        dphTotal = c.lenientDouble(.dphTotal)
        storageTotalCost = c.lenientDouble(.storageTotalCost)
        startDate = c.lenientDouble(.startDate)
        sshHost = c.lenientString(.sshHost)
        sshPort = c.lenientInt(.sshPort)
        publicIPAddress = c.lenientString(.publicIPAddress)
        ports = try? c.decodeIfPresent(VastPorts.self, forKey: .ports)
        geolocation = c.lenientString(.geolocation)
    }
}

/// `ports`: a Docker-style map on v1 (`{"22/tcp":[{"HostIp":"0.0.0.0","HostPort":"40022"}]}`, `HostPort` a string),
/// an int array in older documents. Present only while the instance runs.
enum VastPorts: Decodable, Equatable {
    case map([String: [VastPortBinding]])
    case list([Int])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let map = try? c.decode([String: [VastPortBinding]].self) {
            self = .map(map)
        } else if let list = try? c.decode([VastLenientInt].self) {
            self = .list(list.compactMap(\.value))
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "ports is neither a map nor an array")
        }
    }

    /// The host port that reaches the container's port 22, from the map form only.
    var directSSHPort: Int? {
        guard case .map(let map) = self else { return nil }
        return map["22/tcp"]?.lazy.compactMap(\.hostPort).first
    }
}

/// One binding of a `ports` map entry.
struct VastPortBinding: Decodable, Equatable {
    var hostIP: String?
    var hostPort: Int?

    enum CodingKeys: String, CodingKey {
        case hostIP = "HostIp"
        case hostPort = "HostPort"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostIP = c.lenientString(.hostIP)
        hostPort = c.lenientInt(.hostPort)
    }
}

/// The envelope of a mutating call (`PUT`/`DELETE /api/v0/instances/{id}/`) and of most errors:
/// `{"success": false, "error": "no_such_instance", "msg": "..."}`; some endpoints say `message` or `detail`.
struct VastEnvelope: Decodable {
    var success: Bool?
    var error: String?
    var msg: String?

    enum CodingKeys: String, CodingKey {
        case success, error, msg, message, detail
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        success = c.lenientBool(.success)
        error = c.lenientString(.error)
        msg = c.lenientString(.msg) ?? c.lenientString(.message) ?? c.lenientString(.detail)
    }

    /// `error: msg`, or whichever of the two is present.
    var detail: String? {
        switch (error, msg) {
        case (let error?, let msg?): "\(error): \(msg)"
        case (let error?, nil): error
        case (nil, let msg?): msg
        case (nil, nil): nil
        }
    }
}

/// `GET /api/v0/instances/{id}/`: `{"instances": {...}}`, or `{"instances": null}` for an unknown id. An array in
/// `instances` is read too (the entry with the asked id is picked by the provider).
struct VastSingleInstance: Decodable {
    var success: Bool?
    var error: String?
    var msg: String?
    /// True when the key is present and null: the instance does not exist.
    var isNull: Bool
    /// The object, or the array's entries; empty when `instances` is absent or unreadable.
    var candidates: [VastInstanceDTO]

    enum CodingKeys: String, CodingKey {
        case instances, success, error, msg
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        success = c.lenientBool(.success)
        error = c.lenientString(.error)
        msg = c.lenientString(.msg)
        isNull = c.contains(.instances) && ((try? c.decodeNil(forKey: .instances)) ?? false)
        if let one = try? c.decodeIfPresent(VastInstanceDTO.self, forKey: .instances) {
            candidates = [one]
        } else if let many = try? c.decodeIfPresent([VastInstanceDTO].self, forKey: .instances) {
            candidates = many
        } else {
            candidates = []
        }
    }
}

/// An integer that may arrive as a number, an integral float or a numeric string.
struct VastLenientInt: Decodable {
    var value: Int?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let int = try? c.decode(Int.self) {
            value = int
        } else if let double = try? c.decode(Double.self) {
            value = VastLenientInt.integral(double)
        } else if let string = try? c.decode(String.self) {
            value = Int(string.trimmed) ?? Double(string.trimmed).flatMap(VastLenientInt.integral)
        } else {
            value = nil
        }
    }

    static func integral(_ double: Double) -> Int? {
        guard double.isFinite, double == double.rounded(), abs(double) < 9e15 else { return nil }
        return Int(double)
    }
}

extension KeyedDecodingContainer {
    fileprivate func lenientString(_ key: Key) -> String? {
        if let string = try? decodeIfPresent(String.self, forKey: key) { return string }
        if let int = try? decodeIfPresent(Int.self, forKey: key) { return String(int) }
        return nil
    }

    fileprivate func lenientInt(_ key: Key) -> Int? {
        (try? decodeIfPresent(VastLenientInt.self, forKey: key))?.value
    }

    fileprivate func lenientDouble(_ key: Key) -> Double? {
        if let double = try? decodeIfPresent(Double.self, forKey: key) { return double.isFinite ? double : nil }
        if let string = try? decodeIfPresent(String.self, forKey: key) {
            return Double(string.trimmed).flatMap { $0.isFinite ? $0 : nil }
        }
        return nil
    }

    fileprivate func lenientBool(_ key: Key) -> Bool? {
        if let bool = try? decodeIfPresent(Bool.self, forKey: key) { return bool }
        if let int = try? decodeIfPresent(Int.self, forKey: key) { return int != 0 }
        if let string = try? decodeIfPresent(String.self, forKey: key) {
            switch string.lowercased() {
            case "true": return true
            case "false": return false
            default: return nil
            }
        }
        return nil
    }
}
