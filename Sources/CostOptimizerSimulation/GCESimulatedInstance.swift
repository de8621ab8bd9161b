import Foundation

/// One accelerator entry of a simulated instance (`guestAccelerators[]`).
public struct SimulatedGCEAccelerator: Sendable, Equatable {
    /// The accelerator type name, e.g. `nvidia-tesla-t4`.
    public var type: String
    /// How many are attached.
    public var count: Int

    /// `count` accelerators of `type`.
    public init(_ type: String, _ count: Int) {
        self.type = type
        self.count = count
    }
}

/// One instance of a `GCESimulator` project, with the fields the daemon reads (named as Compute Engine names them).
///
/// The defaults describe a running `n1-standard-8` with one T4 and an external IP in `us-central1-a`.
public struct SimulatedGCEInstance: Sendable, Equatable {
    /// A uint64 in decimal.
    public var id: String
    /// The instance name, used in every action URL.
    public var name: String
    /// The zone name (not a URL), e.g. `us-central1-a`.
    public var zone: String
    /// `RUNNING`, `TERMINATED`, `STOPPING`, …
    public var status: String
    /// The machine type name (not a URL), e.g. `a2-highgpu-8g`.
    public var machineType: String
    /// `guestAccelerators`; empty means the field is omitted.
    public var accelerators: [SimulatedGCEAccelerator]
    /// `networkInterfaces[0].accessConfigs[0].natIP`; nil means no access config at all.
    public var natIP: String?
    /// User labels, `key: value`.
    public var labels: [String: String]
    /// Network tags (`tags.items`).
    public var tags: [String]
    /// When true, DELETE answers 400 and the instance stays.
    public var deletionProtection: Bool
    /// RFC 3339, as Google writes it: `2023-11-01T09:30:00.000-07:00`.
    public var creationTimestamp: String
    /// RFC 3339; nil omits the field.
    public var lastStartTimestamp: String?
    /// The project that owns it.
    public var project: String

    /// An instance; the defaults are a running `n1-standard-8` with one T4 and an external IP.
    public init(
        id: String, name: String, zone: String = "us-central1-a", status: String = "RUNNING",
        machineType: String = "n1-standard-8", accelerators: [SimulatedGCEAccelerator] = [.init("nvidia-tesla-t4", 1)],
        natIP: String? = "203.0.113.10", labels: [String: String] = [:], tags: [String] = [],
        deletionProtection: Bool = false, creationTimestamp: String = "2023-11-01T09:30:00.000-07:00",
        lastStartTimestamp: String? = "2023-11-14T08:00:00.123-08:00", project: String = GCESimulator.defaultProject
    ) {
        self.id = id
        self.name = name
        self.zone = zone
        self.status = status
        self.machineType = machineType
        self.accelerators = accelerators
        self.natIP = natIP
        self.labels = labels
        self.tags = tags
        self.deletionProtection = deletionProtection
        self.creationTimestamp = creationTimestamp
        self.lastStartTimestamp = lastStartTimestamp
        self.project = project
    }

    /// The instance as Compute Engine serialises it, with realistic extra fields; URLs start with `linkBase`.
    func jsonObject(linkBase: String) -> [String: Any] {
        let projectURL = "\(linkBase)/compute/v1/projects/\(project)"
        let zoneURL = "\(projectURL)/zones/\(zone)"
        let region = zone.split(separator: "-").dropLast().joined(separator: "-")
        var accessConfigs: [[String: Any]] = []
        if let natIP {
            accessConfigs.append([
                "kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": natIP,
                "networkTier": "PREMIUM",
            ])
        }
        let hostByte = id.utf8.reduce(0) { ($0 + Int($1)) % 250 } + 2
        let networkInterface: [String: Any] = [
            "kind": "compute#networkInterface",
            "network": "\(projectURL)/global/networks/default",
            "subnetwork": "\(projectURL)/regions/\(region)/subnetworks/default",
            "networkIP": "10.128.0.\(hostByte)",
            "name": "nic0",
            "accessConfigs": accessConfigs,
            "fingerprint": "gl3Kc3Vw0wE=",
            "stackType": "IPV4_ONLY",
        ]
        let bootDisk: [String: Any] = [
            "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
            "source": "\(zoneURL)/disks/\(name)", "deviceName": "persistent-disk-0", "index": 0, "boot": true,
            "autoDelete": true, "diskSizeGb": "200",
        ]
        let serviceAccount: [String: Any] = [
            "email": "123456789012-compute@developer.gserviceaccount.com",
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        ]
        let scheduling: [String: Any] = [
            "onHostMaintenance": "TERMINATE", "automaticRestart": true, "preemptible": false,
            "provisioningModel": "STANDARD",
        ]
        var tagObject: [String: Any] = ["fingerprint": "42WmSpB8rSM="]
        if !tags.isEmpty { tagObject["items"] = tags }
        var object: [String: Any] = [:]
        object["kind"] = "compute#instance"
        object["id"] = id
        object["creationTimestamp"] = creationTimestamp
        object["name"] = name
        object["description"] = ""
        object["tags"] = tagObject
        object["machineType"] = "\(zoneURL)/machineTypes/\(machineType)"
        object["status"] = status
        object["zone"] = zoneURL
        object["canIpForward"] = false
        object["networkInterfaces"] = [networkInterface]
        object["disks"] = [bootDisk]
        object["metadata"] = ["kind": "compute#metadata", "fingerprint": "cNm8Tb1ycKQ="]
        object["serviceAccounts"] = [serviceAccount]
        object["selfLink"] = "\(zoneURL)/instances/\(name)"
        object["scheduling"] = scheduling
        object["cpuPlatform"] = status == "RUNNING" ? "Intel Cascade Lake" : "Unknown CPU Platform"
        object["labelFingerprint"] = "42WmSpB8rSM="
        object["startRestricted"] = false
        object["deletionProtection"] = deletionProtection
        object["fingerprint"] = "qKxE1dXsR2o="
        if !labels.isEmpty { object["labels"] = labels }
        if !accelerators.isEmpty {
            object["guestAccelerators"] = accelerators.map {
                ["acceleratorType": "\(zoneURL)/acceleratorTypes/\($0.type)", "acceleratorCount": $0.count]
                    as [String: Any]
            }
        }
        if let lastStartTimestamp { object["lastStartTimestamp"] = lastStartTimestamp }
        return object
    }
}
