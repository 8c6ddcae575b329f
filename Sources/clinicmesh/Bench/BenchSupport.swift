import Foundation

/// What every benchmark prints beside its numbers: the command and the machine, so that figures
/// from different runs are never compared without knowing where they came from.
struct BenchEnvironment: Encodable {
    let command: String
    let host: String
    let cpu: String
    let cores: Int
    let memoryGib: Double
    let build: String
    let startedAt: String

    static func current() -> BenchEnvironment {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        return BenchEnvironment(
            command: CommandLine.arguments.joined(separator: " "),
            host: ProcessInfo.processInfo.hostName,
            cpu: model,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGib: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
            build: build,
            startedAt: ISO8601DateFormatter().string(from: Date()))
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
