import AdminAPI
import ArgumentParser
import Foundation

/// `clinicmesh staff ...`: staff accounts through any node's admin API (admin certificate).
struct StaffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff",
        abstract: "员工账户：新建、停用、重置密码、列表（需管理员证书）/ Staff accounts: add, disable, reset a password, list (admin certificate)",
        subcommands: [Add.self, Disable.self, ResetPassword.self, List.self])

    struct Target: ParsableArguments {
        @Option(help: "管理配置 / Admin config (JSON)") var config: String
        @Option(help: "经由哪个节点 / Through which node (id); default the first in the config") var via: String?

        func call(_ command: String, _ body: some Encodable) async throws -> [UInt8] {
            let target = try AdminTarget(path: config)
            let node = via ?? target.config.nodes.first?.id ?? ""
            return try await target.call(node, command + " " + String(decoding: try JSONEncoder().encode(body), as: UTF8.self))
        }
    }

    /// Prints a staff command's answer; a refusal exits non-zero.
    static func report(_ bytes: [UInt8], json: Bool) throws {
        if json { print(String(decoding: bytes, as: UTF8.self)) }
        guard let answer = try? JSONDecoder().decode(StaffAnswer.self, from: Data(bytes)) else {
            if !json { print(String(decoding: bytes, as: UTF8.self)) }
            throw ExitCode.failure
        }
        guard answer.outcome == "ok" else {
            if !json { print("未完成 / refused [\(answer.code ?? "")]: \(answer.messageZh ?? "") / \(answer.messageEn ?? "")") }
            throw ExitCode.failure
        }
        if !json, let a = answer.account {
            print("完成 / done: \(a.staffNumber) \(a.name) 角色 / roles \(a.roles.joined(separator: ",")) 科室 / departments \(a.departments.joined(separator: ","))"
                  + " \(a.active ? "在用 / active" : "已停用 / disabled")\(a.mustChangePassword ? "，下次登录须改密码 / must change the password at next sign-in" : "")")
        }
    }

    /// The password from the environment variable `CLINICMESH_STAFF_PASSWORD`, never from the
    /// command line (it would sit in the shell history and in `ps`).
    static func password() throws -> String {
        guard let p = ProcessInfo.processInfo.environment["CLINICMESH_STAFF_PASSWORD"], !p.isEmpty else {
            FileHandle.standardError.write(Data("请用环境变量 CLINICMESH_STAFF_PASSWORD 给出密码（至少 10 个字符，不能与工号相同）/ give the password in the environment variable CLINICMESH_STAFF_PASSWORD (at least 10 characters, not the staff number)\n".utf8))
            throw ExitCode.failure
        }
        return p
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "新建员工账户，首次登录须改密码；密码取自环境变量 CLINICMESH_STAFF_PASSWORD / Add an account; the password (from CLINICMESH_STAFF_PASSWORD) must be changed at first sign-in")
        @OptionGroup var target: Target
        @Option(help: "工号 / Staff number") var staffNumber: String
        @Option(help: "姓名 / Name") var name: String
        @Option(help: "角色，可重复 / Role, repeatable: doctor nurse registration_clerk pharmacist cashier lab_technician department_head hospital_admin auditor") var role: [String]
        @Option(help: "科室代码，可重复 / Department code, repeatable") var department: [String] = []
        @Option(help: "关联的医生（practitioner 键）/ The practitioner this doctor is") var practitioner: String?
        @Flag(help: "输出 JSON / Print JSON") var json = false

        func run() async throws {
            let c = StaffAccountCommand(staffNumber: staffNumber, name: name, roles: role, departments: department, practitioner: practitioner,
                                        password: try StaffCommand.password())
            try StaffCommand.report(try await target.call("staff-add", c), json: json)
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "停用账户，其所有登录在各节点失效 / Disable an account; its sessions end on every node")
        @OptionGroup var target: Target
        @Option(help: "工号 / Staff number") var staffNumber: String
        @Flag(help: "输出 JSON / Print JSON") var json = false

        func run() async throws {
            try StaffCommand.report(try await target.call("staff-disable", StaffAccountCommand(staffNumber: staffNumber)), json: json)
        }
    }

    struct ResetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-password",
            abstract: "重置密码（取自 CLINICMESH_STAFF_PASSWORD），下次登录须修改，并解除锁定 / Reset a password (from CLINICMESH_STAFF_PASSWORD); it must be changed at next sign-in; clears a lockout")
        @OptionGroup var target: Target
        @Option(help: "工号 / Staff number") var staffNumber: String
        @Flag(help: "输出 JSON / Print JSON") var json = false

        func run() async throws {
            let c = StaffAccountCommand(staffNumber: staffNumber, password: try StaffCommand.password())
            try StaffCommand.report(try await target.call("staff-reset-password", c), json: json)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "列出员工账户 / List the staff accounts")
        @OptionGroup var target: Target
        @Flag(help: "输出 JSON / Print JSON") var json = false

        func run() async throws {
            let t = try AdminTarget(path: target.config)
            let bytes = try await t.call(target.via ?? t.config.nodes.first?.id ?? "", "staff-list")
            guard !json, let accounts = try? JSONDecoder().decode([StaffAccountView].self, from: Data(bytes)) else {
                print(String(decoding: bytes, as: UTF8.self))
                return
            }
            for a in accounts {
                print("\(a.staffNumber)\t\(a.name)\t\(a.roles.joined(separator: ","))\t\(a.departments.joined(separator: ","))\t\(a.active ? "在用 active" : "停用 disabled")")
            }
        }
    }
}

/// `clinicmesh audit verify`: checks every audit hash chain a node holds.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "审计链 / Audit chains", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "逐条校验节点上的每条审计哈希链，指出第一处断裂 / Check every audit hash chain on a node and name the first broken link")
        @Option(help: "管理配置 / Admin config (JSON)") var config: String
        @Option(help: "哪个节点 / Which node (id); default every node in the config") var node: String?
        @Flag(help: "输出 JSON / Print JSON") var json = false

        func run() async throws {
            let target = try AdminTarget(path: config)
            var intact = true
            for id in node.map({ [$0] }) ?? target.config.nodes.map(\.id) {
                let bytes = try await target.call(id, "audit-verify")
                guard let answer = try? JSONDecoder().decode(AuditVerifyAnswer.self, from: Data(bytes)) else {
                    print(String(decoding: bytes, as: UTF8.self))
                    throw ExitCode.failure
                }
                intact = intact && answer.intact
                if json { print(String(decoding: bytes, as: UTF8.self)); continue }
                print("\(answer.node): \(answer.intact ? "完整 / intact" : "已损坏 / BROKEN")，\(answer.events) 条事件 / events，\(answer.chains.count) 条链 / chains，\(answer.seconds) s")
                for c in answer.chains where c.brokenAt != nil {
                    print("  \(c.chain): 第一处断裂 / first broken link \(c.brokenAt!): \(c.reasonZh ?? "") / \(c.reasonEn ?? "")")
                }
            }
            if !intact { throw ExitCode.failure }
        }
    }
}
