import Crypto
import Domain
import Foundation
import AdminAPI
import ClinicNode
import Services
import ReplicatedCore
import ReplicatedStore

/// Demo data for the three example departments (内科, 外科, 儿科): doctors of every title, a week
/// of sessions with their slots, and (on 内科) patients. Each node seeds its own department, so
/// every row is written where it belongs and reaches the others by replication; every session
/// becomes a lease block held by its department's node.
public enum DemoData {
    struct Doctor { let slug: String; let name: String; let title: PractitionerTitle }
    struct DepartmentSpec { let nameZh: String; let nameEn: String; let doctors: [Doctor] }

    static let departments: [String: DepartmentSpec] = [
        "neike": DepartmentSpec(nameZh: "内科", nameEn: "Internal Medicine", doctors: [
            Doctor(slug: "neike-wang-jianguo", name: "王建国", title: .chiefPhysician),
            Doctor(slug: "neike-li-shufen", name: "李淑芬", title: .associateChiefPhysician),
            Doctor(slug: "neike-zhang-wei", name: "张伟", title: .attendingPhysician),
            Doctor(slug: "neike-liu-yang", name: "刘洋", title: .residentPhysician),
        ]),
        "waike": DepartmentSpec(nameZh: "外科", nameEn: "Surgery", doctors: [
            Doctor(slug: "waike-chen-zhiqiang", name: "陈志强", title: .chiefPhysician),
            Doctor(slug: "waike-zhao-min", name: "赵敏", title: .associateChiefPhysician),
            Doctor(slug: "waike-sun-lei", name: "孙磊", title: .attendingPhysician),
            Doctor(slug: "waike-zhou-jing", name: "周静", title: .residentPhysician),
        ]),
        "erke": DepartmentSpec(nameZh: "儿科", nameEn: "Pediatrics", doctors: [
            Doctor(slug: "erke-wu-xiulan", name: "吴秀兰", title: .chiefPhysician),
            Doctor(slug: "erke-zheng-hong", name: "郑红", title: .associateChiefPhysician),
            Doctor(slug: "erke-ma-li", name: "马丽", title: .attendingPhysician),
            Doctor(slug: "erke-huang-tao", name: "黄涛", title: .residentPhysician),
        ]),
    ]

    static let patientNames = ["赵一鸣", "钱晓红", "孙志远", "李梦瑶", "周国庆", "吴佳怡", "郑海涛", "王雪梅", "冯子轩", "陈思琪",
                               "褚明辉", "卫晓燕", "蒋文博", "沈丽娟", "韩宇航", "杨静怡", "朱建华", "秦雨桐", "尤振华", "许若曦"]

    public struct Summary: Codable, Sendable, Hashable {
        public var department: String
        /// Demo staff accounts made (`DemoStaff`).
        public var staff = 0
        /// Past visits with signed notes, and note templates (`DemoRecords`).
        public var visits = 0
        public var templates = 0
        /// Opening stock receipts and past prescriptions (`DemoPharmacy`).
        public var stock = 0
        public var prescriptions = 0
        public var practitioners: Int
        public var schedules: Int
        public var slots: Int
        public var patients: Int
        public var blocks: [BlockDefinition]
    }

    /// Sessions per doctor: chief physicians every weekday morning, others mornings and
    /// afternoons on alternate days; weekends only the resident physician (outpatient never stops).
    static func sessions(_ doctor: Doctor, index: Int, date: CivilDate) -> [HalfDay] {
        let weekend = date.weekday == .saturday || date.weekday == .sunday
        switch doctor.title {
        case .chiefPhysician: return weekend ? [] : [.morning]
        case .residentPhysician: return [.morning, .afternoon]
        default: return weekend ? [] : ((date.unixDay + index) % 2 == 0 ? [.morning, .afternoon] : [.afternoon])
        }
    }

    /// Slots are released at 15:00 Asia/Shanghai seven days before the visit.
    public static func releaseTime(of visit: CivilDate) throws -> Int64 {
        let day = try visit.adding(days: -7)
        let instant = ShanghaiTime.instant(date: day, time: try LocalTime(hour: 15, minute: 0))
        return Int64((instant.timeIntervalSince1970 * 1000).rounded())
    }

    /// Writes the department's demo rows into `node`'s replica and returns its sessions as blocks.
    /// `department`: whose doctors (neike, waike or erke; default the node's own id); `capacity`:
    /// slots per session instead of the usual 12 (chief physicians) and 24 (the others).
    /// `rota`: the sessions come from weekly templates (`templates`) published as the rota from
    /// `start` for at least three weeks, today's included, instead of the fixed pattern.
    public static func seed(node: MeshNode, start: CivilDate, days: Int, dataKey: SymmetricKey, department: String? = nil,
                            capacity: Int? = nil, rota: Bool = false) throws -> Summary {
        let slug = department ?? node.config.nodeID
        guard let spec = departments[slug] else {
            throw NodeError(.admin, zh: "演示数据只有科室 neike、waike、erke（请求的是 \(slug)）。",
                            en: "demo data exists only for the departments neike, waike and erke (asked for \(slug)).")
        }
        let departmentID = try DepartmentID(slug)
        var summary = Summary(department: slug, practitioners: 0, schedules: 0, slots: 0, patients: 0, blocks: [])
        try node.write { w in
            if try node.replica.liveRow("department", key: departmentID.rawValue) == nil {
                try w.insert("department", key: departmentID.rawValue, values: ["name": .text(spec.nameZh), "code": .text(spec.nameEn)])
            }
            for (index, doctor) in spec.doctors.enumerated() {
                let practitioner = try Practitioner(id: PractitionerID(doctor.slug), name: doctor.name, title: doctor.title, departmentID: departmentID)
                if try node.replica.liveRow("practitioner", key: practitioner.id.rawValue) == nil {
                    try w.insert("practitioner", key: practitioner.id.rawValue, values: [
                        "name": .text(practitioner.name), "department": .text(departmentID.rawValue), "title": .text(doctor.title.rawValue)])
                    summary.practitioners += 1
                }
                for day in 0..<(rota ? 0 : days) {
                    let date = try start.adding(days: day)
                    for half in sessions(doctor, index: index, date: date) {
                        let capacity = capacity ?? (doctor.title == .chiefPhysician ? 12 : 24)
                        let schedule = try Schedule(practitioner: practitioner, date: date, halfDay: half, capacity: capacity)
                        let key = schedule.key.rawValue
                        summary.blocks.append(BlockDefinition(block: key, home: node.config.nodeID, slots: capacity,
                                                              opensAtMs: try releaseTime(of: date)))
                        guard try node.replica.liveRow("schedule", key: key) == nil else { continue }
                        try w.insert("schedule", key: key, values: [
                            "practitioner": .text(practitioner.id.rawValue), "department": .text(departmentID.rawValue),
                            "date": .text(date.description), "half_day": .text(half.rawValue), "capacity": .integer(Int64(capacity)),
                            "status": .text("active")])
                        summary.schedules += 1
                        for slot in schedule.slots() {
                            try w.insert("slot", key: try SlotKey(scheduleKey: schedule.key, sequence: slot.sequence).rawValue, values: [
                                "schedule": .text(key), "sequence": .integer(Int64(slot.sequence)), "status": .text(slot.status.rawValue)])
                            summary.slots += 1
                        }
                    }
                }
            }
            // Patients live on 内科's node in the demo; any node could have registered them.
            guard slug == "neike" else { return }
            let secret = PatientDesk.patientKeySecret(dataKey: dataKey)
            for (i, name) in patientNames.enumerated() {
                let birth = try CivilDate(year: 1950 + (i * 3) % 60, month: 1 + i % 12, day: 1 + (i * 7) % 28)
                let id = try ResidentID.make(regionCode: "130102", birthDate: birth, sequence: 100 + i)
                let mobile = try MobileNumber("1390311\(String(format: "%04d", 1000 + i))")
                let patient = try Patient(name: name, sex: id.sex, birthDate: birth, residentID: id, mobile: mobile)
                let key = try PatientKey(residentID: id, clusterSecret: secret).hex
                guard try node.replica.liveRow("patient", key: key) == nil else { continue }
                try w.insert("patient", key: key, values: [
                    "name": .text(patient.name), "resident_id": .text(id.value), "mobile": .text(mobile.digits),
                    "sex": .text(patient.sex.rawValue), "birth_date": .text(birth.description)])
                summary.patients += 1
            }
        }
        if rota {
            let desk = node.rota
            for (index, doctor) in spec.doctors.enumerated() {
                for line in try templates(doctor, room: "\(spec.nameZh)\(index + 1)诊室") { try desk.saveTemplate(line, department: slug) }
            }
            let weeks = max(3, (days + 6) / 7)
            summary.schedules = try desk.publish(department: slug, from: start, weeks: weeks, includingBegun: true).sessions.count
        }
        return summary
    }

    /// A demo doctor's weekly clinic template: chief physicians every weekday morning; the
    /// resident every day, mornings, afternoons and evenings (so some session is always on);
    /// the others Monday, Wednesday and Friday all day and Tuesday and Thursday afternoons. Each
    /// session keeps a few slots for walk-ins.
    static func templates(_ doctor: Doctor, room: String) throws -> [ClinicTemplate] {
        let id = try PractitionerID(doctor.slug)
        func line(_ day: Weekday, _ half: HalfDay) throws -> ClinicTemplate {
            switch (doctor.title, half) {
            case (.chiefPhysician, _):
                return try ClinicTemplate(practitionerID: id, weekday: day, halfDay: half, room: room, capacity: 12, minutesPerSlot: 20, walkInReserve: 2)
            case (_, .evening):
                return try ClinicTemplate(practitionerID: id, weekday: day, halfDay: half, room: room, capacity: 12, minutesPerSlot: 15, walkInReserve: 4)
            default:
                return try ClinicTemplate(practitionerID: id, weekday: day, halfDay: half, room: room, capacity: 24, minutesPerSlot: 10, walkInReserve: 4)
            }
        }
        let weekdays: [Weekday] = [.monday, .tuesday, .wednesday, .thursday, .friday]
        switch doctor.title {
        case .chiefPhysician:
            return try weekdays.map { try line($0, .morning) }
        case .residentPhysician:
            return try Weekday.allCases.flatMap { day in try HalfDay.allCases.map { try line(day, $0) } }
        default:
            return try [Weekday.monday, .wednesday, .friday].flatMap { [try line($0, .morning), try line($0, .afternoon)] }
                + [try line(.tuesday, .afternoon), try line(.thursday, .afternoon)]
        }
    }
}

extension DemoData {
    /// Adds `seed-demo` to the node's admin API.
    package static func install(on node: MeshNode) {
        BenchRota.install(on: node)
        BenchRecords.install(on: node)
        BenchPharmacy.install(on: node)
        node.addAdminCommands {
            $0.add("seed-demo", DemoSeedRequest.self) { request in
                var summary = try seed(node, request)
                for department in request.departments ?? [node.config.nodeID] {
                    do { summary.staff += try await DemoStaff.seed(node.staff, department: department) } catch {
                        throw NodeError(.admin, zh: "演示员工账户未能全部写入：\(error)", en: "not every demo staff account was written: \(error)")
                    }
                    do {
                        let written = try DemoRecords.seed(node, department: department)
                        summary.visits += written.visits
                        summary.templates += written.templates
                    } catch {
                        throw NodeError(.admin, zh: "演示病历未能写入：\(error)", en: "the demo notes were not written: \(error)")
                    }
                    do {
                        let written = try await DemoPharmacy.seed(node, department: department)
                        summary.stock += written.stock
                        summary.prescriptions += written.prescriptions
                    } catch {
                        throw NodeError(.admin, zh: "演示处方与库存未能写入：\(error)", en: "the demo prescriptions and stock were not written: \(error)")
                    }
                }
                return summary
            }
        }
    }

    /// Writes the demo rows of `request.departments` (default the node's own) and proposes their blocks.
    package static func seed(_ node: MeshNode, _ request: DemoSeedRequest) throws -> Summary {
        guard (1...31).contains(request.days) else {
            throw NodeError(.admin, zh: "days 须在 1 到 31 之间。", en: "days must be between 1 and 31.")
        }
        if let c = request.capacity, !(1...64).contains(c) {
            throw NodeError(.admin, zh: "capacity 须在 1 到 64 之间。", en: "capacity must be between 1 and 64.")
        }
        let start = try CivilDate(parsing: request.startDate, field: "start_date")
        let dataKey = try DataKeyFile.load(from: node.config.dataKeyFile)
        var summary = Summary(department: "", practitioners: 0, schedules: 0, slots: 0, patients: 0, blocks: [])
        for department in request.departments ?? [node.config.nodeID] {
            let one = try seed(node: node, start: start, days: request.days, dataKey: dataKey, department: department, capacity: request.capacity,
                               rota: request.rota ?? false)
            summary.department += (summary.department.isEmpty ? "" : ",") + one.department
            summary.practitioners += one.practitioners; summary.schedules += one.schedules
            summary.slots += one.slots; summary.patients += one.patients; summary.blocks += one.blocks
        }
        node.defineBlocks(summary.blocks)
        node.logger.notice("已写入演示数据 / demo data written", metadata: [
            "demo.schedules": "\(summary.schedules)", "demo.slots": "\(summary.slots)", "demo.patients": "\(summary.patients)"])
        return summary
    }
}
