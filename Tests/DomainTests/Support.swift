import Domain
import Testing

/// The error a validating call threw, or nil if it succeeded; lets a test assert the exact
/// field and code. Any other kind of error fails the test.
func refusal<T>(_ body: () throws -> T) -> ValidationError? {
    do {
        _ = try body()
        return nil
    } catch let error as ValidationError {
        return error
    } catch {
        Issue.record("expected a ValidationError, got \(error)")
        return nil
    }
}

/// Test fixtures built from literals known to be valid.
enum Fixture {
    static let today = try! CivilDate(year: 2025, month: 3, day: 14)

    static func date(_ text: String) -> CivilDate {
        try! CivilDate(parsing: text)
    }

    static func time(_ text: String) -> LocalTime {
        try! LocalTime(parsing: text)
    }

    static func residentID(_ text: String) -> ResidentID {
        try! ResidentID(text, today: today)
    }

    static let cardiology = try! DepartmentID("cardiology")
    static let drWang = try! PractitionerID("dr-wang-li")
}
