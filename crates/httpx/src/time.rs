//! RFC 3339 timestamps as the HTTP APIs the project talks to write them (Vault, PocketID, Forgejo,
//! Loki), to and from nanoseconds since the Unix epoch, in UTC. One implementation for the modules
//! and the lab's emulators, with the one reading of the wall clock they share.

/// Now, in nanoseconds since the epoch (the wall clock; a clock set before the epoch reads 0).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// RFC 3339 with an optional fraction of up to nine digits and `Z` or `±hh:mm` (a space or `t`
/// also separates date and time) to nanoseconds since the epoch.
pub fn parse_rfc3339_ns(raw: &str) -> Option<i128> {
    let s = raw.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |a: usize, z: usize| -> Option<i64> {
        let t = s.get(a..z)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac: i128 = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        frac = format!("{digits:0<9}").parse().ok()?;
        rest = &r[digits.len()..];
    }
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(0..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let ob = rest.as_bytes();
        if ob.len() != 6 || ob[3] != b':' {
            return None;
        }
        let oh: i64 = rest.get(1..3)?.parse().ok()?;
        let om: i64 = rest.get(4..6)?.parse().ok()?;
        sign * (oh * 3600 + om * 60)
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as i128 * 1_000_000_000 + frac)
}

/// Nanoseconds since the epoch as RFC 3339 UTC with Go's `RFC3339Nano` fraction: `pad` keeps all
/// nine digits (Docker's `--timestamps`); otherwise trailing zeros, and a zero fraction, go.
pub fn format_rfc3339_ns(ns: i128, pad: bool) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    let digits = format!("{frac:09}");
    let digits = if pad {
        digits.as_str()
    } else {
        digits.trim_end_matches('0')
    };
    if !digits.is_empty() {
        out.push('.');
        out.push_str(digits);
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date `(year, month, day)` of a day number (days since 1970-01-01);
/// Howard Hinnant's civil calendar algorithm.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

/// Days since 1970-01-01 of a proleptic Gregorian date.
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
    fn known_instants_both_ways() {
        let ns = 1_787_220_672_345_678_901i128;
        assert_eq!(
            format_rfc3339_ns(ns, false),
            "2026-08-20T10:11:12.345678901Z"
        );
        assert_eq!(parse_rfc3339_ns("2026-08-20T10:11:12.345678901Z"), Some(ns));
        assert_eq!(
            format_rfc3339_ns(1_787_220_672_000_000_000, true),
            "2026-08-20T10:11:12.000000000Z"
        );
        assert_eq!(
            format_rfc3339_ns(1_787_220_672_500_000_000, false),
            "2026-08-20T10:11:12.5Z"
        );
        assert_eq!(format_rfc3339_ns(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339_ns("2026-08-20T12:11:12+02:00"),
            Some(1_787_220_672_000_000_000)
        );
        assert_eq!(
            format_rfc3339_ns(-1_000_000_000, false),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }

    #[test]
    fn now_is_after_the_time_of_writing_and_round_trips() {
        let now = now_ns();
        assert!(now > 1_577_836_800 * 1_000_000_000, "{now}"); // after 2020-01-01
        assert_eq!(parse_rfc3339_ns(&format_rfc3339_ns(now, true)), Some(now));
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "2026-08-20",
            "2026-08-20T10:11:12",
            "2026-13-20T10:11:12Z",
            "2026-08-20T10:11:12.Z",
            "2026-08-20T10:11:12.1234567890Z",
            "2026-08-20T10:11:12+0200",
            "2026/08/20T10:11:12Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }
}
