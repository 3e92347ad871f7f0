//! Query parameters as Loki v3.7 reads them (contract loki-api §2): timestamps, `since`,
//! `limit`, `direction`, and the bounds a range query defaults to. Every `Err` is the 400 text.

use crate::emulator::time::{now_ns, parse_rfc3339_ns};

const SECOND: i128 = 1_000_000_000;

/// `parseTimestamp`: float seconds (rounded to milliseconds) when the value holds a `.`, an
/// integer as seconds with ≤10 characters or nanoseconds with more, else RFC 3339.
pub fn timestamp(v: &str) -> Result<i128, String> {
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            let secs = f.trunc();
            let ms = ((f - secs) * 1000.0).round() as i128;
            return Ok(secs as i128 * SECOND + ms * 1_000_000);
        }
    }
    match v.parse::<i64>() {
        Ok(n) if v.len() <= 10 => Ok(n as i128 * SECOND),
        Ok(n) => Ok(n as i128),
        Err(_) => parse_rfc3339_ns(v)
            .ok_or_else(|| format!("strconv.ParseInt: parsing {v:?}: invalid syntax")),
    }
}

/// Prometheus `model.ParseDuration`: units `y w d h m s ms`, largest first, e.g. `1h30m`, `7d`.
pub fn prom_duration(v: &str) -> Result<i128, String> {
    let bad = || format!("not a valid duration string: {v:?}");
    if v == "0" {
        return Ok(0);
    }
    const UNITS: [(&str, i128); 7] = [
        ("y", 365 * 86400 * SECOND),
        ("w", 7 * 86400 * SECOND),
        ("d", 86400 * SECOND),
        ("h", 3600 * SECOND),
        ("m", 60 * SECOND),
        ("s", SECOND),
        ("ms", 1_000_000),
    ];
    let (mut rest, mut total, mut next_unit) = (v, 0i128, 0usize);
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: i128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // `ms` before `m`, so a longest match; units must come in falling order, once each.
        let idx = (next_unit..UNITS.len())
            .filter(|&i| rest.starts_with(UNITS[i].0))
            .max_by_key(|&i| UNITS[i].0.len())
            .ok_or_else(bad)?;
        rest = &rest[UNITS[idx].0.len()..];
        total += n * UNITS[idx].1;
        next_unit = idx + 1;
    }
    Ok(total)
}

/// `[start, end)` of a range query (or a labels request): `end` defaults to now, `start` to
/// `end − since` (`since` 1h), or `now − since` when `end` lies in the future.
pub fn bounds(
    start: Option<&str>,
    end: Option<&str>,
    since: Option<&str>,
) -> Result<(i128, i128), String> {
    let now = now_ns();
    let end = match end.filter(|v| !v.is_empty()) {
        Some(v) => timestamp(v).map_err(|e| format!("could not parse 'end' parameter: {e}"))?,
        None => now,
    };
    let since = match since.filter(|v| !v.is_empty()) {
        Some(v) => {
            prom_duration(v).map_err(|e| format!("could not parse 'since' parameter: {e}"))?
        }
        None => 3600 * SECOND,
    };
    let start = match start.filter(|v| !v.is_empty()) {
        Some(v) => timestamp(v).map_err(|e| format!("could not parse 'start' parameter: {e}"))?,
        None => end.min(now) - since,
    };
    Ok((start, end))
}

/// `limit`: 100 by default, a positive integer otherwise.
pub fn limit(v: Option<&str>) -> Result<usize, String> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(100);
    };
    let n: i64 = v
        .parse()
        .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
    if n <= 0 {
        return Err("limit must be a positive value".into());
    }
    Ok(n as usize)
}

/// `direction`: `true` for backward (the default), case-insensitive.
pub fn backward(v: Option<&str>) -> Result<bool, String> {
    match v.map(str::to_ascii_uppercase).as_deref() {
        None | Some("") | Some("BACKWARD") => Ok(true),
        Some("FORWARD") => Ok(false),
        Some(_) => Err(format!("invalid direction '{}'", v.unwrap_or(""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats() {
        assert_eq!(timestamp("1787220672").unwrap(), 1_787_220_672 * SECOND);
        assert_eq!(
            timestamp("1787220672345678901").unwrap(),
            1_787_220_672_345_678_901
        );
        // A 13-digit millisecond value is nanoseconds: a date in 1970.
        assert_eq!(timestamp("1787220672345").unwrap(), 1_787_220_672_345);
        assert_eq!(
            timestamp("1787220672.3456").unwrap(),
            1_787_220_672 * SECOND + 346_000_000
        );
        assert_eq!(
            timestamp("2026-08-20T10:11:12.5Z").unwrap(),
            1_787_220_672 * SECOND + 500_000_000
        );
        assert!(timestamp("yesterday")
            .unwrap_err()
            .contains("invalid syntax"));
    }

    #[test]
    fn durations_limits_directions() {
        assert_eq!(prom_duration("1h30m").unwrap(), 5400 * SECOND);
        assert_eq!(prom_duration("7d").unwrap(), 7 * 86400 * SECOND);
        assert_eq!(prom_duration("250ms").unwrap(), 250_000_000);
        assert!(prom_duration("30m1h").is_err() && prom_duration("1.5h").is_err());
        assert_eq!(limit(None).unwrap(), 100);
        assert_eq!(
            limit(Some("0")).unwrap_err(),
            "limit must be a positive value"
        );
        assert!(backward(Some("Forward")).is_ok_and(|b| !b));
        assert_eq!(backward(Some("up")).unwrap_err(), "invalid direction 'up'");
    }
}
