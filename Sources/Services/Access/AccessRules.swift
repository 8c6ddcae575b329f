import Domain
import Foundation

/// How far a role reaches with an action (a cell of `RBAC.md`).
package enum AccessScope: String, Sendable, Comparable {
    /// Only the staff member's own things.
    case own
    /// The departments on the staff member's account.
    case dept
    /// Every department.
    case all

    package static func < (lhs: Self, rhs: Self) -> Bool {
        [Self.own, .dept, .all].firstIndex(of: lhs)! < [Self.own, .dept, .all].firstIndex(of: rhs)!
    }
}

/// The role × action table of `RBAC.md`, read at start. Deny by default: an action or a role the
/// table does not name grants nothing.
package struct AccessRules: Sendable {
    package struct Action: Sendable, Hashable {
        package var name: String
        package var zh: String
        package var en: String
        package var scopes: [StaffRole: AccessScope]
    }

    /// In the table's order (the order a home page lists them in).
    package let actions: [Action]

    /// The table shipped with the node.
    package static func shipped() throws -> AccessRules {
        guard let url = Bundle.module.url(forResource: "RBAC", withExtension: "md") else {
            throw ValidationError(field: "RBAC.md", code: "rbac.missing", zh: "找不到权限表 RBAC.md（安装不完整）。",
                                  en: "the access table RBAC.md is missing (an incomplete install).")
        }
        return try AccessRules(markdown: String(decoding: try Data(contentsOf: url), as: UTF8.self))
    }

    /// Parses the table: a header row naming `action`, `中文`, `English` and one column per role.
    package init(markdown: String) throws(ValidationError) {
        let rows = markdown.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("|") }
        func cells(_ row: String) -> [String] {
            row.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
        }
        func bad(_ zh: String, _ en: String) -> ValidationError {
            ValidationError(field: "RBAC.md", code: "rbac.format", zh: "权限表格式错误：\(zh)", en: "the access table is malformed: \(en)")
        }
        guard let header = rows.first.map(cells), header.count > 3, header[0] == "action" else {
            throw bad("第一行应为表头（action、中文、English、各角色）。", "the first row must be the header (action, 中文, English, one column per role).")
        }
        var roles: [StaffRole] = []
        for name in header.dropFirst(3) {
            guard let role = StaffRole(rawValue: name) else { throw bad("未知角色 \(name)。", "unknown role \(name).") }
            roles.append(role)
        }
        guard Set(roles) == Set(StaffRole.allCases) else { throw bad("每个角色应恰有一列。", "every role needs exactly one column.") }
        var actions: [Action] = []
        for row in rows.dropFirst(2).map(cells) {
            guard row.count == header.count, !row[0].isEmpty else { throw bad("行 \(row.first ?? "") 的列数不对。", "row \(row.first ?? "") has the wrong number of cells.") }
            guard !actions.contains(where: { $0.name == row[0] }) else { throw bad("动作 \(row[0]) 重复。", "action \(row[0]) appears twice.") }
            var scopes: [StaffRole: AccessScope] = [:]
            for (role, cell) in zip(roles, row.dropFirst(3)) where !cell.isEmpty {
                guard let scope = AccessScope(rawValue: cell) else { throw bad("\(row[0]) 的单元格 \(cell) 不是 own、dept 或 all。", "cell \(cell) of \(row[0]) is not own, dept or all.") }
                scopes[role] = scope
            }
            actions.append(Action(name: row[0], zh: row[1], en: row[2], scopes: scopes))
        }
        self.actions = actions
    }

    /// The widest scope any of `roles` has for `action`; nil: denied.
    package func scope(of action: String, for roles: Set<StaffRole>) -> AccessScope? {
        guard let a = actions.first(where: { $0.name == action }) else { return nil }
        return roles.compactMap { a.scopes[$0] }.max()
    }

    package func allowed(for roles: Set<StaffRole>) -> [Action] {
        actions.filter { a in roles.contains { a.scopes[$0] != nil } }
    }
}
