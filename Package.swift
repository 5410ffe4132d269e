// swift-tools-version: 6.0
// SCEN: continuous model editing with customized expert networks, served over Kafka and HTTP.
import PackageDescription

// Core's numerical kernels use AVX2/FMA/F16C (x86-64-v3, "haswell"); see README. Checked
// arithmetic stays on (no -Ounchecked): the tokenizer and the GGUF reader run on untrusted input,
// and a bug there must trap, not corrupt memory. The kernels read through unsafe pointers, which
// carry no bounds checks in release builds anyway (bench figures in README "Faults").
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "scen",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "scen", targets: ["scen"]),
        .executable(name: "scen-ingest", targets: ["Ingest"]),
        .executable(name: "scen-trainer", targets: ["Trainer"]),
        .executable(name: "scen-router", targets: ["Router"]),
        .library(name: "Core", targets: ["Core"]),
        .library(name: "Storage", targets: ["Storage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // C libraries: a modulemap and a shim header each, nothing else.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // Products on GGUF's quantised blocks: portable C, AVX2, AVX-512 and AVX-512 VNNI paths in
        // one library, chosen at run time from CPUID (each file sets its own target features).
        .target(name: "CQuantKernels"),
        // Pure computation: GGUF, tokenizer, Gemma 3 forward/backward, SCEN.
        .target(name: "Core", dependencies: ["COpenBLAS", "CQuantKernels"], swiftSettings: fastMath),
        // Durable I/O: the libpq and librdkafka owners, repositories, migrations, the event format.
        .target(
            name: "Storage",
            dependencies: ["Core", "CLibPQ", "CRdKafka", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // What the three services share: the consumer loop, the ingest and trainer steps, service
        // options, logging, metrics and shutdown.
        .target(
            name: "Pipeline",
            dependencies: [
                "Core", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        .executableTarget(
            name: "scen",
            dependencies: [
                "Core", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "Ingest",
            dependencies: [
                "Core", "Storage", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "Trainer",
            dependencies: [
                "Core", "Storage", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "Router",
            dependencies: [
                "Core", "Storage", "Pipeline",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // Hermetic unit tests: tiny synthetic models, no network, broker or database.
        .testTarget(name: "CoreTests", dependencies: ["Core"], swiftSettings: fastMath),
        // Against the real model file (models/), run by `make test`.
        .testTarget(name: "ModelTests", dependencies: ["Core", "TestSupport"], swiftSettings: fastMath),
        // Test support: where the real model and fixtures are, loaded once per test process.
        .target(name: "TestSupport", dependencies: ["Core"], path: "Tests/TestSupport"),
        // Against the local stack (PostgreSQL + Kafka broker), run by `make test`.
        .testTarget(
            name: "StackTests",
            dependencies: ["Core", "Storage", "Pipeline", "Router", "EditStoreScenarios", "TestSupport",
                           .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        // Hermetic: event validation, expert codec, in-memory repositories, pipeline steps.
        .testTarget(name: "StorageTests", dependencies: ["Core", "Storage", "Pipeline", "EditStoreScenarios",
                                                        .product(name: "Metrics", package: "swift-metrics"),
                                                        .product(name: "Prometheus", package: "swift-prometheus")]),
        // Test support: the semantics every edit store must have (in-memory and PostgreSQL).
        .target(name: "EditStoreScenarios", dependencies: ["Core", "Storage"], path: "Tests/EditStoreScenarios"),
        // The router driven in-process (real model; the stack for the edit endpoints).
        .testTarget(
            name: "RouterTests",
            dependencies: ["Router", "Core", "Storage", "Pipeline", "TestSupport", .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
    ]
)
