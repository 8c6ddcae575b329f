import Crypto
import Domain
import Foundation

/// One finding of the prescription check: what, why, and the rule's source. A block stops the
/// signature; a warning needs the doctor's reason (audited, kept on the prescription).
package struct RxAlert: Sendable, Codable, Hashable {
    package enum Level: String, Sendable, Codable {
        case block, warning
    }

    /// Stable within one prescription (`interaction:C10AA01+J01FA09`): the override field's name.
    package var code: String
    package var level: Level
    /// allergy, interaction, duplicate, dose, pediatric, pregnancy, lactation, renal, age
    package var kind: String
    package var zh: String
    package var en: String
    package var source: String
    /// The doctor's reason for going on despite a warning; empty until given.
    package var override: String = ""
}

/// What the check knows of the patient.
package struct RxPatient: Sendable {
    package var age: Int?
    package var female: Bool
    package var weightKg: Double?
    package var pregnant: Bool
    package var lactating: Bool
    /// CKD-EPI 2021 from the newest creatinine on the record; nil when the record has none.
    package var eGFR: Double?
    /// Coded allergies (ATC prefixes for drug classes) and the free-text allergy history.
    package var allergyCodes: [String]
    package var allergyText: String
    /// Drugs of the patient's other prescriptions whose supply still runs.
    package var currentDrugs: [Drug]

    package init(age: Int?, female: Bool, weightKg: Double? = nil, pregnant: Bool = false, lactating: Bool = false, eGFR: Double? = nil,
                 allergyCodes: [String] = [], allergyText: String = "", currentDrugs: [Drug] = []) {
        self.age = age; self.female = female; self.weightKg = weightKg; self.pregnant = pregnant; self.lactating = lactating; self.eGFR = eGFR
        self.allergyCodes = allergyCodes; self.allergyText = allergyText; self.currentDrugs = currentDrugs
    }

    package var isChild: Bool { (age ?? 18) < 18 }
}

/// A dose to check: the drug, how much each time and how often.
package struct RxDose: Sendable {
    package var drug: Drug
    package var dose: Double
    package var frequency: DoseFrequency
    package init(drug: Drug, dose: Double, frequency: DoseFrequency) { self.drug = drug; self.dose = dose; self.frequency = frequency }
}

/// The clinical rule pack: drug-drug interactions, dose limits, and cautions for pregnancy,
/// lactation, renal function and age. It is data in the repository (`interactions.tsv`,
/// `dose-limits.tsv`, `cautions.tsv`, each row naming its source); `version` is a digest of the
/// three files, recorded on every prescription the pack checked.
package struct RulePack: Sendable {
    package enum Severity: String, Sendable {
        case contraindicated, major, moderate
    }

    package struct Interaction: Sendable {
        package var a: String
        package var b: String
        package var severity: Severity
        package var zh: String
        package var en: String
        package var source: String
    }

    package struct DoseLimit: Sendable {
        package var key: String
        package var route: String
        package var child: Bool
        package var perKg: Bool
        package var unit: String
        package var maxSingle: Double
        package var maxDaily: Double
        package var source: String
    }

    package struct Caution: Sendable {
        package enum Kind: String, Sendable { case pregnancy, lactation, renal, minAge = "min_age" }
        package var atc: String
        package var kind: Kind
        package var block: Bool
        /// Renal: the eGFR (ml/min) below which it applies; age: the minimum age in years.
        package var threshold: Double?
        package var zh: String
        package var en: String
        package var source: String
    }

    package let version: String
    package let interactions: [Interaction]
    package let doseLimits: [String: [DoseLimit]]
    package let cautions: [Caution]
    /// Lines the loader could not read (reported by the tests, never skipped silently).
    package let rejected: [String]

    /// Below this eGFR a renal caution that names no threshold applies (CKD G3a and worse, KDIGO 2012).
    package static let renalDefaultThreshold = 60.0

    package static let shipped: Result<RulePack, ValidationError> = {
        do {
            let interactions = try ShippedFile.text("interactions", zh: "药物相互作用规则", en: "the interaction rules").get()
            let doses = try ShippedFile.text("dose-limits", zh: "剂量上限规则", en: "the dose limits").get()
            let cautions = try ShippedFile.text("cautions", zh: "特殊人群用药规则", en: "the caution rules").get()
            return .success(RulePack(interactions: interactions, doseLimits: doses, cautions: cautions))
        } catch let error as ValidationError {
            return .failure(error)
        } catch {
            return .failure(ValidationError(field: "rules", code: "catalogue.missing", zh: "规则包无法读取。", en: "the rule pack cannot be read."))
        }
    }()

    package init(interactions: String, doseLimits: String, cautions: String) {
        var rejected: [String] = []
        var pairs: [Interaction] = []
        for f in ShippedFile.rows(interactions) {
            guard f.count == 6, let s = Severity(rawValue: f[2]) else { rejected.append("interactions: " + f.prefix(2).joined(separator: " ")); continue }
            pairs.append(Interaction(a: f[0].uppercased(), b: f[1].uppercased(), severity: s, zh: f[3], en: f[4], source: f[5]))
        }
        var limits: [String: [DoseLimit]] = [:]
        for f in ShippedFile.rows(doseLimits) {
            guard f.count == 8, f[2] == "adult" || f[2] == "child", f[3] == "fixed" || f[3] == "per_kg", let single = Double(f[5]), let daily = Double(f[6]) else {
                rejected.append("dose-limits: " + f.prefix(3).joined(separator: " ")); continue
            }
            let key = f[0].uppercased()
            limits[key, default: []].append(DoseLimit(key: key, route: f[1], child: f[2] == "child", perKg: f[3] == "per_kg", unit: f[4],
                                                      maxSingle: single, maxDaily: daily, source: f[7]))
        }
        var rules: [Caution] = []
        for f in ShippedFile.rows(cautions) {
            guard f.count == 7, let kind = Caution.Kind(rawValue: f[1]), f[2] == "contraindicated" || f[2] == "warning" else {
                rejected.append("cautions: " + f.prefix(2).joined(separator: " ")); continue
            }
            rules.append(Caution(atc: f[0].uppercased(), kind: kind, block: f[2] == "contraindicated", threshold: Double(f[3]), zh: f[4], en: f[5], source: f[6]))
        }
        self.interactions = pairs
        self.doseLimits = limits
        self.cautions = rules
        self.rejected = rejected
        let digest = SHA256.hash(data: Data((interactions + "\u{0}" + doseLimits + "\u{0}" + cautions).utf8))
        version = "rp-" + digest.prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    package var doseLimitCount: Int { doseLimits.values.reduce(0) { $0 + $1.count } }

    static func matches(_ rule: String, _ atc: String) -> Bool { atc != "-" && !rule.isEmpty && atc.hasPrefix(rule) }

    // MARK: The check

    /// Every alert for these doses (one sheet) and this patient. Throws for input no alert can
    /// cover: a child with no weight for a drug dosed by weight, or a dose no one could mean.
    package func check(_ doses: [RxDose], patient: RxPatient) throws(ValidationError) -> [RxAlert] {
        var alerts: [RxAlert] = []
        for (i, d) in doses.enumerated() {
            alerts += allergyAlerts(d.drug, patient)
            alerts += try doseAlerts(d, patient)
            alerts += cautionAlerts(d.drug, patient)
            for other in doses[(i + 1)...] {
                alerts += interactionAlerts(d.drug, other.drug, current: false)
                if d.drug.atc != "-", other.drug.atc != "-", d.drug.atc.prefix(5) == other.drug.atc.prefix(5) {
                    let same = d.drug.atc == other.drug.atc
                    alerts.append(RxAlert(code: "duplicate:\(d.drug.code)+\(other.drug.code)", level: .warning, kind: "duplicate",
                                          zh: same ? "重复用药：\(d.drug.genericZh) 在本处方中出现两次。" : "重复用药：\(d.drug.genericZh) 与 \(other.drug.genericZh) 属同一药理类别（ATC \(d.drug.atc.prefix(5))）。",
                                          en: same ? "duplicate therapy: \(d.drug.genericEn) appears twice on this prescription." : "duplicate therapy: \(d.drug.genericEn) and \(other.drug.genericEn) are in the same class (ATC \(d.drug.atc.prefix(5))).",
                                          source: "WHO ATC 分类第 4 级 / WHO ATC classification, 4th level"))
                }
            }
            for current in patient.currentDrugs {
                alerts += interactionAlerts(d.drug, current, current: true)
            }
        }
        // One alert per code, the most severe kept (two rules may name the same pair).
        var seen = Set<String>()
        return alerts.enumerated().sorted { ($0.element.level == .block ? 0 : 1, $0.offset) < ($1.element.level == .block ? 0 : 1, $1.offset) }
            .map(\.element).filter { seen.insert($0.code).inserted }
    }

    func allergyAlerts(_ drug: Drug, _ patient: RxPatient) -> [RxAlert] {
        var alerts: [RxAlert] = []
        for code in patient.allergyCodes where Self.matches(code.uppercased(), drug.atc) {
            alerts.append(RxAlert(code: "allergy:\(code):\(drug.code)", level: .block, kind: "allergy",
                                  zh: "过敏：患者对 ATC \(code) 类药物过敏，\(drug.genericZh)（\(drug.atc)）属于该类。",
                                  en: "allergy: the patient is allergic to ATC class \(code), and \(drug.genericEn) (\(drug.atc)) belongs to it.",
                                  source: "患者过敏史（编码）/ the patient's coded allergies"))
        }
        if alerts.isEmpty, !patient.allergyText.isEmpty, patient.allergyText.contains(drug.genericZh) {
            alerts.append(RxAlert(code: "allergy:text:\(drug.code)", level: .block, kind: "allergy",
                                  zh: "过敏：患者过敏史中记有“\(drug.genericZh)”。", en: "allergy: the patient's allergy history names \(drug.genericEn).",
                                  source: "患者过敏史 / the patient's allergy history"))
        }
        return alerts
    }

    func interactionAlerts(_ x: Drug, _ y: Drug, current: Bool) -> [RxAlert] {
        interactions.compactMap { rule in
            guard (Self.matches(rule.a, x.atc) && Self.matches(rule.b, y.atc)) || (Self.matches(rule.b, x.atc) && Self.matches(rule.a, y.atc)) else { return nil }
            let (zhLevel, enLevel) = switch rule.severity {
            case .contraindicated: ("禁忌合用", "contraindicated")
            case .major: ("严重相互作用", "major interaction")
            case .moderate: ("中度相互作用", "moderate interaction")
            }
            let zhWith = current ? "（患者正在使用的\(y.genericZh)）" : y.genericZh
            let enWith = current ? "\(y.genericEn) (which the patient is taking)" : y.genericEn
            return RxAlert(code: "interaction:\(x.code)+\(y.code)", level: rule.severity == .contraindicated ? .block : .warning, kind: "interaction",
                           zh: "\(zhLevel)：\(x.genericZh) 与 \(zhWith)。\(rule.zh)", en: "\(enLevel): \(x.genericEn) with \(enWith). \(rule.en)", source: rule.source)
        }
    }

    func doseAlerts(_ d: RxDose, _ patient: RxPatient) throws(ValidationError) -> [RxAlert] {
        let drug = d.drug
        guard d.dose > 0, d.dose.isFinite else {
            throw ValidationError(field: "dose", code: "rx.dose_not_positive", zh: "\(drug.genericZh) 的剂量须大于 0。", en: "the dose of \(drug.genericEn) must be more than 0.")
        }
        let rules = (doseLimits[drug.ruleKey] ?? []).filter { $0.route == drug.route }
        let adult = rules.first { !$0.child }, child = rules.first { $0.child }
        var rule: DoseLimit? = adult
        var weight: Double?
        if patient.isChild, let child {
            rule = child
            if child.perKg {
                guard let kg = patient.weightKg, kg > 0 else {
                    throw ValidationError(field: "weight", code: "rx.weight_needed",
                                          zh: "\(drug.genericZh) 的儿童剂量按体重计算：请先填写患儿体重（kg）。",
                                          en: "\(drug.genericEn) is dosed by weight for children: give the child's weight (kg) first.")
                }
                weight = kg
            }
        }
        // A dose no one could mean (a slipped unit, a typo): refused, not warned.
        let usual = drug.usualDose
        func maxima(_ r: DoseLimit) -> (single: Double, daily: Double)? {
            let scale = r.perKg ? (weight ?? 0) : 1
            guard scale > 0, let single = DoseMass.convert(r.maxSingle * scale, from: r.unit, to: drug.doseUnit),
                  let daily = DoseMass.convert(r.maxDaily * scale, from: r.unit, to: drug.doseUnit) else { return nil }
            // A child's weight-based dose never goes above the adult maximum.
            if r.child, let adult, let a = maxima(adult) { return (min(single, a.single), min(daily, a.daily)) }
            return (single, daily)
        }
        let limits = rule.flatMap(maxima)
        let ceiling = limits.map { $0.single * 10 } ?? usual * 20
        if usual > 0 || limits != nil, d.dose > ceiling {
            throw ValidationError(field: "dose", code: "rx.dose_implausible",
                                  zh: "\(drug.genericZh) 每次 \(Drug.number(d.dose))\(drug.doseUnit) 远超常用量（常用 \(Drug.number(drug.usualDose))\(drug.doseUnit)），请核对剂量和单位。",
                                  en: "\(Drug.number(d.dose)) \(drug.doseUnit) of \(drug.genericEn) per dose is far above the usual \(Drug.number(drug.usualDose)) \(drug.doseUnit); check the dose and its unit.")
        }
        var alerts: [RxAlert] = []
        if patient.isChild, child == nil, adult != nil {
            alerts.append(RxAlert(code: "pediatric:\(drug.code)", level: .warning, kind: "pediatric",
                                  zh: "规则包没有 \(drug.genericZh) 的儿童剂量，仅按成人上限核对；请按说明书确认儿童用量。",
                                  en: "the rule pack has no pediatric dose for \(drug.genericEn); it was checked against the adult maximum only. Confirm the child's dose from the label.",
                                  source: rule?.source ?? ""))
        }
        guard let rule, let (single, daily) = limits else { return alerts }
        let who = rule.child ? (rule.perKg ? "儿童（\(Drug.number(weight ?? 0)) kg）" : "儿童") : "成人"
        let whoEn = rule.child ? (rule.perKg ? "a child of \(Drug.number(weight ?? 0)) kg" : "a child") : "an adult"
        if d.dose > single * 1.000001 {
            alerts.append(RxAlert(code: "dose.single:\(drug.code)", level: .warning, kind: "dose",
                                  zh: "超量：\(drug.genericZh) 每次 \(Drug.number(d.dose))\(drug.doseUnit)，\(who)单次最大 \(Drug.number(single))\(drug.doseUnit)。",
                                  en: "overdose: \(Drug.number(d.dose)) \(drug.doseUnit) of \(drug.genericEn) per dose; the most for \(whoEn) is \(Drug.number(single)) \(drug.doseUnit).",
                                  source: rule.source))
        }
        if let times = d.frequency.mostPerDay, d.dose * Double(times) > daily * 1.000001 {
            alerts.append(RxAlert(code: "dose.daily:\(drug.code)", level: .warning, kind: "dose",
                                  zh: "超量：\(drug.genericZh) 每日 \(Drug.number(d.dose * Double(times)))\(drug.doseUnit)，\(who)每日最大 \(Drug.number(daily))\(drug.doseUnit)。",
                                  en: "overdose: \(Drug.number(d.dose * Double(times))) \(drug.doseUnit) of \(drug.genericEn) a day; the most for \(whoEn) is \(Drug.number(daily)) \(drug.doseUnit).",
                                  source: rule.source))
        }
        return alerts
    }

    func cautionAlerts(_ drug: Drug, _ patient: RxPatient) -> [RxAlert] {
        cautions.compactMap { c in
            guard Self.matches(c.atc, drug.atc) else { return nil }
            let (zhWhy, enWhy): (String, String)
            switch c.kind {
            case .pregnancy:
                guard patient.pregnant else { return nil }
                (zhWhy, enWhy) = ("妊娠", "pregnancy")
            case .lactation:
                guard patient.lactating else { return nil }
                (zhWhy, enWhy) = ("哺乳期", "breastfeeding")
            case .renal:
                guard let gfr = patient.eGFR, gfr < (c.threshold ?? Self.renalDefaultThreshold) else { return nil }
                (zhWhy, enWhy) = ("肾功能（eGFR \(Int(gfr.rounded()))）", "renal function (eGFR \(Int(gfr.rounded())))")
            case .minAge:
                guard let age = patient.age, let least = c.threshold, Double(age) < least else { return nil }
                (zhWhy, enWhy) = ("年龄（\(age) 岁，需满 \(Drug.number(least)) 岁）", "age (\(age); at least \(Drug.number(least)))")
            }
            return RxAlert(code: "\(c.kind.rawValue):\(c.atc):\(drug.code)", level: c.block ? .block : .warning, kind: c.kind.rawValue,
                           zh: "\(c.block ? "禁用" : "慎用")（\(zhWhy)）：\(drug.genericZh)。\(c.zh)", en: "\(c.block ? "contraindicated" : "caution") (\(enWhy)): \(drug.genericEn). \(c.en)",
                           source: c.source)
        }
    }
}
