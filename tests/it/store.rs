//! `custody init` and how commands find the store: `--store`, CUSTODY_STORE, or searching
//! upward from the current directory; and what happens when there is none or it cannot be
//! written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Store, cmd, files_under, permissions_are_bypassed};

/// Every file under `dir` with its bytes and mode: "nothing changed" means this is equal.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).expect("read");
            let mode = fs::metadata(&p).expect("metadata").permissions().mode();
            (p, bytes, mode)
        })
        .collect()
}

#[test]
fn init_creates_a_ledger_and_an_empty_objects_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("evidence");
    let out = cmd(&["init"]).arg(&root).args(&["--agency", "Metro PD"]).run();
    out.status(0).stdout_has("Created custody store").stdout_has("Metro PD");
    let ledger = fs::read(root.join("ledger.db")).expect("ledger.db exists");
    assert!(ledger.starts_with(b"SQLite format 3\0"), "ledger.db is not an SQLite database");
    assert!(root.join("objects").is_dir(), "objects/ missing");
    assert_eq!(files_under(&root.join("objects")), Vec::<PathBuf>::new());
    // The first event is the init itself, and its head is printed.
    let head = out.head();
    assert!(head.starts_with("1:"), "head {head}");
    let log = cmd(&["--json", "log"]).arg("--store").arg(&root).run().status(0).json();
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "init");
    assert_eq!(events[0]["params"]["agency"], "Metro PD");
    assert_eq!(events[0]["examiner"], crate::support::EXAMINER);
    // UTC, RFC 3339 with milliseconds: 2024-05-01T15:02:03.456Z
    let time = events[0]["time"].as_str().unwrap();
    let shape: String = time.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "event time {time}");
    assert_eq!(format!("{}:{}", log["head"]["seq"], log["head"]["hash"].as_str().unwrap()), head);
}

#[test]
fn init_twice_fails_with_exit_2_and_changes_nothing() {
    let store = Store::new();
    let before = tree(store.path());
    cmd(&["init"])
        .arg(store.path())
        .run()
        .status(2)
        .stderr_has("already a custody store")
        .stderr_has(&store.path().display().to_string());
    assert_eq!(tree(store.path()), before, "the second init changed the store");
    assert_eq!(store.event_count(), 1);
}

#[test]
fn store_flag_wins_over_custody_store_variable() {
    let a = Store::new();
    let b = Store::new();
    let out = cmd(&["--json", "verify"]).arg("--store").arg(a.path()).env("CUSTODY_STORE", b.path()).run();
    assert_eq!(out.status(0).json()["store"], a.path().display().to_string());
}

#[test]
fn custody_store_variable_names_the_store() {
    let a = Store::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = cmd(&["--json", "verify"]).env("CUSTODY_STORE", a.path()).current_dir(elsewhere.path()).run();
    assert_eq!(out.status(0).json()["store"], a.path().display().to_string());
}

#[test]
fn store_is_found_by_searching_upward_from_a_subdirectory() {
    let store = Store::new();
    let item = store.ingest_text("24-1", "1", "note.txt", "found upward\n");
    let sha = item["sha256"].as_str().unwrap();
    // Deep in objects/ (a bucket's store holds none: its objects/ stays empty).
    let subdir =
        if store.local_objects() { store.path().join("objects").join(&sha[..2]) } else { store.path().join("objects") };
    assert!(subdir.is_dir());
    // No --store, no CUSTODY_STORE: the store is the nearest parent that is one.
    let out = cmd(&["--json", "show", "i1"]).current_dir(&subdir).run();
    let json = out.status(0).json();
    assert_eq!(json["file"]["sha256"], sha);
    let verify = cmd(&["--json", "verify"]).current_dir(&subdir).run();
    assert_eq!(verify.status(0).json()["store"], store.path().display().to_string());
}

#[test]
fn no_store_found_exits_2_and_says_how_to_create_one() {
    let nowhere = tempfile::tempdir().unwrap();
    cmd(&["log"])
        .current_dir(nowhere.path())
        .run()
        .status(2)
        .stderr_has("no custody store found")
        .stderr_has("custody init");
}

#[test]
fn store_flag_naming_a_directory_that_is_not_a_store_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    cmd(&["log"])
        .arg("--store")
        .arg(dir.path())
        .run()
        .status(2)
        .stderr_has("is not a custody store")
        .stderr_has("custody init");
}

#[test]
fn init_on_a_read_only_path_exits_3() {
    // /proc refuses new directories even to root.
    let target = Path::new("/proc/self/custody-store-test");
    cmd(&["init"]).arg(target).run().status(3).stderr_has("/proc/self/custody-store-test");
    assert!(!target.exists());
}

#[test]
fn init_in_a_directory_without_write_permission_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    if permissions_are_bypassed(&locked) {
        eprintln!("skipped: this process (root?) writes through mode 0555; see init_on_a_read_only_path_exits_3");
        return;
    }
    let target = locked.join("store");
    cmd(&["init"]).arg(&target).run().status(3).stderr_has(&target.display().to_string());
    assert!(!target.exists(), "a failed init left {} behind", target.display());
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The config file fills in what neither the command line nor the environment gives: command
/// line > environment > file; a bad key is named with its line, exit 2.
#[test]
fn the_config_file_gives_examiner_agency_and_store_below_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let store = dir.path().join("st");
    std::fs::write(&config, format!("examiner: Tech. K. Ruiz\nagency: Metro PD\nstore: {}\n", store.display()))
        .unwrap();
    let run = |args: &[&str], examiner: Option<&str>| {
        let mut c = crate::support::cmd(args).env("CUSTODY_CONFIG", &config);
        c = match examiner {
            Some(e) => c.env("CUSTODY_EXAMINER", e),
            None => c.env_remove("CUSTODY_EXAMINER"),
        };
        c.run()
    };
    run(&["init", store.to_str().unwrap()], None).status(0).stdout_has("for Metro PD");
    // The store comes from the file; the examiner from the file, then the environment, then the flag.
    let log = run(&["--json", "export"], None);
    log.status(0);
    let first: serde_json::Value = serde_json::from_str(log.stdout().lines().next().unwrap()).unwrap();
    assert_eq!(first["event"]["examiner"], "Tech. K. Ruiz");
    assert_eq!(first["event"]["params"]["agency"], "Metro PD");
    let f = dir.path().join("note.txt");
    std::fs::write(&f, "x").unwrap();
    run(&["ingest", f.to_str().unwrap(), "--case", "C", "--item", "1"], Some("From Env")).status(0);
    run(&["--examiner", "From Flag", "ingest", f.to_str().unwrap(), "--case", "C", "--item", "2"], Some("From Env"))
        .status(0);
    let out = run(&["export"], None);
    let examiners: Vec<String> = out
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]["examiner"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(examiners, ["Tech. K. Ruiz", "From Env", "From Flag"]);
    std::fs::write(&config, "examiner: x\nstor: /tmp\n").unwrap();
    run(&["log"], None).status(2).stderr_has("line 2 column 1").stderr_has("stor");
}

/// Completions and manual pages come from the same definitions as the commands.
#[test]
fn completions_and_manual_pages_cover_every_command() {
    let bash = crate::support::cmd(&["completions", "bash"]).run();
    bash.status(0);
    for sub in ["ingest", "redact", "package", "batch", "verify"] {
        assert!(bash.stdout().contains(sub), "bash completion lacks {sub}");
    }
    crate::support::cmd(&["completions", "zsh"]).run().status(0).stdout_has("#compdef custody");
    crate::support::cmd(&["man"]).run().status(0).stdout_has(".TH custody 1");
    let dir = tempfile::tempdir().unwrap();
    crate::support::cmd(&["man", "--out", dir.path().to_str().unwrap()]).run().status(0);
    for page in ["custody.1", "custody-redact.1", "custody-package.1", "custody-batch.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a manual page");
    }
    crate::support::cmd(&["completions", "tcsh"]).run().status(2);
}

/// A store whose path is not UTF-8 works, and its JSON report names it as text (it crashed).
#[test]
fn a_store_path_that_is_not_utf8_is_reported_not_a_crash() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"case\xff store"));
    let out = crate::support::cmd(&["--json", "init"]).arg(&odd).run();
    out.status(0);
    assert!(out.json()["store"].as_str().unwrap().contains("case"), "{}", out.stdout());
    crate::support::cmd(&["--json", "--store"]).arg(&odd).arg("verify").run().status(0);
}
