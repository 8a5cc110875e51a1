//! The fuzz targets' regression replay, on stable Rust: every input kept under
//! `fixtures/fuzz/TARGET/` (seeds, and every input that ever crashed a target under `cargo fuzz`)
//! goes through `custody::fuzz::TARGET`, and so does a fixed stream of mutations of them (bit
//! flips, cuts, insertions, splices, boundary numbers). Runs in-process in the test profile, so
//! integer overflow panics too. A panic here is a bug in custody: keep the input as a fixture.

use std::fs;
use std::path::{Path, PathBuf};

/// Inputs kept for `target`, sorted by name.
fn kept(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz").join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).expect("read fixture");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// xorshift64*: a fixed, seedable stream, so a failing mutation is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const BOUNDARIES: [&[u8]; 10] = [
    b"0",
    b"-1",
    b"4294967295",
    b"18446744073709551615",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"99999999999999999999999",
    b"1e309",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
];

fn mutate(rng: &mut Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => d.truncate(rng.below(d.len())),
            2 => {
                let i = rng.below(d.len() + 1);
                d.insert(i, rng.next() as u8);
            }
            3 if !d.is_empty() => {
                let (a, b) = (rng.below(d.len()), rng.below(d.len()));
                let (a, b) = (a.min(b), a.max(b));
                d.drain(a..b);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())].1;
                let cut = rng.below(d.len() + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            _ => {
                let v = BOUNDARIES[rng.below(BOUNDARIES.len())];
                let i = rng.below(d.len() + 1);
                let end = (i + rng.below(8)).min(d.len());
                d.splice(i..end, v.iter().copied());
            }
        }
    }
    d
}

fn replay(target: &str, mutations: usize) {
    let seeds = kept(target);
    assert!(!seeds.is_empty(), "no inputs kept under fixtures/fuzz/{target}/");
    for (path, bytes) in &seeds {
        let ok = std::panic::catch_unwind(|| custody::fuzz::run(target, bytes));
        assert!(ok.is_ok(), "{target} panicked on the kept input {}", path.display());
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for n in 0..mutations {
        let input = mutate(&mut rng, &seeds);
        let ok = std::panic::catch_unwind(|| custody::fuzz::run(target, &input));
        if ok.is_err() {
            let keep = std::env::temp_dir().join(format!("custody-fuzz-{target}-{n}"));
            fs::write(&keep, &input).expect("write the crashing input");
            panic!(
                "{target} panicked on mutation {n}; the input is at {} (keep it under fixtures/fuzz/{target}/)",
                keep.display()
            );
        }
    }
}

#[test]
fn the_bundle_verifier_survives_its_kept_inputs_and_their_mutations() {
    replay("bundle_verifier", 600);
}

#[test]
fn the_position_parser_survives_its_kept_inputs_and_their_mutations() {
    replay("position_parser", 5000);
}

#[test]
fn the_job_parser_survives_its_kept_inputs_and_their_mutations() {
    replay("job_parser", 1500);
}

#[test]
fn the_ledger_decoder_survives_its_kept_inputs_and_their_mutations() {
    replay("ledger_decoder", 1500);
}

#[test]
fn the_nal_parser_survives_its_kept_inputs_and_their_mutations() {
    replay("nal_parser", 5000);
}

#[test]
fn every_fuzz_target_has_a_cargo_fuzz_entry_and_kept_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    for t in custody::fuzz::TARGETS {
        assert!(manifest.contains(&format!("name = \"{t}\"")), "fuzz/Cargo.toml has no [[bin]] {t}");
        let src = fs::read_to_string(root.join(format!("fuzz/fuzz_targets/{t}.rs"))).expect("target source");
        assert!(src.contains(&format!("custody::fuzz::{t}")), "fuzz_targets/{t}.rs does not call custody::fuzz::{t}");
        assert!(!kept(t).is_empty(), "no kept inputs for {t}");
    }
}
