import Foundation
import GRDB

extension Replica {
    /// The newest hybrid logical clock stamp this replica has issued or seen (for heartbeats).
    public func currentHLC() -> HLCTimestamp {
        state.withLock { $0.hlc.last }
    }

    /// This node's wall clock as the replica reads it (the clock its HLC stamps come from).
    public func wallClockMillis() -> Int64 {
        options.wallClock()
    }
}
