//! Points in time as nanoseconds since the Unix epoch (Loki's and Docker's precision), the
//! `since`/`until` option forms, and the Go durations `docker logs --since` takes.

/// Nanoseconds since the Unix epoch.
pub type Nanos = i128;

pub const SECOND: Nanos = 1_000_000_000;

pub fn now() -> Nanos {
    httpx::time::now_ns()
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

/// RFC 3339 with an optional fraction of up to 9 digits and `Z` or `±hh:mm`.
pub fn parse_rfc3339(raw: &str) -> Option<Nanos> {
    httpx::time::parse_rfc3339_ns(raw)
}

/// RFC 3339 in UTC with nanoseconds, trailing zeros of the fraction dropped (Go's RFC3339Nano).
pub fn format_rfc3339(ns: Nanos) -> String {
    httpx::time::format_rfc3339_ns(ns, false)
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
