import Crypto
import Domain
import ReplicatedCore
import Testing
@testable import ReplicatedStore

/// The same person registered at two departments before they hear of each other: one patient row
/// keyed by the HMAC of the resident ID, personal data sealed, and any disagreement kept for review.
@Suite struct PatientIdentityTests {
    static let patientTable = ReplicatedTable("patient", columns: [
        .init("name", .text, encrypted: true), .init("resident_id", .text, encrypted: true),
        .init("mobile", .text, encrypted: true), .init("sex", .text), .init("birth_date", .text),
    ])
    static let schema = ReplicaSchema(versions: [[.createTable(patientTable)]])
    static let clusterSecret = SymmetricKey(data: Array(repeating: UInt8(0x5a), count: 32))

    func row(_ patient: Patient) -> [String: ColumnValue] {
        ["name": .text(patient.name), "resident_id": .text(patient.residentID.value), "mobile": .text(patient.mobile.digits),
         "sex": .text(patient.sex.rawValue), "birth_date": .text(patient.birthDate.description)]
    }

    @Test func sameResidentIDAtTwoDepartmentsBecomesOneRowAndAReviewItem() throws {
        let clock = ManualClock()
        let neike = try Replica.open(path: nil, node: "neike", schema: Self.schema, options: TestSchema.options(clock: clock))
        let waike = try Replica.open(path: nil, node: "waike", schema: Self.schema, options: TestSchema.options(clock: clock))
        let birth = try CivilDate(year: 1988, month: 2, day: 29)
        let id = try ResidentID.make(regionCode: "130102", birthDate: birth, sequence: 123)
        let atNeike = try Patient(name: "张伟", sex: id.sex, birthDate: birth, residentID: id, mobile: MobileNumber("13800138000"))
        let atWaike = try Patient(name: "张伟", sex: id.sex, birthDate: birth, residentID: id, mobile: MobileNumber("+86 139-0013-9000"))
        let key = try patientKey(residentID: id, clusterSecret: Self.clusterSecret).hex
        #expect(try patientKey(residentID: atWaike.residentID, clusterSecret: Self.clusterSecret).hex == key)

        try neike.write { try $0.insert("patient", key: key, values: row(atNeike)) }
        clock.advance(3)
        try waike.write { try $0.insert("patient", key: key, values: row(atWaike)) }
        try syncAll([neike, waike])

        #expect(try neike.liveRows("patient").count == 1)
        #expect(try neike.liveRow("patient", key: key)?["mobile"] == "13900139000")
        // A batch read by keys: opened like `liveRow`, unknown keys left out.
        let batch = try neike.liveRows("patient", keys: [key, "no-such-patient"])
        #expect(batch.count == 1 && batch[key]?["mobile"] == "13900139000")
        #expect(try neike.digest() == waike.digest())
        let items = try neike.reviewItems()
        #expect(items.map(\.column) == ["mobile"])  // same name, ID, sex and birth date: nothing to review there
        let cipher = FieldCipher(dataKey: TestSchema.dataKey)
        #expect(try cipher.open(items[0].valueA, table: "patient", column: "mobile", key: key) == "13800138000")
        #expect(try cipher.open(items[0].valueB, table: "patient", column: "mobile", key: key) == "13900139000")
    }
}
