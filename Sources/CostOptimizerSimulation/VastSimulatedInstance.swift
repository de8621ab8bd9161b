import Foundation

/// One instance of a `VastSimulator` account, with the fields the daemon reads (all as Vast names them, camel-cased).
///
/// The defaults describe a running single-RTX-4090 instance reachable through a Vast-style ssh proxy; pass
/// distinct `sshHost`/`sshPort` values where the ssh side is simulated too.
public struct SimulatedVastInstance: Sendable, Equatable {
    /// The contract id.
    public var id: Int
    public var label: String?
    /// Container status: running, loading, stopped, frozen, exited, …; nil is JSON null.
    public var actualStatus: String?
    /// The user's target: running, stopped or frozen.
    public var intendedStatus: String?
    /// The contract: running, stopped or unloaded.
    public var curState: String?
    public var gpuName: String?
    public var numGPUs: Int?
    /// Dollars per hour while running.
    public var dphTotal: Double?
    /// Unix epoch seconds.
    public var startDate: Double?
    public var sshHost: String?
    public var sshPort: Int?
    public var geolocation: String?

    public init(
        id: Int, label: String? = nil, actualStatus: String? = "running", intendedStatus: String? = "running",
        curState: String? = "running", gpuName: String? = "RTX 4090", numGPUs: Int? = 1, dphTotal: Double? = 0.35,
        startDate: Double? = 1_699_740_800, sshHost: String? = "ssh5.vast.ai", sshPort: Int? = 22_000,
        geolocation: String? = "Sweden, SE"
    ) {
        self.id = id
        self.label = label
        self.actualStatus = actualStatus
        self.intendedStatus = intendedStatus
        self.curState = curState
        self.gpuName = gpuName
        self.numGPUs = numGPUs
        self.dphTotal = dphTotal
        self.startDate = startDate
        self.sshHost = sshHost
        self.sshPort = sshPort
        self.geolocation = geolocation
    }

    /// The instance as Vast serialises it, with realistic extra fields (`ports` only while running).
    func jsonObject() -> [String: Any] {
        let any: (Any?) -> Any = { $0 ?? NSNull() }
        let running = actualStatus == "running"
        let gpuRAM = 24_564
        var object: [String: Any] = [
            "id": id,
            "label": any(label),
            "actual_status": any(actualStatus),
            "intended_status": any(intendedStatus),
            "cur_state": any(curState),
            "next_state": any(intendedStatus),
            "status_msg": running ? "success, running pytorch/pytorch" : NSNull(),
            "gpu_name": any(gpuName),
            "num_gpus": any(numGPUs),
            "gpu_ram": gpuRAM,
            "gpu_totalram": gpuRAM * (numGPUs ?? 1),
            "gpu_util": running ? 0.0 : NSNull(),
            "dph_total": any(dphTotal),
            "dph_base": any(dphTotal.map { ($0 * 0.9 * 1000).rounded() / 1000 }),
            "storage_cost": 0.15,
            "storage_total_cost": 0.0104,
            "start_date": any(startDate),
            "end_date": any(startDate.map { $0 + 30 * 86_400 }),
            "uptime_mins": running ? 42 : NSNull(),
            "ssh_host": any(sshHost),
            "ssh_port": any(sshPort),
            "ssh_idx": "5",
            "public_ipaddr": "203.0.113.\(id % 254 + 1)",
            "direct_port_start": 40_000,
            "direct_port_end": 40_019,
            "machine_id": 10_000 + id % 5_000,
            "host_id": 500 + id % 100,
            "geolocation": any(geolocation),
            "image_uuid": "pytorch/pytorch:latest",
            "disk_space": 50.0,
            "reliability2": 0.9981,
            "is_bid": false,
            "instance": [
                "gpuCostPerHour": running ? (dphTotal ?? 0) : 0, "diskHour": 0.0104,
                "totalHour": running ? (dphTotal ?? 0) : 0.0104,
            ],
        ]
        if running {
            object["ports"] = ["22/tcp": [["HostIp": "0.0.0.0", "HostPort": "40000"]]]
        }
        return object
    }
}
