//! Faults the foundation must survive: a store locked past the timeout, a full disk, a
//! process killed after its event was committed. Each must exit with the documented code,
//! record nothing (or exactly what was acknowledged), and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn custody(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("CUSTODY_EXAMINER", "Fault Tester")
        .env_remove("CUSTODY_STORE")
        .output()
        .expect("custody runs")
}

#[track_caller]
fn expect(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{stderr}", String::from_utf8_lossy(&out.stdout));
    stderr
}

fn init(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_custody")).arg("init").arg(&store).output().unwrap();
    expect(&out, 0);
    store
}

fn event_count(store: &Path) -> usize {
    let out = custody(store, &["--json", "log"]);
    expect(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["events"].as_array().unwrap().len()
}

fn tmp_entries(store: &Path) -> Vec<String> {
    std::fs::read_dir(store.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn object_count(store: &Path) -> usize {
    walkdir(&store.join("objects"))
}

fn walkdir(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() { walkdir(&e.path()) } else { 1 }
        })
        .sum()
}

#[test]
fn a_store_locked_past_the_timeout_exits_3_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let evidence = dir.path().join("clip.bin");
    std::fs::write(&evidence, b"evidence bytes").unwrap();
    // Another process holds the store lock for longer than we are willing to wait.
    let mut holder = Command::new("flock").arg("-x").arg(store.join("lock")).args(["sleep", "3"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out =
        custody(&store, &["--lock-timeout", "1", "ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"]);
    let stderr = expect(&out, 3);
    assert!(stderr.contains("locked by another custody process"), "{stderr}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(event_count(&store), 1, "only the init event");
    assert_eq!(object_count(&store), 0);
    assert!(tmp_entries(&store).is_empty(), "left behind: {:?}", tmp_entries(&store));
    // Once the lock is free the same command succeeds.
    expect(&custody(&store, &["ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"]), 0);
}

/// Mount a small tmpfs (needs root; skipped otherwise, saying so).
fn small_tmpfs(at: &Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_the_copy_exits_3_records_nothing_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    if !small_tmpfs(&mnt, "3m") {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    let _guard = Unmount(mnt.clone());
    let store = init(&mnt);
    let evidence = dir.path().join("big.bin");
    std::fs::write(&evidence, vec![0x5au8; 6 << 20]).unwrap();
    let out = custody(&store, &["ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"]);
    let stderr = expect(&out, 3);
    assert!(stderr.contains("full"), "{stderr}");
    assert!(stderr.contains("big.bin"), "names the file: {stderr}");
    assert_eq!(event_count(&store), 1);
    assert_eq!(object_count(&store), 0);
    assert!(tmp_entries(&store).is_empty(), "left behind: {:?}", tmp_entries(&store));
    // The fault goes away: the same command succeeds.
    let status = Command::new("mount").args(["-o", "remount,size=32m"]).arg(&mnt).status().unwrap();
    assert!(status.success());
    expect(&custody(&store, &["ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"]), 0);
    expect(&custody(&store, &["verify"]), 0);
}

#[test]
fn a_process_killed_after_its_commit_is_completed_by_recovery_and_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let evidence = dir.path().join("scene.bin");
    std::fs::write(&evidence, b"bytes committed but never moved into place").unwrap();
    // Kill the process at its first renameat2: the event is committed, the object still staged.
    let out = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "inject=renameat2:signal=SIGKILL:when=1"])
        .arg(env!("CARGO_BIN_EXE_custody"))
        .arg("--store")
        .arg(&store)
        .args(["ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"])
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: strace is not available");
        return;
    };
    assert_ne!(out.status.code(), Some(0), "the process was killed");
    assert_eq!(event_count(&store), 2, "the event was committed before the kill");
    assert_eq!(object_count(&store), 0, "its object is still staged");
    // verify finishes the interrupted commit and then finds everything intact.
    let out = custody(&store, &["verify"]);
    expect(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("recovery finished 1 object"));
    assert_eq!(object_count(&store), 1);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn a_process_killed_before_its_commit_leaves_nothing_recorded_and_verify_tidies_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let evidence = dir.path().join("scene.bin");
    std::fs::write(&evidence, vec![7u8; 3 << 20]).unwrap();
    // Kill the process at its first fsync: the copy is staged, nothing is committed.
    let Ok(out) = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "inject=fsync:signal=SIGKILL:when=1"])
        .arg(env!("CARGO_BIN_EXE_custody"))
        .arg("--store")
        .arg(&store)
        .args(["ingest", evidence.to_str().unwrap(), "--case", "C1", "--item", "1"])
        .output()
    else {
        eprintln!("skipped: strace is not available");
        return;
    };
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(event_count(&store), 1, "nothing was recorded");
    assert_eq!(tmp_entries(&store).len(), 1, "the dead command's staging directory");
    expect(&custody(&store, &["verify"]), 0);
    assert!(tmp_entries(&store).is_empty(), "recovery removed it");
    assert_eq!(object_count(&store), 0);
}

/// Ctrl-C in the middle of the copy of a large file: the command says it recorded nothing,
/// removes its staging (nothing waits in tmp/ for recovery) and exits 130, as a shell reports a
/// command stopped by SIGINT. The store is as it was; the same ingest then succeeds.
#[test]
fn ctrl_c_during_an_ingest_records_nothing_removes_the_staging_and_exits_130() {
    let store = crate::support::Store::new();
    // 512 MiB, sparse: the copy takes long enough (seconds) to be caught part-way.
    let big = store.work().join("dvr_dump.bin");
    std::fs::File::create(&big).unwrap().set_len(512 << 20).unwrap();
    let before = store.snapshot();
    let mut running = store.cmd(&["ingest", "--case", "24-9", "--item", "1"]).arg(&big).spawn();
    // Wait until the copy is under way: bytes in a partial file of its staging directory.
    while !copy_under_way(store.path()) {
        assert!(!running.exited(), "the ingest finished before it could be interrupted");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.status(130).stderr_has("interrupted, nothing recorded").stderr_has("staged files were removed");
    store.assert_unchanged(&before);
    store.cmd(&["ingest", "--case", "24-9", "--item", "1"]).arg(&big).run().status(0);
}

/// Whether a staging directory of `store` holds a partial copy with bytes in it.
fn copy_under_way(store: &Path) -> bool {
    let Ok(dirs) = std::fs::read_dir(store.join("tmp")) else { return false };
    dirs.flatten().any(|d| {
        std::fs::read_dir(d.path())
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| f.file_name().to_string_lossy().starts_with("partial-") && f.metadata().is_ok_and(|m| m.len() > 0))
    })
}

/// `custody export | head`: the reader closes the pipe after the first bytes. That is no error:
/// the command ends quietly with 0 (it used to print "Broken pipe" and exit 3). The ledger is
/// made larger than a pipe holds, so the command is still writing when the pipe closes.
#[test]
fn output_into_a_pipe_closed_early_ends_quietly_with_0() {
    let store = crate::support::Store::new();
    let note = "n".repeat(100_000);
    for item in ["1", "2", "3"] {
        let file = store.file(&format!("scene-{item}.txt"), item);
        store.cmd(&["ingest", "--case", "24-9", "--item", item, "--note", &note]).arg(&file).run().status(0);
    }
    let commands: [&[&str]; 5] =
        [&["export"], &["export", "--format", "case"], &["--json", "export"], &["log"], &["--json", "log"]];
    for args in commands {
        let mut running = store.cmd(args).spawn();
        assert_eq!(running.read_then_close_stdout(10).len(), 10);
        running.wait().status(0).stderr_lacks("Broken pipe").stderr_lacks("error");
    }
}
