import Domain
import Foundation

/// The items a doctor may order (检验/检查申请) and the analytes each one reports, shipped as
/// `order-catalogue.tsv` (the hospital's own list; its header names the sources of the few
/// reference ranges it carries).
package struct OrderCatalogue: Sendable {
    package struct Analyte: Sendable, Hashable {
        package var code: String
        package var zh: String
        package var en: String
        package var unit: String
        package var maleRange: String
        package var femaleRange: String
        /// The ages the ranges are published for (`20-59`, `20-`); empty: no range.
        package var ages: ClosedRange<Int>?
        package var source: String

        /// The published range for a patient of this sex and age, or "" (the lab enters its own).
        package func range(sex: String, age: Int?) -> String {
            guard let ages, let age, ages.contains(age) else { return "" }
            switch sex {
            case Sex.male.rawValue: return maleRange
            case Sex.female.rawValue: return femaleRange
            default: return maleRange == femaleRange ? maleRange : ""
            }
        }
    }

    package struct Item: Sendable, Hashable {
        package var code: String
        package var kind: OrderKind
        package var zh: String
        package var en: String
        package var analytes: [Analyte]
    }

    package let items: [Item]
    private let byCode: [String: Int]

    package static let shipped: Result<OrderCatalogue, ValidationError> = {
        guard let url = Bundle.module.url(forResource: "order-catalogue", withExtension: "tsv"), let data = try? Data(contentsOf: url) else {
            return .failure(ValidationError(field: "order-catalogue.tsv", code: "catalogue.missing", zh: "找不到检验检查项目表 order-catalogue.tsv（安装不完整）。",
                                            en: "the order catalogue order-catalogue.tsv is missing (an incomplete install)."))
        }
        return .success(OrderCatalogue(tsv: String(decoding: data, as: UTF8.self)))
    }()

    package init(tsv: String) {
        var items: [Item] = []
        for line in tsv.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
            if f.first == "item", f.count >= 5, let kind = OrderKind(rawValue: f[2]) {
                items.append(Item(code: f[1], kind: kind, zh: f[3], en: f[4], analytes: []))
            } else if f.first == "analyte", f.count >= 10, let i = items.lastIndex(where: { $0.code == f[1] }) {
                items[i].analytes.append(Analyte(code: f[2], zh: f[3], en: f[4], unit: f[5], maleRange: f[6], femaleRange: f[7],
                                                 ages: Self.ages(f[8]), source: f[9]))
            }
        }
        self.items = items
        byCode = Dictionary(items.enumerated().map { ($0.element.code, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    package func item(_ code: String) -> Item? { byCode[code.trimmingCharacters(in: .whitespaces).uppercased()].map { items[$0] } }

    /// `20-59` or `20-` (no upper end).
    static func ages(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = Int(parts[0]) else { return nil }
        let high = parts[1].isEmpty ? 150 : Int(parts[1]) ?? -1
        return low <= high ? low...high : nil
    }
}
