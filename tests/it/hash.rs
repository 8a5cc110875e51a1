//! `custody hash`: output the standard tools produce and accept, and `--check` that fails
//! loudly (mismatch, missing file, malformed line).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::support::{Store, b3sum, cmd, digest_with, sha256sum, tool, write};

/// A directory with a few small files; returns it.
fn sample(dir: &Path) -> &Path {
    write(&dir.join("a.txt"), b"alpha\n");
    write(&dir.join("b.bin"), [0u8, 1, 2, 3, 255].repeat(1000));
    write(&dir.join("sub/c.txt"), b"");
    dir
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn hash_prints_tagged_sha256_and_blake3_lines_matching_sha256sum_and_b3sum() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = cmd(&["hash", "a.txt", "b.bin", "sub/c.txt"]).current_dir(dir.path()).run();
    let mut want = String::new();
    for name in ["a.txt", "b.bin", "sub/c.txt"] {
        let p = dir.path().join(name);
        want.push_str(&format!("SHA256 ({name}) = {}\nBLAKE3 ({name}) = {}\n", sha256sum(&p), b3sum(&p)));
    }
    out.status(0).stdout_is(&want);
    // The SHA256 lines are exactly what `sha256sum --tag` prints.
    let tagged = tool("sha256sum", &[os("--tag"), os("a.txt")], dir.path());
    assert!(out.stdout().contains(&tagged.stdout()), "{}", tagged.stdout());
}

#[test]
fn hash_sha256_output_is_sha256sums_output_and_passes_sha256sum_check() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = cmd(&["hash", "-a", "sha256", "a.txt", "b.bin", "sub/c.txt"]).current_dir(dir.path()).run();
    let oracle = tool("sha256sum", &[os("a.txt"), os("b.bin"), os("sub/c.txt")], dir.path());
    out.status(0).stdout_is(&oracle.stdout);
    write(&dir.path().join("SHA256SUMS"), &out.stdout);
    tool("sha256sum", &[os("-c"), os("SHA256SUMS")], dir.path()).status(0);
}

#[test]
fn hash_blake3_output_is_b3sums_output_and_passes_b3sum_check() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = cmd(&["hash", "-a", "blake3", "a.txt", "b.bin", "sub/c.txt"]).current_dir(dir.path()).run();
    let oracle = tool("b3sum", &[os("a.txt"), os("b.bin"), os("sub/c.txt")], dir.path());
    out.status(0).stdout_is(&oracle.stdout);
    write(&dir.path().join("B3SUMS"), &out.stdout);
    tool("b3sum", &[os("-c"), os("B3SUMS")], dir.path()).status(0);
}

#[test]
fn hash_sums_writes_lists_that_sha256sum_and_b3sum_accept() {
    let dir = tempfile::tempdir().unwrap();
    sample(&dir.path().join("export"));
    cmd(&["hash", "--sums", "lists", "export"]).current_dir(dir.path()).run().status(0);
    let sha_list = fs::read_to_string(dir.path().join("lists/SHA256SUMS")).expect("SHA256SUMS written");
    let b3_list = fs::read_to_string(dir.path().join("lists/B3SUMS")).expect("B3SUMS written");
    // Every file under export/ is listed, once.
    assert_eq!(sha_list.lines().count(), 3, "{sha_list}");
    assert_eq!(b3_list.lines().count(), 3, "{b3_list}");
    tool("sha256sum", &[os("-c"), os("lists/SHA256SUMS")], dir.path()).status(0).stdout_has("export/sub/c.txt: OK");
    tool("b3sum", &[os("-c"), os("lists/B3SUMS")], dir.path()).status(0).stdout_has("export/b.bin: OK");
    // And they fail when a byte changes: the lists really pin the contents.
    write(&dir.path().join("export/a.txt"), b"alphA\n");
    tool("sha256sum", &[os("-c"), os("lists/SHA256SUMS")], dir.path()).status(1);
    tool("b3sum", &[os("-c"), os("lists/B3SUMS")], dir.path()).status(1);
}

#[test]
fn names_with_a_line_break_or_backslash_are_escaped_exactly_as_sha256sum_and_b3sum_do() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["line\nbreak.txt", "back\\slash.txt", "both\\and\nboth.txt", "plain.txt"];
    for (i, name) in names.iter().enumerate() {
        write(&dir.path().join(name), format!("file {i}\n"));
    }
    let args: Vec<&OsStr> = names.iter().map(|n| os(n)).collect();
    let sha = cmd(&["hash", "-a", "sha256"]).args(&names).current_dir(dir.path()).run();
    sha.status(0).stdout_is(tool("sha256sum", &args, dir.path()).status(0).stdout.clone());
    let b3 = cmd(&["hash", "-a", "blake3"]).args(&names).current_dir(dir.path()).run();
    b3.status(0).stdout_is(tool("b3sum", &args, dir.path()).status(0).stdout.clone());
    // The escaped lists round-trip through the standard checkers and through --check.
    write(&dir.path().join("SHA256SUMS"), &sha.stdout);
    tool("sha256sum", &[os("-c"), os("SHA256SUMS")], dir.path()).status(0);
    cmd(&["hash", "--check", "SHA256SUMS"]).current_dir(dir.path()).run().status(0).stdout_lacks("FAILED");
    write(&dir.path().join("B3SUMS"), &b3.stdout);
    tool("b3sum", &[os("-c"), os("B3SUMS")], dir.path()).status(0);
}

#[test]
fn a_carriage_return_in_a_name_is_escaped_as_sha256sum_does() {
    // coreutils escapes CR too (b3sum only from 1.5 on, so it is not the oracle here).
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("cr\rname.txt"), b"cr\n");
    let out = cmd(&["hash", "-a", "sha256", "cr\rname.txt"]).current_dir(dir.path()).run();
    out.status(0).stdout_is(tool("sha256sum", &[os("cr\rname.txt")], dir.path()).status(0).stdout.clone());
    write(&dir.path().join("SHA256SUMS"), &out.stdout);
    tool("sha256sum", &[os("-c"), os("SHA256SUMS")], dir.path()).status(0);
    cmd(&["hash", "--check", "SHA256SUMS"]).current_dir(dir.path()).run().status(0);
}

#[test]
fn names_that_are_not_utf8_are_written_byte_for_byte_as_sha256sum_does() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"latin1-caf\xe9.avi");
    write(&dir.path().join(name), b"bytes\n");
    let out = cmd(&["hash", "-a", "sha256"]).arg(name).current_dir(dir.path()).run();
    out.status(0).stdout_is(tool("sha256sum", &[name], dir.path()).status(0).stdout.clone());
    write(&dir.path().join("SHA256SUMS"), &out.stdout);
    cmd(&["hash", "--check", "SHA256SUMS"]).current_dir(dir.path()).run().status(0);
}

#[test]
fn check_passes_a_good_list() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let list = tool("sha256sum", &[os("a.txt"), os("b.bin"), os("sub/c.txt")], dir.path());
    write(&dir.path().join("SHA256SUMS"), &list.stdout);
    cmd(&["hash", "--check", "SHA256SUMS"])
        .current_dir(dir.path())
        .run()
        .status(0)
        .stdout_is("a.txt: OK\nb.bin: OK\nsub/c.txt: OK\n");
}

#[test]
fn check_exits_1_naming_a_file_that_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let list = tool("sha256sum", &[os("a.txt"), os("b.bin")], dir.path());
    write(&dir.path().join("SHA256SUMS"), &list.stdout);
    write(&dir.path().join("b.bin"), b"tampered");
    cmd(&["hash", "--check", "SHA256SUMS"])
        .current_dir(dir.path())
        .run()
        .status(1)
        .stdout_has("a.txt: OK")
        .stdout_has("b.bin: FAILED")
        .stderr_has("did NOT match");
}

#[test]
fn check_exits_1_reporting_a_missing_file_rather_than_skipping_it() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let list = tool("sha256sum", &[os("a.txt"), os("b.bin")], dir.path());
    write(&dir.path().join("SHA256SUMS"), &list.stdout);
    fs::remove_file(dir.path().join("b.bin")).unwrap();
    cmd(&["hash", "--check", "SHA256SUMS"])
        .current_dir(dir.path())
        .run()
        .status(1)
        .stdout_has("a.txt: OK")
        .stdout_has("b.bin: FAILED")
        .stderr_has("could not be read");
}

#[test]
fn check_exits_1_on_a_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let mut list = tool("sha256sum", &[os("a.txt"), os("b.bin")], dir.path()).stdout;
    list.extend_from_slice(b"this is not a checksum line\n");
    write(&dir.path().join("SHA256SUMS"), &list);
    cmd(&["hash", "--check", "SHA256SUMS"])
        .current_dir(dir.path())
        .run()
        .status(1)
        .stdout_has("a.txt: OK")
        .stderr_has("line 3 is not a checksum line");
}

#[test]
fn check_accepts_a_b3sum_list_with_algo_blake3() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let list = tool("b3sum", &[os("a.txt"), os("b.bin")], dir.path());
    write(&dir.path().join("B3SUMS"), &list.stdout);
    cmd(&["hash", "-a", "blake3", "--check", "B3SUMS"])
        .current_dir(dir.path())
        .run()
        .status(0)
        .stdout_is("a.txt: OK\nb.bin: OK\n");
    write(&dir.path().join("a.txt"), b"changed\n");
    cmd(&["hash", "-a", "blake3", "--check", "B3SUMS"])
        .current_dir(dir.path())
        .run()
        .status(1)
        .stdout_has("a.txt: FAILED");
}

#[test]
fn hash_md5_and_sha1_match_md5sum_and_sha1sum() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = cmd(&["hash", "-a", "md5,sha1", "a.txt", "b.bin"]).current_dir(dir.path()).run();
    let mut want = String::new();
    for name in ["a.txt", "b.bin"] {
        let p = dir.path().join(name);
        want.push_str(&format!(
            "MD5 ({name}) = {}\nSHA1 ({name}) = {}\n",
            digest_with("md5sum", &p),
            digest_with("sha1sum", &p)
        ));
    }
    out.status(0).stdout_is(&want);
    // One algorithm alone is exactly md5sum's format.
    let md5 = cmd(&["hash", "-a", "md5", "a.txt", "b.bin"]).current_dir(dir.path()).run();
    md5.status(0).stdout_is(tool("md5sum", &[os("a.txt"), os("b.bin")], dir.path()).stdout.clone());
    // --sums writes MD5SUMS and SHA1SUMS that md5sum -c and sha1sum -c accept.
    cmd(&["hash", "-a", "md5,sha1", "--sums", ".", "a.txt", "b.bin"]).current_dir(dir.path()).run().status(0);
    tool("md5sum", &[os("-c"), os("MD5SUMS")], dir.path()).status(0).stdout_has("b.bin: OK");
    tool("sha1sum", &[os("-c"), os("SHA1SUMS")], dir.path()).status(0).stdout_has("b.bin: OK");
}

#[test]
fn hash_sha512_matches_sha512sum_and_its_lists_pass_sha512sum_check() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    // One algorithm alone is exactly sha512sum's format.
    let out = cmd(&["hash", "-a", "sha512", "a.txt", "b.bin"]).current_dir(dir.path()).run();
    out.status(0).stdout_is(tool("sha512sum", &[os("a.txt"), os("b.bin")], dir.path()).stdout.clone());
    cmd(&["hash", "-a", "sha256,sha512", "--sums", ".", "a.txt", "b.bin"]).current_dir(dir.path()).run().status(0);
    tool("sha512sum", &[os("-c"), os("SHA512SUMS")], dir.path()).status(0).stdout_has("b.bin: OK");
    // custody checks a sha512sum list too, and names a file that no longer matches.
    cmd(&["hash", "--check", "SHA512SUMS"]).current_dir(dir.path()).run().status(0);
    std::fs::write(dir.path().join("a.txt"), "changed").unwrap();
    cmd(&["hash", "--check", "SHA512SUMS"]).current_dir(dir.path()).run().status(1).stdout_has("a.txt: FAILED");
}

#[test]
fn hash_record_appends_a_hash_event_to_the_ledger() {
    let store = Store::new();
    let file = store.file("export/a.txt", b"recorded hash\n");
    let out = store.cmd(&["hash", "--record", "--case", "24-1234", "--note", "hashed on site"]).arg(&file).run();
    out.status(0).stderr_has("recorded the digests of 1 file in the ledger");
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let ev = &events[1];
    assert_eq!(ev["action"], "hash");
    assert_eq!(ev["case"], "24-1234");
    assert_eq!(ev["note"], "hashed on site");
    assert_eq!(ev["inputs"][0]["sha256"], sha256sum(&file));
    assert_eq!(ev["inputs"][0]["blake3"], b3sum(&file));
    assert_eq!(ev["inputs"][0]["name"], file.display().to_string());
    let head = format!("{}:{}", log["head"]["seq"], log["head"]["hash"].as_str().unwrap());
    assert!(head.starts_with(&out.short_head()), "{head}: {}", out.stderr());
    store.verify_ok();
}

#[test]
fn hash_record_without_a_store_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir.path().join("a.txt"), b"no store here\n");
    cmd(&["hash", "--record", "--case", "24-1234"])
        .arg(&file)
        .current_dir(dir.path())
        .run()
        .status(2)
        .stderr_has("no custody store found")
        .stderr_has("custody init")
        .stdout_is("");
}

/// Links inside a directory are listed and not followed, as ingest records them without
/// following (hash followed links to files, so a file outside the directory was hashed as if it
/// were in it, and ingest of the same directory recorded something else). A link named on the
/// command line is not followed either: it is named, with its target, as nothing to hash.
#[test]
fn hash_of_a_directory_lists_its_links_and_does_not_follow_them_as_ingest_does() {
    let store = Store::new();
    let export = store.work().join("export");
    let inside = store.file("export/a.txt", "on the stick\n");
    let outside = store.file("outside.txt", "somewhere else on the machine\n");
    std::os::unix::fs::symlink("../outside.txt", export.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("nowhere", export.join("dangling")).unwrap();
    std::os::unix::fs::symlink("..", export.join("up")).unwrap();

    let out = store.cmd(&["hash", "-a", "sha256"]).arg(&export).run();
    out.status(0).stdout_is(format!("{}  {}\n", sha256sum(&inside), inside.display()));
    for (link, target) in [("dangling", "nowhere"), ("link.txt", "../outside.txt"), ("up", "..")] {
        out.stderr_has(&format!("skipped {} -> {target}", export.join(link).display()));
    }
    let json = store.cmd(&["--json", "hash"]).arg(&export).run().status(0).json();
    let skipped: Vec<(&str, &str)> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["target"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped, [("symlink", "nowhere"), ("symlink", "../outside.txt"), ("symlink", "..")], "{json:#}");
    // Ingest of the same directory records the same three links and the one file.
    let ingested =
        store.cmd(&["--json", "ingest", "--case", "24-5", "--item", "1"]).arg(&export).run().status(0).json();
    assert_eq!(ingested["items"].as_array().unwrap().len(), 1, "{ingested:#}");
    assert_eq!(ingested["symlinks"].as_array().unwrap().len(), 3, "{ingested:#}");
    // Named on the command line, a link is named with its target (it was "Too many levels of
    // symbolic links", exit 3); its target hashes as itself.
    let named = store.cmd(&["hash", "-a", "sha256"]).arg(export.join("link.txt")).run();
    named.status(2).stderr_has("-> ../outside.txt").stderr_has("nothing to hash");
    store.cmd(&["hash", "-a", "sha256"]).arg(&outside).run().status(0).stdout_has(&sha256sum(&outside));
}
