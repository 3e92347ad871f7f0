//! Timestamps as the emulated servers write them (RFC 3339, UTC, whole seconds).

pub use httpx::time::now_ns;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    now_ns().div_euclid(1_000_000_000) as i64
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    rfc3339_nano(secs as i128 * 1_000_000_000, false)
}

/// A point in time as RFC 3339 UTC (before the epoch: the epoch).
pub fn rfc3339_at(t: SystemTime) -> String {
    rfc3339(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

/// Nanoseconds since the epoch as RFC 3339 UTC with Go's `RFC3339Nano` fraction: `pad` keeps all
/// nine digits (Docker's `--timestamps`), otherwise trailing zeros (and a zero fraction) go, as
/// Go's `time.RFC3339Nano` writes them (slog's JSON `time`).
pub fn rfc3339_nano(ns: i128, pad: bool) -> String {
    httpx::time::format_rfc3339_ns(ns, pad)
}

/// Go's `time.Stamp` (`Jan _2 15:04:05`, the day space-padded) of a UTC instant in nanoseconds.
pub fn go_stamp(ns: i128) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let (_, m, d) = httpx::time::civil_from_days(secs.div_euclid(86400));
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
    httpx::time::parse_rfc3339_ns(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
