import ArgumentParser

@main
struct ClinicMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clinicmesh",
        abstract: "ClinicMesh 门诊节点与运维工具 / ClinicMesh outpatient node and operations tool",
        subcommands: [
            NodeCommand.self, StatusCommand.self, BookCommandLine.self, BookingsCommand.self, ClusterAdminCommand.self, DemoCommand.self, CertsCommand.self,
            SimulateCommand.self, BenchCommand.self, DrillCommand.self,
            RaftLogTortureCommand.self,
        ]
    )
}
