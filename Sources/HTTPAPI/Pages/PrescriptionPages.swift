import Domain
import Foundation
import Hummingbird
import Services

// Prescriptions: the doctor's prescribing form of a visit (check, alerts, sign), one signed
// prescription as a sheet, and the pharmacy's live queue and review (审方).

extension StaffPages {
    static let prescriptionRoutes: [StaffRoute] = [
        StaffRoute(method: .get, path: "/staff/visits/{id}/prescribe", action: "rx.write"),
        StaffRoute(method: .post, path: "/staff/visits/{id}/prescribe", action: "rx.write"),
        StaffRoute(method: .get, path: "/staff/prescriptions/{id}", action: "rx.read"),
        StaffRoute(method: .get, path: "/staff/pharmacy", action: "pharmacy.review"),
        StaffRoute(method: .get, path: "/staff/pharmacy/events", action: "pharmacy.review"),
        StaffRoute(method: .post, path: "/staff/prescriptions/{id}/review", action: "pharmacy.review"),
        StaffRoute(method: .post, path: "/staff/prescriptions/{id}/dispense", action: "pharmacy.dispense"),
        StaffRoute(method: .post, path: "/staff/prescriptions/{id}/return", action: "pharmacy.dispense"),
        StaffRoute(method: .get, path: "/staff/pharmacy/stock", action: "pharmacy.stock"),
        StaffRoute(method: .post, path: "/staff/pharmacy/stock", action: "pharmacy.stock"),
        StaffRoute(method: .get, path: "/staff/static/pharmacy.js", action: "public"),
    ]

    /// Form rows on the prescribing page: the most a sheet may hold.
    static let prescriptionRows = 5

    func prescriptionDesk() throws(StaffError) -> PrescriptionDesk {
        guard let prescriptions else { throw StaffError(503, "rx.unavailable", zh: "本节点未提供处方功能。", en: "this node does not offer prescribing.") }
        return prescriptions
    }

    func pharmacyDesk() throws(StaffError) -> PharmacyDesk {
        guard let pharmacy else { throw StaffError(503, "stock.unavailable", zh: "本节点未提供药房库存功能。", en: "this node does not offer the pharmacy's stock.") }
        return pharmacy
    }

    func prescriptionRoute(_ route: StaffRoute, _ request: Request, _ context: PatientRequestContext, form: [String: [String]], page: PageAnswer,
                           _ account: StaffAccount) async throws(StaffError) -> Response {
        let rx = try prescriptionDesk()
        let id = context.parameters.get("id") ?? ""
        switch (route.method, route.path) {
        case (.get, "/staff/visits/{id}/prescribe"):
            let visit = try rx.records.visit(id)
            try mayPrescribe(visit.encounter, account)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.read", patient: visit.encounter.patient,
                                       resource: "encounter/\(id)", outcome: "ok"))
            return try prescribePage(page, rx, visit, input: nil, draft: nil, message: nil, status: 200, account)
        case (.post, "/staff/visits/{id}/prescribe"):
            let visit = try rx.records.visit(id)
            try mayPrescribe(visit.encounter, account)
            let input = Self.prescriptionInput(form)
            let prescriber = prescriber(account)
            do throws(StaffError) {
                if form["action"]?.first == "save_set" {
                    let saved = try rx.saveSet(owner: account.number, name: form["set_name"]?.first ?? "", lines: input.lines)
                    return try prescribePage(page, rx, visit, input: input, draft: nil,
                                             message: StaffError(200, "rx.set_saved", zh: "已存为协定处方“\(saved.name)”。", en: "saved as the combination “\(saved.name)”."),
                                             status: 200, account)
                }
                if form["action"]?.first == "apply_set" {
                    guard let chosen = try rx.sets(of: account.number).first(where: { $0.id == form["set"]?.first }) else {
                        throw StaffError(404, "rx.set_not_found", zh: "没有这个协定处方。", en: "no such saved combination.")
                    }
                    var applied = input
                    applied.lines = chosen.lines + Array(repeating: RxLineInput(drug: "", dose: "", frequency: "", days: ""), count: max(0, Self.prescriptionRows - chosen.lines.count))
                    return try prescribePage(page, rx, visit, input: applied, draft: nil,
                                             message: StaffError(200, "rx.set_applied", zh: "已套用协定处方“\(chosen.name)”，请检查后签名。", en: "applied “\(chosen.name)”; check, then sign."),
                                             status: 200, account)
                }
                if form["action"]?.first == "sign" {
                    let signed = try rx.sign(visit, input, by: prescriber)
                    let overrides = signed.body.alerts.filter { !$0.override.isEmpty }
                    try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.sign", patient: visit.encounter.patient,
                                               resource: "prescription/\(signed.id)", outcome: signed.kind.rawValue,
                                               detail: overrides.map { "\($0.code): \($0.override)" }.joined(separator: "; ")))
                    return page.redirect("/staff/prescriptions/\(signed.id)?signed=1")
                }
                let draft = try rx.check(visit, input, by: prescriber)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.check", patient: visit.encounter.patient,
                                           resource: "encounter/\(id)", outcome: draft.blocked ? "blocked" : "ok", detail: draft.alerts.map(\.code).joined(separator: ",")))
                return try prescribePage(page, rx, visit, input: input, draft: draft, message: nil, status: 200, account)
            } catch {
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: form["action"]?.first == "sign" ? "rx.sign" : "rx.check",
                                           patient: visit.encounter.patient, resource: "encounter/\(id)", outcome: error.code))
                let draft = try? rx.check(visit, input, by: prescriber)
                return try prescribePage(page, rx, visit, input: input, draft: draft, message: error, status: error.status, account)
            }
        case (.get, "/staff/prescriptions/{id}"):
            guard let found = try rx.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
            try mayRead(found, account)
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.read", patient: found.patient,
                                       resource: "prescription/\(id)", outcome: "ok"))
            let q = request.uri.queryParameters
            let note: StaffError? = q["signed"] == "1" ? StaffError(200, "rx.signed", zh: "处方已签名，已发送至\(found.pharmacy.zh)。", en: "signed and sent to the \(found.pharmacy.en).")
                : q["dispensed"] == "1" ? StaffError(200, "rx.dispensed", zh: "已发药，已短信通知患者取药。", en: "dispensed; the patient is told by SMS.")
                : q["returned"] == "1" ? StaffError(200, "rx.returned", zh: "已退药入库。", en: "returned to stock.") : nil
            return sheetPage(page, rx, found, message: note, status: 200, account)
        case (.post, "/staff/prescriptions/{id}/review"):
            guard let found = try rx.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
            let verdict: RxReview.Verdict = form["verdict"]?.first == "approved" ? .approved : .refused
            do throws(StaffError) {
                if pharmacy?.ledger(found.pharmacy)?.dispensed[id] != nil {
                    throw StaffError(409, "rx.already_dispensed", zh: "这张处方已发药，不能再审方。", en: "this prescription was dispensed; it is not reviewed again.")
                }
                let reviewed = try rx.review(id, verdict: verdict, reason: form["reason"]?.first ?? "", pharmacist: account.number, name: account.name)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.review", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: verdict.rawValue, detail: reviewed.reviews.last?.reason ?? ""))
                return page.redirect("/staff/pharmacy?pharmacy=\(found.pharmacy.rawValue)")
            } catch {
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.review", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: error.code))
                return sheetPage(page, rx, found, message: error, status: error.status, account)
            }
        case (.get, "/staff/pharmacy"):
            let query = request.uri.queryParameters
            let pharmacy = Pharmacy(rawValue: query["pharmacy"].map(String.init) ?? "") ?? .western
            let today = (try? ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(rx.clock.wallMillis()) / 1000)).date.description) ?? ""
            let date = query["date"].map(String.init).flatMap { try? CivilDate(parsing: $0) }?.description ?? today
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "pharmacy.queue", resource: "pharmacy/\(pharmacy.rawValue)",
                                       outcome: "ok", detail: date))
            return try pharmacyPage(page, rx, pharmacy, date: date)
        case (.get, "/staff/pharmacy/events"):
            return pharmacyStream(rx, page: page)
        case (.post, "/staff/prescriptions/{id}/dispense"):
            guard let found = try rx.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
            let stock = try pharmacyDesk()
            do throws(StaffError) {
                let picks = try found.body.lines.enumerated().map { i, line throws(StaffError) -> PharmacyDesk.Pick in
                    let batch = InputText.trimmed(form["batch_\(i)"]?.first ?? "")
                    let typed = InputText.trimmed(form["quantity_\(i)"]?.first ?? "")
                    guard let n = typed.isEmpty ? line.packages : Int(typed), (0...999).contains(n) else {
                        throw StaffError(400, "stock.quantity", zh: "发药数量须为 0 到 999 的整数。", en: "the quantity dispensed is a whole number, 0 to 999.")
                    }
                    return PharmacyDesk.Pick(drug: line.drug, batch: batch.isEmpty ? nil : batch, quantity: n)
                }
                let (_, record) = try await stock.dispense(id, picks: picks)
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.dispense", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: "ok", detail: "stock#\(record.seq)"))
                return page.redirect("/staff/prescriptions/\(id)?dispensed=1")
            } catch {
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.dispense", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: error.code))
                return sheetPage(page, rx, found, message: error, status: error.status, account)
            }
        case (.post, "/staff/prescriptions/{id}/return"):
            guard let found = try rx.prescription(id) else { throw StaffError(404, "rx.not_found", zh: "没有这张处方。", en: "no such prescription.") }
            let stock = try pharmacyDesk()
            do throws(StaffError) {
                let record = try await stock.takeBack(id, drug: form["drug"]?.first ?? "", batch: form["batch"]?.first ?? "", quantity: form["quantity"]?.first ?? "",
                                                      requestID: form["request_id"]?.first ?? "")
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.return", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: "ok", detail: "stock#\(record.seq)"))
                return page.redirect("/staff/prescriptions/\(id)?returned=1")
            } catch {
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "rx.return", patient: found.patient,
                                           resource: "prescription/\(id)", outcome: error.code))
                return sheetPage(page, rx, found, message: error, status: error.status, account)
            }
        case (.get, "/staff/pharmacy/stock"):
            let pharmacy = Pharmacy(rawValue: request.uri.queryParameters["pharmacy"].map(String.init) ?? "") ?? .western
            return try stockPage(page, rx, pharmacy, message: nil, status: 200)
        case (.post, "/staff/pharmacy/stock"):
            let pharmacy = Pharmacy(rawValue: form["pharmacy"]?.first ?? "") ?? .western
            let stock = try pharmacyDesk()
            do throws(StaffError) {
                let record = try await stock.receive(pharmacy, drug: form["drug"]?.first ?? "", batch: form["batch"]?.first ?? "",
                                                     expiry: form["expiry"]?.first ?? "", quantity: form["quantity"]?.first ?? "",
                                                     requestID: form["request_id"]?.first ?? "")
                try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "stock.receive", resource: "pharmacy/\(pharmacy.rawValue)",
                                           outcome: "ok", detail: "stock#\(record.seq)"))
                let batch = InputText.trimmed(form["batch"]?.first ?? ""), quantity = InputText.trimmed(form["quantity"]?.first ?? "")
                return try stockPage(page, rx, pharmacy, message: StaffError(200, "stock.received", zh: "已入库：批号 \(batch)，\(quantity) 个包装（第 \(record.seq) 笔库存变动）。",
                                                                              en: "received: batch \(batch), \(quantity) packages (stock movement no. \(record.seq))."), status: 200)
            } catch {
                return try stockPage(page, rx, pharmacy, message: error, status: error.status)
            }
        default:
            throw StaffError(404, "route.unknown", zh: "没有这个页面。", en: "there is no such page.")
        }
    }

    /// Prescribing is writing the visit's record: the same reach as `record.write`.
    func mayPrescribe(_ e: Encounter, _ account: StaffAccount) throws(StaffError) {
        guard reaches("rx.write", department: e.department, practitioner: e.practitioner, account) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: "encounter/\(e.id)",
                                       outcome: "denied", detail: "rx.write"))
            throw StaffError(403, "record.not_yours", zh: "这不是您接诊的患者，不能为其开处方。", en: "this is not your patient's visit; you cannot prescribe for it.")
        }
    }

    func mayRead(_ rx: Prescription, _ account: StaffAccount) throws(StaffError) {
        guard reaches("rx.read", department: rx.department, practitioner: rx.practitioner, account) else {
            try desk.record(AuditEvent(staff: account.number, role: desk.roleText(account), action: "access.denied", resource: "prescription/\(rx.id)",
                                       outcome: "denied", detail: "rx.read"))
            throw StaffError(403, "rx.not_yours", zh: "这张处方不属于您的科室。", en: "this prescription is not of your department.")
        }
    }

    func prescriber(_ account: StaffAccount) -> Prescriber {
        let title = ((try? desk.store.liveRow("practitioner", key: account.practitioner)) ?? nil)?["title"]?.textValue.flatMap(PractitionerTitle.init(rawValue:))
        return Prescriber(staff: account.number, name: account.name, title: account.practitioner.isEmpty ? nil : title, rights: account.rights)
    }

    static func prescriptionInput(_ form: [String: [String]]) -> RxInput {
        func field(_ name: String) -> String { form[name]?.first ?? "" }
        let lines = (0..<prescriptionRows).map { i in
            RxLineInput(drug: field("drug_\(i)"), dose: field("dose_\(i)"), frequency: field("freq_\(i)"), days: field("days_\(i)"),
                        packages: field("packages_\(i)"), note: field("note_\(i)"))
        }
        var overrides: [String: String] = [:]
        for (key, values) in form where key.hasPrefix("ov:") { overrides[String(key.dropFirst(3))] = values.first ?? "" }
        return RxInput(lines: lines, weight: field("weight"), pregnancy: field("pregnancy"), emergency: field("emergency") == "1", overrides: overrides)
    }

    // MARK: The prescribing form

    func prescribePage(_ page: PageAnswer, _ rx: PrescriptionDesk, _ visit: VisitRecord, input: RxInput?, draft: RxDraft?, message: StaffError?,
                       status: Int, _ account: StaffAccount) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("rxTitle"), message: message)
        let e = visit.encounter
        let facts = draft?.patient ?? (try? rx.patientFacts(visit, input ?? RxInput(lines: [])))
        let patient = ((try? desk.store.liveRow("patient", key: e.patient)) ?? nil) ?? [:]
        values["visit"] = ["id": e.id, "date": e.date]
        var header: [String: Any] = ["name": patient["name"]?.textValue ?? "", "sex": page.text(patient["sex"]?.textValue ?? ""),
                                     "age": facts?.age.map { zh ? "\($0) 岁" : "\($0) y" } ?? ""]
        let allergens = try? AllergenCatalogue.shipped.get()
        let coded = (facts?.allergyCodes ?? []).map { code in allergens?.entry(code).map { zh ? $0.zh : $0.en } ?? code }
        header["allergies"] = ([coded.joined(separator: "、"), facts?.allergyText ?? ""].filter { !$0.isEmpty }).joined(separator: "；")
        header["hasAllergies"] = !coded.isEmpty || !(facts?.allergyText ?? "").isEmpty
        if let gfr = facts?.eGFR { header["eGFR"] = String(Int(gfr.rounded())) }
        values["patient"] = header
        values["female"] = facts?.female ?? false
        values["weight"] = input.map { $0.weight } ?? facts?.weightKg.map(Self.number) ?? ""
        values["pregnant"] = input?.pregnancy == "pregnant"
        values["lactating"] = input?.pregnancy == "lactating"
        values["emergency"] = input?.emergency ?? false
        let typed = input?.lines ?? []
        values["rows"] = (0..<Self.prescriptionRows).map { i -> [String: Any] in
            let line = i < typed.count ? typed[i] : RxLineInput(drug: "", dose: "", frequency: "", days: "")
            let drug = rx.catalogue.drug(line.drug)
            let chosen = (try? DoseFrequency(parsing: line.frequency)) ?? drug?.usualFrequency
            return ["i": i, "drug": line.drug, "dose": line.dose, "days": line.days, "packages": line.packages, "note": line.note,
                    "unit": drug?.doseUnit ?? "", "name": drug?.label ?? "",
                    "frequencies": DoseFrequency.allCases.map { f -> [String: Any] in ["code": f.rawValue, "name": zh ? f.zh : f.en, "chosen": f == chosen] }]
        }
        let common = (try? rx.commonDrugs(of: account.number)) ?? []
        let commonCodes = Set(common.map(\.code))
        values["drugOptions"] = (common + rx.catalogue.drugs.filter { !commonCodes.contains($0.code) }).map { drugOption($0, page) }
        values["commonDrugs"] = common.map { ["code": $0.code, "name": $0.genericZh + " " + $0.form] }
        values["hasCommon"] = !common.isEmpty
        let sets = (try? rx.sets(of: account.number)) ?? []
        values["sets"] = sets.map { ["id": $0.id, "name": $0.name] }
        values["hasSets"] = !sets.isEmpty
        if let draft {
            let hints = pharmacy.flatMap { $0.ledger(draft.pharmacy) == nil ? nil : $0.hints(draft.pharmacy) }
            values["checked"] = [
                "kind": zh ? draft.kind.zh : draft.kind.en, "colour": draft.kind.colour, "pharmacy": zh ? draft.pharmacy.zh : draft.pharmacy.en,
                "total": Self.yuan(draft.totalFen), "ruleVersion": draft.ruleVersion,
                "lines": zip(draft.lines, draft.drugs).map { line, drug -> [String: Any] in
                    var v = lineValues(line, drug, page)
                    v["stock"] = stockText(hints?[drug.code], unit: drug.packageUnit, known: hints != nil, page)
                    v["short"] = (hints?[drug.code]?.available ?? Int.max) < line.packages
                    return v
                },
            ]
            values["alerts"] = draft.alerts.map { alertValues($0, page) }
            values["hasAlerts"] = !draft.alerts.isEmpty
            values["blocked"] = draft.blocked
        }
        values["rules"] = ["version": rx.rules.version, "interactions": rx.rules.interactions.count, "doses": rx.rules.doseLimitCount,
                           "cautions": rx.rules.cautions.count]
        let written = (try? rx.prescriptions(encounter: e.id)) ?? []
        let dispensed = dispensedIDs(written)
        values["visitPrescriptions"] = written.map { summaryValues($0, page, dispensed: dispensed) }
        return page.html(renderer.render("prescribe", values), status: status)
    }

    func drugOption(_ d: Drug, _ page: PageAnswer) -> [String: Any] {
        var flags: [String] = []
        if d.tier != .none { flags.append(page.lang == .zh ? d.tier.zh : d.tier.en) }
        if d.controlled != .none { flags.append(page.lang == .zh ? d.controlled.zh : d.controlled.en) }
        flags.append((page.lang == .zh ? "医保" : "insurance ") + d.insurance.rawValue)
        return ["code": d.code, "label": "\(d.label) \(d.pinyin) · \(flags.joined(separator: " · "))"]
    }

    func lineValues(_ line: RxLine, _ drug: Drug?, _ page: PageAnswer) -> [String: Any] {
        let zh = page.lang == .zh
        var v: [String: Any] = ["drug": line.drug, "label": line.label, "dose": "\(Self.number(line.dose))\(line.doseUnit)",
                                "frequency": "\(line.frequency.rawValue)（\(zh ? line.frequency.zh : line.frequency.en)）", "days": line.days,
                                "quantity": "\(line.packages)\(line.packageUnit)", "price": Self.yuan(line.priceFen), "total": Self.yuan(line.totalFen)]
        if !line.note.isEmpty { v["note"] = line.note }
        if let drug {
            v["insurance"] = drug.insurance.rawValue
            if drug.tier != .none { v["tier"] = zh ? drug.tier.zh : drug.tier.en }
            if drug.controlled != .none { v["controlled"] = zh ? drug.controlled.zh : drug.controlled.en }
        }
        return v
    }

    /// 库存 12 盒（截至 12-08 09:30）, or why it is not known.
    func stockText(_ hint: StockHint?, unit: String, known: Bool, _ page: PageAnswer) -> String {
        let zh = page.lang == .zh
        guard known else { return zh ? "库存未知（药房库存暂不可见）" : "stock unknown (the pharmacy's stock cannot be seen)" }
        let n = hint?.available ?? 0
        let asOf = (hint?.asOfMs ?? 0) > 0 ? Self.shanghai(hint!.asOfMs) : ""
        let base = zh ? "库存 \(n)\(unit)" : "stock \(n) \(unit)"
        return asOf.isEmpty ? base : base + (zh ? "（截至 \(asOf)）" : " (as of \(asOf))")
    }

    func alertValues(_ a: RxAlert, _ page: PageAnswer) -> [String: Any] {
        var v: [String: Any] = ["code": a.code, "kind": a.kind, "level": a.level.rawValue, "text": page.lang == .zh ? a.zh : a.en, "source": a.source,
                                "warning": a.level == .warning, "override": a.override]
        v["hasOverride"] = !a.override.isEmpty
        return v
    }

    /// Which of `prescriptions` are dispensed, as this node's ledgers say (each pharmacy's derived once).
    func dispensedIDs(_ prescriptions: [Prescription]) -> Set<String> {
        guard let pharmacy else { return [] }
        return Set(prescriptions.map(\.pharmacy)).reduce(into: Set<String>()) { out, p in out.formUnion(pharmacy.ledger(p)?.dispensed.keys ?? [:].keys) }
    }

    func summaryValues(_ p: Prescription, _ page: PageAnswer, dispensed: Set<String>) -> [String: Any] {
        let zh = page.lang == .zh
        let given = dispensed.contains(p.id)
        return ["id": p.id, "kind": zh ? p.kind.zh : p.kind.en, "status": given ? page.text("rxDispensed") : zh ? p.status.zh : p.status.en,
                "statusCode": given ? "dispensed" : p.status.rawValue,
                "at": Self.shanghai(p.atMs), "by": p.authorName, "total": Self.yuan(p.totalFen),
                "drugs": p.body.lines.map { $0.label }.joined(separator: "；"), "refused": p.status == .refused,
                "refusal": p.reviews.last.map { "\($0.pharmacistName)：\($0.reason)" } ?? ""]
    }

    // MARK: A signed prescription

    func sheetPage(_ page: PageAnswer, _ rx: PrescriptionDesk, _ p: Prescription, message: StaffError?, status: Int, _ account: StaffAccount) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("rxSheetTitle"), message: message)
        let patient = ((try? desk.store.liveRow("patient", key: p.patient)) ?? nil) ?? [:]
        let department = ((try? desk.store.liveRow("department", key: p.department)) ?? nil)?["name"]?.textValue ?? p.department
        values["rx"] = [
            "id": p.id, "kind": zh ? p.kind.zh : p.kind.en, "colour": p.kind.colour, "status": zh ? p.status.zh : p.status.en, "statusCode": p.status.rawValue,
            "pharmacy": zh ? p.pharmacy.zh : p.pharmacy.en, "date": p.date, "at": Self.shanghai(p.atMs), "by": p.authorName, "department": department,
            "encounter": p.encounter, "total": Self.yuan(p.totalFen), "ruleVersion": p.ruleVersion,
            "patient": patient["name"]?.textValue ?? "", "sex": page.text(patient["sex"]?.textValue ?? ""),
            "age": CivilDate.age(birthDate: patient["birth_date"]?.textValue, on: p.date).map { zh ? "\($0) 岁" : "\($0) y" } ?? "",
            "diagnoses": p.body.diagnoses.map { "\($0.name)（\($0.code)）" }.joined(separator: "、"),
            "lines": p.body.lines.map { lineValues($0, rx.catalogue.drug($0.drug), page) },
            "alerts": p.body.alerts.map { alertValues($0, page) }, "hasAlerts": !p.body.alerts.isEmpty,
            "reviews": p.reviews.map { r -> [String: Any] in
                var v: [String: Any] = ["verdict": zh ? r.verdict.zh : r.verdict.en, "code": r.verdict.rawValue, "by": r.pharmacistName, "at": Self.shanghai(r.atMs)]
                if !r.reason.isEmpty { v["reason"] = r.reason }
                return v
            },
        ]
        if let kg = p.body.weightKg, var sheet = values["rx"] as? [String: Any] {
            sheet["weight"] = "\(Self.number(kg)) kg"
            values["rx"] = sheet
        }
        values["mayReview"] = p.status == .awaitingReview && desk.rules.scope(of: "pharmacy.review", for: account.roles) != nil
        if let stock = pharmacy, let ledger = stock.ledger(p.pharmacy) {
            let mayDispense = desk.rules.scope(of: "pharmacy.dispense", for: account.roles) != nil
            if let given = ledger.dispensed[p.id] {
                values["dispensed"] = ["at": Self.shanghai(ledger.lastAtMs), "items": given.map { i -> [String: Any] in
                    let back = ledger.returned[p.id]?["\(i.drug)/\(i.batch)"] ?? 0
                    return ["drug": i.drug, "name": rx.catalogue.drug(i.drug)?.label ?? i.drug, "batch": i.batch, "quantity": i.quantity, "returned": back,
                            "mayReturn": mayDispense && back < i.quantity, "requestID": UUID().uuidString.lowercased()]
                }]
            } else if p.status == .approved, mayDispense, p.date < Self.today(rx.clock) {
                values["expired"] = true
            } else if p.status == .approved, mayDispense {
                values["hasDispense"] = true
                values["dispenseLines"] = p.body.lines.enumerated().map { i, line -> [String: Any] in
                    let batches = stock.usableBatches(line.drug, in: ledger)
                    return ["i": i, "label": line.label, "packages": line.packages, "unit": line.packageUnit,
                            "available": batches.reduce(0) { $0 + $1.quantity },
                            "batches": batches.map { b -> [String: Any] in ["batch": b.batch, "expiry": Self.day(b.expiryDay), "quantity": b.quantity] }]
                }
            }
        }
        values["mayWriteAgain"] = p.status == .refused && reaches("rx.write", department: p.department, practitioner: p.practitioner, account)
        return page.html(renderer.render("prescription", values), status: status)
    }

    // MARK: The pharmacy

    func pharmacyPage(_ page: PageAnswer, _ rx: PrescriptionDesk, _ pharmacyCode: Pharmacy, date: String) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        var values = page.values(title: page.text("pharmacyTitle"))
        let queue = try rx.queue(pharmacyCode, date: date)
        let names = ((try? desk.store.liveRows("patient", keys: Set(queue.map(\.patient)))) ?? [:])
        let departments = ((try? desk.store.liveRows("department", keys: Set(queue.map(\.department)))) ?? [:])
        let dispensed = Set(pharmacy?.ledger(pharmacyCode)?.dispensed.keys ?? [:].keys)
        func row(_ p: Prescription) -> [String: Any] {
            var v = summaryValues(p, page, dispensed: dispensed)
            v["patient"] = names[p.patient]?["name"]?.textValue ?? ""
            v["department"] = departments[p.department]?["name"]?.textValue ?? p.department
            v["alerts"] = p.body.alerts.count
            return v
        }
        values["waiting"] = queue.filter { $0.status == .awaitingReview }.reversed().map(row)
        values["done"] = queue.filter { $0.status != .awaitingReview }.map(row)
        values["pharmacies"] = Pharmacy.allCases.map { ["code": $0.rawValue, "name": zh ? $0.zh : $0.en, "chosen": $0 == pharmacyCode] }
        values["pharmacy"] = ["code": pharmacyCode.rawValue, "name": zh ? pharmacyCode.zh : pharmacyCode.en]
        values["date"] = date
        values["paymentUnknown"] = true
        return page.html(renderer.render("pharmacy", values))
    }

    /// Server-sent events: a counter that moves whenever a prescription or a review arrives on
    /// this node (written here or merged from a peer); the page then fetches its queue again.
    func pharmacyStream(_ rx: PrescriptionDesk, page: PageAnswer) -> Response {
        let store = rx.store
        return eventStream(page, initial: UInt64.max) { last in
            let stamp = store.changeStamp(table: "prescription") &+ store.changeStamp(table: "prescription_review")
            guard stamp != last else { return nil }
            last = stamp
            return String(stamp)
        }
    }

    // MARK: Stock

    func stockPage(_ page: PageAnswer, _ rx: PrescriptionDesk, _ pharmacy: Pharmacy, message: StaffError?, status: Int) throws(StaffError) -> Response {
        let zh = page.lang == .zh
        let stock = try pharmacyDesk()
        var values = page.values(title: page.text("stockTitle"), message: message)
        let ledger = stock.ledger(pharmacy)
        let today = ShanghaiTime.unixDay(wallMs: rx.clock.wallMillis())
        let drugs = rx.catalogue.drugs.filter { $0.pharmacy == pharmacy }
        values["rows"] = drugs.map { d -> [String: Any] in
            let batches = (ledger?.batches.values.filter { $0.drug == d.code && $0.quantity > 0 } ?? []).sorted { ($0.expiryDay, $0.batch) < ($1.expiryDay, $1.batch) }
            let available = ledger?.available(d.code, today: today) ?? 0
            return ["code": d.code, "name": d.label, "available": available, "low": available < PharmacyDesk.lowStockPackages,
                    "batches": batches.map { b -> [String: Any] in
                        ["batch": b.batch, "expiry": Self.day(b.expiryDay), "quantity": b.quantity, "expired": b.expiryDay < today]
                    }]
        }
        values["drugOptions"] = drugs.map { ["code": $0.code, "label": $0.label] }
        values["pharmacy"] = ["code": pharmacy.rawValue, "name": zh ? pharmacy.zh : pharmacy.en]
        values["pharmacies"] = Pharmacy.allCases.map { ["code": $0.rawValue, "name": zh ? $0.zh : $0.en, "chosen": $0 == pharmacy] }
        values["known"] = ledger != nil
        if let ledger, ledger.lastAtMs > 0 { values["asOf"] = Self.shanghai(ledger.lastAtMs) }
        values["lowLimit"] = PharmacyDesk.lowStockPackages
        values["requestID"] = UUID().uuidString.lowercased()
        return page.html(renderer.render("stock", values), status: status)
    }

    /// Today in Shanghai, `YYYY-MM-DD`.
    static func today(_ clock: NodeClock) -> String {
        (try? ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(clock.wallMillis()) / 1000)).date.description) ?? ""
    }

    /// A Unix day as `YYYY-MM-DD`.
    static func day(_ unixDay: Int) -> String {
        (try? ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(unixDay) * 86_400)).date.description) ?? ""
    }

    static func yuan(_ fen: Int) -> String { String(format: "%d.%02d", fen / 100, fen % 100) }
}
