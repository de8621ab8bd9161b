import CostOptimizer
import CostOptimizerSimulation
import Foundation

// Thin: parse the command and hand over. `demo` runs the simulation; everything else is the daemon's tool.
MallocTuning.useOneArena()  // first, before any other thread allocates (docs/performance.md)
let arguments = Array(CommandLine.arguments.dropFirst())
let environment = ProcessInfo.processInfo.environment
let status: Int32 =
    arguments.first == "demo"
    ? await Demo.main(arguments: Array(arguments.dropFirst()), environment: environment)
    : await CommandLineTool.main(arguments: arguments, environment: environment)
exit(status)
