import Crypto

// Keys of replicated records are derived from what the record is, never from a counter, so that
// two nodes creating the same thing at the same time produce one row (DESIGN.md, "Replicated
// records"). Schedule and slot keys are readable strings; the patient key is a keyed hash.

/// Identity of a clinic session: practitioner, date, half-day. Raw form
/// "dr-wang-li/2025-03-07/morning"; ids are slugs, so "/" cannot occur inside a part.
public struct ScheduleKey: Hashable, Sendable, CustomStringConvertible {
    public let practitionerID: PractitionerID
    public let date: CivilDate
    public let halfDay: HalfDay

    public init(practitionerID: PractitionerID, date: CivilDate, halfDay: HalfDay) {
        self.practitionerID = practitionerID
        self.date = date
        self.halfDay = halfDay
    }

    /// Reads a key back from its raw form.
    public init(rawValue: String, field: String = "scheduleKey") throws(ValidationError) {
        let parts = rawValue.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let halfDay = HalfDay(rawValue: parts[2]) else {
            throw Self.formatError(field: field)
        }
        do throws(ValidationError) {
            self.init(practitionerID: try PractitionerID(parts[0], field: field), date: try CivilDate(parsing: parts[1], field: field), halfDay: halfDay)
        } catch {
            throw Self.formatError(field: field)
        }
    }

    public var rawValue: String { "\(practitionerID)/\(date)/\(halfDay.rawValue)" }
    public var description: String { rawValue }

    private static func formatError(field: String) -> ValidationError {
        ValidationError(
            field: field, code: "schedule_key.format",
            zh: "出诊键格式不正确，应为“医生标识/年-月-日/morning、afternoon 或 evening”，例如 dr-wang-li/2025-03-07/morning。",
            en: "The schedule key is malformed; it must read practitioner-id/YYYY-MM-DD/morning, afternoon or evening, for example dr-wang-li/2025-03-07/morning.")
    }
}

/// Identity of a slot: its schedule and 号序. Raw form "dr-wang-li/2025-03-07/morning/007";
/// the sequence is zero-padded to three digits so that keys sort in 号序 order.
public struct SlotKey: Hashable, Sendable, CustomStringConvertible {
    public let scheduleKey: ScheduleKey
    public let sequence: Int

    public init(scheduleKey: ScheduleKey, sequence: Int) throws(ValidationError) {
        try Self.validateSequence(sequence, field: "sequence")
        self.init(validatedScheduleKey: scheduleKey, sequence: sequence)
    }

    init(validatedScheduleKey scheduleKey: ScheduleKey, sequence: Int) {
        self.scheduleKey = scheduleKey
        self.sequence = sequence
    }

    /// Reads a key back from its raw form.
    public init(rawValue: String, field: String = "slotKey") throws(ValidationError) {
        let formatError = ValidationError(
            field: field, code: "slot_key.format",
            zh: "号源键格式不正确，应为“出诊键/三位号序”，例如 dr-wang-li/2025-03-07/morning/007。",
            en: "The slot key is malformed; it must read schedule-key/three-digit sequence, for example dr-wang-li/2025-03-07/morning/007.")
        guard let slash = rawValue.lastIndex(of: "/") else { throw formatError }
        let sequenceText = rawValue[rawValue.index(after: slash)...]
        guard sequenceText.unicodeScalars.count == 3, let sequence = InputText.smallNumber(sequenceText.unicodeScalars),
              Schedule.capacityRange.contains(sequence)
        else { throw formatError }
        do throws(ValidationError) {
            self.init(validatedScheduleKey: try ScheduleKey(rawValue: String(rawValue[..<slash]), field: field), sequence: sequence)
        } catch {
            throw formatError
        }
    }

    public var rawValue: String { "\(scheduleKey.rawValue)/\(InputText.padded(sequence, width: 3))" }
    public var description: String { rawValue }

    static func validateSequence(_ sequence: Int, field: String) throws(ValidationError) {
        guard Schedule.capacityRange.contains(sequence) else {
            throw ValidationError(
                field: field, code: "slot.sequence",
                zh: "号序应在 1 至 500 之间，当前为 \(sequence)，请核对。",
                en: "The slot sequence number must be between 1 and 500, \(sequence) was given; please check it.")
        }
    }
}

/// Identity of a patient: HMAC-SHA256 of the normalised resident ID under the cluster secret,
/// as 64 lowercase hex digits.
///
/// Why keyed: an 18-character resident ID has little entropy. Region codes number a few
/// thousand, birth dates some tens of thousands, sequences a thousand, and the check character
/// follows from the rest: about 10^11 candidates, fewer still when a birth date or home town is
/// known. A plain SHA-256 of that space is exhausted in minutes on one GPU, so anyone holding a
/// copy of the database (a backup, a stolen disk) could recover every ID. With an HMAC they also
/// need the cluster secret, which is kept outside the database.
public struct PatientKey: Hashable, Sendable, CustomStringConvertible {
    public let hex: String

    /// Shorter secrets would make the secret itself the thing to guess.
    public static let minimumSecretBits = 256

    public init(residentID: ResidentID, clusterSecret: SymmetricKey) throws(ValidationError) {
        guard clusterSecret.bitCount >= Self.minimumSecretBits else {
            throw ValidationError(
                field: "clusterSecret", code: "cluster_secret.too_short",
                zh: "集群密钥只有 \(clusterSecret.bitCount) 位，至少需要 \(Self.minimumSecretBits) 位，请使用随机生成的 32 字节密钥。",
                en: "The cluster secret has only \(clusterSecret.bitCount) bits; at least \(Self.minimumSecretBits) are needed, please use 32 random bytes.")
        }
        let mac = HMAC<SHA256>.authenticationCode(for: Array(residentID.value.utf8), using: clusterSecret)
        hex = Self.hexString(mac)
    }

    /// Reads a stored key: exactly 64 lowercase hex digits.
    public init(hex: String, field: String = "patientKey") throws(ValidationError) {
        let isHex = hex.unicodeScalars.allSatisfy { InputText.isASCIIDigit($0) || ("a"..."f").contains($0) }
        guard hex.unicodeScalars.count == 64, isHex else {
            throw ValidationError(
                field: field, code: "patient_key.format",
                zh: "患者键应为 64 位小写十六进制字符，请检查数据来源。",
                en: "A patient key is 64 lowercase hexadecimal digits; please check where this value came from.")
        }
        self.hex = hex
    }

    public var description: String { hex }

    private static func hexString(_ bytes: some Sequence<UInt8>) -> String { lowercaseHex(bytes) }
}

/// Bytes as lowercase hex digits (keys, tokens, digests: on request paths, so no `String(format:)`).
public func lowercaseHex(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}

/// The schedule key for a practitioner's session on a date and half-day.
public func scheduleKey(practitionerID: PractitionerID, date: CivilDate, halfDay: HalfDay) -> ScheduleKey {
    ScheduleKey(practitionerID: practitionerID, date: date, halfDay: halfDay)
}

/// The slot key for 号序 `sequence` (1...500) of a schedule.
public func slotKey(scheduleKey: ScheduleKey, sequence: Int) throws(ValidationError) -> SlotKey {
    try SlotKey(scheduleKey: scheduleKey, sequence: sequence)
}

/// The patient key: HMAC-SHA256 of the resident ID under the cluster secret (see `PatientKey`).
public func patientKey(residentID: ResidentID, clusterSecret: SymmetricKey) throws(ValidationError) -> PatientKey {
    try PatientKey(residentID: residentID, clusterSecret: clusterSecret)
}

extension ScheduleKey: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try ScheduleKey(rawValue: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension SlotKey: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try SlotKey(rawValue: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension PatientKey: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try PatientKey(hex: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
