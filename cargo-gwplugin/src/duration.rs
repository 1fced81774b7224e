//! Durations as gwhost's config writes them (KrakenD's, Go's `time.ParseDuration`): read
//! by gwhost for its config and flags, and by `cargo gwplugin test` for the flags it passes
//! on to gwhost, so that a typo is a usage error here rather than gwhost's, later.

use std::time::Duration;

/// Parses a duration as KrakenD (Go's `time.ParseDuration`) does: numbers, each with a
/// unit, added up: `500ms`, `1.5s`, `1m30s`, `2h45m`; `0` alone is zero. No sign.
pub fn parse_duration(text: &str) -> Option<Duration> {
    match text {
        "" => return None,
        "0" => return Some(Duration::ZERO),
        _ => {}
    }
    let mut rest = text;
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, tail) = rest.split_at(split);
        if number.is_empty() || number == "." {
            return None;
        }
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        seconds += match unit {
            "ns" => number / 1e9,
            "us" | "µs" | "μs" => number / 1e6,
            "ms" => number / 1e3,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        rest = next;
    }
    // Too long for a `Duration` is still a duration: the caller's "at most" says so.
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// A sample request's `--timeout`: a duration above 0 (`gwhost test-plugin`, `cargo gwplugin
/// test`).
pub fn sample_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        None => Err(format!(
            "`{text}` is not a duration: write a number and a unit (`ms`, `s`, `m`, `h`), e.g. `10s`"
        )),
        Some(d) if d.is_zero() => Err(format!(
            "`{text}` would give every plugin up at once: write a duration above 0, e.g. `10s`"
        )),
        Some(d) => Ok(d),
    }
}
