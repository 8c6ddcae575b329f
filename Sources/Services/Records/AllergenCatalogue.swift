import Domain
import Foundation

/// The allergens a note's coded allergies may name, shipped as `allergens.tsv` (drug classes by
/// WHO ATC code, the food groups of GB 7718-2011, common environmental allergens; its header
/// names the sources).
package struct AllergenCatalogue: Sendable {
    package struct Entry: Sendable, Hashable {
        package var code: String
        /// `medication`, `food` or `environment` (FHIR AllergyIntolerance.category).
        package var category: String
        package var zh: String
        package var en: String
    }

    package let entries: [Entry]
    private let byCode: [String: Int]

    package static let shipped: Result<AllergenCatalogue, ValidationError> = {
        guard let url = Bundle.module.url(forResource: "allergens", withExtension: "tsv"), let data = try? Data(contentsOf: url) else {
            return .failure(ValidationError(field: "allergens.tsv", code: "catalogue.missing", zh: "找不到过敏原表 allergens.tsv（安装不完整）。",
                                            en: "the allergen list allergens.tsv is missing (an incomplete install)."))
        }
        return .success(AllergenCatalogue(tsv: String(decoding: data, as: UTF8.self)))
    }()

    package init(tsv: String) {
        entries = tsv.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            let f = line.split(separator: "\t").map { String($0).trimmingCharacters(in: .whitespaces) }
            return f.count >= 4 ? Entry(code: f[0], category: f[1], zh: f[2], en: f[3]) : nil
        }
        byCode = Dictionary(entries.enumerated().map { ($0.element.code, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    package func entry(_ code: String) -> Entry? { byCode[code.trimmingCharacters(in: .whitespaces).uppercased()].map { entries[$0] } }
}
