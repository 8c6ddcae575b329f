import Domain
import Foundation
import Services

/// Made-up outpatient notes for the demo and the bench: Chinese text of the length and kind a
/// note has, put together from pieces at random. They are test data, not clinical content: the
/// pairing of words and diagnosis codes carries no medical meaning.
package enum SyntheticNotes {
    static let complaints = ["咳嗽", "咽痛", "发热", "头痛", "腹痛", "腹泻", "胸闷", "心悸", "头晕", "乏力", "腰痛", "关节痛", "皮疹", "失眠", "恶心"]
    static let durations = ["1 天", "2 天", "3 天", "5 天", "1 周", "2 周", "1 个月", "半年"]
    static let courses = ["受凉后出现", "无明显诱因出现", "劳累后出现", "进食后出现", "夜间加重的"]
    static let findings = ["神志清，精神可", "咽部充血", "双肺呼吸音清，未闻及干湿啰音", "心律齐，各瓣膜听诊区未闻及杂音", "腹软，无压痛及反跳痛", "双下肢无水肿"]
    static let plans = ["多饮水，注意休息", "清淡饮食", "三天后复诊", "不适随诊", "完善血常规检查", "监测血压", "按时服药"]
    static let histories = ["否认高血压、糖尿病史", "高血压病史 5 年", "糖尿病病史 3 年", "否认手术外伤史", "否认肝炎、结核等传染病史"]
    /// Allergy histories in words, each with its codes in the allergen list (none: no known allergies).
    static let allergyTexts: [(text: String, codes: [String])] = [("否认药物及食物过敏史", []), ("青霉素过敏", ["J01C"]), ("头孢类药物过敏", ["J01D"]), ("虾蟹过敏", ["F02"])]
    /// Codes drawn for the notes; only those the shipped catalogue has are used.
    static let codes = ["J06.900", "J20.900", "J02.900", "I10.x00", "E11.900", "K29.700", "R05.x00", "R51.x00", "K59.000", "M54.500"]

    /// SplitMix64: the same seed draws the same values (the benches' made-up data).
    package struct Random: RandomNumberGenerator {
        package var state: UInt64
        package init(state: UInt64) { self.state = state }
        package mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Note number `index` of a run seeded `seed`: the same every time.
    static func note(index: Int, seed: UInt64, catalogue: DiagnosisCatalogue) -> ClinicalNote {
        var rng = Random(state: seed &+ UInt64(index) &* 0x1000_0000_01B3)
        func pick(_ list: [String]) -> String { list.randomElement(using: &rng)! }
        let a = pick(complaints), b = pick(complaints), d = pick(durations)
        var n = ClinicalNote()
        n.chiefComplaint = "\(a)\(a == b ? "" : "伴\(b)")\(d)"
        n.presentIllness = "患者\(d)前\(pick(courses))\(a)，\(a == b ? "" : "伴\(b)，")无明显加重缓解因素。曾自行服药，效果欠佳，今来我院就诊。病程中饮食、睡眠尚可，大小便正常。"
        n.pastHistory = pick(histories) + "。"
        n.personalHistory = "生于本地，无烟酒嗜好。"
        let allergy = allergyTexts[Int.random(in: 0..<allergyTexts.count, using: &rng)]
        n.allergies = allergy.text + "。"
        n.allergyCodes = allergy.codes
        n.noKnownAllergies = allergy.codes.isEmpty
        n.examination = (0..<3).map { _ in pick(findings) }.joined(separator: "，") + "。"
        n.vitals = VitalSigns(temperature: Double(Int.random(in: 360...385, using: &rng)) / 10, pulse: Int.random(in: 60...100, using: &rng),
                              respiration: Int.random(in: 14...22, using: &rng), systolic: Int.random(in: 105...150, using: &rng),
                              diastolic: Int.random(in: 65...95, using: &rng))
        n.plan = (0..<2).map { _ in pick(plans) }.joined(separator: "；") + "。"
        let available = codes.compactMap { catalogue.entry(code: $0) }
        if let e = available.randomElement(using: &rng) { n.diagnoses = [Diagnosis(code: e.code, name: e.name)] }
        return n
    }
}
