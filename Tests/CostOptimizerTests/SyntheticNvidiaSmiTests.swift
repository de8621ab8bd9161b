import CostOptimizer
import CostOptimizerCore
import CostOptimizerSimulation
import Foundation
import Testing

@Suite("Synthetic nvidia-smi and the fake runner")
struct SyntheticNvidiaSmiTests {
    @Test("the probe parser reads back every value of the synthetic output")
    func roundTrip() throws {
        let gpus = [
            SyntheticGPU(point: 0, average: 1, max: 65),
            SyntheticGPU(
                name: "NVIDIA GeForce RTX 4090", busID: "00000000:0A:00.0", point: 12.5, average: 43, max: 100,
                memoryUsedMiB: 10767, memoryTotalMiB: 24564, temperature: 61),
            SyntheticGPU(point: 100, average: nil, memoryUsedMiB: 1011, temperature: 58),
        ]
        let result = NvidiaSmiProbe.parse(output: SyntheticNvidiaSmi.output(gpus), exitStatus: 0)
        guard case .ok(let readings) = result else {
            Issue.record("expected ok, got \(result)")
            return
        }
        #expect(
            readings == [
                GPUReading(
                    index: 0, busID: "00000000:01:00.0", name: "NVIDIA H100 80GB HBM3", pointUtilization: 0,
                    bufferAverage: 1, bufferMax: 65, memoryUsedMiB: 0, memoryTotalMiB: 81559, temperatureC: 37),
                GPUReading(
                    index: 1, busID: "00000000:0A:00.0", name: "NVIDIA GeForce RTX 4090", pointUtilization: 12.5,
                    bufferAverage: 43, bufferMax: 100, memoryUsedMiB: 10767, memoryTotalMiB: 24564, temperatureC: 61),
                GPUReading(
                    index: 2, busID: "00000000:03:00.0", name: "NVIDIA H100 80GB HBM3", pointUtilization: 100,
                    bufferAverage: nil, bufferMax: nil, memoryUsedMiB: 1011, memoryTotalMiB: 81559, temperatureC: 58),
            ])
        #expect(result.utilization == 100)
    }

    @Test("the synthetic -q report has the capture's layout, line by line, and its values for the same GPU")
    func faithfulToCapture() throws {
        let capture = try GPUSamplerTests.fixture("h100-q-utilization-bursty.txt")
        let synthetic = SyntheticNvidiaSmi.utilizationReport([
            SyntheticGPU(busID: "00000000:00:06.0", point: 0, average: 7, max: 100)
        ])
        let captured = capture.split(separator: "\n", omittingEmptySubsequences: false)
        let made = synthetic.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(made.count == captured.count)
        for (ours, theirs) in zip(made, captured) {
            // Same key, same column for the colon; the values may differ only in the memory buffer's numbers.
            #expect(ours.split(separator: ":").first == theirs.split(separator: ":").first)
            #expect(ours.firstIndex(of: ":").map { ours.distance(from: ours.startIndex, to: $0) }
                == theirs.firstIndex(of: ":").map { theirs.distance(from: theirs.startIndex, to: $0) })
        }
        let differing = zip(made, captured).filter { $0 != $1 }.map { String($0.1) }
        #expect(differing.count <= 2)
        #expect(differing.allSatisfy { $0.contains("Max") || $0.contains("Avg") })
    }

    @Test("each failure variant is a failed sample", arguments: SyntheticNvidiaSmi.Failure.allCases)
    func failures(failure: SyntheticNvidiaSmi.Failure) {
        let result = NvidiaSmiProbe.parse(output: SyntheticNvidiaSmi.failure(failure), exitStatus: 0)
        guard case .failed = result else {
            Issue.record("expected failed, got \(result)")
            return
        }
    }

    @Test("the fake runner hands out its queue first, then its answer, and records every command")
    func fakeRunner() async throws {
        let runner = FakeCommandRunner(queue: [.failure(.timedOut(seconds: 1))])
        runner.setHandler(FakeCommandRunner.everyHost(.success(.probe([.idle]))))
        let command = Command(executable: "ssh", arguments: ["-p", "22", "--", "root@h1", "x"])
        await #expect(throws: CommandError.timedOut(seconds: 1)) { try await runner.run(command) }
        #expect(try await runner.run(command) == .probe([.idle]))
        runner.enqueue(.success(.sshFailure()))
        #expect(try await runner.run(command).status == 255)
        #expect(runner.commands == [command, command, command])
        #expect(FakeCommandRunner.host(of: command) == "h1")
    }

    @Test("an unscripted fake runner never answers idle")
    func unscripted() async {
        await #expect(throws: CommandError.self) {
            try await FakeCommandRunner().run(Command(executable: "ssh", arguments: []))
        }
    }
}
