//! Times as evidence needs them: the DVR clock offset (what the recorder displayed against a
//! reference clock), civil date-times as DVRs show them (no zone), the DVR's time zone when it
//! is known, and wall-clock positions as people write them (with or without a zone).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::fmt::temporal::{Pieces, PiecesOffset, TimeZoneAnnotationKind};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
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

/// The form every date-and-time flag takes, for messages.
const CIVIL_FORM: &str = "YYYY-MM-DDTHH:MM:SS[.mmm], e.g. 2024-05-01T16:03:10";

/// Parse a civil date-time as a DVR shows it: `YYYY-MM-DDTHH:MM:SS[.fff]` (a space may stand
/// for the `T`). A DVR's clock has no zone: a time written with one is refused (the DVR's zone
/// is `--timezone`), never silently dropped.
pub fn parse_civil(flag: &str, text: &str) -> anyhow::Result<DateTime> {
    let written =
        parse_written(text).map_err(|e| error::input(format!("{flag} {text:?}: {}; write {CIVIL_FORM}", e.why())))?;
    if written.offset.is_some() || written.zone.is_some() {
        return Err(error::input(format!(
            "{flag} {text:?} has a time zone: write the time as the clock showed it, without a zone ({}), \
             and the DVR's zone with --timezone",
            format_civil(written.civil)
        )));
    }
    Ok(written.civil)
}

/// Why a written date and time was refused (said in the words of the flag or position).
#[derive(Debug)]
enum Unwritten {
    NoDate,
    NoTime,
    Malformed,
    Zone(String),
}

impl Unwritten {
    fn why(&self) -> String {
        match self {
            Unwritten::NoDate => "it has no date".into(),
            Unwritten::NoTime => "it has no time of day".into(),
            Unwritten::Malformed => "it is not a date and time".into(),
            Unwritten::Zone(e) => e.clone(),
        }
    }
}

/// A date and time as written: the civil part, and the offset (`Z` is +00:00) and zone name
/// written with it.
fn parse_written(text: &str) -> Result<WallTime, Unwritten> {
    let normal = text.trim().replacen(' ', "T", 1);
    if normal.contains(':') && normal.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'.') {
        return Err(Unwritten::NoDate);
    }
    let pieces = Pieces::parse(normal.as_str()).map_err(|_| Unwritten::Malformed)?;
    let time = pieces.time().ok_or(Unwritten::NoTime)?;
    let civil = pieces.date().to_datetime(time);
    let offset = match pieces.offset() {
        None => None,
        Some(PiecesOffset::Zulu) => Some(Offset::UTC),
        Some(PiecesOffset::Numeric(n)) => Some(n.offset()),
        Some(_) => return Err(Unwritten::Malformed),
    };
    let zone = match pieces.time_zone_annotation().map(|a| a.kind()) {
        None => None,
        Some(TimeZoneAnnotationKind::Named(name)) => {
            Some(Zone::named(name.as_str()).map_err(|e| Unwritten::Zone(format!("{e:#}")))?)
        }
        Some(TimeZoneAnnotationKind::Offset(o)) => Some(Zone::fixed(*o)),
        Some(_) => return Err(Unwritten::Malformed),
    };
    Ok(WallTime { civil, offset, zone, text: text.trim().to_owned() })
}

/// Write a civil date-time with milliseconds.
pub fn format_civil(dt: DateTime) -> String {
    dt.strftime("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Parse ±HH:MM:SS[.mmm] (the sign is required for clarity; hours may exceed 24).
pub fn parse_offset(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        error::input(format!(
            "--clock-offset {text:?} is not ±HH:MM:SS[.mmm]; e.g. +00:02:17 when the DVR runs 2 min 17 s ahead, \
             0 when it is right"
        ))
    };
    let t = text.trim();
    // No offset needs no sign: 0 (or 00:00:00) says the DVR clock was right.
    if t == "0" || (!t.starts_with(['+', '-']) && parse_offset(&format!("+{t}")).is_ok_and(|ms| ms == 0)) {
        return Ok(0);
    }
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

/// The time zone a DVR's clock keeps, recorded at ingest (`--timezone`): an IANA name
/// (`America/Chicago`, daylight saving time included) or a fixed UTC offset (`-05:00`, for a
/// DVR that never changes its clock). Names are read from the system's time zone database
/// (/usr/share/zoneinfo, Debian's `tzdata`), which is kept up to date with the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// As recorded: the IANA name, `UTC`, or the offset as ±HH:MM.
    pub name: String,
    pub tz: TimeZone,
}

/// A local time that a zone's clocks skipped or showed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ambiguity {
    /// The clocks jumped forward over it (between UTC`before` and UTC`after`).
    Gap { before: Offset, after: Offset },
    /// The clocks went back over it: it happened at UTC`before`, then again at UTC`after`.
    Fold { before: Offset, after: Offset },
}

impl Zone {
    /// As `--timezone` takes it and ingest records it: an IANA name, `UTC`, or a fixed offset
    /// ±HH:MM (±HH, ±HHMM).
    pub fn parse(text: &str) -> anyhow::Result<Zone> {
        let t = text.trim();
        match parse_utc_offset(t) {
            Some(offset) => Ok(Zone::fixed(offset)),
            None => Zone::named(t),
        }
    }

    /// A zone of the time zone database, by its IANA name.
    pub fn named(name: &str) -> anyhow::Result<Zone> {
        if name.eq_ignore_ascii_case("UTC") || name == "Z" {
            return Ok(Zone::fixed(Offset::UTC));
        }
        match TimeZone::get(name) {
            Ok(tz) => Ok(Zone { name: tz.iana_name().unwrap_or(name).to_owned(), tz }),
            Err(_) if jiff::tz::db().is_definitively_empty() => Err(error::environment(format!(
                "time zone {name}: this machine has no time zone database; install tzdata (it provides /usr/share/zoneinfo)"
            ))),
            Err(_) => Err(error::input(format!(
                "{name:?} is not a time zone: give an IANA name such as America/Chicago, or a UTC offset such as -05:00"
            ))),
        }
    }

    /// A zone whose clocks are always `offset` from UTC.
    pub fn fixed(offset: Offset) -> Zone {
        let name = if offset == Offset::UTC { "UTC".to_owned() } else { format_utc_offset(offset) };
        Zone { name, tz: TimeZone::fixed(offset) }
    }

    /// The instant at which this zone's clocks showed `civil`, unless they skipped it or showed
    /// it twice (daylight saving time).
    pub fn instant(&self, civil: DateTime) -> Result<Timestamp, Ambiguity> {
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => Ok(offset.to_timestamp(civil).unwrap_or(Timestamp::MAX)),
            AmbiguousOffset::Gap { before, after } => Err(Ambiguity::Gap { before, after }),
            AmbiguousOffset::Fold { before, after } => Err(Ambiguity::Fold { before, after }),
        }
    }

    /// `instant` as this zone's clocks showed it, with milliseconds and its UTC offset.
    pub fn show(&self, instant: Timestamp) -> String {
        instant.to_zoned(self.tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
    }
}

impl Ambiguity {
    /// What happened to `civil` in `zone`, as a sentence (without advice).
    pub fn describe(&self, civil: DateTime, zone: &Zone) -> String {
        match self {
            Ambiguity::Gap { before, after } => format!(
                "{} never showed on a clock in {}: the clocks went forward from UTC{} to UTC{} over it",
                format_civil(civil),
                zone.name,
                format_utc_offset(*before),
                format_utc_offset(*after)
            ),
            Ambiguity::Fold { before, after } => format!(
                "{} happened twice in {}: at UTC{}, then again at UTC{} after the clocks went back",
                format_civil(civil),
                zone.name,
                format_utc_offset(*before),
                format_utc_offset(*after)
            ),
        }
    }
}

/// `Z`, `UTC`, ±HH:MM, ±HHMM or ±HH as a UTC offset (hours below 24).
fn parse_utc_offset(text: &str) -> Option<Offset> {
    if text == "Z" || text.eq_ignore_ascii_case("UTC") {
        return Some(Offset::UTC);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    let colons = text[1..].matches(':').count();
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!((digits.len(), colons), (2, 0) | (4, 0) | (4, 1))
        || (colons == 1 && text.as_bytes().get(3) != Some(&b':'))
    {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    if h > 23 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// A UTC offset as ±HH:MM (seconds, which only old local mean times have, as ±HH:MM:SS).
pub fn format_utc_offset(offset: Offset) -> String {
    let s = offset.seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let a = s.unsigned_abs();
    if a.is_multiple_of(60) {
        format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    } else {
        format!("{sign}{:02}:{:02}:{:02}", a / 3600, a / 60 % 60, a % 60)
    }
}

/// A wall-clock position as written: a date and time, with the UTC offset (`Z`, `+05:00`) or
/// zone (`[America/Chicago]`) written with it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WallTime {
    /// The date and time as written.
    pub civil: DateTime,
    /// The UTC offset written with it (`Z` is +00:00).
    pub offset: Option<Offset>,
    /// The zone written with it (`[America/Chicago]`).
    pub zone: Option<Zone>,
    /// Exactly what was written: reports and `asked` show it.
    pub text: String,
}

impl WallTime {
    /// True when the time says where in the world it was read (an offset or a zone).
    pub fn has_zone(&self) -> bool {
        self.offset.is_some() || self.zone.is_some()
    }

    /// The instant this time names; a time written without a zone is read on `local`'s clocks.
    pub fn instant(&self, local: &Zone) -> anyhow::Result<Timestamp> {
        if let Some(offset) = self.offset {
            let at =
                offset.to_timestamp(self.civil).map_err(|_| error::input(format!("{} is out of range", self.text)))?;
            if let Some(zone) = &self.zone
                && zone.tz.to_offset(at) != offset
            {
                return Err(error::input(format!(
                    "{}: {} was at UTC{} then, not UTC{}; correct the offset or leave it out",
                    self.text,
                    zone.name,
                    format_utc_offset(zone.tz.to_offset(at)),
                    format_utc_offset(offset)
                )));
            }
            return Ok(at);
        }
        let zone = self.zone.as_ref().unwrap_or(local);
        zone.instant(self.civil).map_err(|a| {
            let advice = match a {
                Ambiguity::Fold { before, after } => format!(
                    "write the one you mean with its offset: {}{} or {}{}",
                    self.civil,
                    format_utc_offset(before),
                    self.civil,
                    format_utc_offset(after)
                ),
                Ambiguity::Gap { .. } => "check the time".to_owned(),
            };
            error::input(format!("{}: {}; {advice}", self.text, a.describe(self.civil, zone)))
        })
    }
}

/// The recording start a DVR wrote into a file's name, and the part of the name it was read
/// from: the first of `YYYYMMDD_HHMMSS` (`ch01_20240501_140000`; `-`, `T` or a space may stand
/// for the `_`), `YYYYMMDDHHMMSS` (`20240501140000`, Dahua's `…_20240501140000_20240501150000`)
/// or `YYYY-MM-DD_HH-MM-SS` (`2024-05-01_14-00-00`; `.` or `:` between the time's parts). The
/// digits must stand alone (not inside a longer number) and make a real date and time between
/// 1970 and 2099.
pub fn start_in_name(name: &str) -> Option<(DateTime, String)> {
    let b = name.as_bytes();
    let run = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let num = |i: usize, n: usize| name[i..i + n].parse::<i32>().ok();
    let make = |y: i32, mo: i32, d: i32, h: i32, mi: i32, s: i32| -> Option<DateTime> {
        if !(1970..=2099).contains(&y) {
            return None;
        }
        DateTime::new(y as i16, mo as i8, d as i8, h as i8, mi as i8, s as i8, 0).ok()
    };
    let packed = |i: usize, j: usize| {
        make(num(i, 4)?, num(i + 4, 2)?, num(i + 6, 2)?, num(j, 2)?, num(j + 2, 2)?, num(j + 4, 2)?)
    };
    for i in 0..b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            continue;
        }
        let len = run(i);
        let found = match len {
            14 => packed(i, i + 8).map(|dt| (dt, i + 14)),
            8 if matches!(b.get(i + 8), Some(b'_' | b'-' | b'T' | b' ')) && run(i + 9) == 6 => {
                packed(i, i + 9).map(|dt| (dt, i + 15))
            }
            4 => {
                // YYYY-MM-DD?HH?MM?SS
                let shape = b"0000-00-00_00-00-00";
                let fits = b.len() >= i + shape.len()
                    && shape.iter().zip(&b[i..]).enumerate().all(|(k, (want, got))| match want {
                        b'0' => got.is_ascii_digit(),
                        b'-' if k < 10 => *got == b'-',
                        b'_' => matches!(got, b'_' | b'-' | b'T' | b' '),
                        _ => matches!(got, b'-' | b'.' | b':'),
                    })
                    && b.get(i + shape.len()).is_none_or(|c| !c.is_ascii_digit());
                if fits {
                    make(num(i, 4)?, num(i + 5, 2)?, num(i + 8, 2)?, num(i + 11, 2)?, num(i + 14, 2)?, num(i + 17, 2)?)
                        .map(|dt| (dt, i + shape.len()))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((dt, end)) = found {
            return Some((dt, name[i..end].to_owned()));
        }
    }
    None
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
    fn a_zero_offset_needs_no_sign() {
        assert_eq!(parse_offset("0").unwrap(), 0);
        assert_eq!(parse_offset("00:00:00").unwrap(), 0);
        assert_eq!(parse_offset("+00:00:00.000").unwrap(), 0);
        assert!(parse_offset("00:00:01").is_err());
        assert!(parse_offset("1").is_err());
    }

    #[test]
    fn starts_are_read_from_common_dvr_names() {
        let start = |n: &str| start_in_name(n).map(|(dt, part)| (format_civil(dt), part));
        let at = |t: &str, part: &str| Some((t.to_owned(), part.to_owned()));
        assert_eq!(start("ch01_20240501_140000.avi"), at("2024-05-01T14:00:00.000", "20240501_140000"));
        assert_eq!(start("20240501140000.mp4"), at("2024-05-01T14:00:00.000", "20240501140000"));
        assert_eq!(
            start("ch1_main_20240501140000_20240501150000.dav"),
            at("2024-05-01T14:00:00.000", "20240501140000")
        );
        assert_eq!(start("2024-05-01_14-00-00.mkv"), at("2024-05-01T14:00:00.000", "2024-05-01_14-00-00"));
        assert_eq!(start("CAM 2024-05-01 14.00.05.mp4"), at("2024-05-01T14:00:05.000", "2024-05-01 14.00.05"));
        assert_eq!(start("ch01-20241103T013000.h264"), at("2024-11-03T01:30:00.000", "20241103T013000"));
        for none in [
            "ch01.avi",
            "clip_20241301_140000.avi",
            "123420240501140000.avi",
            "20240501_1400.avi",
            "2024-05-01.avi",
            "19000101_000000.avi",
        ] {
            assert_eq!(start(none), None, "{none}");
        }
    }

    #[test]
    fn zones_are_names_or_fixed_offsets() {
        assert_eq!(Zone::parse("-05:00").unwrap().name, "-05:00");
        assert_eq!(Zone::parse("+0530").unwrap().name, "+05:30");
        assert_eq!(Zone::parse("Z").unwrap().name, "UTC");
        assert!(Zone::parse("-25:00").is_err());
        assert!(Zone::parse("Mars/Olympus").is_err());
        let chicago = Zone::parse("America/Chicago").unwrap();
        let civil = |t: &str| parse_civil("t", t).unwrap();
        assert!(matches!(chicago.instant(civil("2024-03-10T02:30:00")), Err(Ambiguity::Gap { .. })));
        assert!(matches!(chicago.instant(civil("2024-11-03T01:30:00")), Err(Ambiguity::Fold { .. })));
        let before = chicago.instant(civil("2024-03-10T01:59:59")).unwrap();
        let after = chicago.instant(civil("2024-03-10T03:00:01")).unwrap();
        assert_eq!(after.duration_since(before).as_secs(), 2);
        assert_eq!(chicago.show(after), "2024-03-10T03:00:01.000-05:00");
    }

    #[test]
    fn flags_say_what_form_they_want() {
        for (text, why) in [
            ("16:03:10", "it has no date"),
            ("2024-05-01", "it has no time of day"),
            ("yesterday", "it is not a date and time"),
            ("2024-05-01T16:03:10Z", "has a time zone"),
            ("2024-05-01T16:03:10-05:00", "has a time zone"),
        ] {
            let e = format!("{:#}", parse_civil("--dvr-time", text).unwrap_err());
            assert!(e.contains(why) && e.contains("2024-05-01T16:03:10"), "{text}: {e}");
            assert!(!e.contains("parse"), "{text}: a parser's words: {e}");
        }
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
    /// A wall-clock time on the corrected timeline (`2024-05-01T14:03:10[.mmm]`), read on the
    /// DVR's local clock unless it carries a UTC offset or a zone (`Z`, `-05:00`,
    /// `[America/Chicago]`).
    WallClock(WallTime),
}

/// Why a position could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{text:?} is not a position: {why}. Use HH:MM:SS.mmm, seconds (12.5), frame:N, or a wall-clock time 2024-05-01T14:03:10[-05:00]"
)]
pub struct PositionError {
    pub text: String,
    pub why: String,
}

impl std::str::FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Position, PositionError> {
        let text = s.trim();
        let err = |why: &str| PositionError { text: s.to_owned(), why: why.to_owned() };
        if let Some(n) = text.strip_prefix("frame:") {
            return n
                .parse::<u64>()
                .map(Position::Frame)
                .map_err(|_| err("the frame number must be a whole number ≥ 0"));
        }
        if text.len() >= 10 && text.as_bytes()[4] == b'-' {
            return parse_written(text).map(Position::WallClock).map_err(|e| err(&e.why()));
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
            Position::WallClock(w) => f.write_str(&w.text),
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
    fn wall_clock_positions_keep_their_zone_and_their_words() {
        let wall = |t: &str| match t.parse::<Position>() {
            Ok(Position::WallClock(w)) => w,
            other => panic!("{t}: {other:?}"),
        };
        let local = Zone::parse("America/Chicago").unwrap();
        let utc = |t: &str| wall(t).instant(&local).unwrap().to_string();
        assert_eq!(utc("2024-05-01T14:03:10"), "2024-05-01T19:03:10Z");
        assert_eq!(utc("2024-05-01T14:03:10Z"), "2024-05-01T14:03:10Z");
        assert_eq!(utc("2024-05-01T14:03:10+05:00"), "2024-05-01T09:03:10Z");
        assert_eq!(utc("2024-05-01T14:03:10-07:00"), "2024-05-01T21:03:10Z");
        assert_eq!(utc("2024-05-01T14:03:10[Europe/Berlin]"), "2024-05-01T12:03:10Z");
        assert_eq!(utc("2024-11-03T01:30:00-06:00"), "2024-11-03T07:30:00Z");
        assert!(!wall("2024-05-01T14:03:10").has_zone());
        assert_eq!(Position::WallClock(wall(" 2024-05-01T14:03:10+05:00 ")).to_string(), "2024-05-01T14:03:10+05:00");
        let fold = format!("{:#}", wall("2024-11-03T01:30:00").instant(&local).unwrap_err());
        assert!(fold.contains("happened twice") && fold.contains("-05:00") && fold.contains("-06:00"), "{fold}");
        let gap = format!("{:#}", wall("2024-03-10T02:30:00").instant(&local).unwrap_err());
        assert!(gap.contains("never showed"), "{gap}");
        let conflict = format!("{:#}", wall("2024-05-01T14:03:10-06:00[America/Chicago]").instant(&local).unwrap_err());
        assert!(conflict.contains("not UTC-06:00"), "{conflict}");
        assert!("2024-05-01T14:03:10[Mars/Olympus]".parse::<Position>().is_err());
        assert!("2024-05-01".parse::<Position>().is_err());
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
