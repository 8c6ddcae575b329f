import Foundation

/// A calendar date with no time zone attached (proleptic Gregorian), such as a birth date or the
/// date of a clinic session. ClinicMesh reads every date in Asia/Shanghai.
public struct CivilDate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    /// Four-digit years only, so "YYYY-MM-DD" always round-trips.
    public static let supportedYears = 1...9999

    public init(year: Int, month: Int, day: Int, field: String = "date") throws(ValidationError) {
        guard Self.supportedYears.contains(year) else {
            throw ValidationError(
                field: field, code: "date.out_of_range",
                zh: "日期的年份 \(year) 超出范围，请使用 0001 至 9999 年之间的日期。",
                en: "The year \(year) is out of range; use a date between the years 0001 and 9999.")
        }
        guard (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day) else {
            throw ValidationError(
                field: field, code: "date.invalid",
                zh: "日期 \(year) 年 \(month) 月 \(day) 日不存在（注意大小月和闰年的 2 月 29 日），请核对后重新填写。",
                en: "The date \(year)-\(month)-\(day) does not exist (mind month lengths and 29 February in leap years); please check it and enter it again.")
        }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses exactly "YYYY-MM-DD" (ASCII digits, zero-padded).
    public init(parsing text: String, field: String = "date") throws(ValidationError) {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count == 10, scalars[4] == "-", scalars[7] == "-",
              let year = InputText.smallNumber(scalars[0..<4]),
              let month = InputText.smallNumber(scalars[5..<7]),
              let day = InputText.smallNumber(scalars[8..<10])
        else {
            throw ValidationError(
                field: field, code: "date.format",
                zh: "日期格式不正确，请按“年-月-日”格式填写，例如 2025-03-07。",
                en: "The date is not in the expected format; please write it as YYYY-MM-DD, for example 2025-03-07.")
        }
        try self.init(year: year, month: month, day: day, field: field)
    }

    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// Number of days in a month; 0 for a month outside 1...12.
    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: 31
        case 4, 6, 9, 11: 30
        case 2: isLeapYear(year) ? 29 : 28
        default: 0
        }
    }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// "YYYY-MM-DD".
    public var description: String {
        "\(InputText.padded(year, width: 4))-\(InputText.padded(month, width: 2))-\(InputText.padded(day, width: 2))"
    }

    public var weekday: Weekday {
        // Day 0 (0001-01-01) was a Monday in the proleptic Gregorian calendar.
        Weekday(rawValue: dayNumber % 7 + 1) ?? .monday
    }

    /// The date `days` later (earlier if negative). Refuses results outside the supported years
    /// instead of overflowing.
    public func adding(days: Int) throws(ValidationError) -> CivilDate {
        let (target, overflow) = dayNumber.addingReportingOverflow(days)
        guard !overflow, let date = CivilDate(dayNumber: target) else {
            throw ValidationError(
                field: "days", code: "date.out_of_range",
                zh: "从 \(self) 起加 \(days) 天超出了支持的日期范围（0001 至 9999 年），请使用更小的天数。",
                en: "Adding \(days) days to \(self) leaves the supported range (years 0001 to 9999); use a smaller number of days.")
        }
        return date
    }

    /// Whole days from `other` to `self` (positive when `self` is later).
    public func days(since other: CivilDate) -> Int {
        dayNumber - other.dayNumber
    }

    // MARK: Day numbers: days since 0001-01-01, which makes adding days and weekdays simple.

    var dayNumber: Int {
        Self.daysBefore(year: year) + Self.daysBefore(month: month, year: year) + day - 1
    }

    /// Days since 1970-01-01 (`ShanghaiTime.unixDay` of any instant on this Shanghai date).
    public var unixDay: Int { dayNumber - Self.unixEpochDayNumber }

    init?(dayNumber: Int) {
        guard Self.dayNumbers.contains(dayNumber) else { return nil }
        // A 400-year cycle has 146,097 days: estimate the year, then correct by at most one.
        var year = dayNumber * 400 / 146_097 + 1
        while Self.daysBefore(year: year) > dayNumber { year -= 1 }
        while Self.daysBefore(year: year + 1) <= dayNumber { year += 1 }
        var remaining = dayNumber - Self.daysBefore(year: year)
        var month = 1
        while remaining >= Self.daysIn(month: month, year: year) {
            remaining -= Self.daysIn(month: month, year: year)
            month += 1
        }
        self.year = year
        self.month = month
        self.day = remaining + 1
    }

    /// Day numbers of 0001-01-01 up to and including 9999-12-31.
    static let dayNumbers = 0..<daysBefore(year: supportedYears.upperBound + 1)
    /// Day number of 1970-01-01, the Unix epoch.
    static let unixEpochDayNumber = daysBefore(year: 1970)

    private static func daysBefore(year: Int) -> Int {
        let previous = year - 1
        return previous * 365 + previous / 4 - previous / 100 + previous / 400
    }

    private static func daysBefore(month: Int, year: Int) -> Int {
        (1..<month).reduce(0) { $0 + daysIn(month: $1, year: year) }
    }
}

extension CivilDate: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try CivilDate(parsing: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// ISO 8601 weekday numbers: Monday is 1, Sunday is 7.
public enum Weekday: Int, CaseIterable, Hashable, Sendable, Codable {
    case monday = 1, tuesday, wednesday, thursday, friday, saturday, sunday

    public var zh: String {
        switch self {
        case .monday: "星期一"
        case .tuesday: "星期二"
        case .wednesday: "星期三"
        case .thursday: "星期四"
        case .friday: "星期五"
        case .saturday: "星期六"
        case .sunday: "星期日"
        }
    }

    public var en: String {
        switch self {
        case .monday: "Monday"
        case .tuesday: "Tuesday"
        case .wednesday: "Wednesday"
        case .thursday: "Thursday"
        case .friday: "Friday"
        case .saturday: "Saturday"
        case .sunday: "Sunday"
        }
    }
}

/// A wall-clock time of day to the minute ("HH:mm"), such as the start of a clinic slot.
public struct LocalTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Minutes since midnight, 0...1439.
    public let minuteOfDay: Int

    public var hour: Int { minuteOfDay / 60 }
    public var minute: Int { minuteOfDay % 60 }

    public init(minuteOfDay: Int, field: String = "time") throws(ValidationError) {
        guard (0..<24 * 60).contains(minuteOfDay) else {
            throw ValidationError(
                field: field, code: "time.out_of_range",
                zh: "时间超出一天的范围（00:00 至 23:59），请重新填写。",
                en: "The time is outside one day (00:00 to 23:59); please enter it again.")
        }
        self.minuteOfDay = minuteOfDay
    }

    public init(hour: Int, minute: Int, field: String = "time") throws(ValidationError) {
        guard (0...23).contains(hour), (0...59).contains(minute) else {
            throw ValidationError(
                field: field, code: "time.out_of_range",
                zh: "时间 \(hour) 时 \(minute) 分不存在，小时应为 0 至 23，分钟应为 0 至 59。",
                en: "The time \(hour):\(minute) does not exist; hours run from 0 to 23 and minutes from 0 to 59.")
        }
        self.minuteOfDay = hour * 60 + minute
    }

    /// Parses exactly "HH:mm" (24-hour clock, zero-padded).
    public init(parsing text: String, field: String = "time") throws(ValidationError) {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count == 5, scalars[2] == ":",
              let hour = InputText.smallNumber(scalars[0..<2]),
              let minute = InputText.smallNumber(scalars[3..<5])
        else {
            throw ValidationError(
                field: field, code: "time.format",
                zh: "时间格式不正确，请按 24 小时制“时:分”填写，例如 08:00 或 13:30。",
                en: "The time is not in the expected format; please write it as HH:mm on a 24-hour clock, for example 08:00 or 13:30.")
        }
        try self.init(hour: hour, minute: minute, field: field)
    }

    public static func < (lhs: LocalTime, rhs: LocalTime) -> Bool {
        lhs.minuteOfDay < rhs.minuteOfDay
    }

    /// "HH:mm".
    public var description: String {
        "\(InputText.padded(hour, width: 2)):\(InputText.padded(minute, width: 2))"
    }
}

extension LocalTime: Codable {
    public init(from decoder: any Decoder) throws {
        self = try decodeValidatedString(decoder) { text throws(ValidationError) in try LocalTime(parsing: text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Asia/Shanghai has kept UTC+08:00 all year since 1991, so ClinicMesh converts instants with a
/// fixed offset instead of consulting the system's time-zone database (which may be missing or
/// differ between nodes).
public enum ShanghaiTime {
    public static let utcOffsetSeconds = 8 * 3600

    /// The Shanghai calendar date and time of day (to the minute) of an instant.
    public static func civil(of instant: Date) throws(ValidationError) -> (date: CivilDate, time: LocalTime) {
        let localSeconds = instant.timeIntervalSince1970.rounded(.down) + Double(utcOffsetSeconds)
        let unixDays = (localSeconds / 86_400).rounded(.down)
        // Check the range while still in floating point: converting a far-off or non-finite
        // value to Int would trap.
        let firstUnixDay = Double(CivilDate.dayNumbers.lowerBound - CivilDate.unixEpochDayNumber)
        let endUnixDay = Double(CivilDate.dayNumbers.upperBound - CivilDate.unixEpochDayNumber)
        guard unixDays.isFinite, unixDays >= firstUnixDay, unixDays < endUnixDay,
              let date = CivilDate(dayNumber: Int(unixDays) + CivilDate.unixEpochDayNumber)
        else {
            throw ValidationError(
                field: "instant", code: "date.out_of_range",
                zh: "时间点超出了支持的日期范围（0001 至 9999 年），请检查系统时钟或输入。",
                en: "The instant is outside the supported dates (years 0001 to 9999); check the system clock or the input.")
        }
        let secondOfDay = Int(localSeconds - unixDays * 86_400)
        let time = try LocalTime(minuteOfDay: min(secondOfDay / 60, 24 * 60 - 1), field: "instant")
        return (date, time)
    }

    /// The Shanghai date of a wall time in ms since 1970, as days since 1970-01-01 (the day
    /// numbers quotas and strikes count in). Whole numbers, so every wall time has a day (the
    /// date `civil(of:)` gives, within its years), and one before 1970 rounds to the earlier day.
    public static func unixDay(wallMs: Int64) -> Int {
        let dayMs: Int64 = 86_400_000
        let ms = wallMs + Int64(utcOffsetSeconds) * 1000
        return Int(ms >= 0 ? ms / dayMs : -((-ms + dayMs - 1) / dayMs))
    }

    /// The instant at which Shanghai clocks show `time` on `date`.
    public static func instant(date: CivilDate, time: LocalTime) -> Date {
        let days = date.dayNumber - CivilDate.unixEpochDayNumber
        let seconds = days * 86_400 + time.minuteOfDay * 60 - utcOffsetSeconds
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}


/// Decodes a single string and runs it through a validating initialiser, reporting a refusal as
/// a `DecodingError` that carries the bilingual message.
func decodeValidatedString<Value>(
    _ decoder: any Decoder, _ make: (String) throws(ValidationError) -> Value
) throws -> Value {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    do throws(ValidationError) {
        return try make(text)
    } catch {
        throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
    }
}

extension CivilDate {
    /// Whole years on `date` of a birth date (both "YYYY-MM-DD"), if both parse.
    public static func age(birthDate: String?, on date: String) -> Int? {
        guard let birthDate, let born = try? CivilDate(parsing: birthDate), let day = try? CivilDate(parsing: date) else { return nil }
        var years = day.year - born.year
        if (day.month, day.day) < (born.month, born.day) { years -= 1 }
        return years >= 0 ? years : nil
    }
}
