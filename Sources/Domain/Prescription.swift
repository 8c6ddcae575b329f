import Foundation

// Prescription rules that are law, not advice: China's 《处方管理办法》 (卫生部令第53号, 2007) and
// 《抗菌药物临床应用管理办法》 (卫生部令第84号, 2012). The clinical rule pack (interactions, doses,
// cautions) is data, in the services; these are the rules every prescription obeys.

/// How often a dose is taken (给药频次), in the Latin abbreviations Chinese prescriptions use.
public enum DoseFrequency: String, CaseIterable, Sendable, Codable {
    case qd, bid, tid, qid, q12h, q8h, q6h, qn, qod, qw, biw, prn, st

    /// Doses a day on average, for the quantity; nil for as-needed and once-only, where the
    /// doctor gives the quantity.
    public var perDay: Double? {
        switch self {
        case .qd, .qn: 1
        case .bid, .q12h: 2
        case .tid, .q8h: 3
        case .qid, .q6h: 4
        case .qod: 0.5
        case .qw: 1.0 / 7
        case .biw: 2.0 / 7
        case .prn, .st: nil
        }
    }

    /// The most doses taken on one day, for the daily maximum; nil for as-needed (only the
    /// single dose can be checked).
    public var mostPerDay: Int? {
        switch self {
        case .qd, .qn, .qod, .qw, .biw, .st: 1
        case .bid, .q12h: 2
        case .tid, .q8h: 3
        case .qid, .q6h: 4
        case .prn: nil
        }
    }

    public var zh: String {
        switch self {
        case .qd: "每日一次"
        case .bid: "每日两次"
        case .tid: "每日三次"
        case .qid: "每日四次"
        case .q12h: "每12小时一次"
        case .q8h: "每8小时一次"
        case .q6h: "每6小时一次"
        case .qn: "每晚一次"
        case .qod: "隔日一次"
        case .qw: "每周一次"
        case .biw: "每周两次"
        case .prn: "必要时"
        case .st: "立即（一次）"
        }
    }

    public var en: String {
        switch self {
        case .qd: "once a day"
        case .bid: "twice a day"
        case .tid: "three times a day"
        case .qid: "four times a day"
        case .q12h: "every 12 hours"
        case .q8h: "every 8 hours"
        case .q6h: "every 6 hours"
        case .qn: "every night"
        case .qod: "every other day"
        case .qw: "once a week"
        case .biw: "twice a week"
        case .prn: "as needed"
        case .st: "once, now"
        }
    }

    /// `bid`, `BID`, `b.i.d.`, `q8h`, `Q8H` (full-width letters too).
    public init(parsing text: String) throws(ValidationError) {
        let folded = InputText.foldingFullWidth(text).lowercased().filter { !$0.isWhitespace && $0 != "." }
        guard let f = DoseFrequency(rawValue: folded) else {
            throw ValidationError(field: "frequency", code: "rx.frequency",
                                  zh: "给药频次“\(String(text.prefix(12)))”无法识别，请用 qd、bid、tid、qid、q12h、q8h、q6h、qn、qod、qw、biw、prn 或 st。",
                                  en: "the frequency “\(String(text.prefix(12)))” is not understood; use qd, bid, tid, qid, q12h, q8h, q6h, qn, qod, qw, biw, prn or st.")
        }
        self = f
    }
}

/// A drug's category in the national insurance list (医保目录): 甲 fully covered, 乙 partly, 丙 not listed (self-pay).
public enum InsuranceCategory: String, CaseIterable, Sendable, Codable {
    case a = "甲", b = "乙", c = "丙"
}

/// An antibacterial's tier (抗菌药物分级, 《抗菌药物临床应用管理办法》第六条).
public enum AntibioticTier: String, CaseIterable, Sendable, Codable {
    case none = "-", unrestricted = "非限制", restricted = "限制", special = "特殊"

    public var zh: String { self == .none ? "" : rawValue + "使用级" }
    public var en: String {
        switch self {
        case .none: ""
        case .unrestricted: "unrestricted tier"
        case .restricted: "restricted tier"
        case .special: "special-use tier"
        }
    }
}

/// A drug under special control (特殊管理药品).
public enum ControlledClass: String, CaseIterable, Sendable, Codable {
    case none = "-", narcotic = "麻醉", psychotropic1 = "精神一类", psychotropic2 = "精神二类", toxic = "毒性", radioactive = "放射"

    public var zh: String {
        switch self {
        case .none: ""
        case .narcotic: "麻醉药品"
        case .psychotropic1: "第一类精神药品"
        case .psychotropic2: "第二类精神药品"
        case .toxic: "医疗用毒性药品"
        case .radioactive: "放射性药品"
        }
    }

    public var en: String {
        switch self {
        case .none: ""
        case .narcotic: "narcotic"
        case .psychotropic1: "class I psychotropic"
        case .psychotropic2: "class II psychotropic"
        case .toxic: "toxic drug"
        case .radioactive: "radioactive drug"
        }
    }
}

/// What a doctor may prescribe beyond the ordinary, granted per doctor by the hospital.
public enum PrescribingRight: String, CaseIterable, Sendable, Codable {
    /// 麻醉药品和第一类精神药品处方权 (after the hospital's training and examination).
    case narcotic
    /// 特殊使用级抗菌药物处方权.
    case antibioticSpecial = "antibiotic_special"

    public var zh: String { self == .narcotic ? "麻醉药品和第一类精神药品处方权" : "特殊使用级抗菌药物处方权" }
    public var en: String { self == .narcotic ? "narcotic and class I psychotropic prescribing" : "special-use antibiotic prescribing" }
}

/// The kind of sheet (处方类别, 《处方管理办法》附件 处方标准): each has its own paper colour.
public enum PrescriptionKind: String, CaseIterable, Sendable, Codable {
    case ordinary, emergency, pediatric, narcotic, psychotropic2

    public var zh: String {
        switch self {
        case .ordinary: "普通处方"
        case .emergency: "急诊处方"
        case .pediatric: "儿科处方"
        case .narcotic: "麻醉药品和第一类精神药品处方"
        case .psychotropic2: "第二类精神药品处方"
        }
    }

    public var en: String {
        switch self {
        case .ordinary: "ordinary"
        case .emergency: "emergency"
        case .pediatric: "pediatric"
        case .narcotic: "narcotic and class I psychotropic"
        case .psychotropic2: "class II psychotropic"
        }
    }

    /// The sheet's colour, as the 处方标准 prints it.
    public var colour: String {
        switch self {
        case .ordinary, .psychotropic2: "white"
        case .emergency: "yellow"
        case .pediatric: "green"
        case .narcotic: "red"
        }
    }
}

/// The supply and sheet rules of 《处方管理办法》, with the lengths a hospital may configure.
public struct SupplyPolicy: Sendable, Hashable {
    /// 第十九条: an ordinary prescription, at most 7 days.
    public var ordinaryDays = 7
    /// 第十九条: an emergency one, at most 3 days.
    public var emergencyDays = 3
    /// 第十九条 lets chronic diseases have longer; the hospital lists them (ICD-10 prefixes) and the length.
    public var chronicDays = 30
    public var chronicDiagnoses: [String] = []
    /// 第六条: at most 5 drugs on one sheet.
    public var drugsPerSheet = 5
    /// Below this age a prescription is a pediatric one (the hospital's pediatric age).
    public var pediatricBelowAge = 14
    /// 《抗菌药物临床应用管理办法》第二十八条: special-use antibacterials are not used in outpatient
    /// clinics; a hospital whose rules allow it (a consultation path) turns this on.
    public var outpatientSpecialUse = false

    public init() {}

    /// The longest supply a line may have, in days: the controlled rules of 第二十三条 and
    /// 第二十四条 first, the toxic-drug rule of 《医疗用毒性药品管理办法》第九条, then the
    /// sheet's kind.
    public func maxDays(controlled: ControlledClass, injection: Bool, sustainedRelease: Bool, emergency: Bool, chronic: Bool) -> Int {
        switch controlled {
        case .narcotic, .psychotropic1: return injection ? 1 : sustainedRelease ? 7 : 3
        case .psychotropic2: return 7
        case .toxic: return 2
        case .none, .radioactive: break
        }
        if emergency { return emergencyDays }
        return chronic ? max(chronicDays, ordinaryDays) : ordinaryDays
    }

    /// Whether a visit's diagnoses include a listed chronic disease.
    public func isChronic(_ codes: [String]) -> Bool {
        codes.contains { code in chronicDiagnoses.contains { code.uppercased().hasPrefix($0.uppercased()) } }
    }

    /// The lowest title that may prescribe a tier (《抗菌药物临床应用管理办法》第二十四条): senior
    /// (高级) for special use, intermediate (中级) for restricted, any for unrestricted.
    public static func allows(_ title: PractitionerTitle, tier: AntibioticTier) -> Bool {
        switch tier {
        case .none, .unrestricted: true
        case .restricted: title != .residentPhysician
        case .special: title == .chiefPhysician || title == .associateChiefPhysician
        }
    }
}

/// Mass units a dose may be written in, and their factor to milligrams.
public enum DoseMass {
    public static func milligrams(_ unit: String) -> Double? {
        switch unit.lowercased() {
        case "mg": 1
        case "g": 1000
        case "ug", "µg", "μg", "mcg": 0.001
        default: nil
        }
    }

    /// `value` in `from` as an amount in `to`; nil when the two are not the same dimension.
    public static func convert(_ value: Double, from: String, to: String) -> Double? {
        if from == to { return value }
        guard let a = milligrams(from), let b = milligrams(to) else { return nil }
        return value * a / b
    }
}

/// Estimated glomerular filtration rate, ml/min/1.73 m², by the race-free CKD-EPI 2021 creatinine
/// equation (Inker LA et al., N Engl J Med 2021;385:1737-49). `creatinine` in µmol/L; adults only.
public enum RenalFunction {
    public static func eGFR(creatinineMicromolar scr: Double, age: Int, female: Bool) -> Double? {
        guard scr > 0, age >= 18 else { return nil }
        let mgdl = scr / 88.4
        let kappa = female ? 0.7 : 0.9, alpha = female ? -0.241 : -0.302
        let ratio = mgdl / kappa
        var gfr = 142 * pow(min(ratio, 1), alpha) * pow(max(ratio, 1), -1.200) * pow(0.9938, Double(age))
        if female { gfr *= 1.012 }
        return gfr
    }
}
