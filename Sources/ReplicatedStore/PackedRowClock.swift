import ReplicatedCore

/// A `RowClock` as the row's `crdt_clock` BLOB holds it, so that a merge reads and writes one row,
/// not one metadata row per column.
///
/// Each entry is 22 bytes: `u16 column slot | u64 hlc | u32 origin (local id) | u64 seq`, little
/// endian. Slot `RowClock.aliveSlot` is the row's existence register. Origin ids are local to this
/// database (`crdt_origin.id`); anything that leaves the node uses `OriginID` instead.
struct PackedRowClock: Equatable {
    static let aliveSlot = RowClock.aliveSlot
    static let entrySize = 22

    struct Entry: Equatable {
        var hlc: UInt64
        var origin: UInt32
        var seq: UInt64
    }

    /// (slot, entry) pairs sorted by slot: rows have a handful of columns, so a small array beats
    /// a dictionary on every merge.
    private(set) var entries: [(slot: UInt16, entry: Entry)] = []

    init() {}

    init(decoding bytes: [UInt8]) throws {
        guard bytes.count % Self.entrySize == 0 else {
            throw StoreError(.corruptMetadata, zh: "行版本信息长度 \(bytes.count) 不正确；请从备份或其他节点重建本节点。",
                             en: "row clock of \(bytes.count) bytes is malformed; rebuild this node from a backup or a peer.")
        }
        var reader = ByteReader(bytes)
        entries.reserveCapacity(bytes.count / Self.entrySize)
        while !reader.isAtEnd {
            let slot = UInt16(try reader.byte()) | UInt16(try reader.byte()) << 8
            self[slot] = Entry(hlc: try reader.fixed64(), origin: try reader.fixed32(), seq: try reader.fixed64())
        }
    }

    static func == (a: PackedRowClock, b: PackedRowClock) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.slot == $1.slot && $0.entry == $1.entry }
    }

    subscript(slot: UInt16) -> Entry? {
        get { entries.first { $0.slot == slot }?.entry }
        set {
            if let i = entries.firstIndex(where: { $0.slot >= slot }), entries[i].slot == slot {
                if let newValue { entries[i].entry = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                let i = entries.firstIndex { $0.slot > slot } ?? entries.endIndex
                entries.insert((slot, newValue), at: i)
            }
        }
    }

    func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.buffer.reserveCapacity(entries.count * Self.entrySize)
        for (slot, e) in entries {
            writer.byte(UInt8(truncatingIfNeeded: slot))
            writer.byte(UInt8(truncatingIfNeeded: slot >> 8))
            writer.fixed64(e.hlc)
            writer.fixed32(e.origin)
            writer.fixed64(e.seq)
        }
        return writer.buffer
    }
}
