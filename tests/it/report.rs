//! The court report, `data/report/report.pdf` in every bundle, read back by tools that are not
//! custody: every name prints as typed, in any script (pdftotext); every font is embedded
//! (pdffonts) and the file is sound (qpdf); it declares PDF/A-2b by default and `--pdfa 1b`
//! passes Apache PDFBox Preflight; pages are Letter unless the agency (`init --paper a4`) or the
//! package (`--paper`) says otherwise (pdfinfo); each picture is on the page of the heading that
//! names its file, below it (pdfimages, pdftohtml); page 1 holds what a reader needs first,
//! every SHA-256 unbroken on one line; the certification block names the examiner.
//!
//! Oracles: bins/setup installs poppler-utils (pdftotext, pdffonts, pdfinfo, pdfimages,
//! pdftohtml), qpdf, and PDFBox Preflight (libpdfbox2-java and its jars, run by Java 17). A
//! missing oracle fails the test (it does not skip it).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use custody::media::synth::{self, Fixture};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{self, Cmd, EXAMINER, Output, cmd, shown, system_oracle};

// ---------------------------------------------------------------------------------------------
// Oracles.

/// Run the oracle `name` with `args` in `dir`; any exit code.
#[track_caller]
fn run_oracle<S: AsRef<OsStr>>(name: &str, args: &[S], dir: &Path) -> Output {
    support::run_oracle(&system_oracle(name), args, dir)
}

/// The jars of Apache PDFBox Preflight 2.0 and what it needs under Java 17, as Debian's
/// libpdfbox2-java, libactivation-java and libjaxb-api-java install them.
const PREFLIGHT_JARS: [&str; 7] = [
    "/usr/share/java/preflight.jar",
    "/usr/share/java/pdfbox2.jar",
    "/usr/share/java/fontbox2.jar",
    "/usr/share/java/xmpbox.jar",
    "/usr/share/java/commons-logging.jar",
    "/usr/share/java/javax.activation.jar",
    "/usr/share/java/jaxb-api.jar",
];

/// PDFBox Preflight's PDF/A-1b validator on `pdf`. It prints `The file NAME is a valid PDF/A-1b
/// file` and exits 0, or `The file NAME is not a valid PDF/A-1b file, error(s) :` with one
/// `CODE : what` line per error and exits 255. Its font cache (it builds one on first use) goes
/// to `scratch`, not the user's home.
#[track_caller]
fn preflight_a1b(pdf: &Path, scratch: &Path) -> Output {
    for jar in PREFLIGHT_JARS {
        assert!(
            Path::new(jar).is_file(),
            "the PDF/A oracle's {jar} is missing: run bins/setup (it installs libpdfbox2-java, \
             libactivation-java, libjaxb-api-java and default-jre-headless)"
        );
    }
    let cache = format!("-Dpdfbox.fontcache={}", scratch.display());
    let args: Vec<OsString> = vec![
        cache.into(),
        "-cp".into(),
        PREFLIGHT_JARS.join(":").into(),
        "org.apache.pdfbox.preflight.Validator_A1b".into(),
        pdf.as_os_str().to_owned(),
    ];
    run_oracle("java", &args, scratch)
}

/// Whether Preflight said the file is valid PDF/A-1b: exit 0 and its sentence of success.
fn preflight_passed(out: &Output) -> bool {
    let text = out.stdout();
    out.code == Some(0) && text.contains("is a valid PDF/A-1b file") && !text.contains("is not a valid")
}

/// One row of `pdffonts`: the font's name, and its `emb` column.
#[derive(Debug, PartialEq)]
struct FontRow {
    name: String,
    embedded: String,
}

/// The rows of `pdffonts` output (poppler 22.12):
///
/// ```text
/// name                                 type              encoding         emb sub uni object ID
/// ------------------------------------ ----------------- ---------------- --- --- --- ---------
/// GDCLQQ+NotoSans-Regular              CID TrueType      Identity-H       yes yes yes      6  0
/// FXVPDS+NotoSansCJKjp-Regular-Identity-H CID Type 0C       Identity-H       yes yes yes      9  0
/// ```
///
/// The header is checked against the dashed line's column widths (so a changed format fails
/// here, loudly). The rows are read from the right, because a name longer than its column (the
/// CJK font's above) pushes every later column of its row to the right: the last five fields
/// are always `emb sub uni NUM GEN`, and the type (which may hold spaces) sits between.
#[track_caller]
fn pdffonts_rows(output: &str) -> Vec<FontRow> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_else(|| panic!("pdffonts printed nothing"));
    let dashes = lines.next().unwrap_or_else(|| panic!("pdffonts printed no dashed line:\n{output}"));
    assert!(dashes.starts_with('-') && dashes.chars().all(|c| c == '-' || c == ' '), "not a dashed line:\n{output}");
    let mut columns = Vec::new();
    let mut start = 0;
    for group in dashes.split(' ') {
        let end = (start + group.len()).min(header.len());
        columns.push(header.get(start.min(end)..end).unwrap_or("").trim().to_owned());
        start += group.len() + 1;
    }
    assert_eq!(
        columns,
        ["name", "type", "encoding", "emb", "sub", "uni", "object ID"],
        "pdffonts' header is not the one this parser knows:\n{output}"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let n = fields.len();
            let yes_no = |s: &str| s == "yes" || s == "no";
            let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            assert!(
                n >= 7
                    && yes_no(fields[n - 5])
                    && yes_no(fields[n - 4])
                    && yes_no(fields[n - 3])
                    && number(fields[n - 2])
                    && number(fields[n - 1]),
                "pdffonts row {l:?} does not end in `emb sub uni NUM GEN`:\n{output}"
            );
            FontRow { name: fields[0].to_owned(), embedded: fields[n - 5].to_owned() }
        })
        .collect()
}

/// Every whitespace run as one space: a table cell that wraps its text over lines reads as
/// the text again.
fn collapsed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where the heading `heading` starts in `text`, at or after byte `from`: the first line that
/// is the heading alone, perhaps after a section number (`2`, `2.`, `A.`).
fn heading_at(text: &str, heading: &str, from: usize) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        if start < from {
            continue;
        }
        let line = line.trim();
        let unnumbered = match line.split_once(' ') {
            Some((number, rest))
                if number.trim_end_matches('.').len() <= 3
                    && number.trim_end_matches('.').chars().all(|c| c.is_ascii_alphanumeric())
                    && number.chars().any(|c| c.is_ascii_digit() || c == '.') =>
            {
                rest.trim()
            }
            _ => line,
        };
        if line == heading || unnumbered == heading {
            return Some(start);
        }
    }
    None
}

/// The text of the report's sections, in the documented order: "Chain of custody", "Exhibits",
/// "Certification", "Appendix: the ledger events" (each from its heading to the next).
struct Sections<'a> {
    chain: &'a str,
    exhibits: &'a str,
    certification: &'a str,
    appendix: &'a str,
}

const HEADINGS: [&str; 4] = ["Chain of custody", "Exhibits", "Certification", "Appendix: the ledger events"];

#[track_caller]
fn sections(text: &str) -> Sections<'_> {
    let mut starts = Vec::new();
    let mut from = 0;
    for heading in HEADINGS {
        let at = heading_at(text, heading, from).unwrap_or_else(|| {
            panic!(
                "the report has no heading {heading:?} (after {:?}); its headings must come in the order {HEADINGS:?}:\n{text}",
                starts.last().map(|_| HEADINGS[starts.len() - 1])
            )
        });
        starts.push(at);
        from = at + heading.len();
    }
    Sections {
        chain: &text[starts[0]..starts[1]],
        exhibits: &text[starts[1]..starts[2]],
        certification: &text[starts[2]..starts[3]],
        appendix: &text[starts[3]..],
    }
}

// ---------------------------------------------------------------------------------------------
// Stores and bundles.

/// An evidence store made with `custody init` arguments of the test's choosing (its agency's
/// name, `--paper`), every command run as `examiner`. Like `support::Store::new`, its ledger
/// and objects are in the harness's PostgreSQL and S3 under bins/test's second pass.
struct Desk {
    dir: TempDir,
    store: PathBuf,
    work: PathBuf,
    examiner: String,
    _db: Option<crate::postgres::Database>,
}

impl Desk {
    /// `custody init STORE --agency AGENCY EXTRA…` as `examiner`.
    #[track_caller]
    fn new(agency: &str, examiner: &str, extra: &[&str]) -> Desk {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        let work = dir.path().join("work");
        fs::create_dir(&work).expect("work dir");
        let mut init =
            cmd(&["init"]).arg(&store).args(&["--agency", agency]).args(extra).env("CUSTODY_EXAMINER", examiner);
        let db = support::agency().then(|| crate::postgres::cluster().database());
        if let Some(db) = &db {
            init = init.args(&["--ledger", &db.url(&db.owner)]);
        }
        if support::bucket_objects() {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
            // The random part: the shared bucket outlives runs, and pids are reused.
            let prefix = format!("report-{}-{n}-{nanos:08x}", std::process::id());
            init = init.args(&["--objects", &crate::s3::server().shared_bucket().url(&prefix)]);
        }
        init.current_dir(&work).run().status(0);
        Desk { dir, store, work, examiner: examiner.to_owned(), _db: db }
    }

    /// `custody --store STORE ARGS…` as the desk's examiner, in its work directory.
    fn cmd(&self, args: &[&str]) -> Cmd {
        cmd(&[])
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env("CUSTODY_EXAMINER", &self.examiner)
            .current_dir(&self.work)
    }

    /// Generate fixture `kind` and take it into custody as `CASE:ITEM`; its item ID.
    #[track_caller]
    fn ingest_fixture(&self, kind: Fixture, case: &str, item: &str) -> String {
        let path = self.work.join("media").join(kind.file_name());
        fs::create_dir_all(path.parent().expect("parent")).expect("media dir");
        synth::generate(kind, &path).unwrap_or_else(|e| panic!("generating {kind:?}: {e:#}"));
        self.ingest(&path, case, item)
    }

    /// Write a small text file and take it into custody as `CASE:ITEM`; its item ID.
    #[track_caller]
    fn ingest_text(&self, case: &str, item: &str, name: &str, content: &str) -> String {
        let path = support::write(&self.work.join("src").join(name), content);
        self.ingest(&path, case, item)
    }

    #[track_caller]
    fn ingest(&self, path: &Path, case: &str, item: &str) -> String {
        let out = self.cmd(&["--json", "ingest", "--case", case, "--item", item]).arg(path).run().status(0).json();
        out["items"][0]["id"].as_str().unwrap_or_else(|| panic!("no item id in {out:#}")).to_owned()
    }

    /// `custody still ITEM --at frame:N`: the still's item ID and file name.
    #[track_caller]
    fn still(&self, item: &str, frame: u32) -> (String, String) {
        let out = self.cmd(&["--json", "still", item, "--at", &format!("frame:{frame}")]).run().status(0).json();
        let still = &out["items"][0];
        let field = |k: &str| still[k].as_str().unwrap_or_else(|| panic!("no {k} in {out:#}")).to_owned();
        (field("id"), field("name"))
    }

    /// `custody --json package ARGS… --out work/NAME.zip`, expecting success; the bundle unzipped.
    #[track_caller]
    fn package(&self, name: &str, args: &[&str]) -> Report {
        let zip = self.work.join(format!("{name}.zip"));
        let json = self.cmd(&["--json", "package"]).args(args).arg("--out").arg(&zip).run().status(0).json();
        let bag = crate::bundle::unzip(&zip, &self.dir.path().join("unzipped").join(name));
        let pdf = bag.join("data/report/report.pdf");
        assert!(pdf.is_file(), "the bundle holds no data/report/report.pdf: {json:#}");
        let scratch = self.dir.path().join("scratch").join(name);
        fs::create_dir_all(&scratch).expect("scratch dir");
        Report { pdf, json, scratch }
    }

    /// The store's first event (`init`), from `custody export`.
    #[track_caller]
    fn init_event(&self) -> Value {
        let out = self.cmd(&["export"]).run().status(0).stdout();
        let first = out.lines().next().unwrap_or_else(|| panic!("custody export printed nothing"));
        let line: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("export line {first:?}: {e}"));
        assert_eq!(line["event"]["action"], "init", "{line:#}");
        line["event"].clone()
    }
}

/// The report of a bundle `custody package` wrote, and what the command said about it.
struct Report {
    pdf: PathBuf,
    json: Value,
    /// A directory of its own for the oracles' output files.
    scratch: PathBuf,
}

impl Report {
    fn dir(&self) -> &Path {
        self.pdf.parent().expect("data/report")
    }

    /// `pdftotext -enc UTF-8 report.pdf -`.
    #[track_caller]
    fn text(&self) -> String {
        run_oracle("pdftotext", &["-enc", "UTF-8", "report.pdf", "-"], self.dir()).status(0).stdout()
    }

    /// The text of page `page` (1-based) alone.
    #[track_caller]
    fn page_text(&self, page: usize) -> String {
        let p = page.to_string();
        run_oracle("pdftotext", &["-enc", "UTF-8", "-f", &p, "-l", &p, "report.pdf", "-"], self.dir())
            .status(0)
            .stdout()
    }

    /// `pdfinfo` without and with `-f 1 -l PAGES`.
    #[track_caller]
    fn info(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.push("report.pdf");
        run_oracle("pdfinfo", &all, self.dir()).status(0).stdout()
    }

    #[track_caller]
    fn pages(&self) -> usize {
        let info = self.info(&[]);
        info.lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("pdfinfo states no page count:\n{info}"))
    }

    /// Every page's size in points, `(width, height)`, as pdfinfo reads it.
    #[track_caller]
    fn page_sizes(&self) -> Vec<(f64, f64)> {
        let last = self.pages().to_string();
        let info = self.info(&["-f", "1", "-l", &last]);
        let sizes: Vec<(f64, f64)> = info
            .lines()
            .filter(|l| l.starts_with("Page ") && l.contains(" size:"))
            .map(|l| {
                let size = l.split_once("size:").expect("size:").1;
                let mut numbers = size.split_whitespace();
                let w = numbers.next().and_then(|w| w.parse().ok());
                let x = numbers.next();
                let h = numbers.next().and_then(|h| h.parse().ok());
                match (w, x, h) {
                    (Some(w), Some("x"), Some(h)) => (w, h),
                    _ => panic!("pdfinfo line {l:?} is not `Page N size: W x H pts`"),
                }
            })
            .collect();
        assert_eq!(sizes.len(), self.pages(), "pdfinfo gave no size for some pages:\n{info}");
        sizes
    }

    /// The SHA-256 of the ledger head the bundle states.
    fn head_hash(&self) -> String {
        self.json["ledger_head"]["hash"]
            .as_str()
            .unwrap_or_else(|| panic!("no ledger_head in {:#}", self.json))
            .to_owned()
    }

    /// `(name, sha256)` of every packaged file, in the order the command lists them.
    fn files(&self) -> Vec<(String, String)> {
        self.json["files"]
            .as_array()
            .unwrap_or_else(|| panic!("no files in {:#}", self.json))
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("no {k} in {f:#}")).to_owned();
                (s("name"), s("sha256"))
            })
            .collect()
    }
}

/// What the Unicode case typed, in five scripts.
const AGENCY: &str = "Полиция Отдел 3";
const EXAMINER_VI: &str = "Nguyễn Thị Ánh";
const RECIPIENT: &str = "Zoë Łukasiewicz";
const REASON: &str = "trial preparation — Ørsted case";
const PURPOSE: &str = "审判 evidence for 王小明";
const CASE: &str = "24-1234";

/// A store of agency [`AGENCY`] worked by [`EXAMINER_VI`]: a generated H.264 MP4 and a still of
/// it taken into custody as 24-1234:9, the whole case handed to [`RECIPIENT`] for [`REASON`],
/// then packaged for her with purpose [`PURPOSE`].
fn unicode_case() -> (Desk, Report) {
    let desk = Desk::new(AGENCY, EXAMINER_VI, &[]);
    let video = desk.ingest_fixture(Fixture::H264Mp4, CASE, "9");
    desk.still(&video, 10);
    desk.cmd(&["transfer", "--case", CASE, "--to", RECIPIENT, "--reason", REASON]).run().status(0);
    let report = desk.package("unicode", &["--case", CASE, "--recipient", RECIPIENT, "--purpose", PURPOSE]);
    (desk, report)
}

// ---------------------------------------------------------------------------------------------
// 1. Every name, in every script.

/// Names in Cyrillic, Vietnamese, Polish, Danish and Chinese (the agency, the examiner, a
/// transfer's recipient and reason, the package's purpose) come back out of the PDF exactly as
/// typed: the report embeds fonts that hold them (falling back per character), with text that
/// maps back to Unicode; none prints as `?`. Page 1 holds what a reader checks first: the case,
/// recipient, purpose, who prepared it for which agency, every file's SHA-256 and the ledger
/// head, each 64-hex digest whole on one line (never broken mid-string), and how to check the
/// bundle. The chain of custody lists the transfer with its recipient and reason.
#[test]
fn every_name_prints_exactly_as_typed_and_page_1_holds_the_case_the_people_and_every_sha256() {
    let (_desk, report) = unicode_case();
    let text = report.text();
    for typed in [AGENCY, EXAMINER_VI, RECIPIENT, REASON, PURPOSE, CASE] {
        assert!(text.contains(typed), "pdftotext does not give back {typed:?} exactly:\n{text}");
    }
    assert!(!text.contains('\u{FFFD}'), "the text holds U+FFFD (a character that did not map back):\n{text}");

    let page1 = report.page_text(1);
    assert!(
        page1.trim_start().starts_with("Custody and processing report"),
        "page 1 must start with the title \"Custody and processing report\":\n{page1}"
    );
    for wanted in [CASE, AGENCY, EXAMINER_VI, RECIPIENT, PURPOSE, "Recipient", "Purpose", "Prepared by"] {
        assert!(page1.contains(wanted), "page 1 lacks {wanted:?}:\n{page1}");
    }
    assert!(
        heading_at(&page1, "How to check this bundle", 0).is_some(),
        "page 1 has no section \"How to check this bundle\":\n{page1}"
    );
    let files = report.files();
    assert_eq!(files.len(), 2, "the case holds the video and its still: {:#}", report.json);
    let head = report.head_hash();
    for (name, sha) in files.iter().map(|(n, s)| (n.as_str(), s.as_str())).chain([("the ledger head", head.as_str())]) {
        assert!(
            page1.lines().any(|l| l.contains(sha)),
            "page 1 does not hold {name}'s SHA-256 {sha} whole on one line (digests are never broken):\n{page1}"
        );
    }

    let s = sections(&text);
    let chain = collapsed(s.chain);
    for wanted in [RECIPIENT, REASON, EXAMINER_VI] {
        assert!(chain.contains(wanted), "the chain of custody lacks {wanted:?}:\n{}", s.chain);
    }
    for (name, _) in &files {
        assert!(s.exhibits.contains(name.as_str()), "the exhibits section does not name {name}:\n{}", s.exhibits);
    }
    assert!(
        s.appendix.to_lowercase().contains("transfer"),
        "the appendix of ledger events lacks the transfer:\n{}",
        s.appendix
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Fonts and structure.

/// Every font the report uses is embedded (pdffonts' `emb` column says `yes` on every row), so
/// it prints the same on any machine, and qpdf finds nothing wrong with the file.
#[test]
fn every_font_in_the_report_is_embedded_and_qpdf_checks_it_clean() {
    let (_desk, report) = unicode_case();
    let out = run_oracle("pdffonts", &["report.pdf"], report.dir()).status(0).clone();
    let rows = pdffonts_rows(&out.stdout());
    assert!(!rows.is_empty(), "pdffonts lists no font at all:\n{}", shown(&out));
    let bare: Vec<&FontRow> = rows.iter().filter(|r| r.embedded != "yes").collect();
    assert!(bare.is_empty(), "fonts not embedded: {bare:?}\n{}", shown(&out));
    let check = run_oracle("qpdf", &["--check", "report.pdf"], report.dir());
    assert_eq!(check.code, Some(0), "qpdf --check finds problems (2: errors, 3: warnings)\n{}", shown(&check));
}

/// The pdffonts reader takes poppler's real output: a name longer than its column, a type with
/// a space, and a font that is not embedded (the standard 14 fonts of the earlier report).
#[test]
fn the_pdffonts_reader_takes_long_names_and_sees_fonts_that_are_not_embedded() {
    let output = "\
name                                 type              encoding         emb sub uni object ID
------------------------------------ ----------------- ---------------- --- --- --- ---------
GDCLQQ+NotoSans-Regular              CID TrueType      Identity-H       yes yes yes      6  0
FXVPDS+NotoSansCJKjp-Regular-Identity-H CID Type 0C       Identity-H       yes yes yes      9  0
Helvetica                            Type 1            WinAnsi          no  no  no       4  0
";
    let rows = pdffonts_rows(output);
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.name.as_str(), r.embedded.as_str())).collect();
    assert_eq!(
        got,
        [("GDCLQQ+NotoSans-Regular", "yes"), ("FXVPDS+NotoSansCJKjp-Regular-Identity-H", "yes"), ("Helvetica", "no")]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. PDF/A.

/// Whether XMP metadata (as `pdfinfo -meta` prints it) declares `pdfaid:NAME` to be `value`, as
/// an attribute or as an element.
fn declares(xmp: &str, name: &str, value: &str) -> bool {
    [
        format!("pdfaid:{name}=\"{value}\""),
        format!("pdfaid:{name}='{value}'"),
        format!("<pdfaid:{name}>{value}</pdfaid:{name}>"),
    ]
    .iter()
    .any(|form| xmp.contains(form.as_str()))
}

/// By default the report is PDF/A-2b: its XMP metadata says part 2, conformance B. With
/// `--pdfa 1b` it says part 1, and Apache PDFBox Preflight, an independent validator, finds it
/// a valid PDF/A-1b file (fonts embedded, colours with an output intent, metadata that agrees
/// with the document information).
#[test]
fn the_report_declares_pdfa_2b_by_default_and_pdfbox_preflight_accepts_the_1b_one() {
    let (desk, default) = unicode_case();
    let xmp = default.info(&["-meta"]);
    assert!(
        declares(&xmp, "part", "2") && declares(&xmp, "conformance", "B"),
        "the default report's XMP metadata does not declare PDF/A-2b (pdfaid:part 2, conformance B):\n{xmp}"
    );

    let a1 = desk.package("pdfa-1b", &["--case", CASE, "--recipient", RECIPIENT, "--purpose", PURPOSE, "--pdfa", "1b"]);
    let xmp = a1.info(&["-meta"]);
    assert!(
        declares(&xmp, "part", "1") && declares(&xmp, "conformance", "B"),
        "the --pdfa 1b report's XMP metadata does not declare PDF/A-1b:\n{xmp}"
    );
    let out = preflight_a1b(&a1.pdf, &a1.scratch);
    assert!(preflight_passed(&out), "PDFBox Preflight rejects the --pdfa 1b report:\n{}", shown(&out));
}

/// The Preflight check can fail: a PDF that is no PDF/A (an empty one from qpdf) is reported
/// as not valid, with a non-zero exit.
#[test]
fn the_preflight_oracle_rejects_a_pdf_that_is_not_pdfa() {
    let dir = tempfile::tempdir().expect("temp dir");
    run_oracle("qpdf", &["--empty", "empty.pdf"], dir.path()).status(0);
    let out = preflight_a1b(&dir.path().join("empty.pdf"), dir.path());
    assert!(!preflight_passed(&out), "Preflight passed a PDF with no PDF/A metadata:\n{}", shown(&out));
    assert!(
        out.code.is_some_and(|c| c != 0) && out.stdout().contains("is not a valid PDF/A-1b file"),
        "Preflight's failure is not the one expected (`is not a valid PDF/A-1b file`, non-zero exit):\n{}",
        shown(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Paper.

fn is_letter((w, h): (f64, f64)) -> bool {
    (w - 612.0).abs() < 0.5 && (h - 792.0).abs() < 0.5
}

/// 595.276 x 841.89 pt (210 x 297 mm), as pdfinfo shows it: "595…" by "841…".
fn is_a4((w, h): (f64, f64)) -> bool {
    (595.0..596.0).contains(&w) && (841.0..842.0).contains(&h)
}

/// Every page is US Letter (612 x 792 pt) unless told otherwise; `init --paper a4` records the
/// agency's A4 in the store's first event and its reports are then A4 (595.276 x 841.89 pt) on
/// every page; `package --paper` overrides the agency's setting either way.
#[test]
fn pages_are_letter_by_default_a4_for_an_a4_agency_and_package_paper_overrides_both() {
    let letter_desk = Desk::new("Test PD", EXAMINER, &[]);
    letter_desk.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    let a4_desk = Desk::new("Test PD", EXAMINER, &["--paper", "a4"]);
    a4_desk.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    let init = a4_desk.init_event();
    assert_eq!(init["params"]["paper"], "a4", "init --paper a4 is not recorded in the init event: {init:#}");

    type Check = fn((f64, f64)) -> bool;
    let cases: [(&Desk, &str, &[&str], &str, Check); 4] = [
        (&letter_desk, "default", &[], "Letter", is_letter),
        (&letter_desk, "paper-a4", &["--paper", "a4"], "A4", is_a4),
        (&a4_desk, "agency-a4", &[], "A4", is_a4),
        (&a4_desk, "paper-letter", &["--paper", "letter"], "Letter", is_letter),
    ];
    for (desk, name, extra, want, check) in cases {
        let mut args = vec!["--case", "24-77"];
        args.extend_from_slice(extra);
        let report = desk.package(name, &args);
        let sizes = report.page_sizes();
        assert!(
            sizes.iter().all(|&s| check(s)),
            "{name} (package {args:?}): every page must be {want}, pdfinfo gives {sizes:?}\n{}",
            report.info(&[])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Pictures and their headings.

/// The images of the `image` type (not soft masks) that `pdfimages -list` lists: their pages,
/// in document order.
#[track_caller]
fn image_pages(report: &Report) -> Vec<usize> {
    let out = run_oracle("pdfimages", &["-list", "report.pdf"], report.dir()).status(0).stdout();
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.split_whitespace().take(3).eq(["page", "num", "type"]), "pdfimages -list header:\n{out}");
    assert!(lines.next().is_some_and(|l| l.starts_with("---")), "pdfimages -list has no dashed line:\n{out}");
    lines
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let page = fields.first().and_then(|p| p.parse().ok());
            let page = page.unwrap_or_else(|| panic!("pdfimages -list row {l:?}:\n{out}"));
            (fields.get(2) == Some(&"image")).then_some(page)
        })
        .collect()
}

/// What `pdftohtml -xml` places on one page: the top edge of each image and of each piece of
/// text (in its units, which grow downwards), and the text.
#[derive(Debug, Default)]
struct Placed {
    images: Vec<f64>,
    texts: Vec<(f64, String)>,
}

fn xml_attr(tag: &str, name: &str) -> Option<f64> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()?.parse().ok()
}

fn xml_text(inner: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// Pages 1… of the report as `pdftohtml -xml` places them.
#[track_caller]
fn placed(report: &Report) -> Vec<Placed> {
    let out = report.scratch.join("xml");
    fs::create_dir_all(&out).expect("xml dir");
    let args: Vec<OsString> =
        vec!["-xml".into(), "-q".into(), report.pdf.as_os_str().to_owned(), out.join("report").into_os_string()];
    run_oracle("pdftohtml", &args, &out).status(0);
    let xml = fs::read_to_string(out.join("report.xml")).expect("pdftohtml wrote report.xml");
    let mut pages: Vec<Placed> = Vec::new();
    for chunk in xml.split("<page ").skip(1) {
        let mut page = Placed::default();
        for piece in chunk.split('<').skip(1) {
            if piece.starts_with("image ") {
                page.images.push(xml_attr(&format!(" {piece}"), "top").expect("an image's top"));
            } else if piece.starts_with("text ") {
                let tag_end = piece.find('>').expect("a text tag");
                let top = xml_attr(&format!(" {}", &piece[..tag_end]), "top").expect("a text's top");
                page.texts.push((top, String::new()));
            }
        }
        // The text of each <text …>…</text>, tags inside it (<b>, <i>, <a>) stripped.
        let mut rest = chunk;
        let mut i = 0;
        while let Some(open) = rest.find("<text ") {
            let body_start = open + rest[open..].find('>').expect("a text tag") + 1;
            let body_end = body_start + rest[body_start..].find("</text>").expect("</text>");
            page.texts[i].1 = xml_text(&rest[body_start..body_end]);
            i += 1;
            rest = &rest[body_end..];
        }
        pages.push(page);
    }
    pages
}

/// Each still's picture is on the page of the heading that names the still's file, below that
/// heading: a heading is never left at the foot of one page with its picture on the next. Six
/// stills of one video fill more than one page, so page breaks fall among them. pdfimages
/// finds each picture's page; pdftotext reads that page's text; pdftohtml places the heading
/// above the picture.
#[test]
fn each_picture_is_on_the_page_of_the_heading_that_names_its_file_below_it() {
    let desk = Desk::new("Test PD", EXAMINER, &[]);
    let video = desk.ingest_fixture(Fixture::H264Mp4, CASE, "9");
    let stills: Vec<String> = [3, 15, 27, 39, 51, 63].iter().map(|&f| desk.still(&video, f).1).collect();
    let report = desk.package("pictures", &["--case", CASE]);
    // The stills in the order the bundle lists its files (the report's order).
    let order: Vec<String> = report.files().into_iter().map(|(n, _)| n).filter(|n| stills.contains(n)).collect();
    assert_eq!(order.len(), stills.len(), "not every still was packaged: {:#}", report.json);

    let pages = image_pages(&report);
    assert!(pages.len() >= stills.len(), "the report shows {} pictures for {} stills", pages.len(), stills.len());
    let mut distinct = pages.clone();
    distinct.dedup();
    assert!(distinct.len() >= 2, "all pictures are on page {distinct:?}: the test needs page breaks among them");

    let placed = placed(&report);
    assert_eq!(placed.len(), report.pages(), "pdftohtml and pdfinfo disagree on the page count");
    // Both oracles see the same pictures on each page.
    for (i, page) in placed.iter().enumerate() {
        let listed = pages.iter().filter(|&&p| p == i + 1).count();
        assert_eq!(
            page.images.len(),
            listed,
            "page {}: pdftohtml places {:?}, pdfimages lists {listed}",
            i + 1,
            page.images
        );
    }
    // The pictures in document order: (page, top), top to bottom within a page.
    let mut pictures: Vec<(usize, f64)> =
        placed.iter().enumerate().flat_map(|(i, p)| p.images.iter().map(move |&top| (i + 1, top))).collect();
    pictures.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));

    // Each still, in order, takes the next picture that lies below its name on the same page.
    let mut next = 0;
    for name in &order {
        let found = pictures[next..].iter().position(|&(page, top)| {
            let above = placed[page - 1].texts.iter().any(|(t, text)| *t < top && text.contains(name.as_str()));
            above && report.page_text(page).contains(name.as_str())
        });
        let Some(k) = found else {
            let named_on: Vec<usize> =
                (1..=report.pages()).filter(|&p| report.page_text(p).contains(name.as_str())).collect();
            panic!(
                "no picture of {name} lies below a heading naming it on its page (pictures at (page, top) {:?}; \
                 {name} is named on pages {named_on:?})",
                &pictures[next..]
            );
        };
        next += k + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Certification.

/// The certification block, between its heading and the appendix, names the examiner who
/// prepared the bundle and has lines for a signature and a date.
#[test]
fn the_certification_block_names_the_examiner_with_lines_for_signature_and_date() {
    let (_desk, report) = unicode_case();
    let text = report.text();
    let s = sections(&text);
    let block = collapsed(s.certification);
    for wanted in [EXAMINER_VI, "Signature", "Date"] {
        assert!(block.contains(wanted), "the certification block lacks {wanted:?}:\n{}", s.certification);
    }
}
