// swift-tools-version:6.0
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "cost-optimizer",
    products: [
        .executable(name: "cost-optimizer", targets: ["cost-optimizer"]),
        // The benchmark of scale (bin/bench): not part of the tests.
        .executable(name: "cost-optimizer-bench", targets: ["cost-optimizer-bench"]),
    ],
    targets: [
        // Pure: values in, values out. No networking, processes, files, clocks or await.
        .target(name: "CostOptimizerCore", swiftSettings: settings),
        // The loop and the edges: ports, real adapters, providers, sampler, actions, notifier, runtime.
        .target(name: "CostOptimizer", dependencies: ["CostOptimizerCore"], swiftSettings: settings),
        // Loopback provider servers, the demo fleet and fake ssh: used by `demo`, tests and benchmarks.
        .target(name: "CostOptimizerSimulation", dependencies: ["CostOptimizer"], swiftSettings: settings),
        .executableTarget(
            name: "cost-optimizer", dependencies: ["CostOptimizer", "CostOptimizerSimulation"],
            swiftSettings: settings),
        .executableTarget(
            name: "cost-optimizer-bench", dependencies: ["CostOptimizer", "CostOptimizerSimulation"],
            swiftSettings: settings),
        .testTarget(
            name: "CostOptimizerCoreTests", dependencies: ["CostOptimizerCore"],
            resources: [.copy("Fixtures")], swiftSettings: settings),
        .testTarget(
            name: "CostOptimizerTests", dependencies: ["CostOptimizer", "CostOptimizerSimulation"],
            resources: [.copy("Fixtures")], swiftSettings: settings),
    ]
)
