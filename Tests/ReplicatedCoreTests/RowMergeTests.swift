import ReplicatedCore
import TestSupport
import Testing

/// A version written by `node` at wall-clock millisecond `ms` (logical counter `logical`).
func v(_ node: String, _ ms: Int64, _ logical: UInt64 = 0, seq: UInt64 = 1, incarnation: UInt32 = 1) -> ChangeVersion {
    ChangeVersion(hlc: HLCTimestamp(wallMillis: ms, logical: logical), origin: OriginID(node: node, incarnation: incarnation), seq: seq)
}

/// One operation creating a row of `values.count` columns.
func creation(_ version: ChangeVersion, _ values: [ColumnValue]) -> [SlotChange] {
    [SlotChange(slot: RowClock.aliveSlot, value: .integer(RowExistence.created), version: version)]
        + values.enumerated().map { SlotChange(slot: UInt16($0.offset), value: $0.element, version: version) }
}

/// Merges changes one decision per group, the way a replica meets them batch by batch.
func merged(_ groups: [[SlotChange]], columns: Int, rules: MergeRules = MergeRules()) -> MergeRow {
    var row = MergeRow(columns: columns)
    for group in groups { RowMerge.apply(RowMerge.decide(row, group, rules: rules).writes, to: &row) }
    return row
}

@Suite struct RowMergeTests {
    @Test func theNewerStampWinsEachColumnAndTheNodeIdBreaksTies() {
        let a = v("n1", 100), b = v("n2", 100), older = v("n3", 99)
        let changes = [SlotChange(slot: 0, value: "from n1", version: a), SlotChange(slot: 0, value: "from n2", version: b),
                       SlotChange(slot: 0, value: "from n3", version: older)]
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
            let row = merged(order.map { [changes[$0]] }, columns: 1)
            #expect(row.values == ["from n2"], "order \(order)")
            #expect(row.clock[0] == b)
        }
    }

    @Test func aDecisionCountsWhatWonWhatWasOlderAndWhatWasThereAlready() {
        var row = merged([creation(v("n1", 10), ["x", 1])], columns: 2)
        let decision = RowMerge.decide(row, [SlotChange(slot: 0, value: "x", version: v("n1", 10)),
                                             SlotChange(slot: 0, value: "y", version: v("n2", 20)),
                                             SlotChange(slot: 1, value: 2, version: v("n2", 5))])
        #expect(decision.writes == [SlotChange(slot: 0, value: "y", version: v("n2", 20))])
        #expect(decision.superseded == 1 && decision.duplicates == 1 && decision.conflicts.isEmpty)
        RowMerge.apply(decision.writes, to: &row)
        #expect(row.values == ["y", 1] && row.alive == RowExistence.created)
    }

    /// Any order, any grouping, with duplicates: the same row.
    @Test func mergingIsCommutativeAndIdempotentOverShuffledDuplicatedChanges() {
        var rng = SeededRandom(seed: 20261206)
        for round in 0..<500 {
            let nodes = ["n1", "n2", "n3"]
            var changes: [SlotChange] = []
            for seq in 1...UInt64(2 + rng.below(6)) {
                // Few distinct stamps, so that ties between nodes are common.
                let version = v(nodes[Int(rng.below(3))], Int64(rng.below(4)), rng.below(2), seq: seq)
                switch rng.below(4) {
                case 0: changes += creation(version, [.text("c\(rng.below(3))"), .integer(Int64(rng.below(3)))])
                case 1: changes.append(SlotChange(slot: RowClock.aliveSlot, value: .integer(RowExistence.deleted), version: version))
                default: changes.append(SlotChange(slot: UInt16(rng.below(2)), value: .text("u\(rng.below(5))"), version: version))
                }
            }
            let expected = merged([changes], columns: 2)
            for _ in 0..<6 {
                var shuffled = changes + (0..<Int(rng.below(4))).map { _ in changes[Int(rng.below(UInt64(changes.count)))] }
                shuffled.shuffle(using: &rng)
                var groups: [[SlotChange]] = []
                while !shuffled.isEmpty {
                    let n = min(shuffled.count, 1 + Int(rng.below(3)))
                    groups.append(Array(shuffled.prefix(n)))
                    shuffled.removeFirst(n)
                }
                #expect(merged(groups, columns: 2) == expected, "round \(round)")
            }
            // Merging everything again changes nothing.
            let again = RowMerge.decide(expected, changes)
            #expect(again.writes.isEmpty && again.duplicates + again.superseded == changes.count)
        }
    }

    @Test func concurrentCreatesWithDifferentValuesAreAConflictPerDifferingColumn() {
        let mine = v("n1", 10), theirs = v("n2", 12)
        let row = merged([creation(mine, ["张三", "13800000000", "F"])], columns: 3)
        let decision = RowMerge.decide(row, creation(theirs, ["张三", "13900000000", "M"]))
        #expect(decision.conflicts.map(\.slot) == [1, 2])
        #expect(decision.conflicts[0].first == .init(version: mine, value: "13800000000"))
        #expect(decision.conflicts[0].second == .init(version: theirs, value: "13900000000"))
        // The later creation still wins every column: converged, with the disagreement kept aside.
        var after = row
        RowMerge.apply(decision.writes, to: &after)
        #expect(after.values == ["张三", "13900000000", "M"])
    }

    @Test func noConflictForTheSameNodeAnEditedColumnOrAnUpdate() {
        let row = merged([creation(v("n1", 10), ["a", "b"]), [SlotChange(slot: 1, value: "edited", version: v("n1", 11, seq: 2))]], columns: 2)
        // Column 1 was edited since the creation: only column 0 is a creation disagreement.
        #expect(RowMerge.decide(row, creation(v("n2", 12), ["x", "y"])).conflicts.map(\.slot) == [0])
        #expect(RowMerge.decide(row, creation(v("n1", 12, seq: 3), ["x", "y"])).conflicts.isEmpty)
        #expect(RowMerge.decide(row, [SlotChange(slot: 0, value: "x", version: v("n2", 12))]).conflicts.isEmpty)
    }

    @Test func reviewItemsAreTheSameRowWhicheverSideNoticesThem() {
        let mine = CreationConflict.Side(version: v("n1", 10), value: "a")
        let theirs = CreationConflict.Side(version: v("n2", 12), value: "b")
        let here = ReviewItem(table: "patient", key: "k", column: "name", conflict: CreationConflict(slot: 0, first: mine, second: theirs))
        let there = ReviewItem(table: "patient", key: "k", column: "name", conflict: CreationConflict(slot: 0, first: theirs, second: mine))
        #expect(here == there)
        #expect(here.id.count == 32 && here.values["node_a"] == "n1" && here.values["value_b"] == "b")
    }

    @Test func aDeleteIsATombstoneThatALaterInsertOrUpdateOutlives() {
        let created = creation(v("n1", 10), ["a"])
        let delete = [SlotChange(slot: RowClock.aliveSlot, value: .integer(RowExistence.deleted), version: v("n2", 20))]
        let laterUpdate = [SlotChange(slot: 0, value: "b", version: v("n3", 30))]
        let reinsert = [SlotChange(slot: RowClock.aliveSlot, value: .integer(RowExistence.reinserted), version: v("n1", 40, seq: 2)),
                        SlotChange(slot: 0, value: "c", version: v("n1", 40, seq: 2))]
        let tombstone = merged([created, delete, laterUpdate], columns: 1)
        #expect(!tombstone.isLive && tombstone.values == ["b"], "an update does not bring a row back; it keeps its column")
        #expect(merged([delete, laterUpdate, created], columns: 1) == tombstone)
        let back = merged([reinsert, delete, created], columns: 1)
        #expect(back.alive == RowExistence.reinserted && back.values == ["c"])
    }

    @Test func ownershipTracksWhichOperationsStillOwnASlot() {
        let first = v("n1", 10), second = v("n2", 20, seq: 7)
        let before = merged([creation(first, ["a", "b"])], columns: 2)
        var after = before
        RowMerge.apply([SlotChange(slot: 0, value: "x", version: second)], to: &after)
        var owned = RowMerge.ownership(before: before.clock, after: after.clock)
        #expect(owned.gained == [OperationID(second)] && owned.released.isEmpty)
        let all = (Array(0..<2).map { UInt16($0) } + [RowClock.aliveSlot]).map { SlotChange(slot: $0, value: .integer(1), version: v("n3", 30)) }
        let last = after
        RowMerge.apply(all, to: &after)
        owned = RowMerge.ownership(before: last.clock, after: after.clock)
        #expect(owned.released == [OperationID(first), OperationID(second)])
    }

    #if CLINICMESH_BUG_SWITCHES
    @Test func theTieBreakBugMakesTheOrderMatter() {
        var rules = MergeRules()
        rules.bugTieBreakIgnoresNode = true
        let a = [SlotChange(slot: 0, value: "n1", version: v("n1", 100))]
        let b = [SlotChange(slot: 0, value: "n2", version: v("n2", 100))]
        #expect(merged([a, b], columns: 1, rules: rules) != merged([b, a], columns: 1, rules: rules))
        #expect(merged([a, b], columns: 1) == merged([b, a], columns: 1))
    }
    #endif
}
