// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The executables stay position-independent, but their 106,000 relative relocations are packed (DT_RELR): the
/// loader reads a bitmap of a few kilobytes instead of a 2.5 MB table at every start, and keeps none of it
/// resident. lld writes them; glibc 2.36 and later applies them.
let compactRelocations: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux])),
]

let package = Package(
    name: "EdgePlan",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "edgeplan", targets: ["edgeplan"]),
        .library(name: "EdgePlanCore", targets: ["EdgePlanCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(
            name: "EdgePlanCore",
            dependencies: [.product(name: "Yams", package: "Yams"), .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EdgePlanDaemon",
            dependencies: [
                "EdgePlanCore",
                "CSystemd",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "edgeplan",
            dependencies: [
                "EdgePlanCore",
                "EdgePlanDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings,
            linkerSettings: compactRelocations
        ),
        .executableTarget(
            name: "PlannerBenchmark",
            dependencies: ["EdgePlanCore", "EdgePlanDaemon", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/PlannerBenchmark",
            swiftSettings: swiftSettings,
            linkerSettings: compactRelocations
        ),
        .testTarget(
            name: "EdgePlanCoreTests",
            dependencies: ["EdgePlanCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgePlanDaemonTests",
            dependencies: ["EdgePlanDaemon", "EdgePlanCore"],
            swiftSettings: swiftSettings
        ),
    ]
)
