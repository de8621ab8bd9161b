import CostOptimizerCore
import Testing

@Suite("Civil calendar: days since 1970 by arithmetic")
struct CivilCalendarTests {
    @Test("known dates: the epoch, leap days, century rules, before 1970")
    func knownDates() {
        #expect(CivilCalendar.days(year: 1970, month: 1, day: 1) == 0)
        #expect(CivilCalendar.days(year: 1969, month: 12, day: 31) == -1)
        #expect(CivilCalendar.days(year: 2000, month: 3, day: 1) == 11_017)
        #expect(CivilCalendar.days(year: 2026, month: 11, day: 24) == 20_781)  // date -u -d 2026-11-24 +%s, over 86400
        #expect(CivilCalendar.date(days: 11_016) == (2000, 2, 29))
        #expect(CivilCalendar.isValid(year: 2000, month: 2, day: 29))
        #expect(CivilCalendar.isValid(year: 2028, month: 2, day: 29))
        #expect(!CivilCalendar.isValid(year: 1900, month: 2, day: 29))
        #expect(!CivilCalendar.isValid(year: 2027, month: 2, day: 29))
        #expect(!CivilCalendar.isValid(year: 2027, month: 4, day: 31))
        #expect(!CivilCalendar.isValid(year: 2027, month: 13, day: 1))
        #expect(!CivilCalendar.isValid(year: 2027, month: 0, day: 1))
        #expect(!CivilCalendar.isValid(year: 2027, month: 1, day: 0))
    }

    @Test("every day from 1600 to 2400 goes to a date and back, one day after the other")
    func roundTrip() {
        let first = CivilCalendar.days(year: 1600, month: 1, day: 1)
        let last = CivilCalendar.days(year: 2400, month: 12, day: 31)
        var previous = CivilCalendar.date(days: first - 1)
        for day in first...last {
            let date = CivilCalendar.date(days: day)
            #expect(CivilCalendar.isValid(year: date.year, month: date.month, day: date.day))
            #expect(CivilCalendar.days(year: date.year, month: date.month, day: date.day) == day)
            let next = date.day == 1
                ? (date.month == 1 ? previous.year + 1 == date.year && previous.month == 12 : previous.month + 1 == date.month)
                    && previous.day == CivilCalendar.daysIn(month: previous.month, year: previous.year)
                : previous.year == date.year && previous.month == date.month && previous.day + 1 == date.day
            #expect(next, "\(previous) then \(date)")
            previous = date
        }
    }
}
