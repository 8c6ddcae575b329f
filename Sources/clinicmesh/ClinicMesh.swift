import ArgumentParser
import Foundation

@main
struct ClinicMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clinicmesh",
        abstract: "ClinicMesh 门诊节点与运维工具 / ClinicMesh outpatient node and operations tool",
        subcommands: [
            NodeCommand.self, StatusCommand.self, BookCommandLine.self, BookingsCommand.self, ClusterAdminCommand.self, DemoCommand.self, CertsCommand.self,
            SimulateCommand.self, BenchCommand.self, DrillCommand.self, StaffCommand.self, AuditCommand.self,
            RaftLogTortureCommand.self,
        ]
    )
}

extension ClinicMesh {
    /// The executable that drills and benches start node processes from: `CLINICMESH_BIN` if set
    /// (Cluster/test sets it), else this very program.
    static var nodeExecutable: String {
        ProcessInfo.processInfo.environment["CLINICMESH_BIN"] ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
    }
}
