import AdminAPI
import Foundation
import GRDB
import ReplicatedCore
import ReplicatedStore
import Services

// Staff accounts and the audit chains on the admin API (`clinicmesh staff ...`, `clinicmesh audit verify`).

extension MeshNode {
    /// Who an admin command acts as, in the audit trail.
    static let adminActor = "admin-cli"

    func addStaff(_ c: StaffAccountCommand) async -> StaffAnswer {
        do {
            let account = try await staff.addAccount(number: c.staffNumber, name: c.name ?? "", roles: c.roles ?? [], departments: c.departments ?? [],
                                                     practitioner: c.practitioner ?? "", password: c.password ?? "",
                                                     mustChangePassword: c.mustChangePassword ?? true, by: Self.adminActor)
            return StaffAnswer(account: account)
        } catch { return StaffAnswer(refused: error) }
    }

    func disableStaff(_ c: StaffAccountCommand) -> StaffAnswer {
        do {
            try staff.disable(c.staffNumber.uppercased(), by: Self.adminActor)
            return StaffAnswer(account: try staff.account(c.staffNumber.uppercased()))
        } catch { return StaffAnswer(refused: error) }
    }

    func resetStaffPassword(_ c: StaffAccountCommand) async -> StaffAnswer {
        do {
            try await staff.resetPassword(c.staffNumber.uppercased(), to: c.password ?? "", by: Self.adminActor)
            return StaffAnswer(account: try staff.account(c.staffNumber.uppercased()))
        } catch { return StaffAnswer(refused: error) }
    }

    func listStaff() throws -> [StaffAccountView] {
        do { return try staff.accounts().map(StaffAccountView.init) } catch {
            throw NodeError(.admin, zh: error.zh, en: error.en)
        }
    }

    func verifyAudit() throws -> AuditVerifyAnswer { try AuditVerification.verify(replica, node: config.nodeID) }
}

/// `audit verify` over a replica: streams the rows in key order (each chain's events in sequence
/// order) and names the first broken link of each chain.
package enum AuditVerification {
    static let columns = NodeSchema.auditEvent.columns.map(\.name)

    package static func verify(_ replica: Replica, node: String) throws -> AuditVerifyAnswer {
        let started = DispatchTime.now().uptimeNanoseconds
        var check = AuditChainCheck()
        var counts: [String: Int64] = [:]
        try replica.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT id, \(columns.joined(separator: ", ")) FROM audit_event WHERE crdt_alive > 0 ORDER BY id")
            while let row = try cursor.next() {
                var values: [String: ColumnValue] = Dictionary(minimumCapacity: columns.count)
                for (i, c) in columns.enumerated() { values[c] = ColumnValue(row[i + 1] as DatabaseValue) }
                check.check(key: row[0], row: values)
                counts[values["chain"]?.textValue ?? "", default: 0] += 1
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let chains = counts.keys.sorted().map { chain in
            let broken = check.broken[chain]
            return AuditVerifyAnswer.Chain(chain: chain, events: counts[chain] ?? 0, brokenAt: broken?.key, reasonZh: broken?.reasonZh, reasonEn: broken?.reasonEn)
        }
        return AuditVerifyAnswer(node: node, events: check.checked, seconds: (seconds * 1000).rounded() / 1000, intact: check.broken.isEmpty, chains: chains)
    }
}
