import Consensus
import Domain
import Foundation
import GRDB
import Logging
import Synchronization

// The bookings as read tables in this node's own SQLite file (`readmodel.sqlite`): derived from
// the consensus records, never replicated, rebuilt from them at every start and whenever the
// consensus state was replaced. Reports, searches and clinical records join on these rows; the
// booking decisions never read them. A closed block's rows (`BlockClosure`) are final: written
// durably from the closure before the consensus side forgets the block, and never rebuilt.

/// One appointment as the read model keeps it.
package struct AppointmentRow: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "appointment_view"
    /// The hold's request id (the appointment's identity).
    package var holdID: String
    /// The session (schedule key) and the 0-based slot.
    package var block: String
    package var slot: Int
    package var patient: String
    /// From the replicated schedule rows; nil until the session's row has reached this node.
    package var department: String?
    package var practitioner: String?
    package var date: String?
    package var halfDay: String?
    package var start: String?
    package var end: String?
    /// pending, booked or cancelled (`AppointmentStatus`), as the consensus records say.
    package var status: String
    /// The epoch of the record that decided the status.
    package var epoch: UInt64
    /// A pending hold is released at this wall time unless confirmed.
    package var holdUntilMs: Int64?
    /// A cancelled appointment's slot is back on offer from this wall time.
    package var reofferAtMs: Int64?
    /// insurance or card, from the confirmation.
    package var payment: String?

    enum CodingKeys: String, CodingKey {
        case holdID = "hold_id", block, slot, patient, department, practitioner, date, halfDay = "half_day", start, end, status, epoch
        case holdUntilMs = "hold_until_ms", reofferAtMs = "reoffer_at_ms", payment
    }
}

/// One slot's state as the records say it, whatever the time: free, busy-tentative (held), busy
/// (booked), or busy-unavailable (this node's lease history is behind the block's records). Only
/// slots that records touched have a row; a slot of the session without one is free.
package struct SlotRow: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "slot_view"
    package var block: String
    package var slot: Int
    package var status: String
    /// A free slot that was cancelled goes back on offer only from this wall time.
    package var freeFromMs: Int64?
    /// The appointment holding the slot, if any.
    package var holdID: String?

    enum CodingKeys: String, CodingKey { case block, slot, status, freeFromMs = "free_from_ms", holdID = "hold_id" }
}

/// Projects the consensus records into the read tables and answers queries over them.
package final class BookingReadModel: Sendable {
    /// A pool: the patients' reads go on while the projection writes (WAL readers never wait).
    private let db: DatabasePool
    /// Closed blocks with final rows here: while there are none, no request needs to read them.
    private let closedCount = Atomic<Int>(0)
    private let consensus: any BookingConsensus
    private let store: any RecordStore
    private let directory: SessionDirectory
    private let logger: Logger
    /// The rows as last written, per block: a projection writes only what changed (at the rush a
    /// hot block moves many times a second, one or two of its rows at a time).
    private let written = Mutex<[BlockID: (appointments: [String: AppointmentRow], slots: [SlotRow])]>([:])

    /// Derived data: WAL without fsync at each commit (a lost tail is projected again at start).
    package init(path: String, consensus: any BookingConsensus, store: any RecordStore, directory: SessionDirectory, logger: Logger) throws {
        var config = Configuration()
        config.journalMode = .wal
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        db = try DatabasePool(path: path, configuration: config)
        self.consensus = consensus; self.store = store; self.directory = directory; self.logger = logger
        var migrator = DatabaseMigrator()
        // A read model: any change of shape drops and rebuilds it from the consensus records.
        migrator.eraseDatabaseOnSchemaChange = true
        migrator.registerMigration("v1 appointment_view, slot_view (read model)") { db in
            try db.execute(sql: """
                CREATE TABLE appointment_view (
                    hold_id TEXT PRIMARY KEY, block TEXT NOT NULL, slot INTEGER NOT NULL, patient TEXT NOT NULL,
                    department TEXT, practitioner TEXT, date TEXT, half_day TEXT, start TEXT, "end" TEXT,
                    status TEXT NOT NULL, epoch INTEGER NOT NULL, hold_until_ms INTEGER, reoffer_at_ms INTEGER, payment TEXT);
                CREATE INDEX appointment_view_patient ON appointment_view(patient);
                CREATE INDEX appointment_view_block ON appointment_view(block, slot);
                CREATE INDEX appointment_view_day ON appointment_view(date, department);
                CREATE TABLE slot_view (
                    block TEXT NOT NULL, slot INTEGER NOT NULL, status TEXT NOT NULL, free_from_ms INTEGER, hold_id TEXT,
                    PRIMARY KEY (block, slot));
                """)
        }
        migrator.registerMigration("v2 closed_block (final rows)") { db in
            try db.execute(sql: "CREATE TABLE closed_block (block TEXT PRIMARY KEY, from_epoch INTEGER NOT NULL, closed_at_ms INTEGER NOT NULL)")
        }
        try migrator.migrate(db)
        try countClosed()
    }

    private func countClosed() throws {
        closedCount.store(try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM closed_block") ?? 0 }, ordering: .relaxed)
    }

    /// Projects every block now, then the changed ones every `every`, until cancelled.
    package func run(every: Duration = .seconds(1)) async {
        var all = true
        while !Task.isCancelled {
            switch consensus.takeChangedBlocks() {
            case .all: all = true
            case .some(let blocks) where !all && !blocks.isEmpty:
                do { try await offload { try self.project(blocks) } } catch {
                    logger.warning("读模型投影失败，下次重建 / read model projection failed, rebuilding next", metadata: ["node.error": "\(error)"])
                    all = true
                }
            default: break
            }
            if all {
                do {
                    try await offload { try self.rebuild() }
                    all = false
                } catch {
                    logger.warning("读模型重建失败，稍后重试 / read model rebuild failed, retrying", metadata: ["node.error": "\(error)"])
                }
            }
            try? await Task.sleep(for: every)
        }
    }

    /// Replaces every row with what the consensus records say now (one transaction: a reader
    /// never sees the tables half rebuilt).
    package func rebuild() throws {
        try project(Set(consensus.lookup { $0.slotBlocks }), replacingAll: true)
    }

    /// Writes a closed block's final rows from its closure, durably (the consensus side forgets
    /// its records next, so they cannot be projected again). Applying the same closure again
    /// after a restart writes the same rows.
    package func keepClosed(_ closure: BlockClosure, atMs: Int64) throws {
        let info = try? directory.session(closure.block, in: store)
        let (appointments, slots) = Self.rows(block: closure.block, slots: closure.slots, records: BookingLookup.appointments(of: closure),
                                              availability: BookingLookup.availability(of: closure), info: info)
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            defer { try? db.execute(sql: "PRAGMA synchronous = OFF") }
            try db.inTransaction {
                try db.execute(sql: "DELETE FROM appointment_view WHERE block = ?", arguments: [closure.block])
                try db.execute(sql: "DELETE FROM slot_view WHERE block = ?", arguments: [closure.block])
                for row in appointments { try row.save(db) }
                for row in slots { try row.save(db) }
                try db.execute(sql: "INSERT OR REPLACE INTO closed_block (block, from_epoch, closed_at_ms) VALUES (?, ?, ?)",
                               arguments: [closure.block, closure.fromEpoch, atMs])
                return .commit
            }
        }
        _ = written.withLock { $0.removeValue(forKey: closure.block) }
        try countClosed()
    }

    /// The closed blocks this read model holds final rows of.
    package func closedBlocks() throws -> Set<String> {
        try db.read { Set(try String.fetchAll($0, sql: "SELECT block FROM closed_block")) }
    }

    /// Replaces the rows of `blocks` (of every block, with `replacingAll`) with what the consensus
    /// records say of them now.
    package func project(_ blocks: Set<BlockID>, replacingAll: Bool = false) throws {
        // One view for the whole batch: every block as of the same step of the core.
        let (blocks, read) = consensus.lookup { lookup in
            // A closed block's rows are final (`keepClosed`); the consensus side no longer knows it.
            let open = blocks.filter { !lookup.isClosed($0) }
            return (open, open.map { ($0, lookup.block($0), lookup.appointments(in: $0), lookup.availability(of: $0)) })
        }
        guard !blocks.isEmpty || replacingAll else { return }
        let sessions = (try? directory.sessions(store)) ?? [:]
        var appointments: [AppointmentRow] = [], slots: [SlotRow] = []
        for (block, summary, records, availability) in read {
            let rows = Self.rows(block: block, slots: summary?.slots ?? 0, records: records, availability: availability, info: sessions[block])
            appointments += rows.appointments
            slots += rows.slots
        }
        let fresh = Dictionary(grouping: appointments, by: \.block).mapValues { Dictionary(uniqueKeysWithValues: $0.map { ($0.holdID, $0) }) }
        let freshSlots = Dictionary(grouping: slots, by: \.block)
        let before = replacingAll ? [:] : written.withLock { w in blocks.reduce(into: [BlockID: (appointments: [String: AppointmentRow], slots: [SlotRow])]()) { $0[$1] = w[$1] } }
        try db.write { db in
            if replacingAll {
                // A closure this node learnt of only from a snapshot never reached `keepClosed`:
                // its rows as last projected stay, marked closed (from epoch 0: not the closure's).
                for block in consensus.lookup({ $0.closedBlocks }) {
                    try db.execute(sql: "INSERT OR IGNORE INTO closed_block (block, from_epoch, closed_at_ms) VALUES (?, 0, 0)", arguments: [block])
                }
                try db.execute(sql: "DELETE FROM appointment_view WHERE block NOT IN (SELECT block FROM closed_block)")
                try db.execute(sql: "DELETE FROM slot_view WHERE block NOT IN (SELECT block FROM closed_block)")
            }
            for block in blocks {
                let old = before[block], new = fresh[block] ?? [:], newSlots = freshSlots[block] ?? []
                for (id, row) in old?.appointments ?? [:] where new[id] == nil { try row.delete(db) }
                for (id, row) in new where old?.appointments[id] != row { try row.save(db) }
                let oldSlots = Dictionary((old?.slots ?? []).map { ($0.slot, $0) }, uniquingKeysWith: { a, _ in a })
                let newBySlot = Dictionary(newSlots.map { ($0.slot, $0) }, uniquingKeysWith: { a, _ in a })
                for (slot, row) in oldSlots where newBySlot[slot] == nil { try row.delete(db) }
                for (slot, row) in newBySlot where oldSlots[slot] != row { try row.save(db) }
            }
        }
        if replacingAll { try countClosed() }
        written.withLock { w in
            if replacingAll { w.removeAll() }
            for block in blocks { w[block] = (fresh[block] ?? [:], freshSlots[block] ?? []) }
        }
    }

    /// A block's rows from its appointments' records and its slots' availability.
    private static func rows(block: BlockID, slots count: Int, records: [String: AppointmentRecords], availability: BlockAvailability,
                             info: SessionInfo?) -> (appointments: [AppointmentRow], slots: [SlotRow]) {
        var appointments: [AppointmentRow] = [], slots: [SlotRow] = []
        var holderOf: [Int: String] = [:]
        for (holdID, r) in records {
            guard let status = r.status, let hold = r.hold else { continue }
            let times = info.map { $0.times(of: hold.slot) }
            let deciding = r.release ?? r.confirmation ?? hold
            appointments.append(AppointmentRow(
                holdID: holdID, block: block, slot: hold.slot, patient: hold.patient, department: info?.department,
                practitioner: info?.practitioner, date: info?.date.description, halfDay: info?.halfDay.rawValue,
                start: times?.start.description, end: times?.end.description, status: status.rawValue, epoch: deciding.epoch,
                holdUntilMs: status == .pending ? hold.holdUntilMs : nil, reofferAtMs: r.release.map(\.reofferAtMs),
                payment: r.confirmation.flatMap { PaymentTag.decode($0.tag) }))
            if status != .cancelled { holderOf[hold.slot] = holdID }
        }
        // Rows only for slots that records have touched: a slot without a row is free (its session's
        // capacity says how many there are). Publishing weeks of rota then writes no row at all.
        // While this node's history is behind the block's records, every slot of the session is unknown.
        let touched = availability.unknown ? Array(0..<min(count, info?.capacity ?? count)) : availability.taken.keys.filter { $0 < count }.sorted()
        for slot in touched {
            let status: SlotStatus, freeFrom: Int64?
            switch availability.taken[slot] {
            case _ where availability.unknown: (status, freeFrom) = (.busyUnavailable, nil)
            case .booked?: (status, freeFrom) = (.busy, nil)
            case .held?: (status, freeFrom) = (.busyTentative, nil)
            case .releasedUntil(let t)?: (status, freeFrom) = (.free, t)
            case nil: (status, freeFrom) = (.free, nil)
            }
            slots.append(SlotRow(block: block, slot: slot, status: status.rawValue, freeFromMs: freeFrom, holdID: holderOf[slot]))
        }
        return (appointments, slots)
    }

    // MARK: - Queries

    /// The patient's appointments in closed sessions (final rows); none read while no block is closed here.
    package func closedAppointments(patient: String) throws -> [AppointmentRow] {
        guard closedCount.load(ordering: .relaxed) > 0 else { return [] }
        return try db.read { db in
            try AppointmentRow.fetchAll(db, sql: """
                SELECT appointment_view.* FROM appointment_view JOIN closed_block USING (block)
                WHERE patient = ? ORDER BY hold_id
                """, arguments: [patient])
        }
    }

    package func appointments(patient: String) throws -> [AppointmentRow] {
        try db.read { try AppointmentRow.filter(Column("patient") == patient).order(Column("hold_id")).fetchAll($0) }
    }

    package func appointments(block: String) throws -> [AppointmentRow] {
        try db.read { try AppointmentRow.filter(Column("block") == block).order(Column("slot"), Column("hold_id")).fetchAll($0) }
    }

    package func appointments(date: String, department: String?) throws -> [AppointmentRow] {
        try db.read { db in
            var q = AppointmentRow.filter(Column("date") == date)
            if let department { q = q.filter(Column("department") == department) }
            return try q.order(Column("block"), Column("slot")).fetchAll(db)
        }
    }

    package func slots(block: String) throws -> [SlotRow] {
        try db.read { try SlotRow.filter(Column("block") == block).order(Column("slot")).fetchAll($0) }
    }
}
