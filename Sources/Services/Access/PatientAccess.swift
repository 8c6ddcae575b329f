import Domain
import Foundation
import ReplicatedCore

/// A patient's appointments as this node's read model has them (the care relation a `dept` scope
/// checks).
package protocol PatientAppointments: Sendable {
    func appointments(patient: String) throws -> [AppointmentRow]
}

extension BookingReadModel: PatientAppointments {}

/// What a staff member sees of a patient: demographics with the identifiers masked, and the
/// appointments.
package struct PatientRecordView: Sendable {
    package var key: String
    package var name: String
    package var sex: String
    package var birthDate: String
    package var residentIDMasked: String
    package var mobileMasked: String
    package var appointments: [AppointmentRow]
    /// Opened by break-glass: the reason given.
    package var breakGlassReason: String?
}

extension StaffError {
    package static let breakGlassRequired = StaffError(
        403, "access.break_glass_required",
        zh: "该患者近期没有在您科室的就诊或预约。如确因诊疗需要查看，请填写理由（至少 10 个字）紧急查看：此次查看将记入审计，由审计员复核。",
        en: "this patient has no recent visit or appointment in your department. If you need the record for care, give a reason (at least 10 characters) for break-glass access: it is audited and reviewed by the auditor.")
    package static let patientNotFound = StaffError(404, "patient.not_found", zh: "没有找到该患者。", en: "no such patient.")
    package static let reasonTooShort = StaffError(400, "break_glass.reason", zh: "请写明理由，至少 10 个字，最多 500 字，不含控制字符。",
                                                   en: "give a reason of at least 10 and at most 500 characters, without control characters.")
}

extension StaffDesk {
    package static let breakGlassMs: Int64 = 8 * 3_600_000

    /// The patient key of a resident ID (an HMAC under the cluster secret), if that patient is registered.
    package func patientKey(residentID text: String) throws(StaffError) -> String {
        let key: String
        do {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(nowMs) / 1000)).date
            key = try PatientKey(residentID: try ResidentID(text, today: today), clusterSecret: patientKeySecret).hex
        } catch { throw .invalid(error) }
        let found: Bool
        do { found = try store.liveRow("patient", key: key) != nil } catch { throw .storeUnavailable }
        guard found else { throw .patientNotFound }
        return key
    }

    /// Opens a patient's record for `account`, or refuses: `dept` scope needs an appointment in one
    /// of the account's departments within the care window, or a break-glass opening still running.
    /// Either way the look is an audit event.
    package func openPatient(_ key: String, for account: StaffAccount, appointments source: (any PatientAppointments)?) throws(StaffError) -> PatientRecordView {
        let row: [String: ColumnValue]?
        do { row = try store.liveRow("patient", key: key) } catch { throw .storeUnavailable }
        guard let row else { throw .patientNotFound }
        let appointments: [AppointmentRow]
        do { appointments = try source?.appointments(patient: key) ?? [] } catch { throw .storeUnavailable }
        var reason: String?
        switch rules.scope(of: "patient.read", for: account.roles) {
        case .all?:
            break
        case .dept?, .own?:
            if !caresFor(appointments, account: account) {
                guard let grant = try breakGlassGrant(account.number, key) else {
                    try record(AuditEvent(staff: account.number, role: roleText(account), action: "patient.read", patient: key, resource: "patient/\(key)", outcome: "denied"))
                    throw .breakGlassRequired
                }
                reason = grant
            }
        case nil:
            throw .denied
        }
        try record(AuditEvent(staff: account.number, role: roleText(account), action: "patient.read", patient: key, resource: "patient/\(key)",
                              outcome: reason == nil ? "ok" : "ok_break_glass"))
        // Masked the way Domain masks them everywhere; a value that no longer parses shows nothing.
        return PatientRecordView(key: key, name: row["name"]?.textValue ?? "", sex: row["sex"]?.textValue ?? "", birthDate: row["birth_date"]?.textValue ?? "",
                                 residentIDMasked: row["resident_id"]?.textValue.flatMap { try? ResidentID(stored: $0).masked } ?? "",
                                 mobileMasked: row["mobile"]?.textValue.flatMap { try? MobileNumber($0).masked } ?? "",
                                 appointments: appointments, breakGlassReason: reason)
    }

    /// Whether one of the patient's appointments is in the account's departments within the window.
    func caresFor(_ appointments: [AppointmentRow], account: StaffAccount) -> Bool {
        let today = ShanghaiTime.unixDay(wallMs: nowMs)
        return appointments.contains { a in
            guard let department = a.department, account.departments.contains(department),
                  let date = a.date.flatMap({ try? CivilDate(parsing: $0) }) else { return false }
            return abs(date.unixDay - today) <= careWindowDays
        }
    }

    /// The reason of a break-glass opening by `staff` of `patient` that still runs, if any.
    func breakGlassGrant(_ staff: String, _ patient: String) throws(StaffError) -> String? {
        let row: [String: ColumnValue]?
        do { row = try store.liveRow("staff_break_glass", key: "\(staff)/\(patient)") } catch { throw .storeUnavailable }
        guard let row, (row["until_ms"]?.integerValue ?? 0) > nowMs else { return nil }
        return row["reason"]?.textValue
    }

    /// Opens `patient` for `account` for 8 hours, with a reason; an audit event the auditor's page lists.
    package func breakGlass(_ patient: String, for account: StaffAccount, reason text: String) throws(StaffError) {
        let reason = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (10...500).contains(reason.count), !reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" }) else {
            throw .reasonTooShort
        }
        let exists: Bool
        do { exists = try store.liveRow("patient", key: patient) != nil } catch { throw .storeUnavailable }
        guard exists else { throw .patientNotFound }
        let key = "\(account.number)/\(patient)"
        let values: [String: ColumnValue] = ["staff": .text(account.number), "patient": .text(patient), "reason": .text(reason), "until_ms": .integer(nowMs + Self.breakGlassMs)]
        do {
            try store.write { w in
                if try store.liveRow("staff_break_glass", key: key) == nil { _ = try w.insert("staff_break_glass", key: key, values: values) }
                else { _ = try w.update("staff_break_glass", key: key, values: values) }
            }
        } catch { throw .storeUnavailable }
        try record(AuditEvent(staff: account.number, role: roleText(account), action: "patient.break_glass", patient: patient,
                              resource: "patient/\(patient)", outcome: "ok", detail: reason))
    }
}
