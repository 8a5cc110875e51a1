//! The machine interface (docs/json.md): every command's `--json` output, produced by the real
//! binary on real media, validates against its JSON Schema in docs/schemas/, and carries no key
//! the schema does not document. Failures print the error document, with the exit code it
//! states.
//!
//! Oracle: the `jsonschema` package (4.23, Draft 2020-12) that bins/setup installs into the venv
//! under target/oracles. A missing oracle fails the tests (it does not skip them).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::media::synth::Fixture;
use serde_json::{Value, json};

use crate::support::{Output, Store, cmd, media, write};

/// Every schema file docs/schemas must hold: one per command output, the export line format, and
/// the error document.
const SCHEMAS: [&str; 24] = [
    "init",
    "ingest",
    "hash",
    "verify",
    "log",
    "show",
    "transfer",
    "push",
    "export",
    "ledger-line",
    "still",
    "clip",
    "rewrap",
    "redact",
    "detect",
    "review",
    "enhance",
    "redo",
    "package",
    "media",
    "batch",
    "man",
    "completions",
    "error",
];

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
const ID_BASE: &str = "https://custody.example/schemas/";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schemas_dir() -> PathBuf {
    repo().join("docs/schemas")
}

/// The venv Python that bins/setup installs jsonschema into.
#[track_caller]
fn oracle_python() -> PathBuf {
    let path = repo().join("target/oracles/bin/python");
    assert!(
        path.is_file(),
        "the oracle {} is missing: run bins/setup (it installs jsonschema==4.23.0 into target/oracles)",
        path.display()
    );
    path
}

/// Checks every schema file in `argv[1]` (`check_schema`), then validates each entry of the
/// manifest `argv[2]` (when given): `{"schema", "label", "instance", "expect"}` where expect is
/// `valid` (validates, and carries no key the schema does not list), `invalid` (the schema
/// must reject it) or `undocumented` (validates, but the closed check must flag an unknown key).
const VALIDATOR: &str = r#"
import copy, importlib.metadata, json, pathlib, sys
from jsonschema import Draft202012Validator

# Objects open by design: a file reference carries action-specific facts beside its digests.
OPEN_DEFS = {"fileRef"}

def closed(node):
    # The schema with every object that lists its properties closed (additionalProperties: false),
    # except the open-by-design definitions: what passes it has no undocumented key.
    if isinstance(node, list):
        return [closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$defs":
            out[k] = {n: (copy.deepcopy(d) if n in OPEN_DEFS else closed(d)) for n, d in v.items()}
        elif k == "properties":
            out[k] = {n: closed(s) for n, s in v.items()}
        elif k in ("const", "enum", "examples", "default"):
            out[k] = v
        else:
            out[k] = closed(v)
    if "properties" in out:
        out["additionalProperties"] = False
    return out

def path(p):
    return "/" + "/".join(map(str, p))

def describe(errors):
    lines = []
    for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        lines.append(f"    at {path(e.absolute_path)}: {e.message[:300]}")
        for sub in sorted(e.context or [], key=lambda s: list(map(str, s.absolute_path)))[:12]:
            lines.append(f"        (branch {path(sub.schema_path)}) at {path(sub.absolute_path)}: {sub.message[:200]}")
    return "\n".join(lines)

print("jsonschema", importlib.metadata.version("jsonschema"))
schemas_dir = pathlib.Path(sys.argv[1])
failures = 0
validators = {}
for f in sorted(schemas_dir.glob("*.schema.json")):
    name = f.name[: -len(".schema.json")]
    try:
        schema = json.loads(f.read_text())
        Draft202012Validator.check_schema(schema)
    except Exception as e:
        failures += 1
        print(f"FAIL {f.name} is not a valid Draft 2020-12 schema: {e}")
        continue
    validators[name] = (Draft202012Validator(schema), Draft202012Validator(closed(schema)))
print(f"{len(validators)} schema files are valid Draft 2020-12 schemas")

manifest = json.loads(pathlib.Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else []
for entry in manifest:
    name, label, doc, expect = entry["schema"], entry["label"], entry["instance"], entry["expect"]
    if name not in validators:
        failures += 1
        print(f"FAIL {label}: no valid schema {name}.schema.json")
        continue
    loose, strict = validators[name]
    errors = list(loose.iter_errors(doc))
    undocumented = [] if errors else list(strict.iter_errors(doc))
    if expect == "invalid":
        if errors:
            print(f"ok   {label}: rejected by {name}.schema.json, as it must be:\n{describe(errors)}")
        else:
            failures += 1
            print(f"FAIL {label}: {name}.schema.json ACCEPTS it, but it must reject it")
    elif expect == "undocumented":
        if not errors and undocumented:
            print(f"ok   {label}: accepted, and its unknown key flagged:\n{describe(undocumented)}")
        else:
            failures += 1
            print(f"FAIL {label}: expected a valid document with an undocumented key:\n{describe(errors)}")
    elif errors:
        failures += 1
        print(f"FAIL {label}: does not validate against {name}.schema.json:\n{describe(errors)}")
    elif undocumented:
        failures += 1
        print(f"FAIL {label}: validates, but has keys {name}.schema.json does not document:\n{describe(undocumented)}")
    else:
        print(f"ok   {label}")
print(f"{failures} failure(s); {len(manifest)} document(s) checked")
sys.exit(1 if failures else 0)
"#;

/// Run the validator over the schema files and `manifest` (if any); its full report on failure.
#[track_caller]
fn run_validator(manifest: Option<&Path>) -> String {
    let python = oracle_python();
    let mut command = Command::new(&python);
    command.arg("-c").arg(VALIDATOR).arg(schemas_dir());
    if let Some(m) = manifest {
        command.arg(m);
    }
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !report.contains("ModuleNotFoundError"),
        "jsonschema is not installed in {}: run bins/setup\n{report}",
        python.display()
    );
    assert!(out.status.success(), "JSON Schema validation failed (exit {:?}):\n{report}", out.status.code());
    report
}

/// Documents collected from real runs, validated together by one run of the oracle.
pub struct Checks {
    entries: Vec<Value>,
    dir: tempfile::TempDir,
}

impl Checks {
    pub fn new() -> Checks {
        Checks { entries: Vec::new(), dir: tempfile::tempdir().expect("temp dir") }
    }

    fn add(&mut self, schema: &str, label: &str, instance: Value, expect: &str) {
        assert!(SCHEMAS.contains(&schema), "no schema named {schema}");
        self.entries.push(json!({"schema": schema, "label": label, "instance": instance, "expect": expect}));
    }

    /// A run that must exit `code` and print exactly one JSON document, valid under `schema`.
    #[track_caller]
    pub fn doc(&mut self, schema: &str, label: &str, out: &Output, code: i32) -> Value {
        let doc = out.status(code).json();
        assert!(doc.is_object(), "{label}: stdout is not a JSON object: {doc:#}");
        self.add(schema, label, doc.clone(), "valid");
        doc
    }

    /// A failing run: exit `code`, the error document on stdout, stating that same code.
    #[track_caller]
    fn error(&mut self, label: &str, out: &Output, code: i32) -> Value {
        let doc = self.doc("error", label, out, code);
        assert_eq!(doc["exit_code"], json!(code), "{label}: the error document states another exit code: {doc:#}");
        assert!(out.stderr().contains("custody: error: "), "{label}: no error on stderr:\n{}", out.stderr());
        doc
    }

    /// Validate everything collected; fails with the validator's report.
    #[track_caller]
    pub fn validate(self) {
        assert!(!self.entries.is_empty(), "nothing to validate");
        let manifest = self.dir.path().join("manifest.json");
        fs::write(&manifest, serde_json::to_vec(&self.entries).expect("manifest")).expect("write manifest");
        let report = run_validator(Some(&manifest));
        eprintln!("{report}");
    }
}

/// Load one schema file as JSON.
#[track_caller]
fn schema(name: &str) -> Value {
    let path = schemas_dir().join(format!("{name}.schema.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every `$ref` in `node`.
fn refs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The object schemas of the documents a schema file describes: the root, or each `oneOf`
/// branch of the root.
fn document_roots(s: &Value) -> Vec<Value> {
    match s.get("oneOf").and_then(Value::as_array) {
        Some(branches) => branches
            .iter()
            .map(|b| {
                let r = b["$ref"].as_str().expect("a root oneOf branch is a $ref");
                s.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}")).clone()
            })
            .collect(),
        None => vec![s.clone()],
    }
}

// ---------------------------------------------------------------------------------------------

/// The schema files themselves: one per output, each a valid Draft 2020-12 schema (the oracle's
/// `check_schema`) with a stable `$id`, self-contained (every `$ref` local and resolvable),
/// open at the top level, requiring `schema_version: 1`; shared definitions identical in
/// every file that carries them; each linked from docs/json.md.
#[test]
fn every_schema_is_a_valid_self_contained_draft_2020_12_schema() {
    let found: BTreeSet<String> = fs::read_dir(schemas_dir())
        .expect("docs/schemas exists")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    let wanted: BTreeSet<String> = SCHEMAS.iter().map(|n| format!("{n}.schema.json")).collect();
    assert_eq!(found, wanted, "docs/schemas must hold exactly one schema per documented output");

    let guide = fs::read_to_string(repo().join("docs/json.md")).expect("docs/json.md exists");
    let mut shared: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for name in SCHEMAS {
        let s = schema(name);
        assert_eq!(s["$schema"], DRAFT, "{name}: $schema");
        assert_eq!(s["$id"], format!("{ID_BASE}{name}.schema.json"), "{name}: $id");
        assert!(s["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no title");
        assert!(
            guide.contains(&format!("(schemas/{name}.schema.json)")),
            "docs/json.md does not link {name}.schema.json"
        );

        let mut all = Vec::new();
        refs(&s, &mut all);
        for r in &all {
            assert!(r.starts_with("#/$defs/"), "{name}: {r} is not a local definition (schemas are self-contained)");
            assert!(s.pointer(r.trim_start_matches('#')).is_some(), "{name}: {r} does not resolve");
        }
        for root in document_roots(&s) {
            assert_eq!(root["type"], "object", "{name}: a document is an object");
            assert_eq!(root["additionalProperties"], true, "{name}: documents stay open (new keys are compatible)");
            let required: Vec<&str> =
                root["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
            for key in &required {
                assert!(root["properties"].get(*key).is_some(), "{name}: required {key} is not described");
            }
            if name != "ledger-line" {
                assert_eq!(root["properties"]["schema_version"], json!({"const": 1}), "{name}: schema_version");
                assert!(required.contains(&"schema_version"), "{name}: schema_version not required");
                if name != "error" {
                    assert!(root["properties"]["command"]["const"].is_string(), "{name}: command is not a const");
                    assert!(required.contains(&"command"), "{name}: command not required");
                }
            }
        }
        for (def, body) in s["$defs"].as_object().into_iter().flatten() {
            match shared.get(def) {
                Some((first, other)) => {
                    assert_eq!(body, other, "$defs/{def} differs between {first}.schema.json and {name}.schema.json")
                }
                None => {
                    shared.insert(def.clone(), (name.to_owned(), body.clone()));
                }
            }
        }
    }
    run_validator(None);
}

/// The schemas can fail: a real document with `schema_version: 2`, without a required key, or
/// with a head in the wrong shape is rejected; an error document with exit code 0 is rejected;
/// a key the schema does not list passes the schema (documents are open) but is flagged by the
/// closed check the other tests apply.
#[test]
fn the_schemas_reject_documents_that_break_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut checks = Checks::new();
    let init = checks.doc(
        "init",
        "init --agency",
        &cmd(&["--json", "init", "s", "--agency", "Test PD"]).current_dir(dir.path()).run(),
        0,
    );
    let mut bad = init.clone();
    bad["schema_version"] = json!(2);
    checks.add("init", "init with schema_version 2", bad, "invalid");
    let mut bad = init.clone();
    bad.as_object_mut().expect("object").remove("head");
    checks.add("init", "init without head", bad, "invalid");
    let mut bad = init.clone();
    bad["head"] = json!(format!("{}:{}", init["head"]["seq"], init["head"]["hash"].as_str().expect("hash")));
    checks.add("init", "init with head as SEQ:HASH text", bad, "invalid");
    let mut bad = init.clone();
    bad["head"]["seq"] = json!("1");
    checks.add("init", "init with seq as a string", bad, "invalid");
    let mut bad = init.clone();
    bad["command"] = json!("ingest");
    checks.add("init", "init claiming to be ingest", bad, "invalid");
    let mut extra = init;
    extra["surprise"] = json!(true);
    checks.add("init", "init with an undocumented key", extra, "undocumented");

    let err = checks.error("verify outside a store", &cmd(&["--json", "verify"]).current_dir(dir.path()).run(), 2);
    let mut bad = err.clone();
    bad["exit_code"] = json!(0);
    checks.add("error", "error document with exit code 0", bad, "invalid");
    let mut bad = err;
    bad.as_object_mut().expect("object").remove("error");
    checks.add("error", "error document without its message", bad, "invalid");
    checks.validate();
}

/// A named FIFO at `path` (ingest skips it and says so).
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system node.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
}

/// The id of the ingested item whose name ends with `suffix`.
#[track_caller]
fn item_named(ingest: &Value, suffix: &str) -> String {
    ingest["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("no item named …{suffix} in {ingest:#}"))
        .to_owned()
}

/// init, ingest, hash (plain, -a, --record, --check, --frames), verify (ok, mismatch, altered
/// schema), log, show, transfer, export (--out, hashdeep, JSON Lines on stdout), man --out,
/// and error documents for exit 1, 2 and 3.
#[test]
fn store_and_history_commands_print_documents_that_validate() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let work = store.work();
    let mut checks = Checks::new();

    checks.doc(
        "init",
        "init --agency",
        &cmd(&["--json", "init", "other", "--agency", "Metro PD"]).current_dir(work).run(),
        0,
    );
    let bare = checks.doc("init", "init (no agency)", &cmd(&["--json", "init", "bare"]).current_dir(work).run(), 0);
    assert_eq!(bare["agency"], Value::Null);

    // One ingest with every part of its document: decodable video and audio, a file FFmpeg
    // cannot open, a symlink, a FIFO, a DVR clock offset.
    let dir = work.join("export");
    media(Fixture::H264Mp4, &dir.join("h264_bframes.mp4"));
    media(Fixture::Wav, &dir.join("overhear.wav"));
    media(Fixture::Proprietary, &dir.join("vendor_blob.bin"));
    std::os::unix::fs::symlink("h264_bframes.mp4", dir.join("link.mp4")).expect("symlink");
    mkfifo(&dir.join("pipe"));
    let ingest = checks.doc(
        "ingest",
        "ingest a directory",
        &store
            .cmd(&["--json", "ingest", "export", "--case", "24-1234", "--item", "9", "--clock-offset", "+00:00:05"])
            .args(&["--time-reference", "officer's phone", "--recording-start", "2024-05-01T14:00:00", "--also", "md5"])
            .run(),
        0,
    );
    assert_eq!(ingest["items"].as_array().map(Vec::len), Some(3), "{ingest:#}");
    assert_eq!(ingest["symlinks"].as_array().map(Vec::len), Some(1), "{ingest:#}");
    assert_eq!(ingest["skipped"].as_array().map(Vec::len), Some(1), "{ingest:#}");
    let mp4 = item_named(&ingest, "h264_bframes.mp4");
    let wav = item_named(&ingest, "overhear.wav");
    let blob = item_named(&ingest, "vendor_blob.bin");

    checks.doc(
        "hash",
        "hash (default digests)",
        &store.cmd(&["--json", "hash", "export/overhear.wav", "export/vendor_blob.bin"]).run(),
        0,
    );
    checks.doc(
        "hash",
        "hash -a md5,sha1",
        &store.cmd(&["--json", "hash", "-a", "md5,sha1", "export/overhear.wav"]).run(),
        0,
    );
    let recorded = checks.doc(
        "hash",
        "hash --record",
        &store.cmd(&["--json", "hash", "--record", "--case", "24-1234", "export/vendor_blob.bin"]).run(),
        0,
    );
    assert!(recorded["head"].is_object(), "hash --record gives the head: {recorded:#}");
    let wav_sha =
        ingest["items"].as_array().expect("items").iter().find(|i| i["id"] == wav.as_str()).expect("wav")["sha256"]
            .as_str()
            .expect("sha256")
            .to_owned();
    write(
        &work.join("SHA256SUMS"),
        format!(
            "{wav_sha}  export/overhear.wav\n{}  export/vendor_blob.bin\n{}  export/gone.bin\nnot a line\n",
            "a".repeat(64),
            "b".repeat(64)
        ),
    );
    let check = checks.doc(
        "hash",
        "hash --check (ok, failed, missing, malformed)",
        &store.cmd(&["--json", "hash", "--check", "SHA256SUMS"]).run(),
        1,
    );
    assert_eq!(
        (check["ok"].as_u64(), check["failed"].as_u64(), check["missing"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{check:#}"
    );
    checks.doc("hash", "hash --frames ITEM", &store.cmd(&["--json", "hash", "--frames", &mp4]).run(), 0);

    let verified = checks.doc("verify", "verify (store)", &store.cmd(&["--json", "verify"]).run(), 0);
    let head = format!("{}:{}", verified["head"]["seq"], verified["head"]["hash"].as_str().expect("head hash"));
    checks.doc("verify", "verify --against (store)", &store.cmd(&["--json", "verify", "--against", &head]).run(), 0);
    let wrong = format!("1:{}", "a".repeat(64));
    let failed = checks.doc(
        "verify",
        "verify --against a rewritten head",
        &store.cmd(&["--json", "verify", "--against", &wrong]).run(),
        1,
    );
    assert_eq!(failed["ok"], json!(false), "{failed:#}");

    checks.doc("log", "log", &store.cmd(&["--json", "log"]).run(), 0);
    checks.doc("log", "log ITEM", &store.cmd(&["--json", "log", &mp4]).run(), 0);
    checks.doc("log", "log --case", &store.cmd(&["--json", "log", "--case", "24-1234"]).run(), 0);
    checks.doc("show", "show (video, clock offset)", &store.cmd(&["--json", "show", &mp4]).run(), 0);
    checks.doc("show", "show (not decodable)", &store.cmd(&["--json", "show", &blob]).run(), 0);
    checks.doc(
        "transfer",
        "transfer",
        &store.cmd(&["--json", "transfer", &mp4, &wav, "--to", "Det. R. Alvarez", "--reason", "review"]).run(),
        0,
    );
    checks.doc("show", "show (after a transfer)", &store.cmd(&["--json", "show", &wav]).run(), 0);

    checks.doc("export", "export --out", &store.cmd(&["--json", "export", "--out", "ledger.jsonl"]).run(), 0);
    checks.doc(
        "export",
        "export --format hashdeep --out",
        &store.cmd(&["--json", "export", "--format", "hashdeep", "--out", "known.txt"]).run(),
        0,
    );
    let lines = store.cmd(&["--json", "export"]).run();
    lines.status(0);
    let text = lines.stdout();
    assert_eq!(text.lines().count() as i64, store.event_count(), "export prints one line per event:\n{text}");
    for (n, line) in text.lines().enumerate() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {} is not JSON ({e}): {line}", n + 1));
        checks.add("ledger-line", &format!("export line {}", n + 1), value, "valid");
    }
    checks.doc("man", "man --out", &store.cmd(&["--json", "man", "--out", "man1"]).run(), 0);
    let page = checks.doc("man", "man", &store.cmd(&["--json", "man"]).run(), 0);
    assert!(page["page"].as_str().unwrap_or_default().contains(".TH custody"), "{page:#}");
    let script = checks.doc("completions", "completions bash", &store.cmd(&["--json", "completions", "bash"]).run(), 0);
    assert!(script["script"].as_str().unwrap_or_default().contains("_custody"), "{script:#}");

    // Failures: the error document with each exit code.
    checks.error(
        "clip past the end (exit 2)",
        &store.cmd(&["--json", "clip", &mp4, "--from", "frame:1", "--to", "frame:9999"]).run(),
        2,
    );
    checks.error(
        "clip of a file FFmpeg cannot open (exit 2)",
        &store.cmd(&["--json", "clip", &blob, "--from", "0", "--to", "1"]).run(),
        2,
    );
    checks.error(
        "export into a missing directory (exit 3)",
        &store.cmd(&["--json", "export", "--out", "no-such-dir/ledger.jsonl"]).run(),
        3,
    );
    // A value the command-line parser refuses: the error document too (clap's own message,
    // which starts `error:`, goes to stderr).
    let parse = store.cmd(&["--json", "clip", &mp4, "--from", "bogus", "--to", "1"]).run();
    parse.status(2);
    let doc = checks.doc("error", "clip --from bogus (exit 2)", &parse, 2);
    assert_eq!(doc["exit_code"], json!(2), "{doc:#}");
    assert!(doc["error"].as_str().unwrap_or_default().contains("bogus"), "{doc:#}");
    // A ledger altered outside custody: verify reports it (exit 1, no recovery attempted), and
    // every other command refuses the store with the error document (exit 1).
    store.sqlite().execute_batch("DROP TRIGGER events_no_update").expect("drop a trigger");
    let altered = checks.doc("verify", "verify an altered ledger schema", &store.cmd(&["--json", "verify"]).run(), 1);
    assert_eq!(altered["recovery"], Value::Null, "{altered:#}");
    checks.error("log on an altered ledger (exit 1)", &store.cmd(&["--json", "log"]).run(), 1);
    checks.validate();
}

/// still, clip (copy, exact and smart), rewrap, redact (copy and --preview), package, verify BUNDLE (ok
/// and mismatch), batch (--dry-run, run, re-run with every step skipped, a job refused).
#[test]
fn derivation_commands_print_documents_that_validate() {
    let store = Store::new();
    let mut checks = Checks::new();
    let mp4 = store.ingest_fixture(Fixture::H264Mp4).id;

    checks.doc(
        "still",
        "still --at ×2",
        &store.cmd(&["--json", "still", &mp4, "--at", "frame:10", "--at", "00:00:01"]).run(),
        0,
    );
    let copy = checks.doc(
        "clip",
        "clip (copy, from a non-keyframe)",
        &store.cmd(&["--json", "clip", &mp4, "--from", "00:00:00.5", "--to", "00:00:01.5"]).run(),
        0,
    );
    assert_eq!(copy["mode"], "copy", "{copy:#}");
    checks.doc(
        "clip",
        "clip --mode exact",
        &store.cmd(&["--json", "clip", &mp4, "--from", "frame:5", "--to", "frame:20", "--mode", "exact"]).run(),
        0,
    );
    let smart = checks.doc(
        "clip",
        "clip --mode smart",
        &store.cmd(&["--json", "clip", &mp4, "--from", "frame:5", "--to", "frame:20", "--mode", "smart"]).run(),
        0,
    );
    assert_eq!(smart["mode"], "smart", "{smart:#}");
    checks.doc("rewrap", "rewrap", &store.cmd(&["--json", "rewrap", &mp4]).run(), 0);
    let redacted = checks.doc(
        "redact",
        "redact (box and mute)",
        &store
            .cmd(&[
                "--json",
                "redact",
                &mp4,
                "--box",
                "10,10,100,50@00:00:00.5-00:00:01.5",
                "--mute",
                "00:00:01-00:00:02",
            ])
            .args(&["--reason", "plate"])
            .run(),
        0,
    );
    let redacted_id = redacted["item"].as_str().expect("redacted item").to_owned();
    checks.doc(
        "redact",
        "redact --preview",
        &store.cmd(&["--json", "redact", &mp4, "--box", "10,10,100,50", "--reason", "plate", "--preview"]).run(),
        0,
    );

    checks.doc(
        "package",
        "package",
        &store
            .cmd(&[
                "--json",
                "package",
                &mp4,
                &redacted_id,
                "--out",
                "bundle.zip",
                "--recipient",
                "ADA",
                "--purpose",
                "discovery",
            ])
            .run(),
        0,
    );
    checks.doc("verify", "verify BUNDLE", &store.cmd(&["--json", "verify", "bundle.zip"]).run(), 0);
    // A court medium: a folder, an image, a set of two discs.
    checks.doc(
        "media",
        "media --out DIR",
        &store.cmd(&["--json", "media", &mp4, &redacted_id, "--profile", "court", "--out", "usb"]).run(),
        0,
    );
    checks.doc(
        "media",
        "media --out IMAGE.iso",
        &store.cmd(&["--json", "media", &mp4, "--profile", "court", "--out", "disc.iso"]).run(),
        0,
    );
    let set = checks.doc(
        "media",
        "media --disc BYTES (a set)",
        &store
            .cmd(&[
                "--json",
                "media",
                &mp4,
                &redacted_id,
                "--profile",
                "court",
                "--disc",
                "1120000",
                "--out",
                "set.iso",
            ])
            .run(),
        0,
    );
    assert_eq!(set["medium"]["discs"].as_array().map(Vec::len), Some(2), "{set:#}");
    checks.doc("verify", "verify IMAGE.iso", &store.cmd(&["--json", "verify", "disc.iso"]).run(), 0);
    let wrong = format!("1:{}", "a".repeat(64));
    checks.doc(
        "verify",
        "verify BUNDLE --against another head",
        &store.cmd(&["--json", "verify", "bundle.zip", "--against", &wrong]).run(),
        1,
    );

    let job = write(
        &store.work().join("job.yaml"),
        format!(
            "job: schema check\nsteps:\n  - id: cut\n    clip: {{item: {mp4}, from: \"frame:2\", to: \"frame:12\"}}\n  \
             - id: pics\n    still: {{item: cut, at: [\"frame:1\"]}}\n  \
             - id: bundle\n    package: {{items: [cut, pics], out: job.zip, recipient: \"R\"}}\n"
        ),
    );
    let job = job.to_str().expect("UTF-8 path");
    checks.doc("batch", "batch --dry-run", &store.cmd(&["--json", "batch", job, "--dry-run"]).run(), 0);
    checks.doc("batch", "batch", &store.cmd(&["--json", "batch", job]).run(), 0);
    let again = checks.doc("batch", "batch again (every step skipped)", &store.cmd(&["--json", "batch", job]).run(), 0);
    assert!(again["steps"].as_array().expect("steps").iter().all(|s| s["status"] == "skipped"), "{again:#}");
    let bad = write(
        &store.work().join("bad.yaml"),
        format!("job: bad\nsteps:\n  - clip: {{item: {mp4}, from: \"frame:1\", to: \"frame:9999\"}}\n"),
    );
    checks.error("batch with a refused job (exit 2)", &store.cmd(&["--json", "batch"]).arg(&bad).run(), 2);
    checks.validate();
}

/// enhance (a video with its sound, with --from/--to; an audio-only item, with a step out of the
/// usual order; --preview; --list) and redo (by event and by item). A redo that differs is not
/// produced here (a re-run of the same code on the same libraries reproduces), so each shape of
/// `first_difference` that src/cmd/redo.rs prints is checked on a copy of a real document.
#[test]
fn enhancement_commands_print_documents_that_validate() {
    let store = Store::new();
    let mut checks = Checks::new();
    let mp4 = store.ingest_fixture(Fixture::H264Mp4).id;
    let wav = store.ingest_fixture(Fixture::Wav).id;

    let video = checks.doc(
        "enhance",
        "enhance (video and audio, --from/--to)",
        &store
            .cmd(&["--json", "enhance", &mp4, "--step", "levels:white=200,gamma=1.3", "--step", "sharpen"])
            .args(&["--from", "frame:5", "--to", "frame:29"])
            .run(),
        0,
    );
    assert_eq!(video["event"], video["head"]["seq"], "{video:#}");
    let kinds: Vec<&str> =
        video["streams"].as_array().expect("streams").iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(kinds, ["video", "audio"], "{video:#}");
    let audio = checks.doc(
        "enhance",
        "enhance (audio-only item, steps out of order)",
        &store.cmd(&["--json", "enhance", &wav, "--step", "highpass:frequency=200", "--step", "declick"]).run(),
        0,
    );
    assert!(audio["warnings"].as_array().is_some_and(|w| !w.is_empty()), "no order warning: {audio:#}");
    let preview = checks.doc(
        "enhance",
        "enhance --preview",
        &store
            .cmd(&["--json", "enhance", &mp4, "--step", "sharpen", "--preview", "--out", "sheets", "--at", "frame:10"])
            .run(),
        0,
    );
    assert_eq!(preview["files"].as_array().map(Vec::len), Some(1), "{preview:#}");
    let list = checks.doc("enhance", "enhance --list", &store.cmd(&["--json", "enhance", "--list"]).run(), 0);
    let media: BTreeSet<&str> =
        list["steps"].as_array().expect("steps").iter().filter_map(|s| s["medium"].as_str()).collect();
    assert_eq!(media, BTreeSet::from(["audio", "video"]), "{list:#}");

    let seq = video["event"].as_u64().expect("event").to_string();
    let redo = checks.doc("redo", "redo EVENT (enhance)", &store.cmd(&["--json", "redo", &seq]).run(), 0);
    assert_eq!(redo["reproduced"], true, "{redo:#}");
    let item = audio["item"].as_str().expect("item");
    let by_item = checks.doc("redo", "redo ITEM (enhance)", &store.cmd(&["--json", "redo", item]).run(), 0);
    assert_eq!(by_item["event"], audio["event"], "{by_item:#}");

    // The shapes a redo that differs prints (exit 1).
    for (label, difference) in [
        ("an enhanced copy's first differing frame", json!({"stream": "audio", "frame": 3})),
        ("another output's first differing frame", json!({"frame": 0})),
        ("a difference in the container", json!({"container": true})),
    ] {
        let mut differs = redo.clone();
        differs["reproduced"] = json!(false);
        differs["libraries_changed"] = json!(["libavcodec 59.37.100 then, 60.3.100 now"]);
        differs["outputs"][0]["identical"] = json!(false);
        differs["outputs"][0]["sha256"] = json!("0".repeat(64));
        differs["outputs"][0]["first_difference"] = difference;
        checks.add("redo", &format!("redo that differs: {label}"), differs, "valid");
    }
    let mut bad = redo.clone();
    bad["outputs"][0]["first_difference"] = json!({"frame": "3"});
    checks.add("redo", "redo with a frame as text", bad, "invalid");
    let mut bad = redo;
    bad["action"] = json!("ingest");
    checks.add("redo", "redo of an ingest", bad, "invalid");
    let mut bad = video.clone();
    bad["streams"][0]["frame_md5"][0] = json!("not an md5");
    checks.add("enhance", "enhance with a frame MD5 that is not one", bad, "invalid");
    let mut bad = video;
    bad["steps"][0]["params"]["gamma"] = json!(1.3);
    checks.add("enhance", "enhance with a parameter as a float", bad, "invalid");
    let mut bad = audio;
    bad["streams"][0].as_object_mut().expect("stream").remove("sample_rate");
    checks.add("enhance", "enhance with an audio stream without its sample rate", bad, "invalid");
    checks.validate();
}
