#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Calendar days and hours by arithmetic on seconds since 1970: no calendar, no locale, no clock, so the same
/// instant always lands in the same bucket. Days are UTC unless an offset is given (the digest's local day).
public enum LedgerCalendar {
    public static let secondsPerDay = 86_400.0
    public static let secondsPerHour = 3_600.0

    /// Whole days since 1970-01-01 of `date` shifted by `offset` seconds (a local day for a UTC offset).
    public static func dayNumber(_ date: Date, offset: Int = 0) -> Int {
        Int(((date.timeIntervalSince1970 + Double(offset)) / secondsPerDay).rounded(.down))
    }

    /// Whole hours since 1970-01-01T00:00Z.
    public static func hourNumber(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 / secondsPerHour).rounded(.down))
    }

    /// `yyyy-MM-dd` of the day `dayNumber` days after 1970-01-01.
    public static func dayKey(dayNumber: Int) -> String {
        let (year, month, day) = CivilCalendar.date(days: dayNumber)
        return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
    }

    /// `yyyy-MM-dd` of the day holding `date` (UTC, or local with `offset`).
    public static func dayKey(_ date: Date, offset: Int = 0) -> String {
        dayKey(dayNumber: dayNumber(date, offset: offset))
    }

    /// The day number of a `yyyy-MM-dd` key; nil for anything else.
    public static func dayNumber(key: String) -> Int? {
        let parts = key.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        let number = CivilCalendar.days(year: year, month: month, day: day)
        return dayKey(dayNumber: number) == key ? number : nil
    }

    /// The first instant of day `dayNumber` (UTC).
    public static func startOfDay(_ dayNumber: Int) -> Date {
        Date(timeIntervalSince1970: Double(dayNumber) * secondsPerDay)
    }

    /// Splits `[from, to)` at every multiple of `unit` seconds: the bucket number and the seconds spent in it.
    public static func split(from: Date, to: Date, unit: Double) -> [(bucket: Int, seconds: Double)] {
        var parts: [(Int, Double)] = []
        var start = from.timeIntervalSince1970
        let end = to.timeIntervalSince1970
        while start < end {
            let bucket = Int((start / unit).rounded(.down))
            let boundary = min(end, Double(bucket + 1) * unit)
            parts.append((bucket, boundary - start))
            start = boundary
        }
        return parts
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}

/// When the daily `digest` is due: once per local day, at the first cycle at or after `DIGEST_HOUR` local time.
public enum DigestSchedule {
    /// The local day (`yyyy-MM-dd`) whose digest is due at `now`, or nil when none is.
    ///
    /// - Parameters:
    ///   - hour: `DIGEST_HOUR`, 0–23, local time.
    ///   - utcOffsetSeconds: the local zone's offset from UTC at `now` (east positive), so a DST change moves the hour
    ///     with the wall clock.
    ///   - lastDigestDay: the local day of the last digest sent (kept in the ledger, so a restart does not resend);
    ///     a day at or after today's means today's was sent.
    public static func dueDay(now: Date, hour: Int, utcOffsetSeconds: Int, lastDigestDay: String?) -> String? {
        let local = now.timeIntervalSince1970 + Double(utcOffsetSeconds)
        let day = Int((local / LedgerCalendar.secondsPerDay).rounded(.down))
        let secondsIntoDay = local - Double(day) * LedgerCalendar.secondsPerDay
        guard secondsIntoDay >= Double(hour) * LedgerCalendar.secondsPerHour else { return nil }
        let key = LedgerCalendar.dayKey(dayNumber: day)
        if let last = lastDigestDay, last >= key { return nil }
        return key
    }
}
