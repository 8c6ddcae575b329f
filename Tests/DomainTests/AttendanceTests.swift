import Domain
import Foundation
import Testing

@Suite struct AttendanceTests {
    let day = try! CivilDate(year: 2025, month: 3, day: 17)
    let start = try! LocalTime(hour: 8, minute: 0), end = try! LocalTime(hour: 12, minute: 0)

    func at(_ h: Int, _ m: Int) -> Int64 { Int64(ShanghaiTime.instant(date: day, time: try! LocalTime(hour: h, minute: m)).timeIntervalSince1970 * 1000) }

    @Test func lateAbsentAndLeavingEarlyAreJudgedWithTheTolerance() {
        func flags(_ signedIn: Int64?, _ signedOut: Int64?, now: Int64) -> Set<Attendance.Flag> {
            Attendance(date: day, start: start, end: end, signedInMs: signedIn, signedOutMs: signedOut).flags(nowMs: now, toleranceMinutes: 10)
        }
        #expect(flags(at(8, 10), at(11, 50), now: at(12, 30)).isEmpty, "ten minutes either side is on time")
        #expect(flags(at(8, 11), nil, now: at(9, 0)) == [.late])
        #expect(flags(at(7, 40), at(11, 49), now: at(12, 30)) == [.leftEarly])
        #expect(flags(at(8, 30), at(10, 0), now: at(12, 30)) == [.late, .leftEarly])
        #expect(flags(nil, nil, now: at(11, 59)).isEmpty, "not absent before the session ends")
        #expect(flags(nil, nil, now: at(12, 1)) == [.absent])
        #expect(flags(at(8, 0), nil, now: at(18, 0)).isEmpty, "no sign-out: not judged for leaving early")
    }
}
