//! Timestamps as the emulated servers write them (RFC 3339, UTC, whole seconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A point in time as RFC 3339 UTC (before the epoch: the epoch).
pub fn rfc3339_at(t: SystemTime) -> String {
    rfc3339(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

/// Now, in nanoseconds since the epoch (the wall clock).
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i128
}

/// Nanoseconds since the epoch as RFC 3339 UTC with Go's `RFC3339Nano` fraction: `pad` keeps all
/// nine digits (Docker's `--timestamps`), otherwise trailing zeros (and a zero fraction) go, as
/// Go's `time.RFC3339Nano` writes them (slog's JSON `time`).
pub fn rfc3339_nano(ns: i128, pad: bool) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000);
    let whole = rfc3339(secs);
    let digits = format!("{frac:09}");
    let digits = if pad {
        digits.as_str()
    } else {
        digits.trim_end_matches('0')
    };
    if digits.is_empty() {
        whole
    } else {
        format!("{}.{digits}Z", whole.trim_end_matches('Z'))
    }
}

/// Go's `time.Stamp` (`Jan _2 15:04:05`, the day space-padded) of a UTC instant in nanoseconds.
pub fn go_stamp(ns: i128) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let (_, m, d) = civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    format!(
        "{} {d:>2} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// RFC 3339 (`Z` or `±hh:mm`, optional fraction) to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    parse_rfc3339_ns(s).map(|ns| ns.div_euclid(1_000_000_000) as i64)
}

/// RFC 3339 (`Z` or `±hh:mm`, optional fraction of up to nine digits) to Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.len() < 20 {
        return None;
    }
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if &s[4..5] != "-" || &s[7..8] != "-" || !matches!(&s[10..11], "T" | "t" | " ") {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0i128;
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
        let digits = &r[..r.len() - rest.len()];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        frac_ns = format!("{digits:0<9}").parse().ok()?;
    }
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(0..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let oh = rest.get(1..3)?.parse::<i64>().ok()?;
        let om = rest.get(4..6)?.parse::<i64>().ok()?;
        sign * (oh * 3600 + om * 60)
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as i128 * 1_000_000_000 + frac_ns)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_dates() {
        let t = 1_787_000_000;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_at(UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
            "2026-05-28T20:26:40Z"
        );
        assert_eq!(
            parse_rfc3339("2026-08-18T12:00:00+02:00"),
            parse_rfc3339("2026-08-18T10:00:00Z")
        );
    }

    #[test]
    fn nanoseconds_and_go_stamp() {
        let ns = 1_787_220_672_345_678_900i128;
        assert_eq!(rfc3339_nano(ns, true), "2026-08-20T10:11:12.345678900Z");
        assert_eq!(rfc3339_nano(ns, false), "2026-08-20T10:11:12.3456789Z");
        assert_eq!(
            rfc3339_nano(1_787_220_672_000_000_000, false),
            "2026-08-20T10:11:12Z"
        );
        assert_eq!(parse_rfc3339_ns("2026-08-20T10:11:12.3456789Z"), Some(ns));
        assert_eq!(
            parse_rfc3339_ns("2026-08-20T12:11:12.5+02:00"),
            Some(1_787_220_672_500_000_000)
        );
        assert_eq!(parse_rfc3339_ns("2026-08-20T10:11:12.Z"), None);
        assert_eq!(go_stamp(ns), "Aug 20 10:11:12");
        assert_eq!(go_stamp(1_785_665_472_000_000_000), "Aug  2 10:11:12");
    }
}
