import CostOptimizerCore
import Foundation
import Testing

@Suite("nvidia-smi probe parser: line ends")
struct NvidiaSmiLineEndTests {
    @Test("output with CRLF line ends (a terminal's) reads as with LF: the bursty average 7 %")
    func crlf() throws {
        let output = NvidiaSmiParserTests.probeOutput(
            query: try NvidiaSmiParserTests.fixture("h100-query-idle.csv"),
            report: try NvidiaSmiParserTests.fixture("h100-q-utilization-bursty.txt"))
        let lf = NvidiaSmiProbe.parse(output: output, exitStatus: 0)
        #expect(lf.utilization == 7)
        let crlf = output.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(crlf.utf8.count > output.utf8.count)
        #expect(NvidiaSmiProbe.parse(output: crlf, exitStatus: 0) == lf)
    }
}
