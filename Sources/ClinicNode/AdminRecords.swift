import Domain
import Foundation
import ReplicatedCore
import Services
import AdminAPI
import ReplicatedStore

#if canImport(Glibc)
import Glibc
#endif

// Ordinary replicated records on the admin API (a patient registration), so that drills can run a
// record-writing workload beside the bookings, and the full-disk guard that goes with local writes.

extension MeshNode {
    func registerPatient(_ command: RegisterPatientCommand) -> RegisterPatientAnswer {
        func refused(_ code: String, _ zh: String, _ en: String) -> RegisterPatientAnswer {
            RegisterPatientAnswer(outcome: "refused", code: code, messageZh: zh, messageEn: en, node: config.nodeID)
        }
        let key: String
        let values: [String: ColumnValue]
        do {
            let today = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(clock.wallMillis()) / 1000)).date
            let id = try ResidentID(command.residentID, today: today)
            let mobile = try MobileNumber(command.mobile)
            let patient = try Patient(name: command.name, sex: id.sex, birthDate: id.birthDate, residentID: id, mobile: mobile)
            key = try PatientKey(residentID: id, clusterSecret: PatientDesk.patientKeySecret(dataKey: try DataKeyFile.load(from: config.dataKeyFile))).hex
            values = ["name": .text(patient.name), "resident_id": .text(id.value), "mobile": .text(mobile.digits),
                      "sex": .text(patient.sex.rawValue), "birth_date": .text(id.birthDate.description)]
        } catch let error as ValidationError {
            return refused("request.invalid", error.zh, error.en)
        } catch {
            return refused("request.invalid", "无法处理该登记：\(error)", "cannot process this registration: \(error)")
        }
        do {
            let created = try write { w -> Bool in
                guard try replica.liveRow("patient", key: key) == nil else { return false }
                try w.insert("patient", key: key, values: values)
                return true
            }
            return RegisterPatientAnswer(outcome: created ? "registered" : "exists", key: key, node: config.nodeID)
        } catch let error as StoreError where error.code == .writesRefused {
            return refused(error.code.rawValue, error.zh, error.en)
        } catch {
            if let reason = noteWriteFailure(error) { return refused(reason.code.rawValue, reason.zh, reason.en) }
            return refused("store.write_failed", "写入失败，未登记：\(error)", "the write failed, nothing was registered: \(error)")
        }
    }

    func recordsView(table: String) throws -> RecordsView {
        RecordsView(node: config.nodeID, table: table, keys: try replica.liveRows(table).keys.sorted(), digest: try replica.digest())
    }

    // MARK: - Full disk

    /// Free bytes on the data disk, if the file system says.
    func dataDiskFreeBytes() -> Int64? {
        var s = statvfs()
        guard statvfs(config.dataDir, &s) == 0 else { return nil }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// Below this much free space a failed write counts as a full disk, and writes stay refused.
    static let diskReserveBytes: Int64 = 1 << 20

    /// A local write failed: if the disk is full, refuse writes from now on and say why (the
    /// maintenance loop lifts the refusal once there is room again). Returns the reason, if so.
    func noteWriteFailure(_ error: any Error) -> StoreError? {
        let text = "\(error)"
        let full = text.contains("SQLITE_FULL") || text.contains("disk is full") || text.contains("No space left")
            || (dataDiskFreeBytes().map { $0 < Self.diskReserveBytes } ?? false)
        guard full else { return nil }
        let reason = StoreError(
            .writesRefused,
            zh: "数据盘已满（\(config.dataDir)）；已确认的数据不受影响。请清理磁盘空间，空间恢复后自动恢复写入。",
            en: "the data disk is full (\(config.dataDir)); nothing acknowledged is affected. Free some space; writes resume by themselves once there is room.")
        let first = runtime.withLock { r -> Bool in
            defer { r.diskReason = reason }
            return r.diskReason == nil
        }
        if replica.writesRefusedBecause == nil { replica.refuseWrites(reason) }
        if first { logger.error("数据盘已满，暂停写入 / data disk full, refusing writes", metadata: ["node.error": "\(text)"]) }
        return reason
    }

    /// Lifts a full-disk refusal once there is room again (called by the maintenance loop).
    func evaluateDiskGuard() {
        guard let reason = runtime.withLock({ $0.diskReason }), let free = dataDiskFreeBytes(), free >= 4 * Self.diskReserveBytes else { return }
        runtime.withLock { $0.diskReason = nil }
        if replica.writesRefusedBecause == reason { replica.allowWrites() }
        logger.notice("数据盘已有空间，恢复写入 / the data disk has room again, writes resumed", metadata: ["node.disk.free": "\(free)"])
    }

    #if CLINICMESH_BUG_SWITCHES
    /// Test-only (built with -DCLINICMESH_BUG_SWITCHES): shifts this node's wall clock, the one
    /// source of wall time for the HLC, heartbeats, the clock guard and consensus.
    func setClockOffset(_ request: [String: Int64]) throws -> [String: Int64] {
        guard let ms = request["offset_ms"], abs(ms) <= 86_400_000 else {
            throw NodeError(.admin, zh: "clock-offset 需要 {\"offset_ms\": <-86400000 到 86400000 的整数>}。",
                            en: "clock-offset needs {\"offset_ms\": <an integer from -86400000 to 86400000>}.")
        }
        clock.offsetMillis = ms
        logger.warning("测试：墙上时钟偏移已设置 / test: wall clock offset set", metadata: ["node.clock.offset_ms": "\(ms)"])
        return ["offset_ms": ms]
    }
    #endif
}
