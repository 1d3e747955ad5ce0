// swift-tools-version:6.1
import PackageDescription

/// The test script builds with EDGEPLAN_WARNINGS_AS_ERRORS=1: a warning in the project's own targets (never in a
/// dependency's) fails the build.
let warningsAsErrors: [SwiftSetting] =
    Context.environment["EDGEPLAN_WARNINGS_AS_ERRORS"] == "1" ? [.unsafeFlags(["-warnings-as-errors"])] : []

let swiftSettings: [SwiftSetting] =
    [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ] + warningsAsErrors

/// The executables stay position-independent, but their 106,000 relative relocations are packed (DT_RELR): at every
/// start the loader reads a 20 KB bitmap instead of a 2.5 MB table, and the table's pages no longer count in the
/// daemon's memory. lld writes them; glibc applies them from 2.36 on and refuses such a binary before that, so an
/// older C library (Ubuntu 22.04, JetPack 6) gets the plain table.
let compactRelocations: [LinkerSetting] =
    libcAppliesPackedRelocations
    ? [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux]))]
    : []

#if canImport(Glibc)
import Glibc
/// Whether the C library built against applies packed relocations (glibc 2.36 and later).
var libcAppliesPackedRelocations: Bool {
    // confstr gives "glibc 2.36".
    var text = [CChar](repeating: 0, count: 64)
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &text, text.count) > 0 else { return false }
    let name = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let version = name.split(separator: " ").last?.split(separator: ".").compactMap { Int($0) } ?? []
    return version.count >= 2 && (version[0], version[1]) >= (2, 36)
}
#else
var libcAppliesPackedRelocations: Bool { false }
#endif

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
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(
            name: "EdgePlanCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"), .product(name: "RealModule", package: "swift-numerics"),
            ],
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
        // The engine edge: HTTP to OpenAI-compatible engines, for the collectors and the CLI. The daemon does not
        // link it (it stays off IP).
        .target(
            name: "EdgePlanEngine",
            dependencies: [
                "EdgePlanCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The fleet edge: robots' runs and outcomes uploaded to PostgreSQL, pooled there, versions pulled back. A
        // separate process (`edgeplan fleet sync`) uses it; the daemon does not (it stays off IP).
        .target(
            name: "EdgePlanFleet",
            dependencies: [
                "EdgePlanCore",
                "EdgePlanDaemon",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "edgeplan",
            dependencies: [
                "EdgePlanCore",
                "EdgePlanDaemon",
                "EdgePlanEngine",
                "EdgePlanFleet",
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
        .executableTarget(
            name: "FleetBenchmark",
            dependencies: [
                "EdgePlanCore", "EdgePlanDaemon", "EdgePlanFleet", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/FleetBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgePlanCoreTests",
            dependencies: ["EdgePlanCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgePlanEngineTests",
            dependencies: ["EdgePlanEngine", "EdgePlanCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgePlanDaemonTests",
            dependencies: ["EdgePlanDaemon", "EdgePlanCore"],
            swiftSettings: swiftSettings
        ),
    ]
)
