import Foundation

/// An outpatient note (门诊病历) as one version saves it: the structured sections, the vital
/// signs and the diagnoses. Every text is stored as typed (markup included) and shown escaped.
public struct ClinicalNote: Codable, Equatable, Sendable {
    /// 主诉
    public var chiefComplaint = ""
    /// 现病史
    public var presentIllness = ""
    /// 既往史
    public var pastHistory = ""
    /// 个人史
    public var personalHistory = ""
    /// 过敏史 (in words; the coded ones are `allergyCodes`)
    public var allergies = ""
    /// 过敏（编码）: codes of the allergen list (drug classes by WHO ATC, food groups, environmental
    /// allergens), which prescription checks match drugs against.
    public var allergyCodes: [String] = []
    /// 无已知过敏: asked, and none; not the same as nothing recorded.
    public var noKnownAllergies = false
    /// 体格检查 (the findings in words; the measured signs are `vitals`)
    public var examination = ""
    public var vitals = VitalSigns()
    /// 辅助检查
    public var investigations = ""
    /// 诊断: ICD-10 codes of the catalogue, first the main one.
    public var diagnoses: [Diagnosis] = []
    /// 处理意见
    public var plan = ""

    public init() {}

    /// The text sections, in the order a note is read, with their field names.
    public static let sections: [(field: String, zh: String, en: String, path: WritableKeyPath<ClinicalNote, String> & Sendable)] = [
        ("chief_complaint", "主诉", "Chief complaint", \.chiefComplaint),
        ("present_illness", "现病史", "History of present illness", \.presentIllness),
        ("past_history", "既往史", "Past history", \.pastHistory),
        ("personal_history", "个人史", "Personal history", \.personalHistory),
        ("allergies", "过敏史", "Allergies", \.allergies),
        ("examination", "体格检查", "Physical examination", \.examination),
        ("investigations", "辅助检查", "Investigations", \.investigations),
        ("plan", "处理意见", "Plan", \.plan),
    ]

    /// The most a note's encoded form may weigh.
    public static let maxBytes = 200 * 1024

    /// Checks every section (no control characters but line breaks and tabs, no invisible
    /// formatting characters) and the whole note's size; returns the note with its texts trimmed.
    public func validated() throws(ValidationError) -> ClinicalNote {
        var note = self
        for s in Self.sections {
            note[keyPath: s.path] = try Self.sectionText(self[keyPath: s.path], field: s.field, zh: s.zh, en: s.en)
        }
        note.vitals = try vitals.validated()
        var seen = Set<String>()
        for d in note.diagnoses where !seen.insert(d.code).inserted {
            throw ValidationError(field: "diagnoses", code: "note.diagnosis_twice", zh: "诊断 \(d.code) 重复填写了，请删去一个。",
                                  en: "diagnosis \(d.code) is there twice; remove one.")
        }
        note.allergyCodes = allergyCodes.map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter { !$0.isEmpty }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        guard note.allergyCodes.count <= 30 else {
            throw ValidationError(field: "allergy_codes", code: "note.too_many_allergies", zh: "编码过敏最多 30 项。", en: "at most 30 coded allergies.")
        }
        guard !(note.noKnownAllergies && !note.allergyCodes.isEmpty) else {
            throw ValidationError(field: "allergy_codes", code: "note.allergy_conflict", zh: "已选“无已知过敏”，又填写了过敏项：请只保留一种。",
                                  en: "“no known allergies” is ticked and allergies are listed too; keep one of them.")
        }
        guard note.diagnoses.count <= 20 else {
            throw ValidationError(field: "diagnoses", code: "note.too_many_diagnoses", zh: "诊断最多 20 个。", en: "at most 20 diagnoses.")
        }
        let size = (try? JSONEncoder().encode(note).count) ?? Int.max
        guard size <= Self.maxBytes else {
            throw ValidationError(field: "note", code: "note.too_large", zh: "病历过大（\(size / 1024) KB），最多 200 KB；请精简后再保存。",
                                  en: "the note is too large (\(size / 1024) KB); at most 200 KB. Shorten it and save again.")
        }
        return note
    }

    static func sectionText(_ text: String, field: String, zh: String, en: String) throws(ValidationError) -> String {
        guard text.utf8.count <= maxBytes else {
            throw ValidationError(field: field, code: "note.too_large", zh: "\(zh)过长，整份病历最多 200 KB。", en: "\(en) is too long; a whole note is at most 200 KB.")
        }
        let value = text.replacingOccurrences(of: "\r\n", with: "\n").trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
        for scalar in value.unicodeScalars {
            let category = scalar.properties.generalCategory
            let allowed = scalar == "\n" || scalar == "\t"
            if !allowed && (category == .control || category == .format || category == .lineSeparator || category == .paragraphSeparator
                || scalar.properties.isDefaultIgnorableCodePoint) {
                throw ValidationError(field: field, code: "note.characters",
                                      zh: "\(zh)中含有控制字符或不可见的格式字符（\(InputText.codePoint(scalar))），请删除后重试。",
                                      en: "\(en) contains a control or invisible formatting character (\(InputText.codePoint(scalar))); remove it and try again.")
            }
        }
        return value
    }

    /// Every text of the note in one string, for search.
    public var searchableText: String {
        (Self.sections.map { self[keyPath: $0.path] } + diagnoses.map { "\($0.code) \($0.name)" }).filter { !$0.isEmpty }.joined(separator: "\n")
    }
}

/// One diagnosis: an ICD-10 code and its name in the catalogue.
public struct Diagnosis: Codable, Equatable, Hashable, Sendable {
    public var code: String
    public var name: String

    public init(code: String, name: String) {
        self.code = code
        self.name = name
    }
}

/// Structured vital signs; each is optional. The bounds catch typing mistakes (a temperature of
/// 60 °C, a pressure of 400): they are what a living person can be measured at, not clinical
/// thresholds, and a value outside them is refused with the bounds named.
public struct VitalSigns: Codable, Equatable, Sendable {
    /// Body temperature, °C.
    public var temperature: Double?
    /// Pulse, beats per minute.
    public var pulse: Int?
    /// Respiration, breaths per minute.
    public var respiration: Int?
    /// Blood pressure, mmHg.
    public var systolic: Int?
    public var diastolic: Int?
    /// Height, cm.
    public var height: Double?
    /// Weight, kg.
    public var weight: Double?

    public init(temperature: Double? = nil, pulse: Int? = nil, respiration: Int? = nil, systolic: Int? = nil, diastolic: Int? = nil,
                height: Double? = nil, weight: Double? = nil) {
        self.temperature = temperature
        self.pulse = pulse
        self.respiration = respiration
        self.systolic = systolic
        self.diastolic = diastolic
        self.height = height
        self.weight = weight
    }

    /// The accepted range of each sign: field, Chinese and English label, unit, bounds.
    public static let bounds: [(field: String, zh: String, en: String, unit: String, range: ClosedRange<Double>)] = [
        ("temperature", "体温", "temperature", "°C", 25...45),
        ("pulse", "脉搏", "pulse", "次/分", 20...300),
        ("respiration", "呼吸", "respiration", "次/分", 4...80),
        ("systolic", "收缩压", "systolic pressure", "mmHg", 40...300),
        ("diastolic", "舒张压", "diastolic pressure", "mmHg", 20...200),
        ("height", "身高", "height", "cm", 30...250),
        ("weight", "体重", "weight", "kg", 0.5...350),
    ]

    public var values: [String: Double] {
        var v: [String: Double] = [:]
        v["temperature"] = temperature
        v["pulse"] = pulse.map(Double.init)
        v["respiration"] = respiration.map(Double.init)
        v["systolic"] = systolic.map(Double.init)
        v["diastolic"] = diastolic.map(Double.init)
        v["height"] = height
        v["weight"] = weight
        return v
    }

    public var isEmpty: Bool { values.isEmpty }

    public func validated() throws(ValidationError) -> VitalSigns {
        let v = values
        for b in Self.bounds {
            guard let value = v[b.field] else { continue }
            guard value.isFinite, b.range.contains(value) else {
                throw ValidationError(field: b.field, code: "vitals.out_of_range",
                                      zh: "\(b.zh) \(Self.format(value)) \(b.unit) 超出可测范围（\(Self.format(b.range.lowerBound))–\(Self.format(b.range.upperBound)) \(b.unit)），请核对后重新填写。",
                                      en: "\(b.en) \(Self.format(value)) \(b.unit) is outside what can be measured (\(Self.format(b.range.lowerBound))–\(Self.format(b.range.upperBound)) \(b.unit)); check it and enter it again.")
            }
        }
        if let s = systolic, let d = diastolic, d >= s {
            throw ValidationError(field: "diastolic", code: "vitals.pressure_order", zh: "舒张压（\(d)）应低于收缩压（\(s)），请核对。",
                                  en: "the diastolic pressure (\(d)) must be below the systolic (\(s)); check them.")
        }
        if (systolic == nil) != (diastolic == nil) {
            throw ValidationError(field: "systolic", code: "vitals.pressure_pair", zh: "血压请同时填写收缩压和舒张压。", en: "enter both the systolic and the diastolic pressure.")
        }
        return self
    }

    /// Reads a sign typed in a form ("" is none); a number that does not parse is refused.
    public static func parse(_ text: String, field: String) throws(ValidationError) -> Double? {
        let t = InputText.foldingFullWidth(text).trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return nil }
        guard let value = Double(t), value.isFinite else {
            let label = bounds.first { $0.field == field }
            throw ValidationError(field: field, code: "vitals.not_a_number", zh: "\(label?.zh ?? field)请填写数字（如 36.8）。",
                                  en: "\(label?.en ?? field) must be a number (such as 36.8).")
        }
        return value
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(format: "%.1f", value)
    }
}

/// What a version of a clinical document is.
public enum NoteVersionKind: String, Codable, Sendable, CaseIterable {
    /// Saved, not signed: the author may save again.
    case draft
    /// Signed: locked; a change is an amendment.
    case signed
    /// A change after signing, with its reason; it is signed as it is saved.
    case amendment
    /// The note was written for the wrong patient or visit: it stays, marked (FHIR `entered-in-error`).
    case enteredInError = "entered_in_error"

    public var zh: String {
        switch self {
        case .draft: "草稿"
        case .signed: "已签名"
        case .amendment: "修改（已签名）"
        case .enteredInError: "作废（录入错误）"
        }
    }

    public var en: String {
        switch self {
        case .draft: "draft"
        case .signed: "signed"
        case .amendment: "amendment (signed)"
        case .enteredInError: "entered in error"
        }
    }

    /// Whether the note is locked after a version of this kind.
    public var locks: Bool { self != .draft }
}

/// A note template (病历模板): text for some sections of a note, for the department or one doctor.
/// Its texts may carry placeholders that the visit fills in when the template is applied.
public struct NoteTemplate: Codable, Equatable, Sendable {
    public enum Scope: String, Codable, Sendable, CaseIterable {
        /// Every doctor of the department sees it; the department head keeps it.
        case department
        /// Only its author sees it.
        case personal
    }

    public var name: String
    public var scope: Scope
    public var department: String
    /// The staff number of its author.
    public var owner: String
    /// The sections it fills (vitals and diagnoses stay the visit's own).
    public var note: ClinicalNote

    public init(name: String, scope: Scope, department: String, owner: String, note: ClinicalNote) {
        self.name = name; self.scope = scope; self.department = department; self.owner = owner; self.note = note
    }

    /// The placeholders a template's text may carry, and what each stands for.
    public static let placeholders: [(token: String, en: String)] = [
        ("【姓名】", "the patient's name"), ("【性别】", "the patient's sex"), ("【年龄】", "the patient's age"), ("【就诊日期】", "the visit's date"),
    ]

    public func validated() throws(ValidationError) -> NoteTemplate {
        var t = self
        t.name = try InputText.nonEmptyText(name, field: "templateName", maxLength: 50, zhLabel: "模板名称", enLabel: "template name")
        var note = try self.note.validated()
        note.vitals = VitalSigns()
        note.diagnoses = []
        guard ClinicalNote.sections.contains(where: { !note[keyPath: $0.path].isEmpty }) else {
            throw ValidationError(field: "template", code: "template.empty", zh: "模板至少要有一段内容。", en: "a template needs text in at least one section.")
        }
        t.note = note
        return t
    }

    /// The note with the template applied: an empty section takes the template's text, a section
    /// already written keeps its text and gets the template's below it; placeholders filled in.
    public func applied(to note: ClinicalNote, values: [String: String]) -> ClinicalNote {
        var out = note
        for s in ClinicalNote.sections {
            var text = self.note[keyPath: s.path]
            guard !text.isEmpty else { continue }
            for (token, value) in values { text = text.replacingOccurrences(of: token, with: value) }
            let mine = out[keyPath: s.path]
            out[keyPath: s.path] = mine.isEmpty ? text : mine + "\n" + text
        }
        return out
    }
}

extension ClinicalNote {
    /// Notes saved before a field existed decode with its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        func text(_ key: CodingKeys) throws -> String { try c.decodeIfPresent(String.self, forKey: key) ?? "" }
        chiefComplaint = try text(.chiefComplaint); presentIllness = try text(.presentIllness); pastHistory = try text(.pastHistory)
        personalHistory = try text(.personalHistory); allergies = try text(.allergies); examination = try text(.examination)
        investigations = try text(.investigations); plan = try text(.plan)
        vitals = try c.decodeIfPresent(VitalSigns.self, forKey: .vitals) ?? VitalSigns()
        diagnoses = try c.decodeIfPresent([Diagnosis].self, forKey: .diagnoses) ?? []
        allergyCodes = try c.decodeIfPresent([String].self, forKey: .allergyCodes) ?? []
        noKnownAllergies = try c.decodeIfPresent(Bool.self, forKey: .noKnownAllergies) ?? false
    }
}
