import Domain
import Foundation
import Hummingbird
import Services

// The outpatient record's pages: the doctor's visit page (opened from the queue: the note's
// sections, vital signs, diagnoses from the ICD-10 catalogue, save and sign, amendments and
// entered-in-error), the versions with the differences between any two, and the diagnosis search.

extension StaffPages {
    static let recordRoutes: [StaffRoute] = [
        StaffRoute(method: .post, path: "/staff/visits/open", action: "record.write"),
        StaffRoute(method: .get, path: "/staff/visits/{id}", action: "record.write"),
        StaffRoute(method: .post, path: "/staff/visits/{id}", action: "record.write"),
        StaffRoute(method: .post, path: "/staff/visits/{id}/void", action: "record.write"),
        StaffRoute(method: .get, path: "/staff/visits/{id}/versions", action: "patient.read"),
        StaffRoute(method: .get, path: "/staff/diagnoses", action: "record.write"),
        StaffRoute(method: .get, path: "/staff/records/search", action: "record.search"),
        StaffRoute(method: .get, path: "/staff/patients/{key}/export.json", action: "patient.read"),
        StaffRoute(method: .get, path: "/staff/patients/{key}/print", action: "patient.read"),
        StaffRoute(method: .get, path: "/staff/templates", action: "template.manage"),
        StaffRoute(method: .post, path: "/staff/templates", action: "template.manage"),
        StaffRoute(method: .post, path: "/staff/templates/{id}/retire", action: "template.manage"),
        StaffRoute(method: .post, path: "/staff/phrases", action: "template.manage"),
        StaffRoute(method: .post, path: "/staff/phrases/{id}/retire", action: "template.manage"),
        StaffRoute(method: .post, path: "/staff/visits/{id}/template", action: "template.manage"),
        StaffRoute(method: .get, path: "/staff/static/record.js", action: "public"),
    ]

    func recordDesk() throws(StaffError) -> RecordDesk {
        guard let records else { throw StaffError(503, "record.unavailable", zh: "本节点未提供门诊病历功能。", en: "this node does not offer the outpatient record.") }
        return records
    }

    func recordRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]], page: PageAnswer,
                     _ account: StaffAccount) throws(StaffError) -> Response {
        let records = try recordDesk()
        let author = RecordAuthor(staff: account.number, name: account.name, practitioner: account.practitioner)
        let id = context.parameters.get("id") ?? ""
        switch (route.method, route.path) {
        case (.post, "/staff/visits/open"):
            let appointment = form["appointment"]?.first ?? ""
            if let ref = AppointmentRef(encoded: appointment) {
                let session = try floorDesk().sessionToday(ref.block).info
                try mayWrite(department: session.department, practitioner: session.practitioner, resource: "session/\(ref.block)", account)
            }
            let visit = try records.open(appointment: appointment, by: author)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.open", patient: visit.patient,
                                       resource: "encounter/\(visit.id)", outcome: "ok"))
            return page.redirect("/staff/visits/\(visit.id)")
        case (.get, "/staff/visits/{id}"):
            let visit = try records.visit(id)
            try mayWrite(visit.encounter, account)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.read", patient: visit.encounter.patient,
                                       resource: "encounter/\(id)", outcome: "ok"))
            return try visitPage(page, records, visit, draft: nil, message: nil, status: 200)
        case (.post, "/staff/visits/{id}"):
            let visit = try records.visit(id)
            try mayWrite(visit.encounter, account)
            var draft = ClinicalNote()
            do throws(StaffError) {
                draft = try Self.note(from: form, catalogue: records.catalogue)
                if form["action"]?.first == "order" {
                    // Placed at once; the note on the screen stays as typed, not saved.
                    let order = try orderDesk().place(visit, item: form["order_item"]?.first ?? "", clinical: form["order_clinical"]?.first ?? "", by: author)
                    try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "order.place", patient: visit.encounter.patient,
                                               resource: "order/\(order.id)", outcome: order.item))
                    return try visitPage(page, records, visit, draft: draft,
                                         message: StaffError(200, "order.placed", zh: "已开单：\(order.name)。病历尚未保存。",
                                                             en: "ordered: \(orders?.catalogue.item(order.item)?.en ?? order.name). The note is not saved yet."), status: 200)
                }
                if form["action"]?.first == "template" {
                    // Applied to what is on the screen, not saved: the doctor reads it first.
                    guard let chosen = try templates.template(form["template"]?.first ?? ""),
                          chosen.template.scope == .department ? account.departments.contains(chosen.template.department) || visit.encounter.department == chosen.template.department
                                                               : chosen.template.owner == account.number else {
                        throw StaffError(404, "template.not_found", zh: "没有这个模板（可能已停用）。", en: "no such template (it may have been retired).")
                    }
                    draft = chosen.template.applied(to: draft, values: placeholderValues(visit, page))
                    return try visitPage(page, records, visit, draft: draft,
                                         message: StaffError(200, "template.applied", zh: "已套用模板“\(chosen.template.name)”，尚未保存。",
                                                             en: "template “\(chosen.template.name)” applied; not saved yet."), status: 200)
                }
                let action = RecordDesk.SaveAction(rawValue: form["action"]?.first ?? "") ?? .save
                let settles = (form["settles"]?.first ?? "").split(separator: ",").map(String.init)
                let saved = try records.save(id, note: draft, base: form["base"]?.first ?? "", settles: settles, action: action,
                                             reason: form["reason"]?.first ?? "", by: author)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.write", patient: visit.encounter.patient,
                                           resource: "note/\(saved.key)", outcome: saved.kind.rawValue))
                return page.redirect("/staff/visits/\(id)?saved=\(saved.kind.rawValue)")
            } catch {
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.write", patient: visit.encounter.patient,
                                           resource: "encounter/\(id)", outcome: error.code))
                return try visitPage(page, records, visit, draft: draft, message: error, status: error.status)
            }
        case (.post, "/staff/visits/{id}/void"):
            let visit = try records.visit(id)
            try mayWrite(visit.encounter, account)
            do throws(StaffError) {
                let saved = try records.enterInError(id, reason: form["reason"]?.first ?? "", by: author)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.void", patient: visit.encounter.patient,
                                           resource: "note/\(saved.key)", outcome: "ok", detail: saved.reason))
                return page.redirect("/staff/visits/\(id)")
            } catch {
                return try visitPage(page, records, visit, draft: nil, message: error, status: error.status)
            }
        case (.get, "/staff/visits/{id}/versions"):
            let visit = try records.visit(id)
            // Reading a note is reading the patient: the care relation or break-glass, audited.
            do { _ = try desk.openPatient(visit.encounter.patient, for: account, appointments: appointments) } catch where error == .breakGlassRequired {
                return lockedPatientPage(page, key: visit.encounter.patient, account: account, message: error)
            }
            let query = request.uri.queryParameters
            return versionsPage(page, visit, a: query["a"].map(String.init), b: query["b"].map(String.init))
        case (.get, "/staff/diagnoses"):
            let q = request.uri.queryParameters["q"].map(String.init) ?? ""
            let found = records.catalogue.search(q)
            if request.uri.queryParameters["format"] == "json" {
                let rows = found.map { ["code": $0.code, "name": $0.name] }
                let data = (try? JSONSerialization.data(withJSONObject: ["results": rows], options: [.sortedKeys])) ?? Data("{\"results\":[]}".utf8)
                return page.asset(String(decoding: data, as: UTF8.self), contentType: "application/json; charset=utf-8")
            }
            var values = page.values(title: page.text("diagnosisSearchTitle"))
            values["q"] = q
            values["results"] = found.map { ["code": $0.code, "name": $0.name] }
            values["searched"] = !q.isEmpty
            return page.html(renderer.render("diagnoses", values))
        case (.post, "/staff/visits/{id}/template"):
            let visit = try records.visit(id)
            try mayWrite(visit.encounter, account)
            do throws(StaffError) {
                guard let current = visit.current else {
                    throw StaffError(409, "template.no_note", zh: "请先保存病历，再存为模板。", en: "save the note first, then make a template of it.")
                }
                let scope = try templateScope(form["scope"]?.first, department: visit.encounter.department, account)
                let saved = try templates.save(NoteTemplate(name: form["name"]?.first ?? "", scope: scope, department: visit.encounter.department,
                                                            owner: account.number, note: current.note))
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "template.save", resource: "template/\(saved.id)", outcome: "ok"))
                return try visitPage(page, records, visit, draft: nil, message: StaffError(200, "template.saved", zh: "已存为模板“\(saved.template.name)”。",
                                                                                            en: "saved as template “\(saved.template.name)”."), status: 200)
            } catch {
                return try visitPage(page, records, visit, draft: nil, message: error, status: error.status)
            }
        case (.get, "/staff/patients/{key}/export.json"), (.get, "/staff/patients/{key}/print"):
            let key = try Self.patientKey(context)
            do { _ = try desk.openPatient(key, for: account, appointments: appointments) } catch where error == .breakGlassRequired {
                return lockedPatientPage(page, key: key, account: account, message: error)
            }
            let visits = try records.timeline(patient: key)
            let patient = ((try? desk.store.liveRow("patient", key: key)) ?? nil) ?? [:]
            let exporting = route.path.hasSuffix("export.json")
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: exporting ? "record.export" : "record.print", patient: key,
                                       resource: "patient/\(key)", outcome: "\(visits.count)"))
            let departments = Dictionary(((try? desk.store.liveRows("department")) ?? [:]).map { ($0.key, $0.value["name"]?.textValue ?? $0.key) }, uniquingKeysWith: { a, _ in a })
            let doctors = ((try? desk.store.liveRows("practitioner", keys: Set(visits.map(\.encounter.practitioner)))) ?? [:]).mapValues { $0["name"]?.textValue ?? "" }
            if exporting {
                let bundle = RecordExport.bundle(patientKey: key, patient: patient, visits: visits, orders: (try? orders?.orders(patient: key)) ?? [],
                                                 reports: (try? orders?.currentReports(patient: key)) ?? [], departmentNames: departments, doctorNames: doctors,
                                                 generatedMs: desk.clock.wallMillis())
                let data = (try? JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
                var page = page
                page.extraHeaders.append((.contentDisposition, "attachment; filename=\"patient-\(key.prefix(12)).fhir.json\""))
                return page.asset(String(decoding: data, as: UTF8.self), contentType: "application/fhir+json; charset=utf-8")
            }
            let zh = page.lang == .zh
            var values = page.values(title: page.text("printTitle"))
            values["patient"] = ["name": patient["name"]?.textValue ?? "", "sex": page.text(patient["sex"]?.textValue ?? ""),
                                 "birthDate": patient["birth_date"]?.textValue ?? "", "key": key]
            values["visits"] = visits.compactMap { v -> [String: Any]? in
                guard let c = v.current else { return nil }
                let vitals = c.note.vitals.values
                var visit: [String: Any] = [
                    "date": v.encounter.date, "department": departments[v.encounter.department] ?? v.encounter.department,
                    "doctor": doctors[v.encounter.practitioner] ?? v.encounter.practitioner, "kind": zh ? c.kind.zh : c.kind.en,
                    "author": c.authorName, "at": Self.shanghai(c.atMs), "void": c.kind == .enteredInError,
                    "sections": ClinicalNote.sections.filter { !c.note[keyPath: $0.path].isEmpty }.map { ["label": zh ? $0.zh : $0.en, "text": c.note[keyPath: $0.path]] },
                    "diagnoses": c.note.diagnoses.map { "\($0.name)（\($0.code)）" }.joined(separator: "、"),
                ]
                if !vitals.isEmpty {
                    visit["vitals"] = VitalSigns.bounds.compactMap { b in vitals[b.field].map { "\(zh ? b.zh : b.en) \(Self.number($0)) \(b.unit)" } }.joined(separator: " · ")
                }
                return visit
            }
            let reports = (try? orders?.currentReports(patient: key)) ?? []
            values["reports"] = reports.map { r -> [String: Any] in
                var v = reportValues(r, page, current: true)
                v["title"] = (zh ? orders?.catalogue.item(r.item)?.zh : orders?.catalogue.item(r.item)?.en) ?? r.item
                return v
            }
            values["hasReports"] = !reports.isEmpty
            values["printedAt"] = Self.shanghai(desk.clock.wallMillis())
            return page.html(renderer.render("print", values))
        case (.post, "/staff/phrases"):
            do throws(StaffError) {
                let id = try templates.savePhrase(form["text"]?.first ?? "", owner: account.number)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "phrase.save", resource: "phrase/\(id)", outcome: "ok"))
                return page.redirect("/staff/templates")
            } catch {
                return try templatesPage(page, account, message: error, status: error.status)
            }
        case (.post, "/staff/phrases/{id}/retire"):
            do throws(StaffError) {
                try templates.retirePhrase(id, owner: account.number)
                return page.redirect("/staff/templates")
            } catch {
                return try templatesPage(page, account, message: error, status: error.status)
            }
        case (.get, "/staff/templates"):
            return try templatesPage(page, account, message: nil, status: 200)
        case (.post, "/staff/templates"):
            do throws(StaffError) {
                let department = try pageDepartment(form["dept"]?.first, action: "template.manage", account)
                let scope = try templateScope(form["scope"]?.first, department: department, account)
                var note = ClinicalNote()
                for s in ClinicalNote.sections { note[keyPath: s.path] = form[s.field]?.first ?? "" }
                let saved = try templates.save(NoteTemplate(name: form["name"]?.first ?? "", scope: scope, department: department, owner: account.number, note: note))
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "template.save", resource: "template/\(saved.id)", outcome: "ok"))
                return page.redirect("/staff/templates")
            } catch {
                return try templatesPage(page, account, message: error, status: error.status)
            }
        case (.post, "/staff/templates/{id}/retire"):
            guard let t = try templates.template(id), mayKeep(t.template, account) else {
                return try templatesPage(page, account, message: StaffError(404, "template.not_found", zh: "没有这个模板，或您不能停用它。",
                                                                            en: "no such template, or it is not yours to retire."), status: 404)
            }
            try templates.retire(id)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "template.retire", resource: "template/\(id)", outcome: "ok"))
            return page.redirect("/staff/templates")
        case (.get, "/staff/records/search"):
            let query = request.uri.queryParameters
            func field(_ name: String) -> String { query[Substring(name)].map { String($0).trimmingCharacters(in: .whitespaces) } ?? "" }
            let department = try pageDepartment(field("dept"), action: "record.search", account)
            var values = page.values(title: page.text("searchTitle"))
            let form = ["q": field("q"), "diagnosis": field("diagnosis"), "doctor": field("doctor"), "from": field("from"), "to": field("to")]
            values["form"] = form
            values["dept"] = department
            values["doctors"] = ((try? desk.store.liveRows("practitioner", equal: ["department": .text(department)], range: nil, newestBy: nil, limit: 500)) ?? [])
                .sorted { $0.key < $1.key }.map { ["slug": $0.key, "name": $0.row["name"]?.textValue ?? $0.key, "chosen": $0.key == form["doctor"]] }
            guard form.values.contains(where: { !$0.isEmpty }) else { return page.html(renderer.render("search", values)) }
            do throws(StaffError) {
                let found = try records.search(NoteQuery(department: department, words: form["q"] ?? "", diagnosis: form["diagnosis"] ?? "",
                                                         practitioner: form["doctor"] ?? "", from: form["from"] ?? "", to: form["to"] ?? ""))
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "record.search", resource: "department/\(department)",
                                           outcome: "\(found.count)", detail: form.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")))
                values["searched"] = true
                values["results"] = foundValues(found, page)
                return page.html(renderer.render("search", values))
            } catch {
                values["message"] = ["code": error.code, "text": page.lang == .zh ? error.zh : error.en, "kind": "error"]
                return page.html(renderer.render("search", values), status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    var templates: TemplateDesk { TemplateDesk(store: desk.store, clock: desk.clock) }

    /// Personal for anyone who may keep templates; the department's only with `dept` or `all` reach.
    func templateScope(_ asked: String?, department: String, _ account: StaffAccount) throws(StaffError) -> NoteTemplate.Scope {
        let scope = NoteTemplate.Scope(rawValue: asked ?? "") ?? .personal
        guard scope == .department else { return .personal }
        switch desk.rules.scope(of: "template.manage", for: account.roles) {
        case .all?: return .department
        case .dept? where account.departments.contains(department): return .department
        default:
            throw StaffError(403, "template.department_scope", zh: "只有科主任可以建立科室模板；您可以存为个人模板。",
                             en: "only the department head keeps department templates; save it as a personal one.")
        }
    }

    func mayKeep(_ t: NoteTemplate, _ account: StaffAccount) -> Bool {
        t.scope == .personal ? t.owner == account.number : ((try? templateScope("department", department: t.department, account)) == .department)
    }

    func placeholderValues(_ visit: VisitRecord, _ page: PageAnswer) -> [String: String] {
        let patient = ((try? desk.store.liveRow("patient", key: visit.encounter.patient)) ?? nil) ?? [:]
        return ["【姓名】": patient["name"]?.textValue ?? "", "【性别】": page.text(patient["sex"]?.textValue ?? ""),
                "【年龄】": CivilDate.age(birthDate: patient["birth_date"]?.textValue, on: visit.encounter.date).map { page.lang == .zh ? "\($0)岁" : "\($0) y" } ?? "",
                "【就诊日期】": visit.encounter.date]
    }

    func templatesPage(_ page: PageAnswer, _ account: StaffAccount, message: StaffError?, status: Int) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("templatesTitle"), message: message)
        values["templates"] = try templates.visible(to: account.number, departments: account.departments).map { t -> [String: Any] in
            ["id": t.id, "name": t.template.name, "scope": page.text("templateScope_" + t.template.scope.rawValue), "department": t.template.department,
             "mayRetire": mayKeep(t.template, account),
             "sections": ClinicalNote.sections.filter { !t.template.note[keyPath: $0.path].isEmpty }.map { ["label": zh ? $0.zh : $0.en, "text": t.template.note[keyPath: $0.path]] }]
        }
        values["mayDepartment"] = desk.rules.scope(of: "template.manage", for: account.roles).map { $0 != .own } ?? false
        values["dept"] = account.departments.first ?? ""
        values["sections"] = ClinicalNote.sections.map { ["field": $0.field, "label": zh ? $0.zh : $0.en] }
        values["phrases"] = try templates.phrases(of: account.number).enumerated().map { i, p -> [String: Any] in
            ["id": p.id, "text": p.text, "key": i < 9 ? "Alt+\(i + 1)" : ""]
        }
        values["placeholders"] = NoteTemplate.placeholders.map { zh ? $0.token : "\($0.token) (\($0.en))" }.joined(separator: " ")
        return page.html(renderer.render("templates", values), status: status)
    }

    /// Found notes as a results table shows them: the patient's name, the visit, the snippet.
    func foundValues(_ found: [FoundNote], _ page: PageAnswer) -> [[String: Any]] {
        let names = ((try? desk.store.liveRows("patient", keys: Set(found.map(\.encounter.patient)))) ?? [:])
        let doctors = ((try? desk.store.liveRows("practitioner", keys: Set(found.map(\.encounter.practitioner)))) ?? [:])
        return found.map { f -> [String: Any] in
            ["encounter": f.encounter.id, "date": f.encounter.date, "patient": names[f.encounter.patient]?["name"]?.textValue ?? "",
             "patientKey": f.encounter.patient, "doctor": doctors[f.encounter.practitioner]?["name"]?.textValue ?? f.encounter.practitioner,
             "diagnoses": f.version.note.diagnoses.map { "\($0.name)（\($0.code)）" }.joined(separator: "、"),
             "snippet": f.snippet.map { ["text": $0.text, "found": $0.found] }]
        }
    }

    /// A doctor writes in their own sessions' visits (`own`); a department head in their departments'.
    func mayWrite(_ e: Encounter, _ account: StaffAccount) throws(StaffError) {
        try mayWrite(department: e.department, practitioner: e.practitioner, resource: "encounter/\(e.id)", account)
    }

    func mayWrite(department: String, practitioner: String, resource: String, _ account: StaffAccount) throws(StaffError) {
        guard reaches("record.write", department: department, practitioner: practitioner, account) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: resource,
                                       outcome: "denied", detail: "record.write"))
            throw StaffError(403, "record.not_yours", zh: "这不是您接诊的患者，不能书写其病历。", en: "this is not your patient's visit; you cannot write its note.")
        }
    }

    /// The note as the form sends it; a vital sign that is not a number is refused.
    static func note(from form: [String: [String]], catalogue: DiagnosisCatalogue) throws(StaffError) -> ClinicalNote {
        var note = ClinicalNote()
        for s in ClinicalNote.sections { note[keyPath: s.path] = form[s.field]?.first ?? "" }
        do {
            func value(_ field: String) throws(ValidationError) -> Double? { try VitalSigns.parse(form[field]?.first ?? "", field: field) }
            func whole(_ field: String) throws(ValidationError) -> Int? {
                guard let v = try value(field) else { return nil }
                guard v == v.rounded(), abs(v) < 100_000 else {
                    throw ValidationError(field: field, code: "vitals.whole_number", zh: "\(field) 请填写整数。", en: "\(field) must be a whole number.")
                }
                return Int(v)
            }
            note.vitals = VitalSigns(temperature: try value("temperature"), pulse: try whole("pulse"), respiration: try whole("respiration"),
                                     systolic: try whole("systolic"), diastolic: try whole("diastolic"), height: try value("height"), weight: try value("weight"))
        } catch { throw .invalid(error) }
        note.allergyCodes = (form["allergy_codes"] ?? []).prefix(50).map { $0 }
        note.noKnownAllergies = form["no_known_allergies"]?.first == "1"
        let codes = (form["diagnoses"]?.first ?? "").split(whereSeparator: { $0 == "," || $0 == "，" || $0 == " " || $0 == "\n" || $0 == ";" || $0 == "；" })
        note.diagnoses = codes.prefix(50).map { code in
            Diagnosis(code: String(code), name: catalogue.entry(code: String(code))?.name ?? "")
        }
        return note
    }

    func visitPage(_ page: PageAnswer, _ records: RecordDesk, _ visit: VisitRecord, draft: ClinicalNote?, message: StaffError?,
                   status: Int) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("visitTitle"), message: message)
        let e = visit.encounter
        let patient = ((try? desk.store.liveRow("patient", key: e.patient)) ?? nil) ?? [:]
        let carried = try records.carriedForward(patient: e.patient, before: e.id)
        let note = draft ?? visit.current?.note ?? carried.note
        values["visit"] = ["id": e.id, "date": e.date, "patientKey": e.patient]
        // Sections take only what is there: an empty string would still open a mustache section.
        let shown = visit.current?.note ?? carried.note
        var header: [String: Any] = [
            "name": patient["name"]?.textValue ?? "", "sex": page.text(patient["sex"]?.textValue ?? ""),
            "age": CivilDate.age(birthDate: patient["birth_date"]?.textValue, on: e.date).map { zh ? "\($0) 岁" : "\($0) y" } ?? "",
        ]
        if !shown.allergies.isEmpty { header["allergies"] = shown.allergies }
        let allergens = try? AllergenCatalogue.shipped.get()
        let coded = shown.allergyCodes.map { code in allergens?.entry(code).map { zh ? $0.zh : $0.en } ?? code }
        if !coded.isEmpty { header["coded"] = coded.joined(separator: "、") }
        if shown.noKnownAllergies { header["noKnown"] = true }
        if !shown.pastHistory.isEmpty { header["history"] = shown.pastHistory }
        if let last = carried.lastDate {
            header["last"] = ["date": last, "diagnoses": carried.lastDiagnoses.map { "\($0.name)（\($0.code)）" }.joined(separator: "、")]
        }
        values["patient"] = header
        values["sections"] = ClinicalNote.sections.map { s -> [String: Any] in
            ["field": s.field, "label": zh ? s.zh : s.en, "text": note[keyPath: s.path], "rows": s.field == "chief_complaint" ? 2 : 4]
        }
        let v = note.vitals.values
        values["vitals"] = VitalSigns.bounds.map { b -> [String: Any] in
            ["field": b.field, "label": zh ? b.zh : b.en, "unit": b.unit, "value": v[b.field].map(Self.number) ?? "",
             "min": Self.number(b.range.lowerBound), "max": Self.number(b.range.upperBound)]
        }
        if desk.rules.scope(of: "template.manage", for: (page.signedIn?.account.roles) ?? []) != nil, let account = page.signedIn?.account {
            let choices = ((try? templates.visible(to: account.number, departments: [e.department])) ?? []).map { t -> [String: Any] in
                ["id": t.id, "name": "\(t.template.name)（\(page.text("templateScope_" + t.template.scope.rawValue))）"]
            }
            let phrases = ((try? templates.phrases(of: account.number)) ?? []).enumerated().map { i, p -> [String: Any] in
                ["text": p.text, "n": i + 1, "key": i < 9 ? "Alt+\(i + 1)" : ""]
            }
            values["phrases"] = phrases
            values["hasPhrases"] = !phrases.isEmpty
            values["templateChoices"] = choices
            values["hasTemplates"] = !choices.isEmpty
            values["mayMakeTemplate"] = visit.current != nil
        }
        if let orders {
            values["mayOrder"] = true
            values["orderChoices"] = orders.catalogue.items.map { ["code": $0.code, "name": zh ? $0.zh : $0.en, "kind": zh ? $0.kind.zh : $0.kind.en] }
        }
        if let prescriptions {
            values["mayPrescribe"] = !visit.enteredInError
            let found = (try? prescriptions.prescriptions(encounter: e.id)) ?? []
            let dispensed = dispensedIDs(found)
            let written = found.map { summaryValues($0, page, dispensed: dispensed) }
            values["prescriptions"] = written
            values["hasPrescriptions"] = !written.isEmpty
        }
        let placed = visitOrderValues(e.id, page)
        values["orders"] = placed
        values["hasOrders"] = !placed.isEmpty
        if let allergens {
            values["allergenGroups"] = [("medication", "allergenDrugs"), ("food", "allergenFoods"), ("environment", "allergenEnvironment")].map { category, label -> [String: Any] in
                ["label": page.text(label), "entries": allergens.entries.filter { $0.category == category }.map { a -> [String: Any] in
                    ["code": a.code, "name": zh ? a.zh : a.en, "chosen": note.allergyCodes.contains(a.code)]
                }]
            }
        }
        values["noKnownAllergies"] = note.noKnownAllergies
        values["diagnosisCodes"] = note.diagnoses.map(\.code).joined(separator: ", ")
        values["diagnoses"] = note.diagnoses.map { ["code": $0.code, "name": $0.name] }
        values["base"] = visit.current?.key ?? ""
        values["hasNote"] = visit.current != nil
        values["locked"] = visit.locked
        values["void"] = visit.enteredInError
        values["editable"] = !visit.enteredInError
        if let c = visit.current {
            values["current"] = ["kind": zh ? c.kind.zh : c.kind.en, "author": c.authorName, "at": Self.shanghai(c.atMs), "count": visit.versions.count]
        }
        let leaves = visit.concurrentLeaves
        if !leaves.isEmpty {
            values["concurrent"] = ["versions": leaves.map { ["key": $0.key, "author": $0.authorName, "node": $0.node, "at": Self.shanghai($0.atMs)] },
                                    "settles": leaves.map(\.key).joined(separator: ","),
                                    "compare": "/staff/visits/\(e.id)/versions?a=\(Self.queryEscaped(leaves[0].key))&b=\(Self.queryEscaped(leaves[1].key))"]
        }
        return page.html(renderer.render("visit", values), status: status)
    }

    func versionsPage(_ page: PageAnswer, _ visit: VisitRecord, a: String?, b: String?) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("versionsTitle"))
        values["visit"] = ["id": visit.encounter.id, "date": visit.encounter.date]
        values["mayWrite"] = desk.rules.scope(of: "record.write", for: page.signedIn?.account.roles ?? []) != nil
        values["versions"] = visit.versions.enumerated().map { i, v -> [String: Any] in
            ["n": i + 1, "key": v.key, "kind": zh ? v.kind.zh : v.kind.en, "author": v.authorName, "staff": v.author, "node": v.node,
             "at": Self.shanghai(v.atMs), "hlc": "\(v.hlc >> 16).\(v.hlc & 0xFFFF)", "reason": v.reason,
             "isA": v.key == a, "isB": v.key == b]
        }
        if let current = visit.current {
            let note = current.note, vitals = note.vitals.values
            values["note"] = [
                "kind": zh ? current.kind.zh : current.kind.en, "author": current.authorName, "at": Self.shanghai(current.atMs),
                "sections": ClinicalNote.sections.filter { !note[keyPath: $0.path].isEmpty }.map { ["label": zh ? $0.zh : $0.en, "text": note[keyPath: $0.path]] },
                "diagnoses": note.diagnoses.map { ["code": $0.code, "name": $0.name] },
            ]
            if !note.vitals.isEmpty {
                values["vitals"] = VitalSigns.bounds.compactMap { b in vitals[b.field].map { "\(zh ? b.zh : b.en) \(Self.number($0)) \(b.unit)" } }.joined(separator: " · ")
            }
        }
        if let a, let b, let va = visit.versions.first(where: { $0.key == a }), let vb = visit.versions.first(where: { $0.key == b }) {
            values["diff"] = NoteDiff.sections(va.note, vb.note).map { s -> [String: Any] in
                ["label": zh ? s.zh : s.en, "lines": s.lines.map { ["text": $0.text, "kind": $0.kind.rawValue] }]
            }
            values["diffTitle"] = "\(visit.versions.firstIndex { $0.key == a }.map { $0 + 1 } ?? 0) → \(visit.versions.firstIndex { $0.key == b }.map { $0 + 1 } ?? 0)"
        }
        return page.html(renderer.render("versions", values))
    }

    static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%.1f", v) }
}
