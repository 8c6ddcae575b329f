@testable import ClinicNode
import Crypto
import Domain
import Foundation
import ReplicatedCore
import ReplicatedStore
@testable import Services
import Testing

/// Prescriptions over a real replica and the shipped drug catalogue: the rules of the prescription
/// regulations refused, the rule pack's alerts, signing with reasons, the pharmacist's review.
@Suite("Prescribing")
struct PrescribingTests {
    let replica: Replica
    let records: RecordDesk
    let desk: PrescriptionDesk
    let catalogue: DrugCatalogue
    static let adult = "a0000000000000000000000000000000000000000000000000000000000000a1"
    static let child = "c0000000000000000000000000000000000000000000000000000000000000c1"
    static let adultVisit = "h000000000000000000000101"
    static let childVisit = "h000000000000000000000102"
    static let chief = Prescriber(staff: "N001", name: "王建国", title: .chiefPhysician, rights: [.narcotic])
    static let resident = Prescriber(staff: "N009", name: "李新", title: .residentPhysician, rights: [])

    /// Rules written for these tests (the logic, not clinical facts): one contraindicated pair, one
    /// moderate pair, dose limits for amoxicillin and ibuprofen, a renal rule for metformin.
    static let testPack = RulePack(
        interactions: """
        # test fixture
        C10AA\tJ01FA\tcontraindicated\t测试：禁忌。\ttest: contraindicated.\ttest fixture
        M01AE01\tB01AC06\tmoderate\t测试：中度。\ttest: moderate.\ttest fixture
        """,
        doseLimits: """
        J01CA04\toral\tadult\tfixed\tmg\t1000\t4000\ttest fixture
        J01CA04\toral\tchild\tper_kg\tmg\t25\t90\ttest fixture
        M01AE01\toral\tadult\tfixed\tmg\t400\t1200\ttest fixture
        M01AE01\toral\tchild\tper_kg\tmg\t10\t40\ttest fixture
        """,
        cautions: """
        A10BA02\trenal\tcontraindicated\t30\t测试：肾。\ttest: renal.\ttest fixture
        C09A\tpregnancy\tcontraindicated\t-\t测试：妊娠。\ttest: pregnancy.\ttest fixture
        """)

    init() throws {
        var options = Replica.Options()
        options.cipher = FieldCipher(dataKey: SymmetricKey(size: .bits256))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rx-\(UUID().uuidString).sqlite").path
        replica = try Replica.open(path: path, node: "neike", schema: NodeSchema.schema, options: options)
        let store = ReplicaStore(replica: replica, signals: WriteSignals())
        let clock = NodeClock()
        records = RecordDesk(store: store, clock: clock, floor: nil, node: "neike", catalogue: try DiagnosisCatalogue.shipped.get())
        catalogue = try DrugCatalogue.shipped.get()
        desk = PrescriptionDesk(store: store, clock: clock, node: "neike", catalogue: catalogue, rules: Self.testPack,
                                policy: PrescribingConfig().policy, records: records, orders: OrderDesk(store: store, clock: clock, catalogue: try OrderCatalogue.shipped.get()))
        try replica.write { w in
            _ = try w.insert("patient", key: Self.adult, values: ["name": .text("张三"), "sex": .text("female"), "birth_date": .text("1966-05-01")])
            _ = try w.insert("patient", key: Self.child, values: ["name": .text("小明"), "sex": .text("male"), "birth_date": .text("2021-01-01")])
            for (visit, patient) in [(Self.adultVisit, Self.adult), (Self.childVisit, Self.child)] {
                _ = try w.insert("encounter", key: visit, values: [
                    "patient": .text(patient), "session": .text("dr-wang-jianguo/2026-12-08/morning"), "department": .text("neike"),
                    "practitioner": .text("dr-wang-jianguo"), "date": .text("2026-12-08"), "opened_by": .text("N001"), "opened_ms": .integer(1),
                ])
            }
        }
    }

    func drug(_ atc: String, route: String = "oral") throws -> Drug {
        try #require(catalogue.drugs.first { $0.atc == atc && $0.route == route }, "the catalogue has \(atc) (\(route))")
    }

    func line(_ d: Drug, _ dose: String, _ frequency: String = "tid", days: String = "3", packages: String = "") -> RxLineInput {
        RxLineInput(drug: d.code, dose: dose, frequency: frequency, days: days, packages: packages)
    }

    func refusal(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as StaffError { return e.code } catch { return "\(error)" }
    }

    func saveNote(_ visit: String, allergies: [String] = [], diagnoses: [String] = []) throws {
        var note = ClinicalNote()
        note.chiefComplaint = "咳嗽 3 天"
        note.allergyCodes = allergies
        note.diagnoses = diagnoses.map { Diagnosis(code: $0, name: records.catalogue.entry(code: $0)?.name ?? "") }
        _ = try records.save(visit, note: note, base: try records.visit(visit).current?.key ?? "", settles: [], action: .save, reason: "",
                             by: RecordAuthor(staff: "N001", name: "王建国", practitioner: "dr-wang-jianguo"))
    }

    @Test("the shipped catalogue and rule pack load whole: 200+ drugs, 100+ interaction pairs, every line read, every dose rule names a catalogue drug")
    func shippedData() throws {
        let pack = try RulePack.shipped.get()
        #expect(catalogue.rejected.isEmpty, "unreadable catalogue lines: \(catalogue.rejected)")
        #expect(pack.rejected.isEmpty, "unreadable rule lines: \(pack.rejected)")
        #expect(catalogue.drugs.count >= 200)
        #expect(Set(catalogue.drugs.map(\.code)).count == catalogue.drugs.count, "codes are unique")
        #expect(pack.interactions.count >= 100)
        #expect(pack.version.hasPrefix("rp-") && pack.version.count == 15)
        let keys = Set(catalogue.drugs.map { "\($0.ruleKey)|\($0.route)" })
        for limits in pack.doseLimits.values {
            for l in limits { #expect(keys.contains("\(l.key)|\(l.route)"), "dose rule \(l.key) \(l.route) names a catalogue drug and route") }
        }
        for tier in [AntibioticTier.unrestricted, .restricted, .special] { #expect(catalogue.drugs.contains { $0.tier == tier }, "a \(tier) antibiotic") }
        for c in [ControlledClass.narcotic, .psychotropic2] { #expect(catalogue.drugs.contains { $0.controlled == c }, "a \(c) drug") }
        #expect(catalogue.search("amxl").first?.atc == "J01CA04", "pinyin initials find amoxicillin")
        #expect(catalogue.search("阿莫西林").allSatisfy { $0.genericZh.contains("阿莫西林") || $0.brand.contains("阿莫西林") })
    }

    @Test("CKD-EPI 2021: a 60-year-old woman with creatinine 88.4 µmol/L (1.0 mg/dL) has an eGFR of about 64")
    func eGFR() throws {
        let gfr = try #require(RenalFunction.eGFR(creatinineMicromolar: 88.4, age: 60, female: true))
        #expect(abs(gfr - 64.5) < 0.5)
        #expect(RenalFunction.eGFR(creatinineMicromolar: 88.4, age: 12, female: true) == nil, "not for children")
    }

    @Test("the rule pack: allergy by drug class, interactions with severity, duplicate therapy, doses by weight, renal and pregnancy cautions")
    func rulePackChecks() throws {
        let amoxicillin = try drug("J01CA04"), ibuprofen = try drug("M01AE01"), macrolide = try drug("J01FA10")
        let statin = try #require(catalogue.drugs.first { $0.atc.hasPrefix("C10AA") })
        let adult = RxPatient(age: 60, female: true, allergyCodes: ["J01C"])
        let allergy = try Self.testPack.check([RxDose(drug: amoxicillin, dose: 500, frequency: .tid)], patient: adult)
        #expect(allergy.contains { $0.kind == "allergy" && $0.level == .block }, "penicillin class allergy blocks amoxicillin")
        let pair = try Self.testPack.check([RxDose(drug: statin, dose: statin.usualDose, frequency: .qd),
                                            RxDose(drug: macrolide, dose: macrolide.usualDose, frequency: .bid)], patient: RxPatient(age: 60, female: true))
        #expect(pair.contains { $0.kind == "interaction" && $0.level == .block && $0.source == "test fixture" })
        let taking = RxPatient(age: 60, female: true, currentDrugs: [statin])
        #expect(try Self.testPack.check([RxDose(drug: macrolide, dose: macrolide.usualDose, frequency: .bid)], patient: taking)
            .contains { $0.kind == "interaction" && $0.zh.contains("正在使用") }, "a drug the patient is taking counts")
        let ppis = catalogue.drugs.filter { $0.atc.hasPrefix("A02BC") && $0.route == "oral" }
        try #require(ppis.count >= 2, "the catalogue has two proton-pump inhibitors")
        let twice = try Self.testPack.check(ppis.prefix(2).map { RxDose(drug: $0, dose: $0.usualDose, frequency: .qd) }, patient: RxPatient(age: 40, female: false))
        #expect(twice.contains { $0.kind == "duplicate" && $0.level == .warning })
        let child = RxPatient(age: 5, female: false)
        #expect(throws: ValidationError.self) { _ = try Self.testPack.check([RxDose(drug: ibuprofen, dose: 100, frequency: .tid)], patient: child) }
        var weighed = child
        weighed.weightKg = 18
        #expect(try Self.testPack.check([RxDose(drug: ibuprofen, dose: 150, frequency: .tid)], patient: weighed).isEmpty, "150 mg ≤ 10 mg/kg × 18 kg")
        let over = try Self.testPack.check([RxDose(drug: ibuprofen, dose: 200, frequency: .qid)], patient: weighed)
        #expect(over.map(\.code).sorted() == ["dose.daily:\(ibuprofen.code)", "dose.single:\(ibuprofen.code)"])
        #expect(throws: ValidationError.self) { _ = try Self.testPack.check([RxDose(drug: ibuprofen, dose: 0, frequency: .tid)], patient: adult) }
        #expect(throws: ValidationError.self) { _ = try Self.testPack.check([RxDose(drug: ibuprofen, dose: 400_000, frequency: .tid)], patient: adult) }
        let metformin = try drug("A10BA02")
        let kidneys = RxPatient(age: 70, female: false, eGFR: 25)
        #expect(try Self.testPack.check([RxDose(drug: metformin, dose: metformin.usualDose, frequency: .bid)], patient: kidneys).contains { $0.kind == "renal" && $0.level == .block })
        #expect(try Self.testPack.check([RxDose(drug: metformin, dose: metformin.usualDose, frequency: .bid)], patient: RxPatient(age: 70, female: false, eGFR: 45)).isEmpty,
                "above the rule's threshold")
        let acei = try #require(catalogue.drugs.first { $0.atc.hasPrefix("C09A") })
        let pregnant = RxPatient(age: 30, female: true, pregnant: true)
        #expect(try Self.testPack.check([RxDose(drug: acei, dose: acei.usualDose, frequency: .qd)], patient: pregnant).contains { $0.kind == "pregnancy" })
    }

    @Test("the regulations are enforced: 5 drugs a sheet, 7/3/30 days, controlled drugs need the right and their own sheet, antibiotic tiers by title")
    func regulations() throws {
        try saveNote(Self.adultVisit)
        let visit = try records.visit(Self.adultVisit)
        let amoxicillin = try drug("J01CA04")
        let others = catalogue.drugs.filter { $0.route == "oral" && $0.controlled == .none && $0.tier == .none && $0.pharmacy == .western }
        let six = others.prefix(6).map { line($0, Drug.number($0.usualDose), $0.usualFrequency.rawValue) }
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: Array(six)), by: Self.chief) } == "rx.too_many")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(amoxicillin, "500", days: "8")]), by: Self.chief) } == "rx.days_limit")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(amoxicillin, "500", days: "4")], emergency: true), by: Self.chief) } == "rx.days_limit")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(amoxicillin, "500", "every so often")]), by: Self.chief) } == "rx.frequency")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [RxLineInput(drug: "不存在的药", dose: "1", frequency: "qd", days: "1")]), by: Self.chief) } == "rx.unknown_drug")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(amoxicillin, "0")]), by: Self.chief) } == "rx.dose_not_positive")
        #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(amoxicillin, "500000")]), by: Self.chief) } == "rx.dose_implausible")
        do {
            let narcotic = try #require(catalogue.drugs.first { $0.controlled == .narcotic && !$0.injection })
            #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(narcotic, Drug.number(narcotic.usualDose), days: "1")]), by: Self.resident) } == "rx.controlled_right")
            #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(narcotic, Drug.number(narcotic.usualDose), days: "1"), line(amoxicillin, "500")]), by: Self.chief) }
                    == "rx.sheet_mixed")
            let most = narcotic.sustainedRelease ? 7 : 3
            #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(narcotic, Drug.number(narcotic.usualDose), "q12h", days: "\(most + 1)")]), by: Self.chief) } == "rx.days_limit")
            let alone = try desk.check(visit, RxInput(lines: [line(narcotic, Drug.number(narcotic.usualDose), "q12h", days: "1")]), by: Self.chief)
            #expect(alone.kind == .narcotic)
        }
        do {
            let restricted = try #require(catalogue.drugs.first { $0.tier == .restricted && $0.route == "oral" })
            #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(restricted, Drug.number(restricted.usualDose), restricted.usualFrequency.rawValue)]), by: Self.resident) }
                    == "rx.antibiotic_tier")
        }
        do {
            let special = try #require(catalogue.drugs.first { $0.tier == .special })
            #expect(refusal { _ = try desk.check(visit, RxInput(lines: [line(special, Drug.number(special.usualDose), special.usualFrequency.rawValue, days: "1")]), by: Self.chief) }
                    == "rx.antibiotic_outpatient")
        }
        // A listed chronic disease (essential hypertension, I10) allows 30 days.
        try saveNote(Self.adultVisit, diagnoses: ["I10.x00"])
        let chronic = try records.visit(Self.adultVisit)
        let amlodipine = try drug("C08CA01")
        let long = try desk.check(chronic, RxInput(lines: [line(amlodipine, Drug.number(amlodipine.usualDose), "qd", days: "30")]), by: Self.chief)
        #expect(long.lines.first?.days == 30)
        #expect(long.alerts.contains { $0.kind == "supply" && $0.level == .warning }, "a longer supply needs the doctor's reason")
        // The same drug twice, and more packages than the days need: refused.
        #expect(refusal { _ = try desk.check(chronic, RxInput(lines: [line(amoxicillin, "500"), line(amoxicillin, "250")]), by: Self.chief) } == "rx.same_drug")
        #expect(refusal { _ = try desk.check(chronic, RxInput(lines: [line(amoxicillin, "500", packages: "99")]), by: Self.chief) } == "rx.packages_over")
        #expect(try desk.prescriptions(encounter: Self.adultVisit).isEmpty, "checking stores nothing")
    }

    @Test("signing: quantity in whole packages, a block stops it, a warning needs a reason that is kept, the pharmacist approves or refuses with a reason")
    func signingAndReview() throws {
        try saveNote(Self.childVisit, allergies: [])
        let visit = try records.visit(Self.childVisit)
        let ibuprofen = try drug("M01AE01")
        let amoxicillin = try drug("J01CA04")
        #expect(refusal { _ = try desk.sign(visit, RxInput(lines: [line(ibuprofen, "100")]), by: Self.chief) } == "rx.weight_needed")
        // 10 mg/kg × 12 kg = 120 mg single; 200 mg is over: a warning.
        let input = RxInput(lines: [line(ibuprofen, "200", "tid", days: "2")], weight: "12")
        #expect(refusal { _ = try desk.sign(visit, input, by: Self.chief) } == "rx.override_needed")
        let draft = try desk.check(visit, input, by: Self.chief)
        #expect(draft.kind == .pediatric)
        var reasoned = input
        for a in draft.alerts { reasoned.overrides[a.code] = "高热不退，已与家属沟通" }
        let signed = try desk.sign(visit, reasoned, by: Self.chief)
        #expect(signed.status == .awaitingReview && signed.ruleVersion == Self.testPack.version && signed.kind == .pediatric)
        #expect(signed.body.alerts.allSatisfy { $0.override == "高热不退，已与家属沟通" } && !signed.body.alerts.isEmpty)
        #expect(signed.body.weightKg == 12)
        let units = try #require(ibuprofen.unitsPerDose(200))
        let expected = Int((units * 6 / ibuprofen.packageSize - 1e-9).rounded(.up))
        #expect(signed.body.lines[0].packages == max(1, expected))
        #expect(signed.totalFen == signed.body.lines[0].packages * ibuprofen.priceFen)

        // Amoxicillin 500 mg tid for 7 days to an adult: 21 doses in whole packages.
        try saveNote(Self.adultVisit, allergies: ["J01C"])
        let adultVisit = try records.visit(Self.adultVisit)
        #expect(refusal { _ = try desk.sign(adultVisit, RxInput(lines: [line(amoxicillin, "500", days: "7")]), by: Self.chief) } == "rx.blocked", "a class allergy blocks signing")

        #expect(refusal { _ = try desk.review(signed.id, verdict: .refused, reason: "", pharmacist: "P001", name: "陈药师") } == "rx.review_reason")
        let refused = try desk.review(signed.id, verdict: .refused, reason: "剂量超过说明书，请核对", pharmacist: "P001", name: "陈药师")
        #expect(refused.status == .refused && refused.reviews.last?.reason == "剂量超过说明书，请核对")
        #expect(refusal { _ = try desk.review(signed.id, verdict: .approved, reason: "", pharmacist: "P001", name: "陈药师") } == "rx.reviewed")
        #expect(try desk.queue(.western, date: "2026-12-08").map(\.id) == [signed.id])
    }
}
