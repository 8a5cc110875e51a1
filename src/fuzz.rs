//! Entry points of the fuzz targets: `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run
//! TARGET`), and `tests/it/fuzz.rs` replays every input kept under `fixtures/fuzz/TARGET/` (the
//! seeds, and every input that ever crashed one) plus a deterministic stream of mutations of
//! them on every test run. Each takes arbitrary bytes and must return without panicking,
//! hanging or writing anything.

use std::path::Path;
use std::str::FromStr;

use crate::media::index::{FrameIndex, Timeline};
use crate::media::time::{self, ClockOffset, Position};

/// The names of the targets, as `fuzz/fuzz_targets/NAME.rs` and `fixtures/fuzz/NAME/`.
pub const TARGETS: [&str; 5] = ["bundle_verifier", "position_parser", "job_parser", "ledger_decoder", "nal_parser"];

/// Run target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "bundle_verifier" => bundle_verifier(data),
        "position_parser" => position_parser(data),
        "job_parser" => job_parser(data),
        "ledger_decoder" => ledger_decoder(data),
        "nal_parser" => nal_parser(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A bundle ZIP as `custody verify FILE.zip` checks it.
pub fn bundle_verifier(data: &[u8]) {
    let _ = crate::bundle::check::check_zip(data, Path::new("fuzzed.zip"));
}

/// A position as every command reads it, resolved against a small indexed recording with a
/// known start and clock offset (wall-clock positions included).
pub fn position_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = time::parse_offset(text);
    let _ = time::parse_civil("--at", text);
    let Ok(pos) = Position::from_str(text) else { return };
    let index = FrameIndex::regular(250, 3600, 25, (1, 90_000));
    let timeline = Timeline {
        recording_start: time::parse_civil("start", "2024-05-01T14:00:00").ok(),
        clock: Some(ClockOffset {
            offset_ms: -137_000,
            offset: "-00:02:17.000".into(),
            dvr_time: None,
            actual_time: None,
            reference: None,
        }),
        timezone: None,
        first_frame_us: 0,
    };
    let _ = index.resolve(&pos, &timeline);
    let _ = pos.to_string();
}

thread_local! {
    static LEDGER: (tempfile::TempDir, crate::ledger::Ledger) = {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ledger = crate::ledger::Ledger::create(&dir.path().join("ledger.db")).expect("a ledger");
        (dir, ledger)
    };
}

/// A batch job file, checked against an empty store.
pub fn job_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    LEDGER.with(|(dir, ledger)| {
        let _ = crate::job::parse(text, &dir.path().join("job.yaml"), ledger);
    });
}

/// A bundle's ledger excerpt (`data/custody/ledger.jsonl`), decoded and its chain checked.
pub fn ledger_decoder(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut problems = Vec::new();
    let events = crate::bundle::check::ledger_excerpt(text, Some("1:00"), &mut problems);
    for e in events.values() {
        let _ = e.encode();
    }
}

/// H.264/HEVC packets and `avcC` records as the frame index and smart clips read them from
/// evidence: NAL units in either framing, IDR detection, parameter-set IDs, and an `avcC`
/// taking more parameter sets (which must read back as the same lists, with the new ones after).
pub fn nal_parser(data: &[u8]) {
    use crate::media::nal;
    use ffmpeg_next::codec::Id;
    for unit in nal::length_prefixed_units(data, 4).into_iter().chain(nal::annexb_units(data)) {
        let _ = (nal::sps_id(unit), nal::pps_id(unit));
    }
    for size in 1..=4 {
        let _ = nal::length_prefixed_units(data, size);
    }
    for codec in [Id::H264, Id::HEVC] {
        let length = nal::length_size(codec, data);
        let _ = (nal::is_idr(codec, length, data), nal::is_idr(codec, None, data), nal::is_idr(codec, Some(4), data));
    }
    let _ = crate::media::framing::Framing::Adts.units(data);
    crate::media::smart::check_avcc(data);
}
