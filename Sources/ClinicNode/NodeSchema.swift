import Domain
import ReplicatedCore
import ReplicatedStore

/// The replicated tables a node holds for now (the demo's): departments, practitioners, patients,
/// schedules and slots. Keys come from `Domain`'s identity keys: `PractitionerID` slugs,
/// `PatientKey` (HMAC of the resident ID), `ScheduleKey` and `SlotKey`; personal data is sealed at
/// the origin (`encrypted: true`). Append new versions only; never edit a published one.
public enum NodeSchema {
    public static let department = ReplicatedTable("department", columns: [
        .init("name", .text), .init("code", .text),
    ])
    /// Key: `PractitionerID.rawValue`.
    public static let practitioner = ReplicatedTable("practitioner", columns: [
        .init("name", .text), .init("department", .text), .init("title", .text),
    ], indexes: [["department"]])
    /// Key: `PatientKey.hex`. Name, resident ID and mobile are personal data, sealed at the origin.
    public static let patient = ReplicatedTable("patient", columns: [
        .init("name", .text, encrypted: true), .init("resident_id", .text, encrypted: true),
        .init("mobile", .text, encrypted: true), .init("sex", .text), .init("birth_date", .text),
    ])
    /// Key: `ScheduleKey.rawValue` (practitioner/date/half-day).
    public static let schedule = ReplicatedTable("schedule", columns: [
        .init("practitioner", .text), .init("department", .text), .init("date", .text),
        .init("half_day", .text), .init("capacity", .integer), .init("status", .text),
    ], indexes: [["department", "date"]])
    /// Key: `SlotKey.rawValue` (schedule/号序). `status` is what the schedule offers (free when
    /// published); whether a slot is booked is never here but in the booking records, projected
    /// into each node's read model (`slot_view` in `readmodel.sqlite`).
    public static let slot = ReplicatedTable("slot", columns: [
        .init("schedule", .text), .init("sequence", .integer), .init("status", .text),
    ], indexes: [["schedule"]])

    /// Key: the hold's request id (`AppointmentRef.holdID`). What staff add to an appointment whose
    /// booking state lives in the lease records: the steps after booking (arrived, fulfilled,
    /// noshow, entered-in-error). `payment` is no longer written (the payment method is in the
    /// confirmation record, `PaymentTag`); it stays because the schema only grows.
    public static let appointment = ReplicatedTable("appointment", columns: [
        .init("patient", .text), .init("payment", .text), .init("status", .text), .init("updated_by", .text),
    ], indexes: [["patient"]])

    /// Key: `StaffNumber.rawValue` (master data). `roles` and `departments` are comma-separated;
    /// `password_hash` is a scrypt string (`PasswordHasher`); sessions issued before
    /// `sessions_after_ms` are refused on every node (a disable or a password reset).
    public static let staff = ReplicatedTable("staff", columns: [
        .init("name", .text), .init("roles", .text), .init("departments", .text), .init("practitioner", .text),
        .init("active", .integer), .init("password_hash", .text), .init("must_change_password", .integer),
        .init("sessions_after_ms", .integer),
    ])
    /// Key: `<staff number>/<node>`: failed sign-ins counted where they happened; each node writes
    /// only its own row, and the lockout sums every node's (`StaffSignIn`).
    public static let staffSignIn = ReplicatedTable("staff_sign_in", columns: [
        .init("staff", .text), .init("node", .text), .init("failures", .integer), .init("window_start_ms", .integer),
        .init("locked_until_ms", .integer),
    ], indexes: [["staff"]])
    /// Key: a session id: the session was signed out, and no node accepts it again.
    public static let staffSessionEnd = ReplicatedTable("staff_session_end", columns: [
        .init("staff", .text), .init("ended_ms", .integer),
    ])
    /// Key: `<staff number>/<patient key>`: a break-glass opening of a patient outside the staff
    /// member's departments, with its reason, until `until_ms` (every node accepts it).
    public static let staffBreakGlass = ReplicatedTable("staff_break_glass", columns: [
        .init("staff", .text), .init("patient", .text), .init("reason", .text), .init("until_ms", .integer),
    ])
    /// Key: `StaffNumber.rawValue` (master data, LWW per column): the account's two-step sign-in
    /// (`TwoStepCodes`). `secret` is sealed at the origin and null when two-step is off;
    /// `last_step` is the newest time step a code was accepted for, so a code is not taken twice.
    public static let staffTwoStep = ReplicatedTable("staff_two_step", columns: [
        .init("secret", .text, encrypted: true), .init("enabled_ms", .integer), .init("last_step", .integer),
    ])
    /// Key: `<chain>/<sequence, 12 digits>`, the chain being `<node>.<incarnation>`: one insert-only
    /// hash chain per node process history (`AuditTrail`).
    public static let auditEvent = ReplicatedTable("audit_event", columns: [
        .init("chain", .text), .init("sequence", .integer), .init("at_ms", .integer), .init("node", .text),
        .init("staff", .text), .init("role", .text), .init("action", .text), .init("patient", .text),
        .init("resource", .text), .init("outcome", .text), .init("detail", .text),
        .init("previous_hash", .text), .init("hash", .text),
    ], indexes: [["staff"], ["patient"], ["action"], ["at_ms"]])

    /// Key: `<practitioner>/<weekday 1-7>/<half-day>` (master data, LWW per column): one line of
    /// a doctor's weekly template (`ClinicTemplate`); the rota is generated from these.
    public static let clinicTemplate = ReplicatedTable("clinic_template", columns: [
        .init("practitioner", .text), .init("department", .text), .init("weekday", .integer), .init("half_day", .text),
        .init("room", .text), .init("start", .text), .init("capacity", .integer), .init("minutes_per_slot", .integer),
        .init("walk_in_reserve", .integer),
    ], indexes: [["department"]])
    /// What a published rota adds to a schedule: where and when exactly, the walk-in reserve, the
    /// fee, when its slots open and the node that holds its block (null on demo sessions).
    static let scheduleRotaColumns: [ReplicatedTable.Column] = [
        .init("room", .text), .init("start", .text), .init("end", .text), .init("walk_in_reserve", .integer),
        .init("fee_fen", .integer), .init("opens_at_ms", .integer), .init("home", .text),
    ]

    /// Key: the session's schedule key: the doctor's sign-in and sign-out (出诊签到, `Attendance`),
    /// LWW per column; written where the doctor signs.
    public static let sessionAttendance = ReplicatedTable("session_attendance", columns: [
        .init("practitioner", .text), .init("department", .text), .init("date", .text),
        .init("signed_in_ms", .integer), .init("signed_out_ms", .integer),
    ], indexes: [["department", "date"]])

    /// Key: a random id: a doctor's request to change a published session (`SessionChange`) and
    /// the department head's decision; `outcome` is what the session block's holder has done with
    /// the bookings. LWW per column.
    public static let sessionChange = ReplicatedTable("session_change", columns: [
        .init("session", .text), .init("department", .text), .init("practitioner", .text), .init("date", .text),
        .init("kind", .text), .init("reason", .text), .init("substitute", .text), .init("extra_slots", .integer),
        .init("extra_walk_in", .integer), .init("move_date", .text), .init("move_half_day", .text), .init("move_start", .text),
        .init("bookings", .text), .init("status", .text), .init("requested_by", .text), .init("requested_ms", .integer),
        .init("decided_by", .text), .init("decided_ms", .integer), .init("note", .text), .init("moved_to", .text), .init("outcome", .text),
    ], indexes: [["department", "status"], ["practitioner"], ["status", "date"]])

    /// Key: the appointment's hold id: a visit (就诊, FHIR Encounter) opened from the queue, one
    /// per appointment (master-data-like, LWW per column; written once).
    public static let encounter = ReplicatedTable("encounter", columns: [
        .init("patient", .text), .init("session", .text), .init("department", .text), .init("practitioner", .text),
        .init("date", .text), .init("opened_by", .text), .init("opened_ms", .integer),
    ], indexes: [["patient"], ["department", "date"]])
    /// Key: `<encounter>/<uuid>`: one immutable version of a visit's note (a clinical document:
    /// rows are inserted, never changed, except `hlc` set in the same transaction as the insert).
    /// The note (`ClinicalNote` as JSON), its diagnosis codes and the reason are sealed at the origin.
    public static let noteVersion = ReplicatedTable("note_version", columns: [
        .init("encounter", .text), .init("patient", .text), .init("department", .text), .init("practitioner", .text), .init("date", .text),
        .init("parent", .text), .init("settles", .text),
        .init("kind", .text), .init("reason", .text, encrypted: true), .init("author", .text), .init("author_name", .text),
        .init("node", .text), .init("at_ms", .integer), .init("hlc", .integer),
        .init("body", .text, encrypted: true), .init("diagnoses", .text, encrypted: true),
    ], indexes: [["encounter"], ["patient"], ["department", "at_ms"]])

    /// Key: a random id: a note template (master data, LWW per column): the department's or one
    /// doctor's (`NoteTemplate`); `body` is the template's note as JSON; retired ones stay, marked.
    public static let noteTemplate = ReplicatedTable("note_template", columns: [
        .init("name", .text), .init("scope", .text), .init("department", .text), .init("owner", .text), .init("body", .text),
        .init("retired", .integer), .init("updated_ms", .integer),
    ], indexes: [["department"], ["owner"]])

    /// Key: a random id: a lab or exam order (检验/检查申请, `LabOrder`) placed from a visit, LWW
    /// per column: `status` goes from ordered to reported (with the first result) or cancelled.
    /// The clinical note to the lab and a cancellation's reason are sealed at the origin.
    public static let labOrder = ReplicatedTable("lab_order", columns: [
        .init("encounter", .text), .init("patient", .text), .init("department", .text), .init("practitioner", .text), .init("date", .text),
        .init("item", .text), .init("kind", .text), .init("name", .text), .init("clinical", .text, encrypted: true),
        .init("ordered_by", .text), .init("ordered_name", .text), .init("ordered_ms", .integer),
        .init("status", .text), .init("cancel_reason", .text, encrypted: true),
    ], indexes: [["encounter"], ["patient"], ["status", "ordered_ms"]])
    /// Key: `<order>/<id>` (the id an HL7 message's sender fixes, or a random one): one result report
    /// (`LabReport`), inserted and never changed; a correction is a later report of the same order.
    /// The observations (JSON) and the conclusion are sealed at the origin.
    public static let labReport = ReplicatedTable("lab_report", columns: [
        .init("order_id", .text), .init("patient", .text), .init("encounter", .text), .init("item", .text), .init("status", .text),
        .init("observations", .text, encrypted: true), .init("conclusion", .text, encrypted: true), .init("source", .text),
        .init("entered_by", .text), .init("entered_name", .text), .init("at_ms", .integer),
    ], indexes: [["order_id"], ["patient", "at_ms"]])

    /// Key: a random id: a doctor's saved phrase (常用语), put into a note with a shortcut key
    /// (master data, LWW per column; retired ones stay, marked). `position` orders a doctor's phrases.
    public static let notePhrase = ReplicatedTable("note_phrase", columns: [
        .init("owner", .text), .init("text", .text), .init("position", .integer), .init("retired", .integer), .init("updated_ms", .integer),
    ], indexes: [["owner"]])

    /// Key: `rx-<uuid>`: a signed prescription (处方, FHIR MedicationRequest), a clinical document:
    /// inserted once, never changed. `body` (`RxBody` as JSON: lines, the check's alerts with the
    /// doctor's reasons, the patient facts it used) is sealed at the origin; `rule_version` names
    /// the rule pack that checked it.
    public static let prescription = ReplicatedTable("prescription", columns: [
        .init("encounter", .text), .init("patient", .text), .init("department", .text), .init("practitioner", .text), .init("date", .text),
        .init("kind", .text), .init("pharmacy", .text), .init("body", .text, encrypted: true), .init("rule_version", .text),
        .init("author", .text), .init("author_name", .text), .init("node", .text), .init("at_ms", .integer), .init("total_fen", .integer),
    ], indexes: [["encounter"], ["patient", "at_ms"], ["pharmacy", "date"], ["author", "at_ms"]])
    /// Key: `<prescription>/<uuid>`: a pharmacist's review (审方), inserted once (a clinical document).
    /// The reason, which the doctor reads on a refusal, is sealed.
    public static let prescriptionReview = ReplicatedTable("prescription_review", columns: [
        .init("prescription", .text), .init("verdict", .text), .init("reason", .text, encrypted: true), .init("pharmacist", .text),
        .init("pharmacist_name", .text), .init("at_ms", .integer), .init("rule_version", .text),
    ], indexes: [["prescription"]])
    /// Key: a random id: a doctor's saved combination (协定处方), master data (LWW per column): its
    /// lines as typed on the form (JSON); retired ones stay, marked.
    public static let rxSet = ReplicatedTable("rx_set", columns: [
        .init("owner", .text), .init("name", .text), .init("lines", .text), .init("retired", .integer), .init("updated_ms", .integer),
    ], indexes: [["owner"]])
    /// A doctor's prescribing rights (`PrescribingRight`, comma-separated), granted by the hospital.
    static let staffRights = ReplicatedTable.Column("rights", .text)

    public static let schema = ReplicaSchema(versions: [
        [.createTable(department), .createTable(practitioner), .createTable(patient), .createTable(schedule), .createTable(slot)],
        [.createTable(appointment)],
        [.createTable(staff), .createTable(staffSignIn), .createTable(staffSessionEnd), .createTable(staffBreakGlass), .createTable(auditEvent)],
        [.createTable(staffTwoStep)],
        [.createTable(clinicTemplate)] + scheduleRotaColumns.map { .addColumn(table: "schedule", $0) },
        [.createTable(sessionAttendance)],
        [.createTable(sessionChange)],
        [.createTable(encounter), .createTable(noteVersion), .createTable(noteTemplate)],
        [.createTable(labOrder), .createTable(labReport), .createTable(notePhrase)],
        [.createTable(prescription), .createTable(prescriptionReview), .createTable(rxSet), .addColumn(table: "staff", staffRights)],
    ])
}
