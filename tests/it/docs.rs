//! The user guide's examples run as tests, so the docs cannot rot: every `console` block of
//! docs/walkthroughs.md, then of every other page of docs/ (in name order), in one shell, on
//! the sample DVR export `bins/demo` uses; the pages' examples build on the walkthroughs' store.
//! `$ CMD` lines are run; the lines after one are expected in its output (`...` matches
//! anything); `[exit: N]` gives the expected exit code (default 0).

use std::path::Path;
use std::process::Command;

use custody::media::synth::{Fixture, generate};

struct Example {
    page: String,
    command: String,
    expect: Vec<String>,
    exit: i32,
    line: usize,
}

fn examples(page: &str, markdown: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_block = false;
    for (i, line) in markdown.lines().enumerate() {
        if line.starts_with("```") {
            in_block = line == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Example {
                page: page.to_owned(),
                command: cmd.to_owned(),
                expect: Vec::new(),
                exit: 0,
                line: i + 1,
            });
        } else if let Some(code) = line.strip_prefix("[exit: ").and_then(|l| l.strip_suffix(']')) {
            out.last_mut().expect("an exit code follows a command").exit = code.parse().expect("exit code");
        } else if !line.trim().is_empty() {
            out.last_mut().expect("output follows a command").expect.push(line.trim().to_owned());
        }
    }
    out
}

/// Whether `text` holds `pattern`, where `...` in the pattern matches anything (within a line).
fn holds(text: &str, pattern: &str) -> bool {
    text.lines().any(|l| {
        let mut rest = l;
        pattern.split("...").all(|piece| match rest.find(piece) {
            Some(at) => {
                rest = &rest[at + piece.len()..];
                true
            }
            None => false,
        })
    })
}

/// The sample export of bins/demo: channel 1 as AVI and raw H.264, a proprietary file, audio,
/// and the DVR's MD5 list.
fn sample_export(dir: &Path) {
    let export = dir.join("usb/DVR_EXPORT");
    std::fs::create_dir_all(export.join("CH01")).unwrap();
    std::fs::create_dir_all(export.join("AUDIO")).unwrap();
    generate(Fixture::RawH264, &export.join("CH01/ch01_20240501_140000.h264")).unwrap();
    generate(Fixture::MjpegAvi, &export.join("CH01/ch01_20240501_140000.avi")).unwrap();
    generate(Fixture::Proprietary, &export.join("CH01/ch01_20240501_140000.dvr")).unwrap();
    generate(Fixture::Wav, &export.join("AUDIO/overhear.wav")).unwrap();
    let md5 = Command::new("bash")
        .arg("-c")
        .arg("md5sum CH01/* AUDIO/* > MD5SUMS.txt")
        .current_dir(&export)
        .status()
        .unwrap();
    assert!(md5.success());
}

#[test]
fn the_walkthroughs_and_every_pages_examples_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "walkthroughs.md")
        .collect();
    pages.sort();
    pages.insert(0, "walkthroughs.md".to_owned());
    let mut list = Vec::new();
    let mut tested_pages = 0;
    for page in &pages {
        let doc = std::fs::read_to_string(root.join("docs").join(page)).unwrap();
        let found = examples(page, &doc);
        tested_pages += usize::from(!found.is_empty());
        list.extend(found);
    }
    assert!(list.len() > 40 && tested_pages >= 12, "{} commands on {tested_pages} pages", list.len());
    let work = tempfile::tempdir().unwrap();
    sample_export(work.path());
    // Pages name the repository's own scripts as docs/…
    std::os::unix::fs::symlink(root.join("docs"), work.path().join("docs")).unwrap();
    let out_dir = work.path().join(".doc-run");
    std::fs::create_dir(&out_dir).unwrap();
    // One shell runs them all, so `export` and `cd` carry over as a reader's would.
    let mut script = String::from("set +e\n");
    for (n, ex) in list.iter().enumerate() {
        script.push_str(&format!(
            "{{ {} ; }} > '{}/{n}.out' 2>&1\necho $? > '{}/{n}.rc'\n",
            ex.command,
            out_dir.display(),
            out_dir.display()
        ));
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_custody")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .env_remove("CUSTODY_STORE")
        .env_remove("CUSTODY_EXAMINER")
        .env("CUSTODY_CONFIG", "/nonexistent/custody-docs-config.yaml")
        .env("NO_COLOR", "1")
        .status()
        .unwrap();
    assert!(status.success());
    for (n, ex) in list.iter().enumerate() {
        let output = std::fs::read_to_string(out_dir.join(format!("{n}.out"))).unwrap();
        let rc: i32 = std::fs::read_to_string(out_dir.join(format!("{n}.rc"))).unwrap().trim().parse().unwrap();
        assert_eq!(
            rc, ex.exit,
            "docs/{} line {}: `{}` exited {rc}, expected {}:\n{output}",
            ex.page, ex.line, ex.command, ex.exit
        );
        for e in &ex.expect {
            assert!(
                holds(&output, e),
                "docs/{} line {}: `{}` did not print\n  {e}\nIt printed:\n{output}",
                ex.page,
                ex.line,
                ex.command
            );
        }
    }
}

#[test]
fn the_example_matcher_can_fail() {
    assert!(holds("ledger head: 2:abc", "ledger head: ..."));
    assert!(holds("  i6   frame 15  x.png", "i6   frame 15"));
    assert!(!holds("ledger head: 2:abc", "ledger tail: ..."));
    assert!(!holds("abc", "a...d"));
    let ex = examples("t.md", "```console\n$ true\nout\n$ false\n[exit: 1]\n```\n```sh\n$ not run\n```\n");
    assert_eq!(ex.len(), 2);
    assert_eq!((ex[0].expect.len(), ex[1].exit), (1, 1));
}

/// Statements of the docs that no example can show, held to the behaviour they describe: how
/// `NO_COLOR` works (docs/json.md said any value, empty too, turned colour off; an empty one
/// does not, as no-color.org defines it), what `completions --json` prints (docs/json.md said
/// nothing; it prints its document), and when `hash --check` prints counts (only when
/// something is wrong, as `sha256sum -c` does).
#[test]
fn the_docs_say_what_no_color_completions_and_hash_check_do() {
    use crate::support::cmd;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json_md = std::fs::read_to_string(root.join("docs/json.md")).unwrap();
    let hash_md = std::fs::read_to_string(root.join("docs/hash.md")).unwrap();
    let paragraph = |page: &str, start: &str| -> String {
        let mut lines = page.lines().skip_while(|l| !l.starts_with(start));
        let first = lines.next().unwrap_or_else(|| panic!("no line starting {start:?}")).to_owned();
        let rest: Vec<&str> =
            lines.take_while(|l| l.starts_with("  ") || (!l.is_empty() && !l.starts_with('*'))).collect();
        format!("{first} {}", rest.join(" "))
    };

    let coloured = |no_color: &str| {
        let help = cmd(&["--help"]).env("NO_COLOR", no_color).env("CLICOLOR_FORCE", "1").run();
        help.status(0).stdout().contains("\x1b[")
    };
    assert!(coloured(""), "an empty NO_COLOR turned colour off");
    assert!(!coloured("1"), "NO_COLOR=1 left colour on");
    let no_color = paragraph(&json_md, "* `NO_COLOR`");
    assert!(
        no_color.contains("non-empty") && !no_color.contains("whatever its value"),
        "docs/json.md on NO_COLOR: {no_color}"
    );

    let completions = cmd(&["--json", "completions", "bash"]).run().status(0).json();
    assert!(completions["script"].as_str().is_some_and(|s| s.contains("_custody")), "{completions:#}");
    let row = json_md.lines().find(|l| l.starts_with("| `man` (no `--out`), `completions`")).expect("the row");
    assert!(row.contains("`script`") && !row.contains("**nothing**"), "docs/json.md on completions: {row}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "a\n").unwrap();
    let list = cmd(&["hash", "-a", "sha256", "a"]).current_dir(dir.path()).run().status(0).stdout.clone();
    std::fs::write(dir.path().join("SUMS"), &list).unwrap();
    let passing = cmd(&["hash", "--check", "SUMS"]).current_dir(dir.path()).run();
    passing.status(0).stdout_is("a: OK\n");
    assert_eq!(passing.stderr(), "", "a passing check printed on stderr");
    std::fs::write(dir.path().join("a"), "changed\n").unwrap();
    cmd(&["hash", "--check", "SUMS"])
        .current_dir(dir.path())
        .run()
        .status(1)
        .stdout_is("a: FAILED\n")
        .stderr_has("WARNING: 1 computed checksum did NOT match");
    let check = paragraph(&hash_md, "Verifies a list");
    assert!(
        check.contains("a passing check prints no count")
            && check.contains("WARNING: N computed checksum(s) did NOT match"),
        "docs/hash.md on --check: {check}"
    );
}
