import CostOptimizer
import CostOptimizerSimulation
import Foundation

// Thin: parse the command and hand over. `demo` and `simulate` run simulations; everything else is the daemon's tool.
MallocTuning.useOneArena()  // first, before any other thread allocates (docs/performance.md)
let arguments = Array(CommandLine.arguments.dropFirst())
let environment = ProcessInfo.processInfo.environment
let status: Int32 =
    switch arguments.first {
    case "demo": await Demo.main(arguments: Array(arguments.dropFirst()), environment: environment)
    case "simulate": await Simulate.main(arguments: Array(arguments.dropFirst()), environment: environment)
    default: await CommandLineTool.main(arguments: arguments, environment: environment)
    }
exit(status)
