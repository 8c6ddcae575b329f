import Foundation
import Testing
@testable import Domain

@Suite struct PatientTests {
    let id = Fixture.residentID("130102199003071233")   // male, born 1990-03-07
    let mobile = try! MobileNumber("13812345678")

    @Test func validPatientIsTrimmed() throws {
        let patient = try Patient(name: "  张伟 ", sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile)
        #expect(patient.name == "张伟")
        #expect(patient.residentID.sex == .male)
        let minority = try Patient(name: "买买提·艾力", sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile)
        #expect(minority.name == "买买提·艾力")
    }

    @Test func birthDateMismatchNamesBirthDate() {
        let error = refusal { try Patient(name: "张伟", sex: .male, birthDate: Fixture.date("1990-03-08"), residentID: id, mobile: mobile) }
        #expect(error?.field == "birthDate")
        #expect(error?.code == "birth_date.mismatch")
    }

    @Test(arguments: [Sex.female, .other, .unknown])
    func sexMismatchNamesSex(_ sex: Sex) {
        let error = refusal { try Patient(name: "张伟", sex: sex, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile) }
        #expect(error?.field == "sex")
        #expect(error?.code == "sex.mismatch")
    }

    @Test(arguments: [
        ("", "name.empty"),
        (" \u{3000}\n", "name.empty"),
        (String(repeating: "张", count: 51), "name.length"),
        ("张\n伟", "name.characters"),
        ("张\t伟", "name.characters"),
    ])
    func nameRefusals(name: String, code: String) {
        let error = refusal { try Patient(name: name, sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile) }
        #expect(error?.field == "name")
        #expect(error?.code == code)
    }

    @Test func fiftyCharactersAreAllowedCountingWhatPeopleSee() throws {
        // "é" written as e + combining accent is one character.
        let name = String(repeating: "e\u{0301}", count: 50)
        #expect(try Patient(name: name, sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile).name == name)
    }

    @Test func fieldErrorsFromRawInputNameTheField() {
        #expect(refusal { try ResidentID("123", today: Fixture.today) }?.field == "residentID")
        #expect(refusal { try MobileNumber("123") }?.field == "mobile")
        #expect(refusal { try CivilDate(parsing: "1990-13-01", field: "birthDate") }?.field == "birthDate")
    }

    @Test func codableRoundTripRechecksAgreement() throws {
        let patient = try Patient(name: "张伟", sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile)
        let data = try JSONEncoder().encode(patient)
        #expect(try JSONDecoder().decode(Patient.self, from: data) == patient)
        let tampered = String(decoding: data, as: UTF8.self).replacingOccurrences(of: #""sex":"male""#, with: #""sex":"female""#)
        #expect(tampered != String(decoding: data, as: UTF8.self))
        #expect(throws: ValidationError.self) { try JSONDecoder().decode(Patient.self, from: Data(tampered.utf8)) }
    }

    @Test func errorDescriptionIsChineseFirst() throws {
        let error = try #require(refusal { try Patient(name: "", sex: .male, birthDate: Fixture.date("1990-03-07"), residentID: id, mobile: mobile) })
        #expect(error.description == "\(error.zh) / \(error.en) [name: name.empty]")
    }
}

@Suite struct DepartmentAndPractitionerTests {
    @Test func departmentIDsAreLowercaseSlugs() throws {
        #expect(try DepartmentID("cardiology").rawValue == "cardiology")
        #expect(try DepartmentID("ent-2").rawValue == "ent-2")
        for bad in ["Cardiology", "心内科", "card iology", "-ent", "ent-", "ent--2", "a/b", "ｅｎｔ"] {
            #expect(refusal { try DepartmentID(bad) }?.code == "department_id.format", "\(bad)")
        }
        #expect(refusal { try DepartmentID("") }?.code == "department_id.empty")
        #expect(refusal { try DepartmentID(String(repeating: "a", count: 65)) }?.code == "department_id.length")
        #expect(refusal { try PractitionerID("Dr.Wang") }?.field == "practitionerID")
    }

    @Test func departmentNamesAreRequired() throws {
        let department = try Department(id: Fixture.cardiology, nameZh: " 心血管内科 ", nameEn: "Cardiology")
        #expect(department.nameZh == "心血管内科")
        #expect(refusal { try Department(id: Fixture.cardiology, nameZh: "", nameEn: "Cardiology") }?.field == "nameZh")
        #expect(refusal { try Department(id: Fixture.cardiology, nameZh: "心血管内科", nameEn: " ") }?.code == "name_en.empty")
    }

    @Test func practitionerTitlesAndNames() throws {
        #expect(PractitionerTitle.allCases.map(\.zh) == ["主任医师", "副主任医师", "主治医师", "住院医师"])
        #expect(PractitionerTitle.allCases.map { FeeTable.standard.feeFen(for: $0) } == [5000, 3000, 2000, 1000])
        #expect(refusal { try Practitioner(id: Fixture.drWang, name: "", title: .chiefPhysician, departmentID: Fixture.cardiology) }?.field == "name")
    }
}
