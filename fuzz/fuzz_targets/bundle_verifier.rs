#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzz::bundle_verifier(data));
