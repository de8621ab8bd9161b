import Foundation

/// One VM of a `TensorDockSimulator` organisation, with the fields the daemon reads.
///
/// The defaults describe a running single-RTX-4090 VM reachable over ssh at `198.51.100.7:20022` (the external port
/// forwarded to 22); pass distinct `ipAddress`/`sshPort` values where the ssh side is simulated too.
public struct SimulatedTensorDockVM: Sendable, Equatable {
    /// The VM id, a UUID in real answers.
    public var id: String
    /// The user's name for the VM; the daemon looks for the protect label in it.
    public var name: String
    /// In v0 spelling: `Running`, `Stopped` (GPU reserved), `StoppedDisassociated` (GPU released), or anything else
    /// (`Outbid`, `Relocating`…). v2 lists it lower-cased.
    public var status: String
    /// The v0 model id, e.g. `geforcertx4090-pcie-24gb`; nil or a count of 0 lists no GPU.
    public var gpuModel: String?
    /// GPUs of `gpuModel`; 0 lists an empty GPU map (a CPU-only VM).
    public var gpuCount: Int
    /// Dollars per hour while running (v0 `total_price`, v2 `rateHourly`).
    public var pricePerHour: Double?
    /// The shared IP whose `sshPort` reaches port 22 (v0 `ip_address`, v2 `ipAddress`).
    public var ipAddress: String?
    /// The external port forwarded to port 22; nil lists no such forward.
    public var sshPort: Int?
    /// A dedicated IP (port 22 reachable directly), listed only when set.
    public var dedicatedIPAddress: String?
    /// v0 `timestamp_creation`, written `yyyy-MM-dd HH:mm:ss` in UTC; v2 lists no creation time (none is documented).
    public var createdAt: Date?
    /// Listed as `location` by both APIs.
    public var location: String?

    public init(
        id: String, name: String = "gpu-vm", status: String = "Running", gpuModel: String? = "geforcertx4090-pcie-24gb",
        gpuCount: Int = 1, pricePerHour: Double? = 0.35, ipAddress: String? = "198.51.100.7", sshPort: Int? = 20_022,
        dedicatedIPAddress: String? = nil, createdAt: Date? = Date(timeIntervalSince1970: 1_699_740_800),
        location: String? = "Chubbuck, Idaho, United States"
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.gpuModel = gpuModel
        self.gpuCount = gpuCount
        self.pricePerHour = pricePerHour
        self.ipAddress = ipAddress
        self.sshPort = sshPort
        self.dedicatedIPAddress = dedicatedIPAddress
        self.createdAt = createdAt
        self.location = location
    }

    /// The VM as v0 `/client/list` serialises it (TensorDock's dashboard template fields), with `specs.gpu` keyed by
    /// model and `port_forwards` keyed by external port.
    func v0JSONObject() -> [String: Any] {
        var gpu: [String: Any] = [:]
        if let gpuModel, gpuCount > 0 { gpu[gpuModel] = ["amount": gpuCount] }
        var forwards: [String: String] = [:]
        if let sshPort {
            forwards[String(sshPort)] = "22"
            forwards[String(sshPort + 1)] = "8888"
        }
        var object: [String: Any] = [
            "status": status,
            "name": name,
            "type": "virtualmachine",
            "hostnode": "hn-\(id.prefix(8))",
            "hostname": "\(name)-\(id.prefix(4))",
            "operating_system": "Ubuntu 22.04 LTS",
            "default_user": "user",
            "cost": pricePerHour ?? 0,
            "compute_price": pricePerHour.map { String(max(0, $0 - 0.01)) } ?? "0",
            "storage_price": "0.01",
            "total_price": pricePerHour.map { String($0) } ?? NSNull(),
            "specs": ["gpu": gpu, "vcpus": 8, "ram": 32, "storage": 100],
            "port_forwards": forwards,
            "cpu_threadscount": 16,
        ]
        object["location"] = location
        object["timestamp_creation"] = createdAt.map(Self.v0Timestamp)
        object["ip_address"] = ipAddress
        object["dedicated_ip_address"] = dedicatedIPAddress
        return object
    }

    /// The VM as v2 serialises it: `{"type", "id", "attributes": {...}}`, or with `flat` every attribute at the top.
    func v2JSONObject(flat: Bool) -> [String: Any] {
        var gpus: [String: Any] = [:]
        if let gpuModel, gpuCount > 0 { gpus[gpuModel] = ["count": gpuCount, "v0Name": gpuModel] }
        var attributes: [String: Any] = [
            "name": name,
            "status": status.lowercased(),
            "portForwards": sshPort.map { [["internal_port": 22, "external_port": $0]] } ?? [],
            "resources": ["vcpu_count": 8, "ram_gb": 32, "storage_gb": 100, "gpus": gpus],
        ]
        attributes["ipAddress"] = ipAddress
        attributes["dedicatedIpAddress"] = dedicatedIPAddress
        attributes["rateHourly"] = pricePerHour
        attributes["location"] = location
        if flat {
            attributes["type"] = "instance"
            attributes["id"] = id
            return attributes
        }
        return ["type": "virtualmachine", "id": id, "attributes": attributes]
    }

    /// `yyyy-MM-dd HH:mm:ss` in UTC.
    static func v0Timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0,
            c.second ?? 0)
    }
}
