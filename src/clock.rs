//! Wall-clock time for records and its one text form (RFC 3339 UTC with
//! milliseconds). Records store milliseconds since the epoch; only the edges
//! format them.

use chrono::{DateTime, NaiveDate, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-24T08:39:01.123Z`.
pub fn format_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "1970-01-01T00:00:00.000Z".to_string(),
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
