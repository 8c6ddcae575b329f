import Domain
import Foundation

/// A data file shipped with the services: tab-separated lines, `#` lines are its header (sources, columns).
enum ShippedFile {
    static func text(_ name: String, ext: String = "tsv", zh: String, en: String) -> Result<String, ValidationError> {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext), let data = try? Data(contentsOf: url) else {
            return .failure(ValidationError(field: "\(name).\(ext)", code: "catalogue.missing", zh: "找不到\(zh) \(name).\(ext)（安装不完整）。",
                                            en: "\(en) \(name).\(ext) is missing (an incomplete install)."))
        }
        return .success(String(decoding: data, as: UTF8.self))
    }

    /// The data lines, each split on tabs and trimmed.
    static func rows(_ text: String) -> [[String]] {
        text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("#") && !$0.allSatisfy(\.isWhitespace) }.map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        }
    }
}

/// The pharmacies a drug is dispensed from.
package enum Pharmacy: String, CaseIterable, Sendable, Codable {
    case western = "west", chinese = "tcm"

    package init?(zh: String) {
        switch zh {
        case "西药房": self = .western
        case "中药房": self = .chinese
        default: return nil
        }
    }

    package var zh: String { self == .western ? "门诊西药房" : "中药房" }
    package var en: String { self == .western ? "Outpatient Western pharmacy" : "Chinese medicine pharmacy" }
}

/// A drug of the hospital's catalogue (master data, `drug-catalogue.tsv`).
package struct Drug: Sendable, Hashable {
    package var code: String
    package var genericZh: String
    package var genericEn: String
    /// Pinyin initials of the generic name, for search (阿莫西林 → amxl).
    package var pinyin: String
    package var brand: String
    package var form: String
    /// Amount of the substance in one counting unit (mg in a tablet, mg in a ml); 0 when not meaningful.
    package var strength: Double
    package var strengthUnit: String
    /// The counting unit: 片, 粒, 支, ml, 揿 …
    package var unit: String
    package var packageSize: Double
    package var packageUnit: String
    package var route: String
    /// What a dose is written in: the strength's unit, the counting unit, or 次 (an application).
    package var doseUnit: String
    package var usualDose: Double
    package var usualFrequency: DoseFrequency
    package var priceFen: Int
    package var insurance: InsuranceCategory
    package var tier: AntibioticTier
    package var controlled: ControlledClass
    /// WHO ATC code; `-` for a Chinese patent medicine without one.
    package var atc: String
    package var pharmacy: Pharmacy

    package var injection: Bool { ["iv", "im", "sc"].contains(route) || form.contains("注射") }
    package var sustainedRelease: Bool { form.contains("缓释") || form.contains("控释") }
    /// Under a supply limit of its own (《处方管理办法》第二十三、二十四条, 《医疗用毒性药品管理办法》第九条).
    package var supplyControlled: Bool { [.narcotic, .psychotropic1, .psychotropic2, .toxic].contains(controlled) }
    /// Key of its dose limits: the ATC code, or the local code for a drug without one.
    package var ruleKey: String { atc == "-" ? code : atc }

    package var strengthText: String {
        strength > 0 ? "\(Self.number(strength))\(strengthUnit == "-" ? "" : strengthUnit)\(unit == "ml" ? "/ml" : "")" : ""
    }

    package var packageText: String { "\(Self.number(packageSize))\(unit)/\(packageUnit)" }

    /// 阿莫西林 胶囊 500mg（24粒/盒）
    package var label: String { "\(genericZh) \(form) \(strengthText)（\(packageText)）" }

    /// Counting units one dose takes; nil when the dose is an application (the doctor gives the packages).
    package func unitsPerDose(_ dose: Double) -> Double? {
        if doseUnit == unit { return dose }
        guard strength > 0, let amount = DoseMass.convert(dose, from: doseUnit, to: strengthUnit) else { return nil }
        return amount / strength
    }

    /// Packages for `doses` doses of `dose`; nil when it cannot be computed.
    package func packages(dose: Double, doses: Double) -> Int? {
        guard packageSize > 0, let units = unitsPerDose(dose), units > 0 else { return nil }
        let n = (units * doses / packageSize - 1e-9).rounded(.up)
        guard n.isFinite, n < 1_000_000 else { return nil }
        return max(1, Int(n))
    }

    package static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%g", v)
    }
}

/// The drug catalogue: lookup by code and search by name, brand, pinyin initials or code.
package struct DrugCatalogue: Sendable {
    package let drugs: [Drug]
    private let byCode: [String: Int]
    /// Lines the loader could not read, with why (shown by `clinicmesh` and the tests, never skipped silently).
    package let rejected: [String]

    package static let shipped: Result<DrugCatalogue, ValidationError> =
        ShippedFile.text("drug-catalogue", zh: "药品目录", en: "the drug catalogue").map(DrugCatalogue.init(tsv:))

    package init(tsv: String) {
        var drugs: [Drug] = [], rejected: [String] = []
        for f in ShippedFile.rows(tsv) {
            guard f.count == 21, let strength = Double(f[6]), let size = Double(f[9]), let usual = Double(f[13]),
                  let frequency = DoseFrequency(rawValue: f[14]), let price = Int(f[15]), let insurance = InsuranceCategory(rawValue: f[16]),
                  let tier = AntibioticTier(rawValue: f[17]), let controlled = ControlledClass(rawValue: f[18]), let pharmacy = Pharmacy(zh: f[20]) else {
                rejected.append(f.prefix(3).joined(separator: " "))
                continue
            }
            drugs.append(Drug(code: f[0].uppercased(), genericZh: f[1], genericEn: f[2], pinyin: f[3].lowercased(), brand: f[4] == "-" ? "" : f[4],
                              form: f[5], strength: strength, strengthUnit: f[7], unit: f[8], packageSize: size, packageUnit: f[10], route: f[11],
                              doseUnit: f[12], usualDose: usual, usualFrequency: frequency, priceFen: price, insurance: insurance, tier: tier,
                              controlled: controlled, atc: f[19].uppercased(), pharmacy: pharmacy))
        }
        self.drugs = drugs
        self.rejected = rejected
        byCode = Dictionary(drugs.enumerated().map { ($0.element.code, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    package func drug(_ code: String) -> Drug? { byCode[code.trimmingCharacters(in: .whitespaces).uppercased()].map { drugs[$0] } }

    /// Drugs matching `query`: the code, then pinyin initials and names from their start, then anywhere.
    package func search(_ query: String, limit: Int = 30) -> [Drug] {
        let q = InputText.trimmed(InputText.foldingFullWidth(query)).lowercased()
        guard !q.isEmpty else { return [] }
        func rank(_ d: Drug) -> Int? {
            if d.code.lowercased() == q { return 0 }
            if d.pinyin.hasPrefix(q) || d.genericZh.hasPrefix(q) || d.brand.hasPrefix(q) || d.genericEn.lowercased().hasPrefix(q) { return 1 }
            if d.pinyin.contains(q) || d.genericZh.contains(q) || d.brand.contains(q) || d.genericEn.lowercased().contains(q) { return 2 }
            return nil
        }
        return drugs.compactMap { d in rank(d).map { ($0, d) } }.sorted { ($0.0, $0.1.code) < ($1.0, $1.1.code) }.prefix(limit).map(\.1)
    }
}
