//! `--out`: every command that copies its outputs out of the store (still, clip, rewrap,
//! redact), writes a file (package, export, man) or sum lists (`hash --sums`) checks where it
//! writes before doing any work, so an unusable `--out` records nothing; and a copy that fails
//! after recording all the same says the item was recorded and how to get it.

use std::fs;

use custody::media::synth::Fixture;

use crate::support::{ReadOnly, Store};

#[test]
fn an_unusable_out_is_refused_before_anything_is_recorded() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::RawH264);
    let id = video.id.as_str();
    let file = store.file("a-file", "not a directory\n");
    let ro = store.work().join("read-only");
    fs::create_dir(&ro).unwrap();
    let copying: [&[&str]; 5] = [
        &["still", id, "--at", "frame:3", "--out"],
        &["clip", id, "--from", "frame:0", "--to", "frame:5", "--out"],
        &["rewrap", id, "--out"],
        &["redact", id, "--box", "0,0,64,64", "--reason", "plate", "--out"],
        &["redact", id, "--box", "0,0,64,64", "--reason", "plate", "--preview", "--out"],
    ];
    let before = store.snapshot();
    for args in copying {
        store
            .cmd(args)
            .arg(&file)
            .run()
            .status(2)
            .stderr_has("is a file, not a directory")
            .stderr_has("Nothing was done");
        store.cmd(args).arg(file.join("sub")).run().status(2).stderr_has("cannot be created");
        // A directory that cannot be written (a read-only mount refuses root too), and one
        // that would have to be created in it.
        for target in [ro.clone(), ro.join("new")] {
            store
                .cmd(args)
                .arg(&target)
                .read_only(&ro, ReadOnly::Mount)
                .run()
                .status(3)
                .stderr_has("read-only")
                .stderr_has("Nothing was done");
        }
        store.assert_unchanged(&before);
    }
    let package = ["package", id, "--recipient", "ADA", "--out"];
    store
        .cmd(&package)
        .arg(ro.join("bundle.zip"))
        .read_only(&ro, ReadOnly::Mount)
        .run()
        .status(3)
        .stderr_has("read-only");
    store.cmd(&package).arg(store.work().join("missing/bundle.zip")).run().status(3).stderr_has("does not exist");
    store
        .cmd(&["hash", "--record", "--case", "24-1234", "--sums"])
        .arg(&file)
        .arg(&video.path)
        .run()
        .status(2)
        .stderr_has("--sums");
    store.cmd(&["export", "--out"]).arg(ro.join("ledger.jsonl")).read_only(&ro, ReadOnly::Mount).run().status(3);
    store.assert_unchanged(&before);
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0, "something was written into {}", ro.display());
}

/// The directory is usable when checked, but the copy fails after the still is recorded (a
/// directory stands where the PNG would go): the error says the still WAS recorded, warns
/// against a retry, and names the stored file to copy.
#[test]
fn a_copy_that_fails_after_recording_says_the_item_was_recorded_and_how_to_get_it() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::RawH264);
    let out_dir = store.work().join("exhibits");
    let name = format!("{}_frame000003.png", video.path.file_stem().unwrap().to_string_lossy());
    fs::create_dir_all(out_dir.join(&name)).unwrap();
    let events = store.event_count();
    let failed = store.cmd(&["still", &video.id, "--at", "frame:3", "--out"]).arg(&out_dir).run();
    failed.status(3).stderr_has("WAS recorded").stderr_has("Do not run the command again");
    assert_eq!(store.event_count(), events + 1, "the still is recorded");
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    let still = &log["events"].as_array().unwrap().last().unwrap()["outputs"][0];
    assert_eq!(still["name"].as_str().unwrap().rsplit('/').next(), Some(name.as_str()), "{still:#}");
    let sha = still["sha256"].as_str().unwrap();
    failed.stderr_has(&format!(
        "{} ({}) WAS recorded",
        still["item"].as_str().unwrap(),
        still["name"].as_str().unwrap()
    ));
    match &store.bucket {
        None => {
            failed.stderr_has(&format!("cp {} {}", store.object_path(sha).display(), out_dir.join(&name).display()))
        }
        Some((bucket, prefix)) => failed.stderr_has(&format!(
            "aws s3 cp s3://{}/{prefix}/objects/{}/{} {}",
            bucket.name,
            &sha[..2],
            &sha[2..],
            out_dir.join(&name).display()
        )),
    };
}
