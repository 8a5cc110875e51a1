//! Times as evidence needs them: the DVR clock offset (what the recorder displayed against a
//! reference clock) and civil date-times as DVRs show them (no zone: the offset is what counts).

use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use crate::error;

/// The DVR clock's error, as recorded at ingest. `offset_ms` = DVR time − actual time, so a
/// positive offset means the DVR runs ahead; corrected time = DVR time − offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    pub offset_ms: i64,
    /// The same, written ±HH:MM:SS.mmm.
    pub offset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dvr_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_time: Option<String>,
    /// What the actual time was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ClockOffset {
    /// From a pair of observations: the DVR showed `dvr` when the reference showed `actual`.
    pub fn from_observation(dvr: &str, actual: &str, reference: Option<String>) -> anyhow::Result<ClockOffset> {
        let d = parse_civil("--dvr-time", dvr)?;
        let a = parse_civil("--actual-time", actual)?;
        let offset_ms = d.duration_since(a).as_millis() as i64;
        Ok(ClockOffset {
            offset_ms,
            offset: format_offset(offset_ms),
            dvr_time: Some(format_civil(d)),
            actual_time: Some(format_civil(a)),
            reference,
        })
    }

    /// From an offset stated directly as ±HH:MM:SS[.mmm].
    pub fn from_offset(text: &str, reference: Option<String>) -> anyhow::Result<ClockOffset> {
        let offset_ms = parse_offset(text)?;
        Ok(ClockOffset { offset_ms, offset: format_offset(offset_ms), dvr_time: None, actual_time: None, reference })
    }

    /// A sentence for people.
    pub fn describe(&self) -> String {
        let side = match self.offset_ms {
            0 => "DVR clock matches the reference".to_owned(),
            ms if ms > 0 => format!("DVR clock runs {} ahead", format_offset(ms).trim_start_matches('+')),
            ms => format!("DVR clock runs {} behind", format_offset(-ms).trim_start_matches('+')),
        };
        match &self.reference {
            Some(r) => format!("{side} (reference: {r})"),
            None => side,
        }
    }

    /// The corrected (actual) time for a time the DVR displayed.
    pub fn correct(&self, dvr: DateTime) -> DateTime {
        dvr.checked_sub(jiff::SignedDuration::from_millis(self.offset_ms)).unwrap_or(dvr)
    }
}

/// Parse a civil date-time as a DVR shows it: `YYYY-MM-DDTHH:MM:SS[.fff]` (a space may stand
/// for the `T`).
pub fn parse_civil(flag: &str, text: &str) -> anyhow::Result<DateTime> {
    let normal = text.trim().replacen(' ', "T", 1);
    normal
        .parse::<DateTime>()
        .map_err(|e| error::input(format!("{flag} {text:?} is not a date and time like 2024-05-01T14:03:10 ({e})")))
}

/// Write a civil date-time with milliseconds.
pub fn format_civil(dt: DateTime) -> String {
    dt.strftime("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Parse ±HH:MM:SS[.mmm] (the sign is required for clarity; hours may exceed 24).
pub fn parse_offset(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        error::input(format!(
            "--clock-offset {text:?} is not ±HH:MM:SS[.mmm]; e.g. +00:02:17 when the DVR runs 2 min 17 s ahead"
        ))
    };
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    let h: i64 = parts[0].parse().map_err(|_| bad())?;
    let m: i64 = parts[1].parse().map_err(|_| bad())?;
    let (s, ms) = match parts[2].split_once('.') {
        Some((s, f)) => {
            if f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            (s, format!("{f:0<3}").parse::<i64>().map_err(|_| bad())?)
        }
        None => (parts[2], 0),
    };
    let s: i64 = s.parse().map_err(|_| bad())?;
    if !(0..60).contains(&m) || !(0..60).contains(&s) || h < 0 || parts[0].starts_with(['+', '-']) {
        return Err(bad());
    }
    Ok(sign * (((h * 60 + m) * 60 + s) * 1000 + ms))
}

/// Write milliseconds as ±HH:MM:SS.mmm.
pub fn format_offset(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let a = ms.unsigned_abs();
    format!("{sign}{:02}:{:02}:{:02}.{:03}", a / 3_600_000, a / 60_000 % 60, a / 1000 % 60, a % 1000)
}

/// Write microseconds as HH:MM:SS.mmm (media positions and durations).
pub fn format_us(us: i64) -> String {
    let ms = us / 1000;
    let a = ms.unsigned_abs();
    let sign = if ms < 0 { "-" } else { "" };
    format!("{sign}{:02}:{:02}:{:02}.{:03}", a / 3_600_000, a / 60_000 % 60, a / 1000 % 60, a % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_round_trips_and_signs() {
        assert_eq!(parse_offset("+00:02:17").unwrap(), 137_000);
        assert_eq!(parse_offset("-01:00:00.5").unwrap(), -3_600_500);
        assert_eq!(format_offset(-3_600_500), "-01:00:00.500");
        assert!(parse_offset("00:02:17").is_err());
        assert!(parse_offset("+00:61:00").is_err());
        assert!(parse_offset("+1:2").is_err());
    }

    #[test]
    fn observation_gives_dvr_minus_actual() {
        let c = ClockOffset::from_observation("2024-05-01T14:03:10", "2024-05-01 14:05:27.250", None).unwrap();
        assert_eq!(c.offset_ms, -137_250);
        assert_eq!(c.offset, "-00:02:17.250");
        assert!(c.describe().contains("behind"));
        let dvr = parse_civil("x", "2024-05-01T14:03:10").unwrap();
        assert_eq!(format_civil(c.correct(dvr)), "2024-05-01T14:05:27.250");
    }
}
