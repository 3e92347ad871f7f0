//! Durations as the modules' options take them: groups of a whole number and a unit letter
//! (`90s`, `15m`, `1h30m`, `7d`), in seconds. `pocketid_login_code`'s `ttl` and
//! `pocketid_logs`' `since`/`until` differ only in their units.

/// Seconds, minutes, hours and days.
pub const UNITS_TO_DAYS: &[(char, u64)] = &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400)];
/// [`UNITS_TO_DAYS`] and weeks.
pub const UNITS_TO_WEEKS: &[(char, u64)] = &[
    ('s', 1),
    ('m', 60),
    ('h', 3600),
    ('d', 86400),
    ('w', 7 * 86400),
];

/// The seconds of `raw` (surrounding spaces ignored), or `None` when it is not one or more
/// `<number><unit>` groups with units from `units`, or overflows.
pub fn parse(raw: &str, units: &[(char, u64)]) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut groups = 0;
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = units.iter().find(|(u, _)| *u == c)?.1;
        let n: u64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
        groups += 1;
    }
    (num.is_empty() && groups > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_number_and_unit() {
        assert_eq!(parse("15m", UNITS_TO_DAYS), Some(900));
        assert_eq!(parse(" 1h30m ", UNITS_TO_DAYS), Some(5400));
        assert_eq!(parse("7d", UNITS_TO_DAYS), Some(7 * 86400));
        assert_eq!(parse("2w", UNITS_TO_DAYS), None);
        assert_eq!(parse("2w", UNITS_TO_WEEKS), Some(14 * 86400));
        for bad in [
            "",
            "h",
            "1",
            "1h5",
            "1y",
            "-1h",
            "1.5h",
            "1 h",
            "99999999999999999999s",
        ] {
            assert_eq!(parse(bad, UNITS_TO_WEEKS), None, "{bad}");
        }
        assert_eq!(
            parse(&format!("{}s", u64::MAX), UNITS_TO_DAYS),
            Some(u64::MAX)
        );
        assert_eq!(parse(&format!("{}m", u64::MAX), UNITS_TO_DAYS), None);
    }
}
