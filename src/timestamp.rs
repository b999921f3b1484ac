//! Time: RFC 3339 timestamps (UTC, whole seconds) written straight into a document, the
//! date of a day rendered once for all the timestamps that fall on it; and "now", read
//! from the clock in one place.

use crate::json::Out;

/// Length of a written timestamp, quotes included.
pub(crate) const TIMESTAMP_LEN: usize = 22;

/// Writes `"YYYY-MM-DDTHH:MM:SSZ"` for Unix seconds `t` (UTC, RFC 3339).
pub fn write_timestamp(out: &mut Vec<u8>, t: u64) {
    let mut out = Out::new(out, TIMESTAMP_LEN);
    Dates::default().write(&mut out, t);
    out.finish();
}

/// Writes RFC 3339 timestamps straight into the output. A record's timestamps nearly
/// always fall on one day, whose date is rendered once.
pub(crate) struct Dates {
    day: u64,
    /// `YYYY-MM-DD` of `day`.
    date: [u8; 10],
}

impl Default for Dates {
    fn default() -> Dates {
        Dates {
            day: u64::MAX,
            date: *b"0000-00-00",
        }
    }
}

impl Dates {
    /// Appends `"YYYY-MM-DDTHH:MM:SSZ"` (quoted) for Unix seconds `t`.
    pub(crate) fn write(&mut self, out: &mut Out<'_>, t: u64) {
        let day = t / 86_400;
        if day != self.day {
            let (y, m, d) = civil_from_days(day as i64);
            self.day = day;
            let y = y as u32;
            self.date[0..2].copy_from_slice(&digit_pair(y / 100));
            self.date[2..4].copy_from_slice(&digit_pair(y % 100));
            self.date[5..7].copy_from_slice(&digit_pair(m));
            self.date[8..10].copy_from_slice(&digit_pair(d));
        }
        let secs = (t % 86_400) as u32;
        let buf = out.slot(TIMESTAMP_LEN);
        buf.copy_from_slice(b"\"0000-00-00T00:00:00Z\"");
        buf[1..11].copy_from_slice(&self.date);
        buf[12..14].copy_from_slice(&digit_pair(secs / 3600));
        buf[15..17].copy_from_slice(&digit_pair(secs / 60 % 60));
        buf[18..20].copy_from_slice(&digit_pair(secs % 60));
    }
}

/// Milliseconds since the Unix epoch, now (0 for a clock before it).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// RFC 3339 text of Unix seconds, for callers outside document writing.
pub fn format_timestamp(t: u64) -> String {
    let mut v = Vec::with_capacity(TIMESTAMP_LEN);
    write_timestamp(&mut v, t);
    String::from_utf8_lossy(&v[1..v.len() - 1]).into_owned()
}

/// The two decimal digits of `v` (below 100).
#[inline(always)]
fn digit_pair(v: u32) -> [u8; 2] {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}
/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1418530070), "2014-12-14T04:07:50Z");
        assert_eq!(format_timestamp(164000066), "1975-03-14T03:34:26Z");
        assert_eq!(format_timestamp(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_timestamp(crate::flowlog::record::MAX_TIMESTAMP),
            "9999-12-31T23:59:59Z"
        );
        // One day's date is reused, the next day's computed.
        let mut dates = Dates::default();
        let mut buf = Vec::new();
        let mut out = Out::new(&mut buf, 0);
        for t in [1418530010, 1418530070, 86_399, 86_400, 1418530070] {
            dates.write(&mut out, t);
        }
        out.finish();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#""2014-12-14T04:06:50Z""2014-12-14T04:07:50Z""1970-01-01T23:59:59Z""1970-01-02T00:00:00Z""2014-12-14T04:07:50Z""#
        );
    }
}
