// swift-tools-version: 6.1
// ClinicMesh: one node per outpatient department, a full SQLite replica on each,
// CRDT change exchange over mutual TLS, and Raft-granted leases on appointment slots.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ClinicMesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "clinicmesh", targets: ["clinicmesh"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
    ],
    targets: [
        // liblz4 from Debian's liblz4-dev, wrapped the way GRDB wraps SQLite.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .target(name: "LZ4", dependencies: ["CLZ4", "ClinicErrors"], swiftSettings: strict),
        // glibc's <malloc.h> (malloc_trim), part of libc: nothing to link.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),

        // The one error shape every layer throws: a code, the message in Chinese and English, the
        // input it is about, a cause and where it was raised. Depends on nothing, so that every
        // module, PKI and Mesh included, can use it.
        .target(name: "ClinicErrors", swiftSettings: strict),

        // Pure domain model: FHIR-named records, Chinese identifiers, status tables.
        .target(
            name: "Domain",
            dependencies: ["ClinicErrors", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("STATUS-TRANSITIONS.md")],
            swiftSettings: strict
        ),

        // The CRDT merge as pure values: HLC, versions, changes, the per-row merge decision, review
        // items, and an in-memory replica for tests and the simulator. No SQLite.
        .target(
            name: "ReplicatedCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        // SQLite replica: the change log, merges applied with GRDB, digest, encryption at the origin.
        .target(
            name: "ReplicatedStore",
            dependencies: [
                "ClinicErrors", "ReplicatedCore", "LZ4",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Raft, liveness, lease history and the booking protocol as pure state machines.
        .target(
            name: "Consensus",
            dependencies: ["ClinicErrors", "Domain", "LZ4", .product(name: "HashTreeCollections", package: "swift-collections")],
            swiftSettings: strict
        ),

        // The consensus cores' durable logs: append-only, checksummed, fsynced files.
        .target(name: "ConsensusStorage", dependencies: ["ClinicErrors", "Consensus"], swiftSettings: strict),

        // Deterministic whole-cluster simulator driving the Consensus cores and in-memory replicas.
        .target(name: "Simulation", dependencies: ["Consensus", "ReplicatedCore"], swiftSettings: strict),

        // Cluster PKI: CA, node and admin certificates, and the verifier every TLS handshake runs.
        .target(
            name: "PKI",
            dependencies: [
                "ClinicErrors",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // Mesh: frames, the binary message codec and the mutual-TLS transport between nodes.
        .target(
            name: "Mesh",
            dependencies: [
                "ClinicErrors", "PKI", "LZ4",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["WIRE.md"],
            swiftSettings: strict
        ),

        // The clinic's services (booking, patients), over protocols for the store and the
        // consensus view; nothing of HTTP.
        .target(
            name: "Services",
            dependencies: [
                "ClinicErrors", "Domain", "Consensus", "ReplicatedCore", "ReplicatedStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                // Only its TOTP (RFC 6238); it brings Hummingbird's core along, already built for HTTPAPI.
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            resources: [.copy("Access/RBAC.md"), .copy("Records/icd10-yibao-2.0.tsv"), .copy("Records/order-catalogue.tsv"), .copy("Records/allergens.tsv"),
                        .copy("Prescribing/drug-catalogue.tsv"), .copy("Prescribing/interactions.tsv"), .copy("Prescribing/dose-limits.tsv"),
                        .copy("Prescribing/cautions.tsv")],
            swiftSettings: strict
        ),

        // The HTTP layer: routes and controllers over the services (Hummingbird).
        .target(
            name: "HTTPAPI",
            dependencies: [
                "Services", "Domain", "Consensus", "ReplicatedCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Pages/Templates"), .copy("Pages/Static")],
            swiftSettings: strict
        ),

        // The admin API: its commands and answers, the client the `clinicmesh` tool uses, and the
        // server loop a node runs over its command table.
        .target(
            name: "AdminAPI",
            dependencies: [
                "Services", "Consensus", "Mesh", "PKI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict
        ),

        // A running node: config, replicated schema, peer links (anti-entropy, heartbeats, clock
        // guard), admin API, all as ordered services.
        .target(
            name: "ClinicNode",
            dependencies: [
                "Domain", "ReplicatedCore", "ReplicatedStore", "Consensus", "ConsensusStorage", "Mesh", "PKI", "Services", "HTTPAPI", "AdminAPI",
                .target(name: "CMalloc", condition: .when(platforms: [.linux])),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // Not the product: the demo's departments, doctors, sessions and patients (the `seed-demo`
        // admin command), and the write load of `clinicmesh bench replication`.
        .target(
            name: "DemoAndBench",
            dependencies: [
                "ClinicNode", "AdminAPI", "Services", "Domain", "Consensus", "ReplicatedCore", "ReplicatedStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // Drills and benches against real node processes on loopback (used by the CLI and tests).
        .target(
            name: "Drills",
            dependencies: [
                "ClinicNode", "Services", "AdminAPI", "DemoAndBench", "Consensus", "Domain", "Mesh", "PKI", "ReplicatedStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "clinicmesh",
            dependencies: [
                "Domain", "ReplicatedCore", "ReplicatedStore", "Consensus", "ConsensusStorage", "Simulation", "PKI", "Mesh", "Services", "AdminAPI", "ClinicNode", "DemoAndBench", "Drills",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Helpers the test targets share (SwiftPM test targets cannot import each other); only
        // test targets depend on it.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),

        .testTarget(name: "LZ4Tests", dependencies: ["LZ4"], swiftSettings: strict),
        .testTarget(name: "DomainTests", dependencies: ["Domain"], swiftSettings: strict),
        .testTarget(name: "ReplicatedCoreTests", dependencies: ["ReplicatedCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ReplicatedStoreTests", dependencies: ["ReplicatedStore", "ReplicatedCore", "Domain", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ConsensusTests", dependencies: ["Consensus", "Domain"], swiftSettings: strict),
        .testTarget(name: "ConsensusStorageTests", dependencies: ["ConsensusStorage", "Consensus", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Consensus", "ReplicatedCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ServicesTests", dependencies: ["Services", "Consensus", "Domain"], swiftSettings: strict),
        .testTarget(name: "AdminAPITests", dependencies: ["AdminAPI", "Services"], swiftSettings: strict),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "Services", "Consensus", "Domain", "ReplicatedCore", "ReplicatedStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "DrillTests", dependencies: ["Drills", "ClinicNode", "Services", "AdminAPI", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PKITests",
            dependencies: [
                "PKI", "TestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MeshTests",
            dependencies: [
                "Mesh", "PKI", "LZ4", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ClinicNodeTests",
            dependencies: [
                "ClinicNode", "Services", "HTTPAPI", "AdminAPI", "DemoAndBench", "Consensus", "ReplicatedStore", "Mesh", "PKI", "Domain", "Drills", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
