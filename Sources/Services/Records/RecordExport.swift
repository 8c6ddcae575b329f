import Domain
import Foundation
import ReplicatedCore

/// A patient's record as a FHIR R4 Bundle in the shape `Patient/$everything` answers: the
/// Patient, then per visit its Encounter, the note as a Composition, its diagnoses as Conditions
/// and its vital signs as Observations (LOINC codes of the FHIR vital-signs profile); each order
/// as a ServiceRequest and its result as it stands as a DiagnosticReport with its Observations. The
/// resident ID and the mobile number are left out: the export is for reading the record.
package enum RecordExport {
    /// The diagnosis catalogue's code system (ICD-10 医保版 2.0 has no FHIR URI of its own).
    package static let diagnosisSystem = "urn:clinicmesh:codesystem:icd10-yibao-2.0"

    /// The vital signs as the FHIR vital-signs profile codes them: LOINC code, its display, UCUM unit.
    static let vitalCodes: [String: (loinc: String, display: String, unit: String)] = [
        "temperature": ("8310-5", "Body temperature", "Cel"),
        "pulse": ("8867-4", "Heart rate", "/min"),
        "respiration": ("9279-1", "Respiratory rate", "/min"),
        "height": ("8302-2", "Body height", "cm"),
        "weight": ("29463-7", "Body weight", "kg"),
    ]

    /// The allergen list's own codes (its food groups and environmental allergens).
    package static let allergenSystem = "urn:clinicmesh:codesystem:allergens"
    /// The order catalogue's code system (the hospital's own item codes).
    package static let orderSystem = "urn:clinicmesh:codesystem:order-catalogue"

    /// `reports`: each order's result as it stands (`OrderDesk.currentReports`).
    package static func bundle(patientKey: String, patient: [String: ColumnValue], visits: [VisitRecord], orders: [LabOrder] = [], reports: [LabReport] = [],
                               departmentNames: [String: String], doctorNames: [String: String], generatedMs: Int64) -> [String: Any] {
        var entries: [[String: Any]] = []
        func add(_ resource: [String: Any]) {
            let type = resource["resourceType"] as? String ?? "", id = resource["id"] as? String ?? ""
            entries.append(["fullUrl": "urn:clinicmesh:\(type)/\(id)", "resource": resource, "search": ["mode": type == "Patient" ? "match" : "include"]])
        }
        var p: [String: Any] = ["resourceType": "Patient", "id": patientKey, "name": [["text": patient["name"]?.textValue ?? ""]]]
        switch patient["sex"]?.textValue {
        case "male": p["gender"] = "male"
        case "female": p["gender"] = "female"
        default: p["gender"] = "unknown"
        }
        if let born = patient["birth_date"]?.textValue, !born.isEmpty { p["birthDate"] = born }
        add(p)
        let subject = ["reference": "Patient/\(patientKey)"]
        for v in visits {
            let e = v.encounter
            let encounterRef = ["reference": "Encounter/\(e.id)"]
            add([
                "resourceType": "Encounter", "id": e.id, "status": v.locked ? "finished" : "in-progress",
                "class": ["system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"],
                "subject": subject, "period": ["start": e.date],
                "serviceType": ["text": departmentNames[e.department] ?? e.department],
                "participant": [["individual": ["display": doctorNames[e.practitioner] ?? e.practitioner]]],
            ])
            guard let current = v.current else { continue }
            let note = current.note
            let void = current.kind == .enteredInError
            let status: String
            switch current.kind {
            case .draft: status = "preliminary"
            case .signed: status = "final"
            case .amendment: status = "amended"
            case .enteredInError: status = "entered-in-error"
            }
            add([
                "resourceType": "Composition", "id": "\(e.id)-note", "status": status, "type": ["text": "门诊病历 / Outpatient note"],
                "subject": subject, "encounter": encounterRef, "date": iso(current.atMs), "title": "门诊病历 \(e.date)",
                "author": [["display": current.authorName]],
                "section": ClinicalNote.sections.filter { !note[keyPath: $0.path].isEmpty }.map { s -> [String: Any] in
                    ["title": "\(s.zh) / \(s.en)",
                     "text": ["status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">\(HTMLText.escaped(note[keyPath: s.path], lineBreaks: true))</div>"]]
                },
            ])
            for (i, d) in note.diagnoses.enumerated() {
                add([
                    "resourceType": "Condition", "id": "\(e.id)-dx\(i + 1)",
                    "category": [["coding": [["system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"]]]],
                    "verificationStatus": ["coding": [["system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                       "code": void ? "entered-in-error" : "confirmed"]]],
                    "code": ["coding": [["system": diagnosisSystem, "code": d.code, "display": d.name]], "text": d.name],
                    "subject": subject, "encounter": encounterRef, "recordedDate": iso(current.atMs),
                ])
            }
            let vitals = note.vitals
            func observation(_ id: String, _ code: [String: Any], value: [String: Any]) -> [String: Any] {
                ["resourceType": "Observation", "id": "\(e.id)-\(id)", "status": void ? "entered-in-error" : "final",
                 "category": [["coding": [["system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"]]]],
                 "code": code, "subject": subject, "encounter": encounterRef, "effectiveDateTime": iso(current.atMs)].merging(value) { a, _ in a }
            }
            for (field, value) in vitals.values where field != "systolic" && field != "diastolic" {
                guard let c = vitalCodes[field] else { continue }
                add(observation(field, ["coding": [["system": "http://loinc.org", "code": c.loinc, "display": c.display]]],
                                value: ["valueQuantity": quantity(value, c.unit)]))
            }
            if let s = vitals.systolic, let d = vitals.diastolic {
                add(observation("bp", ["coding": [["system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel with all children optional"]]],
                                value: ["component": [
                                    ["code": ["coding": [["system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"]]], "valueQuantity": quantity(Double(s), "mm[Hg]")],
                                    ["code": ["coding": [["system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"]]], "valueQuantity": quantity(Double(d), "mm[Hg]")],
                                ]]))
            }
        }
        // The allergies as the newest note records them (the visits come newest first).
        if let newest = visits.lazy.compactMap(\.current).first(where: { $0.kind != .enteredInError }) {
            let allergens = try? AllergenCatalogue.shipped.get()
            let verified = ["coding": [["system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"]]]
            for code in newest.note.allergyCodes {
                let entry = allergens?.entry(code)
                add([
                    "resourceType": "AllergyIntolerance", "id": "\(patientKey.prefix(16))-\(code)", "patient": subject, "verificationStatus": verified,
                    "category": [entry?.category ?? "medication"], "recordedDate": iso(newest.atMs),
                    "code": ["coding": [["system": entry?.category == "medication" ? "http://www.whocc.no/atc" : allergenSystem,
                                         "code": code, "display": entry?.en ?? code]], "text": entry?.zh ?? code],
                ])
            }
            if newest.note.noKnownAllergies {
                add([
                    "resourceType": "AllergyIntolerance", "id": "\(patientKey.prefix(16))-nka", "patient": subject, "verificationStatus": verified,
                    "recordedDate": iso(newest.atMs),
                    "code": ["coding": [["system": "http://snomed.info/sct", "code": "716186003", "display": "No known allergy"]], "text": "无已知过敏"],
                ])
            }
        }
        let current = Dictionary(reports.map { ($0.order, $0) }, uniquingKeysWith: { first, _ in first })
        for o in orders {
            let code: [String: Any] = ["coding": [["system": orderSystem, "code": o.item, "display": o.name]], "text": o.name]
            var request: [String: Any] = [
                "resourceType": "ServiceRequest", "id": o.id, "intent": "order", "code": code, "subject": subject,
                "status": o.status == .cancelled ? "revoked" : o.status == .reported ? "completed" : "active",
                "category": [["text": "\(o.kind.zh) / \(o.kind.en)"]], "encounter": ["reference": "Encounter/\(o.encounter)"],
                "authoredOn": iso(o.orderedMs), "requester": ["display": o.orderedName],
            ]
            if !o.clinical.isEmpty { request["note"] = [["text": o.clinical]] }
            add(request)
            guard let r = current[o.id] else { continue }
            let category = [["coding": [["system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": o.kind == .lab ? "laboratory" : "imaging"]]]]
            var results: [[String: String]] = []
            for (i, ob) in r.observations.enumerated() {
                var observation: [String: Any] = [
                    "resourceType": "Observation", "id": "\(o.id)-r\(i + 1)", "status": r.status == .corrected ? "corrected" : "final", "category": category,
                    "code": ["coding": [["system": orderSystem, "code": ob.code, "display": ob.name]], "text": ob.name], "subject": subject,
                    "encounter": ["reference": "Encounter/\(o.encounter)"], "effectiveDateTime": iso(r.atMs),
                    "interpretation": [["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": ob.flag.rawValue]]]],
                ]
                if let number = Double(ob.value) { observation["valueQuantity"] = ["value": number, "unit": ob.unit] } else { observation["valueString"] = ob.value }
                if !ob.range.isEmpty { observation["referenceRange"] = [["text": ob.range]] }
                add(observation)
                results.append(["reference": "Observation/\(o.id)-r\(i + 1)"])
            }
            var report: [String: Any] = [
                "resourceType": "DiagnosticReport", "id": "\(o.id)-report", "status": r.status.rawValue, "category": category, "code": code,
                "subject": subject, "encounter": ["reference": "Encounter/\(o.encounter)"], "basedOn": [["reference": "ServiceRequest/\(o.id)"]],
                "issued": iso(r.atMs), "performer": [["display": r.enteredName]], "result": results,
            ]
            if !r.conclusion.isEmpty { report["conclusion"] = r.conclusion }
            add(report)
        }
        return ["resourceType": "Bundle", "type": "searchset", "timestamp": iso(generatedMs), "total": entries.count, "entry": entries]
    }

    static func quantity(_ value: Double, _ unit: String) -> [String: Any] {
        ["value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit]
    }

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

}
