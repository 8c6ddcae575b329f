import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore

/// One line of a prescription as signed: the drug as the catalogue said it then, and how it is taken.
package struct RxLine: Sendable, Codable, Hashable {
    package var drug: String
    package var label: String
    package var dose: Double
    package var doseUnit: String
    package var frequency: DoseFrequency
    package var days: Int
    package var packages: Int
    package var packageUnit: String
    package var priceFen: Int
    package var note: String

    package var totalFen: Int { priceFen * packages }
}

/// What is sealed in a prescription: its lines, the check's alerts with the doctor's reasons,
/// and the patient facts the check used.
package struct RxBody: Sendable, Codable, Hashable {
    package var lines: [RxLine]
    package var alerts: [RxAlert]
    package var diagnoses: [Diagnosis]
    package var weightKg: Double?
    package var pregnant: Bool
    package var lactating: Bool
    package var eGFR: Double?
}

/// A pharmacist's review (审方) of a prescription: approved, or refused back to the doctor with the reason.
package struct RxReview: Sendable, Hashable {
    package enum Verdict: String, Sendable {
        case approved, refused
        package var zh: String { self == .approved ? "审方通过" : "审方退回" }
        package var en: String { self == .approved ? "approved" : "refused" }
    }

    package var key: String
    package var verdict: Verdict
    package var reason: String
    package var pharmacist: String
    package var pharmacistName: String
    package var atMs: Int64
}

/// A signed prescription (MedicationRequest), a clinical document: inserted once, never changed;
/// what happens to it after (reviews, and dispensing) is recorded beside it.
package struct Prescription: Sendable {
    package enum Status: String, Sendable {
        case awaitingReview = "awaiting_review", approved, refused

        package var zh: String { self == .awaitingReview ? "待审方" : self == .approved ? "待发药" : "已退回医生" }
        package var en: String { self == .awaitingReview ? "awaiting review" : self == .approved ? "awaiting dispensing" : "refused, back to the doctor" }
    }

    package var id: String
    package var encounter: String
    package var patient: String
    package var department: String
    package var practitioner: String
    package var date: String
    package var kind: PrescriptionKind
    package var pharmacy: Pharmacy
    package var body: RxBody
    package var ruleVersion: String
    package var author: String
    package var authorName: String
    package var node: String
    package var atMs: Int64
    package var totalFen: Int
    /// Oldest first.
    package var reviews: [RxReview] = []

    package var status: Status {
        guard let last = reviews.last else { return .awaitingReview }
        return last.verdict == .approved ? .approved : .refused
    }

    init?(id: String, row: [String: ColumnValue]) {
        func text(_ c: String) -> String { row[c]?.textValue ?? "" }
        // A peer's row is read with care: numbers out of any prescription's range make it unreadable here.
        guard let body = try? JSONDecoder().decode(RxBody.self, from: Data(text("body").utf8)), let kind = PrescriptionKind(rawValue: text("kind")),
              let pharmacy = Pharmacy(rawValue: text("pharmacy")),
              body.lines.allSatisfy({ (1...366).contains($0.days) && (1...999).contains($0.packages) && (0...100_000_000).contains($0.priceFen) }) else { return nil }
        self.id = id; self.body = body; self.kind = kind; self.pharmacy = pharmacy
        encounter = text("encounter"); patient = text("patient"); department = text("department"); practitioner = text("practitioner")
        date = text("date"); ruleVersion = text("rule_version"); author = text("author"); authorName = text("author_name"); node = text("node")
        atMs = row["at_ms"]?.integerValue ?? 0; totalFen = Int(row["total_fen"]?.integerValue ?? 0)
    }
}

/// One line as the doctor typed it on the form.
package struct RxLineInput: Sendable, Codable, Hashable {
    package var drug: String
    package var dose: String
    package var frequency: String
    package var days: String
    package var packages: String
    package var note: String

    package init(drug: String, dose: String, frequency: String, days: String, packages: String = "", note: String = "") {
        self.drug = drug; self.dose = dose; self.frequency = frequency; self.days = days; self.packages = packages; self.note = note
    }

    package var isBlank: Bool { [drug, dose, days, packages, note].allSatisfy { InputText.trimmed($0).isEmpty } }
}

/// The prescription form as submitted.
package struct RxInput: Sendable {
    package var lines: [RxLineInput]
    package var weight: String
    /// "", `pregnant` or `lactating`.
    package var pregnancy: String
    package var emergency: Bool
    /// Alert code → the doctor's reason for going on.
    package var overrides: [String: String]

    package init(lines: [RxLineInput], weight: String = "", pregnancy: String = "", emergency: Bool = false, overrides: [String: String] = [:]) {
        self.lines = lines; self.weight = weight; self.pregnancy = pregnancy; self.emergency = emergency; self.overrides = overrides
    }
}

/// Who signs: their title sets the antibiotic tiers, their rights the controlled drugs.
package struct Prescriber: Sendable {
    package var staff: String
    package var name: String
    package var title: PractitionerTitle?
    package var rights: Set<PrescribingRight>

    package init(staff: String, name: String, title: PractitionerTitle?, rights: Set<PrescribingRight>) {
        self.staff = staff; self.name = name; self.title = title; self.rights = rights
    }
}

/// A prescription checked but not signed: what the form shows.
package struct RxDraft: Sendable {
    package var kind: PrescriptionKind
    package var pharmacy: Pharmacy
    package var lines: [RxLine]
    package var drugs: [Drug]
    package var alerts: [RxAlert]
    package var patient: RxPatient
    package var diagnoses: [Diagnosis]
    package var ruleVersion: String

    package var blocked: Bool { alerts.contains { $0.level == .block } }
    package var totalFen: Int { lines.reduce(0) { $0 + $1.totalFen } }
}

/// Writing, checking and signing prescriptions from a visit, and the pharmacist's review.
package struct PrescriptionDesk: Sendable {
    package let store: any RecordStore
    package let clock: NodeClock
    package let node: String
    package let catalogue: DrugCatalogue
    package let rules: RulePack
    package let policy: SupplyPolicy
    package let records: RecordDesk
    package let orders: OrderDesk?

    package init(store: any RecordStore, clock: NodeClock, node: String, catalogue: DrugCatalogue, rules: RulePack, policy: SupplyPolicy,
                 records: RecordDesk, orders: OrderDesk?) {
        self.store = store; self.clock = clock; self.node = node; self.catalogue = catalogue; self.rules = rules; self.policy = policy
        self.records = records; self.orders = orders
    }

    static func bad(_ field: String, _ code: String, zh: String, en: String) -> StaffError {
        StaffError(400, code, zh: zh, en: en)
    }

    // MARK: Checking

    /// Reads the form, applies the prescription rules (refusing what they forbid) and runs the rule
    /// pack. Nothing is stored.
    package func check(_ visit: VisitRecord, _ input: RxInput, by prescriber: Prescriber) throws(StaffError) -> RxDraft {
        guard !visit.enteredInError else {
            throw StaffError(409, "record.entered_in_error", zh: "该病历已作废（录入错误），不能再开处方。", en: "this note was marked entered in error; no prescription can be written from it.")
        }
        let filled = input.lines.filter { !$0.isBlank }
        guard !filled.isEmpty else { throw Self.bad("lines", "rx.empty", zh: "处方中没有药品。", en: "the prescription has no drug.") }
        guard filled.count <= policy.drugsPerSheet else {
            throw Self.bad("lines", "rx.too_many", zh: "每张处方最多 \(policy.drugsPerSheet) 种药品（《处方管理办法》第六条），请分开开方。",
                           en: "a prescription sheet holds at most \(policy.drugsPerSheet) drugs (Prescription Regulations, art. 6); write a second one.")
        }
        let facts = try patientFacts(visit, input)
        // This visit's own diagnoses (a carried-forward note carries history and allergies, none).
        let diagnoses = visit.current?.note.diagnoses ?? []
        let chronic = policy.isChronic(diagnoses.map(\.code))
        var drugs: [Drug] = [], doses: [RxDose] = [], typed: [(days: Int, packages: Int?, note: String)] = []
        for (n, line) in filled.enumerated() {
            let row = n + 1
            guard let drug = catalogue.drug(line.drug) ?? uniqueMatch(line.drug) else {
                let q = String(line.drug.prefix(20))
                throw Self.bad("drug", "rx.unknown_drug", zh: "第 \(row) 行：药品“\(q)”不在本院药品目录中，请从列表中选择。",
                               en: "line \(row): “\(q)” is not in the hospital's drug catalogue; pick a drug from the list.")
            }
            guard let dose = Self.number(line.dose) else {
                throw Self.bad("dose", "rx.dose_format", zh: "第 \(row) 行：剂量“\(String(line.dose.prefix(12)))”不是数字。", en: "line \(row): the dose “\(String(line.dose.prefix(12)))” is not a number.")
            }
            let frequency: DoseFrequency
            do { frequency = try DoseFrequency(parsing: line.frequency) } catch { throw .invalid(error) }
            guard let days = Int(InputText.trimmed(InputText.foldingFullWidth(line.days))), days >= 1 else {
                throw Self.bad("days", "rx.days_format", zh: "第 \(row) 行：天数须为至少 1 的整数。", en: "line \(row): the days must be a whole number of at least 1.")
            }
            try obeyRules(drug, days: days, row: row, emergency: input.emergency, chronic: chronic, prescriber: prescriber)
            let note = InputText.trimmed(line.note)
            guard note.count <= 100, !note.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Self.bad("note", "rx.note", zh: "第 \(row) 行：用法备注最多 100 个字符。", en: "line \(row): the note has at most 100 characters.")
            }
            let packages = InputText.trimmed(line.packages)
            guard packages.isEmpty || Int(InputText.foldingFullWidth(packages)) != nil else {
                throw Self.bad("packages", "rx.packages", zh: "第 \(row) 行：数量须为整数（留空则自动折算）。", en: "line \(row): the quantity is a whole number (empty: computed).")
            }
            guard !drugs.contains(where: { $0.code == drug.code }) else {
                throw Self.bad("drug", "rx.same_drug", zh: "第 \(row) 行：\(drug.genericZh) 已在本处方中，同一药品请写在一行。", en: "line \(row): \(drug.genericEn) is already on this prescription; one drug goes on one line.")
            }
            if (drug.controlled == .narcotic || drug.controlled == .psychotropic1) && drug.injection && (frequency != .st || days != 1) {
                throw Self.bad("frequency", "rx.controlled_injection", zh: "第 \(row) 行：\(drug.controlled.zh)注射剂每张处方为一次常用量（《处方管理办法》第二十三条）：频次请用 st，天数 1。",
                               en: "line \(row): a \(drug.controlled.en) injection is one usual dose per prescription (Prescription Regulations, art. 23): frequency st, 1 day.")
            }
            if drug.supplyControlled, frequency == .prn {
                throw Self.bad("frequency", "rx.controlled_prn", zh: "第 \(row) 行：\(drug.controlled.zh)须写明给药频次，以便按天数核定数量。", en: "line \(row): a \(drug.controlled.en) drug needs a set frequency, so that its quantity follows from the days.")
            }
            drugs.append(drug)
            doses.append(RxDose(drug: drug, dose: dose, frequency: frequency))
            typed.append((days, Int(InputText.foldingFullWidth(packages)), note))
        }
        // The doses first (a zero or absurd dose is refused as such), then the quantities.
        var alerts: [RxAlert]
        do { alerts = try rules.check(doses, patient: facts) } catch { throw .invalid(error) }
        for i in alerts.indices { alerts[i].override = InputText.trimmed(input.overrides[alerts[i].code] ?? "") }
        var lines: [RxLine] = []
        for (n, (d, t)) in zip(doses, typed).enumerated() {
            let drug = d.drug
            let computed = d.frequency.perDay.flatMap { drug.packages(dose: d.dose, doses: ($0 * Double(t.days)).rounded(.up)) }
                ?? (d.frequency == .st ? drug.packages(dose: d.dose, doses: 1) : nil)
            // A typed quantity may round down, never past what the days need: the supply rules hold.
            if let typed = t.packages, let computed, typed > computed {
                throw Self.bad("packages", "rx.packages_over", zh: "第 \(n + 1) 行：\(drug.genericZh) 按剂量与天数需 \(computed)\(drug.packageUnit)，不能多开（现为 \(typed)）。",
                               en: "line \(n + 1): the dose and days of \(drug.genericEn) need \(computed) \(drug.packageUnit); no more may be given (\(typed) asked).")
            }
            if t.packages != nil, computed == nil, drug.supplyControlled {
                throw Self.bad("packages", "rx.controlled_quantity", zh: "第 \(n + 1) 行：\(drug.controlled.zh)的数量须由剂量、频次与天数算出。", en: "line \(n + 1): the quantity of a \(drug.controlled.en) drug must follow from its dose, frequency and days.")
            }
            guard let packages = t.packages ?? computed, (1...99).contains(packages) else {
                throw Self.bad("packages", "rx.packages", zh: "第 \(n + 1) 行：\(drug.genericZh) 的数量无法按剂量算出或超出 1 到 99 \(drug.packageUnit)，请填写数量。",
                               en: "line \(n + 1): the quantity of \(drug.genericEn) cannot be computed from the dose or is outside 1 to 99 \(drug.packageUnit); give the quantity.")
            }
            lines.append(RxLine(drug: drug.code, label: drug.label, dose: d.dose, doseUnit: drug.doseUnit, frequency: d.frequency, days: t.days,
                                packages: packages, packageUnit: drug.packageUnit, priceFen: drug.priceFen, note: t.note))
        }
        let kind = try sheetKind(drugs, age: facts.age, emergency: input.emergency)
        let pharmacies = Set(drugs.map(\.pharmacy))
        guard pharmacies.count == 1, let pharmacy = pharmacies.first else {
            throw Self.bad("lines", "rx.two_pharmacies", zh: "西药房与中药房的药品请分开开方（两张处方）。", en: "drugs of the Western and the Chinese medicine pharmacy go on two separate prescriptions.")
        }
        // Art. 19 lets chronic diseases have longer, "but the doctor states the reason".
        for line in lines where line.days > policy.ordinaryDays && !input.emergency {
            let name = catalogue.drug(line.drug).map { ($0.genericZh, $0.genericEn) } ?? (line.label, line.label)
            alerts.append(RxAlert(code: "supply:\(line.drug)", level: .warning, kind: "supply",
                                  zh: "延长用量：\(name.0) \(line.days) 天，超过普通处方的 \(policy.ordinaryDays) 天（慢性病）；请注明理由。",
                                  en: "longer supply: \(line.days) days of \(name.1), beyond an ordinary prescription's \(policy.ordinaryDays) (a chronic disease); state the reason.",
                                  source: "《处方管理办法》第十九条 / Prescription Regulations, art. 19", override: InputText.trimmed(input.overrides["supply:\(line.drug)"] ?? "")))
        }
        if facts.age == nil {
            alerts.append(RxAlert(code: "age:unknown", level: .warning, kind: "age",
                                  zh: "患者出生日期不详：剂量按成人规则核对，儿童剂量与年龄限制未能核对。", en: "the patient's birth date is unknown: doses were checked against adult rules; children's doses and age limits could not be.",
                                  source: "患者信息 / demographics", override: InputText.trimmed(input.overrides["age:unknown"] ?? "")))
        }
        return RxDraft(kind: kind, pharmacy: pharmacy, lines: lines, drugs: drugs, alerts: alerts, patient: facts, diagnoses: diagnoses, ruleVersion: rules.version)
    }

    private func uniqueMatch(_ text: String) -> Drug? {
        let found = catalogue.search(text, limit: 2)
        return found.count == 1 ? found[0] : nil
    }

    static func number(_ text: String) -> Double? {
        let t = InputText.trimmed(InputText.foldingFullWidth(text))
        guard !t.isEmpty, t.count <= 12, let v = Double(t), v.isFinite else { return nil }
        return v
    }

    /// The rules of 《处方管理办法》 and 《抗菌药物临床应用管理办法》 for one line: refused, not warned.
    private func obeyRules(_ drug: Drug, days: Int, row: Int, emergency: Bool, chronic: Bool, prescriber: Prescriber) throws(StaffError) {
        switch drug.controlled {
        case .narcotic, .psychotropic1:
            guard prescriber.rights.contains(.narcotic) else {
                throw StaffError(403, "rx.controlled_right", zh: "第 \(row) 行：\(drug.genericZh) 属\(drug.controlled.zh)，您尚未取得麻醉药品和第一类精神药品处方权（《处方管理办法》）。",
                                 en: "line \(row): \(drug.genericEn) is a \(drug.controlled.en) drug, and you do not hold the narcotic and class I psychotropic prescribing right (Prescription Regulations).")
            }
        case .none, .psychotropic2, .toxic, .radioactive: break
        }
        switch drug.tier {
        case .none, .unrestricted: break
        case .restricted, .special:
            guard let title = prescriber.title, SupplyPolicy.allows(title, tier: drug.tier) else {
                throw StaffError(403, "rx.antibiotic_tier", zh: "第 \(row) 行：\(drug.genericZh) 为\(drug.tier.zh)抗菌药物，\(prescriber.title?.zh ?? "无职称")无此处方权（《抗菌药物临床应用管理办法》第二十四条）。",
                                 en: "line \(row): \(drug.genericEn) is a \(drug.tier.en) antibacterial, which \(prescriber.title?.en ?? "a doctor without a title") may not prescribe (Antibacterial Use Measures, art. 24).")
            }
            if drug.tier == .special {
                guard policy.outpatientSpecialUse else {
                    throw StaffError(403, "rx.antibiotic_outpatient", zh: "第 \(row) 行：\(drug.genericZh) 为特殊使用级抗菌药物，不得在门诊使用（《抗菌药物临床应用管理办法》第二十八条）。",
                                     en: "line \(row): \(drug.genericEn) is a special-use antibacterial, which is not used in outpatient clinics (Antibacterial Use Measures, art. 28).")
                }
                guard prescriber.rights.contains(.antibioticSpecial) else {
                    throw StaffError(403, "rx.antibiotic_right", zh: "第 \(row) 行：\(drug.genericZh) 需特殊使用级抗菌药物处方权。", en: "line \(row): \(drug.genericEn) needs the special-use antibiotic prescribing right.")
                }
            }
        }
        let most = policy.maxDays(controlled: drug.controlled, injection: drug.injection, sustainedRelease: drug.sustainedRelease, emergency: emergency, chronic: chronic)
        guard days <= most else {
            let why = drug.controlled != .none && drug.controlled != .radioactive ? "\(drug.controlled.zh)" : emergency ? "急诊处方" : chronic ? "慢性病处方" : "门诊处方"
            let whyEn = drug.controlled != .none && drug.controlled != .radioactive ? "a \(drug.controlled.en)" : emergency ? "an emergency prescription" : chronic ? "a chronic-disease prescription" : "an outpatient prescription"
            throw Self.bad("days", "rx.days_limit", zh: "第 \(row) 行：\(why)最多开 \(most) 天用量（《处方管理办法》），现为 \(days) 天。",
                           en: "line \(row): \(whyEn) supplies at most \(most) days (Prescription Regulations); this line has \(days).")
        }
    }

    /// The sheet's kind. Narcotic and class I psychotropic drugs go on their own sheet, class II on
    /// theirs (the 处方标准's separate sheets), never beside ordinary drugs.
    private func sheetKind(_ drugs: [Drug], age: Int?, emergency: Bool) throws(StaffError) -> PrescriptionKind {
        let narcotic = drugs.filter { $0.controlled == .narcotic || $0.controlled == .psychotropic1 }.count
        let second = drugs.filter { $0.controlled == .psychotropic2 }.count
        if narcotic > 0 || second > 0 {
            guard narcotic == drugs.count || second == drugs.count else {
                throw Self.bad("lines", "rx.sheet_mixed", zh: "麻醉药品、第一类精神药品与第二类精神药品须各自单独开具处方，不能与其他药品同开。",
                               en: "narcotic and class I psychotropic drugs, and class II psychotropic drugs, each go on their own prescription, never beside other drugs.")
            }
            return narcotic > 0 ? .narcotic : .psychotropic2
        }
        if emergency { return .emergency }
        if let age, age < policy.pediatricBelowAge { return .pediatric }
        return .ordinary
    }

    /// What the check needs to know of the patient: age and sex from demographics, allergies from
    /// the note, weight and pregnancy from the form, eGFR from the newest creatinine, the drugs of
    /// other prescriptions still being taken.
    package func patientFacts(_ visit: VisitRecord, _ input: RxInput) throws(StaffError) -> RxPatient {
        let e = visit.encounter
        let row: [String: ColumnValue]
        do { row = try store.liveRow("patient", key: e.patient) ?? [:] } catch { throw .storeUnavailable }
        let age = CivilDate.age(birthDate: row["birth_date"]?.textValue, on: e.date)
        let female = row["sex"]?.textValue == Sex.female.rawValue
        let note = visit.current?.note ?? (try? records.carriedForward(patient: e.patient, before: e.id).note) ?? ClinicalNote()
        var weight: Double?
        if !InputText.trimmed(input.weight).isEmpty {
            guard let kg = Self.number(input.weight), (0.3...300).contains(kg) else {
                throw Self.bad("weight", "rx.weight_format", zh: "体重须为 0.3 到 300 之间的千克数。", en: "the weight is a number of kilograms between 0.3 and 300.")
            }
            weight = kg
        } else {
            // Only this visit's own weight: a carried-forward one may be months old (a growing child).
            weight = visit.current?.note.vitals.weight
        }
        guard ["", "pregnant", "lactating"].contains(input.pregnancy) else {
            throw Self.bad("pregnancy", "rx.pregnancy", zh: "妊娠/哺乳状态无法识别。", en: "the pregnancy or breastfeeding state is not understood.")
        }
        var eGFR: Double?
        if let age, let reports = try? orders?.currentReports(patient: e.patient) {
            let creatinine = reports.sorted { $0.atMs > $1.atMs }.lazy.compactMap { $0.observations.first { $0.code == "CREA" } }.first
            if let value = creatinine.flatMap({ Double($0.value) }) { eGFR = RenalFunction.eGFR(creatinineMicromolar: value, age: age, female: female) }
        }
        return RxPatient(age: age, female: female, weightKg: weight, pregnant: input.pregnancy == "pregnant", lactating: input.pregnancy == "lactating",
                         eGFR: eGFR, allergyCodes: note.allergyCodes, allergyText: note.allergies,
                         currentDrugs: try activeDrugs(patient: e.patient, except: e.id))
    }

    /// Drugs of the patient's other prescriptions (not refused) whose supply has not run out.
    func activeDrugs(patient: String, except encounter: String) throws(StaffError) -> [Drug] {
        let now = clock.wallMillis()
        return try prescriptions(patient: patient, limit: 50).filter { $0.encounter != encounter && $0.status != .refused }.flatMap { rx in
            rx.body.lines.filter { rx.atMs + Int64(min(max($0.days, 0), 366)) * 86_400_000 > now }.compactMap { catalogue.drug($0.drug) }
        }
    }

    // MARK: Signing

    /// Checks again and signs: refused while a block stands or a warning has no reason (at least 4 characters).
    /// `id` and `atMs` are fixed only by the demo's history and the tests.
    package func sign(_ visit: VisitRecord, _ input: RxInput, by prescriber: Prescriber, id: String? = nil, atMs: Int64? = nil) throws(StaffError) -> Prescription {
        let draft = try check(visit, input, by: prescriber)
        if let block = draft.alerts.first(where: { $0.level == .block }) {
            throw StaffError(409, "rx.blocked", zh: "不能签名：\(block.zh)", en: "cannot sign: \(block.en)")
        }
        if let open = draft.alerts.first(where: { $0.level == .warning && $0.override.count < 4 }) {
            throw StaffError(409, "rx.override_needed", zh: "请为每条警示填写继续用药的理由（至少 4 个字）：\(open.zh)", en: "give a reason (at least 4 characters) for each warning you go on despite: \(open.en)")
        }
        if let long = draft.alerts.first(where: { $0.override.count > 300 }) {
            throw Self.bad("override", "rx.override_long", zh: "理由最多 300 个字符：\(long.zh)", en: "a reason has at most 300 characters: \(long.en)")
        }
        let e = visit.encounter
        let key = id ?? "rx-" + UUID().uuidString.lowercased()
        let body = RxBody(lines: draft.lines, alerts: draft.alerts, diagnoses: draft.diagnoses, weightKg: draft.patient.weightKg,
                          pregnant: draft.patient.pregnant, lactating: draft.patient.lactating, eGFR: draft.patient.eGFR)
        guard let json = try? JSONEncoder().encode(body) else { throw .storeUnavailable }
        do {
            try store.write { w in
                _ = try w.insert("prescription", key: key, values: [
                    "encounter": .text(e.id), "patient": .text(e.patient), "department": .text(e.department), "practitioner": .text(e.practitioner),
                    "date": .text(e.date), "kind": .text(draft.kind.rawValue), "pharmacy": .text(draft.pharmacy.rawValue),
                    "body": .text(String(decoding: json, as: UTF8.self)), "rule_version": .text(draft.ruleVersion), "author": .text(prescriber.staff),
                    "author_name": .text(prescriber.name), "node": .text(node), "at_ms": .integer(atMs ?? clock.wallMillis()),
                    "total_fen": .integer(Int64(draft.totalFen)),
                ])
            }
        } catch { throw .storeUnavailable }
        guard let signed = try prescription(key) else { throw .storeUnavailable }
        return signed
    }

    // MARK: Reading

    package func prescription(_ id: String) throws(StaffError) -> Prescription? {
        do {
            guard let row = try store.liveRow("prescription", key: id), var rx = Prescription(id: id, row: row) else { return nil }
            rx.reviews = try reviews(of: id)
            return rx
        } catch let error as StaffError { throw error } catch { throw .storeUnavailable }
    }

    package func prescriptions(encounter: String) throws(StaffError) -> [Prescription] {
        try list(["encounter": .text(encounter)], limit: 50)
    }

    package func prescriptions(patient: String, limit: Int = 200) throws(StaffError) -> [Prescription] {
        try list(["patient": .text(patient)], limit: limit)
    }

    /// A pharmacy's prescriptions of one day, newest first.
    package func queue(_ pharmacy: Pharmacy, date: String) throws(StaffError) -> [Prescription] {
        try list(["pharmacy": .text(pharmacy.rawValue), "date": .text(date)], limit: 500)
    }

    private func list(_ equal: [String: ColumnValue], limit: Int) throws(StaffError) -> [Prescription] {
        do {
            let rows = try store.liveRows("prescription", equal: equal, range: nil, newestBy: "at_ms", limit: limit)
            var found = rows.compactMap { Prescription(id: $0.key, row: $0.row) }
            for i in found.indices { found[i].reviews = try reviews(of: found[i].id) }
            return found
        } catch let error as StaffError { throw error } catch { throw .storeUnavailable }
    }

    private func reviews(of id: String) throws(StaffError) -> [RxReview] {
        do {
            return try store.liveRows("prescription_review", equal: ["prescription": .text(id)], range: nil, newestBy: "at_ms", limit: 50).map { r in
                RxReview(key: r.key, verdict: RxReview.Verdict(rawValue: r.row["verdict"]?.textValue ?? "") ?? .refused, reason: r.row["reason"]?.textValue ?? "",
                         pharmacist: r.row["pharmacist"]?.textValue ?? "", pharmacistName: r.row["pharmacist_name"]?.textValue ?? "",
                         atMs: r.row["at_ms"]?.integerValue ?? 0)
            }.sorted { ($0.atMs, $0.key) < ($1.atMs, $1.key) }
        } catch { throw .storeUnavailable }
    }

    // MARK: Review (审方)

    /// The pharmacist's verdict; a refusal needs the reason the doctor will read. A prescription
    /// already refused is not reviewed again (the doctor writes a new one).
    package func review(_ id: String, verdict: RxReview.Verdict, reason: String, pharmacist: String, name: String, atMs: Int64? = nil) throws(StaffError) -> Prescription {
        guard let rx = try prescription(id) else {
            throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.")
        }
        guard rx.status == .awaitingReview else {
            throw StaffError(409, "rx.reviewed", zh: "这张处方已审过（\(rx.status.zh)）。", en: "this prescription was already reviewed (\(rx.status.en)).")
        }
        let text = InputText.trimmed(reason)
        guard verdict == .approved || text.count >= 4, text.count <= 300, !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" }) else {
            throw Self.bad("reason", "rx.review_reason", zh: "退回处方须写明理由（4 到 300 个字），医生会看到。", en: "a refusal needs its reason (4 to 300 characters); the doctor will read it.")
        }
        do {
            try store.write { w in
                _ = try w.insert("prescription_review", key: "\(id)/\(UUID().uuidString.lowercased())", values: [
                    "prescription": .text(id), "verdict": .text(verdict.rawValue), "reason": .text(text), "pharmacist": .text(pharmacist),
                    "pharmacist_name": .text(name), "at_ms": .integer(atMs ?? clock.wallMillis()), "rule_version": .text(rules.version),
                ])
            }
        } catch { throw .storeUnavailable }
        guard let reviewed = try prescription(id) else { throw .storeUnavailable }
        return reviewed
    }

    // MARK: Saved combinations (协定处方)

    /// A doctor's saved combination: a name and the lines as typed.
    package struct SavedSet: Sendable, Hashable {
        package var id: String
        package var name: String
        package var lines: [RxLineInput]
    }

    /// Saves the form's lines under a name for this doctor (every drug in the catalogue, at most a sheet's drugs).
    package func saveSet(owner: String, name: String, lines: [RxLineInput]) throws(StaffError) -> SavedSet {
        let title = InputText.trimmed(name)
        guard (1...30).contains(title.count), !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw Self.bad("name", "rx.set_name", zh: "协定处方名称为 1 到 30 个字符。", en: "a saved combination's name is 1 to 30 characters.")
        }
        let filled = lines.filter { !$0.isBlank }
        guard !filled.isEmpty, filled.count <= policy.drugsPerSheet else {
            throw Self.bad("lines", "rx.set_lines", zh: "协定处方须有 1 到 \(policy.drugsPerSheet) 种药品。", en: "a saved combination has 1 to \(policy.drugsPerSheet) drugs.")
        }
        var kept: [RxLineInput] = []
        for line in filled {
            guard let drug = catalogue.drug(line.drug) ?? uniqueMatch(line.drug) else {
                throw Self.bad("drug", "rx.unknown_drug", zh: "药品“\(String(line.drug.prefix(20)))”不在本院药品目录中。", en: "“\(String(line.drug.prefix(20)))” is not in the hospital's drug catalogue.")
            }
            kept.append(RxLineInput(drug: drug.code, dose: String(line.dose.prefix(12)), frequency: String(line.frequency.prefix(8)), days: String(line.days.prefix(3)),
                                    packages: "", note: String(line.note.prefix(100))))
        }
        guard let json = try? JSONEncoder().encode(kept) else { throw .storeUnavailable }
        let id = "set-" + UUID().uuidString.lowercased()
        do {
            try store.write { w in
                _ = try w.insert("rx_set", key: id, values: ["owner": .text(owner), "name": .text(title), "lines": .text(String(decoding: json, as: UTF8.self)),
                                                          "retired": .integer(0), "updated_ms": .integer(clock.wallMillis())])
            }
        } catch { throw .storeUnavailable }
        return SavedSet(id: id, name: title, lines: kept)
    }

    /// A doctor's saved combinations in use, by name.
    package func sets(of owner: String) throws(StaffError) -> [SavedSet] {
        let rows: [(key: String, row: [String: ColumnValue])]
        do { rows = try store.liveRows("rx_set", equal: ["owner": .text(owner)], range: nil, newestBy: "updated_ms", limit: 200) } catch { throw .storeUnavailable }
        return rows.compactMap { r -> SavedSet? in
            guard r.row["retired"]?.integerValue != 1, let text = r.row["lines"]?.textValue,
                  let lines = try? JSONDecoder().decode([RxLineInput].self, from: Data(text.utf8)) else { return nil }
            return SavedSet(id: r.key, name: r.row["name"]?.textValue ?? "", lines: lines)
        }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
    }

    /// The drugs this doctor prescribed most, for the common-drug list (常用药).
    package func commonDrugs(of staff: String, limit: Int = 12) throws(StaffError) -> [Drug] {
        let rows: [(key: String, row: [String: ColumnValue])]
        do { rows = try store.liveRows("prescription", equal: ["author": .text(staff)], range: nil, newestBy: "at_ms", limit: 300) } catch { throw .storeUnavailable }
        var counts: [String: Int] = [:]
        for rx in rows.compactMap({ Prescription(id: $0.key, row: $0.row) }) { for line in rx.body.lines { counts[line.drug, default: 0] += 1 } }
        return counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.prefix(limit).compactMap { catalogue.drug($0.key) }
    }
}
