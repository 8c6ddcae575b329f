import Foundation
import Testing
@testable import ClinicNode
@testable import Services

/// How the consensus disk thread puts a log back before retrying a failed batch (a full disk):
/// whatever part of the batch reached the file is cut off, so the retry never appends it twice.
@Suite struct DurableQueueRestoreTests {
    let folder = NSTemporaryDirectory() + "clinicmesh-restore-" + UUID().uuidString

    @Test func aFailedBatchIsCutBackToTheSizeBeforeIt() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/raft.log"
        try Data("durable".utf8).write(to: URL(fileURLWithPath: path))
        let before = DurableQueue.fileID(path)
        // Part of the batch made it (a torn record, or whole records whose fsync failed).
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("half a batch".utf8))
        try handle.close()
        #expect(try DurableQueue.restore(path, to: before) == false)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "durable")
        // Nothing of the batch reached the file: nothing to cut.
        #expect(try DurableQueue.restore(path, to: before) == false)
        #expect(DurableQueue.fileID(path)?.size == 7)
    }

    @Test func aLogARewriteReplacedAlreadyHoldsTheBatch() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/bookings.log"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let before = DurableQueue.fileID(path)
        // The rewrite's temporary file renamed over the log: a new inode, left as it is.
        try Data("the whole state, batch included".utf8).write(to: URL(fileURLWithPath: path + ".tmp"))
        #expect(rename(path + ".tmp", path) == 0)
        #expect(try DurableQueue.restore(path, to: before) == true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "the whole state, batch included")
    }
}
