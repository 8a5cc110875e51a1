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
    // Hours up to a million (114 years: a DVR reset to its factory date is decades off, never
    // more), so the arithmetic below cannot overflow.
    if !(0..60).contains(&m)
        || !(0..60).contains(&s)
        || !(0..=1_000_000).contains(&h)
        || parts[0].starts_with(['+', '-'])
    {
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

/// Ticks of a `num/den` time base to microseconds (truncated toward zero).
pub fn ticks_to_us(ticks: i64, num: i32, den: i32) -> i64 {
    ((ticks as i128 * num as i128 * 1_000_000) / den.max(1) as i128) as i64
}

/// Microseconds to ticks of a `num/den` time base, rounded to the nearest tick.
pub fn us_to_ticks(us: i64, num: i32, den: i32) -> i64 {
    let unit = num.max(1) as i128 * 1_000_000;
    let scaled = us as i128 * den as i128;
    (if scaled >= 0 { (scaled + unit / 2) / unit } else { (scaled - unit / 2) / unit }) as i64
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

/// A position in a recording, as the user wrote it. Positions count from the first frame as a
/// player shows it (not from the container's start time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Microseconds from the first frame (`HH:MM:SS.mmm`, `MM:SS`, or plain seconds).
    Time(i64),
    /// A 0-based frame index in presentation order (`frame:N`).
    Frame(u64),
    /// A wall-clock time on the corrected timeline (`2024-05-01T14:03:10[.mmm]`).
    WallClock(DateTime),
}

/// Why a position could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{text:?} is not a position: {why}. Use HH:MM:SS.mmm, seconds (12.5), frame:N, or a wall-clock time 2024-05-01T14:03:10"
)]
pub struct PositionError {
    pub text: String,
    pub why: &'static str,
}

impl std::str::FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Position, PositionError> {
        let text = s.trim();
        let err = |why| PositionError { text: s.to_owned(), why };
        if let Some(n) = text.strip_prefix("frame:") {
            return n
                .parse::<u64>()
                .map(Position::Frame)
                .map_err(|_| err("the frame number must be a whole number ≥ 0"));
        }
        if text.len() >= 10 && text.as_bytes()[4] == b'-' {
            return parse_civil("position", text)
                .map(Position::WallClock)
                .map_err(|_| err("not a valid date and time"));
        }
        if text.starts_with('-') {
            return Err(err("positions cannot be negative"));
        }
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(err("malformed time"));
        }
        let (secs_part, mut whole) = (parts[parts.len() - 1], 0i64);
        for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
            let v: i64 = p.parse().map_err(|_| err("hours and minutes must be whole numbers"))?;
            if (i > 0 || parts.len() == 2) && !(0..60).contains(&v) {
                return Err(err("minutes must be below 60"));
            }
            whole = whole.checked_mul(60).and_then(|w| w.checked_add(v)).ok_or_else(|| err("time out of range"))?;
        }
        let (int, frac) = match secs_part.split_once('.') {
            Some((i, f)) => (i, f),
            None => (secs_part, ""),
        };
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 6
        {
            return Err(err("seconds must be digits with up to 6 decimals"));
        }
        let secs: i64 = int.parse().map_err(|_| err("seconds out of range"))?;
        if parts.len() > 1 && secs >= 60 {
            return Err(err("seconds must be below 60"));
        }
        let micros: i64 = format!("{frac:0<6}").parse().unwrap_or(0);
        whole
            .checked_mul(60)
            .and_then(|w| w.checked_add(secs))
            .and_then(|s| s.checked_mul(1_000_000))
            .and_then(|us| us.checked_add(micros))
            .map(Position::Time)
            .ok_or_else(|| err("time out of range"))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Time(us) => f.write_str(&format_us(*us)),
            Position::Frame(n) => write!(f, "frame:{n}"),
            Position::WallClock(dt) => write!(f, "{} (wall clock)", format_civil(*dt)),
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!("00:01:02.500".parse(), Ok(Position::Time(62_500_000)));
        assert_eq!("1:02".parse(), Ok(Position::Time(62_000_000)));
        assert_eq!("12.25".parse(), Ok(Position::Time(12_250_000)));
        assert_eq!("0".parse(), Ok(Position::Time(0)));
        assert_eq!("frame:17".parse(), Ok(Position::Frame(17)));
        assert!(matches!("2024-05-01T14:03:10".parse(), Ok(Position::WallClock(_))));
    }

    #[test]
    fn malformed_positions_are_refused() {
        for bad in [
            "",
            "-1",
            "frame:-1",
            "frame:x",
            "1:60",
            "00:00:61",
            "1.2.3",
            "abc",
            "1:",
            "2024-13-01T00:00:00",
            "1.1234567",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} should be refused");
        }
    }
}
