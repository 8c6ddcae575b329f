import Foundation
import Testing
@testable import Domain

@Suite struct CivilDateTests {
    @Test func parsesAndFormatsRoundTrip() throws {
        let date = try CivilDate(parsing: "2025-03-07")
        #expect(date.year == 2025 && date.month == 3 && date.day == 7)
        #expect(date.description == "2025-03-07")
        #expect(try CivilDate(parsing: "0001-01-01").description == "0001-01-01")
    }

    @Test(arguments: ["2025-3-7", "2025/03/07", "", "20250307", "２０２５-03-07", "2025-03-07 ", "abcd-ef-gh", "+025-03-07"])
    func refusesMalformedText(_ text: String) {
        let error = refusal { try CivilDate(parsing: text, field: "birthDate") }
        #expect(error?.code == "date.format")
        #expect(error?.field == "birthDate")
    }

    @Test func leapYears() throws {
        #expect(CivilDate.isLeapYear(2000))
        #expect(CivilDate.isLeapYear(2024))
        #expect(!CivilDate.isLeapYear(1900))
        #expect(!CivilDate.isLeapYear(2025))
        #expect(try CivilDate(parsing: "2000-02-29").day == 29)
        #expect(refusal { try CivilDate(parsing: "1900-02-29") }?.code == "date.invalid")
        #expect(refusal { try CivilDate(parsing: "2025-02-29") }?.code == "date.invalid")
        #expect(refusal { try CivilDate(parsing: "2025-04-31") }?.code == "date.invalid")
        #expect(refusal { try CivilDate(parsing: "2025-13-01") }?.code == "date.invalid")
        #expect(refusal { try CivilDate(parsing: "2025-00-10") }?.code == "date.invalid")
        #expect(refusal { try CivilDate(year: 0, month: 1, day: 1) }?.code == "date.out_of_range")
        #expect(refusal { try CivilDate(year: Int.max, month: 1, day: 1) }?.code == "date.out_of_range")
    }

    @Test func weekdays() {
        #expect(Fixture.date("2024-01-01").weekday == .monday)
        #expect(Fixture.date("2025-03-14").weekday == .friday)
        #expect(Fixture.date("2000-02-29").weekday == .tuesday)
        #expect(Fixture.date("9999-12-31").weekday == .friday)
        #expect(Fixture.date("2025-03-16").weekday.zh == "星期日")
    }

    @Test func addingDaysCrossesMonthsYearsAndLeapDays() throws {
        #expect(try Fixture.date("2024-02-28").adding(days: 1) == Fixture.date("2024-02-29"))
        #expect(try Fixture.date("2025-02-28").adding(days: 1) == Fixture.date("2025-03-01"))
        #expect(try Fixture.date("2024-12-31").adding(days: 1) == Fixture.date("2025-01-01"))
        #expect(try Fixture.date("2025-03-01").adding(days: -1) == Fixture.date("2025-02-28"))
        #expect(try Fixture.date("2000-01-01").adding(days: 366) == Fixture.date("2001-01-01"))
        #expect(Fixture.date("2025-03-14").days(since: Fixture.date("2024-03-14")) == 365)
        #expect(Fixture.date("1970-01-01").dayNumber == 719_162)
    }

    @Test func addingHugeDayCountsIsRefusedNotTrapped() {
        #expect(refusal { try Fixture.today.adding(days: Int.max) }?.code == "date.out_of_range")
        #expect(refusal { try Fixture.today.adding(days: Int.min) }?.code == "date.out_of_range")
        #expect(refusal { try Fixture.date("9999-12-31").adding(days: 1) }?.code == "date.out_of_range")
    }

    @Test func dayNumbersRoundTripAcrossTheWholeRange() throws {
        // Every day of a few leap cycles and both ends of the range.
        var date = Fixture.date("1899-12-25")
        for _ in 0..<(366 * 9) {
            let next = try date.adding(days: 1)
            #expect(next > date)
            #expect(CivilDate(dayNumber: date.dayNumber) == date)
            date = next
        }
        #expect(CivilDate(dayNumber: 0) == Fixture.date("0001-01-01"))
        #expect(CivilDate(dayNumber: Fixture.date("9999-12-31").dayNumber) == Fixture.date("9999-12-31"))
    }

    @Test func ordering() {
        #expect(Fixture.date("2024-12-31") < Fixture.date("2025-01-01"))
        #expect(Fixture.date("2025-01-31") < Fixture.date("2025-02-01"))
        #expect(!(Fixture.date("2025-02-01") < Fixture.date("2025-02-01")))
    }

    @Test func localTime() throws {
        let time = try LocalTime(parsing: "13:30")
        #expect(time.minuteOfDay == 810 && time.hour == 13 && time.minute == 30)
        #expect(time.description == "13:30")
        #expect(try LocalTime(hour: 8, minute: 5).description == "08:05")
        #expect(refusal { try LocalTime(parsing: "24:00") }?.code == "time.out_of_range")
        #expect(refusal { try LocalTime(parsing: "8:00") }?.code == "time.format")
        #expect(refusal { try LocalTime(parsing: "08-00", field: "start") }?.field == "start")
        #expect(refusal { try LocalTime(minuteOfDay: 1440) }?.code == "time.out_of_range")
        #expect(refusal { try LocalTime(hour: Int.min, minute: 0) }?.code == "time.out_of_range")
    }

    @Test func shanghaiTimeIsUTCPlusEight() throws {
        // 2025-03-13T16:30:00Z is 2025-03-14 00:30 in Shanghai.
        let instant = Date(timeIntervalSince1970: 1_741_883_400)
        let civil = try ShanghaiTime.civil(of: instant)
        #expect(civil.date == Fixture.date("2025-03-14"))
        #expect(civil.time == Fixture.time("00:30"))
        #expect(ShanghaiTime.instant(date: civil.date, time: civil.time) == instant)
        #expect(refusal { try ShanghaiTime.civil(of: .distantFuture) } == nil)
        #expect(refusal { try ShanghaiTime.civil(of: Date(timeIntervalSince1970: 1e300)) }?.code == "date.out_of_range")
        #expect(refusal { try ShanghaiTime.civil(of: Date(timeIntervalSince1970: .nan)) }?.code == "date.out_of_range")
    }

    @Test func unixDayIsTheShanghaiDateOfAWallTime() throws {
        let epoch = Fixture.date("1970-01-01")
        // 2025-03-13T16:00:00Z is midnight in Shanghai: the day turns there, 8 hours before UTC.
        #expect(ShanghaiTime.unixDay(wallMs: 1_741_881_600_000 - 1) == Fixture.date("2025-03-13").days(since: epoch))
        #expect(ShanghaiTime.unixDay(wallMs: 1_741_881_600_000) == Fixture.date("2025-03-14").days(since: epoch))
        // Before 1970 a wall time rounds to the earlier day, never towards zero.
        #expect(ShanghaiTime.unixDay(wallMs: -8 * 3_600_000 - 1) == -1)
        #expect(ShanghaiTime.unixDay(wallMs: -8 * 3_600_000) == 0)
        var ms: Int64 = -60_000_000_000_000
        while ms < 60_000_000_000_000 {
            let civil = try ShanghaiTime.civil(of: Date(timeIntervalSince1970: Double(ms) / 1000))
            #expect(ShanghaiTime.unixDay(wallMs: ms) == civil.date.days(since: epoch), "\(ms)")
            ms += 7_777_777_777
        }
    }

    @Test func codableAsStrings() throws {
        let data = try JSONEncoder().encode([Fixture.date("2025-03-07")])
        #expect(String(decoding: data, as: UTF8.self) == #"["2025-03-07"]"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([CivilDate].self, from: Data(#"["2025-02-30"]"#.utf8)) }
        let time = try JSONDecoder().decode([LocalTime].self, from: Data(#"["17:30"]"#.utf8))
        #expect(time == [Fixture.time("17:30")])
    }
}
