//! Points in time as nanoseconds since the Unix epoch (Loki's and Docker's precision), the
//! `since`/`until` option forms, and the Go durations `docker logs --since` takes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type Nanos = i128;

pub const SECOND: Nanos = 1_000_000_000;

pub fn now() -> Nanos {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as Nanos,
        Err(_) => 0,
    }
}

/// A duration with the units `s m h d w` (Loki's `since` takes `d` and `w`; Docker does not):
/// `90s`, `15m`, `1h30m`, `7d`, `2w`. Whole numbers only. In seconds.
pub fn parse_duration(raw: &str) -> Option<u64> {
    pocketid::duration::parse(raw, pocketid::duration::UNITS_TO_WEEKS)
}

/// Seconds as a Go duration `docker logs` accepts (it has no `d`): `168h`, `90m`, `45s`.
pub fn go_duration(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 with an optional fraction of up to 9 digits and `Z` or `±hh:mm`.
pub fn parse_rfc3339(raw: &str) -> Option<Nanos> {
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
    let mut frac: Nanos = 0;
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
    Some(secs as Nanos * SECOND + frac)
}

/// RFC 3339 in UTC with nanoseconds, trailing zeros of the fraction dropped (Go's RFC3339Nano).
pub fn format_rfc3339(ns: Nanos) -> String {
    let secs = ns.div_euclid(SECOND) as i64;
    let frac = ns.rem_euclid(SECOND);
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// A `since`/`until` value: a duration back from now, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    Ago(u64),
    At(Nanos),
}

impl TimeSpec {
    pub fn parse(raw: &str) -> Option<TimeSpec> {
        parse_duration(raw)
            .map(TimeSpec::Ago)
            .or_else(|| parse_rfc3339(raw).map(TimeSpec::At))
    }
    pub fn resolve(self, now: Nanos) -> Nanos {
        match self {
            TimeSpec::Ago(secs) => now - secs as Nanos * SECOND,
            TimeSpec::At(t) => t,
        }
    }
    /// The value for `docker logs --since/--until`: a Go duration, or RFC 3339 in UTC.
    pub fn docker_arg(self) -> String {
        match self {
            TimeSpec::Ago(secs) => go_duration(secs),
            TimeSpec::At(t) => format_rfc3339(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339("2026-08-20T10:11:12.345678901Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-08-20T10:11:12.345678901Z");
        assert_eq!(
            parse_rfc3339("2026-08-20T12:11:12+02:00"),
            parse_rfc3339("2026-08-20T10:11:12Z")
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        for bad in [
            "2026-08-20",
            "2026-08-20T10:11:12",
            "x",
            "2026-13-20T10:11:12Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_and_docker_forms() {
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("7d"), Some(7 * 86400));
        assert_eq!(parse_duration("2w"), Some(14 * 86400));
        for bad in ["", "h", "1", "1y", "-1h", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(go_duration(7 * 86400), "168h");
        assert_eq!(go_duration(5400), "90m");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(TimeSpec::parse("1d").unwrap().docker_arg(), "24h");
        assert_eq!(
            TimeSpec::parse("2026-08-20T12:00:00+02:00")
                .unwrap()
                .docker_arg(),
            "2026-08-20T10:00:00Z"
        );
    }
}
