import ArgumentParser

@main
struct ClinicMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clinicmesh",
        abstract: "ClinicMesh 门诊节点与运维工具 / ClinicMesh outpatient node and operations tool",
        subcommands: [CertsCommand.self, NodeCommand.self, StatusCommand.self, BenchCommand.self]
    )
}
