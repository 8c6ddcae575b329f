import Foundation
import Testing
@testable import Domain

/// One row of a transition table: (from, to) as FHIR codes.
struct Pair: Hashable, CustomStringConvertible {
    let from: String
    let to: String
    var description: String { "\(from) -> \(to)" }
}

/// Every pair the code allows, over all statuses of the type.
func allowedPairs<Status: ClinicStatus>(_: Status.Type) -> Set<Pair> {
    var pairs = Set<Pair>()
    for from in Status.allCases {
        for to in Status.allCases where from.canTransition(to: to) {
            pairs.insert(Pair(from: from.rawValue, to: to.rawValue))
        }
    }
    return pairs
}

/// Reads STATUS-TRANSITIONS.md: the rows of the table under each "## <Resource>" heading.
func parseTransitionTables(_ markdown: String) -> [String: [Pair]] {
    var tables: [String: [Pair]] = [:]
    var section: String?
    for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("## ") {
            section = String(text.dropFirst(3)).trimmingCharacters(in: .whitespaces)
            continue
        }
        guard let section, text.hasPrefix("|") else { continue }
        let cells = text.split(separator: "|", omittingEmptySubsequences: false)
            .dropFirst().dropLast()
            .map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "") }
        guard cells.count == 4 else {
            tables[section, default: []].append(Pair(from: "malformed row", to: text))
            continue
        }
        let isHeader = cells[0] == "from"
        let isRule = cells.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0 == "-" || $0 == ":" } }
        if isHeader || isRule { continue }
        tables[section, default: []].append(Pair(from: cells[0], to: cells[1]))
    }
    return tables
}

@Suite struct StatusTransitionTests {
    // The flow as the issue states it, written independently of both the code and the file.
    static let expectedSlot: Set<Pair> = [
        Pair(from: "free", to: "busy-tentative"),
        Pair(from: "busy-tentative", to: "busy"),
        Pair(from: "busy-tentative", to: "free"),
        Pair(from: "busy", to: "free"),
        Pair(from: "free", to: "busy-unavailable"),
        Pair(from: "busy-unavailable", to: "free"),
        Pair(from: "free", to: "entered-in-error"),
        Pair(from: "busy-tentative", to: "entered-in-error"),
        Pair(from: "busy", to: "entered-in-error"),
        Pair(from: "busy-unavailable", to: "entered-in-error"),
    ]
    static let expectedAppointment: Set<Pair> = [
        Pair(from: "pending", to: "booked"),
        Pair(from: "pending", to: "cancelled"),
        Pair(from: "booked", to: "cancelled"),
        Pair(from: "booked", to: "arrived"),
        Pair(from: "arrived", to: "fulfilled"),
        Pair(from: "booked", to: "noshow"),
        Pair(from: "pending", to: "entered-in-error"),
        Pair(from: "booked", to: "entered-in-error"),
        Pair(from: "arrived", to: "entered-in-error"),
    ]

    static func markdownTables() throws -> [String: [Pair]] {
        let url = try #require(Bundle.module.url(forResource: "STATUS-TRANSITIONS", withExtension: "md"))
        return parseTransitionTables(try String(contentsOf: url, encoding: .utf8))
    }

    @Test func rawValuesAreTheFHIRCodes() {
        #expect(SlotStatus.allCases.map(\.rawValue) == ["busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"])
        #expect(AppointmentStatus.allCases.map(\.rawValue) == [
            "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
            "entered-in-error", "checked-in", "waitlist",
        ])
    }

    @Test func codeMatchesTheFlowInTheIssue() {
        #expect(allowedPairs(SlotStatus.self) == Self.expectedSlot)
        #expect(allowedPairs(AppointmentStatus.self) == Self.expectedAppointment)
    }

    @Test func markdownTableMatchesTheCodeForEveryPair() throws {
        let tables = try Self.markdownTables()
        #expect(Set(tables.keys) == ["Slot", "Appointment"])
        try checkFileAgainstCode(tables["Slot"] ?? [], SlotStatus.self)
        try checkFileAgainstCode(tables["Appointment"] ?? [], AppointmentStatus.self)
    }

    private func checkFileAgainstCode<Status: ClinicStatus>(_ rows: [Pair], _ type: Status.Type) throws {
        try #require(!rows.isEmpty, "no table for \(type)")
        let codes = Set(Status.allCases.map(\.rawValue))
        for row in rows {
            #expect(codes.contains(row.from) && codes.contains(row.to), "unknown status in row \(row)")
        }
        #expect(Set(rows).count == rows.count, "duplicate rows for \(type)")
        let fileRows = Set(rows)
        for from in Status.allCases {
            for to in Status.allCases {
                let pair = Pair(from: from.rawValue, to: to.rawValue)
                #expect(from.canTransition(to: to) == fileRows.contains(pair), "\(type) \(pair): code and STATUS-TRANSITIONS.md disagree")
            }
        }
    }

    @Test func everySlotPairIsAllowedOrRefused() {
        for from in SlotStatus.allCases {
            for to in SlotStatus.allCases {
                let pair = Pair(from: from.rawValue, to: to.rawValue)
                checkTransition(from: from, to: to, allowed: Self.expectedSlot.contains(pair), code: "slot.status.transition")
            }
        }
    }

    @Test func everyAppointmentPairIsAllowedOrRefused() {
        for from in AppointmentStatus.allCases {
            for to in AppointmentStatus.allCases {
                let pair = Pair(from: from.rawValue, to: to.rawValue)
                checkTransition(from: from, to: to, allowed: Self.expectedAppointment.contains(pair), code: "appointment.status.transition")
            }
        }
    }

    private func checkTransition<Status: ClinicStatus>(from: Status, to: Status, allowed: Bool, code: String) {
        let result: Result<Status, ValidationError> = Result { () throws(ValidationError) in try from.transition(to: to) }
        switch result {
        case .success(let next):
            #expect(allowed, "\(from.rawValue) -> \(to.rawValue) should be refused")
            #expect(next == to)
        case .failure(let error):
            #expect(!allowed, "\(from.rawValue) -> \(to.rawValue) should be allowed")
            #expect(error.code == code)
            #expect(error.field == "status")
            // The message names both statuses in both languages.
            #expect(error.zh.contains("(\(from.rawValue))") && error.zh.contains("(\(to.rawValue))"))
            #expect(error.en.contains("(\(from.rawValue))") && error.en.contains("(\(to.rawValue))"))
        }
    }

    @Test func unusedAndFinalStatusesHaveNoWayOut() {
        for status in AppointmentStatus.unused {
            #expect(status.isTerminal)
            #expect(AppointmentStatus.allCases.allSatisfy { !$0.canTransition(to: status) })
        }
        #expect(SlotStatus.enteredInError.isTerminal)
        #expect(!SlotStatus.free.isTerminal)
    }

    @Test func refusalListsWhatIsAllowed() throws {
        let error = try #require(refusal { try SlotStatus.free.transition(to: .busy) })
        #expect(error.zh.contains("busy-tentative") && error.zh.contains("busy-unavailable"))
        #expect(error.en.contains("may only change to"))
        let final = try #require(refusal { try AppointmentStatus.cancelled.transition(to: .booked) })
        #expect(final.zh.contains("终止状态"))
        #expect(final.en.contains("final status"))
    }

    @Test func bookingFlowOnRecords() throws {
        let schedule = try Schedule(practitionerID: Fixture.drWang, departmentID: Fixture.cardiology,
                                    date: Fixture.today, halfDay: .morning, capacity: 4, feeFen: 2000)
        var slot = try #require(schedule.slots().first)
        let key = try PatientKey(hex: String(repeating: "ab", count: 32))
        var appointment = try Appointment(id: UUID(), slotKey: slot.key, patientKey: key, created: Date(timeIntervalSince1970: 0))
        #expect(appointment.status == .pending)

        try slot.transition(to: .busyTentative)
        try slot.transition(to: .busy)
        try appointment.transition(to: .booked)
        try appointment.transition(to: .arrived)
        try appointment.transition(to: .fulfilled)
        #expect(slot.status == .busy)
        #expect(appointment.status == .fulfilled)

        // A refused change leaves the record as it was.
        #expect(refusal { try appointment.transition(to: .cancelled) }?.code == "appointment.status.transition")
        #expect(appointment.status == .fulfilled)
        #expect(refusal { try Appointment(id: UUID(), slotKey: slot.key, patientKey: key, status: .waitlist, created: Date()) }?.code == "appointment.status.unused")
    }
}
