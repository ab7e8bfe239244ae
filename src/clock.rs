//! Wall-clock time for records and its one text form (RFC 3339 UTC with
//! milliseconds). Records store milliseconds since the epoch; only the edges
//! format them.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-24T08:39:01.123Z`.
pub fn format_ms(ms: i64) -> String {
    Rfc3339(ms).to_string()
}

/// Milliseconds since the epoch, displayed as RFC 3339 UTC with
/// milliseconds. Serializes without an intermediate `String` (a batch
/// answer writes one per item), and with fixed fields rather than a
/// format string that would be parsed each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub i64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second(),
            self.0.rem_euclid(1000)
        )
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A query instant: RFC 3339 or a bare date (that day 00:00Z).
pub fn parse_instant_ms(text: &str) -> Option<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_ms(1_795_509_541_123), "2026-11-24T08:39:01.123Z");
        assert_eq!(parse_instant_ms("2026-11-24T08:39:01.123Z"), Some(1_795_509_541_123));
        assert_eq!(parse_instant_ms("2026-11-24"), Some(1_795_478_400_000));
        assert_eq!(parse_instant_ms("2026-13-01"), None);
        assert_eq!(parse_instant_ms("yesterday"), None);
    }
}
