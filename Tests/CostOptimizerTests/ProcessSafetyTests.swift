import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The executable under the faults a process meets: a second copy, kill -9, systemd's notification socket.
@Suite("Process safety", .serialized)
struct ProcessSafetyTests {
    /// Starts the executable in the background with stderr to a file.
    static func launch(_ stage: Stage, _ arguments: [String], _ extra: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = Stage.executable
        process.arguments = arguments
        process.environment = stage.environment.merging(extra) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<600 where !condition() { try await Task.sleep(nanoseconds: 25_000_000) }
    }

    @Test("a second daemon on the same STATE_DIR exits at once with a clear line")
    func twoDaemons() async throws {
        let stage = try Stage()
        stage.addRunning(id: 801, label: nil, port: 44001, utilization: 50)
        let first = try Self.launch(stage, ["run"], ["CHECK_INTERVAL": "1"])
        defer { if first.isRunning { first.terminate() } }
        try await Self.waitUntil { FileManager.default.fileExists(atPath: stage.directory + "/state/state.json") }
        let (status, _, stderr) = try await stage.run(["--run-once"])
        #expect(status == ExitStatus.locked)
        #expect(stderr.contains("another cost-optimizer"))
        #expect(stderr.contains(stage.directory + "/state"))
        first.terminate()
        try await Self.waitUntil { !first.isRunning }
        let (after, _, _) = try await stage.run(["--run-once"])
        #expect(after == 0)  // the lock went with the first daemon
    }

    @Test("kill -9 during a delete: the restart reconciles it by reading, and there is never a second DELETE")
    func killDuringDelete() async throws {
        let stage = try Stage()
        stage.vast.add(
            SimulatedVastInstance(
                id: 802, actualStatus: "stopped", intendedStatus: "stopped", curState: "stopped",
                startDate: Date().timeIntervalSince1970 - 48 * 3600))
        stage.control.deleteDelay.store(2, ordering: .relaxed)
        let env = ["CHECK_INTERVAL": "1", "DELETE_THRESHOLD_HOURS": "0", "MIN_INSTANCE_AGE_HOURS": "0"]
        let daemon = try Self.launch(stage, ["run"], env)
        try await Self.waitUntil { stage.control.deletesStarted.load(ordering: .relaxed) > 0 }
        try #require(stage.control.deletesStarted.load(ordering: .relaxed) == 1)
        kill(daemon.processIdentifier, SIGKILL)  // the DELETE is in flight; the provider applies it anyway
        try await Self.waitUntil { !daemon.isRunning }
        try await Self.waitUntil { stage.vast.instances.isEmpty }

        let journalPath = stage.directory + "/state/actions.jsonl"
        let torn = try String(contentsOfFile: journalPath, encoding: .utf8)
        #expect(torn.contains(#""result":"intent""#) && !torn.contains(#""result":"ok""#))

        stage.control.deleteDelay.store(0, ordering: .relaxed)
        let (status, _, stderr) = try await stage.run(["--run-once"], environment: env)
        #expect(status == 0)
        #expect(stderr.contains("Interrupted delete reconciled vast/802: gone"))
        #expect(stage.control.deletesStarted.load(ordering: .relaxed) == 1)  // never a second DELETE
        let journal = try String(contentsOfFile: journalPath, encoding: .utf8)
        #expect(journal.contains(#""result":"reconciled""#))
        // The state file is readable after the kill.
        let data = try Data(contentsOf: URL(fileURLWithPath: stage.directory + "/state/state.json"))
        #expect(try JSONSerialization.jsonObject(with: data) is [String: Any])
    }

    @Test("under systemd: READY=1, STATUS= each cycle, WATCHDOG=1 from progress, STOPPING=1 on SIGTERM")
    func notifySocket() async throws {
        let stage = try Stage()
        stage.addRunning(id: 803, label: nil, port: 44003, utilization: 50)
        let socketPath = stage.directory + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        var messages: [String] = []
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count <= 0 { break }
                messages.append(String(decoding: buffer[..<count], as: UTF8.self))
            }
        }
        let daemon = try Self.launch(
            stage, ["run"], ["CHECK_INTERVAL": "1", "NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "2000000"])
        for _ in 0..<400 where messages.filter({ $0.hasPrefix("STATUS=") }).count < 2 {
            try await Task.sleep(nanoseconds: 25_000_000)
            drain()
        }
        daemon.terminate()
        try await Self.waitUntil { !daemon.isRunning }
        drain()
        #expect(daemon.terminationStatus == 0)
        #expect(messages.first == "READY=1")
        #expect(messages.contains { $0.hasPrefix("STATUS=Cycle complete: 1 running, 0 paused, 0 errors") })
        #expect(messages.contains("WATCHDOG=1"))
        #expect(messages.last == "STOPPING=1")
    }
}
