import Consensus
import Testing

@Suite struct QuotaPolicyTests {
    let policy = QuotaPolicy.standard
    func tag(_ day: Int, _ dept: String = "neike") -> QuotaTag { QuotaTag(visitDay: day, department: dept) }

    @Test func onePerDepartmentPerVisitDate() {
        #expect(policy.broken(by: tag(10), held: []) == nil)
        #expect(policy.broken(by: tag(10), held: [tag(10)])?.perDepartment == true)
        #expect(policy.broken(by: tag(10, "waike"), held: [tag(10)]) == nil)
        #expect(policy.broken(by: tag(11), held: [tag(10)]) == nil)
    }

    @Test func twoPerVisitDate() {
        #expect(policy.broken(by: tag(10, "erke"), held: [tag(10), tag(10, "waike")])?.windowDays == 1)
    }

    @Test func threeInAnySevenConsecutiveVisitDates() {
        let held = [tag(10), tag(12), tag(16)]
        // Day 17: the window 11...17 holds 12 and 16, so a third fits; day 13: 10...16 holds three.
        #expect(policy.broken(by: tag(17), held: held) == nil)
        #expect(policy.broken(by: tag(13), held: held)?.windowDays == 7)
        // The edge: 7 days apart is outside one window.
        #expect(policy.broken(by: tag(17), held: [tag(10), tag(11), tag(12)]) == nil)
        #expect(policy.broken(by: tag(16), held: [tag(10), tag(11), tag(12)])?.windowDays == 7)
    }

    @Test func fiveInAnyNinety() {
        let held = [tag(0), tag(20), tag(40), tag(60), tag(80)]
        #expect(policy.broken(by: tag(89), held: held)?.windowDays == 90)
        // Day 90 is just past the window 0...89: every window holding it holds four others at most.
        #expect(policy.broken(by: tag(90), held: held) == nil)
        #expect(policy.broken(by: tag(170), held: held) == nil)
    }

    @Test func holdsAgreesWithBroken() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            var held: [QuotaTag] = []
            for _ in 0..<12 {
                let t = tag(Int(rng.below(120)), ["neike", "waike"][Int(rng.below(2))])
                if policy.broken(by: t, held: held) == nil { held.append(t) }
            }
            #expect(policy.holds(for: held))
        }
        #expect(!policy.holds(for: [tag(1), tag(1)]))
        #expect(!policy.holds(for: [tag(1), tag(2), tag(3), tag(7, "waike")]))
    }
}
