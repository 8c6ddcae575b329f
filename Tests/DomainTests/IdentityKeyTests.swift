import Crypto
import Foundation
import Testing
@testable import Domain

@Suite struct IdentityKeyTests {
    let secret = SymmetricKey(data: Array(0..<32 as Range<UInt8>))

    @Test func scheduleKeysAreReadableAndDeterministic() throws {
        let key = scheduleKey(practitionerID: Fixture.drWang, date: Fixture.date("2025-03-07"), halfDay: .morning)
        #expect(key.rawValue == "dr-wang-li/2025-03-07/morning")
        #expect(key == scheduleKey(practitionerID: try PractitionerID("dr-wang-li"), date: Fixture.date("2025-03-07"), halfDay: .morning))
        let others = [
            scheduleKey(practitionerID: try PractitionerID("dr-zhang"), date: Fixture.date("2025-03-07"), halfDay: .morning),
            scheduleKey(practitionerID: Fixture.drWang, date: Fixture.date("2025-03-08"), halfDay: .morning),
            scheduleKey(practitionerID: Fixture.drWang, date: Fixture.date("2025-03-07"), halfDay: .afternoon),
        ]
        #expect(Set(others.map(\.rawValue) + [key.rawValue]).count == 4)
        #expect(try ScheduleKey(rawValue: key.rawValue) == key)
    }

    @Test func slotKeysAreReadableDeterministicAndDistinct() throws {
        let schedule = scheduleKey(practitionerID: Fixture.drWang, date: Fixture.date("2025-03-07"), halfDay: .afternoon)
        #expect(try slotKey(scheduleKey: schedule, sequence: 12).rawValue == "dr-wang-li/2025-03-07/afternoon/012")
        #expect(try slotKey(scheduleKey: schedule, sequence: 500).rawValue == "dr-wang-li/2025-03-07/afternoon/500")
        #expect(try slotKey(scheduleKey: schedule, sequence: 5) == slotKey(scheduleKey: schedule, sequence: 5))
        let keys = try (1...500).map { try slotKey(scheduleKey: schedule, sequence: $0).rawValue }
        #expect(Set(keys).count == 500)
        #expect(keys == keys.sorted())   // zero padding keeps 号序 order
        #expect(refusal { try slotKey(scheduleKey: schedule, sequence: 0) }?.code == "slot.sequence")
        #expect(refusal { try slotKey(scheduleKey: schedule, sequence: Int.max) }?.code == "slot.sequence")
        let key = try slotKey(scheduleKey: schedule, sequence: 12)
        #expect(try SlotKey(rawValue: key.rawValue) == key)
    }

    @Test(arguments: ["", "/", "dr-wang-li/2025-03-07", "dr-wang-li/2025-03-07/night", "Dr/2025-03-07/morning",
                      "dr-wang-li/2025-02-30/morning", "a/b/2025-03-07/morning"])
    func malformedScheduleKeysAreRefused(_ text: String) {
        #expect(refusal { try ScheduleKey(rawValue: text) }?.code == "schedule_key.format")
    }

    @Test(arguments: ["", "dr-wang-li/2025-03-07/morning", "dr-wang-li/2025-03-07/morning/7",
                      "dr-wang-li/2025-03-07/morning/000", "dr-wang-li/2025-03-07/morning/501", "x/2025-03-07/noon/001"])
    func malformedSlotKeysAreRefused(_ text: String) {
        #expect(refusal { try SlotKey(rawValue: text) }?.code == "slot_key.format")
    }

    @Test func patientKeyIsHMACSHA256OfTheResidentID() throws {
        // Expected values computed independently with Python's hmac module.
        let key = try patientKey(residentID: Fixture.residentID("11010519491231002X"), clusterSecret: secret)
        #expect(key.hex == "a66755453b106dcea0cfa264214ae59ff1e8b067f3e5f3aa8085e1d8757880eb")
        let other = try patientKey(residentID: Fixture.residentID("130102199003071233"), clusterSecret: secret)
        #expect(other.hex == "dbb59f9f912f0088a4bb236eaa00ce36bfbcb22ac24822650e8b70c66c5a930e")
    }

    @Test func patientKeyDependsOnNormalisedIDAndSecret() throws {
        let lower = try patientKey(residentID: Fixture.residentID("11010519491231002x"), clusterSecret: secret)
        let upper = try patientKey(residentID: Fixture.residentID("11010519491231002X"), clusterSecret: secret)
        #expect(lower == upper)
        let otherSecret = try patientKey(residentID: Fixture.residentID("11010519491231002X"), clusterSecret: SymmetricKey(data: [UInt8](repeating: 0, count: 32)))
        #expect(otherSecret.hex == "51252b5b149fa5e29dae30a60a411d3675cf25f2b7e5d1ad65797b86094b63b7")
        #expect(otherSecret != upper)
        // Not a plain hash of the number.
        #expect(upper.hex != SHA256.hash(data: Array("11010519491231002X".utf8)).map { String(format: "%02x", $0) }.joined())
    }

    @Test func shortSecretsAndBadHexAreRefused() throws {
        let short = refusal { try patientKey(residentID: Fixture.residentID("11010519491231002X"), clusterSecret: SymmetricKey(size: .bits128)) }
        #expect(short?.code == "cluster_secret.too_short")
        #expect(short?.field == "clusterSecret")
        #expect(refusal { try PatientKey(hex: String(repeating: "A", count: 64)) }?.code == "patient_key.format")
        #expect(refusal { try PatientKey(hex: "abc") }?.code == "patient_key.format")
        #expect(refusal { try PatientKey(hex: String(repeating: "0", count: 64)) } == nil)
    }
}
