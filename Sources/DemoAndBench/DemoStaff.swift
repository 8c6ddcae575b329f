import ClinicNode
import Domain
import Services

/// The demo's staff: per department, its four doctors (the chief physician also heads the
/// department), a nurse, a registration clerk, a pharmacist and a cashier; on 内科's node also the
/// hospital admin, the auditor and the lab technician. Every demo account has the password `DemoStaff.password` and
/// need not change it (a real account must, at its first sign-in).
package enum DemoStaff {
    package static let password = "Mesh-Demo-2026"

    struct Member { let number: String; let name: String; let roles: [StaffRole]; let departments: [String]; let practitioner: String }

    static let prefixes = ["neike": "N", "waike": "W", "erke": "E"]
    static let others: [String: [(String, StaffRole)]] = [
        "neike": [("何静", .nurse), ("杜明", .registrationClerk), ("钱芳", .pharmacist), ("韩冰", .cashier)],
        "waike": [("罗敏", .nurse), ("袁野", .registrationClerk), ("邓洁", .pharmacist), ("许诺", .cashier)],
        "erke": [("宋佳", .nurse), ("唐宁", .registrationClerk), ("冯雪", .pharmacist), ("曹阳", .cashier)],
    ]

    static func members(of department: String) -> [Member] {
        guard let prefix = prefixes[department], let spec = DemoData.departments[department] else { return [] }
        var out: [Member] = []
        for (i, doctor) in spec.doctors.enumerated() {
            let roles: [StaffRole] = i == 0 ? [.doctor, .departmentHead] : [.doctor]
            out.append(Member(number: "\(prefix)00\(i + 1)", name: doctor.name, roles: roles, departments: [department], practitioner: doctor.slug))
        }
        for (i, (name, role)) in (others[department] ?? []).enumerated() {
            out.append(Member(number: "\(prefix)\(i + 1)01", name: name, roles: [role], departments: [department], practitioner: ""))
        }
        if department == "neike" {
            out.append(Member(number: "ADM01", name: "林海", roles: [.hospitalAdmin], departments: [], practitioner: ""))
            out.append(Member(number: "AUD01", name: "白露", roles: [.auditor], departments: [], practitioner: ""))
            out.append(Member(number: "LAB01", name: "周琳", roles: [.labTechnician], departments: [], practitioner: ""))
        }
        return out
    }

    /// Creates the department's demo accounts that do not exist yet; returns how many it made.
    static func seed(_ desk: StaffDesk, department: String) async throws -> Int {
        var made = 0
        for m in members(of: department) {
            let exists: Bool
            do { exists = try desk.account(m.number) != nil } catch { throw error }
            if exists { continue }
            // Caught into a Result, not `catch where`: Swift 6.3 crashes in SILGen on a
            // `catch where` over this typed-throws call inside an async loop.
            let result: Result<StaffAccount, StaffError>
            do {
                result = .success(try await desk.addAccount(number: m.number, name: m.name, roles: m.roles.map(\.rawValue), departments: m.departments,
                                                            practitioner: m.practitioner, password: password, mustChangePassword: false, by: "demo-seed"))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success: made += 1
            case .failure(let e) where e.code == "staff.exists": break
            case .failure(let e): throw e
            }
        }
        return made
    }
}
